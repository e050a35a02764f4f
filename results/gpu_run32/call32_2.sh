#!/usr/bin/env bash
# Thirty-second run, call 2 (a fresh machine): the 294 M model trained again, every method through
# the benchmark with AR's next chunk in flight (traces last), then where the hierarchy's host time
# goes on that model (scripts/profile_host.py, cProfile over one pass after unprofiled ones), then
# the shipped 5.6 M model's methods if time is left.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w2; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call2.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace)
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=120 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout $(( $(left) - 80 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out $W/m294 > $W/m294.log 2>&1
echo "m294 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 45 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/profile_host.py --model $MODEL --methods hierarchy \
    --out $W/prof294_hierarchy > $W/prof294_hierarchy.log 2>&1
  echo "prof294_hierarchy rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip prof294_hierarchy: $(left) s left" >> $W/calls.log; fi
if (( $(left) > 150 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --out $W/m5m > $W/m5m.log 2>&1
  echo "m5m rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip m5m: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log
