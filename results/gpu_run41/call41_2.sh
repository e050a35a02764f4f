#!/usr/bin/env bash
# Owed (written in the forty-second session, which was lent no machine): where the hierarchy's 294 M
# hand-up waits came from. The forty-first run's 294 M hierarchy spent 60-90 µs per hand-up between
# the middle level's verification and the target's, against 15-32 µs in every earlier 294 M reading
# and every 5.6 M one (results/gpu_run41/transitions.py); that session found its measuring passes
# could run another hand-up plan than its timed passes (fixed since: docs/gpu-runs.md,
# "Forty-first run"). Same condition first -- a 294 M model trained 60 s, as that run's -- then the
# test of that cause: the hand-ups the forty-first run's code (889edc9) plans per pass on that model
# in one warmed-up engine (as its timed passes) and in a fresh engine per pass (as its measuring
# passes); then, in one process, the host's time between the calls and before each graph launch on
# that model and on the 5.6 M target with today's code (replay_gaps.py); then the hierarchy's
# benchmark row on today's code, on 889edc9 and on b85df48 (before inference mode), one process
# each, while time is left.
# Before the call: `bash results/gpu_run41/make_old_tree.sh 889edc9 tree_889edc9` and
# `bash results/gpu_run41/make_old_tree.sh b85df48 tree_b85df48` (both travel untracked).
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024
step train 150 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=60 bash scripts/gpu_train_model.sh  # reuses a model
for fresh in 0 1; do
  step plan889_$fresh 90 env TREE=tree_889edc9 FRESH=$fresh PASSES=2 python3 results/gpu_run41/replay_gaps.py \
    "$W/plan889_$fresh" $MODEL
done
step gaps 150 python3 results/gpu_run41/replay_gaps.py "$W/gaps" $MODEL checkpoints/ee-24x128
for tree in . tree_889edc9 tree_b85df48; do
  name=h_${tree#tree_}; [[ $tree == . ]] && name=h_today
  if (( $(left) > 75 )); then
    step $name $(( $(left) < 110 ? $(left) - 3 : 105 )) python3 $tree/scripts/bench_gpu.py "${M[@]}" \
      --methods hierarchy --target $MODEL --out "$W/$name"
  else echo "skip $name: $(left) s left" >> "$W/calls.log"; fi
done
cat "$W/calls.log"; grep -iE "val loss|steps" "$W/t/train.log" | tail -2
grep -h "hand-ups ahead" "$W"/plan889_*.log "$W/gaps.log"
grep -hE "^\| ours |WARNING" "$W"/h_*/bench.md "$W"/h_*.log | cut -c1-200
python3 results/gpu_run41/transitions.py "$W"/h_*/bench.json
