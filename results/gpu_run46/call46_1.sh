#!/usr/bin/env bash
# Forty-sixth run, call 1: run.py against the benchmark on the 294 M model, owed since the fortieth
# run's call 2 lost its machine -- not measured on 294 M since the engine went into inference mode
# (thirty-eighth run) and the hand-up plan became each generation's own (forty-second session).
# (1) The 100 s 294 M model (as the forty-fourth and forty-fifth runs'). (2) The measurement-path
# checks on it (scripts/gpu_headline.sh PARTS=checks, judged by scripts/measurement_checks.py into
# checks.md): `hispec exit=8,16` with no backend named, AR in three fresh processes, run.py against
# the benchmark for layerskip, HiSpec, vanilla_sd and the hierarchy; the benchmark's smoke (float32,
# every method against HF generate on the graph path) runs in its step.
# Carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
OUT=$W/checks294 RUNS=runs/c294 MODEL=$MODEL TRAIN=0 PARTS=checks HF_CHECK=0 SESSION_LIMIT=$(( $(left) - 15 )) \
  bash scripts/gpu_headline.sh > $W/headline_stdout.log 2>&1
echo "headline rc=$? $(left) s left" >> $W/calls.log
rm -f $W/checks294/headline.tar.gz
mkdir -p $W/summaries && (cd runs/c294 && find . -name summary.json -o -name '*.log' -o -name bench.json -o -name bench.md | tar czf $W/summaries/runs.tgz -T -)
pack
cat $W/calls.log; grep -iE "val loss|steps in" "$W/t/train.log" | tail -1; tail -30 $W/checks294/checks.md
