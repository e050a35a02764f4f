"""run.py's engines on run.py's HumanEval workload, built outside run.py.

Diagnostics that time or profile what a ``run.py`` job decodes (``scripts/diag_timing_gap.py``,
``scripts/profile_host.py``) must build exactly its engines: the same config composition,
the same model loading (``runner.model_spec``, ``runner.other_model_loader``), the same
samples, prompts and stop sequences. This is that one construction.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsd_bench import runner
from hsd_bench.api import ModelPool
from hsd_bench.config import register_schemas
from hsd_bench.methods import build_engine
from hsd_bench.tasks.base import get_task

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# run.py overrides of each method, as scripts/gpu_headline.sh's measurement-path checks run them
METHOD_OVERRIDES = {
    "autoregressive": ["method=autoregressive"],
    "layerskip": ["method=layerskip", "exit=6", "method.draft_len=4"],
    "hispec": ["method=hispec", "exit=[3,6]", "method.draft_len=2", "method.period=4"],
    "vanilla_sd": ["method=vanilla_sd", "method.draft_len=4"],
    "hierarchy": ["method=hierarchy"],  # its defaults: family-2x128 -> family-6x128 -> target, batches 4, 4
}


@dataclass
class Workload:
    engines: dict[str, Any]  # method name -> the engine run.py builds for it
    target: Any
    codec: Any
    task: Any
    samples: list
    prompts: list[list[int]]  # the samples' prompts as ids
    stop: list[str]  # the task's stop sequences


def run_py_workload(model: str, methods: list[str], device: str, dtype: str, limit: int, max_new: int,
                    draft: str | None = None, overrides: tuple[str, ...] | list[str] = ()) -> Workload:
    """The engines of ``python run.py model.path=<model> method=<m> dataset=humaneval
    dataset.limit=<limit> ...`` for every ``m`` in ``methods`` (keys of :data:`METHOD_OVERRIDES`),
    on one target; ``draft``: vanilla_sd's ``method.draft.path``; ``overrides``: further run.py
    overrides for every method."""
    from hydra import compose, initialize_config_dir

    unknown = [m for m in methods if m not in METHOD_OVERRIDES]
    if unknown:
        raise ValueError(f"methods {unknown}: valid are {', '.join(METHOD_OVERRIDES)}")
    register_schemas()
    common = [f"model.path={model}", f"model.device={device}", f"model.dtype={dtype}", "dataset=humaneval",
              f"dataset.limit={limit}", f"max_new_tokens={max_new}",
              f"results_dir={Path(tempfile.gettempdir()) / 'run_py_workload'}", *overrides]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = {}
        for m in methods:
            draft_path = [f"method.draft.path={draft}"] if m == "vanilla_sd" and draft else []
            cfgs[m] = runner._as_container(compose("config", overrides=common + draft_path + METHOD_OVERRIDES[m]))
    first = cfgs[methods[0]]
    task = get_task("humaneval")
    samples = task.load(runner._Attr(first["dataset"]))
    pool = ModelPool(runner.model_spec(first))
    target, codec = pool.get(model)
    engines = {m: build_engine(runner.method_spec(c), target, runner.other_model_loader(c, pool), codec)
               for m, c in cfgs.items()}
    return Workload(engines, target, codec, task, samples, [codec.encode(s.prompt) for s in samples],
                    list(task.stop_sequences))
