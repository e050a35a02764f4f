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
