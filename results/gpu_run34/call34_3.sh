#!/usr/bin/env bash
# Thirty-fourth run, call 3 (a fresh machine): gpt-fast against the engine's AR on the Llama-3.2-1B
# and Llama-3.1-8B shapes (random weights), through the benchmark's gpt_fast part -- the issue's
# first table, last measured in the fifteenth run, before the engine reached its bare loop's rate.
# gpt-fast (pytorch-labs/gpt-fast 32971d3) is carried in the ignored .ext/gpt-fast.
source scripts/gpu_env.sh
export CI=true
W=/tmp/w3; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
t0=$SECONDS
timeout 540 python3 scripts/bench_gpu.py --parts gpt_fast --gpt-fast .ext/gpt-fast \
  --gpt-fast-models random:llama-1b,random:llama-8b --reps 3 --out $W/gf > $W/gf.log 2>&1
echo "gf rc=$? $((SECONDS - t0)) s" >> $W/calls.log
tar czf $OUT/call3.tgz -C $W .
cat $W/calls.log; cat $W/gf/bench.md 2>/dev/null | head -30
