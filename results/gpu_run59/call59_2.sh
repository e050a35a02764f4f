#!/usr/bin/env bash
# Fifty-ninth run, call 2 (any card; call59_1.sh runs it where the machine can do nothing owed):
# does device work queued past the host's next read hide a wait for a CPU, in proportion to its
# length? The fifty-eighth run's waits were ~4 ms each (results/gpu_run58/hidden_wait.py); AR, with
# its next 8-token chunk in flight (2.8 ms of device work on the 5.6 M model), lost 30-49 % of its
# waits, while HiSpec and the hierarchy, whose host reads each verdict before it queues the next
# round, lost all. If queued work is what hides a wait, a longer AR chunk hides more: run.py's AR
# job (method=autoregressive, no baseline, 5 timed passes) at each of CHUNKS (default "8 16 32
# 64"), unloaded and beside 16 unpinned memory copiers, alternating. Carry [".whl"].
# A CPU dry run: OUT=<dir> CALL_LIMIT=300 DRY=1 CHUNKS="8 16" LOAD=cpu:2 bash results/gpu_run59/call59_2.sh
source scripts/gpu_env.sh
CALL=${CALL:-call2}
source scripts/gpu_call.sh
source results/gpu_run53/load.sh
lscpu >> "$W/nproc.txt" 2>&1
R=(model.path=checkpoints/ee-24x128 max_new_tokens=128 dataset.limit=8 method=autoregressive baseline=false
   timing_repeats=5)
if [[ -n ${DRY:-} ]]; then
  R+=(model.device=cpu max_new_tokens=8 dataset.limit=2 timing_repeats=2)
else
  R+=(model.device=cuda model.dtype=bfloat16)
fi
i=0
for chunk in ${CHUNKS:-8 16 32 64}; do
  for load in none ${LOAD:-mem:16}; do
    i=$((i + 1)); name=$(unused "ar${i}_c${chunk}_${load/:/x}")
    limit=$(( i == 1 ? 150 : 70 ))
    (( $(left) > limit )) || break 2
    load_start "$load" "$name"
    step "$name" $limit python3 run.py "${R[@]}" ar_chunk=$chunk results_dir="$W/$name/runs"
    load_stop
    grep -E "done|warn|WARN" "$W/$name.log" | tail -3
  done
done
cat "$W/calls.log" "$W/loads.log"
for f in "$W"/ar*/runs/*/summary.json; do
  python3 - "$f" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["methods"]["autoregressive"]
print(sys.argv[1].split("/")[-4], "tok/s passes", [round(r) for r in s["tokens_per_s_passes"]],
      "waits %", [round(100 * w, 1) for w in s["cpu_wait_share_passes"]], "preempted", s["preemptions_passes"])
PY
done
