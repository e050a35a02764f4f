"""(A Hydra plugin: it must live in the hydra_plugins namespace.) Hydra's basic sweeper, plus hsd-bench's config check on every job.

Before anything is written (Hydra's sweep directory included) and before the
first job is launched, every job of the sweep is composed (unknown keys and
wrong types fail there) and checked by ``hsd_bench.validate`` (exits within
the model's depth and in order, draft lengths >= 1, known methods, rules and
datasets, dtype, backend and device), and every results directory is checked
for writing -- so a bad sweep fails in seconds, before anything reaches SLURM.
Whether ``model.device`` exists is checked only when the jobs run on this
machine (the basic and the submitit-local launchers), not for SLURM, whose
jobs run on other nodes. A SLURM sweep started where ``sbatch`` or ``srun`` is
not on PATH (not a SLURM login node) is refused the same way, before Hydra
writes the sweep directory: submitit would otherwise fail with a traceback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict


class ValidatingSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        dirs: dict[str, str] = {}  # path -> the key that names it
        for batch in self.split_arguments(overrides, None):
            for path, key in self._check_jobs(batch).items():
                dirs.setdefault(path, key)
        if self._on_slurm():
            check_slurm_tools()
        from hsd_bench.results import check_results_dir

        for path, key in dirs.items():  # only once every job is valid: a rejected sweep creates nothing
            check_results_dir(path, key=key)
        return super().sweep(arguments)

    def _on_slurm(self) -> bool:
        return "Slurm" in str(self.config.hydra.launcher.get("_target_", ""))

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Already done for every job by :meth:`sweep`, before the sweep directory was created."""

    def _check_jobs(self, batch: Sequence[Sequence[str]]) -> dict[str, str]:
        """Compose and validate every job; ``{directory: the key that names it}`` it will write to."""
        from hsd_bench.validate import validate_any

        on_this_machine = not self._on_slurm()
        dirs: dict[str, str] = {}  # path -> the key that names it
        for overrides in batch:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            dirs.setdefault(str(cfg.results_dir), "results_dir")
            with open_dict(cfg):
                dirs.setdefault(str(Path(str(cfg.hydra.sweep.dir)).parent), "hydra.sweep.dir")
                cfg.pop("hydra", None)
            try:
                validate_any(cfg, hardware=on_this_machine)
            except ValueError as err:
                raise ValueError(f"sweep job {' '.join(overrides)}: {err}") from None
        return dirs


SLURM_TOOLS = ("sbatch", "srun")  # submitit submits with sbatch and refuses to start without srun


def check_slurm_tools() -> None:
    """A ValueError (one ``error:`` line from run.py) if SLURM's commands are not on PATH."""
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ValueError(
            f"hydra/launcher=slurm: {' and '.join(missing)} {verb} not on PATH ({os.environ.get('PATH', '')}); "
            f"valid: launch from a SLURM login node with {' and '.join(SLURM_TOOLS)} on PATH, "
            f"or use hydra/launcher=local (this machine) or no launcher"
        )
