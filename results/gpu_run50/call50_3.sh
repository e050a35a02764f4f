#!/usr/bin/env bash
# Fiftieth run, call 3 (fifty-first session; the session had ~500 s of device time left): call 1's
# smoke lost every check to one kernel that asked for 256 KiB of shared memory (the merge at 16 rows
# of the 8B shape's heads). Fixed -- the merge reads at most MERGE_VALUES per iteration, tiles past
# MAX_TILE_VALUES take the math path -- and decode_attention.MAX_ROWS = [16], the default this call
# decides. (1) The smoke on the device (the attention kernel at 1, 5 and 16 rows, float32 parity with
# HF generate for every method). (2) An A/A control of ab_rows.py on the shipped 5.6 M model (both
# sides one-row: does the process alone read 0.97 for AR, as call 1's several/one did?). (3) Several
# = 5 (verifications on the kernel, 16-position prefill chunks on math) for AR and vanilla_sd. (4)
# run.py's layerskip job on the shipped model with the new default, as gpu_headline.sh's agreement
# step runs it. Carry [".whl"].
source scripts/gpu_env.sh
CALL=call3 CALL_LIMIT=${CALL_LIMIT:-370} source scripts/gpu_call.sh
cat "$W/gpu.txt"
step smoke 110 python3 scripts/bench_gpu.py --parts smoke --out "$W/smoke"
(( $(left) > 90 )) && step aa56 85 env METHODS=autoregressive SEVERAL=1 python3 results/gpu_run50/ab_rows.py "$W/aa56" checkpoints/ee-24x128 3
(( $(left) > 100 )) && step ab56_5 $(( $(left) > 160 ? 90 : $(left) - 60 )) env METHODS=autoregressive,vanilla_sd SEVERAL=5 \
  python3 results/gpu_run50/ab_rows.py "$W/ab56_5" checkpoints/ee-24x128 3
(( $(left) > 50 )) && step runpy_layerskip $(( $(left) - 5 )) python3 run.py model.path=checkpoints/ee-24x128 model.device=cuda \
  model.dtype=bfloat16 max_new_tokens=128 dataset.limit=8 progress=false method=layerskip exit=6 method.draft_len=4 \
  results_dir="$W/runpy"
cat "$W/calls.log"; grep -o "smoke [a-zA-Z]*" "$W/smoke.log" | head -1; grep -o "'decode_attention': \[.*\], 'add_norm'" "$W/smoke.log" | grep -o "'passed': [A-Za-z]*" | sort | uniq -c
tail -3 "$W/aa56.log" "$W/ab56_5.log"; grep "\[hsd-bench\] done" "$W/runpy_layerskip.log"
