#!/usr/bin/env bash
# Thirty-third run, call 1 (a fresh machine): the rows of issue 15 not measured since AR's next
# chunk went in flight (af0ee4a): engine AR against copy bandwidth on the Llama-3.2-1B and
# Llama-3.1-8B shapes (random weights), every method's overhead on the 1B shape (device trace,
# traces last), and gpt-fast against our AR on the shipped 5.6 M model.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w1; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
python3 -c "import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)" >> $W/gpu.txt
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call1.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
t0=$SECONDS
timeout 200 python3 scripts/bench_gpu.py --parts roofline --roofline-models random:llama-1b,random:llama-8b \
  --variants triton+gemv --roofline-hf-reps 0 --reps 3 --out $W/roofline > $W/roofline.log 2>&1
echo "roofline rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
t0=$SECONDS
timeout 170 python3 scripts/bench_gpu.py --parts overhead --overhead-models random:llama-1b --device-trace \
  --time-limit-s 150 --out $W/overhead1b > $W/overhead1b.log 2>&1
echo "overhead1b rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
if (( $(left) > 60 )); then
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 scripts/gpt_fast_reference.py --gpt-fast .ext/gpt-fast \
    --models checkpoints/ee-24x128 --reps 3 --out $W/gpt_fast.json > $W/gpt_fast.log 2>&1
  echo "gpt_fast rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
else echo "skip gpt_fast: $(left) s left" >> $W/calls.log; fi
cat $W/calls.log
