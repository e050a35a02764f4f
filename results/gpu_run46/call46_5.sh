#!/usr/bin/env bash
# Forty-sixth run, call 5 (a fresh machine, the session's last device time): the measurement-path
# checks on the shipped 5.6 M target -- run.py against the benchmark for all five methods, the
# first time for every method on this model since the engine went into inference mode (the
# fortieth run checked HiSpec alone). No trace (DEVICE_TRACE=0), so the benchmark's smoke +
# methods step fits the call. Carry [".whl"]. Ran as `LIMIT=420 bash ...` before gpu_call.sh's
# limit was named CALL_LIMIT: gpu_headline.sh took that LIMIT as dataset.limit (README, call 5).
source scripts/gpu_env.sh
CALL=call5 source scripts/gpu_call.sh
OUT=$W/checks56 RUNS=runs/c56 MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks HF_CHECK=0 DEVICE_TRACE=0 \
  SESSION_LIMIT=$(( ${CALL_LIMIT:-585} - 20 )) bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$? $(left) s left" >> $W/calls.log
rm -f $W/checks56/headline.tar.gz
mkdir -p $W/summaries && (cd runs/c56 && find . -name summary.json -o -name '*.log' -o -name 'bench.*' | tar czf $W/summaries/runs.tgz -T -)
pack
cat $W/calls.log; grep -h "done\|SKIP" $W/checks56/headline.log | cut -c1-260; tail -12 $W/checks56/checks.md
