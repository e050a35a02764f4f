#!/usr/bin/env bash
# Thirty-second run, call 4 (a fresh machine, the session's last 300 s of device time): a third
# process of the benchmark's methods part on the shipped 5.6 M model, for the spread of HiSpec's
# and the hierarchy's overhead there.
source scripts/gpu_env.sh
export CI=true
W=/tmp/w4; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace)
t0=$SECONDS
timeout 170 python3 scripts/bench_gpu.py "${M[@]}" --out $W/m5m > $W/m5m.log 2>&1
echo "m5m rc=$? $((SECONDS - t0)) s" >> $W/calls.log
tar czf $OUT/call4.tgz -C $W .
cat $W/calls.log
