"""The Spec-Bench task: first-turn prompts, categories carried to rows, summaries and collect.py.

Uses a tiny question file in Spec-Bench's format (tests/fixtures/datasets/
spec_bench_questions.jsonl, written for these tests), never the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsd_bench.metrics import summarize
from hsd_bench.tasks.base import get_task
from hsd_bench.tasks.jsonl import DatasetError
from hsd_bench.tasks.spec_bench import SYSTEM, build_prompt

DATA = Path(__file__).parent / "fixtures" / "datasets"
QUESTIONS = DATA / "spec_bench_questions.jsonl"


def cfg(**kw):
    base = {"path": str(QUESTIONS), "limit": None, "seed": 0, "ids": None, "categories": None, "per_category": None}
    return {**base, **kw}


def records() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]


def test_first_turn_in_the_vicuna_template_with_its_category():
    task = get_task("spec_bench")
    samples = task.load(cfg())
    by_id = {str(r["question_id"]): r for r in records()}
    assert [s.sample_id for s in samples] == list(by_id)  # file order, ids are question_id
    for s in samples:
        r = by_id[s.sample_id]
        assert s.prompt == f"{SYSTEM} USER: {r['turns'][0]} ASSISTANT:"
        assert s.meta == {"category": r["category"], "turns": len(r["turns"])}
        assert r["turns"][-1] not in s.prompt or len(r["turns"]) == 1  # later turns are not used
    assert task.max_new_tokens == 1024 and "USER:" in task.stop_sequences
    assert task.score(samples[0], "anything") == {}  # no reference answers, no score


def test_per_category_and_category_filters():
    task = get_task("spec_bench")
    one = task.load(cfg(per_category=1))
    cats = [s.meta["category"] for s in one]
    assert sorted(cats) == sorted({r["category"] for r in records()}) and len(cats) == len(set(cats))
    assert one == task.load(cfg(per_category=1)), "deterministic"
    two = task.load(cfg(per_category=2))
    assert {s.sample_id for s in one} <= {s.sample_id for s in two}  # a larger cap keeps the smaller's picks
    only = task.load(cfg(categories=["qa", "translation"]))
    assert {s.meta["category"] for s in only} == {"qa", "translation"} and len(only) == 4
    assert len(task.load(cfg(categories=["qa"], limit=1))) == 1


@pytest.mark.parametrize("over, message", [
    ({"path": None}, "dataset=spec_bench needs dataset.path"),
    ({"categories": ["poetry"]}, r"unknown categories \['poetry'\]"),
    ({"categories": "qa"}, "must be a list of category names"),
    ({"per_category": 0}, r"dataset.per_category=0 is out of range"),
])
def test_bad_config_is_a_clear_error(over, message):
    with pytest.raises(DatasetError, match=message):
        get_task("spec_bench").load(cfg(**over))


def test_a_record_without_turns_is_refused(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "category": "qa", "turns": []}) + "\n")
    with pytest.raises(DatasetError, match="turns must be a non-empty list"):
        get_task("spec_bench").load(cfg(path=str(bad)))
    bad.write_text(json.dumps({"question_id": 1, "turns": ["x"]}) + "\n")
    with pytest.raises(DatasetError, match="missing field"):
        get_task("spec_bench").load(cfg(path=str(bad)))


def test_summaries_are_reported_per_category():
    rows = []
    for method, wall in (("autoregressive", 2.0), ("layerskip", 1.0)):
        for i, (cat, n) in enumerate((("qa", 10), ("qa", 30), ("coding", 20))):
            rows.append({"sample_id": str(i), "method": method, "category": cat, "n_generated": n,
                         "wall_s": wall * n / 10 * (2 if cat == "coding" and method == "layerskip" else 1),
                         "decode_s": wall * n / 10, "drafted": 0, "accepted": 0, "target_forwards": n,
                         "drafted_per_level": {}, "accepted_per_level": {}, "layer_evals": {"t": n},
                         "time_split_s": {}, "position_reached": [], "position_accepted": [],
                         "parity_exact": True, "scores": {}})
    out = summarize(rows)
    per = out["layerskip"]["by_category"]
    assert set(per) == {"qa", "coding"} and per["qa"]["n_samples"] == 2
    assert per["qa"]["speedup_vs_ar"] == pytest.approx(2.0) and per["coding"]["speedup_vs_ar"] == pytest.approx(1.0)
    assert out["autoregressive"]["by_category"]["qa"]["speedup_vs_ar"] == pytest.approx(1.0)
    assert "by_category" not in summarize([{**r, "category": None} for r in rows])["layerskip"]


def test_a_run_carries_categories_to_rows_summary_and_collect(tmp_path):
    from hydra import compose, initialize_config_dir

    from hsd_bench import collect, runner
    from hsd_bench.config import register_schemas
    from tests.test_run_command import ROOT

    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=tiny_random", "dataset=spec_bench", f"dataset.path={QUESTIONS}",
                                           "dataset.per_category=1", "max_new_tokens=6", "warmup_tokens=2",
                                           "method=layerskip", "exit=1", f"results_dir={tmp_path}", "progress=false"])
    result = runner.run_job(cfg)
    rows = [json.loads(line) for line in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    cats = {r["category"] for r in rows}
    assert cats == {r["category"] for r in records()}
    per = result.summary["methods"]["layerskip"]["by_category"]
    assert set(per) == cats and all(p["speedup_vs_ar"] > 0 and p["n_samples"] == 1 for p in per.values())
    table = collect.category_table(collect.collect_summaries([tmp_path]))
    assert set(table["category"]) == cats and set(table["method"]) == {"layerskip", "autoregressive"}
    got = table[(table["method"] == "layerskip") & (table["category"] == "qa")].iloc[0]
    assert got["speedup_vs_ar"] == pytest.approx(per["qa"]["speedup_vs_ar"]) and got["dataset"] == "spec_bench"
    assert collect.main([str(tmp_path), "--by-category", "--out", str(tmp_path / "cats.csv"), "--no-cache"]) == 0
    assert len((tmp_path / "cats.csv").read_text().splitlines()) == 1 + 2 * len(cats)


def test_build_prompt_is_the_one_template():
    assert build_prompt("Hi?") == f"{SYSTEM} USER: Hi? ASSISTANT:"
