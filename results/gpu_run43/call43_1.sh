#!/usr/bin/env bash
# Owed (written in the forty-third session): the readings the forty-third run left. (1) The 294 M
# model trained as long as the runs before the forty-first (100 s; the forty-first and forty-third
# runs' 60 s models are weaker: the hierarchy's middle level accepts 0.20-0.22 of the drafts) with
# every method in two fresh processes: whether the hierarchy's outside share meets 5 % where its
# instrumented passes run at the timed passes' rate -- bench.md now says beside the share how far
# they ran from it ("pass N% slower"), and `transitions.py`'s fit reads the passes. (2) The shipped
# 5.6 M model with every method in one more process (HiSpec met its 10 % in four processes of five
# since inference mode). No old tree or package is needed.
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024-100s
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
for i in 1 2; do
  if (( $(left) > 135 )); then
    step m294_$i 130 python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out "$W/m294_$i"
  else echo "skip m294_$i: $(left) s left" >> "$W/calls.log"; fi
done
if (( $(left) > 100 )); then
  step m56_1 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out "$W/m56_1"
else echo "skip m56_1: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -iE "val loss|steps in" "$W/t/train.log" | tail -1
grep -hE "^\| ours " "$W"/m294_*/bench.md "$W"/m56_*/bench.md | cut -c1-220
python3 results/gpu_run41/transitions.py "$W"/m294_*/bench.json
