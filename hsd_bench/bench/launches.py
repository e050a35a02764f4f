"""What the host launches per generated token on the graph path, counted without a GPU.

Why: on the small models a round's host work decides how long the device waits (the
twenty-sixth GPU run: HiSpec on the 5.6 M model leaves an H200 idle 30-50 % of its decode time
between launches), and a host's state moves any timing of that work by up to a third between
processes. What the host launches per token -- fills, copies, clones, cats, graph replays, each a
few µs of host time on any machine -- does not move: it is a property of the code, the same on
every machine and in every run, so a change to it can be seen, and kept from coming back, on a
CPU.

How: the native backend's fixed-shape steps (the path a GPU runs) with a graph stand-in
(:class:`~hsd_bench.models.native.graphs.RecordingGraphs`) in place of CUDA graphs. A
``TorchDispatchMode`` sees every ATen op the engine issues; an op that launches device work (not
a view, not an allocation) is counted with the project line that issued it, except inside a
replayed step, whose ops a captured graph runs as one launch: the replay is counted instead.
Reading a value on the host (``item``) is counted apart, as a read; ``tolist`` dispatches no op.
A view (a slice, a select, a reshape) launches nothing but is a dispatcher call all the same, one
to two µs of host time on a GPU host: views are counted apart too, with their lines
(docs/gpu-runs.md, "Thirty-sixth run": HiSpec made 34 per token, now 13).
What only CUDA does is not counted: the copy of each verdict into its pinned host buffer
(``Engine._verdict_host``, about one launch per verification) and the events around it.

:func:`host_time_per_token` is the companion figure: the host's own time per generated token
outside the step replays, on the same path. It is a time, so it moves with the machine (it is not
in any test's assertions); on a CPU it also holds the small ops' own arithmetic. What it is for:
the host work a round adds between the device's steps, read on a CPU, where a GPU's host moves by
up to a third between processes (docs/performance.md, "Engine overhead: what is measured").
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hsd_bench.models.native.graphs import RecordingGraphs

# ops that allocate or describe memory without a kernel
NO_LAUNCH = {"empty", "empty_like", "empty_strided", "detach", "lift_fresh", "alias", "resize_", "set_"}
READS = {"_local_scalar_dense"}  # a value read on the host: a sync on a device
REPLAY = "(graph replay)"
PACKAGE = str(Path(__file__).resolve().parents[1])


def _site() -> str:
    """The innermost project line outside this module on the caller's stack, as ``path:line (function)``."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(PACKAGE) and not path.endswith("launches.py"):
            short = path[len(PACKAGE) + 1:]
            return f"{short}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "(outside hsd_bench)"


@contextmanager
def outer_replays(graphs: Iterable[RecordingGraphs], active: Callable[[], bool],
                  seen: Callable[[float], None]) -> Iterator[Callable[[], bool]]:
    """Within the block, every outermost step replay of the stand-ins made while ``active()`` is
    reported to ``seen`` with the seconds it took; yields a test of whether a replay is running.

    Why one helper: the launch count (:class:`HostLaunches`) and the host's time
    (:func:`host_time_per_token`) draw the same line -- a replay is one launch, and what runs
    inside it (a nested step, its ops) is the graph's work, not the host's. The stand-ins' own
    ``run`` is put back on leaving."""
    graphs = list(graphs)
    runs = [g.run for g in graphs]
    depth = 0

    def wrap(run: Callable) -> Callable:
        def replay(key, fn):
            nonlocal depth
            outer = depth == 0 and active()
            t0 = time.perf_counter() if outer else 0.0
            depth += 1
            try:
                return run(key, fn)
            finally:
                depth -= 1
                if outer:
                    seen(time.perf_counter() - t0)

        return replay

    for g in graphs:
        g.run = wrap(g.run)
    try:
        yield lambda: depth > 0
    finally:
        for g, run in zip(graphs, runs):
            g.run = run


class HostLaunches(TorchDispatchMode):
    """Counts the device launches the host issues, by op and by project line, outside replays of
    the given graph stand-ins (each replay counted once, as :data:`REPLAY`)."""

    def __init__(self, graphs: Iterable[RecordingGraphs]):
        super().__init__()
        self.ops: Counter = Counter()
        self.sites: Counter = Counter()
        self.view_sites: Counter = Counter()  # views made outside replays, by project line
        self.reads = 0
        self.decoding = True  # counting on; per_token turns it on only in the engine's decode phase
        self._graphs = list(graphs)
        self._replays = None
        self._replaying: Callable[[], bool] = lambda: False

    def __enter__(self):
        self._replays = outer_replays(self._graphs, lambda: self.decoding, lambda _s: self._count(REPLAY))
        self._replaying = self._replays.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        self._replays.__exit__(None, None, None)
        self._replays, self._replaying = None, lambda: False
        return super().__exit__(*exc)

    def _count(self, op: str) -> None:
        self.ops[op] += 1
        self.sites[_site()] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.decoding and not self._replaying():
            name = func.overloadpacket.__name__
            if name in READS:
                self.reads += 1
            elif func.is_view:
                # An op that hands back its own input (``to`` the device it is on, ``tolist``'s
                # ``resolve_conj``) makes no view; under inference mode such no-ops reach a dispatch
                # mode (under no_grad they do not), and the count is of views made.
                if not (args and out is args[0]):
                    self.view_sites[_site()] += 1
            elif name not in NO_LAUNCH:
                self._count(name)
        return out

    @property
    def views(self) -> int:
        return sum(self.view_sites.values())

    @property
    def launches(self) -> int:
        return sum(self.ops.values())


def stand_in_graphs(models: Iterable, conditional_nodes: bool = False) -> list[RecordingGraphs]:
    """Put a graph stand-in in every native model that runs fixed-shape steps without CUDA graphs
    (before ``prepare``, which records its steps into it); return the stand-ins.

    ``conditional_nodes``: stand in for CUDA graphs that hold conditional nodes (torch >= 2.12 on a
    GPU: a middle level's guarded rounds are replays). Off by default whatever torch runs here, so
    that a count is the same on every machine: the path of the lent GPUs' torch 2.11, on which
    every count in docs/performance.md and docs/gpu-runs.md was taken."""
    stand_ins = []
    for m in models:
        if getattr(m, "fixed_shapes", False) and getattr(m, "_graphs", None) is None:
            m._graphs = RecordingGraphs(conditional_nodes=conditional_nodes)
        if isinstance(getattr(m, "_graphs", None), RecordingGraphs):
            stand_ins.append(m._graphs)
    return stand_ins


def per_token(engine, graphs: list[RecordingGraphs], prompts: list[list[int]], max_new: int, decoding,
              stop: tuple[str, ...] = (), codec=None, top: int = 12) -> dict:
    """One pass over ``prompts`` under :class:`HostLaunches`, counting in the engine's decode phase only
    (its ``on_phase`` hook; the prompt's prefill is not a round's work): launches, replays, reads and
    views per generated token, the ``top`` ops and project lines by launches per token, the ``top``
    lines by views per token, and the steps recorded during the pass (0 once ``prepare`` recorded
    every shape, as on a GPU)."""
    recorded = sum(g.captures for g in graphs)
    tokens = 0
    with HostLaunches(graphs) as count:
        engine.on_phase = lambda phase: setattr(count, "decoding", phase == "decode")
        try:
            for p in prompts:
                g = engine.generate(p, max_new, decoding, stop_sequences=stop, tokenizer=codec)
                tokens += g.stats.n_generated
        finally:
            engine.on_phase = None
    n = max(tokens, 1)
    return {
        "tokens": tokens,
        "launches_per_token": count.launches / n,
        "replays_per_token": count.ops[REPLAY] / n,
        "reads_per_token": count.reads / n,
        "views_per_token": count.views / n,
        "ops": {op: c / n for op, c in count.ops.most_common(top)},
        "sites": {site: c / n for site, c in count.sites.most_common(top)},
        "view_sites": {site: c / n for site, c in count.view_sites.most_common(top)},
        "recorded_while_decoding": sum(g.captures for g in graphs) - recorded,
    }


def host_time_per_token(engine, graphs: list[RecordingGraphs], prompts: list[list[int]], max_new: int, decoding,
                        stop: tuple[str, ...] = (), codec=None, passes: int = 3) -> dict:
    """The host's time per generated token in the engine's decode phase outside the stand-ins' step
    replays (see the module doc): ``passes`` plain passes over ``prompts`` (no dispatch mode), each
    the engine's decode time (``GenerationStats.decode_s``) less the time inside replays made while
    decoding; the median pass and every pass in µs per token."""
    if passes < 1:
        raise ValueError(f"passes={passes} must be >= 1")
    state = {"decoding": False, "replay_s": 0.0}
    per_pass = []
    engine.on_phase = lambda phase: state.update(decoding=phase == "decode")
    try:
        with outer_replays(graphs, lambda: state["decoding"],
                           lambda seconds: state.update(replay_s=state["replay_s"] + seconds)):
            for _ in range(passes):
                state["replay_s"], decode_s, tokens = 0.0, 0.0, 0
                for p in prompts:
                    g = engine.generate(p, max_new, decoding, stop_sequences=stop, tokenizer=codec)
                    decode_s += g.stats.decode_s
                    tokens += g.stats.n_generated
                per_pass.append(1e6 * (decode_s - state["replay_s"]) / max(tokens, 1))
    finally:
        engine.on_phase = None
    return {"host_us_per_token": statistics.median(per_pass), "passes_us_per_token": per_pass}
