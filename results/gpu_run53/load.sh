# Sourced by this folder's call scripts (after scripts/gpu_call.sh): a host load around one step.
# - load_start LOAD: "none", or "kind:count" -- count host_load.py hogs of kind (cpu, mem) started
#   in the background, given 3 s to run; W/loads.log notes LOAD's step with the load average;
# - load_stop: the hogs killed and reaped, so the next step starts on an unloaded host.
load_start() {
  LOAD_PIDS=()
  if [[ $1 != none ]]; then
    for _ in $(seq 1 "${1#*:}"); do python3 results/gpu_run53/host_load.py "${1%:*}" & LOAD_PIDS+=($!); done
    sleep 3
  fi
  echo "${2:-$1} loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >> "$W/loads.log"
}
load_stop() {
  (( ${#LOAD_PIDS[@]} )) && kill "${LOAD_PIDS[@]}" 2>/dev/null; wait "${LOAD_PIDS[@]}" 2>/dev/null
  LOAD_PIDS=()
}
# - loaded_processes PREFIX FIRST REST: one process of the benchmark's methods part (HiSpec and the
#   hierarchy on the shipped target, options Q) beside each load of LOADS in turn, named
#   PREFIX<i>_<load>; FIRST seconds for the first (a fresh machine compiles every step in it, under
#   load more than 100 s: fifty-third run, call 4), REST for the others; it stops where the call
#   has less time left than a process's limit. call53_1.sh and call55_1.sh loop through it.
loaded_processes() {
  local prefix=$1 first=$2 rest=$3 i=0 load name limit
  for load in $LOADS; do
    i=$((i + 1)); name=$(unused "${prefix}${i}_${load/:/x}")
    limit=$(( i == 1 ? first : rest ))
    (( $(left) > limit )) || break
    load_start "$load" "$name"
    step "$name" $limit python3 scripts/bench_gpu.py "${Q[@]}" --methods hispec,hierarchy \
      --target checkpoints/ee-24x128 --out "$W/$name"
    load_stop
  done
}
