#!/usr/bin/env bash
# Thirty-seventh run, call 2 (the shipped 5.6 M target): the driver copies checked against the torch
# ops on the GPU (check_copies.py), the float32 smoke on the graph path (every method must equal HF
# generate), the in-process A/B against 26b50ad (gpu_run36/ab_views.py named ab_copies; hsd_bench_old made
# by `bash results/gpu_run36/make_old_package.sh 26b50ad` before the call), then the sampled host profile again with the new code.
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the thirty-eighth run.)
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
step copies 60 python3 results/gpu_run37/check_copies.py "$W/copies"
step smoke 170 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
step ab56 $(( $(left) - 100 )) env AB_OLD=26b50ad AB_NAME=ab_copies AB_LABEL="driver copies" \
  python3 results/gpu_run36/ab_views.py "$W/ab56" checkpoints/ee-24x128 4
if (( $(left) > 90 )); then
  step py $(( $(left) - 8 )) /tmp/site/bin/py-spy record --idle --nonblocking -r 1000 -f raw -o "$W/raw.txt" -- \
    env SECONDS=15 METHODS=hispec,hierarchy python3 results/gpu_run37/spy_host.py "$W/py"
  python3 results/gpu_run37/spy_analyze.py "$W/raw.txt" "$W/py/rates.json" 1000 30 > "$W/spy.md" 2>> "$W/calls.log"; pack
else echo "skip spy: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log" "$W/copies.log"; grep -iE "equal|differ|FAIL|mismatch" "$W/smoke.log" | tail -12; tail -8 "$W/ab56.log"
