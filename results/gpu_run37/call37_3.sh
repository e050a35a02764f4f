#!/usr/bin/env bash
# Thirty-seventh run, call 3 (the shipped 5.6 M target): the verification queued behind its round --
# the float32 smoke on the graph path (every method must equal HF generate), the in-process A/B
# against 26b50ad (gpu_run36/ab_views.py named ab_ahead; hsd_bench_old made by
# `bash results/gpu_run36/make_old_package.sh 26b50ad` before the call), then the
# benchmark's methods part with the new code (outside forwards, traces last).
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the thirty-eighth run.)
source scripts/gpu_env.sh
CALL=call3 source scripts/gpu_call.sh
step smoke 170 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
step ab56 $(( $(left) - 130 )) env AB_OLD=26b50ad AB_NAME=ab_ahead AB_LABEL="verification queued behind its round" \
  python3 results/gpu_run36/ab_views.py "$W/ab56" checkpoints/ee-24x128 6
if (( $(left) > 90 )); then
  step m56 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out "$W/m56"
else echo "skip m56: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -E "smoke passed|FAIL" "$W/smoke.log" | cut -c1-600; tail -8 "$W/ab56.log"
grep -A12 "^| method" "$W/m56/bench.md" 2>/dev/null | head -14
