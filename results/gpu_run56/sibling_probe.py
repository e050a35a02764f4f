"""Which vCPU's neighbour slows vCPU 0: a Python loop on vCPU 0 beside one memory copier on each other vCPU.

    python3 results/gpu_run56/sibling_probe.py > $W/siblings.txt

Why: beside 16 memory copiers HiSpec's host work per token grows on every line (fifty-third run)
while the timing thread is preempted only 0-30 times a pass (fifty-sixth run, call 1): the host is
slower, not taken away. A copier on the same physical core (an SMT sibling, which a VM need not
show in its topology) would do that; one on another core only through the shared cache and memory.
The loop (the interpreter's own work, as the engine's host is) runs pinned to vCPU 0 for ``SECONDS``
alone, then beside one copier (results/gpu_run53/host_load.py mem) pinned to each other vCPU in
turn, then alone again. A vCPU whose copier slows it far more than the others' is vCPU 0's
hidden sibling. Prints one line per vCPU: its rate relative to alone, and the sysfs siblings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SECONDS = float(os.environ.get("SECONDS_EACH", "1.0"))
LOAD = Path(__file__).resolve().parents[1] / "gpu_run53" / "host_load.py"


def loop_rate(seconds: float) -> float:
    """Iterations per second of interpreter work (dict, list, int ops) on the calling thread."""
    d, xs, n = {}, list(range(64)), 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(100):
            d[i & 63] = xs[i & 63] + n
        n += 1
    return n / seconds


def main() -> None:
    os.sched_setaffinity(0, {0})
    cpus = range(os.cpu_count() or 1)
    sysfs = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    print(f"cpu0 thread_siblings_list: {sysfs.read_text().strip() if sysfs.exists() else 'n/a'}")
    loop_rate(0.3)  # warm
    alone = [loop_rate(SECONDS)]
    rows = []
    for k in cpus:
        if k == 0:
            continue
        hog = subprocess.Popen(["taskset", "-c", str(k), sys.executable, str(LOAD), "mem"])
        time.sleep(1.0)  # the copier's buffers allocated and streaming
        rate = loop_rate(SECONDS)
        hog.kill()
        hog.wait()
        rows.append((k, rate))
    alone.append(loop_rate(SECONDS))
    base = sum(alone) / len(alone)
    print(f"alone: {alone[0]:.0f} and {alone[1]:.0f} it/s")
    for k, rate in rows:
        print(f"copier on cpu{k:<3} {rate / base:6.3f} x alone")
    slowest = min(rows, key=lambda r: r[1])
    print(f"slowest beside: cpu{slowest[0]} ({slowest[1] / base:.3f} x)")


if __name__ == "__main__":
    main()
