#!/usr/bin/env python3
"""bench_gpu.py with conditional CUDA graph nodes captured by hand (conditional_attempt.py) on a
torch that lacks them (the lent image's 2.11), without editing the project: torch.cuda.CUDAGraph
gains the three methods torch 2.12 has, backed by ``conditional_attempt.by_hand``, and each
GraphCache capture tells it its memory pool. The engine's own code then takes its torch-2.12 path
(``conditional_graphs_available``, ``_guarded_round_step``), and ``prepare`` checks on the device
that a guarded round both runs and skips before one is used.

    python3 results/gpu_run34/with_conditional.py --parts smoke --out $W/smoke   # guarded_round: "runs and skips"?
    python3 results/gpu_run34/with_conditional.py <M> --methods autoregressive,hispec,hierarchy --target ...
    python3 results/gpu_run34/guarded_off.py      <M> ...   # the other side of the A/B
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(HERE)]

import torch  # noqa: E402

import conditional_attempt as cond  # noqa: E402
from hsd_bench.models.native import graphs  # noqa: E402

if not cond.native():
    class _Capturing:
        """What ``get_currently_capturing_graph`` returns: opens and closes one node at a time."""
        open_nodes: list = []

        def begin_capture_to_if_node(self, pred):
            node = cond.by_hand(pred)
            node.__enter__()
            self.open_nodes.append(node)

        def end_capture_to_conditional_node(self):
            self.open_nodes.pop().__exit__(None, None, None)

    class _GraphWithConditionals(torch.cuda.CUDAGraph):
        @staticmethod
        def get_currently_capturing_graph():
            return _Capturing()

        def begin_capture_to_if_node(self, pred):  # present for the capability check only
            raise NotImplementedError

        def end_capture_to_conditional_node(self):
            raise NotImplementedError

    torch.cuda.CUDAGraph = _GraphWithConditionals
    _capture = graphs.GraphCache._capture

    def _capture_with_pool(self, fn):
        with cond.capturing_into(self.pool):
            return _capture(self, fn)

    graphs.GraphCache._capture = _capture_with_pool
    # built now, before any capture: loading the kernel's module is not allowed inside one
    print(f"[with_conditional] conditional nodes by hand: {cond.unavailable_reason() or 'available'}", flush=True)

import bench_gpu  # noqa: E402

sys.exit(bench_gpu.main(sys.argv[1:]))
