#!/usr/bin/env bash
# Thirty-sixth run, call 3 (a fresh machine): the benchmark's methods part on the shipped 5.6 M
# target with the host cuts, in two fresh processes (outside forwards, traces last).
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w3; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call3.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace)
for p in 1 2; do
  if (( $(left) > 100 )); then
    t0=$SECONDS
    timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out $W/m56_$p > $W/m56_$p.log 2>&1
    echo "m56_$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip m56_$p: $(left) s left" >> $W/calls.log; fi
done
cat $W/calls.log
