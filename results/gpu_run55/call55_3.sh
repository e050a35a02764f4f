#!/usr/bin/env bash
# Fifty-fifth run, call 3: run.py's HiSpec job on the GPU (the path measure.timed_passes' new
# after_pass hook leaves as it was: run.py passes none), then call55_1.sh's traced processes with
# PASSES (default 7) measuring passes per engine: three paired with the timed passes, the rest after,
# to see whether a median of more passes holds one process's share still on a loaded host, where
# calls 1 and 2 found single passes 11-47 % slower than the timed pass just before them.
# Carry [".whl"].
source scripts/gpu_env.sh
mkdir -p "$OUT/rp"
timeout 150 python3 run.py model.path=checkpoints/ee-24x128 model.device=cuda model.dtype=bfloat16 \
  max_new_tokens=128 dataset.limit=8 method=hispec exit=3,6 method.draft_len=2 method.period=4 \
  > "$OUT/rp/run.log" 2>&1
echo "run.py rc=$?"; tail -6 "$OUT/rp/run.log"
run_dir=$(sed -n 's/^run directory: //p' "$OUT/rp/run.log" | tail -1)
[[ -n $run_dir ]] && cp -r "$run_dir" "$OUT/rp/"
CALL=call3 CALL_LIMIT=${CALL_LIMIT:-440} PASSES=${PASSES:-7} WARM=1 bash results/gpu_run55/call55_1.sh
