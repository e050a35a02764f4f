"""What every dataset provides: samples with prompts, stop sequences, a scorer.

A task is one file under ``hsd_bench/tasks/`` registered with
``@register_task("name")``; the runner only sees this interface, so adding a
dataset never touches the engine or the run command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass
class Sample:
    sample_id: str
    prompt: str
    reference: Any = None  # whatever the scorer needs (answer, tests, summary)
    meta: dict = field(default_factory=dict)


class Task(Protocol):
    name: str
    # Generation settings the task's papers use; a config may override them.
    max_new_tokens: int
    stop_sequences: list[str]
    # Optional: True when ``score`` waits on a subprocess (code execution); run.py then
    # scores several rows at a time, after the last timed generation (``hsd_bench/deferred.py``).
    # Absent means False.
    # scores_out_of_process: bool

    def load(self, cfg: Any) -> list[Sample]:
        """The selected samples (cfg: the ``dataset`` config node), deterministic."""

    def score(self, sample: Sample, output_text: str) -> dict[str, float]:
        """Per-sample scores, e.g. ``{"exact_match": 1.0}``; higher is better."""


_TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str):
    def wrap(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return wrap


def available_tasks() -> list[str]:
    _load_builtin_tasks()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    _load_builtin_tasks()
    if name not in _TASKS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]()


def _load_builtin_tasks() -> None:
    import importlib
    import pkgutil

    import hsd_bench.tasks as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"hsd_bench.tasks.{mod.name}")
