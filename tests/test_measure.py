"""The one timing discipline (hsd_bench/measure.py) and the shape plan behind it.

On a GPU the native backend captures one CUDA graph per fixed step shape; a
capture inside a timed sample would be timed as decoding. On CPU the same
fixed-shape code runs with a recorder in place of the graph cache, so these
tests check the *plan*: after ``Engine.prepare`` every method, greedy and
sampled, over prompts of several lengths up to the planned length, reaches no
step shape that was not captured -- and still decodes exactly.
"""

from __future__ import annotations

import sys

import pytest
import torch

from hsd_bench import measure
from hsd_bench.engine import DecodingConfig, Generation, GenerationStats
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.graphs import RecordingGraphs
from tests.test_native_backend import VOCAB, make_hf_model


def recorded_native(hf, name="target"):
    model = from_hf_model(hf, name=name, max_context=256, fixed_shapes=True, max_graph_tokens=8, min_kv_bucket=16)
    model._graphs = RecordingGraphs()
    return model


SPECS = [
    MethodSpec("autoregressive"),
    MethodSpec("layerskip", exit=1, draft_len=3),
    MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3),
    MethodSpec("hispec", exit=[1, 3], draft_len=3, period=2, flush_on_mismatch=True),
    MethodSpec("vanilla_sd", draft_len=4, draft_path="draft"),
    MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2}, {"exit": 2, "batch": 3}]),
    MethodSpec("layerskip", exit=1, draft_len=4, draft_stop=0.6),
    MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 3}, {"exit": 2, "batch": 3, "draft_stop": 0.5}],
               draft_stop=0.7),
]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.exit}-{s.flush_on_mismatch}-{s.draft_stop}")
def test_prepare_captures_every_shape_a_run_reaches(spec, temperature):
    hf_target = make_hf_model("llama_gqa", num_layers=4, seed=7)
    hf_draft = make_hf_model("llama_gqa", num_layers=1, seed=8)
    target, draft = recorded_native(hf_target), recorded_native(hf_draft, "draft")
    engine = build_engine(spec, target, load_other=lambda _p: (draft, None))
    decoding = DecodingConfig(temperature=temperature, seed=3)
    gen = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, VOCAB, (n,), generator=gen).tolist() for n in (3, 9, 20)]
    max_new = 40
    engine.prepare(max(len(p) for p in prompts) + max_new, decoding.greedy)
    planned = measure.graph_captures(engine.models)
    assert planned > 0
    for prompt in prompts:
        out = engine.generate(prompt, max_new, decoding)
        assert len(out.output_ids) == max_new
        if decoding.greedy:
            ref = hf_target.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new)
            assert out.output_ids == ref[0, len(prompt):].tolist()
    new = {m.name: set(m._graphs.steps) for m in engine.models}
    assert measure.graph_captures(engine.models) == planned, f"shapes reached but not prepared: {new}"


def test_one_attention_span_after_prepare():
    model = recorded_native(make_hf_model("llama_gqa", num_layers=2))
    model.prepare(100, [(0, 2)], heads=("greedy-head",))
    assert model.fixed_span == 128  # rounded up to 64 slots
    assert {key[-1] for key in model._graphs.steps if key[0] == "layers"} == {128}
    assert model.cache_len(0) == 0  # prepare leaves the cache empty


class FakeDecoder:
    """Captures a graph in its first generation only (a shape prepare() did not plan)."""

    def __init__(self, capture_on_call: int):
        self.graph_captures = 0
        self.calls = 0
        self.capture_on_call = capture_on_call
        self.max_context = 100
        self.device = torch.device("cpu")
        self.prepared = None
        self.lengths = []

    @property
    def models(self):
        return [self]

    def prepare(self, max_len, greedy):
        self.prepared = (max_len, greedy)

    def generate(self, prompt_ids, max_new_tokens, decoding=None, stop_sequences=(), tokenizer=None):
        self.calls += 1
        self.lengths.append(len(prompt_ids))
        if self.calls == self.capture_on_call:
            self.graph_captures += 1
        return Generation([1] * max_new_tokens, GenerationStats(n_generated=max_new_tokens, wall_s=float(self.calls)))


def test_a_generation_that_captured_is_timed_again():
    decoder = FakeDecoder(capture_on_call=1)
    timed = measure.timed_generate(decoder, [1, 2], 5, DecodingConfig())
    assert timed.retimed and timed.graph_captures == 0 and decoder.calls == 2
    assert timed.generation.stats.wall_s == 2.0  # the second, capture-free timing is kept
    clean = measure.timed_generate(decoder, [1, 2], 5, DecodingConfig())
    assert not clean.retimed and decoder.calls == 3


def test_prepare_plans_the_longest_sequence_and_warms_up_untimed():
    decoder = FakeDecoder(capture_on_call=0)
    seconds = measure.prepare([decoder], [[1] * 5, [1] * 30], 40, DecodingConfig())
    assert decoder.prepared == (70, True)
    assert decoder.lengths == [30, 5] and seconds >= 0.0  # full length on the longest, then every other length


def test_prepare_prefills_every_prompt_length_once_untimed():
    """A prefill shape first seen inside a timed sample costs 0.06-0.6 s on an H200 (measured):
    prepare must meet every prompt length of the run, each once, each decoder."""
    a, b = FakeDecoder(capture_on_call=0), FakeDecoder(capture_on_call=0)
    prompts = [[1] * 7, [2] * 12, [3] * 7, [4] * 3, [5] * 12, [6] * 40]
    measure.prepare([a, b], prompts, 8, DecodingConfig())
    for d in (a, b):
        assert d.lengths[0] == 40 and sorted(d.lengths[1:]) == [3, 7, 12]
    # longer than the context: warmed as the decoder will see it (truncated), once
    assert measure.prefill_warmups([[1] * 200, [2] * 300, [3] * 5], 100) == [[3] * 5, [1] * 98]


class RecompilingDecoder(FakeDecoder):
    """A decoder whose step is a ``torch.compile`` function met at a new shape on the first call."""

    def __init__(self):
        super().__init__(capture_on_call=0)
        self.step = torch.compile(lambda x: x * 2 + 1, backend="eager", dynamic=False)
        self.shape = 3

    def generate(self, prompt_ids, max_new_tokens, decoding=None, stop_sequences=(), tokenizer=None):
        self.step(torch.zeros(self.shape))
        return super().generate(prompt_ids, max_new_tokens, decoding, stop_sequences, tokenizer)


def test_a_generation_that_compiled_is_timed_again():
    decoder = RecompilingDecoder()
    decoder.shape = 5  # unseen: dynamo traces a graph inside the timing
    timed = measure.timed_generate(decoder, [1, 2], 4, DecodingConfig())
    assert timed.retimed and timed.graph_captures == 0 and decoder.calls == 2
    clean = measure.timed_generate(decoder, [1, 2], 4, DecodingConfig())
    assert not clean.retimed and decoder.calls == 3


class StreamDecoder(FakeDecoder):
    def __init__(self):
        super().__init__(capture_on_call=0)
        self.streams = []

    def generate_many(self, prompts, max_new_tokens, decoding=None, stop_sequences=(), tokenizer=None, batch_size=1):
        self.streams.append(([len(p) for p in prompts], batch_size, tuple(stop_sequences)))
        for i, p in enumerate(prompts):
            yield i, self.generate(p, max_new_tokens, decoding)


def test_prepare_at_batch_size_above_one_decodes_the_whole_stream_untimed():
    """Which rows share a ragged step depends on the run's prompts; a shape first met in the
    timed stream cannot be re-timed, so prepare decodes the same stream once first."""
    decoder = StreamDecoder()
    prompts = [[1] * 7, [2] * 12, [3] * 200, [4] * 3]  # 200 >= max_context (100): never decoded
    measure.prepare([decoder], prompts, 8, DecodingConfig(), batch_size=2, stop_sequences=["\n\n"])
    assert decoder.streams[0][:2] == ([98, 98], 2)  # a full batch of the longest prompt (as it fits)
    # then the run's own stream: same batch size, rows stopping where the timed ones will
    assert decoder.streams[1] == ([7, 12, 3], 2, ("\n\n",))


class ScriptedDecoder(FakeDecoder):
    """Wall time and output of each call come from a script: one entry per generate() call."""

    def __init__(self, walls, outputs=None):
        super().__init__(capture_on_call=0)
        self.walls, self.outputs, self.order = list(walls), outputs, []

    def generate(self, prompt_ids, max_new_tokens, decoding=None, stop_sequences=(), tokenizer=None):
        k = self.calls
        self.calls += 1
        self.order.append(prompt_ids[0])
        ids = self.outputs[k] if self.outputs else [prompt_ids[0]] * max_new_tokens
        stats = GenerationStats(n_generated=len(ids), wall_s=self.walls[k], prefill_s=self.walls[k] / 10,
                                layer_evals={"m": len(ids)})
        return Generation(ids, stats)


def test_passes_run_over_all_prompts_in_turn_and_keep_each_prompts_median():
    """A slow stretch of the host should land in one pass, not in every repeat of one sample:
    the passes go prompt 0, 1, 2, then 0, 1, 2 again; each prompt keeps its median pass."""
    #          pass 1          pass 2          pass 3
    walls = [1.0, 5.0, 2.0, 9.0, 4.0, 2.5, 3.0, 6.0, 7.0]
    decoder = ScriptedDecoder(walls)
    out = dict(measure.timed_passes(decoder, [[10], [11], [12]], 4, DecodingConfig(), repeats=3))
    assert decoder.order == [10, 11, 12] * 3
    assert [out[i].pass_wall_s for i in range(3)] == [[1.0, 9.0, 3.0], [5.0, 4.0, 6.0], [2.0, 2.5, 7.0]]
    assert [out[i].generation.stats.wall_s for i in range(3)] == [3.0, 5.0, 2.5]
    assert [out[i].generation.stats.prefill_s for i in range(3)] == [0.3, 0.5, 0.25]  # the kept pass's split
    assert all(t.outputs_agree and not t.retimed and t.graph_captures == 0 for t in out.values())


def test_every_timed_generation_of_every_pass_is_reported_as_it_finishes():
    """With several passes the results come at the end; progress must not stand still till then."""
    seen = []
    decoder = ScriptedDecoder([1.0] * 6)
    passes = measure.timed_passes(decoder, [[1], [2]], 2, DecodingConfig(), repeats=3,
                                  on_generation=lambda: seen.append(decoder.calls))
    first = next(passes)
    assert seen == [1, 2, 3, 4, 5, 6] and first[0] == 0  # all six reported before the first result


def test_a_hook_runs_after_every_pass_before_the_next_probe(monkeypatch):
    """``after_pass(k)``: the benchmark's measuring passes run between the timed passes, so each meets
    the host state of the timed pass before it -- after that pass's last generation and before the
    next pass's probe, never inside a pass; one pass gets one call too. Each timing keeps every
    pass's decode time beside its wall time (a measuring pass is paired with its pass's)."""
    events = []
    monkeypatch.setattr(measure.host_probe, "round_trip_us", lambda device: events.append("probe") or 1.0)
    decoder = ScriptedDecoder([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    original = decoder.generate
    decoder.generate = lambda p, *a, **k: (events.append(f"gen{p[0]}"), original(p, *a, **k))[1]
    out = dict(measure.timed_passes(decoder, [[1], [2]], 2, DecodingConfig(), repeats=3,
                                    after_pass=lambda k: events.append(f"after{k}")))
    assert events == ["probe", "gen1", "gen2", "after0", "probe", "gen1", "gen2", "after1",
                      "probe", "gen1", "gen2", "after2"]
    assert out[0].pass_decode_s == pytest.approx([0.9, 2.7, 4.5])  # wall less its prefill (a tenth here)
    assert out[1].pass_decode_s == pytest.approx([1.8, 3.6, 5.4])
    events.clear()
    one = list(measure.timed_passes(ScriptedDecoder([1.0]), [[1]], 2, DecodingConfig(),
                                    after_pass=lambda k: events.append(f"after{k}")))
    assert len(one) == 1 and events == ["probe", "after0"] and one[0][1].pass_decode_s is None


def test_contention_is_taken_around_each_generation_not_while_its_row_is_written(monkeypatch):
    """Each sample carries, per pass, what other threads took from the timing thread while its
    generation ran (``host_probe.contention``: preemptions, seconds waiting for a CPU, moves): the
    readings bracket the generation alone, not the caller's work on the row between two
    generations, and the benchmark's run sums them per pass, with each pass's wait as a share of
    that pass's wall time. A platform that does not count a field leaves its key out."""
    from hsd_bench.bench.runs import decoder_run

    taken = {"preemptions": 0, "cpu_wait_s": 0.0}
    for name in taken:
        monkeypatch.setattr(measure.host_probe, name, lambda name=name: taken[name])
    monkeypatch.setattr(measure.host_probe, "migrations", lambda: None)  # a kernel that does not list them
    decoder = ScriptedDecoder([0.0, 0.0] + [1.0] * 6)  # every timed generation of decoder_run takes 1 s
    original = decoder.generate
    script = [(0, 0.0), (2, 0.25), (5, 0.5), (1, 0.0), (3, 0.125), (4, 0.0)]  # 3 passes x 2 prompts
    per_call = iter(script)

    def generate(*args, **kwargs):
        preempted, waited = next(per_call)
        taken["preemptions"] += preempted
        taken["cpu_wait_s"] += waited
        return original(*args, **kwargs)

    def consumer():  # the row's writing: must not be counted
        taken["preemptions"] += 100
        taken["cpu_wait_s"] += 100.0

    decoder.generate = generate
    out = dict(measure.timed_passes(decoder, [[1], [2]], 2, DecodingConfig(), repeats=3, on_generation=consumer))
    assert [c.preemptions for c in out[0].contention] == [0, 5, 3]  # no consumer's 100s
    assert [c.cpu_wait_s for c in out[1].contention] == [0.25, 0.0, 0.0]
    assert measure.host_probe.contention_passes(out[1].contention) == {
        "preemptions_passes": [2, 1, 4], "cpu_wait_s_passes": [0.25, 0.0, 0.0]}  # no migrations_passes
    decoder.calls, per_call = 0, iter([(0, 0.0), (0, 0.0)] + script)  # prepare's two warm-ups first
    r = decoder_run("x", decoder, "native", "autoregressive", [[1] * 3, [2] * 4], 2, reps=3)  # two lengths: two warm-ups
    assert r.extra["preemptions_passes"] == [2, 6, 7]
    assert r.extra["cpu_wait_s_passes"] == [0.25, 0.5, 0.125]
    assert r.extra["cpu_wait_share_passes"] == pytest.approx([0.125, 0.25, 0.0625])  # each pass: two 1 s generations
    assert r.extra["migrations_passes"] is None
    monkeypatch.setattr(measure.host_probe, "preemptions", lambda: None)  # a platform that does not count
    (_, one), = measure.timed_passes(ScriptedDecoder([1.0]), [[1]], 2, DecodingConfig())
    assert one.contention[0].preemptions is None
    assert "preemptions_passes" not in measure.host_probe.contention_passes(one.contention)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread preemptions and run delay are Linux's")
def test_the_preemption_count_and_the_wait_for_a_cpu_see_another_process_on_the_same_core():
    """``host_probe.preemptions`` counts the calling thread's involuntary context switches and
    ``host_probe.cpu_wait_s`` the time it was runnable but not running: a thread spinning 0.3 s alone
    on its core waits next to nothing; beside a spinning process pinned to the same core the
    scheduler shares the core, so the thread is preempted again and again and waits for a large
    part of the 0.3 s (half, where the two share it evenly)."""
    import os
    import subprocess
    import time

    from hsd_bench import host_probe

    def spin() -> host_probe.Contention:
        start, t0 = host_probe.contention(), time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            pass
        return host_probe.contention_since(start)

    before_affinity = os.sched_getaffinity(0)
    core = min(before_affinity)
    try:
        os.sched_setaffinity(0, {core})
        alone = spin()
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            os.sched_setaffinity(rival.pid, {core})
            time.sleep(0.05)  # the rival runs
            shared = spin()
        finally:
            rival.kill()
            rival.wait()
    finally:
        os.sched_setaffinity(0, before_affinity)
    assert shared.preemptions >= 5, shared
    # alone it waits only where another thread lands on its core (the suite's other worker, seldom)
    assert shared.cpu_wait_s > 0.05 and shared.cpu_wait_s > alone.cpu_wait_s + 0.03, (alone, shared)


def test_one_pass_is_timed_generate_and_an_even_count_keeps_the_lower_middle():
    one = dict(measure.timed_passes(ScriptedDecoder([4.0, 2.0]), [[1], [2]], 3, DecodingConfig()))
    assert [one[i].generation.stats.wall_s for i in range(2)] == [4.0, 2.0] and one[0].pass_wall_s is None
    two = dict(measure.timed_passes(ScriptedDecoder([4.0, 2.0]), [[1]], 3, DecodingConfig(), repeats=2))
    assert two[0].generation.stats.wall_s == 2.0 and two[0].pass_wall_s == [4.0, 2.0]


def test_the_host_is_probed_before_every_pass_and_each_timing_carries_its_passes_probes(monkeypatch):
    """Rule 6: a host-bound method's tokens/s follows the host's speed, so every timing says how
    fast the host was -- probed before each pass (never inside one), on the decoder's device."""
    decoder = ScriptedDecoder([1.0] * 6)
    events = []

    def probe(device):
        events.append(("probe", str(device)))
        return 10.0 * len(events)

    monkeypatch.setattr(measure.host_probe, "round_trip_us", probe)
    original = decoder.generate
    decoder.generate = lambda p, *a, **k: (events.append(("generate", p[0])), original(p, *a, **k))[1]
    out = dict(measure.timed_passes(decoder, [[1], [2]], 2, DecodingConfig(), repeats=3))
    assert [e[0] for e in events] == ["probe", "generate", "generate"] * 3
    assert {e[1] for e in events if e[0] == "probe"} == {"cpu"}
    assert out[0].host_probe_us == out[1].host_probe_us == [10.0, 40.0, 70.0]
    events.clear()
    one = dict(measure.timed_passes(ScriptedDecoder([1.0]), [[1]], 2, DecodingConfig()))  # one pass: one probe
    assert one[0].host_probe_us == [10.0]


def test_the_host_probe_times_a_round_trip_and_allocates_once():
    from hsd_bench import host_probe

    first = host_probe.round_trip_us("cpu")
    scratch = host_probe._SCRATCH["cpu"]
    second = host_probe.round_trip_us(torch.device("cpu"))
    assert 0 < first < 1e5 and 0 < second < 1e5
    assert host_probe._SCRATCH["cpu"] is scratch


def test_the_host_probe_runs_in_and_out_of_inference_mode_whichever_came_first(monkeypatch):
    """The probe keeps one scratch tensor per device, made by its first call. Made under
    ``torch.inference_mode`` it was an inference tensor, and every later probe outside the mode
    failed updating it in place (an instrumented pass after a test that probed in the mode)."""
    from hsd_bench import host_probe

    monkeypatch.setattr(host_probe, "_SCRATCH", {})
    with torch.inference_mode():
        inside = host_probe.round_trip_us("cpu")
    outside = host_probe.round_trip_us("cpu")
    with torch.inference_mode():
        again = host_probe.round_trip_us("cpu")
    assert all(0 < t < 1e5 for t in (inside, outside, again))
    assert not host_probe._SCRATCH["cpu"].is_inference()


def test_passes_that_decode_different_tokens_are_flagged():
    decoder = ScriptedDecoder([1.0, 1.0], outputs=[[5, 6], [5, 7]])
    (_, timed), = measure.timed_passes(decoder, [[1]], 2, DecodingConfig(), repeats=2)
    assert not timed.outputs_agree


def test_passes_at_batch_size_above_one_repeat_the_stream():
    decoder = StreamDecoder()
    out = dict(measure.timed_passes(decoder, [[1] * 3, [2] * 4], 2, DecodingConfig(), repeats=3, batch_size=2))
    assert len(decoder.streams) == 3 and sorted(out) == [0, 1]
    assert all(len(t.pass_wall_s) == 3 for t in out.values())


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3"])
def test_timing_repeats_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match=r"timing_repeats=.* must be an integer >= 1"):
        measure.timing_repeats_for(value, "cpu")


def test_timing_repeats_default_is_three_passes_on_cuda_and_one_elsewhere():
    assert measure.timing_repeats_for(None, "cuda") == 3
    assert measure.timing_repeats_for(None, "cpu") == 1
    assert measure.timing_repeats_for(5, "cpu") == 5


def test_the_benchmark_times_with_the_same_passes_as_run_py():
    """bench_gpu's decoder_run and run_job share timed_passes: its tokens/s is all tokens over the
    sum of each prompt's median pass (what run.py's summary computes from its rows)."""
    from hsd_bench.bench.runs import decoder_run

    walls = [0.0, 0.0] + [1.0, 5.0, 9.0, 4.0, 3.0, 6.0]  # prepare's two untimed calls, then 3 passes x 2 prompts
    decoder = ScriptedDecoder(walls)
    r = decoder_run("x", decoder, "native", "autoregressive", [[1] * 3, [2] * 4], 4, reps=3)
    assert decoder.calls == 8
    assert r.wall_s == [6.0, 13.0, 9.0]  # every pass's sum: the spread
    assert r.tokens == 8 and r.tokens_per_s == pytest.approx(8 / (3.0 + 5.0))
    assert r.decode_tokens_per_s == pytest.approx(8 / (0.9 * 8.0))
    # the host probe of each pass, as run.py's rows carry it, and in the benchmark's table
    probes = r.extra["host_probe_us_passes"]
    assert len(probes) == 3 and r.extra["host_probe_us"] == sorted(probes)[1]
    from hsd_bench.bench.report import markdown, summarize

    table = markdown(summarize([r], {"native": r}, None))
    assert table.splitlines()[0].endswith("| host probe |")
    assert table.splitlines()[-1].endswith(f"| {r.extra['host_probe_us']:.1f} µs |")


def test_host_state_warnings_name_mixed_passes_and_a_speedup_across_states():
    """A job's probes two host states apart (the lent H200's were ~1.5x) are said in the log: a
    rate that mixes states, and a speedup whose method and AR ran in different ones."""
    from hsd_bench import host_probe

    steady = {"autoregressive": {"host_probe_us_passes": [16.0, 16.5, 17.0], "host_probe_us": 16.5},
              "hispec": {"host_probe_us_passes": [16.2, 16.8, 16.4], "host_probe_us": 16.4}}
    assert host_probe.state_warnings(steady, "autoregressive") == []
    mixed = {"autoregressive": {"host_probe_us_passes": [16.0, 16.5, 17.0], "host_probe_us": 16.5},
             "vanilla_sd": {"host_probe_us_passes": [25.0, 26.0, 16.0], "host_probe_us": 25.0}}
    warnings = host_probe.state_warnings(mixed, "autoregressive")
    assert len(warnings) == 2
    assert warnings[0].startswith("vanilla_sd's timed passes ran in different host states (host probe 16.0-26.0 µs)")
    assert warnings[1].startswith("vanilla_sd and autoregressive were timed in different host states "
                                  "(host probe 25.0 vs 16.5 µs)")
    assert host_probe.state_warnings({"hispec": {"host_probe_us": 20.0}}, "autoregressive") == []  # no AR, no probes


def test_passes_whose_rates_spread_are_warned_even_where_the_probes_read_one_state():
    """The fifty-seventh GPU run's loaded run.py job: HiSpec's passes 1747-2322 tok/s with its probes
    alike. A spread past RATE_SPREAD is said once per method, and not where the probes already
    named two states; passes within it, or a single pass, say nothing."""
    from hsd_bench import host_probe

    probes = {"host_probe_us_passes": [13.0, 13.2, 14.0], "host_probe_us": 13.2}
    loaded = {"autoregressive": {**probes, "tokens_per_s_passes": [3430.0, 3440.0, 3420.0]},
              "hispec": {**probes, "tokens_per_s_passes": [2322.1, 1747.2, 2238.0]}}
    warnings = host_probe.state_warnings(loaded, "autoregressive")
    assert warnings == ["hispec's timed passes decoded 1747.2-2322.1 tok/s, 33 % apart: the host's speed moved "
                        "within the job, where its host probes read one state; its tokens/s keeps each "
                        "sample's median pass"]
    edge = host_probe.RATE_SPREAD * 2000.0
    within = {"hispec": {**probes, "tokens_per_s_passes": [2000.0, edge * 0.999]}}
    assert host_probe.state_warnings(within, "autoregressive") == []
    past = {"hispec": {**probes, "tokens_per_s_passes": [2000.0, edge * 1.001]}}
    assert len(host_probe.state_warnings(past, "autoregressive")) == 1
    both = {"hispec": {"host_probe_us_passes": [12.0, 24.0], "tokens_per_s_passes": [1700.0, 2300.0]}}
    assert host_probe.state_warnings(both, "autoregressive") == [  # said once, with the rates beside the probes
        "hispec's timed passes ran in different host states (host probe 12.0-24.0 µs; passes 1700.0-2300.0 "
        "tok/s, 35 % apart): its tokens/s mixes them"]
    one_pass = {"hispec": {"host_probe_us_passes": [13.0], "tokens_per_s_passes": [2000.0]}}
    assert host_probe.state_warnings(one_pass, "autoregressive") == []
    no_probes = {"hispec": {"tokens_per_s_passes": [1700.0, 2300.0]}}
    assert host_probe.state_warnings(no_probes, "autoregressive")[0].endswith(
        "moved within the job; its tokens/s keeps each sample's median pass")


def test_a_pass_whose_thread_waited_for_a_cpu_is_warned_with_that_cause():
    """The fifty-eighth GPU run's loaded run.py job: HiSpec's first pass waited 22.6 % of its wall for
    a CPU and decoded 1879.7 tok/s against 2438.0 (its unloaded rate times 0.774, within 1 %). The
    warning names the wait, in place of the spread's unexplained one; a wait under CPU_WAIT_SHARE says
    nothing, past it it is said even where the rates stay within RATE_SPREAD, and with one pass. A
    speedup against AR where either side waited is warned of too: a wait costs a pass what its device
    has not queued, so AR (its next chunk queued) and a speculative method lose unequal shares."""
    from hsd_bench import host_probe

    probes = {"host_probe_us_passes": [11.7, 11.7, 11.8], "host_probe_us": 11.7}
    loaded = {"autoregressive": {**probes, "tokens_per_s_passes": [2852.6, 2867.1, 2494.6],
                                 "cpu_wait_share_passes": [0.0, 0.0, 0.3858]},
              "hispec": {**probes, "tokens_per_s_passes": [1879.7, 2429.3, 2438.0],
                         "cpu_wait_share_passes": [0.2257, 0.0, 0.00004]}}
    assert host_probe.state_warnings(loaded, "autoregressive") == [
        "autoregressive's timing thread waited for a CPU up to 38.6 % of a timed pass (passes 2494.6-2867.1 tok/s, "
        "15 % apart): other threads ran on the run's cores, and a host-bound method's pass loses that share of its "
        "rate; its tokens/s keeps each sample's median pass",
        "hispec's timing thread waited for a CPU up to 22.6 % of a timed pass (passes 1879.7-2438.0 tok/s, 30 % "
        "apart): other threads ran on the run's cores, and a host-bound method's pass loses that share of its rate; "
        "its tokens/s keeps each sample's median pass",
        "hispec's speedup against autoregressive compares passes that waited for a CPU: a pass loses its wait less "
        "the device work it has queued, which differs between methods (on CUDA the native AR's next chunk stays "
        "queued, a speculative method's host reads each verdict before it queues more), so the speedup moves with "
        "the load"]
    # each warning with the method it concerns (run.py counts them per method in its summary)
    assert [name for name, _ in host_probe.method_warnings(loaded, "autoregressive")] == [
        "autoregressive", "hispec", "hispec"]
    # the speedup's line where either side waited, and only there
    speedup = "hispec's speedup against autoregressive"
    unloaded = {name: {**probes, "tokens_per_s_passes": [2850.0, 2860.0, 2855.0], "cpu_wait_share_passes": [0.0] * 3}
                for name in loaded}
    assert host_probe.state_warnings(unloaded, "autoregressive") == []
    for waiting in ("autoregressive", "hispec"):
        one = {**unloaded, waiting: {**unloaded[waiting], "cpu_wait_share_passes": [0.0, 0.05, 0.0]}}
        assert [w for w in host_probe.state_warnings(one, "autoregressive") if w.startswith(speedup)], waiting
    share = host_probe.CPU_WAIT_SHARE
    close = {"hispec": {**probes, "tokens_per_s_passes": [2400.0, 2390.0, 2380.0],
                        "cpu_wait_share_passes": [0.0, share * 0.99, 0.0]}}
    assert host_probe.state_warnings(close, "autoregressive") == []
    waited = {"hispec": {**probes, "tokens_per_s_passes": [2400.0, 2224.0, 2380.0],  # 8 % apart: under RATE_SPREAD
                         "cpu_wait_share_passes": [0.0, 0.075, 0.0]}}
    assert [w.split(":")[0] for w in host_probe.state_warnings(waited, "autoregressive")] == [
        "hispec's timing thread waited for a CPU up to 7.5 % of a timed pass (passes 2224.0-2400.0 tok/s, 8 % apart)"]
    one_pass = {"hispec": {"tokens_per_s_passes": [2000.0], "cpu_wait_share_passes": [share * 1.01]}}
    assert host_probe.state_warnings(one_pass, "autoregressive")[0].startswith(
        "hispec's timing thread waited for a CPU up to 2.0 % of a timed pass: other threads")
