#!/usr/bin/env bash
# Twenty-ninth run, call 2 (294 M model trained here): the benchmark's methods part on the code
# with the verdict steps compiled (HEAD + verdicts.py) and on the code before the twenty-eighth
# session's cuts (b7c998c hsd_bench, .ext/old28), both with traces last; then the float32 smoke.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-575} - (SECONDS - start))); }
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target runs/gpu-24x1024)
OUT=$W/t GPU_CKPT=runs/gpu-24x1024 GPU_BUDGET=140 bash scripts/gpu_train_model.sh > $W/train.log 2>&1
echo "train rc=$? $((SECONDS - start)) s" >> $W/calls.log
for run in new1 old1 new2; do
  (( $(left) < 180 )) && { echo "skip $run: $(left) s left" >> $W/calls.log; continue; }
  if [[ $run == old* ]]; then script=.ext/old28/scripts/bench_gpu.py; else script=scripts/bench_gpu.py; fi
  t0=$SECONDS
  timeout $(( $(left) - 75 )) python3 $script "${M[@]}" --out $W/$run > $W/$run.log 2>&1
  echo "$run rc=$? $((SECONDS - t0)) s" >> $W/calls.log
done
if (( $(left) > 70 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py --parts smoke --target checkpoints/ee-24x128 --draft checkpoints/family-2x128 \
    --mid-draft checkpoints/family-6x128 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --out $W/smoke > $W/smoke.log 2>&1
  echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log
else echo "skip smoke: $(left) s left" >> $W/calls.log; fi
rm -rf $W/t/*.pt 2>/dev/null
tar czf $OUT/call2.tgz -C $W --exclude='*.safetensors' .
cat $W/calls.log
