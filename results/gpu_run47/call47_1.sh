#!/usr/bin/env bash
# Forty-seventh run, call 1 (a fresh machine): the check owed since the forty-sixth run's call 5 (cut
# short by the LIMIT mistake) -- run.py against the benchmark on the shipped 5.6 M target for every
# method, without a trace (DEVICE_TRACE=0) so the benchmark's step fits the call. Also records the
# image's torch (conditional nodes need >= 2.12). Carry [".whl"].
# Call 2 is this script with CALL=call2 RUNS=runs/c56b AGREE_ONLY=1 DEVICE_TRACE=1 (call47_2.sh).
source scripts/gpu_env.sh
CALL=${CALL:-call1} source scripts/gpu_call.sh
RUNS=${RUNS:-runs/c56}
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> $W/gpu.txt 2>&1
OUT=$W/checks56 RUNS=$RUNS MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks HF_CHECK=0 AGREE_ONLY=${AGREE_ONLY:-0} \
  DEVICE_TRACE=${DEVICE_TRACE:-0} SESSION_LIMIT=$(( $(left) - 15 )) bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$? $(left) s left" >> $W/calls.log
rm -f $W/checks56/headline.tar.gz
mkdir -p $W/summaries && (cd $RUNS && find . -name summary.json -o -name '*.log' -o -name 'bench.*' | tar czf $W/summaries/runs.tgz -T -)
pack
cat $W/gpu.txt $W/calls.log; grep -h "done\|SKIP" $W/checks56/headline.log | cut -c1-260; tail -14 $W/checks56/checks.md
grep -A9 "^| run " $W/checks56/bench.md | cut -c1-400
