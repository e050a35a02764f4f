"""Check a resolved run config without loading any weights.

Used by the runner before it loads models, and by the sweeper on every job
of a sweep before the first one is submitted -- so a bad exit list fails in
seconds on the login node, not hours later on a GPU.
"""

from __future__ import annotations

import json
from typing import Any

from hsd_bench.methods import method_views
from hsd_bench.models.loading import DTYPES, RANDOM_ARCHS, resolve_local_path
from hsd_bench.sampling import DecodingConfig
from hsd_bench.tasks.base import available_tasks


def model_depth(model_cfg: dict) -> int | None:
    """Number of decoder layers, from the config alone; None if unknown offline."""
    path = model_cfg["path"]
    if path.startswith("random:"):
        arch = path.split(":", 1)[1]
        if arch not in RANDOM_ARCHS:
            raise ValueError(f"unknown random architecture {arch!r}; valid: {', '.join(RANDOM_ARCHS)}")
        return model_cfg.get("num_layers") or RANDOM_ARCHS[arch]["num_hidden_layers"]
    local = resolve_local_path(path)
    if local is not None and (local / "config.json").exists():
        cfg = json.loads((local / "config.json").read_text())
        return cfg.get("num_hidden_layers")
    return None  # a Hub id: checked when the model loads


def validate_run_config(cfg: dict) -> None:
    """Raise ValueError naming the bad value and the valid range."""
    from hsd_bench.runner import method_spec  # the one place that reads method keys

    if cfg["model"].get("dtype") not in DTYPES:
        raise ValueError(f"model.dtype={cfg['model'].get('dtype')!r} is not one of {', '.join(DTYPES)}")
    DecodingConfig(**cfg["decoding"])
    dataset = cfg["dataset"]["name"]
    if dataset not in available_tasks():
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(available_tasks())}")
    limit = cfg["dataset"].get("limit")
    if limit is not None and limit < 1:
        raise ValueError(f"dataset.limit={limit} must be >= 1 (or null for all samples)")
    max_new = cfg.get("max_new_tokens")
    if max_new is not None and max_new < 1:
        raise ValueError(f"max_new_tokens={max_new} must be >= 1 (or null for the dataset's default)")
    depth = model_depth(cfg["model"])
    spec = method_spec(cfg)
    # without a known depth, check everything but the exit range
    method_views(spec, depth if depth is not None else 10**6)


def validate_any(cfg: Any) -> None:
    from omegaconf import OmegaConf

    validate_run_config(OmegaConf.to_container(cfg, resolve=True))
