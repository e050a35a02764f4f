#!/usr/bin/env bash
# Fifty-eighth run, call 1 (the sixtieth session): whichever owed work the machine that comes can do.
# - Torch's own conditional graph nodes present (torch >= 2.12): results/gpu_run48/call48_1.sh, the
#   guarded rounds' smoke and A/B.
# - An H200: results/gpu_run51/call51_2.sh, the H200 readings owed since the fiftieth run (the
#   2-, 4-, 8-row profile of the 294 M shape, a 100 s 294 M model, the methods part on it); the
#   next call on the warm machine is results/gpu_run51/call51_3.sh.
# - Otherwise (an H100 with torch 2.11, as every loan since the fifty-first run):
#   results/gpu_run58/call58_2.sh, where HiSpec's time goes beside memory copiers, read by the
#   timing thread's new contention counters (FALLBACK names another script for such a machine).
# Carry [".whl"].
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nodes=$(python3 -c 'import torch, triton; from hsd_bench.models.native.graphs import conditional_graphs_available as c; print(torch.__version__, triton.__version__, "conditional nodes", c())' 2>&1)
echo "$nodes"
if [[ $nodes == *"conditional nodes True"* ]]; then
  bash results/gpu_run48/call48_1.sh
elif nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  bash results/gpu_run51/call51_2.sh
else
  fallback=${FALLBACK:-results/gpu_run58/call58_2.sh}
  echo "not an H200 and no conditional nodes: $fallback"
  bash "$fallback"
fi
