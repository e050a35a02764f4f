"""Busy work for the host beside a benchmark, until killed: a controlled slow host.

Why: on the shipped 5.6 M model HiSpec is host-bound, and every miss of issue 15's 10 % there
fell in a process whose host probed slow (13.9-16.7 us against 11-12 us; docs/gpu-runs.md,
"Targets"). Since the decode attention kernel took verification steps only one such process
has been read (the fiftieth run's H200: 12.4 %), because a lent host's state is luck. Loading
the host on purpose, with the probe (hsd_bench/host_probe.py) read beside each process, maps
the share against the probe on whatever card comes, instead of waiting for a slow one.

Two kinds, as a neighbour on a shared VM would load it:
* ``cpu``: a pure-Python spin (the interpreter and branch units a core shares with its SMT
  sibling; a time slice taken from the benchmark where hogs outnumber free cores);
* ``mem``: single-threaded copies of a 256 MiB buffer (the L3 and memory bandwidth the host's
  dispatcher and driver calls also use).

    python3 results/gpu_run53/host_load.py cpu &   # one hog; kill it when done
"""

from __future__ import annotations

import sys


def spin() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def stream(mib: int = 256) -> None:
    import torch

    torch.set_num_threads(1)
    src = torch.ones(mib * 2**18)  # float32: 4 bytes each
    dst = torch.empty_like(src)
    while True:
        dst.copy_(src)
        src.copy_(dst)


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind not in ("cpu", "mem"):
        sys.exit(f"host_load.py: kind {kind!r} is not one of cpu, mem")
    spin() if kind == "cpu" else stream()
