#!/usr/bin/env bash
# Thirty-second run, call 1: AR's next chunk queued before a chunk is read (Engine._launch_next_chunk).
# The float32 smoke (every method equals HF generate on the graph path, AR's chunks in flight
# included), then AR with and without it in one process (--lookahead both) on the shipped 5.6 M
# model and on the 294 M model trained here, then run.py's job on that model (its AR baseline
# against the benchmark's).
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call1.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace)
t0=$SECONDS
timeout 150 python3 scripts/bench_gpu.py --parts smoke --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout 120 python3 scripts/bench_gpu.py "${M[@]}" --methods autoregressive --lookahead both --out $W/ar5m > $W/ar5m.log 2>&1
echo "ar5m rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=130 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout $(( $(left) - 70 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --methods autoregressive \
  --lookahead both --out $W/ar294 > $W/ar294.log 2>&1
echo "ar294 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 40 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 run.py model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 \
    dataset.limit=8 progress=false method=layerskip exit=6 method.draft_len=4 results_dir=runs/agree294 \
    > $W/runpy.log 2>&1
  echo "run.py layerskip rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' $W/runpy.log | tail -1)" >> $W/calls.log
  cp -r runs/agree294 $W/ 2>/dev/null; pack
else echo "skip run.py: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log
