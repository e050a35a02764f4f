"""Clocks that mean something on an asynchronous device."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued device work, so a host clock read covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device) -> tuple[object, float]:
    """``fn()``'s result and its wall time, synchronised on both sides."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def device_times(fn: Callable[[], object], reps: int) -> list[float]:
    """Seconds each of ``reps`` calls of ``fn`` kept the current CUDA stream busy: events recorded
    around each call, read once it has finished (the device's time, not the host's)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


def copy_bandwidth(device, nbytes: int = 1 << 30, reps: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus written.

    The ceiling a batch-1 decoder can approach: every weight byte is read
    once per token and nothing is reused from cache (METHOD.md).
    """
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = device_times(lambda: dst.copy_(src), reps)
    if not torch.equal(dst[:4096], src[:4096]):
        raise RuntimeError("copy bandwidth probe: destination does not match source")
    del src, dst
    return 2 * nbytes / median(times)


def matmul_flops(device, n: int = 8192, dtype=torch.bfloat16, reps: int = 10) -> float | None:
    """Dense matmul rate in FLOP/s on the device (``None`` off CUDA): the compute roofline."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = device_times(lambda: a @ b, reps)
    del a, b
    return 2 * n**3 / median(times)
