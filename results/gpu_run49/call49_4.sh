#!/usr/bin/env bash
# Forty-ninth run, call 4: call 3 again with the prototype also launched early, as the project kernel is, matrix by matrix
# (results/gpu_run49/diag_rows_gemv.py), the 294 M and Llama-3.2-1B shapes. Carry [".whl"].
source scripts/gpu_env.sh
CALL=call4 source scripts/gpu_call.sh
cat "$W/gpu.txt"
step rows_gemv $(( $(left) - 15 )) python3 results/gpu_run49/diag_rows_gemv.py "$W/rows_gemv.json"
cat "$W/calls.log"; tail -40 "$W/rows_gemv.log"
