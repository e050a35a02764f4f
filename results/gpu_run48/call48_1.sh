#!/usr/bin/env bash
# Forty-eighth run, call 1: the work owed to a device with torch >= 2.12 (CUDA conditional graph
# nodes, the engine's guarded look-ahead rounds): the float32 smoke, whose `guarded_round` check
# says whether the device both runs and skips a guarded graph, then the in-process A/B of
# results/gpu_run10/diag_guard.py on the shipped 5.6 M model. On torch 2.11 (every lent image so
# far) it records the versions and stops. Carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
python3 -c 'import torch, transformers, triton; print(torch.__version__, torch.version.cuda, transformers.__version__, triton.__version__)' \
  > "$W/versions.txt" 2>&1
# Gated on the engine's own test of the capability, not torch's version number (a torch >= 2.12 whose
# test reads False shows in versions.txt); call 1 ran with a version test (torch >= 2.12), which
# answers alike on the lent torch 2.11, and its versions.txt has no second line.
nodes=$(python3 -c 'from hsd_bench.models.native.graphs import conditional_graphs_available as c; print(c())' 2>&1)
echo "conditional_graphs_available $nodes" >> "$W/versions.txt"
cat "$W/versions.txt" "$W/gpu.txt"
if [[ "$nodes" == True ]]; then
  step smoke 200 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
  (( $(left) > 200 )) && step diag_guard $(( $(left) - 20 )) python3 results/gpu_run10/diag_guard.py checkpoints/ee-24x128 \
    "$W/diag_guard" hispec,hierarchy
else
  echo "conditional_graphs_available() is False on this torch: nothing owed can run" | tee "$W/owed.txt"
fi
pack
cat "$W/calls.log" 2>/dev/null; grep -h 'guarded_round' "$W"/smoke/*.md 2>/dev/null | head -3
