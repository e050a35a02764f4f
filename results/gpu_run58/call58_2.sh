#!/usr/bin/env bash
# Fifty-eighth run, call 2 (any card; call58_1.sh runs it where the machine can do nothing owed):
# where HiSpec's time goes beside 16 unpinned memory copiers on the shipped 5.6 M model, now that
# every timed generation reads what other threads took from the timing thread
# (host_probe.contention: preemptions, seconds waiting for a CPU, moves between CPUs). The
# fifty-seventh run's loaded run.py job decoded passes 33 % apart while preempted 23x a pass, and
# another loaded job lost 11 % while preempted 1-2x: is the loss the thread waiting for a CPU,
# or a thread that ran but slower (moved, caches cold)? (1) run.py's HiSpec job beside each of
# RUNPY's loads (default "none mem:16 mem:16 none"; the first on a fresh machine compiles, so it
# gets 200 s); (2) with the time left, fresh benchmark processes (methods part, HiSpec and the
# hierarchy, untraced) beside each of LOADS (default "mem:16 none mem:16"). Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=400 DRY=1 RUNPY="none cpu:2" LOADS="cpu:2" bash results/gpu_run58/call58_2.sh
source scripts/gpu_env.sh
CALL=${CALL:-call2}
source scripts/gpu_call.sh
source results/gpu_run53/load.sh
lscpu >> "$W/nproc.txt" 2>&1
R=(model.path=checkpoints/ee-24x128 max_new_tokens=128 dataset.limit=8 method=hispec exit=3,6
   method.draft_len=2 method.period=4)
Q=("${M_UNTRACED[@]}")
if [[ -n ${DRY:-} ]]; then
  R+=(model.device=cpu max_new_tokens=8 dataset.limit=2)
  Q+=(--prompts 1 --methods-max-new 8 --reps 1 --device cpu --dtype float32)
else
  R+=(model.device=cuda model.dtype=bfloat16)
fi
i=0
for load in ${RUNPY:-none mem:16 mem:16 none}; do
  i=$((i + 1)); name=$(unused "runpy${i}_${load/:/x}")
  limit=$(( i == 1 ? 200 : 130 ))
  (( $(left) > limit )) || break
  load_start "$load" "$name"
  # results_dir: each job its own (a run's directory is named by its config, so a second job of the
  # same config would find the first's finished run and time nothing)
  step "$name" $limit python3 run.py "${R[@]}" results_dir="$W/$name/runs"
  load_stop
  grep -E "done|warn|WARN" "$W/$name.log" | tail -4
done
LOADS=${LOADS:-"mem:16 none mem:16"}
loaded_processes s56_ 180 100
cat "$W/calls.log" "$W/loads.log"
for f in "$W"/s56_*/bench.json; do
  [[ -f $f ]] || continue
  python3 - "$f" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for row in doc["parts"].get("methods", {}).get("rows", []):
    o = row.get("outside_forwards_async") or {}
    print(sys.argv[1].split("/")[-2], row["name"], f"{row.get('tokens_per_s', 0):.0f} tok/s",
          "share", None if o.get("gpu_idle_frac") is None else round(100 * o["gpu_idle_frac"], 1),
          "timed waits %", [round(100 * w, 2) for w in row.get("cpu_wait_share_passes") or []],
          "preempted", row.get("preemptions_passes"), "moved", row.get("migrations_passes"),
          "measuring waits ms", [None if p.get("cpu_wait_s") is None else round(1e3 * p["cpu_wait_s"], 1)
                                 for p in o.get("passes", [])])
PY
done
