#!/usr/bin/env bash
# Forty-seventh run, call 2: a second round of run.py against the benchmark on the shipped 5.6 M
# target for every method (AGREE_ONLY=1: run.py's method jobs and the benchmark step, not the
# path checks call 1 ran), with the kernel trace this time (the device's idle between launches).
# Carry [".whl"].
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> $W/gpu.txt 2>&1
OUT=$W/checks56 RUNS=runs/c56b MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks AGREE_ONLY=1 HF_CHECK=0 DEVICE_TRACE=1 \
  SESSION_LIMIT=$(( $(left) - 15 )) bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$? $(left) s left" >> $W/calls.log
rm -f $W/checks56/headline.tar.gz
mkdir -p $W/summaries && (cd runs/c56b && find . -name summary.json -o -name '*.log' -o -name 'bench.*' | tar czf $W/summaries/runs.tgz -T -)
pack
cat $W/gpu.txt $W/calls.log; grep -h "done\|SKIP" $W/checks56/headline.log | cut -c1-260; tail -14 $W/checks56/checks.md
grep -A9 "^| run " $W/checks56/bench.md | cut -c1-400
