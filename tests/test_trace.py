"""hsd_bench/bench/trace.py: the device's idle share during decode from a kernel trace.

The trace itself needs a GPU; here, the parts that decide the number: which intervals are the
decode windows, how overlapping device work is counted, and that the engine's phase hook marks
exactly one window per generation."""

from __future__ import annotations

import pytest

from hsd_bench.bench.trace import MARK, PhaseMarks, busy_in, decode_device_idle, decode_windows


def kernel(ts: float, dur: float, name: str = "gemv", cat: str = "kernel") -> dict:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}


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
    assert busy_in(events, windows) == pytest.approx(40.0 + 10.0 + 5.0 + 38.0)


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
