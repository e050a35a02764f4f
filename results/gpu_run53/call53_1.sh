#!/usr/bin/env bash
# Fifty-third run, call 1 (prepared in the fifty-fourth session, for any card): HiSpec and the
# hierarchy on the shipped 5.6 M model with the host loaded on purpose (host_load.py: none, then
# LOADS' "kind:count" hogs), one fresh benchmark process each, alternating with unloaded ones, so
# the share outside forwards (issue 15: <= 10 % on 5.6 M) reads against the host probe beyond the
# 11-12.6 us the fifty-first and fifty-second runs' hosts gave. Every miss of that target before
# the attention kernel fell where the host probed 13.9-16.7 us; since the kernel, one such process
# (12.4 %). TRACE=1 (the fifty-sixth session) adds the kernel trace (`M` for `M_UNTRACED`): the
# device's idle at the timed passes' rate beside the share, which the fifty-fourth run found read in
# a measuring pass up to 54 % slower than the timed passes on a loaded host. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=200 DRY=1 bash results/gpu_run53/call53_1.sh
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
source results/gpu_run53/load.sh
LOADS=${LOADS:-"none cpu:8 none cpu:16 none mem:8 cpu:24"}
lscpu >> "$W/nproc.txt" 2>&1
extra=0  # seconds more per process for its traced pass
if [[ -n ${TRACE:-} ]]; then Q=("${M[@]}"); extra=40; else Q=("${M_UNTRACED[@]}"); fi
[[ -n ${DRY:-} ]] && Q+=(--prompts 1 --methods-max-new 8 --reps 1 --device cpu --dtype float32)
loaded_processes s56_ $((180 + extra)) $((100 + extra))
pack
cat "$W/calls.log" "$W/loads.log"
for f in "$W"/s56_*; do [ -d "$f" ] || continue; echo "$f"
  grep -h "ours AR\|ours hispec\|ours hierarchy" "$f/bench.md" | awk -F'|' '{print $2 "|" $4 "|" $10 "|" $12 "|" $(NF-1)}'; done
