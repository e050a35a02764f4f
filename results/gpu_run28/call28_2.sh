#!/usr/bin/env bash
# Twenty-eighth run, call 2: run.py against the benchmark on the code after the store (b7c998c),
# on the shipped 5.6 M model (scripts/gpu_headline.sh PARTS=checks), then the Llama-1B shape's
# overhead part with the kernel trace.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W/checks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
OUT=$W/checks RUNS=runs/small MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks HF_CHECK=0 SESSION_LIMIT=400 \
  bash scripts/gpu_headline.sh > $W/checks.log 2>&1
echo "checks rc=$? $((SECONDS - start)) s" >> $W/calls.log
left=$((580 - (SECONDS - start)))
if (( left > 120 )); then
  t0=$SECONDS
  timeout $left python3 scripts/bench_gpu.py --parts overhead --overhead-models random:llama-1b --device-trace \
    --time-limit-s $((left - 20)) --out $W/new1b > $W/new1b.log 2>&1
  echo "new1b rc=$? $((SECONDS - t0)) s" >> $W/calls.log
else
  echo "skip new1b: $left s left" >> $W/calls.log
fi
tar czf $OUT/call2.tgz -C $W .
cat $W/calls.log
