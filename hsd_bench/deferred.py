"""Work on finished rows that waits until no generation is timed any more: scores, divergences.

Why: a task's score can be slow host work -- HumanEval's pass@1 runs every
completion in a child interpreter (``tasks/scoring/code_exec.py``) -- and
explaining a divergence from AR runs the target once more, at a prompt length
no warm-up met (``parity.explain``). On a GPU the generation that follows such
work runs measurably slower. Measured on an H200 with the shipped 5.6 M model,
same engines, same prompts, one process (``results/gpu_run4/timing_gap/``,
docs/performance.md "How a run is timed", rule 4): scoring between samples,
as ``run.py`` did, cost AR 8-10 % of its tokens/s and layerskip 15-21 %;
scoring on a background thread beside the next generations cost AR 14 % in
one order of the work. Decoding back to back, nothing but writing the row in
between, is what the benchmark does.

So ``run.py`` writes each row as its generation finishes, with
``scores = None`` and, where its output differs from AR's, ``divergence = None``
(both pending), and completes them once the last generation is timed: scores
several at a time where scoring waits on a subprocess
(``scores_out_of_process``), divergences on the target; then it rewrites
``rows.jsonl`` atomically, before the summary. A crash loses no generation:
on resume the pending rows are completed, not decoded again.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from hsd_bench import parity


def scores_pending(row: Mapping) -> bool:
    """A generation row written before its scores (``scores`` is None)."""
    return not row.get("skipped") and "scores" in row and row["scores"] is None


def divergence_pending(row: Mapping) -> bool:
    """A row whose output differs from AR's and whose divergence is not explained yet."""
    return row.get("parity_exact") is False and row.get("divergence") is None


def is_pending(row: Mapping) -> bool:
    return scores_pending(row) or divergence_pending(row)


def score_pending(task: Any, rows: list[dict], samples: Mapping[str, Any], workers: int | None = None) -> int:
    """Fill ``scores`` of every pending row in place (``samples``: sample_id -> Sample); returns how many.

    Scoring that waits on a subprocess runs ``workers`` at a time (default: up to 4, at
    most the CPU count); any other scoring runs inline. A scorer that raises raises here."""
    todo = [r for r in rows if scores_pending(r)]
    if not todo:
        return 0
    jobs = [(r, samples[r["sample_id"]]) for r in todo]
    if getattr(task, "scores_out_of_process", False):
        workers = workers or max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="hsd-score") as pool:
            scores = list(pool.map(lambda job: task.score(job[1], job[0]["output_text"]), jobs))
    else:
        scores = [task.score(sample, row["output_text"]) for row, sample in jobs]
    for row, s in zip(todo, scores):
        row["scores"] = s
    return len(todo)


def explain_pending(target: Any, rows: list[dict], ar_rows: Mapping[str, dict],
                    prompt_ids: Mapping[str, list[int]]) -> int:
    """Fill ``divergence`` (``parity.explain``) of every pending row against its sample's AR row
    (``ar_rows``: sample_id -> AR's row); returns how many."""
    todo = [r for r in rows if divergence_pending(r) and r["sample_id"] in ar_rows]
    for row in todo:
        row["divergence"] = parity.explain(target, prompt_ids[row["sample_id"]],
                                           ar_rows[row["sample_id"]]["output_ids"], row["output_ids"])
    return len(todo)


def complete_pending(task: Any, target: Any, rows: list[dict], ar_rows: Mapping[str, dict],
                     samples: Mapping[str, Any], prompt_ids: Mapping[str, list[int]]) -> None:
    """Explain the pending divergences and score the pending rows (each a no-op when none is)."""
    explain_pending(target, rows, ar_rows, prompt_ids)
    score_pending(task, rows, samples)
