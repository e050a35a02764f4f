#!/usr/bin/env bash
# Forty-seventh run, call 3: HiSpec on the shipped 5.6 M target, run.py and the benchmark in
# alternating fresh processes (three each), to tell a process's host state from a difference between
# the two code paths: call 2's run.py job read 27 % above the benchmark's next process (host probes
# 13.1 against 16.0 µs). Same workload as gpu_headline.sh's agree_hispec / agree_bench steps; the
# benchmark with AR and HiSpec only, one instrumented pass, no trace. Carry [".whl"].
source scripts/gpu_env.sh
CALL=call3 source scripts/gpu_call.sh
COMMON=(model.path=checkpoints/ee-24x128 model.device=cuda model.dtype=bfloat16 max_new_tokens=128 dataset.limit=8
        progress=false)
BENCH=(--parts methods --device cuda --dtype bfloat16 --target checkpoints/ee-24x128 --draft checkpoints/family-2x128
       --mid-draft checkpoints/family-6x128 --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6
       --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --methods hispec --overhead-passes 1)
for i in 1 2 3; do
  (( $(left) > 75 )) && step runpy_$i 75 python3 run.py "${COMMON[@]}" method=hispec exit=3,6 method.draft_len=2 \
    method.period=4 results_dir=runs/alt/runpy_$i
  (( $(left) > 100 )) && step bench_$i 100 python3 scripts/bench_gpu.py "${BENCH[@]}" --out "$W/bench_$i"
done
mkdir -p $W/summaries && (cd runs/alt && find . -name summary.json | tar czf $W/summaries/runs.tgz -T -)
pack
cat $W/calls.log; grep -h "\[hsd-bench\] done" $W/runpy_*.log | cut -c1-300
for i in 1 2 3; do grep -h "ours AR\|ours hispec" $W/bench_$i/bench.md | cut -d'|' -f2,4,5,10,14; done
