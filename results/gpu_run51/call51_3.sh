#!/usr/bin/env bash
# Fifty-first run, call 3 (written and run on the warm machine right after calls 1 and 2): the two
# host-bound overhead targets in fresh processes, alternating, after call 2's 294 M reading
# (hierarchy 4.4 %, 4.3-5.3 % over its passes): the benchmark's methods part (AR, HiSpec, hierarchy;
# one process each time, no trace) on the shipped 5.6 M target (HiSpec against <= 10 %) and on
# call 2's 100 s 294 M model (hierarchy against <= 5 %), as many processes of each as fit. On a machine
# without call 2's model (a fresh one) it trains one first (~140 s), where the call's time allows.
# Carry [".whl"].
source scripts/gpu_env.sh
CALL=call3 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}
(( $(left) > 330 )) && step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
for i in 1 2 3 4; do
  (( $(left) > 80 )) && step s56_$i 80 python3 scripts/bench_gpu.py "${M_UNTRACED[@]}" --methods hispec,hierarchy \
    --target checkpoints/ee-24x128 --out "$W/s56_$i"
  (( $(left) > 90 )) && [ -d "$MODEL" ] && step m294_$i 90 python3 scripts/bench_gpu.py "${M_UNTRACED[@]}" \
    --methods hispec,hierarchy --target $MODEL --out "$W/m294_$i"
done
cat $W/calls.log
for f in "$W"/s56_? "$W"/m294_?; do [ -d "$f" ] || continue; echo "$f"; grep -h "ours AR\|ours hispec\|ours hierarchy" "$f/bench.md" | cut -d'|' -f2,4,10; done
