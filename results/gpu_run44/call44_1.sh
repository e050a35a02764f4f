#!/usr/bin/env bash
# Owed (written in the forty-fourth session): what launching a guard-decided hand-up straight after
# the read (`e988080`, Engine._hand_up_after_read) does on a GPU. The forty-fourth run found the
# device waiting 40-81 us before each of the 119 such hand-ups per pass on the 294 M model (the
# largest wait between the hierarchy's calls); the change moves the target's launch ahead of the
# engine's bookkeeping of the verdict, exact on the CPU, unmeasured on a GPU.
# (1) The 100 s 294 M model, as the forty-fourth run's. (2) In one process against the code before
# (`4ca2fd8`, gpu_run36/ab_views.py, alternating passes): the hierarchy on 294 M, then on the shipped
# 5.6 M target (where the CPU stand-in counts 111 such hand-ups per 1024 tokens). (3) The
# hierarchy's benchmark row in fresh processes: its outside share beside the forty-fourth run's
# eleven (4.0-7.0 %), and the new plan counter (`hand_ups_after_read`) in bench.json.
# Before the call: `bash results/gpu_run36/make_old_package.sh 4ca2fd8` (hsd_bench_old/ travels
# untracked); carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh  # reuses a model
cap() { local t=$(( $(left) - $2 )); echo $(( t > $1 ? $1 : t )); }  # at most $1 s, leaving $2
step ab294 $(cap 150 230) env METHODS=autoregressive,hierarchy AB_OLD=4ca2fd8 AB_NAME=ab_after_read \
  AB_LABEL="a guard-decided hand-up verified straight after the read" python3 results/gpu_run36/ab_views.py "$W/ab294" $MODEL 8
step ab56 $(cap 90 140) env METHODS=autoregressive,hierarchy AB_OLD=4ca2fd8 \
  AB_NAME=ab_after_read AB_LABEL="a guard-decided hand-up verified straight after the read" \
  python3 results/gpu_run36/ab_views.py "$W/ab56" checkpoints/ee-24x128 8
for i in 1 2 3; do
  if (( $(left) > 65 )); then
    step h294_$i 62 python3 scripts/bench_gpu.py "${M[@]}" --methods hierarchy --target $MODEL --out "$W/h294_$i"
  else echo "skip h294_$i: $(left) s left" >> "$W/calls.log"; fi
done
cat "$W/calls.log"; grep -iE "val loss|steps in" "$W/t/train.log" | tail -1
tail -6 "$W/ab294.log" "$W/ab56.log"
grep -hE "^\| ours hier" "$W"/h294_*/bench.md | cut -c1-220
python3 results/gpu_run41/transitions.py "$W"/h294_*/bench.json
python3 -c "import json,glob; [print(p, next(r for r in json.load(open(p))['parts']['methods']['rows'] if r['method']=='hierarchy').get('hand_ups_after_read')) for p in sorted(glob.glob('$W/h294_*/bench.json'))]"
