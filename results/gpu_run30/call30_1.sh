#!/usr/bin/env bash
# Thirtieth run, call 1 (5.6 M model and the Llama-1B shape, HEAD f1a8754): the float32 smoke on the
# graph path after the twenty-ninth session's layer-step refactor; HiSpec's host Python under
# cProfile on the real graph path (scripts/profile_host.py); the 1B shape's overhead part with the
# traces last; the benchmark's methods part on 5.6 M. Each step is packed as soon as it ends.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-570} - (SECONDS - start))); }
pack() { tar czf $OUT/call1_$1.tgz -C $W $1 $1.log calls.log gpu.txt 2>/dev/null; }
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --target checkpoints/ee-24x128)
t0=$SECONDS
timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py --parts smoke --target checkpoints/ee-24x128 --draft checkpoints/family-2x128 \
  --mid-draft checkpoints/family-6x128 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack smoke
t0=$SECONDS
timeout $(( $(left) - 3 )) python3 scripts/profile_host.py --methods hispec,vanilla_sd --model checkpoints/ee-24x128 \
  --draft checkpoints/family-2x128 --top 40 --out $W/prof > $W/prof.log 2>&1
echo "prof rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack prof
t0=$SECONDS
timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py --parts overhead --overhead-models random:llama-1b --device-trace \
  --time-limit-s $(( $(left) - 20 )) --out $W/o1b > $W/o1b.log 2>&1
echo "o1b rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack o1b
if (( $(left) > 110 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --out $W/m5 > $W/m5.log 2>&1
  echo "m5 rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack m5
else echo "skip m5: $(left) s left" >> $W/calls.log; pack calls; fi
cat $W/calls.log
