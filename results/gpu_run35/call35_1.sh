#!/usr/bin/env bash
# Thirty-fifth run, call 1 (a fresh machine): the by-hand conditional nodes (results/gpu_run34/
# conditional_attempt.py, with the thirty-fourth run's allocator fix) -- first inside the project's
# GraphCache (cond_cache_probe.py), then through the whole benchmark with no project edit
# (with_conditional.py): the float32 smoke must read guarded_round "runs and skips" and every method
# must equal HF generate. Only if it does: the 294 M model trained here and AR, HiSpec and the
# hierarchy with the guarded rounds on (with_conditional.py) and off (guarded_off.py) in alternating
# fresh processes.
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
   --device-trace --methods autoregressive,hispec,hierarchy)
t0=$SECONDS
OUT=$W timeout 60 python3 results/gpu_run35/cond_cache_probe.py > $W/probe.log 2>&1
echo "probe rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout 150 python3 results/gpu_run34/with_conditional.py --parts smoke --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
grep -o '"guarded_round": "[^"]*"' $W/smoke/bench.json >> $W/calls.log
if ! grep -q '"guarded_round": "runs and skips"' $W/smoke/bench.json; then
  echo "the guarded rounds did not pass their device check: no A/B" >> $W/calls.log; pack; cat $W/calls.log; exit 0
fi
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
for p in on1 off1 on2 off2; do
  if (( $(left) > 75 )); then
    t0=$SECONDS
    if [[ $p == on* ]]; then run=(python3 results/gpu_run34/with_conditional.py); else run=(python3 results/gpu_run34/guarded_off.py); fi
    timeout $(( $(left) - 3 )) "${run[@]}" "${M[@]}" --target $MODEL --out $W/m294_$p > $W/m294_$p.log 2>&1
    echo "m294_$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip m294_$p: $(left) s left" >> $W/calls.log; fi
done
cat $W/calls.log
