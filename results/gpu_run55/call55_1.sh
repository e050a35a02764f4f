#!/usr/bin/env bash
# Fifty-fifth run, call 1 (fifty-seventh session, any card): fresh traced processes of the methods
# part (AR, HiSpec, the hierarchy on the shipped 5.6 M target), alternating LOADS (default
# "mem:16 none mem:16"; host_load.py hogs, results/gpu_run53/load.sh), with the measuring passes
# now interleaved with the timed ones (bench_gpu.measure_engine). Why: the fifty-fourth run's loaded
# processes read HiSpec's share in passes 16-54 % slower than their timed passes, run after all of
# them. Paired with the timed pass just before it, a measuring pass that is still much slower is
# slowed by its own events (each pass records the event pair's host cost in its state), one that is
# not was another host state. The kernel trace reads the device's idle at the timed rate beside.
# WARM=1 on a machine a call already compiled on. Carry [".whl"]. A CPU dry run: OUT=<dir> CALL_LIMIT=300 DRY=1 bash results/gpu_run55/call55_1.sh
source scripts/gpu_env.sh
CALL=${CALL:-call1} source scripts/gpu_call.sh
source results/gpu_run53/load.sh
LOADS=${LOADS:-"mem:16 none mem:16"}
Q=("${M[@]}")
# PASSES=n: n measuring passes per engine (--overhead-passes; the first --reps paired, the rest after)
[[ -n ${PASSES:-} ]] && Q+=(--overhead-passes "$PASSES")
[[ -n ${DRY:-} ]] && Q+=(--prompts 1 --methods-max-new 8 --reps 2 --device cpu --dtype float32)
# a fresh machine's first process compiles every step; WARM=1 where a call already did
loaded_processes p $(( (${WARM:-0} == 0 ? 220 : 140) + ${PASSES:-3} * 5 )) $((140 + ${PASSES:-3} * 5))
pack
cat "$W/calls.log" "$W/loads.log"
python3 results/gpu_run55/summary.py "$W"/p*_*/
