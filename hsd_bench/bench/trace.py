"""The device's own idle share while an engine decodes, from a kernel trace.

Why a third measure: the outside-forwards share (``instrument.EventTimer``) times model
*calls* with CUDA events. Where a host-bound engine's own host work sits inside a call -- the
native backend's static-input copies, fills and graph replays -- the device reaches the call's
start event and then waits through that work, and the wait counts as busy. The twenty-fifth GPU
run saw it: HiSpec's and the hierarchy's instrumented passes spent more time inside calls than
their timed passes took in all (docs/performance.md). A kernel trace sees what the device ran:
busy is the union of the kernels, copies and fills that ran while the engine decoded, idle is
the rest, wherever the host was at the time.

How the decode phase is found on the device: the engine's ``on_phase`` hook launches a marker
kernel (``torch.cuda._sleep``, a spin kernel no decode path launches) when decoding starts and
when it stops. The device runs the marks in stream order, so each generation's decode window is
``[end of its start mark, start of its end mark]``; device work of the prefill still running at
the start mark lies before it. The trace is torch.profiler's (CUDA activity only, no host op
recording), exported as a Chrome trace, whose ``kernel``/``gpu_memcpy``/``gpu_memset`` events
carry device timestamps in microseconds.

The tracer costs host time too (a record per launch and runtime call), and on a host-bound model
that is most of what the traced pass's own idle share measures: on the shipped 5.6 M model its
passes ran 26-87 % slower than the timed ones (the twenty-sixth GPU run). The device's work is the
same kernels for the same tokens either way, so the figure to read is :func:`at_timed_rate`: the
trace's busy time against the timed passes' decode time. The pass's own share and decode rate are
kept beside it. Off CUDA there is no asynchronous device to trace, and the measure says so
instead of a number.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from hsd_bench import host_probe
from hsd_bench.bench.runs import PLAN_COUNTERS, add_plan

MARK = "spin_kernel"  # the name torch.cuda._sleep's kernel carries in a trace
DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
WAIT_NAME_CHARS = 80  # a kernel's name as the waits list it (templated names run to hundreds)
# Namespaces and the return type a templated kernel's name repeats: dropped before the cut, so
# that what is left names the kernel's functor (the thirtieth run's waits listed
# "elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<a" -- every elementwise op alike).
NAME_NOISE = ("void ", "at::native::", "(anonymous namespace)::", "at::cuda::")
TOP_WAITS = 6


class PhaseMarks:
    """An ``Engine.on_phase`` hook that launches a mark when decoding starts and when it stops.

    ``launch`` issues one mark on the device (default: a one-cycle ``torch.cuda._sleep``);
    ``marks`` counts them, ``"start"`` and ``"end"`` in the order they were launched.
    """

    def __init__(self, launch: Callable[[], None] | None = None):
        self._launch = launch or (lambda: torch.cuda._sleep(1))
        self._decoding = False
        self.marks: list[str] = []

    def __call__(self, phase: str) -> None:
        if (phase == "decode") == self._decoding:
            return
        self._decoding = phase == "decode"
        self._launch()
        self.marks.append("start" if self._decoding else "end")


def decode_windows(events: list[dict]) -> list[tuple[float, float]]:
    """The decode windows (µs) between consecutive start and end marks of a Chrome trace's events."""
    marks = sorted((e for e in events if e.get("cat") == "kernel" and MARK in e.get("name", "")),
                   key=lambda e: e["ts"])
    if not marks or len(marks) % 2:
        raise ValueError(f"{len(marks)} phase marks ({MARK!r} kernels) in the trace: a decode window needs a "
                         "start and an end mark")
    return [(start["ts"] + start.get("dur", 0.0), end["ts"]) for start, end in zip(marks[::2], marks[1::2])]


def short_name(name: str) -> str:
    """A device event's name as the waits list it: without :data:`NAME_NOISE`, cut at
    :data:`WAIT_NAME_CHARS` characters."""
    for noise in NAME_NOISE:
        name = name.replace(noise, "")
    return name[:WAIT_NAME_CHARS]


class IdleSplit(NamedTuple):
    """Idle microseconds inside the decode windows by what the device waited for (:func:`sweep`)."""

    within: float  # between two kernels of one launch: a graph replay's own node scheduling
    between: float  # between launches: the host's next launch, or a window's edges
    waits: dict[str, tuple[float, int]]  # ``between`` by the work that ended the wait: (µs, gaps)
    inside_waits: dict[str, tuple[float, int]]  # ``within`` by the kernel that ended the gap: (µs, gaps)


class Sweep(NamedTuple):
    """What one pass over a trace's device events inside the decode windows finds (:func:`sweep`)."""

    busy: float  # µs during which the device ran at least one kernel, copy or fill
    split: IdleSplit | None  # the rest of the windows by what the device waited for; None without ids


END_OF_DECODE = "(end of decode)"  # the wait from the last work to a window's end mark


def sweep(events: list[dict], windows: list[tuple[float, float]]) -> Sweep:
    """One pass over the device events (kernels, copies, fills; marks excluded) inside ``windows``.

    Busy time counts overlapping work -- kernels launched early, copies beside kernels -- once.
    The idle is split by what the device waited for: the next kernel of the same launch (the same
    ``correlation`` id in the event's args) or the host's next launch, each also by the name of
    the work that ended the gap (a fill's memset, a copy, a graph's first kernel; inside a launch,
    the graph node the device was slow to start). No split where a device event carries no
    correlation id.

    Why the split: the trace's idle share counts the device's own gaps inside a captured graph,
    which no host work can remove, beside the gaps the engine's host work leaves. Only the second
    is the engine's overhead; the tracer's host cost stretches it, not the first
    (:func:`at_timed_rate`). What ended a wait says which host work it waited for; what ended a
    gap inside a launch, which of a graph's nodes cost the device its own time.
    """
    spans = sorted(((e["ts"], e["ts"] + e.get("dur", 0.0), (e.get("args") or {}).get("correlation"),
                     short_name(e.get("name", "?")))
                    for e in events if e.get("cat") in DEVICE_CATEGORIES and MARK not in e.get("name", "")),
                   key=lambda span: span[:2])
    busy = within = between = 0.0
    waits: dict[str, tuple[float, int]] = {}
    inside: dict[str, tuple[float, int]] = {}

    def wait(into: dict, name: str, us: float) -> None:
        total, n = into.get(name, (0.0, 0))
        into[name] = (total + us, n + 1)

    for lo, hi in windows:
        end, owner = lo, None  # how far the device was busy, and the launch of the work that ended last
        for s, t, corr, name in spans:
            if t <= lo or s >= hi:
                continue
            s, t = max(s, lo), min(t, hi)
            if s > end:
                if owner is not None and corr == owner:
                    within += s - end
                    wait(inside, name, s - end)
                else:
                    between += s - end
                    wait(waits, name, s - end)
            if t > end:
                busy += t - max(s, end)
                end, owner = t, corr
        if hi > end:
            between += hi - end
            wait(waits, END_OF_DECODE, hi - end)
    ids = all(corr is not None for _, _, corr, _ in spans)
    return Sweep(busy, IdleSplit(within, between, waits, inside) if ids else None)


def largest(gaps: dict[str, tuple[float, int]], top: int = TOP_WAITS) -> list[list]:
    """The ``top`` largest entries of :class:`IdleSplit`'s ``waits`` or ``inside_waits`` as
    ``[name, seconds, gaps]`` rows, largest first."""
    return [[name, us / 1e6, n] for name, (us, n) in sorted(gaps.items(), key=lambda kv: -kv[1][0])[:top]]


def at_timed_rate(traced: dict, decode_s: float | None, conditional_rounds: int = 0) -> dict:
    """The device's idle share in the timed passes from a traced pass (:func:`decode_device_idle`)
    and their kept decode time ``decode_s`` (``RunResult.kept_decode_s``):

    * ``idle_at_timed_rate`` -- ``1 - busy_s / decode_s``;
    * ``within_launches_at_timed_rate`` -- the gaps inside launches (:func:`sweep`), a
      graph replay's own, over ``decode_s``;
    * ``between_launches_at_timed_rate`` -- the rest: the device waiting for the host's launches,
      the engine's overhead as the device sees it.

    Each is None where its inputs are missing. For a run with ``conditional_rounds`` (rounds
    launched inside CUDA conditional nodes, ``guarded_rounds_on_device``) the two split shares are
    None and ``split_left_out`` says why (below).

    Why: the tracer's host cost stretches the gaps between launches, not the kernels nor the gaps
    inside one launch, so those carry over to the untraced passes; and unlike the events'
    ``outside_at_rate`` the busy time does not count the device waiting inside a model call for
    the host's copies, fills and replays. Where the two agree (AR, whose calls hold little host
    work: 0.274 s traced against 0.280 s by events on the 5.6 M model, the twenty-sixth GPU run),
    the trace's kernel times are the untraced ones; a value below zero would say the kernels
    themselves ran longer under the tracer -- or the gaps inside a launch did: inside launches
    holding CUDA conditional nodes they grow under the tracer (the thirty-fifth GPU run: the
    hierarchy's 0.15-0.20 s traced against 0.07-0.10 s without the nodes, the difference -3 to
    -17 %), so a run with such rounds gets no split.
    """
    busy, within = traced.get("busy_s"), traced.get("idle_within_launches_s")
    idle = 1.0 - busy / decode_s if decode_s and busy is not None else None
    if conditional_rounds:
        return {"idle_at_timed_rate": idle, "within_launches_at_timed_rate": None,
                "between_launches_at_timed_rate": None, "split_left_out": "conditional nodes"}
    inside = within / decode_s if decode_s and within is not None else None
    return {
        "idle_at_timed_rate": idle,
        "within_launches_at_timed_rate": inside,
        "between_launches_at_timed_rate": idle - inside if idle is not None and inside is not None else None,
    }


def decode_device_idle(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int,
                       stop: tuple[str, ...] = (), codec=None) -> dict:
    """One traced pass over ``prompts`` (``build(wrap)`` as for the instrumented passes, models
    unwrapped): ``device_idle_frac = 1 - busy / window`` over the decode windows, with the window
    and busy seconds, the pass's decode time and rate, and the host probe before it. Off CUDA,
    ``{"skipped": why}``."""
    from torch.profiler import ProfilerActivity, profile

    from hsd_bench.engine import DecodingConfig

    engine = build(lambda model: model)
    if engine.device.type != "cuda":
        return {"skipped": f"a kernel trace needs a CUDA device, the engine runs on {engine.device.type}"}
    marks = PhaseMarks()
    engine.on_phase = marks
    probe = host_probe.round_trip_us(engine.device)
    decode_s, tokens, plan = 0.0, 0, dict.fromkeys(PLAN_COUNTERS, 0)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for p in prompts:
            g = engine.generate(p, max_new, DecodingConfig(), stop_sequences=stop, tokenizer=codec)
            decode_s += g.stats.decode_s
            tokens += g.stats.n_generated
            add_plan(plan, g.stats)
        torch.cuda.synchronize(engine.device)
    engine.on_phase = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text()).get("traceEvents", [])
    windows = decode_windows(events)
    window_us = sum(hi - lo for lo, hi in windows)
    busy_us, split = sweep(events, windows)
    return {
        # the idle split by launch (sweep), seconds; None where the trace has no correlation ids
        "idle_within_launches_s": None if split is None else split.within / 1e6,
        "idle_between_launches_s": None if split is None else split.between / 1e6,
        # the gaps between launches and inside them by the work that ended them, largest first:
        # [name, s, gaps]
        "waits_before": None if split is None else largest(split.waits),
        "gaps_inside_before": None if split is None else largest(split.inside_waits),
        "device_idle_frac": 1.0 - busy_us / window_us if window_us > 0 else None,
        "window_s": window_us / 1e6,
        "busy_s": busy_us / 1e6,
        "windows": len(windows),
        "device_events": sum(e.get("cat") in DEVICE_CATEGORIES for e in events),
        # what the tracer's device events carry, so a trace without correlation ids says why
        "device_event_args": sorted(next((e.get("args") or {} for e in events if e.get("cat") == "kernel"), {})),
        "decode_s": decode_s,
        "tokens": tokens,
        "plan": plan,  # what it queued ahead: the timed passes' plan, or it traced another
        "decode_tokens_per_s": tokens / decode_s if decode_s > 0 else None,  # with the tracer's own cost
        "host_probe_us": probe,
    }
