#!/usr/bin/env bash
# Twenty-seventh run, call 1: the shipped 5.6 M model, the code before (38e537b, .ext/old) and after
# the hidden-state store and the staged scalars, alternating, each with the kernel trace.
source scripts/gpu_env.sh
start=$SECONDS
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target checkpoints/ee-24x128)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
for run in old1 new1 old2 new2; do
  left=$((575 - (SECONDS - start)))
  (( left < 60 )) && { echo "skip $run: $left s left" >> $OUT/calls.log; continue; }
  if [[ $run == old* ]]; then script=.ext/old/scripts/bench_gpu.py; else script=scripts/bench_gpu.py; fi
  t0=$SECONDS
  timeout $left python3 $script "${M[@]}" --out $OUT/$run > $OUT/$run.log 2>&1
  echo "$run rc=$? $((SECONDS - t0)) s" >> $OUT/calls.log
done
left=$((575 - (SECONDS - start)))
if (( left > 60 )); then
  t0=$SECONDS
  timeout $left python3 scripts/bench_gpu.py --parts smoke --target checkpoints/ee-24x128 --draft checkpoints/family-2x128 \
    --mid-draft checkpoints/family-6x128 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --out $OUT/smoke > $OUT/smoke.log 2>&1
  echo "smoke rc=$? $((SECONDS - t0)) s" >> $OUT/calls.log
fi
cat $OUT/calls.log
