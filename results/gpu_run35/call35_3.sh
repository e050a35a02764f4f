#!/usr/bin/env bash
# Thirty-fifth run, call 3 (a fresh machine, the session's last device time): call 1's A/B on the
# shipped 5.6 M target (checkpoints/ee-24x128; no training), the most host-bound model, where a
# host round trip saved should show first -- off and on alternating while time lasts.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w3; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
left() { echo $((${LIMIT:-460} - (SECONDS - start))); }
pack() { tar czf $OUT/call3.tgz -C $W --exclude='*.safetensors' --exclude='*.pt' . ; }
M=(--parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4
   --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
   --device-trace --methods autoregressive,hispec,hierarchy)
for p in m5_off1 m5_on1 m5_off2 m5_on2 m5_off3 m5_on3; do
  if (( $(left) > 60 )); then
    t0=$SECONDS
    if [[ $p == *on* ]]; then run=(python3 results/gpu_run34/with_conditional.py); else run=(python3 results/gpu_run34/guarded_off.py); fi
    timeout $(( $(left) - 3 )) "${run[@]}" "${M[@]}" --target checkpoints/ee-24x128 --out $W/$p > $W/$p.log 2>&1
    echo "$p rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
  else echo "skip $p: $(left) s left" >> $W/calls.log; fi
done
cat $W/calls.log
