"""(A Hydra plugin: it must live in the hydra_plugins namespace.) Hydra's basic sweeper, plus hsd-bench's config check on every job.

Hydra already composes every job of a sweep before launching any (unknown
keys fail there); this adds the semantic check (exits within the model's
depth and in order, draft lengths >= 1, known methods, rules and datasets),
so a bad sweep fails before anything reaches SLURM.
"""

from __future__ import annotations

from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from omegaconf import open_dict


class ValidatingSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from hsd_bench.validate import validate_any

        for overrides in batch:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.pop("hydra", None)
            try:
                validate_any(cfg)
            except ValueError as err:
                raise ValueError(f"sweep job {' '.join(overrides)}: {err}") from None
