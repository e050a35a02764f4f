"""Weights & Biases logging of one finished run (one W&B run per job).

Why a separate module: the results on disk (rows.jsonl, summary.json) are the
record; W&B is a view of them for comparing sweep jobs in a browser. So the
runner calls ``log_run`` once, after ``DONE`` is written, and nothing here can
lose or change a result. ``wandb`` is imported only when logging is on, so
``wandb.mode=disabled`` (the default) costs nothing and writes nothing, and no
mode ever stops at a login prompt: ``online`` without credentials falls back
to ``offline`` (sync later with ``wandb sync``), with a message saying so.

Layout in W&B: project ``wandb.project``; group = ``wandb.group`` or else the
Hydra sweep directory's name (one group per sweep); job type = the method;
config = the resolved run config; summary = the method's metrics at top
level plus ``<method>/<metric>`` for every method in the run (the baseline
included); a table ``samples`` with one row per sample and method.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

MODES = ("online", "offline", "disabled")

# Row keys too large or too nested for a W&B table cell.
_TABLE_SKIP = {"output_ids", "position_reached", "position_accepted", "time_split_s", "layer_evals",
               "drafted_per_level", "accepted_per_level", "layer_evals_per_token_by_model", "acceptance_per_level"}


def wandb_mode(wcfg: Mapping) -> str:
    """The `wandb.mode` of a config, lower-cased; a ValueError naming the valid modes otherwise."""
    mode = str(wcfg.get("mode") or "disabled").lower()
    if mode not in MODES:
        raise ValueError(f"wandb.mode={mode!r} is not one of {', '.join(MODES)}")
    return mode


def sweep_group(wcfg: Mapping) -> str | None:
    """``wandb.group`` if set, else the Hydra sweep directory's name in a multirun, else None."""
    if wcfg.get("group"):
        return str(wcfg["group"])
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized():
            hc = HydraConfig.get()
            if hc.mode == RunMode.MULTIRUN:
                return Path(str(hc.sweep.dir)).name
    except ImportError:  # hydra is a dependency, but logging must not need it
        pass
    return None


def _has_credentials(wandb: Any) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return bool(wandb.login(prompt=False, verify=False))
    except TypeError:  # wandb < 0.19 has no prompt=; its login may prompt, so don't call it
        return False


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def summary_metrics(summary: Mapping) -> dict[str, Any]:
    """Flat W&B summary: ``<method>/<metric>`` (nested dicts as ``a/b/c``), and the run's method at top level."""
    out: dict[str, Any] = {}
    methods: Mapping = summary.get("methods") or {}

    def put(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{prefix}/{k}", v)
        elif _scalar(value):
            out[prefix] = value

    for name, metrics in methods.items():
        put(name, metrics)
    main = summary.get("method")
    if main in methods:
        for k, v in methods[main].items():
            if _scalar(v):
                out[k] = v
    for k in ("run_hash", "lossless", "verifier", "peak_memory_mb"):
        if k in summary and _scalar(summary[k]):
            out[k] = summary[k]
    return out


def sample_table_rows(rows: list[Mapping]) -> tuple[list[str], list[list[Any]]]:
    """Columns and data of the per-sample table: scalar row fields, plus ``scores/<name>``."""
    columns: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k == "scores" and isinstance(v, Mapping):
                for s in v:
                    if f"scores/{s}" not in columns:
                        columns.append(f"scores/{s}")
            elif k not in _TABLE_SKIP and _scalar(v) and k not in columns:
                columns.append(k)
    data = []
    for r in rows:
        scores = r.get("scores") or {}
        data.append([scores.get(c[7:]) if c.startswith("scores/") else r.get(c) for c in columns])
    # A column whose values mix types (e.g. None and float are fine; str and float are not) goes as text.
    for j in range(len(columns)):
        kinds = {type(row[j]) for row in data if row[j] is not None}
        if len(kinds - {int, float}) > 0 and len(kinds) > 1:
            for row in data:
                row[j] = None if row[j] is None else str(row[j])
    return columns, data


def log_run(cfg: Mapping, summary: Mapping, rows: list[Mapping], run_dir: Path | str) -> str | None:
    """Log one finished run to W&B; returns the W&B run's local directory, or None when disabled.

    ``cfg``: the resolved run config as plain containers (needs ``wandb`` keys
    ``mode``, ``project``, optional ``entity``, ``group``, ``dir``; ``method.name``).
    ``summary``: the dict written to summary.json. ``rows``: the run's rows.
    ``run_dir``: the run directory (its name tags the W&B run; recorded in the config).
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    wcfg: Mapping = cfg.get("wandb") or {}
    mode = wandb_mode(wcfg)
    if mode == "disabled":
        return None

    import wandb  # lazy: only when logging is on

    if mode == "online" and not _has_credentials(wandb):
        print("[hsd-bench] wandb.mode=online but no W&B credentials (WANDB_API_KEY or `wandb login`): "
              "logging offline instead; upload later with `wandb sync`", file=sys.stderr)
        mode = "offline"

    run_dir = Path(run_dir)
    method = (cfg.get("method") or {}).get("name") or summary.get("method") or "run"
    dataset = (cfg.get("dataset") or {}).get("name", "")
    wandb_dir = wcfg.get("dir") or os.environ.get("WANDB_DIR")
    if wandb_dir:
        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(dict(cfg), default=str))
    config["run_dir"] = str(run_dir)
    run = wandb.init(
        project=wcfg.get("project") or "hsd-bench",
        entity=wcfg.get("entity") or None,
        group=sweep_group(wcfg),
        job_type=str(method),
        name=f"{method}-{dataset}-{run_dir.name}".strip("-"),
        config=config,
        dir=str(wandb_dir) if wandb_dir else None,
        mode=mode,
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        run.summary.update(summary_metrics(summary))
        columns, data = sample_table_rows(list(rows))
        if columns:
            run.log({"samples": wandb.Table(columns=columns, data=data)})
        return str(Path(run.dir).parent)
    finally:
        run.finish()
        # finish() can return before the W&B service has written the run's
        # transaction log (seen with wandb 0.31: the .wandb file still empty);
        # teardown waits for the service to flush and exit, so a SLURM job that
        # ends right after this call cannot lose the data.
        wandb.teardown()
