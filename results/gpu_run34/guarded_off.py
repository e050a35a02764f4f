#!/usr/bin/env python3
"""bench_gpu.py with CUDA conditional nodes reported unavailable: the engine's rule before this
run on torch 2.11 (a middle level's next draft round waits for the host's read of its guard).
The A side of call 5's alternating processes; the B side is plain bench_gpu.py."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import hsd_bench.models.native.model as native_model  # noqa: E402

native_model.conditional_graphs_available = lambda: False
import bench_gpu  # noqa: E402

sys.exit(bench_gpu.main(sys.argv[1:]))
