#!/usr/bin/env bash
# Thirty-third run, call 2 (a fresh machine): the measurement-path checks on the shipped 5.6 M
# model with AR's next chunk in flight -- run.py against the benchmark for all five methods, three
# AR processes, `hispec exit=8,16` with no backend named (scripts/gpu_headline.sh PARTS=checks,
# judged by scripts/measurement_checks.py into checks.md).
export CI=true
W=/tmp/w2; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
OUT=$W/checks5 RUNS=runs/small MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks HF_CHECK=0 SESSION_LIMIT=540 \
  bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$?" >> $W/calls.log
rm -f $W/checks5/headline.tar.gz
mkdir -p $W/summaries && (cd runs/small && find . -name summary.json -o -name '*.log' | tar czf $W/summaries/runs.tgz -T -)
tar czf $OUT/call2.tgz -C $W .
cat $W/calls.log; tail -30 $W/checks5/checks.md
