"""How fast the host issues device work right now: a probe taken before every timed pass.

Why: on a small model a speculative method is host-bound -- each round is a handful of
graph replays, a verdict read back, some bookkeeping -- so its tokens/s measures the host as
much as the method. On the lent H200 VM the host's speed moves between states over tens of
seconds: one launch + event-sync round trip took 16-17 µs in some fresh processes and
24-28 µs in others, and vanilla_sd on the shipped 5.6 M model followed it (1512-1885 tok/s
across processes, AR 2390-2644; docs/performance.md, "Fourteenth run"). Pinning the process
to a core did not remove it. The probe cannot make a slow host fast; it makes the host state a
number beside the tokens/s, so two runs that disagree can be told apart from a regression.

The probe is the host's part of one verification round, reduced to its core: launch one tiny
kernel, record an event, wait for it. On CPU (no asynchronous device) it times the same
sequence on a CPU tensor: the dispatcher and interpreter overhead that the engine's host work
is made of. It runs between timed passes, never inside one (``measure.timed_passes``), and
costs about ``ROUNDS`` round trips (~2 ms on a GPU).
"""

from __future__ import annotations

import statistics
import time

import torch

ROUNDS = 64
WARMUP = 16
_SCRATCH: dict[str, torch.Tensor] = {}  # one tensor per device, so a probe allocates nothing after its first


def round_trip_us(device: torch.device | str = "cpu") -> float:
    """Median microseconds of one (tiny kernel launch, event record, event wait) round trip on ``device``."""
    device = torch.device(device)
    key = str(device)
    if key not in _SCRATCH:
        _SCRATCH[key] = torch.zeros(1, device=device)
    x = _SCRATCH[key]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        event, stream = torch.cuda.Event(), torch.cuda.current_stream(device)  # the stream x's kernel runs on
    times = []
    for i in range(WARMUP + ROUNDS):
        t0 = time.perf_counter()
        x.add_(1.0)
        if cuda:
            event.record(stream)
            event.synchronize()
        dt = time.perf_counter() - t0
        if i >= WARMUP:
            times.append(dt)
    return statistics.median(times) * 1e6
