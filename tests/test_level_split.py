"""Each level's share of decode time (``time_split_s``), and when it is recorded.

On a GPU the split comes from two CUDA events per level interval, about 2 µs of host time each:
four intervals per token for HiSpec and the hierarchy, one per chunk for AR. Recorded during a
timed pass, that host work slows exactly the host-bound methods being compared (an H200, the
294 M model: without the events HiSpec decoded 1.017x and the hierarchy 1.020x as fast, every
pair; docs/gpu-runs.md, "Nineteenth run"). So ``level_split`` defaults to recording the split
only where it costs the decode nothing -- off CUDA, or on CUDA made host-serial on purpose --
and switching it off must change nothing but the split.
"""

from __future__ import annotations

import json

import pytest
import torch

from hsd_bench import runner
from hsd_bench.engine import DecodingConfig, LevelClock, level_split_for
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.metrics import summarize_method
from tests.conftest import tiny_job_config
from tests.test_lookahead import native
from tests.test_native_backend import VOCAB, make_hf_model

SPECS = [
    MethodSpec("autoregressive"),
    MethodSpec("layerskip", exit=2, draft_len=3),
    MethodSpec("hispec", exit=[1, 3], draft_len=2, period=4),
    MethodSpec("hierarchy", levels=[{"path": "target", "exit": 1, "batch": 2}, {"path": "target", "exit": 3, "batch": 3}]),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_switching_the_split_off_changes_nothing_but_the_split(spec):
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(8)).tolist()
    rows = {}
    for split in (None, True, False):
        engine = build_engine(MethodSpec(**{**spec.__dict__, "level_split": split}), native(target_hf),
                              load_other=None)
        gen = engine.generate(prompt, 40, DecodingConfig())
        rows[split] = (gen.output_ids, gen.stats.as_row())
    (ids, default), (on_ids, on), (off_ids, off) = rows[None], rows[True], rows[False]
    assert ids == on_ids == off_ids
    for key in ("target_forwards", "drafted_per_level", "accepted_per_level", "draft_rounds", "layer_evals",
                "draft_rounds_ahead"):
        assert default[key] == on[key] == off[key], key
    # on CPU the default records it: every level's time and the rest, within the decode time
    names = {f"level:{lv.name}" for lv in engine.levels}
    assert len(names) == len(engine.levels)
    assert set(default["time_split_s"]) == set(on["time_split_s"]) == names | {"other"}
    levels = [v for k, v in on["time_split_s"].items() if k != "other"]
    assert all(t > 0 for t in levels) and sum(levels) <= on["decode_s"]
    assert off["time_split_s"] == {}


def test_the_default_split_is_free_where_it_costs_nothing_and_off_on_async_cuda():
    assert level_split_for(None, "cpu") is True
    assert level_split_for(None, torch.device("cuda")) is False
    assert level_split_for(None, "cuda", synchronous=True) is True  # host-serial profiling times levels anyway
    assert level_split_for(True, "cuda") is True and level_split_for(False, "cpu") is False
    for bad in (1, "yes", 0.5):
        with pytest.raises(ValueError, match=rf"level_split={bad!r} must be true, false or null"):
            level_split_for(bad, "cpu")


def test_a_clock_switched_off_records_no_events_even_on_cuda():
    clock = LevelClock(torch.device("cuda"), enabled=False)
    assert clock.events is False  # no CUDA event is made or recorded (this runs without a GPU)
    mark = clock.start()
    assert mark is None
    clock.stop(0, mark, [])  # nothing to add, nothing opened
    assert clock._open == [] and clock._pool == []


def test_a_bad_level_split_fails_when_the_engine_is_built():
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    with pytest.raises(ValueError, match=r"level_split='on' must be true, false or null"):
        build_engine(MethodSpec("layerskip", exit=2, level_split="on"), native(target_hf), load_other=None)


def test_run_py_records_whether_it_split_and_the_default_names_nothing_in_the_hash(tmp_path, monkeypatch):
    default = tiny_job_config(tmp_path, monkeypatch, "dataset.limit=1", "max_new_tokens=6")
    assert "level_split" not in runner.identity(default)
    off = tiny_job_config(tmp_path, monkeypatch, "dataset.limit=1", "max_new_tokens=6", "level_split=false")
    assert runner.identity(off) != runner.identity(default)
    result = runner.run_job(off)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["level_split"] is False
    assert all(m["time_split_s"] == {} for m in summary["methods"].values())
    result = runner.run_job(default)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["level_split"] is True  # CPU: the host clock costs nothing
    assert all("other" in m["time_split_s"] for m in summary["methods"].values())


@pytest.mark.parametrize("spec", SPECS[1:3], ids=[s.name for s in SPECS[1:3]])
def test_at_batch_b_the_split_is_of_the_batchs_time_not_b_times_it(spec):
    """A level interval serves every row in it, and the engine splits elapsed time into rows'
    ``wall_s`` shares: the level times must be split the same way, or summed over a batch they
    came to about B times its decode time and the summary's rest read 0 at every B > 1."""
    target_hf = make_hf_model("llama_gqa", num_layers=4, seed=7)
    gen = torch.Generator().manual_seed(9)
    prompts = [torch.randint(0, VOCAB, (6 + i,), generator=gen).tolist() for i in range(4)]
    engine = build_engine(MethodSpec(**{**spec.__dict__, "level_split": True}), native(target_hf), load_other=None)
    rows = [g.stats.as_row() for _, g in engine.generate_many(prompts, 24, DecodingConfig(), batch_size=4)]
    decode = sum(r["decode_s"] for r in rows)
    levels = sum(v for r in rows for k, v in r["time_split_s"].items() if k != "other")
    assert 0 < levels <= decode * 1.001
    split = summarize_method(rows)["time_split_s"]
    assert split["other"] == pytest.approx(decode - sum(v for k, v in split.items() if k != "other"))
    assert split["other"] > 0  # the engine's own work between levels, no longer clamped away
