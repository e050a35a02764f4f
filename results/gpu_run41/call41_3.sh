#!/usr/bin/env bash
# Owed (written in the forty-second session): the 294 M readings the forty-first run could not
# make, on a model trained as long as the earlier runs' (100 s, its own folder so that a 60 s model
# of call41_2.sh on the same machine is not reused): the in-process A/B of inference mode against
# b85df48 (gpu_run36/ab_views.py; for the hierarchy the new side also counts its hand-up plan per
# generation, the forty-second session's change), then the benchmark's methods part with every
# method -- layerskip and vanilla_sd not measured on 294 M since inference mode.
# With little device time left: `MODEL=runs/gpu-24x1024 CALL_LIMIT=<s> bash results/gpu_run41/call41_3.sh` (LIMIT before the forty-sixth run) right after
# call41_2.sh on the same warm machine reuses its model (gpu_train_model.sh keeps a trained one).
# Before the call: `bash results/gpu_run36/make_old_package.sh b85df48` (hsd_bench_old/ travels untracked).
source scripts/gpu_env.sh
CALL=call3 source scripts/gpu_call.sh
MODEL=${MODEL:-runs/gpu-24x1024-100s}  # MODEL=runs/gpu-24x1024: call41_2.sh's 60 s model, reused if the machine kept it
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh
step ab294 $(( $(left) - 130 )) env METHODS=autoregressive,hispec,vanilla_sd,hierarchy AB_OLD=b85df48 \
  AB_NAME=ab_inference AB_LABEL="inference mode (the hierarchy: and its hand-up plan per generation)" python3 results/gpu_run36/ab_views.py "$W/ab294" $MODEL 6
if (( $(left) > 60 )); then
  step m294_1 $(( $(left) - 3 )) python3 scripts/bench_gpu.py "${M[@]}" --target $MODEL --out "$W/m294_1"
else echo "skip m294_1: $(left) s left" >> "$W/calls.log"; fi
cat "$W/calls.log"; grep -iE "val loss|steps" "$W/t/train.log" | tail -2; tail -7 "$W/ab294.log"
grep -hE "^\| ours " "$W"/m294_*/bench.md | cut -c1-200
