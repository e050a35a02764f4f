#!/usr/bin/env bash
# Fifty-fifth run, call 4: is the loaded host's cost to HiSpec a share of the CPU or of memory?
# The mem:16 load runs 16 copiers on the machine's 16 vCPUs, so it also takes time slices from the
# benchmark. Here the same 16 copiers are pinned to cores 2-15 (taskset) and the benchmark to cores
# 0-1, against one process with both unpinned, alternating (MODES, default "pinned unpinned
# pinned"), traced as in call55_1.sh. If pinning restores the unloaded share (5.6-6.2 % in call 3's
# unloaded process), the cliff is CPU contention a user can avoid; if not, memory. Carry [".whl"].
source scripts/gpu_env.sh
CALL=${CALL:-call4} source scripts/gpu_call.sh
MODES=${MODES:-"pinned unpinned pinned"}
Q=("${M[@]}")
[[ -n ${DRY:-} ]] && Q+=(--prompts 1 --methods-max-new 8 --reps 2 --device cpu --dtype float32)
i=0
for mode in $MODES; do
  i=$((i + 1)); name=$(unused "p${i}_${mode}")
  (( $(left) > 150 )) || break
  pids=(); bench=()
  for _ in $(seq 1 ${HOGS:-16}); do
    if [[ $mode == pinned ]]; then taskset -c 2-15 python3 results/gpu_run53/host_load.py mem & else
      python3 results/gpu_run53/host_load.py mem & fi
    pids+=($!)
  done
  [[ $mode == pinned ]] && bench=(taskset -c 0-1)
  sleep 3; echo "$name loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >> "$W/loads.log"
  step "$name" 140 "${bench[@]}" python3 scripts/bench_gpu.py "${Q[@]}" --methods hispec,hierarchy \
    --target checkpoints/ee-24x128 --out "$W/$name"
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
done
pack
cat "$W/calls.log" "$W/loads.log"
python3 results/gpu_run55/summary.py "$W"/p*_*/
