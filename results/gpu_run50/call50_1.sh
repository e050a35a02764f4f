#!/usr/bin/env bash
# Fiftieth run, call 1: the decode attention kernel on steps of several positions (3e24b1e; off by
# default -- decode_attention.MAX_ROWS = [1] -- until these calls have measured it: each script sets it).
# (0) The lent image: torch, Triton, CUDA conditional graph nodes (owed: results/gpu_run48/call48_1.sh
# on a torch >= 2.12). (1) The benchmark's smoke: float32 against HF generate for every method on
# the graph path, and the bf16 kernels on the device -- the attention kernel at 1, 5 and 16 rows.
# (2) A verification step's device time with the kernel on several rows against the one-row kernel
# alone, in one process (diag_rows_attention.py): the 294 M shape, then the Llama-3.2-1B shape.
# (3) Every method on the shipped 5.6 M model, several rows against one row alone, alternating in
# one process (ab_rows.py). Carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
python3 -c "import torch, triton; from hsd_bench.models.native.graphs import conditional_graphs_available as c; print('torch', torch.__version__, 'triton', triton.__version__, 'conditional nodes', c())" > "$W/image.txt" 2>&1
cat "$W/gpu.txt" "$W/image.txt"
step smoke 150 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
step rows294 150 python3 results/gpu_run50/diag_rows_attention.py "$W/rows294.json" gpu-24x1024
(( $(left) > 200 )) && step rows1b 120 python3 results/gpu_run50/diag_rows_attention.py "$W/rows1b.json" random:llama-1b
(( $(left) > 120 )) && step ab56 $(( $(left) - 10 )) python3 results/gpu_run50/ab_rows.py "$W/ab56" checkpoints/ee-24x128 4
cat "$W/calls.log"; grep -o "smoke [a-zA-Z]*" "$W/smoke.log" | head -2
grep -A3 "^gpu-24x1024\|^random" "$W"/rows*.log; tail -9 "$W/ab56.log"
