#!/usr/bin/env bash
# Thirty-fourth run, call 1 (a fresh machine): the 294 M model trained here, then every method through
# the benchmark in two fresh processes (traces last) -- the 294 M overhead row, last measured in the
# thirty-second run, on the code as it stands (no decode-path change since then).
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w1; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call1.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace)
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=120 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
for p in 1 2; do
  if (( $(left) > 140 )); then
    t0=$SECONDS
    timeout $(( $(left) - 5 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out $W/m294_$p > $W/m294_$p.log 2>&1
    echo "m294_$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip m294_$p: $(left) s left" >> $W/calls.log; fi
done
cat $W/calls.log
