#!/usr/bin/env bash
# Thirty-fourth run, call 2 (call 1's machine, still warm, its 294 M model): the measurement-path
# checks on the 294 M model -- run.py against the benchmark for all five methods, three AR processes,
# `hispec exit=8,16` with no backend named (scripts/gpu_headline.sh PARTS=checks, judged by
# scripts/measurement_checks.py into checks.md). run.py's HiSpec there last read 4.3-5.2 % below the
# benchmark (thirty-first run).
export CI=true
W=/tmp/w2; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
OUT=$W/checks294 RUNS=runs/c294 MODEL=runs/gpu-24x1024 TRAIN=0 PARTS=checks HF_CHECK=0 SESSION_LIMIT=570 \
  bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$?" >> $W/calls.log
rm -f $W/checks294/headline.tar.gz
mkdir -p $W/summaries && (cd runs/c294 && find . -name summary.json -o -name '*.log' | tar czf $W/summaries/runs.tgz -T -)
tar czf $OUT/call2.tgz -C $W .
cat $W/calls.log; tail -30 $W/checks294/checks.md
