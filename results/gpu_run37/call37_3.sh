#!/usr/bin/env bash
# Thirty-seventh run, call 3 (the shipped 5.6 M target): the verification queued behind its round --
# the float32 smoke on the graph path (every method must equal HF generate), the in-process A/B
# against 26b50ad (gpu_run36/ab_views.py named ab_ahead; hsd_bench_old made by
# `bash results/gpu_run36/make_old_package.sh 26b50ad` before the call), then the
# benchmark's methods part with the new code (outside forwards, traces last).
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
t0=$SECONDS
timeout 170 python3 scripts/bench_gpu.py --parts smoke --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
AB_OLD=26b50ad AB_NAME=ab_ahead AB_LABEL="verification queued behind its round" timeout $(( $(left) - 130 )) python3 results/gpu_run36/ab_views.py $W/ab56 checkpoints/ee-24x128 6 > $W/ab56.log 2>&1
echo "ab56 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 90 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out $W/m56 > $W/m56.log 2>&1
  echo "m56 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip m56: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log; grep -E "smoke passed|FAIL" $W/smoke.log | cut -c1-600; tail -8 $W/ab56.log; grep -A12 "^| method" $W/m56/bench.md 2>/dev/null | head -14
