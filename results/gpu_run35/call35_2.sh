#!/usr/bin/env bash
# Thirty-fifth run, call 2 (a fresh machine): more processes of call 1's A/B -- the guarded rounds
# by hand (with_conditional.py, "on") against the committed rule (guarded_off.py, "off") on the
# 294 M model (trained here again: a fresh machine has none), off first this time; then the same
# on the shipped 5.6 M target (checkpoints/ee-24x128, no training) while time lasts.
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
   --device-trace --methods autoregressive,hispec,hierarchy)
ab() {  # ab NAME TARGET NEED_S
  local p=$1 target=$2 need=$3
  if (( $(left) > need )); then
    t0=$SECONDS
    if [[ $p == *on* ]]; then run=(python3 results/gpu_run34/with_conditional.py); else run=(python3 results/gpu_run34/guarded_off.py); fi
    timeout $(( $(left) - 3 )) "${run[@]}" "${M[@]}" --target $target --out $W/$p > $W/$p.log 2>&1
    echo "$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip $p: $(left) s left" >> $W/calls.log; fi
}
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
for p in m294_off2 m294_on3 m294_off3 m294_on4; do ab $p $MODEL 85; done
for p in m5_off1 m5_on1 m5_off2 m5_on2; do ab $p checkpoints/ee-24x128 60; done
cat $W/calls.log
