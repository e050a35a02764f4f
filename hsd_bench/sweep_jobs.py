"""The jobs of a ``run.py -m`` sweep, expanded as Hydra's basic sweeper expands them.

Why one function: the hierarchy planner (``hierarchy.plan.expand``, which plans a named sweep's
grid) and the tests that check every named experiment and every sweep command the docs show all
need the list of jobs a sweep will launch; each expanding it its own way could drift from what
``run.py -m`` runs. (The validating sweeper in ``hydra_plugins/`` is Hydra's own expansion, with
the parser of the running Hydra, and does not come through here.)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def sweep_jobs(params: Mapping[str, Any] | None, overrides: Sequence[str] = ()) -> list[list[str]]:
    """Every job's override list, in launch order: the sweeper's ``hydra.sweeper.params`` (a named
    experiment's grid) first, then the command line's overrides, whose sweeps (``a=1,2``) multiply
    the grid as they do under ``run.py -m``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    named = [f"{key}={value}" for key, value in (params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*named, *overrides])
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
