#!/usr/bin/env bash
# Thirty-eighth run, call 1 (the shipped 5.6 M target): the host cost of the small ops under no_grad and
# inference mode (host_ops_modes.py), the float32 smoke on the graph path with the engine in inference
# mode (every method must equal HF generate), the in-process A/B against b85df48 (gpu_run36/ab_views.py
# named ab_inference; hsd_bench_old made by `bash results/gpu_run36/make_old_package.sh b85df48` before
# the call), then `M` on the new code (the 5.6 M model's overhead reading).
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the run.)
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
step ops 60 python3 results/gpu_run38/host_ops_modes.py "$W/ops"
step smoke 170 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
step ab56 $(( $(left) - 130 )) env AB_OLD=b85df48 AB_NAME=ab_inference AB_LABEL="inference mode" \
  python3 results/gpu_run36/ab_views.py "$W/ab56" checkpoints/ee-24x128 4
if (( $(left) > 100 )); then
  step m56 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target checkpoints/ee-24x128 --out "$W/m56"
else echo "skip m56: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log" "$W/ops.log"; grep -iE "equal|differ|FAIL|mismatch" "$W/smoke.log" | tail -12; tail -8 "$W/ab56.log"
