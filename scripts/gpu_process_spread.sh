#!/usr/bin/env bash
# Why one process decodes slower than the next on the same GPU: fresh processes of
# scripts/diag_timing_gap.py (decoder after decoder, nothing between generations), each
# recording its host (CPU affinity, NUMA nodes, a Python loop and a kernel-launch loop) and
# timing AR and the methods with the native backend's prefill eager, chunked or auto, unpinned or
# pinned (taskset) to the CPUs next to the GPU, or with only the main thread pinned to one CPU
# (PINS value mainN: --pin-main N). With REPS > 1 each pass over the prompts is recorded with the
# scheduler's counters (summary.txt: one "rep" line per pass). One device call:
#
#   OUT=<dir> bash scripts/gpu_process_spread.sh
#   OUT=<dir> MODEL=runs/gpu-24x1024 ROUNDS=1 PINS=no bash scripts/gpu_process_spread.sh
#   OUT=<dir> PREFILLS=auto PINS="no main3" REPS=6 bash scripts/gpu_process_spread.sh
#   DEVICE=cpu DTYPE=float32 ROUNDS=1 METHODS=autoregressive bash scripts/gpu_process_spread.sh  # a dry run
#
# Writes $OUT/spread/<round>_<prefill>_<pin>.{json,log}, $OUT/spread/machine.txt and a
# one-line-per-process summary, $OUT/spread/summary.txt; all of it packed as $OUT/spread.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/spread_out}
MODEL=${MODEL:-checkpoints/ee-24x128}
ROUNDS=${ROUNDS:-2}
PREFILLS=${PREFILLS:-eager chunked auto}
PINS=${PINS:-no yes}
METHODS=${METHODS:-autoregressive,layerskip,hispec}
REPS=${REPS:-1}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
PER_PROCESS_S=${PER_PROCESS_S:-90}
PY=${PYTHON:-python3}
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
D=$OUT/spread
mkdir -p "$D"
{
  nvidia-smi --query-gpu=name,pci.bus_id,driver_version --format=csv,noheader
  nvidia-smi topo -m
  lscpu
  cat /sys/fs/cgroup/cpu.max 2>/dev/null
} >"$D/machine.txt" 2>&1
# The CPUs this process may use that sit next to the GPU; else those of the first NUMA node it may use.
LOCAL=$($PY scripts/diag_timing_gap.py --print-pin-cpus --device "$DEVICE")
echo "pinned runs use CPUs $LOCAL" | tee -a "$D/machine.txt"
for r in $(seq 1 "$ROUNDS"); do
  for p in $PREFILLS; do
    for pin in $PINS; do
      name="${r}_${p}_${pin}"
      pre=() main=()
      [[ "$pin" == yes ]] && pre=(taskset -c "$LOCAL")
      [[ "$pin" == main* ]] && main=(--pin-main "${pin#main}")
      echo "$name loadavg $(cat /proc/loadavg)" >>"$D/$name.log"
      timeout "$PER_PROCESS_S" "${pre[@]}" $PY scripts/diag_timing_gap.py --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" \
        --conditions b2b \
        --reps "$REPS" --methods "$METHODS" --host-probe --prefill "$p" "${main[@]}" --out "$D/$name.json" >>"$D/$name.log" 2>&1
      echo "$name rc=$? $(grep -h '^threads=' "$D/$name.log" | tail -n 1)" | tee -a "$D/summary.txt"
      grep -h '^  rep' "$D/$name.log" >>"$D/summary.txt"
    done
  done
done
# One archive: a device call brings back only a few files.
tar czf "$OUT/spread.tar.gz" -C "$OUT" spread
