#!/usr/bin/env python3
"""Run a script with the GPU's primary context set to a chosen host-wait mode (an experiment's switch).

    SYNC_MODE=block python3 results/gpu_run56/sync_mode.py scripts/bench_gpu.py --parts methods ...

Why: on the shipped 5.6 M model HiSpec's host works about as long per token as its device, and
beside other processes on its cores its share outside forwards doubles (fifty-fifth run: 16
memory copiers unpinned, not pinned away). While the host waits for a verdict, CUDA's default
wait on a machine with more cores than GPUs *spins*: the timing thread burns its time slice
doing nothing, so the scheduler counts it as busy as the copiers and preempts it as often. A
*blocking* wait (``CU_CTX_SCHED_BLOCKING_SYNC``) sleeps instead; a sleeper that wakes is
favoured by the scheduler over CPU hogs, at the price of a wake-up on every wait. Which wins,
unloaded and loaded, is what this measures.

``SYNC_MODE``: ``spin`` (CU_CTX_SCHED_SPIN), ``block`` (CU_CTX_SCHED_BLOCKING_SYNC), ``yield``
(CU_CTX_SCHED_YIELD), or ``auto`` / unset (the driver's default: leave the flags alone). The flags
are set on device 0's primary context through the driver API before torch touches CUDA, and read
back after the script: ``sync_mode.json`` in ``$SYNC_OUT`` (default: the current folder) says
which flags the context had, so a process that did not take them is visible, not silently the
default. DRY=1 (a CPU dry run) sets nothing.
"""

from __future__ import annotations

import ctypes
import json
import os
import runpy
import sys

FLAGS = {"spin": 0x01, "yield": 0x02, "block": 0x04}  # cuda.h: CU_CTX_SCHED_*
SCHED_MASK = 0x07


def _driver():
    cuda = ctypes.CDLL("libcuda.so.1")
    rc = cuda.cuInit(0)
    if rc != 0:
        raise SystemExit(f"cuInit failed: CUresult {rc}")
    dev = ctypes.c_int()
    rc = cuda.cuDeviceGet(ctypes.byref(dev), 0)
    if rc != 0:
        raise SystemExit(f"cuDeviceGet(0) failed: CUresult {rc}")
    return cuda, dev


def primary_state(cuda, dev) -> dict:
    flags, active = ctypes.c_uint(), ctypes.c_int()
    rc = cuda.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags), ctypes.byref(active))
    return {"rc": rc, "flags": flags.value, "sched": flags.value & SCHED_MASK, "active": bool(active.value)}


def main() -> None:
    mode = os.environ.get("SYNC_MODE", "auto")
    if mode not in (*FLAGS, "auto"):
        raise SystemExit(f"SYNC_MODE={mode!r}: valid are {', '.join((*FLAGS, 'auto'))}")
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    dry = bool(os.environ.get("DRY"))
    record: dict = {"mode": mode, "dry": dry}
    cuda = dev = None
    if not dry:
        cuda, dev = _driver()
        record["before"] = primary_state(cuda, dev)
        if mode != "auto":
            rc = cuda.cuDevicePrimaryCtxSetFlags_v2(dev, ctypes.c_uint(FLAGS[mode]))
            if rc != 0:
                raise SystemExit(f"cuDevicePrimaryCtxSetFlags_v2({mode}) failed: CUresult {rc}")
        record["set"] = primary_state(cuda, dev)
    script, sys.argv = sys.argv[1], sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        record["exit"] = done.code
        raise
    finally:
        if cuda is not None:
            record["after"] = primary_state(cuda, dev)  # the flags the run's context actually had
        out = os.environ.get("SYNC_OUT", ".")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "sync_mode.json"), "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
