#!/usr/bin/env bash
# Thirty-first run, call 5: where the host's time goes for AR on the 294 M model (retrained here, a
# fresh machine, 120 s of training), whose device waited 385-390 µs at each chunk boundary in calls
# 3 and 4 -- scripts/profile_host.py (run.py's engines, cProfile over one pass after the unprofiled
# ones); then the hierarchy if time is left.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w5; mkdir -p $W
left() { echo $((${LIMIT:-270} - (SECONDS - start))); }
pack() { tar czf $OUT/call5.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
OUT=$W/t GPU_CKPT=runs/gpu-24x1024 GPU_BUDGET=120 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - start)) s" >> $W/calls.log; pack
for m in autoregressive hierarchy; do
  (( $(left) < 35 )) && { echo "skip prof294_$m: $(left) s left" >> $W/calls.log; continue; }
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/profile_host.py --model runs/gpu-24x1024 --methods $m \
    --out $W/prof294_$m > $W/prof294_$m.log 2>&1
  echo "prof294_$m rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
done
cat $W/calls.log
