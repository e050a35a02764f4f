"""``decoding.batch_size=B`` through the run command: same rows as batch 1, aggregate metrics, resume."""

from __future__ import annotations

import json

import pytest

from hsd_bench import runner
from test_run_command import _cfg

IDS = "dataset.ids=[HumanEval/0,HumanEval/2,HumanEval/4,HumanEval/6,HumanEval/8]"


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]


def test_batched_run_writes_the_rows_of_a_batch_one_run(tmp_path):
    common = ("method=hispec", "exit=[2,4]", "dataset.limit=5", IDS, "max_new_tokens=10")
    one = runner.run_job(_cfg(tmp_path, *common))
    three = runner.run_job(_cfg(tmp_path, *common, "decoding.batch_size=3"))
    assert one.run_dir != three.run_dir
    by_key = {(r["sample_id"], r["method"]): r for r in _rows(one.run_dir)}
    rows = _rows(three.run_dir)
    assert len(rows) == len(by_key) == 10
    for r in rows:
        ref = by_key[(r["sample_id"], r["method"])]
        for key in ("output_ids", "output_text", "stop_reason", "drafted", "accepted", "target_forwards",
                    "layer_evals", "scores"):
            assert r[key] == ref[key], key
        assert r["batch_size"] == 3 and ref["batch_size"] == 1
        assert r["latency_s"] >= r["wall_s"] > 0 and ref["latency_s"] == ref["wall_s"]
    s = three.summary["methods"]
    assert s["hispec"]["batch_size"] == s["autoregressive"]["batch_size"] == 3
    assert s["hispec"]["parity_exact"] == 1.0
    # speedup against AR at the same batch size on the same samples
    assert s["hispec"]["speedup_vs_ar"] == pytest.approx(s["hispec"]["tokens_per_s"] / s["autoregressive"]["tokens_per_s"])
    assert s["hispec"]["latency_s"]["p90"] >= s["hispec"]["latency_s"]["p50"] > 0
    assert s["hispec"]["mean_accepted_len_per_row"]["p50"] >= 1.0


def test_batched_run_resumes_without_redoing_finished_samples(tmp_path):
    cfg = _cfg(tmp_path, "method=layerskip", "exit=2", "dataset.limit=5", IDS, "decoding.batch_size=2",
               "max_new_tokens=6")
    first = runner.run_job(cfg)
    lines = (first.run_dir / "rows.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 10
    (first.run_dir / "DONE").unlink()
    kept = lines[:7]
    (first.run_dir / "rows.jsonl").write_text("".join(kept))
    before = runner.GENERATIONS_RUN
    second = runner.run_job(cfg)
    assert runner.GENERATIONS_RUN - before == 3
    again = {(r["sample_id"], r["method"]): r["output_ids"] for r in _rows(second.run_dir)}
    assert again == {(r["sample_id"], r["method"]): r["output_ids"] for r in map(json.loads, lines)}


def test_batch_size_one_keeps_the_run_directories_of_before(tmp_path):
    cfg = runner._as_container(_cfg(tmp_path, "method=layerskip"))
    assert "batch_size" not in runner.identity(cfg)["decoding"]
    batched = runner._as_container(_cfg(tmp_path, "method=layerskip", "decoding.batch_size=4"))
    assert runner.identity(batched)["decoding"]["batch_size"] == 4


@pytest.mark.parametrize("bad", ["0", "-2"])
def test_bad_batch_size_fails_before_loading_models(tmp_path, bad):
    with pytest.raises(ValueError, match=rf"decoding.batch_size={bad} must be an integer >= 1"):
        runner.run_job(_cfg(tmp_path, "method=layerskip", f"decoding.batch_size={bad}"))
    assert not any(tmp_path.iterdir())
