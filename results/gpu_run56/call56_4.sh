#!/usr/bin/env bash
# Fifty-sixth run, call 4 (any card): run.py's HiSpec job unloaded (its done line's preemption count
# read on a GPU), then call56_3.sh's processes without the sibling probe, LAYOUTS default "rest15 all
# self rest15 all self": is it every vCPU busy (rest15: 15 copiers on vCPUs 1-15, the benchmark
# alone on 0) or the benchmark's vCPU shared (all) that slows HiSpec, and can a run that pins itself
# to one vCPU (self) keep its share beside 16 unpinned copiers? Call 3's benchmark kept it with 14
# copiers pinned away (rest), one vCPU left idle. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=400 DRY=1 LAYOUTS="self" bash results/gpu_run56/call56_4.sh
source scripts/gpu_env.sh
# CALL set for the whole script, not as a prefix of `source` (gone after it): the nested call below
# must write into this call's W and pack into this call's archive
CALL=${CALL:-call4}
source scripts/gpu_call.sh
R=(model.path=checkpoints/ee-24x128 max_new_tokens=128 dataset.limit=8 method=hispec exit=3,6
   method.draft_len=2 method.period=4 results_dir="$W/runpy")
if [[ -n ${DRY:-} ]]; then R+=(model.device=cpu max_new_tokens=8 dataset.limit=2); else
  R+=(model.device=cuda model.dtype=bfloat16); fi
step runpy 200 python3 run.py "${R[@]}"
grep -E "done|warn" "$W/runpy.log" | tail -4
CALL=$CALL CALL_LIMIT=$(left) WARM=1 PROBE=0 LAYOUTS=${LAYOUTS:-"rest15 all self rest15 all self"} bash results/gpu_run56/call56_3.sh
