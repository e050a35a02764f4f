#!/usr/bin/env bash
# Thirty-seventh run, call 4 (a fresh machine): a 294 M model trained here (100 s), the in-process
# A/B of the verification queued behind its round against 26b50ad on it (gpu_run36/ab_views.py named
# ab_ahead; hsd_bench_old made by `bash results/gpu_run36/make_old_package.sh 26b50ad` before the call), then the benchmark's methods part on it (AR and
# HiSpec, outside forwards, traces last).
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the thirty-eighth run.)
source scripts/gpu_env.sh
CALL_LIMIT=${CALL_LIMIT:-580}  # LIMIT when it ran; scripts/gpu_call.sh's name since the forty-sixth run
CALL=call4 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024
t0=$SECONDS  # the training ran without a timeout
OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > "$W/train.log" 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> "$W/calls.log"; pack
step ab294 $(( $(left) - 150 )) env METHODS=autoregressive,layerskip,hispec AB_OLD=26b50ad AB_NAME=ab_ahead \
  AB_LABEL="verification queued behind its round" python3 results/gpu_run36/ab_views.py "$W/ab294" $MODEL 8
if (( $(left) > 100 )); then
  step m294 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --methods autoregressive,hispec --target $MODEL \
    --out "$W/m294"
else echo "skip m294: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -iE "val loss|steps" "$W/train.log" | tail -2; tail -7 "$W/ab294.log"
