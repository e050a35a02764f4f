#!/usr/bin/env bash
# Twenty-seventh run, call 2: a 294 M model trained here, then the code after (new) and before
# (38e537b, .ext/old) on it with the kernel trace; then the Llama-1B shape's overhead part (new).
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target runs/gpu-24x1024)
OUT=$W/t GPU_CKPT=runs/gpu-24x1024 GPU_BUDGET=140 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - start)) s" >> $W/calls.log
for run in new294 old294; do
  left=$((480 - (SECONDS - start)))
  (( left < 90 )) && { echo "skip $run: $left s left" >> $W/calls.log; continue; }
  if [[ $run == old* ]]; then script=.ext/old/scripts/bench_gpu.py; else script=scripts/bench_gpu.py; fi
  t0=$SECONDS
  timeout $left python3 $script "${M[@]}" --out $W/$run > $W/$run.log 2>&1
  echo "$run rc=$? $((SECONDS - t0)) s" >> $W/calls.log
done
left=$((480 - (SECONDS - start)))
if (( left > 140 )); then
  t0=$SECONDS
  timeout $left python3 scripts/bench_gpu.py --parts overhead --overhead-models random:llama-1b --device-trace \
    --time-limit-s $((left - 20)) --out $W/new1b > $W/new1b.log 2>&1
  echo "new1b rc=$? $((SECONDS - t0)) s" >> $W/calls.log
else
  echo "skip new1b: $left s left" >> $W/calls.log
fi
rm -rf $W/t/*.pt 2>/dev/null
tar czf $OUT/call2.tgz -C $W --exclude='*.safetensors' .
cat $W/calls.log
