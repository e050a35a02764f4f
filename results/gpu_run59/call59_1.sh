#!/usr/bin/env bash
# Fifty-ninth run, call 1 (the sixty-first session): the owed readings only a machine unlike every
# loan since the fifty-first run can give.
# - Torch's own conditional graph nodes present (torch >= 2.12): results/gpu_run48/call48_1.sh.
# - An H200: results/gpu_run51/call51_2.sh (the next call on the warm machine is
#   results/gpu_run51/call51_3.sh).
# - Otherwise (an H100 with torch 2.11, as every loan since the fifty-first run):
#   results/gpu_run59/call59_2.sh, whether queued device work hides a wait for a CPU.
# Carry [".whl"].
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nodes=$(python3 -c 'import torch, triton; from hsd_bench.models.native.graphs import conditional_graphs_available as c; print(torch.__version__, triton.__version__, "conditional nodes", c())' 2>&1)
echo "$nodes"
if [[ $nodes == *"conditional nodes True"* ]]; then
  bash results/gpu_run48/call48_1.sh
elif nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  bash results/gpu_run51/call51_2.sh
else
  echo "not an H200 and no conditional nodes: results/gpu_run59/call59_2.sh"
  bash results/gpu_run59/call59_2.sh
fi
