#!/usr/bin/env bash
# Fifty-sixth run, call 2 (a warm machine): run.py's HiSpec job in each of RUNPY (MODE/LOAD as in
# call56_1.sh; default "spin/none spin/mem:16"), so its done line's preemption count and its
# warnings are read on a GPU, unloaded and beside 16 memory copiers; then call56_1.sh's processes
# (RUNS) with the time left. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=400 DRY=1 RUNPY="spin/none" RUNS="spin/none" bash results/gpu_run56/call56_2.sh
source scripts/gpu_env.sh
# CALL set for the whole script, not as a prefix of `source` (gone after it): the nested call below
# must write into this call's W and pack into this call's archive
CALL=${CALL:-call2}
source scripts/gpu_call.sh
source results/gpu_run53/load.sh
RUNPY=${RUNPY:-"spin/none spin/mem:16"}
R=(model.path=checkpoints/ee-24x128 max_new_tokens=128 dataset.limit=8 method=hispec exit=3,6
   method.draft_len=2 method.period=4)
if [[ -n ${DRY:-} ]]; then R+=(model.device=cpu max_new_tokens=8 dataset.limit=2); else
  R+=(model.device=cuda model.dtype=bfloat16); fi
i=0
for run in $RUNPY; do
  i=$((i + 1)); mode=${run%%/*}; load=${run#*/}
  name=$(unused "r${i}_${mode}_${load/:/x}")
  (( $(left) > 160 )) || break
  mkdir -p "$W/$name"
  load_start "$load" "$name"
  # results_dir: each job its own (a run's directory is named by its config, so a second job of the
  # same config would find the first's finished run and time nothing), copied back with the call
  SYNC_MODE=$mode SYNC_OUT="$W/$name" step "$name" 150 python3 results/gpu_run56/sync_mode.py run.py "${R[@]}" \
    results_dir="$W/$name/runs"
  load_stop
  grep -E "done|warn|WARN|preempted" "$W/$name.log" | tail -6
done
CALL=$CALL CALL_LIMIT=$(( $(left) )) WARM=1 bash results/gpu_run56/call56_1.sh
