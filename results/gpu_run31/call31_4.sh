#!/usr/bin/env bash
# Thirty-first run, call 4 (the same warm machine as call 3, its trained 294 M model reused): the
# second benchmark process call 3 had no time left for. Run as one command line (run tool).
source scripts/gpu_env.sh; W=/tmp/w4; mkdir -p $W; ls runs/gpu-24x1024 > $W/ckpt.txt; timeout 240 python3 scripts/bench_gpu.py --parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128 --device-trace --target runs/gpu-24x1024 --out $W/m294_2 > $W/m294_2.log 2>&1; echo "m294_2 rc=$?" >> $W/calls.log; tar czf $OUT/call4.tgz -C $W .; cat $W/calls.log $W/ckpt.txt
