#!/usr/bin/env bash
# Thirty-seventh run, call 5 (a fresh machine, the shipped code 26b50ad): run.py's HiSpec job and the
# benchmark's methods part for HiSpec on the shipped 5.6 M target, one after the other: run.py's
# figure against the benchmark's with the thirty-sixth run's view cuts (not re-run since).
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w5; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
pack() { tar czf $OUT/call5.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=checkpoints/ee-24x128
COMMON=(model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 dataset.limit=8 progress=false)
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --overhead-passes 1 --methods hispec)
t0=$SECONDS
timeout 90 python3 run.py "${COMMON[@]}" method=hispec exit=3,6 method.draft_len=2 method.period=4 \
  results_dir=runs/r5 > $W/runpy_hispec.log 2>&1
echo "run.py hispec rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' $W/runpy_hispec.log | tail -1)" >> $W/calls.log
cp -r runs/r5 $W/; pack
t0=$SECONDS
timeout 110 python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out $W/bench > $W/bench.log 2>&1
echo "bench rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
cat $W/calls.log; grep -E "^\| ours hispec" $W/bench/bench.md | cut -c1-200
