"""``scripts/bench_gpu.py`` end to end on CPU with tiny random models.

The GPU run is scarce (minutes a session), so the script must not meet a bug
there first. In float32 every speculative method must reproduce its
backend's autoregressive output exactly, and the script must report it so.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_bench_script_methods_part_on_cpu(tmp_path):
    bench = load_script("bench_gpu")
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "methods", "--target", "random:tiny",
        "--draft", "random:tiny-draft", "--mid-draft", "random:tiny-draft", "--prompts", "2", "--prompt-len", "8",
        "--max-new", "12", "--reps", "1", "--prefill", "chunked", "--out", str(tmp_path),
    ])
    assert rc == 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    part = doc["parts"]["methods"]
    assert "error" not in part, part
    assert part["prefill"] == "chunked"  # recorded (on CPU without fixed shapes a prompt still runs eagerly)
    rows = {r["name"]: r for r in part["rows"]}
    ours = [r for r in rows.values() if r["name"].startswith("ours")]
    assert {r["method"] for r in ours} == {"autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy"}
    for r in rows.values():
        assert r["tokens_per_rep"] == 2 * 12, r["name"]  # EOS off: every run makes the full budget
        assert r["tokens_per_s"] > 0 and r["mean_accepted_len"] >= 1.0
    for r in ours:
        assert r["parity_vs_same_backend_ar"] == 1.0, r["name"]
        assert r["parity_vs_hf_ar"] == 1.0, r["name"]
        _check_overheads(r)
        if r["method"] != "autoregressive":  # classified against the engine's AR (float32: all exact)
            assert r["parity_explained"] == {"exact": 2, "near_tie": 0, "unexplained": 0, "divergences": []}
    for name in ("HF assistant_early_exit", "HF assistant_model"):
        (row,) = [r for n, r in rows.items() if n.startswith(name)]
        assert row["parity_vs_same_backend_ar"] == 1.0
    comp = part["comparisons"]
    assert set(comp) >= {"layerskip_ours_over_hf", "vanilla_sd_ours_over_hf", "hispec_outside_forwards_async_frac",
                         "hispec_host_serial_overhead_frac"}
    assert all(v is not None for v in comp.values()), comp
    assert part["draft_same_tokenizer"] is None  # random models have no tokenizer
    md = (tmp_path / "bench.md").read_text()
    assert "ours hispec" in md and "HF eager AR" in md
    assert "outside forwards (async)" in md and "host-serial overhead" in md
    # the table says where the reported instrumented pass ran off the timed passes' rate
    from hsd_bench.bench.report import SLOW_PASS_SHOWN

    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines) if "| outside forwards (async) |" in line)
    column = [c.strip() for c in lines[head].split("|")].index("outside forwards (async)")
    cells = {line.split("|")[1].strip(): line.split("|")[column] for line in lines[head + 2:] if line.startswith("| ")}
    for r in ours:
        slow = r["outside_forwards_async"]["instrumented_slowdown"]
        # "pass 13% slower" (not "pass waited 4 ms for a CPU", which a loaded CI host can add beside it)
        shown = re.search(r"pass \d+% (slower|faster)", cells[r["name"]]) is not None
        assert shown == (abs(slow) >= SLOW_PASS_SHOWN), (r["name"], slow, cells[r["name"]])


def _check_overheads(row: dict) -> None:
    """Both overhead measures of one engine row are present and consistent (CPU: host clocks)."""
    async_ = row["outside_forwards_async"]
    serial = row["host_serial"]
    for m in (async_, serial):
        assert m["decode_s"] > 0 and m["model_calls"] > 0, row["name"]
    assert 0.0 < async_["model_busy_s"] <= async_["decode_s"], row["name"]
    assert 0.0 <= async_["gpu_idle_frac"] < 1.0, row["name"]
    assert async_["gpu_idle_frac"] == pytest.approx(1 - async_["model_busy_s"] / async_["decode_s"])
    assert 0.0 <= serial["overhead_frac"] < 1.0, row["name"]
    # the two passes make the same calls: both see every decode-phase model call
    assert async_["model_calls"] == serial["model_calls"], row["name"]
    # ... and decode what the timed passes decoded (their share describes the timed workload)
    assert async_["tokens"] == serial["tokens"] == row["tokens_per_rep"], row["name"]
    # --overhead-passes (default 3): the median pass, every pass listed with its slowdown
    passes = async_["passes"]
    assert len(passes) == 3 and {p["tokens"] for p in passes} == {row["tokens_per_rep"]}, row["name"]
    assert async_["gpu_idle_frac"] == sorted(p["gpu_idle_frac"] for p in passes)[1], row["name"]
    assert all(p["instrumented_slowdown"] is not None for p in passes), row["name"]
    assert async_["outside_at_timed_rate"] is not None and async_["outside_at_timed_rate"] < 1.0, row["name"]


def test_bench_script_rejects_unknown_part(tmp_path):
    bench = load_script("bench_gpu")
    with pytest.raises(SystemExit, match="unknown --parts"):
        bench.main(["--device", "cpu", "--parts", "nope", "--out", str(tmp_path)])


def test_bench_script_overhead_part_on_cpu(tmp_path):
    bench = load_script("bench_gpu")
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "overhead", "--overhead-models", "random:tiny",
        "--overhead-prompts", "2", "--overhead-max-new", "12", "--prompt-len", "8", "--reps", "1",
        "--device-trace", "--out", str(tmp_path),
    ])
    assert rc == 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    part = doc["parts"]["overhead"]
    assert "error" not in part and "random:tiny" in part["models"], part
    model = part["models"]["random:tiny"]
    assert "error" not in model, model
    assert (model["layers"], model["exit"], model["hispec_exits"]) == (8, 2, [1, 2])  # L/4; L/8, L/4
    # --overhead-drafts auto: the target's shape cut to L/8 and L/4 layers drafts for vanilla_sd and the hierarchy
    assert {k: (d["spec"], d["layers"]) for k, d in model["drafts"].items()} == {
        "draft": ("random:tiny", 1), "mid": ("random:tiny", 2)}
    rows = {r["method"]: r for r in part["rows"]}
    assert set(rows) == {"autoregressive(loop)", "autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy"}
    for method in ("autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy"):
        r = rows[method]
        assert r["tokens_per_rep"] == 2 * 12 and r["tokens_per_s"] > 0
        assert r["parity_vs_same_backend_ar"] == 1.0, method  # float32: every method reproduces AR
        _check_overheads(r)
        # --device-trace on CPU: no asynchronous device to trace, said as such rather than a number
        assert set(r["device_trace"]) == {"skipped"} and "CUDA" in r["device_trace"]["skipped"], method
    # speculative rounds make more model calls per token than AR (drafts + verifies)
    per_token = {m: rows[m]["outside_forwards_async"]["model_calls_per_token"] for m in ("autoregressive", "hispec")}
    assert per_token["hispec"] > per_token["autoregressive"], per_token
    md = (tmp_path / "bench.md").read_text()
    assert "accept almost nothing" in md and "[tiny] ours hispec" in md and "[tiny] ours hierarchy" in md


def test_measuring_passes_are_interleaved_with_the_timed_passes(tmp_path, monkeypatch):
    """The outside share's instrumented passes run one after each timed pass (any beyond --reps after
    the last), so each meets the host state of the pass before it: run after all timed passes, on a
    loaded GPU host they ran 16-54 % slower than those (the fifty-fourth run). Each pass carries its
    slowdown against its timed pass (None for the unpaired), and the row every timed pass's decode time."""
    bench = load_script("bench_gpu")
    calls = []
    engine_run, measuring = bench.engine_run, bench.outside_forwards_pass

    def timed(label, engine, method, *args, **kwargs):
        generate = engine.generate
        engine.generate = lambda *a, **k: (calls.append((method, "timed")), generate(*a, **k))[1]
        return engine_run(label, engine, method, *args, **kwargs)

    def measured(build, *args, **kwargs):
        calls.append((calls[-1][0], "measuring"))
        return measuring(build, *args, **kwargs)

    from hsd_bench import host_probe
    from hsd_bench.bench import runs

    monkeypatch.setattr(bench, "engine_run", timed)
    monkeypatch.setattr(bench, "outside_forwards_pass", measured)  # the passes after timed ones
    monkeypatch.setattr(runs, "outside_forwards_pass", measured)  # the rest (engine_overheads')
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "overhead", "--overhead-models", "random:tiny",
        "--overhead-prompts", "2", "--overhead-max-new", "8", "--prompt-len", "8", "--reps", "2",
        "--overhead-passes", "3", "--out", str(tmp_path),
    ])
    assert rc == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "bench.json").read_text())["parts"]["overhead"]["rows"]}
    for method in ("autoregressive", "hispec", "hierarchy"):
        order = [kind for m, kind in calls if m == method]
        # prepare's untimed generations come first; then two timed generations per pass
        assert order[-7:] == ["timed", "timed", "measuring", "timed", "timed", "measuring", "measuring"], method
        row = rows[method]
        passes = row["outside_forwards_async"]["passes"]
        assert len(row["decode_s"]) == 2 and all(d > 0 for d in row["decode_s"]), method
        for k in (0, 1):
            assert passes[k]["paired_slowdown"] == pytest.approx(passes[k]["decode_s"] / row["decode_s"][k] - 1)
        assert passes[2]["paired_slowdown"] is None
        median = row["outside_forwards_async"]["median_pass"]
        assert row["outside_forwards_async"]["gpu_idle_frac"] == passes[median]["gpu_idle_frac"], method
        assert row["outside_forwards_async"]["paired_slowdown"] == passes[median]["paired_slowdown"], method
        assert all(p["event_pair_host_us"] is None for p in passes), method  # no CUDA events on CPU
        counts = host_probe.preemptions() is not None  # Linux counts a thread's preemptions
        assert all(isinstance(p["preemptions"], int) and p["preemptions"] >= 0 if counts else p["preemptions"] is None
                   for p in passes), method
        waits = host_probe.cpu_wait_s() is not None  # Linux's run delay: each pass's wait for a CPU
        assert all(p["cpu_wait_s"] >= 0 if waits else p["cpu_wait_s"] is None for p in passes), method
        if waits:  # the timed passes' waits as run.py's summary takes them, and their share of each pass
            assert len(row["cpu_wait_share_passes"]) == 2 and all(0 <= w < 1 for w in row["cpu_wait_share_passes"])


def test_overhead_part_drafts_are_chosen_or_refused_by_name():
    """--overhead-drafts: auto derives a random target's family, '' gives none, named specs are taken
    in order (draft, then mid); a draft of another vocabulary is refused before any timing."""
    import torch

    from hsd_bench.bench.models import load_hf

    bench = load_script("bench_gpu")
    assert bench.overhead_drafts("random:llama-8b", "auto", 32) == [("draft", "random:llama-8b", 4),
                                                                     ("mid", "random:llama-8b", 8)]
    assert bench.overhead_drafts("checkpoints/ee-24x128", "auto", 24) == []  # a checkpoint has no random family
    assert bench.overhead_drafts("random:tiny", "", 8) == []
    assert bench.overhead_drafts("random:tiny", "random:tiny-draft", 8) == [("draft", "random:tiny-draft", None)]
    with pytest.raises(SystemExit):  # a third model has no place: draft, then mid
        bench.parse_args(["--overhead-drafts", "random:tiny,random:tiny,random:tiny"])
    args = bench.parse_args(["--overhead-models", "random:tiny", "--overhead-drafts", "random:llama-1b"])
    with pytest.raises(ValueError, match="vocabulary of 128256, the target random:tiny one of 512"):
        bench.overhead_one(args, "random:tiny", torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="only a random shape takes a layer count"):
        load_hf("checkpoints/ee-24x128", "cpu", torch.float32, layers=2)
    assert load_hf("random:tiny", "cpu", torch.float32, layers=3)[0].config.num_hidden_layers == 3


def test_bench_script_roofline_part_without_transformers_rows(tmp_path):
    """--roofline-hf-reps 0 (what a GPU call with little time passes) gives the native rows alone,
    compared with the engine's AR; it once crashed in the timed passes and cost a GPU row."""
    bench = load_script("bench_gpu")
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "roofline", "--roofline-models", "random:tiny",
        "--variants", "math", "--roofline-hf-reps", "0", "--max-new", "8", "--prompt-len", "8", "--reps", "1",
        "--out", str(tmp_path),
    ])
    assert rc == 0
    model = json.loads((tmp_path / "bench.json").read_text())["parts"]["roofline"]["models"]["random:tiny"]
    assert "error" not in model, model
    rows = {r["name"]: r for r in model["rows"]}
    assert set(rows) == {"[tiny] native AR loop (math)", "[tiny] native AR engine (math)"}
    assert all(r["backend"] == "native" and r["parity_vs_hf_ar"] is None for r in rows.values())
    assert rows["[tiny] native AR loop (math)"]["parity_vs_same_backend_ar"] == 1.0  # float32: loop = engine


@pytest.mark.parametrize("argv, message", [
    (["--reps", "0"], "--reps=0 must be >= 1"),
    (["--roofline-hf-reps", "-1"], "--roofline-hf-reps=-1 must be >= 0"),
    (["--hf-reps", "0"], "--hf-reps=0 must be >= 1"),
    (["--overhead-passes", "0"], "--overhead-passes=0 must be >= 1"),
    (["--attention-rows", "0"], "--attention-rows=0 must be in [1, 16]"),
    (["--attention-rows", "17"], "--attention-rows=17 must be in [1, 16]"),
])
def test_bench_script_rejects_bad_counts_early(argv, message, capsys):
    bench = load_script("bench_gpu")
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert message in capsys.readouterr().err


def test_attention_rows_are_set_before_any_model_and_recorded(tmp_path, monkeypatch):
    """``--attention-rows`` sets how many positions of a step the attention kernel takes before a
    model is built (its steps are captured with it), and bench.json records what ran."""
    from hsd_bench.models.native import decode_attention

    monkeypatch.setattr(decode_attention, "MAX_ROWS", list(decode_attention.MAX_ROWS))
    bench = load_script("bench_gpu")
    rc = bench.main(["--device", "cpu", "--dtype", "float32", "--parts", "overhead", "--overhead-models",
                     "random:tiny", "--time-limit-s", "1e-9", "--attention-rows", "8", "--out", str(tmp_path)])
    assert rc == 0 and decode_attention.MAX_ROWS == [8]
    assert json.loads((tmp_path / "bench.json").read_text())["info"]["attention_rows"] == 8


def test_overhead_part_time_limit_skips_models(tmp_path):
    bench = load_script("bench_gpu")
    rc = bench.main(["--device", "cpu", "--dtype", "float32", "--parts", "overhead", "--overhead-models",
                     "random:tiny,random:tiny-draft", "--time-limit-s", "1e-9", "--out", str(tmp_path)])
    assert rc == 0
    part = json.loads((tmp_path / "bench.json").read_text())["parts"]["overhead"]
    assert "skipped" in part and "time limit" in part["skipped"]
    assert "skipped: time limit" in (tmp_path / "bench.md").read_text()
    # inside the part: models that would start after the deadline are skipped, one by one
    args = bench.parse_args(["--overhead-models", "random:tiny,random:tiny-draft"])
    import torch

    doc = bench.part_overhead(args, torch.device("cpu"), torch.float32, deadline=time.perf_counter() - 1)
    assert set(doc["models"]) == {"random:tiny", "random:tiny-draft"}
    assert all("time limit" in m["skipped"] for m in doc["models"].values()) and doc["rows"] == []


# -- the timers ------------------------------------------------------------------
def _tiny_native():
    import torch

    from hsd_bench.bench.models import load_hf
    from hsd_bench.models.native import from_hf_model

    hf, _ = load_hf("random:tiny", "cpu", torch.float32, seed=0)
    return from_hf_model(hf, max_context=64)


class _SlowBookkeeping:
    """Adds host time *outside* model calls: a sleep in every truncate (the engine truncates every round)."""

    def __init__(self, model, delay_s: float):
        self._model, self._delay = model, delay_s

    def __getattr__(self, name):
        return getattr(self._model, name)

    def embed(self, ids):
        return self._model.embed(ids)

    def run_layers(self, hidden, start, end, first_pos):
        return self._model.run_layers(hidden, start, end, first_pos)

    def logits(self, hidden):
        return self._model.logits(hidden)

    def reset(self):
        return self._model.reset()

    def cache_len(self, layer):
        return self._model.cache_len(layer)

    def truncate(self, start, end, length):
        time.sleep(self._delay)
        return self._model.truncate(start, end, length)


def _hispec_with_bookkeeping_delay():
    """``build(wrap, delay)``: hispec on a tiny native model whose truncations sleep ``delay``
    seconds (host time between model calls), and two prompts to run it on."""
    from hsd_bench.methods import MethodSpec, build_engine

    native = _tiny_native()
    spec = MethodSpec("hispec", exit=[1, 2], draft_len=2, period=4)

    def build(wrap, delay=0.0):
        model = wrap(native)
        return build_engine(spec, _SlowBookkeeping(model, delay) if delay else model, load_other=None)

    return build, [[5, 6, 7, 8, 9, 10], [11, 12, 13]]


def test_the_timeline_puts_the_time_between_calls_on_the_hand_over_that_holds_it():
    """Sleeps in the engine's bookkeeping between two calls (a cache truncation after each
    verification) are device-idle time; the timeline attributes it to transitions between named
    calls -- a HiSpec middle level's layer range told apart from the top's -- and its total is the
    outside time between calls, no more."""
    from hsd_bench.bench.instrument import EventTimer, Timeline
    from hsd_bench.bench.runs import _instrumented_pass, engine_outside_forwards

    build, prompts = _hispec_with_bookkeeping_delay()
    for delay in (0.0, 0.003):
        timeline = Timeline()
        _, timers, totals = _instrumented_pass(lambda wrap: build(wrap, delay), EventTimer, prompts, 10, False,
                                               timeline=timeline)
        between = sum(sec for _, sec in timeline.idle.values())
        outside = totals["decode_s"] - sum(t.seconds for t in timers)
        assert 0.0 < between <= outside + 1e-6
        labels = {label for pair in timeline.idle for label in pair}
        # the middle and the top level's verifications (segment and head as one call), by range
        assert {"model.run_layers_greedy[1:2]", "model.run_layers_greedy[2:8]"} <= labels, labels
        if delay:
            # every sleep lies between two calls: the gaps hold at least most of them
            truncations = sum(c for c, _ in timeline.idle.values())
            assert between > 0.5 * delay * min(truncations, 10)
    top = engine_outside_forwards(lambda wrap: build(wrap, 0.003), prompts, 10)["idle_by_transition"]
    assert 0 < len(top) <= 6 and top == sorted(top, key=lambda w: -w["s"])
    assert all(0.0 <= w["share"] <= 1.0 and w["count"] > 0 for w in top)


def test_event_timer_cpu_fallback_sees_engine_time_outside_calls():
    from hsd_bench.bench.instrument import EventTimer
    from hsd_bench.bench.runs import engine_outside_forwards

    build, prompts = _hispec_with_bookkeeping_delay()
    native = _tiny_native()
    fast = engine_outside_forwards(build, prompts, 10)
    slow = engine_outside_forwards(lambda wrap: build(wrap, delay=0.002), prompts, 10)
    for m in (fast, slow):
        assert 0.0 < m["model_busy_s"] <= m["decode_s"]
        assert 0.0 < m["host_probe_us"] < 1e5  # the host's state for the pass (host_probe.py)
    assert slow["model_calls"] == fast["model_calls"]  # same rounds, same calls
    # the sleeps are host time outside model calls: more idle, not more busy
    assert slow["outside_s"] - fast["outside_s"] > 0.5 * 0.002 * 10
    assert slow["gpu_idle_frac"] > fast["gpu_idle_frac"]
    assert isinstance(EventTimer(native), EventTimer)


def test_a_measuring_pass_counts_its_preemptions_around_its_generations_only(monkeypatch):
    """Each measuring pass carries the timing thread's preemptions while its generations ran, summed
    over prompts, as the timed passes count theirs: on a loaded GPU host the timed passes were
    preempted 0-30 times a pass while a measuring pass beside them ran 29-55 % slower (fifty-sixth
    run), and only the measuring pass's own count says whether it lost time slices. Work between
    the generations (the timers' collection) is not counted; a platform without the count says None."""
    from hsd_bench import host_probe
    from hsd_bench.bench import runs

    build, prompts = _hispec_with_bookkeeping_delay()
    counter, per_generation = [0], iter([3, 4])
    monkeypatch.setattr(host_probe, "preemptions", lambda: counter[0])
    monkeypatch.setattr(host_probe, "cpu_wait_s", lambda: counter[0] / 1000)  # waits taken as the counts are
    original = runs.Timeline.collect

    def collect(self):  # between two generations: must not be counted
        counter[0] += 100
        return original(self)

    monkeypatch.setattr(runs.Timeline, "collect", collect)

    def counted_build(wrap):
        engine = build(wrap)
        generate = engine.generate
        engine.generate = lambda *a, **k: (counter.__setitem__(0, counter[0] + next(per_generation)),
                                           generate(*a, **k))[1]
        return engine

    record = runs.outside_forwards_pass(counted_build, prompts, 10)
    assert record["preemptions"] == 7 and record["cpu_wait_s"] == pytest.approx(0.007)
    summary = runs.outside_forwards_summary([record, {**record, "preemptions": 2, "cpu_wait_s": 0.5}])
    assert [p["preemptions"] for p in summary["passes"]] == [7, 2]
    assert [p["cpu_wait_s"] for p in summary["passes"]] == pytest.approx([0.007, 0.5])
    monkeypatch.setattr(host_probe, "preemptions", lambda: None)
    monkeypatch.setattr(host_probe, "cpu_wait_s", lambda: None)
    plain = runs.outside_forwards_pass(build, prompts, 10)
    assert plain["preemptions"] is None and plain["cpu_wait_s"] is None


def test_the_outside_share_is_the_median_of_several_passes_each_listed():
    """On a host-bound model one instrumented pass meets one host state (HiSpec on the 5.6 M model:
    5.7 % in one call, 18.0 % in another). With several passes the figure is the median pass's, and
    every pass is listed in the order it ran: a pass made slow by host time between calls (here a
    sleep in the bookkeeping of the first pass only) shows in the list and the range, not in the figure."""
    from hsd_bench.bench.runs import engine_outside_forwards

    build, prompts = _hispec_with_bookkeeping_delay()
    delays = iter([0.004, 0.0, 0.0])
    measured = engine_outside_forwards(lambda wrap: build(wrap, next(delays)), prompts, 10, passes=3)
    shares = [p["gpu_idle_frac"] for p in measured["passes"]]
    assert len(shares) == 3
    assert shares[0] == max(shares)  # the slow pass, first in run order
    assert measured["gpu_idle_frac"] == sorted(shares)[1] < shares[0]
    assert measured["gpu_idle_frac_range"] == [min(shares), max(shares)]
    chosen = next(p for p in measured["passes"] if p["gpu_idle_frac"] == measured["gpu_idle_frac"])
    assert measured["model_busy_s"] == chosen["model_busy_s"] and measured["decode_s"] == chosen["decode_s"]
    assert {p["tokens"] for p in measured["passes"]} == {measured["tokens"]}  # greedy: one workload
    # an even count reports the upper of the two middle passes: never the kinder half
    delays = iter([0.004, 0.0, 0.0, 0.004])
    even = engine_outside_forwards(lambda wrap: build(wrap, next(delays)), prompts, 10, passes=4)
    assert even["gpu_idle_frac"] == sorted(p["gpu_idle_frac"] for p in even["passes"])[2]
    with pytest.raises(ValueError, match="passes=0"):
        engine_outside_forwards(build, prompts, 10, passes=0)


def test_the_outside_share_at_the_timed_passes_rate():
    """The cross-check divides the passes' median busy time by the timed passes' decode time: a timed
    run twice as long as the busy time is half outside, one no longer than it is none."""
    from hsd_bench.bench.runs import outside_at_rate

    outside = {"passes": [{"model_busy_s": 1.0}, {"model_busy_s": 3.0}, {"model_busy_s": 2.0}]}
    assert outside_at_rate(outside, 4.0) == pytest.approx(0.5)
    assert outside_at_rate(outside, 2.0) == pytest.approx(0.0)
    assert outside_at_rate({"model_busy_s": 1.0}, 4.0) == pytest.approx(0.75)  # a one-pass record
    assert outside_at_rate(outside, None) is None


def test_the_methods_table_says_how_far_the_reported_pass_ran_from_the_timed_rate_and_how_long_it_waited():
    """On a host-bound row the outside share follows how much slower its instrumented pass ran than
    the timed passes (the forty-third GPU run: 4.69 % + 0.29 x that slowdown, pass by pass), so the
    table prints it beside the share from 5 % on, either way, and not below; and how long that pass's
    thread waited for a CPU, past ``host_probe.CPU_WAIT_SHARE`` of its decode time."""
    from hsd_bench import host_probe
    from hsd_bench.bench.report import markdown

    def outside_cell(outside: dict) -> str:
        row = {"name": "ours hierarchy", "backend": "native", "tokens_per_s": 1.0, "decode_tokens_per_s": 1.0,
               "speedup_vs_same_backend_ar": 1.0, "mean_accepted_len": 2.9, "parity_vs_same_backend_ar": 1.0,
               "outside_forwards_async": outside}
        head, _, line = markdown([row]).splitlines()
        return line.split("|")[[c.strip() for c in head.split("|")].index("outside forwards (async)")].strip()

    spread = {"gpu_idle_frac": 0.085, "gpu_idle_frac_range": [0.079, 0.087]}
    assert outside_cell({**spread, "instrumented_slowdown": 0.129}) == "8.5% (7.9-8.7%; pass 13% slower)"
    assert outside_cell({**spread, "instrumented_slowdown": 0.049}) == "8.5% (7.9-8.7%)"
    assert outside_cell({**spread, "instrumented_slowdown": None}) == "8.5% (7.9-8.7%)"
    one_pass = {"gpu_idle_frac": 0.043, "gpu_idle_frac_range": [0.043, 0.043]}
    assert outside_cell({**one_pass, "instrumented_slowdown": -0.06}) == "4.3% (pass 6% faster)"
    assert outside_cell(one_pass) == "4.3%"
    # the fifty-eighth GPU run's HiSpec row: its median measuring pass waited 28 ms of 320 for a CPU
    loaded = {"gpu_idle_frac": 0.126, "gpu_idle_frac_range": [0.044, 0.314], "decode_s": 0.320, "cpu_wait_s": 0.028}
    assert outside_cell(loaded) == "12.6% (4.4-31.4%; pass waited 28 ms for a CPU)"
    share = host_probe.CPU_WAIT_SHARE
    assert outside_cell({**one_pass, "decode_s": 1.0, "cpu_wait_s": share * 0.99}) == "4.3%"  # under 2 %: not said
    assert outside_cell({**one_pass, "decode_s": 1.0, "cpu_wait_s": share * 1.01}) == "4.3% (pass waited 20 ms for a CPU)"


def test_timers_count_only_the_decode_phase():
    from hsd_bench.bench.instrument import EventTimer, PhaseGate
    from hsd_bench.engine import DecodingConfig
    from hsd_bench.methods import MethodSpec, build_engine

    native = _tiny_native()
    gated, ungated = EventTimer(native, PhaseGate()), EventTimer(native)
    calls = {}
    for name, timer in (("gated", gated), ("ungated", ungated)):
        engine = build_engine(MethodSpec("autoregressive"), timer, load_other=None)
        engine.on_phase = timer._gate
        g = engine.generate(list(range(1, 9)), 6, DecodingConfig())
        calls[name] = timer.calls
        if name == "gated":
            assert timer._gate.phase == "done"
            assert 0.0 < timer.collect() <= g.stats.decode_s
    assert 0 < calls["gated"] < calls["ungated"], calls  # the prefill's calls are not counted


class _PlainBackend:
    """A fake LayeredModel without optional fast paths, to check the wrappers' attribute handling."""

    name, num_layers, vocab_size, max_context = "fake", 2, 8, 16
    device = "cpu"

    def __init__(self):
        self.seen = []

    def embed(self, ids):
        return ids

    def run_layers(self, hidden, start, end, first_pos):
        return hidden

    def logits(self, hidden):
        return hidden


class _Backend(_PlainBackend):
    """... and one with a fast path (a sleep, so its time is visible)."""

    def greedy_draft(self, *args, **kwargs):
        self.seen.append((args, kwargs))
        time.sleep(0.001)
        return "drafted"


@pytest.mark.parametrize("timer_name", ["EventTimer", "CallTimer"])
def test_wrappers_time_optional_fast_paths_only_when_present(timer_name):
    from hsd_bench.bench import instrument

    timer_cls = getattr(instrument, timer_name)
    fast = timer_cls(_Backend())
    assert hasattr(fast, "greedy_draft") and not hasattr(fast, "greedy_tokens")
    assert fast.greedy_draft(1, k=2) == "drafted"
    assert fast._model.seen == [((1,), {"k": 2})]
    assert fast.calls == 1 and fast.collect() >= 0.001  # the fast path is a model call
    assert fast.num_layers == 2 and fast.name == "fake"  # plain attributes pass through

    # the wrapper is built once and kept: later lookups add no host time between two calls
    assert fast.greedy_draft is fast.greedy_draft and "greedy_draft" in vars(fast)
    assert fast.greedy_draft(3) == "drafted" and fast.calls == 2
    fast._gate = instrument.PhaseGate()  # a closed gate (phase None): the kept wrapper stops counting
    assert fast.greedy_draft(4) == "drafted" and fast.calls == 2 and len(fast._model.seen) == 3

    plain = timer_cls(_PlainBackend())
    assert not hasattr(plain, "greedy_draft")  # the engine probes with hasattr: no phantom fast path
    assert not hasattr(plain, "greedy_draft")  # ... and still not on a second probe
    assert plain.logits("h") == "h" and plain.calls == 1


def test_same_vocabulary_compares_ids_not_sizes():
    from hsd_bench.bench.models import same_vocabulary

    class Tok:
        def __init__(self, vocab):
            self.vocab = vocab

        def get_vocab(self):
            return dict(self.vocab)

    a = Tok({"a": 0, "b": 1})
    assert same_vocabulary(a, Tok({"b": 1, "a": 0})) is True
    assert same_vocabulary(a, Tok({"a": 1, "b": 0})) is False  # same size, different ids
    assert same_vocabulary(a, None) is None


def test_session_script_parses():
    import subprocess

    script = ROOT / "scripts" / "gpu_bench_session.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "set -euo pipefail" in text and "--parts" in text and "TORCHINDUCTOR_CACHE_DIR" in text


def test_native_loop_outputs_are_cut_where_the_engine_stops(codec):
    """The bare loop runs all max_new tokens (no stop check, timed so); its outputs, cut by the
    engine's stop rule, must equal the engine's AR on a workload with stop sequences -- uncut,
    a loop that runs past a stop was classified as diverging from AR (ninth GPU run)."""
    from conftest import make_model

    from hsd_bench.bench.runs import engine_run, native_loop
    from hsd_bench.methods import MethodSpec, build_engine
    from hsd_bench.models.native import from_hf_model

    model = from_hf_model(make_model("llama", num_layers=2, seed=3).hf_model, max_context=128)
    prompts = [codec.encode("def f(x):"), codec.encode("import os")]
    free = native_loop("loop", model, prompts, 24, reps=1)
    stop = (codec.decode(free.outputs[0][6:8]),)  # text the first prompt's output holds mid-way
    loop = native_loop("loop", model, prompts, 24, reps=1, stop=stop, codec=codec)
    engine = build_engine(MethodSpec("autoregressive"), model, load_other=None, target_codec=codec)
    ar = engine_run("ar", engine, "autoregressive", prompts, 24, 1, stop, codec)
    assert loop.outputs == ar.outputs
    assert len(loop.outputs[0]) < 24 and loop.tokens == 2 * 24  # cut for parity, timed over every token


def test_lookahead_both_measures_each_method_again_without_it():
    from conftest import make_model

    from hsd_bench.models.native import from_hf_model

    bench = load_script("bench_gpu")
    specs = bench.engine_specs(4, 2, 1, 2, 3, 2, 4, draft=False)
    assert bench.method_names(specs, "on") == list(specs)
    assert bench.method_names(specs, "both") == [
        "autoregressive", "autoregressive" + bench.NO_AHEAD, "layerskip", "layerskip" + bench.NO_AHEAD,
        "hispec", "hispec" + bench.NO_AHEAD]
    # --methods: AR, the baseline of every ratio, and the named ones, in the table's order
    assert bench.method_names(specs, "both", ["hispec"]) == [
        "autoregressive", "autoregressive" + bench.NO_AHEAD, "hispec", "hispec" + bench.NO_AHEAD]
    with pytest.raises(ValueError, match="--methods: 'nope' is not one of autoregressive, layerskip, hispec"):
        bench.method_names(specs, "on", ["nope"])
    assert bench.method_list("hispec,hierarchy") == ["hispec", "hierarchy"]
    with pytest.raises(argparse.ArgumentTypeError, match="'hispek': name methods among autoregressive"):
        bench.method_list("hispek")  # refused by the parser, before any model loads
    target = from_hf_model(make_model("llama", num_layers=4, seed=1).hf_model, max_context=64)
    assert bench.build_method(specs, "layerskip", target, None).lookahead
    assert not bench.build_method(specs, "layerskip" + bench.NO_AHEAD, target, None).lookahead
    label = bench.engine_label("hispec" + bench.NO_AHEAD, 2, 1, 2, 3, 2, 4)
    assert label == bench.engine_label("hispec", 2, 1, 2, 3, 2, 4) + " (no look-ahead)"


@pytest.mark.parametrize("method", ["layerskip", "hispec", "vanilla_sd", "autoregressive"])
def test_every_step_a_greedy_run_replays_is_inside_a_timed_model_call(method):
    """The engine-overhead measure counts as "outside forwards" whatever runs outside the model
    calls the wrappers time: a backend fast path the wrappers pass through untimed would turn its
    device time into engine overhead. With the native backend's fixed-shape steps (a CPU stand-in
    for the graph cache), every step replayed while decoding must run inside a timed call."""
    import torch

    from hsd_bench.bench.instrument import _TimedModel
    from hsd_bench.engine import DecodingConfig
    from hsd_bench.methods import MethodSpec, build_engine
    from tests.test_native_backend import VOCAB, make_hf_model
    from hsd_bench.models.native.graphs import RecordingGraphs
    from tests.test_native_fused_greedy import native

    inside, outside = [0], []

    class Flagging(_TimedModel):
        def _timed(self, fn, *args, **kwargs):
            inside[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                inside[0] -= 1

    class Checked(RecordingGraphs):
        checking = False

        def run(self, key, fn):
            if self.checking and not inside[0]:
                outside.append(key[0])
            return super().run(key, fn)

    spec = {"layerskip": MethodSpec("layerskip", exit=2, draft_len=3),
            "hispec": MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3),
            "vanilla_sd": MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"),
            # chunks of 4, each queued before the one before it is read (launch_next_round)
            "autoregressive": MethodSpec("autoregressive", ar_chunk=4)}[method]
    models = [native(make_hf_model("llama_gqa", num_layers=3, seed=21)),
              native(make_hf_model("llama_gqa", num_layers=1, seed=22))]
    for m in models:
        m._graphs = Checked()
    timed = [Flagging(m) for m in models]
    engine = build_engine(spec, timed[0], load_other=lambda _p: (timed[1], None))
    engine.prepare(60, greedy=True)
    for m in models:
        m._graphs.checking = True
    prompt = torch.randint(0, VOCAB, (7,), generator=torch.Generator().manual_seed(4)).tolist()
    gen = engine.generate(prompt, 40, DecodingConfig())
    replayed = sum(len(m._graphs.replays) for m in models)
    assert replayed > 0 and outside == [], (method, sorted(set(outside)))
    assert gen.stats.draft_calls_ahead > 0, method  # the look-ahead's launches were among them


@pytest.mark.parametrize("method", ["hispec", "autoregressive"])
def test_the_instrumented_passes_decode_what_the_timed_passes_decoded(codec, method):
    """An overhead share describes the timed run only if its pass decodes the same tokens: with
    the timed passes' stop sequences both instrumented passes stop where they stop. (They used
    to decode past every stop sequence to max_new -- another workload, whose drafts accept
    differently: on an H200 the hierarchy's such pass ran 41-64 % slower than its timed ones.)"""
    from conftest import make_model

    from hsd_bench.bench.runs import engine_overheads, engine_run
    from hsd_bench.methods import MethodSpec, build_engine
    from hsd_bench.models.native import from_hf_model

    model = from_hf_model(make_model("llama", num_layers=4, seed=3).hf_model, max_context=128)
    spec = MethodSpec(method, exit=[1, 2], draft_len=2, period=4) if method == "hispec" else MethodSpec(method)
    prompts = [codec.encode("def f(x):"), codec.encode("import os")]
    free = engine_run("free", build_engine(spec, model, None, codec), method, prompts, 24, 1)
    stop = (codec.decode(free.outputs[0][6:8]),)  # text the first prompt's output holds mid-way
    timed = engine_run("timed", build_engine(spec, model, None, codec), method, prompts, 24, 1, stop, codec)
    assert timed.tokens < free.tokens  # the stop cuts the first sample
    overheads = engine_overheads(lambda wrap: build_engine(spec, wrap(model), None, codec), prompts, 24, stop, codec)
    for measure in ("outside_forwards_async", "host_serial"):
        assert overheads[measure]["tokens"] == timed.tokens, measure
    unstopped = engine_overheads(lambda wrap: build_engine(spec, wrap(model), None, codec), prompts, 24)
    assert unstopped["outside_forwards_async"]["tokens"] == free.tokens


def test_device_traces_run_after_every_timed_pass(tmp_path, monkeypatch):
    """--device-trace: every row's traced pass runs only after the last timed pass of the process (a
    trace leaves the profiler attached and slows the launches after it), and each row then carries
    its own trace's result -- the rows are rewritten, not left with the placeholder."""
    bench = load_script("bench_gpu")
    calls = []
    engine_run, idle = bench.engine_run, bench.decode_device_idle

    def timed(label, engine, method, *args, **kwargs):
        calls.append(("timed", method))
        return engine_run(label, engine, method, *args, **kwargs)

    def traced(build, prompts, max_new, stop=(), codec=None):
        calls.append(("traced", None))
        out = idle(build, prompts, max_new, stop, codec)
        return {**out, "skipped": f"trace {sum(kind == 'traced' for kind, _ in calls)}"}

    monkeypatch.setattr(bench, "engine_run", timed)
    monkeypatch.setattr(bench, "decode_device_idle", traced)
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "overhead", "--overhead-models", "random:tiny",
        "--overhead-prompts", "1", "--overhead-max-new", "6", "--prompt-len", "8", "--reps", "1",
        "--overhead-passes", "1", "--device-trace", "--out", str(tmp_path),
    ])
    assert rc == 0
    kinds = [kind for kind, _ in calls]
    assert kinds.count("timed") == 5 and kinds.count("traced") == 5, calls
    assert kinds.index("traced") > max(i for i, kind in enumerate(kinds) if kind == "timed"), calls
    doc = json.loads((tmp_path / "bench.json").read_text())
    rows = [r for r in doc["parts"]["overhead"]["rows"] if r["method"] != "autoregressive(loop)"]
    # each row was rewritten with its own trace, in the order the rows were timed
    assert [r["device_trace"]["skipped"] for r in rows] == [f"trace {i}" for i in range(1, 6)], rows
    assert "trace_seconds" in doc


def test_a_stopped_process_says_which_rows_were_not_traced(monkeypatch):
    """A trace that would start past the time limit leaves its row saying so, and the row is
    rewritten all the same."""
    bench = load_script("bench_gpu")
    monkeypatch.setattr(bench, "decode_device_idle", lambda *a, **k: pytest.fail("traced past the deadline"))

    class Result:
        extra = {"device_trace": {"skipped": bench.NOT_TRACED}}
        decode_tokens_per_s = 1.0

    refreshed = []
    job = bench.PendingTrace("row", "hispec", None, [], 1, (), None, Result(), lambda: refreshed.append(1))
    bench.run_traces([job], deadline=0.0)
    assert job.result.extra["device_trace"]["skipped"].startswith(bench.NOT_TRACED)
    assert "time limit" in job.result.extra["device_trace"]["skipped"] and refreshed == [1]


@pytest.mark.parametrize("rounds", [0, 12])
def test_a_traced_row_has_its_split_unless_its_rounds_ran_in_conditional_nodes(monkeypatch, rounds):
    """``trace_row`` reads the traced pass at the timed rate; a row whose engine ran rounds inside
    CUDA conditional nodes keeps the idle share and says why it has no split (trace.at_timed_rate)."""
    bench = load_script("bench_gpu")
    traced = {"device_idle_frac": 0.47, "window_s": 1.18, "busy_s": 0.6256, "idle_within_launches_s": 0.1872,
              "windows": 8, "decode_tokens_per_s": 700.0}
    monkeypatch.setattr(bench, "decode_device_idle", lambda *a, **k: dict(traced))
    logged = []
    monkeypatch.setattr(bench, "log", logged.append)

    class Result:
        extra = {"device_trace": {"skipped": bench.NOT_TRACED}, "guarded_rounds_on_device": rounds}
        decode_tokens_per_s = 1100.0
        kept_decode_s = 0.7566

    job = bench.PendingTrace("row", "hierarchy", lambda *a: None, [], 1, (), None, Result(), lambda: None)
    bench.trace_row(job)
    shares = job.result.extra["device_trace"]
    assert shares["idle_at_timed_rate"] == pytest.approx(1 - 0.6256 / 0.7566)
    if rounds:
        assert shares["between_launches_at_timed_rate"] is None and shares["split_left_out"] == "conditional nodes"
        assert "no split between and inside launches (12 rounds ran in CUDA conditional nodes" in logged[0], logged
    else:
        assert shares["between_launches_at_timed_rate"] < 0 and "split_left_out" not in shares
        assert "between launches and" in logged[0], logged


def test_the_benchmark_warns_of_the_host_state_as_run_py_does(tmp_path, monkeypatch):
    """The benchmark times as run.py does, so a row run.py would flag -- passes across host states,
    passes whose rates spread, a method timed in another state than its AR -- is flagged in bench.md
    by the same rule (host_probe.state_warnings), each row against its own backend's AR."""
    from hsd_bench import host_probe
    from hsd_bench.bench import report

    calls = iter(range(10_000))
    # every probe 1.5x the one before: any row's two passes straddle host states
    monkeypatch.setattr(host_probe, "round_trip_us", lambda device="cpu": 10.0 * 1.5 ** (next(calls) % 12))
    bench = load_script("bench_gpu")
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "methods", "--target", "random:tiny",
        "--methods", "hispec", "--no-hf", "--prompts", "1", "--prompt-len", "8", "--methods-max-new", "8", "--reps", "2",
        "--out", str(tmp_path),
    ])
    assert rc == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["parts"]["methods"]["rows"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["ours hispec E=1,2 N_d=2 N_i=4"]["same_backend_ar"] == "ours AR"
    for r in rows:  # each pass's rate: the row's tokens over that pass's wall time, as run.py's summary
        assert r["tokens_per_s_passes"] == [r["tokens_per_rep"] / w for w in r["wall_s"]], r["name"]
    expected = report.state_warnings(rows)
    assert any(w.startswith("ours hispec E=1,2 N_d=2 N_i=4's timed passes ran in different host states")
               for w in expected), expected
    warned = [line for line in (tmp_path / "bench.md").read_text().splitlines() if line.startswith("warning:")]
    assert warned == [f"warning: {w} (docs/performance.md, rule 6)" for w in expected]


def test_state_warnings_group_rows_by_their_backends_ar():
    """Each row is judged against its own backend's AR and its passes' rates (tokens over each pass's
    wall time), with host_probe.state_warnings' wording."""
    from hsd_bench import host_probe
    from hsd_bench.bench import report

    def row(name, ar, probes, walls):  # as report.summarize writes one
        return {"name": name, "same_backend_ar": ar, "tokens_per_rep": 100, "wall_s": walls,
                "tokens_per_s_passes": [100 / w for w in walls],
                "host_probe_us_passes": probes, "host_probe_us": sorted(probes)[len(probes) // 2]}

    rows = [row("ours AR", "ours AR", [12.0, 12.1, 12.2], [0.030, 0.030, 0.031]),
            row("ours hispec", "ours AR", [12.0, 12.3, 12.1], [0.040, 0.052, 0.041]),  # rates 30 % apart
            row("HF eager AR", "HF eager AR", [20.0, 20.5, 20.1], [0.5, 0.5, 0.5]),
            row("HF assisted", "HF eager AR", [20.0, 20.2, 20.1], [0.4, 0.4, 0.4])]
    assert report.state_warnings(rows) == [
        "ours hispec's timed passes decoded 1923.1-2500.0 tok/s, 30 % apart: the host's speed moved within the "
        "job, where its host probes read one state; its tokens/s keeps each sample's median pass"]
    # HF's probes (20 µs) lie more than 1.25x from ours AR's, but each backend is judged against its own AR
    assert host_probe.state_warnings({"x": {"host_probe_us": 20.1}, "ours AR": {"host_probe_us": 12.1}}, "ours AR")
