"""Counting and timing model calls, to split decode time into model vs engine.

Two wrappers around a ``LayeredModel`` (``models/base.py``) time every *model
call* -- ``embed``, ``run_layers``, ``logits`` and the optional backend fast
paths in ``OPTIONAL_FORWARD_METHODS`` when the wrapped model has them --
and pass everything else through. Given a :class:`PhaseGate` installed as
``Engine.on_phase``, they count only calls made while the engine decodes
(prefill excluded, as in the engine's ``decode_s``).

``EventTimer`` -- the engine-overhead number of issue 7
    On CUDA it records a pair of ``torch.cuda.Event(enable_timing=True)`` on
    the model's current stream around each call, *without synchronising*,
    and reads the pairs' elapsed times only after the generation (one sync).
    The host keeps queueing work as in an uninstrumented run, so its Python
    overlaps the device's work exactly as it would without the timer. The
    sum of the intervals is the device time spent inside model calls
    ("busy"); ``1 - busy / decode_s`` is the share of decode wall time the
    device spends *outside* model forwards: the engine's cost as a user
    sees it under asynchronous dispatch (CUDA graphs replayed from the host).
    It includes the engine's own device kernels (argmax, verification,
    token writes, ``torch.cat`` of hidden states) and every stall where the
    device waits for the host (a ``.tolist()`` that drains the queue, Python
    that is slower than the forwards it launches). An interval runs from
    when the stream *reaches* the start event to when it reaches the end
    event, so it also contains any stall inside one call (a backend
    launching kernels one by one): that is the backend's cost, attributed to
    the model, not to the engine. Events are recorded on the stream that
    was current when the timer was built (the default stream in the
    benchmark; the native backend replays its graphs on the current
    stream): work on other streams is not seen.

    Caveat: the timer itself costs host time -- two ``cudaEventRecord``
    calls per model call, ~4 µs per pair on the H100 host
    (``event_pair_host_s`` measures it; the benchmark before every measuring
    pass) -- which can only make the device wait *more* when the host is the
    bottleneck, so the async figure is, if anything, pessimistic: HiSpec's
    measuring passes on the 5.6 M model ran a median 3.9 % slower than the
    timed pass just before each on an unloaded host, 3.6 µs a pair (the
    fifty-fifth GPU run). The benchmark reports the instrumented
    pass's decode rate next to the clean one (``decode_tokens_per_s`` inside
    ``outside_forwards_async``), so the distortion is visible. For the same reason the
    wrappers keep their fast-path closures (no new one per lookup) and leave the timeline's
    labels to be formatted after the generation: host time between two calls is what the
    share counts.

    On CPU every call is synchronous, so it falls back to ``perf_counter``
    around calls: busy is host time inside model calls and the rest is the
    engine's Python.

``CallTimer`` -- the host-serial overhead (an upper bound)
    Synchronises the device before and after every call, so nothing
    overlaps: the time outside calls is *all* of the engine's host work, as
    if none of it could hide behind the device. It answers "how much host
    time does the engine spend per round" (what to optimise), not "how much
    slower than its forwards is decoding" (the async figure), and the syncs
    themselves add latency to every call.

``Timeline`` -- where the device waits
    Shared by the ``EventTimer`` of every model of one engine, it keeps the
    calls in the order the host queued them (on one stream, the order the
    device runs them) and attributes each interval *between* two calls --
    the engine's own kernels and any stall -- to that transition, labelled
    ``model.call`` (with the layer range for ``run_layers``: a HiSpec
    middle level's verification and the top's are then told apart). The
    sum over transitions is the async figure's outside time between calls;
    which transition holds it says which hand-over of the engine to work on.

Why an allow-list (``FORWARD_METHODS`` + ``OPTIONAL_FORWARD_METHODS``) and
not "every callable": ``reset``/``truncate``/``cache_len`` are bookkeeping
(on the native backend a host-side length), and the engine probes optional
fast paths with ``hasattr``, so the wrappers expose an optional method only
when the wrapped model has it. A new backend fast path that the engine
calls must be added to ``OPTIONAL_FORWARD_METHODS``, or its device time
counts as engine time.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Iterable

import torch

from hsd_bench.bench.timing import sync

FORWARD_METHODS = ("embed", "run_layers", "logits")  # the LayeredModel protocol's model calls
# fast paths, when present (a backend method that runs a step and is missing here would count as overhead)
OPTIONAL_FORWARD_METHODS = ("greedy_draft", "greedy_tokens", "greedy_draft_rows", "launch_draft_after_verdict",
                            "launch_next_round", "queue_draft_inputs", "queue_catch_up", "run_layers_greedy")


class PhaseGate:
    """The engine's current phase; install it as ``Engine.on_phase``.

    Timers sharing a gate count a call only while the phase is one of
    ``counted`` (default: decoding). One gate per engine: the target's and a
    separate draft's timers then agree on what "decode" means.
    """

    def __init__(self, counted: Iterable[str] = ("decode",)):
        self.counted = frozenset(counted)
        self.phase: str | None = None

    def __call__(self, phase: str) -> None:
        self.phase = phase

    @property
    def open(self) -> bool:
        return self.phase in self.counted


class _TimedModel:
    """A LayeredModel that times its model calls (subclasses say how)."""

    def __init__(self, model, gate: PhaseGate | None = None):
        self._model = model
        self._gate = gate
        self.calls = 0  # counted calls
        self.seconds = 0.0  # time inside counted calls (collected so far)

    def __getattr__(self, name):
        model = self.__dict__.get("_model")
        if model is None:  # during copy/unpickling, before __init__
            raise AttributeError(name)
        attr = getattr(model, name)  # AttributeError when the model lacks it: hasattr() stays truthful
        if name in OPTIONAL_FORWARD_METHODS and callable(attr):
            timed = functools.partial(self._call, attr)
            # Kept on the instance, so the next lookup skips __getattr__ and this wrapping: under
            # asynchronous dispatch a host-bound engine's device waits through the timer's own host
            # time between two calls, which the outside share would then count as the engine's.
            self.__dict__[name] = timed
            return timed
        return attr

    def _call(self, fn: Callable, *args, **kwargs):
        if self._gate is not None and not self._gate.open:
            return fn(*args, **kwargs)
        self.calls += 1
        return self._timed(fn, *args, **kwargs)

    def _timed(self, fn: Callable, *args, **kwargs):
        raise NotImplementedError

    def collect(self) -> float:
        """Total seconds inside counted calls so far."""
        return self.seconds

    # -- the LayeredModel protocol ---------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._call(self._model.embed, ids)

    def run_layers(self, hidden: torch.Tensor, start: int, end: int, first_pos, **rows) -> torch.Tensor:
        return self._call(self._model.run_layers, hidden, start, end, first_pos, **rows)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._call(self._model.logits, hidden)

    def reset(self) -> None:  # the engine resets per prompt; the counters keep running
        return self._model.reset()

    def cache_len(self, layer: int, *row) -> int:
        return self._model.cache_len(layer, *row)

    def truncate(self, start: int, end: int, length: int, **rows) -> None:
        return self._model.truncate(start, end, length, **rows)


class CallTimer(_TimedModel):
    """Host-serial timing: the device is synchronised before and after every call."""

    def _timed(self, fn, *args, **kwargs):
        sync(self._model.device)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sync(self._model.device)
            self.seconds += time.perf_counter() - t0


class Timeline:
    """The decode-phase calls of one engine's models in queue order, and the device time between them.

    Each ``EventTimer`` sharing it adds ``(label, start, end)`` per call: CUDA events, or host
    clock readings on CPU. :meth:`collect` (after a generation, before the timers recycle their
    events) adds every gap between consecutive calls to ``idle[(before, after)]`` as ``[count,
    seconds]``; a generation's first call opens no gap.
    """

    def __init__(self):
        self.entries: list[tuple[str | tuple, object, object]] = []
        self.idle: dict[tuple[str, str], list] = {}

    def add(self, label: str | tuple[str, int, int], start, end) -> None:
        """``label``: ``model.call``, or ``(model.call, start, end)`` for a layer range, formatted only
        in :meth:`collect` -- the host formats nothing between two calls while the device waits."""
        self.entries.append((label, start, end))

    def collect(self) -> None:
        if len(self.entries) > 1 and isinstance(self.entries[0][1], torch.cuda.Event):
            torch.cuda.synchronize()
        entries = [(label if isinstance(label, str) else f"{label[0]}[{label[1]}:{label[2]}]", start, end)
                   for label, start, end in self.entries]
        for (a, _, end), (b, start, _) in zip(entries, entries[1:]):
            gap = end.elapsed_time(start) / 1e3 if isinstance(end, torch.cuda.Event) else start - end
            slot = self.idle.setdefault((a, b), [0, 0.0])
            slot[0] += 1
            slot[1] += max(gap, 0.0)
        self.entries.clear()

    def top(self, n: int, decode_s: float) -> list[dict]:
        """The ``n`` transitions holding the most device time between calls, largest first."""
        rows = sorted(self.idle.items(), key=lambda kv: -kv[1][1])[:n]
        return [{"after": a, "before": b, "count": c, "s": sec, "share": sec / decode_s if decode_s > 0 else None}
                for (a, b), (c, sec) in rows]


RANGED_METHODS = ("run_layers", "run_layers_greedy")  # labelled with their layer range: a HiSpec level's own


class EventTimer(_TimedModel):
    """Asynchronous timing: CUDA event pairs around calls, read after the generation.

    Call :meth:`collect` after each ``generate`` (the engine has synchronised
    by then): it adds the recorded intervals to ``seconds`` and recycles the
    events, so a long run does not accumulate them. With a ``timeline`` each
    call is also added to it in queue order (collect the timeline first).
    """

    def __init__(self, model, gate: PhaseGate | None = None, prealloc: int = 4096, timeline: Timeline | None = None):
        super().__init__(model, gate)
        self._timeline = timeline
        self._device = torch.device(model.device)
        self._cuda = self._device.type == "cuda"
        # CUDA creates an event at its first record: do that now, outside any timed window.
        self._pool = _recorded_pairs(self._device, prealloc) if self._cuda else []
        self._used = 0
        # Looked up once: torch.cuda.current_stream() costs ~6 µs of host time per call on the
        # H100 host, more than the two records. The benchmark runs on the default stream.
        self._stream = torch.cuda.current_stream(self._device) if self._cuda else None
        self._prefixes: dict[str, str] = {}  # method name -> "model.call", built once

    def _label(self, fn: Callable, args: tuple) -> str | tuple[str, int, int]:
        """The call's timeline label: ``model.call``, with ``[start:end]`` for the methods of
        :data:`RANGED_METHODS` (positional ``hidden, start, end``), the formatting left to
        ``Timeline.collect``."""
        name = getattr(fn, "__name__", "call")
        prefix = self._prefixes.get(name)
        if prefix is None:
            prefix = self._prefixes[name] = f"{getattr(self._model, 'name', 'model')}.{name}"
        return (prefix, args[1], args[2]) if name in RANGED_METHODS and len(args) >= 3 else prefix

    def _timed(self, fn, *args, **kwargs):
        if not self._cuda:  # CPU work is synchronous: the host clock is the device clock
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                self.seconds += t1 - t0
                if self._timeline is not None:
                    self._timeline.add(self._label(fn, args), t0, t1)
        if self._used == len(self._pool):
            self._pool.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
        start, end = self._pool[self._used]
        self._used += 1
        start.record(self._stream)
        try:
            return fn(*args, **kwargs)
        finally:
            end.record(self._stream)
            if self._timeline is not None:
                self._timeline.add(self._label(fn, args), start, end)

    def collect(self) -> float:
        """Sum the pending event pairs (one device sync) into ``seconds``; returns ``seconds``."""
        if self._used:
            torch.cuda.synchronize(self._device)
            self.seconds += sum(s.elapsed_time(e) for s, e in self._pool[: self._used]) / 1e3
            self._used = 0
        return self.seconds


def _recorded_pairs(device: torch.device, n: int) -> list[tuple[torch.cuda.Event, torch.cuda.Event]]:
    """``n`` timing event pairs, each recorded once so the CUDA events exist."""
    stream = torch.cuda.current_stream(device)
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for s, e in pairs:
        s.record(stream)
        e.record(stream)
    torch.cuda.synchronize(device)
    return pairs


def event_pair_host_s(device: torch.device | str, n: int = 2000) -> float | None:
    """Host seconds to record one start/end event pair around nothing (the timer's own cost).

    ``None`` off CUDA, where the fallback is two ``perf_counter`` reads.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    pairs = _recorded_pairs(device, n)
    stream = torch.cuda.current_stream(device)
    t0 = time.perf_counter()
    for s, e in pairs:  # what EventTimer does per call
        s.record(stream)
        e.record(stream)
    dt = time.perf_counter() - t0
    torch.cuda.synchronize(device)
    return dt / n
