#!/usr/bin/env bash
# Fifty-fourth run, call 1 (any card, a fresh machine, the shipped 5.6 M target): the token row --
# draft chains and verdict steps write their tokens into the engine's buffer on the device, so the
# host's copy of drafted tokens and its write of each verifier's token drop out (HiSpec: 10.9 -> 7.9
# host launches per token on the CPU stand-in). First the float32 smoke on the graph path (every
# method must equal HF generate), then the in-process A/B against the code before it (AB_OLD,
# default 4fe1ae9; hsd_bench_old made by results/gpu_run36/make_old_package.sh before the call),
# unloaded, then beside LOAD (default mem:16) memory copiers, where HiSpec missed its 10 % (the
# fifty-third run; LOADED_METHODS, default AR, HiSpec and the hierarchy). Carry [".whl"]. A CPU dry run:
#   OUT=<dir> CALL_LIMIT=300 DRY=1 PROMPTS=1 NEW=8 DEV=cpu bash results/gpu_run54/call54_1.sh
source scripts/gpu_env.sh
CALL=${CALL:-call1} source scripts/gpu_call.sh
source results/gpu_run53/load.sh
export AB_OLD=${AB_OLD:-4fe1ae9} AB_LABEL="token row"
LOAD=${LOAD:-mem:16}
ROUNDS=${ROUNDS:-4}
if [[ -z ${DRY:-} ]]; then
  step smoke 170 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
fi
name=$(unused ab_none)
(( $(left) > 200 )) && AB_NAME=$name step "$name" $(( $(left) - 200 )) \
  python3 results/gpu_run36/ab_views.py "$W/ab" checkpoints/ee-24x128 "$ROUNDS"
name=$(unused "ab_${LOAD/:/x}")
if (( $(left) > 60 )); then
  load_start "$LOAD" "$name"
  AB_NAME=$name METHODS=${LOADED_METHODS:-autoregressive,hispec,hierarchy} step "$name" $(( $(left) - 5 )) python3 results/gpu_run36/ab_views.py "$W/ab" checkpoints/ee-24x128 "$ROUNDS"
  load_stop
fi
pack
cat "$W/calls.log" "$W/loads.log" 2>/dev/null
cat "$W"/ab/*.md 2>/dev/null
