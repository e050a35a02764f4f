#!/usr/bin/env bash
# Twenty-eighth run, call 1: a 294 M model trained here, then the code before the store (38e537b,
# .ext/old) and after it (b7c998c), alternating, each with the kernel trace: is the hierarchy's
# slower pass of the twenty-seventh run a regression or the host's state?
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target runs/gpu-24x1024)
OUT=$W/t GPU_CKPT=runs/gpu-24x1024 GPU_BUDGET=140 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - start)) s" >> $W/calls.log
for run in new1 old1 new2 old2; do
  left=$((578 - (SECONDS - start)))
  (( left < 85 )) && { echo "skip $run: $left s left" >> $W/calls.log; continue; }
  if [[ $run == old* ]]; then script=.ext/old/scripts/bench_gpu.py; else script=scripts/bench_gpu.py; fi
  t0=$SECONDS
  timeout $left python3 $script "${M[@]}" --out $W/$run > $W/$run.log 2>&1
  echo "$run rc=$? $((SECONDS - t0)) s" >> $W/calls.log
done
rm -rf $W/t/*.pt 2>/dev/null
tar czf $OUT/call1.tgz -C $W --exclude='*.safetensors' .
cat $W/calls.log
