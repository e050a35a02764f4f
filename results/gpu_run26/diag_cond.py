#!/usr/bin/env python3
"""bench_gpu.py with CUDA conditional nodes reported unavailable: the guarded look-ahead rounds then
run as the host-read path (verdict step queued, guard read on the host, chain replayed), the same
kernels outside a conditional node. Run beside a normal bench_gpu.py --device-trace call to see
whether the kernel trace records the kernels inside conditional nodes (busy per token and device
events per token should match)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import hsd_bench.models.native.model as native_model  # noqa: E402

native_model.conditional_graphs_available = lambda: False
import bench_gpu  # noqa: E402

sys.exit(bench_gpu.main(sys.argv[1:]))
