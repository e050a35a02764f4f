"""hsd_bench/bench/trace.py: the device's idle share during decode from a kernel trace.

The trace itself needs a GPU; here, the parts that decide the number: which intervals are the
decode windows, how overlapping device work is counted, and that the engine's phase hook marks
exactly one window per generation."""

from __future__ import annotations

import pytest

from hsd_bench.bench.report import markdown
from hsd_bench.bench.trace import (END_OF_DECODE, MARK, WAIT_NAME_CHARS, PhaseMarks, at_timed_rate, decode_device_idle,
                                   decode_windows, largest, short_name, sweep)


def kernel(ts: float, dur: float, name: str = "gemv", cat: str = "kernel", launch: int = 0) -> dict:
    """A device event of the launch ``launch`` (its correlation id: a graph replay's kernels share one)."""
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": {"correlation": launch}}


def mark(ts: float) -> dict:
    return kernel(ts, 2.0, f"at::cuda::(anonymous namespace)::{MARK}(long)")


def test_windows_lie_between_paired_marks_and_busy_counts_overlap_once():
    events = [
        kernel(0.0, 50.0),  # the prefill, before the first window
        mark(100.0),  # window 1: [102, 200]
        kernel(110.0, 30.0), kernel(120.0, 30.0),  # overlapping (a kernel launched early): 110-150 once
        kernel(160.0, 10.0, "memcpy", cat="gpu_memcpy"),
        kernel(195.0, 20.0),  # runs past the end mark's start: clipped at 200
        mark(200.0),
        kernel(230.0, 10.0),  # between two generations: outside every window
        mark(300.0),  # window 2: [302, 352]
        kernel(300.0, 40.0),  # began with the mark: clipped at 302
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaGraphLaunch", "ts": 310.0, "dur": 40.0},  # host side
        mark(352.0),
    ]
    windows = decode_windows(events)
    assert windows == [(102.0, 200.0), (302.0, 352.0)]
    assert sweep(events, windows).busy == pytest.approx(40.0 + 10.0 + 5.0 + 38.0)


@pytest.mark.parametrize("marks", [[], [mark(1.0)], [mark(1.0), mark(5.0), mark(9.0)]])
def test_unpaired_marks_are_an_error_not_a_number(marks):
    with pytest.raises(ValueError, match="phase marks"):
        decode_windows(marks + [kernel(3.0, 1.0)])


def test_the_phase_hook_marks_each_generation_once(codec):
    """Through the engine's own on_phase calls: a start mark when decoding begins, an end mark when
    the generation is done, for every method's loop (AR and a hierarchy of levels)."""
    from conftest import make_model

    from hsd_bench.engine import DecodingConfig
    from hsd_bench.methods import MethodSpec, build_engine
    from hsd_bench.models.native import from_hf_model

    model = from_hf_model(make_model("llama", num_layers=4, seed=3).hf_model, max_context=128)
    for spec in (MethodSpec("autoregressive"), MethodSpec("hispec", exit=[1, 2], draft_len=2, period=4)):
        launched = []
        marks = PhaseMarks(launch=lambda: launched.append(1))
        engine = build_engine(spec, model, None, codec)
        engine.on_phase = marks
        for prompt in ("def f(x):", "import os"):
            engine.generate(codec.encode(prompt), 12, DecodingConfig())
        assert marks.marks == ["start", "end", "start", "end"], spec.name
        assert len(launched) == 4


def test_off_cuda_the_trace_says_why_instead_of_a_number(codec):
    from conftest import make_model

    from hsd_bench.methods import MethodSpec, build_engine
    from hsd_bench.models.native import from_hf_model

    model = from_hf_model(make_model("llama", num_layers=2, seed=3).hf_model, max_context=64)
    out = decode_device_idle(lambda wrap: build_engine(MethodSpec("autoregressive"), wrap(model), None, codec),
                             [codec.encode("x = 1")], 4)
    assert set(out) == {"skipped"} and "CUDA" in out["skipped"]


def test_a_wait_names_the_kernel_s_functor_not_only_its_template():
    """Every elementwise op's kernel starts with the same 80 characters of template; the waits
    drop the namespaces first, so the names still tell a broadcast add from a copy."""
    add = ("void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<"
           "at::native::CUDAFunctor_add<long> >(at::TensorIteratorBase&, at::native::CUDAFunctor_add<long> const&)"
           "::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<long> >)")
    copy = add.replace("CUDAFunctor_add<long>", "direct_copy_kernel_cuda<long>")
    assert short_name(add).startswith("elementwise_kernel<128, 2, gpu_kernel_impl_nocast<CUDAFunctor_add<long>")
    assert short_name(add) != short_name(copy) and add[:WAIT_NAME_CHARS] == copy[:WAIT_NAME_CHARS]
    assert len(short_name(add)) == WAIT_NAME_CHARS and short_name("gemv") == "gemv"
    events = [mark(0.0), kernel(10.0, 5.0, add, launch=1), kernel(30.0, 5.0, copy, launch=2), mark(50.0)]
    waits = sweep(events, decode_windows(events)).split.waits
    assert set(waits) == {short_name(add), short_name(copy), END_OF_DECODE}


def test_idle_splits_into_gaps_inside_one_launch_and_gaps_between_launches():
    events = [
        mark(0.0),  # window [2, 100]
        kernel(5.0, 10.0, launch=1),  # 3 µs from the window's start: between launches
        kernel(17.0, 10.0, launch=1),  # 2 µs inside launch 1 (a graph's next node)
        kernel(20.0, 30.0, launch=2),  # launched early: overlaps, no gap; launch 2 now ends last (at 50)
        kernel(45.0, 3.0, launch=1),  # inside the busy span: no gap, the owner stays launch 2
        kernel(52.0, 8.0, launch=2),  # 2 µs inside launch 2
        kernel(70.0, 10.0, "fill", cat="gpu_memset", launch=3),  # 10 µs waiting for the host's fill
        mark(100.0),  # 20 µs from the last work to the end mark: between launches
    ]
    windows = decode_windows(events)
    busy, split = sweep(events, windows)
    assert (split.within, split.between) == (pytest.approx(4.0), pytest.approx(3.0 + 10.0 + 20.0))
    assert split.within + split.between == pytest.approx(98.0 - busy)  # every idle µs, once
    # each wait between launches, by the work that ended it: the host's fill, the first kernel, the end
    assert split.waits == {"fill": (pytest.approx(10.0), 1), "gemv": (pytest.approx(3.0), 1),
                           END_OF_DECODE: (pytest.approx(20.0), 1)}
    assert split.inside_waits == {"gemv": (pytest.approx(4.0), 2)}  # launch 1's and launch 2's second kernels
    assert largest(split.waits, top=2) == [[END_OF_DECODE, pytest.approx(20e-6), 1], ["fill", pytest.approx(10e-6), 1]]
    no_ids = [{k: v for k, v in e.items() if k != "args"} if e["name"] == "gemv" else e for e in events]
    assert sweep(no_ids, windows) == (pytest.approx(busy), None)  # the busy time needs no ids


def test_the_idle_share_at_the_timed_rate_takes_the_traces_device_times_against_the_timed_decode():
    # A traced pass slowed by the tracer: its own window says 60 % idle, but the device's work was
    # 0.3 s of the timed passes' 0.5 s, so they left it idle 40 % of their decode time, 5 points
    # of it inside launches.
    traced = {"device_idle_frac": 0.6, "window_s": 0.75, "busy_s": 0.3, "idle_within_launches_s": 0.025}
    shares = at_timed_rate(traced, 0.5)
    assert shares["idle_at_timed_rate"] == pytest.approx(0.4)
    assert shares["within_launches_at_timed_rate"] == pytest.approx(0.05)
    assert shares["between_launches_at_timed_rate"] == pytest.approx(0.35)
    # kernels longer under the tracer: shown as they are, not clipped
    assert at_timed_rate(traced, 0.25)["idle_at_timed_rate"] == pytest.approx(-0.2)
    assert set(at_timed_rate(traced, None).values()) == {None}
    assert set(at_timed_rate({"error": "no phase marks"}, 0.5).values()) == {None}
    assert at_timed_rate({**traced, "idle_within_launches_s": None}, 0.5)["between_launches_at_timed_rate"] is None


def test_a_run_with_rounds_in_conditional_nodes_gets_the_idle_share_without_its_split():
    """Inside launches holding CUDA conditional nodes the tracer stretches the gaps the split
    subtracts (the thirty-fifth GPU run read it -3 to -17 %): the total stays, the split goes."""
    traced = {"device_idle_frac": 0.47, "window_s": 1.18, "busy_s": 0.6256, "idle_within_launches_s": 0.1872}
    assert at_timed_rate(traced, 0.7566)["between_launches_at_timed_rate"] < 0  # what it would read
    shares = at_timed_rate(traced, 0.7566, conditional_rounds=12)
    assert shares == {"idle_at_timed_rate": pytest.approx(1 - 0.6256 / 0.7566), "within_launches_at_timed_rate": None,
                      "between_launches_at_timed_rate": None, "split_left_out": "conditional nodes"}


def test_the_methods_table_shows_the_traced_idle_at_the_timed_rate():
    row = {"name": "ours hispec", "backend": "native", "tokens_per_s": 1.0, "decode_tokens_per_s": 1.0,
           "speedup_vs_same_backend_ar": 1.0, "mean_accepted_len": 3.0, "parity_vs_same_backend_ar": 1.0,
           "device_trace": {"device_idle_frac": 0.6, "busy_s": 0.3, "idle_at_timed_rate": 0.4,
                            "between_launches_at_timed_rate": 0.35}}
    head, _, traced, failed = markdown([row, {**row, "device_trace": {"error": "no phase marks"}}]).splitlines()
    column = [c.strip() for c in head.split("|")].index("device idle (trace)")
    assert traced.split("|")[column].strip() == "40.0% (35.0%)"
    assert failed.split("|")[column].strip() == "–"


def test_a_row_with_rounds_in_conditional_nodes_has_no_between_launch_split():
    """The split subtracts the traced gaps inside launches from the untraced idle; inside launches
    holding CUDA conditional nodes the tracer stretches those gaps (the thirty-fifth GPU run read
    -3 to -17 %), so a row that ran such rounds shows the idle share alone and says why."""
    row = {"name": "ours hierarchy", "backend": "native", "tokens_per_s": 1.0, "decode_tokens_per_s": 1.0,
           "speedup_vs_same_backend_ar": 1.0, "mean_accepted_len": 2.4, "parity_vs_same_backend_ar": 1.0,
           "guarded_rounds_on_device": 12,
           "device_trace": {"device_idle_frac": 0.47, "busy_s": 0.63, "idle_at_timed_rate": 0.173,
                            "between_launches_at_timed_rate": None, "split_left_out": "conditional nodes"}}
    plain_trace = {**row["device_trace"], "between_launches_at_timed_rate": -0.074, "split_left_out": None}
    head, _, nodes, plain = markdown([row, {**row, "guarded_rounds_on_device": 0,
                                            "device_trace": plain_trace}]).splitlines()
    column = [c.strip() for c in head.split("|")].index("device idle (trace)")
    assert nodes.split("|")[column].strip() == "17.3% (no split: conditional nodes)"
    assert plain.split("|")[column].strip() == "17.3% (-7.4%)"
