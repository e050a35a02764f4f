#!/usr/bin/env bash
# Forty-first run, call 1: the owed 294 M reading, cut down to the device time left after refused
# starts and a lost machine (612 s; run as `LIMIT=400 bash results/gpu_run41/call41_1.sh`; CALL_LIMIT since the forty-sixth run): a 294 M model trained on the machine (60 s),
# then the benchmark's methods part on it (AR, HiSpec, the hierarchy) in fresh processes while time
# is left, then on the shipped 5.6 M target. The in-process A/B against b85df48
# (results/gpu_run40/call40_2.sh) is left out: the target reading comes first.
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024
step train 150 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=60 bash scripts/gpu_train_model.sh  # reuses a model
for i in 1 2 3; do
  if (( $(left) > 150 )); then
    step m294_$i 145 python3 scripts/bench_gpu.py "${M[@]}" --methods autoregressive,hispec,hierarchy \
      --target $MODEL --out "$W/m294_$i"
  else echo "skip m294_$i: $(left) s left" >> "$W/calls.log"; fi
done
if (( $(left) > 110 )); then
  step m56_1 105 python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out "$W/m56_1"
else echo "skip m56_1: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -hE "^\| ours " "$W"/m294_*/bench.md "$W"/m56_*/bench.md | cut -c1-200
