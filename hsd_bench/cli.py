"""The Hydra entry point behind ``run.py``: argument rewriting and one-line errors.

Hydra reads ``exit=8,16`` as a sweep and refuses it outside ``-m``; users
type it to mean HiSpec's two exits, so outside multirun we rewrite it to the
list ``exit=[8,16]`` before Hydra parses the command line. Inside ``-m`` the
comma keeps its sweep meaning (``-m exit=4,8`` sweeps layerskip's exit; sweep
over HiSpec pairs with ``-m 'exit=[8,16],[4,12]'``).

Every user error -- a bad value our validation finds, and Hydra's own config
errors (an unknown key, a wrong type, a missing config group option) -- ends
the process with one line on stderr and exit code 2, before anything is
written. Any other exception is a bug and keeps its traceback (exit 1).

A single run's outputs all live in its run directory, so Hydra's per-run
folder (``.hydra/`` config copies and the job log) goes to a temporary
directory removed at exit: a launch, rejected or not, leaves nothing else
behind. Sweeps keep Hydra's sweep directory (``hydra.sweep.dir``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

USER_ERROR_EXIT = 2

_LIST_KEYS = ("exit", "method.exit")
_PLAIN_LIST = re.compile(r"^(\+{0,2})(" + "|".join(re.escape(k) for k in _LIST_KEYS) + r")=([^\[\]()'\"=]+,[^\[\]()'\"=]+)$")
_MULTIRUN_FLAGS = ("-m", "--multirun")


def rewrite_exit_lists(argv: list[str]) -> list[str]:
    if any(a in _MULTIRUN_FLAGS for a in argv[1:]):
        return argv
    out = [argv[0]]
    for arg in argv[1:]:
        m = _PLAIN_LIST.match(arg)
        out.append(f"{m.group(1)}{m.group(2)}=[{m.group(3)}]" if m else arg)
    return out


def single_run_overrides(argv: list[str], scratch: str) -> list[str]:
    """Send a single run's Hydra folder to ``scratch`` (unless the user chose one)."""
    if any(a in _MULTIRUN_FLAGS for a in argv[1:]) or any(a.startswith(("hydra.run.dir=", "hydra.output_subdir="))
                                                          for a in argv[1:]):
        return argv
    return [*argv, f"hydra.run.dir={scratch}"]


def one_line(err: BaseException) -> str:
    """A config error as one line: the error's first line, its cause's, and any list of valid options."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0].rstrip(".") if lines else type(err).__name__
    cause = err.__cause__
    if cause is not None:
        cause_lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
        if cause_lines:
            text += f": {cause_lines[0]}"
        hint = valid_keys_hint(getattr(cause, "full_key", None), cause_lines[0] if cause_lines else "")
        if hint:
            text += f"; {hint}"
    options = [ln for ln in lines[1:] if not ln.startswith(("full_key", "reference_type", "object_type"))]
    if "Config search path:" in options:  # Hydra's missing-config message lists where it looked: not for users
        options = options[: options.index("Config search path:")]
    if options and "Could not find" in lines[0]:
        text += " (" + " ".join(options) + ")"  # "Available options in 'method': autoregressive ..."
    elif any(ln.startswith("To append") for ln in options) and cause is None:
        text += " (" + next(ln for ln in options if ln.startswith("To append")) + ")"
    return text


def valid_keys_hint(full_key: str | None, message: str) -> str:
    """For an unknown key, the keys its parent node accepts (from the schema in hsd_bench.config)."""
    import dataclasses

    from hsd_bench.config import RunConf

    if not full_key or "not in" not in message:
        return ""
    node = RunConf
    for part in full_key.split(".")[:-1]:
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return ""
        node = fields[part].default_factory if fields[part].default_factory is not dataclasses.MISSING else None
        if node is None or not dataclasses.is_dataclass(node):
            return ""
    return "valid keys: " + ", ".join(f.name for f in dataclasses.fields(node))


def _user_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from hsd_bench.models.hf_compat import TransformersDriftError

    return ValueError, TransformersDriftError, HydraException, OmegaConfBaseException


def _fail(err: BaseException) -> None:
    print(f"error: {one_line(err)}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT)


def main() -> None:
    import hydra

    from hsd_bench.config import register_schemas

    register_schemas()
    conf_dir = str(Path(__file__).resolve().parents[1] / "conf")

    @hydra.main(config_path=conf_dir, config_name="config", version_base="1.3")
    def _app(cfg) -> None:
        from hsd_bench.runner import run_job

        try:
            run_job(cfg)
        except _user_errors() as err:
            _fail(err)

    scratch = tempfile.mkdtemp(prefix="hsd-bench-hydra-")
    argv = sys.argv
    sys.argv = single_run_overrides(rewrite_exit_lists(argv), scratch)
    # Let Hydra's config errors reach us as exceptions (instead of Hydra
    # printing them as several lines and exiting 1).
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _app()
    except _user_errors() as err:  # composing the config, or the sweeper's check of every job
        _fail(err)
    finally:
        sys.argv = argv
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
        shutil.rmtree(scratch, ignore_errors=True)
