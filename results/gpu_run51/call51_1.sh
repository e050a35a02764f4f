#!/usr/bin/env bash
# Fifty-first run, call 1 (prepared in the fifty-first session; not yet run): what the fiftieth run
# left owed once decode_attention.MAX_ROWS became 16 by default (e0849fe). (1) The lent image's
# torch and conditional nodes -- if the engine finds them, `bash results/gpu_run48/call48_1.sh` is
# the next call. (2) The measurement-path agreement on the shipped 5.6 M model with the new default
# (scripts/gpu_headline.sh AGREE_ONLY=1): run.py's layerskip, HiSpec, vanilla_sd and hierarchy jobs
# against the benchmark's smoke + methods part in one call -- the fiftieth run checked layerskip
# alone (run.py / benchmark 1.005, H100) -- and with it the smoke on whichever card comes (the
# fiftieth run's fixed kernel passed on an H100; its H200 smoke ran before the fix). ~8 minutes on
# an H200 (docs/performance.md, "run.py on a GPU"); the steps that do not fit are skipped and logged.
# Carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
python3 -c 'import torch, triton; from hsd_bench.models.native.graphs import conditional_graphs_available as c; print(torch.__version__, triton.__version__, "conditional nodes", c())' \
  > "$W/image.txt" 2>&1
cat "$W/gpu.txt" "$W/image.txt"
step headline $(( $(left) - 10 )) env OUT="$W/h" RUNS="$W/h/runs" MODEL=checkpoints/ee-24x128 TRAIN=0 PARTS=checks \
  AGREE_ONLY=1 HF_CHECK=0 SESSION_LIMIT=$(( $(left) - 15 )) bash scripts/gpu_headline.sh
cat "$W/calls.log"; grep -h "rc=\|SKIP" "$W/h/headline.log"; grep -o "smoke [a-zA-Z]*" "$W/h/runs/agree_bench.log" | head -1
cat "$W/h/checks.md" 2>/dev/null | head -40
