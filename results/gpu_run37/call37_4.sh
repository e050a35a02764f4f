#!/usr/bin/env bash
# Thirty-seventh run, call 4 (a fresh machine): a 294 M model trained here (100 s), the in-process
# A/B of the verification queued behind its round against 26b50ad on it (gpu_run36/ab_views.py named
# ab_ahead; hsd_bench_old made by `bash results/gpu_run36/make_old_package.sh 26b50ad` before the call), then the benchmark's methods part on it (AR and
# HiSpec, outside forwards, traces last).
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w4; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-580} - (SECONDS - start))); }
pack() { tar czf $OUT/call4.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --methods autoregressive,hispec)
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
METHODS=autoregressive,layerskip,hispec AB_OLD=26b50ad AB_NAME=ab_ahead AB_LABEL="verification queued behind its round" \
  timeout $(( $(left) - 150 )) python3 results/gpu_run36/ab_views.py $W/ab294 $MODEL 8 > $W/ab294.log 2>&1
echo "ab294 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 100 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out $W/m294 > $W/m294.log 2>&1
  echo "m294 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip m294: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log; grep -iE "val loss|steps" $W/train.log | tail -2; tail -7 $W/ab294.log
