#!/usr/bin/env bash
# Fifty-sixth run, call 1 (any card): does a blocking host wait keep HiSpec's share on a loaded host?
# Fresh processes of the benchmark's methods part (AR, HiSpec, the hierarchy on the shipped 5.6 M
# target, untraced), each under sync_mode.py with one of RUNS: MODE/LOAD, MODE the primary
# context's wait (spin: CUDA's default here; block: sleep until the device signals), LOAD as in
# results/gpu_run53/load.sh (none, mem:16). Default RUNS alternate ABBA so drift falls on both
# modes. Every row carries the timing thread's preemptions per pass (c066a38), read here on a GPU
# for the first time. WARM=1 on a machine a call already compiled on. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=300 DRY=1 RUNS="spin/none block/mem:2" bash results/gpu_run56/call56_1.sh
source scripts/gpu_env.sh
CALL=${CALL:-call1} source scripts/gpu_call.sh
source results/gpu_run53/load.sh
RUNS=${RUNS:-"spin/none block/none block/mem:16 spin/mem:16 spin/none block/none block/mem:16 spin/mem:16"}
Q=("${M_UNTRACED[@]}")
[[ -n ${DRY:-} ]] && Q+=(--prompts 1 --methods-max-new 8 --reps 2 --device cpu --dtype float32)
i=0
for run in $RUNS; do
  i=$((i + 1)); mode=${run%%/*}; load=${run#*/}
  name=$(unused "p${i}_${mode}_${load/:/x}")
  limit=$(( i == 1 && ${WARM:-0} == 0 ? 220 : 140 ))
  (( $(left) > limit )) || break
  load_start "$load" "$name"
  SYNC_MODE=$mode SYNC_OUT="$W/$name" step "$name" $limit python3 results/gpu_run56/sync_mode.py \
    scripts/bench_gpu.py "${Q[@]}" --methods hispec,hierarchy --target checkpoints/ee-24x128 --out "$W/$name"
  load_stop
done
pack
cat "$W/calls.log" "$W/loads.log"
python3 results/gpu_run56/summary.py "$W"/p*_*/
