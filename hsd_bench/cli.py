"""The Hydra entry point behind ``run.py``.

Hydra reads ``exit=8,16`` as a sweep and refuses it outside ``-m``; users
type it to mean HiSpec's two exits, so outside multirun we rewrite it to the
list ``exit=[8,16]`` before Hydra parses the command line. Inside ``-m`` the
comma keeps its sweep meaning (``-m exit=4,8`` sweeps layerskip's exit; sweep
over HiSpec pairs with ``-m 'exit=[8,16],[4,12]'``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_LIST_KEYS = ("exit", "method.exit")
_PLAIN_LIST = re.compile(r"^(\+{0,2})(" + "|".join(re.escape(k) for k in _LIST_KEYS) + r")=([^\[\]()'\"=]+,[^\[\]()'\"=]+)$")


def rewrite_exit_lists(argv: list[str]) -> list[str]:
    if any(a in ("-m", "--multirun") for a in argv[1:]):
        return argv
    out = [argv[0]]
    for arg in argv[1:]:
        m = _PLAIN_LIST.match(arg)
        out.append(f"{m.group(1)}{m.group(2)}=[{m.group(3)}]" if m else arg)
    return out


def main() -> None:
    import hydra

    from hsd_bench.config import register_schemas

    register_schemas()
    conf_dir = str(Path(__file__).resolve().parents[1] / "conf")

    @hydra.main(config_path=conf_dir, config_name="config", version_base="1.3")
    def _app(cfg) -> None:
        from hsd_bench.models.hf_compat import TransformersDriftError
        from hsd_bench.runner import run_job

        try:
            run_job(cfg)
        except (ValueError, TransformersDriftError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    _app()
