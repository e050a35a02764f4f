#!/usr/bin/env bash
# Fiftieth run, call 2 (after call50_1.sh, on the same warm machine where it can): the several-row
# attention kernel on the 294 M model and in the benchmark's own terms. (1) The 100 s 294 M model
# (as the forty-fourth to forty-sixth runs'). (2) Every method on it, several rows against the
# one-row kernel alone, alternating in one process (ab_rows.py). (3) The benchmark's methods part
# (`M`: parity with the near-tie rule, outside forwards, device trace) with the kernel on several
# rows (--attention-rows 16), on 294 M and on the shipped 5.6 M model: 0 unexplained divergences is
# what setting decode_attention.MAX_ROWS to 16 by default needs, beside call 1's gains.
# Carry [".whl"].
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
(( $(left) > 150 )) && step ab294 $(( $(left) > 330 ? 200 : $(left) - 130 )) python3 results/gpu_run50/ab_rows.py "$W/ab294" $MODEL 3
(( $(left) > 110 )) && step m294 110 python3 scripts/bench_gpu.py "${M[@]}" --attention-rows 16 --target $MODEL --out "$W/m294"
(( $(left) > 95 )) && step m56 $(( $(left) - 5 )) python3 scripts/bench_gpu.py "${M[@]}" --attention-rows 16 --target checkpoints/ee-24x128 --out "$W/m56"
cat "$W/calls.log"; grep -iE "val loss|steps in" "$W/t/train.log" | tail -1; tail -9 "$W/ab294.log"
grep -h "unexplained\|outside forwards" "$W"/m*/bench.md 2>/dev/null | head -20
