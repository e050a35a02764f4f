#!/usr/bin/env bash
# Fifty-third run, call 2 (prepared and run in the fifty-fifth session, any card): where HiSpec's
# host time goes on the shipped 5.6 M model when the host is slow, sampled. Call 1 (and its rerun
# with mem loads) found HiSpec's share outside forwards 6-9 % where the probe read 12-13 us and
# 10-23 % where it read 15-16 us, the state memory copiers bring on (AR stayed at 1 %): a cliff,
# the host's work per token about equal to the device's. py-spy samples the thirty-seventh run's
# spy_host.py (bench_gpu's engines, run.py's timing, then SECONDS of sampled passes per method)
# once on an unloaded host and once beside LOAD's copiers, so the lines that grow in the slow state
# show against the same lines in the fast one. Carry [".whl"].
# CPU dry run: OUT=<dir> CALL_LIMIT=200 DRY=1 bash results/gpu_run53/call53_2.sh (needs py-spy on PATH)
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
source results/gpu_run53/load.sh
LOADS=${LOADS:-"none mem:16"}
SPY=$(command -v py-spy || echo /tmp/site/bin/py-spy)
ENVS=(SECONDS=${SAMPLE_S:-15} METHODS=${METHODS:-autoregressive,hispec,hierarchy})
[[ -n ${DRY:-} ]] && ENVS=(SECONDS=2 METHODS=hispec DEV=cpu)
for load in $LOADS; do
  name=$(unused "spy_${load/:/x}")
  (( $(left) > 120 )) || { echo "skip $name: $(left) s left" >> "$W/calls.log"; break; }
  load_start "$load" "$name"
  step "$name" $(( $(left) > 250 ? 220 : $(left) - 15 )) "$SPY" record --idle --nonblocking -r 1000 -f raw -o "$W/$name.raw" -- \
    env "${ENVS[@]}" python3 results/gpu_run37/spy_host.py "$W/$name"
  load_stop
  python3 results/gpu_run37/spy_analyze.py "$W/$name.raw" "$W/$name/rates.json" 1000 30 > "$W/$name.md" 2>> "$W/calls.log"
  pack
done
cat "$W/calls.log" "$W/loads.log"
for f in "$W"/spy_*.md; do echo "== $f"; grep -E "^## |^timed|^- sampled" "$f"; done
