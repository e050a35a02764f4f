#!/usr/bin/env bash
# Thirty-first run, call 3 (294 M model trained here, f4b95ef: the early verification backed out):
# the benchmark's methods part, traces last, then run.py's hispec job on the same model; a second
# benchmark process if time is left.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-575} - (SECONDS - start))); }
pack() { tar czf $OUT/call3.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
MODEL=runs/gpu-24x1024
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target $MODEL)
OUT=$W/t GPU_CKPT=$MODEL GPU_BUDGET=140 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - start)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout $(( $(left) - 50 )) python3 scripts/bench_gpu.py "${M[@]}" --out $W/m294_1 > $W/m294_1.log 2>&1
echo "m294_1 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 40 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 run.py model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 \
    dataset.limit=8 progress=false method=hispec exit=3,6 method.draft_len=2 method.period=4 results_dir=runs/agree294 \
    > $W/runpy_hispec.log 2>&1
  echo "run.py hispec rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' $W/runpy_hispec.log | tail -1)" >> $W/calls.log
  cp -r runs/agree294 $W/ 2>/dev/null; pack
fi
if (( $(left) > 175 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --out $W/m294_2 > $W/m294_2.log 2>&1
  echo "m294_2 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip m294_2: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log
