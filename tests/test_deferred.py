"""Scores and divergences after the timed generations: the same rows, nothing lost or repeated.

HumanEval's pass@1 runs a child interpreter per completion, and explaining a
divergence runs the target again. ``run.py`` used to do both between two timed
generations, and on a GPU the pause made the next one slower
(``hsd_bench/deferred.py``). These tests pin what replaced it: every timed
generation comes before any scoring or explaining, rows are written as
generations finish and later carry their scores and divergences, and a job
stopped before that resumes by completing them, not by decoding again.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from conftest import tiny_job_config
from hsd_bench import deferred, measure, parity, runner
from hsd_bench.deferred import divergence_pending, is_pending, score_pending, scores_pending
from hsd_bench.tasks.humaneval import HumanEval

class SubprocessTask:
    """Scores like HumanEval (out of process); records how many scored at once."""

    scores_out_of_process = True

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.most = 0

    def score(self, sample, text):
        if sample == "boom":
            raise RuntimeError("scorer failed")
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return {"len": float(len(text)), "sample": sample}


class InlineTask:
    def score(self, sample, text):
        return {"len": float(len(text))}


def _rows(n):
    return [{"sample_id": f"s{i}", "method": "m", "output_text": "x" * i, "scores": None} for i in range(n)]


def test_pending_rows_lack_their_scores_or_their_divergence():
    assert scores_pending({"sample_id": "a", "scores": None})
    assert not scores_pending({"sample_id": "a", "scores": {"pass@1": 1.0}})
    assert not is_pending({"sample_id": "a", "method": "*", "skipped": True})
    assert not is_pending({"sample_id": "a"}), "rows of code that completed them inline have no pending marker"
    assert divergence_pending({"parity_exact": False, "divergence": None})
    assert not divergence_pending({"parity_exact": True, "divergence": None})
    assert not divergence_pending({"parity_exact": False, "divergence": {"class": "near_tie"}})
    assert not divergence_pending({"parity_exact": None})


@pytest.mark.parametrize("task", [InlineTask(), SubprocessTask()], ids=["inline", "out-of-process"])
def test_every_pending_row_gets_its_own_sample_s_scores(task):
    rows = _rows(6) + [{"sample_id": "done", "scores": {"len": -1.0}}]
    samples = {f"s{i}": f"s{i}" for i in range(6)}
    assert score_pending(task, rows, samples, workers=3) == 6
    assert [r["scores"]["len"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0]
    if isinstance(task, SubprocessTask):
        assert [r["scores"]["sample"] for r in rows[:6]] == list(samples)
        assert 1 < task.most <= 3, "subprocess scoring runs several at a time, at most `workers`"
    assert score_pending(task, rows, samples) == 0


def test_a_failing_scorer_raises():
    rows = [{"sample_id": "boom", "output_text": "", "scores": None}]
    with pytest.raises(RuntimeError, match="scorer failed"):
        score_pending(SubprocessTask(), rows, {"boom": "boom"})


@pytest.fixture
def humaneval_cfg(tmp_path, monkeypatch) -> dict:
    return tiny_job_config(tmp_path, monkeypatch, "max_new_tokens=4", "method=layerskip", "exit=2",
                           "dataset=humaneval", "dataset.limit=3", "model.max_context=1024")


def _file_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]


def test_run_job_scores_only_after_the_last_timed_generation(humaneval_cfg, monkeypatch):
    events: list[str] = []
    real_generate, real_score = measure.timed_generate, HumanEval.score

    def timed_generate(*a, **k):
        events.append("generate")
        return real_generate(*a, **k)

    def score(self, sample, text):
        events.append("score")
        return real_score(self, sample, text)

    monkeypatch.setattr(measure, "timed_generate", timed_generate)
    monkeypatch.setattr(HumanEval, "score", score)
    result = runner.run_job(humaneval_cfg, log=lambda *_: None)

    assert events == ["generate"] * 6 + ["score"] * 6
    rows = _file_rows(result.run_dir)
    assert [r["method"] for r in rows] == ["autoregressive"] * 3 + ["layerskip"] * 3, "decoder after decoder"
    assert [r["sample_id"] for r in rows[:3]] == [r["sample_id"] for r in rows[3:]]
    assert all(r["scores"] == {"pass@1": 0.0} for r in rows), "rows.jsonl carries every score"
    assert result.summary["methods"]["layerskip"]["scores"] == {"pass@1": 0.0}


def test_a_job_stopped_before_scoring_resumes_by_scoring_only(humaneval_cfg, monkeypatch):
    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "complete_pending", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.run_job(humaneval_cfg, log=lambda *_: None)
    run_dirs = list((Path(humaneval_cfg["results_dir"])).iterdir())
    (run_dir,) = [d for d in run_dirs if d.is_dir()]
    rows = _file_rows(run_dir)
    assert len(rows) == 6 and all(r["scores"] is None for r in rows), "every generation was kept, unscored"
    assert not (run_dir / "DONE").exists()

    monkeypatch.setattr(runner, "complete_pending", deferred.complete_pending)
    before = runner.GENERATIONS_RUN
    result = runner.run_job(humaneval_cfg, log=lambda *_: None)
    assert runner.GENERATIONS_RUN == before, "nothing decoded again"
    assert all(r["scores"] == {"pass@1": 0.0} for r in _file_rows(result.run_dir))
    assert result.summary["methods"]["autoregressive"]["n_samples"] == 3


def test_a_divergence_is_explained_after_the_last_timed_generation(humaneval_cfg, monkeypatch):
    """A corrupted method output (a real bug) differs from AR: its row is written with the
    divergence pending, explained only after every generation, and lands in ``mismatch``."""
    events: list[str] = []
    real_generate, real_explain = measure.timed_generate, parity.explain

    def timed_generate(decoder, prompt_ids, *a, **k):
        events.append("generate")
        timed = real_generate(decoder, prompt_ids, *a, **k)
        if len(decoder.levels) > 1:  # the method, not AR: commit a token the target did not choose
            ids = timed.generation.output_ids
            ids[0] = (ids[0] + 1) % 200
        return timed

    def explain(*a, **k):
        events.append("explain")
        return real_explain(*a, **k)

    monkeypatch.setattr(measure, "timed_generate", timed_generate)
    monkeypatch.setattr(parity, "explain", explain)
    result = runner.run_job(humaneval_cfg, log=lambda *_: None)

    assert events == ["generate"] * 6 + ["explain"] * 3
    method_rows = [r for r in _file_rows(result.run_dir) if r["method"] == "layerskip"]
    assert all(r["parity_exact"] is False and r["divergence"]["class"] == "mismatch" for r in method_rows)
    assert result.summary["methods"]["layerskip"]["parity_unexplained"] == 3
