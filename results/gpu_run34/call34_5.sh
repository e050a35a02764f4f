#!/usr/bin/env bash
# Thirty-fourth run, call 5 (a fresh machine): conditional nodes through the CUDA runtime on torch
# 2.11, run with results/gpu_run34/conditional_attempt.py wired into the native backend as
# hsd_bench/models/native/conditional.py (its header says how; not committed -- on the committed
# code both sides below run the same rule). The float32 smoke (guarded_round: does prepare's
# device check pass; every method equal to HF generate on the graph path), then the 294 M model
# trained here and HiSpec + the hierarchy through the benchmark with the guarded rounds on and off
# (guarded_off.py) in alternating fresh processes, traces last.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w5; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-540} - (SECONDS - start))); }
pack() { tar czf $OUT/call5.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --methods autoregressive,hispec,hierarchy)
t0=$SECONDS
timeout 120 python3 scripts/bench_gpu.py --parts smoke --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
grep -o '"guarded_round": "[^"]*"' $W/smoke/bench.json >> $W/calls.log
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
for p in on1 off1 on2 off2; do
  if (( $(left) > 75 )); then
    t0=$SECONDS
    if [[ $p == on* ]]; then run=(python3 scripts/bench_gpu.py); else run=(python3 results/gpu_run34/guarded_off.py); fi
    timeout $(( $(left) - 3 )) "${run[@]}" "${M[@]}" --target $MODEL --out $W/m294_$p > $W/m294_$p.log 2>&1
    echo "m294_$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip m294_$p: $(left) s left" >> $W/calls.log; fi
done
cat $W/calls.log
