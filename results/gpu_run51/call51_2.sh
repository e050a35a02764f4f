#!/usr/bin/env bash
# Fifty-first run, call 2 (prepared in the fifty-second session; after call51_1.sh, on the same warm
# machine where it can). (1) Why a 2- or 4-row step of the 294 M shape took longer than an 8-row one
# on the fiftieth run's H200 (1014 against 828 us, under both attention settings; the H100 read 2-8
# rows alike): diag_rows_attention.py with a CUDA profile by kernel at 2, 4 and 8 rows
# (PROFILE_ROWS). (2) The 100 s 294 M model and the benchmark's methods part on it with the default
# decode_attention.MAX_ROWS = [16]: parity, and each method's share outside forwards (the issue's
# <= 5 % on 294 M; the hierarchy met in 9 processes of 27). Carry [".whl"].
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}
cat "$W/gpu.txt"
step rows294 150 env PROFILE_ROWS=2,4,8 python3 results/gpu_run50/diag_rows_attention.py "$W/rows294.json" gpu-24x1024
(( $(left) > 330 )) && step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
(( $(left) > 90 )) && [ -d "$MODEL" ] && step m294 $(( $(left) - 5 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out "$W/m294"
cat "$W/calls.log"; grep -A8 "^gpu-24x1024" "$W/rows294.log"
grep -iE "val loss|steps in" "$W/t/train.log" 2>/dev/null | tail -1
grep -h "unexplained\|outside forwards" "$W"/m294/bench.md 2>/dev/null | head -20
