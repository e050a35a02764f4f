#!/usr/bin/env bash
# Fortieth run, call 2 (the owed call38_2 work; no result: the machine was "taken back for other
# work" during the call, and the session's device time left after it -- 604 s, then less with three
# refused starts -- never held a machine long enough again; still owed): a 294 M model trained on the
# machine (100 s), the in-process A/B against b85df48 on it (gpu_run36/ab_views.py named ab_inference;
# hsd_bench_old made by `bash results/gpu_run36/make_old_package.sh b85df48` before the call: the new
# side has inference mode and the `prepare` fix), then the benchmark's methods part on it (AR, HiSpec,
# the hierarchy) in up to two processes.
source scripts/gpu_env.sh
CALL=call2 source scripts/gpu_call.sh
MODEL=runs/gpu-24x1024
step train 240 env OUT="$W/t" GPU_CKPT=$MODEL GPU_BUDGET=100 bash scripts/gpu_train_model.sh
step ab294 $(( $(left) - 250 )) env METHODS=autoregressive,hispec,vanilla_sd,hierarchy AB_OLD=b85df48 \
  AB_NAME=ab_inference AB_LABEL="inference mode" python3 results/gpu_run36/ab_views.py "$W/ab294" $MODEL 6
for i in 1 2; do
  if (( $(left) > 100 )); then
    step m294_$i $(( $(left) < 150 ? $(left) - 3 : 145 )) python3 scripts/bench_gpu.py "${M[@]}" \
      --methods autoregressive,hispec,hierarchy --target $MODEL --out "$W/m294_$i"
  else echo "skip m294_$i: $(left) s left" >> "$W/calls.log"; fi
done
cat "$W/calls.log"; grep -iE "val loss|steps" "$W/train.log" | tail -2; tail -7 "$W/ab294.log"
grep -hE "^\| ours " "$W"/m294_*/bench.md | cut -c1-200
