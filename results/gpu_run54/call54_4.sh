#!/usr/bin/env bash
# Fifty-fourth run, call 4 (any card): the token row with a drafted token's two writes (the chain's
# static output and the row) as one compiled function -- one kernel, where the first version
# (95ee0d3) added a kernel per drafted token -- checked by the float32 smoke on the graph path, then
# timed against the code before the token row (AB_OLD, default 4fe1ae9) in one process, unloaded:
# AR, HiSpec and vanilla_sd (METHODS), ROUNDS rounds. Carry [".whl"]; hsd_bench_old from
# results/gpu_run36/make_old_package.sh.
source scripts/gpu_env.sh
CALL=${CALL:-call4} source scripts/gpu_call.sh
export AB_OLD=${AB_OLD:-4fe1ae9} AB_LABEL="token row, one kernel per drafted token"
[[ -z ${DRY:-} ]] && step smoke 150 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
name=$(unused ab_fused)
(( $(left) > 60 )) && AB_NAME=$name METHODS=${METHODS:-autoregressive,hispec,vanilla_sd} step "$name" $(( $(left) - 5 )) \
  python3 results/gpu_run36/ab_views.py "$W/ab" checkpoints/ee-24x128 "${ROUNDS:-4}"
pack
cat "$W/calls.log"; cat "$W"/ab/*.md 2>/dev/null
