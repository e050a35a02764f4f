#!/usr/bin/env bash
# Forty-ninth run, call 2: where a verification step's extra device time goes
# (results/gpu_run49/diag_step_kernels.py): the 294 M shape, then the Llama-3.2-1B shape where
# time is left. Carry [".whl"].
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
cat "$W/gpu.txt"
step rows294 300 python3 results/gpu_run49/diag_step_kernels.py "$W/rows294.json" gpu-24x1024
(( $(left) > 150 )) && step rows1b $(( $(left) - 15 )) python3 results/gpu_run49/diag_step_kernels.py "$W/rows1b.json" random:llama-1b
cat "$W/calls.log"; cat "$W"/rows*.log | grep -v "^Loading\|Warning\|warn" | tail -30
