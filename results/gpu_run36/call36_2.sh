#!/usr/bin/env bash
# Thirty-sixth run, call 2 (a fresh machine): the in-process A/B of the host cuts again on the
# shipped 5.6 M target with more rounds (call 1's HiSpec rounds spread 0.94-1.27), then the 294 M
# model trained here (100 s) and the same A/B on it.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w2; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call2.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
t0=$SECONDS
METHODS=autoregressive,hispec,vanilla_sd,hierarchy timeout 200 python3 results/gpu_run36/ab_views.py $W/ab56 checkpoints/ee-24x128 8 > $W/ab56.log 2>&1
echo "ab56 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
METHODS=autoregressive,hispec,hierarchy timeout $(( $(left) - 3 )) python3 results/gpu_run36/ab_views.py $W/ab294 $MODEL 6 > $W/ab294.log 2>&1
echo "ab294 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
cat $W/calls.log
