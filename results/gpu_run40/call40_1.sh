#!/usr/bin/env bash
# Fortieth run, call 1 (the shipped 5.6 M target, code with the thirty-ninth session's `prepare` fix):
# the float32 smoke first (every method on the graph path must equal HF generate; `prepare` changed
# since the last one), then the owed call38_3 work: run.py's HiSpec job against the benchmark's HiSpec
# row in the next process, and `M` in two more fresh processes (the 5.6 M model's overheads across
# host states).
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
MODEL=checkpoints/ee-24x128
step smoke 170 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
step runpy_hispec 90 python3 run.py model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 \
  dataset.limit=8 progress=false method=hispec exit=3,6 method.draft_len=2 method.period=4 results_dir=runs/r3
cp -r runs/r3 "$W/"; pack
step bench_hispec 110 python3 scripts/bench_gpu.py "${M[@]}" --methods hispec --overhead-passes 1 --target $MODEL \
  --out "$W/bench_hispec"
for i in 1 2; do
  if (( $(left) > 110 )); then
    step m56_$i 105 python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out "$W/m56_$i"
  else echo "skip m56_$i: $(left) s left" >> "$W/calls.log"; fi
done
cat "$W/calls.log"; grep -iE "equal|differ|FAIL|mismatch" "$W/smoke.log" | tail -12
grep -h '\[hsd-bench\] done' "$W/runpy_hispec.log" | tail -1
grep -hE "^\| ours " "$W"/bench_hispec/bench.md "$W"/m56_*/bench.md | cut -c1-200
