#!/usr/bin/env bash
# Thirty-seventh run, call 5 (a fresh machine, the shipped code 26b50ad): run.py's HiSpec job and the
# benchmark's methods part for HiSpec on the shipped 5.6 M target, one after the other: run.py's
# figure against the benchmark's with the thirty-sixth run's view cuts (not re-run since).
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the thirty-eighth run.)
source scripts/gpu_env.sh
CALL=call5 source scripts/gpu_call.sh
MODEL=checkpoints/ee-24x128
t0=$SECONDS  # its calls.log line carries run.py's done line
timeout 90 python3 run.py model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 dataset.limit=8 \
  progress=false method=hispec exit=3,6 method.draft_len=2 method.period=4 results_dir=runs/r5 > "$W/runpy_hispec.log" 2>&1
echo "run.py hispec rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' "$W/runpy_hispec.log" | tail -1)" >> "$W/calls.log"
cp -r runs/r5 "$W/"; pack
# the methods part as M without the device trace, one overhead pass, HiSpec only
step bench 110 python3 scripts/bench_gpu.py "${M[@]/--device-trace/--overhead-passes=1}" --methods hispec --target $MODEL \
  --out "$W/bench"
cat "$W/calls.log"; grep -E "^\| ours hispec" "$W/bench/bench.md" | cut -c1-200
