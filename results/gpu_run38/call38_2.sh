#!/usr/bin/env bash
# Thirty-eighth run, call 2 (no result: its machine stopped answering during the call; owed): a 294 M model
# trained on the machine (100 s), the in-process A/B of inference mode against b85df48 on it
# (gpu_run36/ab_views.py named ab_inference; hsd_bench_old made by
# `bash results/gpu_run36/make_old_package.sh b85df48` before the call), then the benchmark's methods
# part on it (AR, HiSpec, the hierarchy; outside forwards, traces last).
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh
step ab294 $(( $(left) - 170 )) env METHODS=autoregressive,hispec,vanilla_sd,hierarchy AB_OLD=b85df48 \
  AB_NAME=ab_inference AB_LABEL="inference mode" python3 results/gpu_run36/ab_views.py "$W/ab294" $MODEL 6
if (( $(left) > 100 )); then
  step m294 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --methods autoregressive,hispec,hierarchy \
    --target $MODEL --out "$W/m294"
else echo "skip m294: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -iE "val loss|steps" "$W/train.log" | tail -2; tail -7 "$W/ab294.log"
