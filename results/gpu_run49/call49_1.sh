#!/usr/bin/env bash
# Forty-ninth run, call 1: the benchmark's float32 second opinion on a GPU for the first time
# (results/gpu_run49/float32_opinion.py: the bf16 tie tolerance forced below bf16's rounding, so
# every divergence asks the float32 copy of the target), on the shipped 5.6 M target with every
# method -- `M`'s workload, one timed pass, no trace (the timings are not what is read). Carry [".whl"].
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
python3 -c 'import torch, transformers, triton; print(torch.__version__, torch.version.cuda, transformers.__version__, triton.__version__)' \
  > "$W/versions.txt" 2>&1
cat "$W/versions.txt" "$W/gpu.txt"
step opinion $(( $(left) - 20 )) python3 results/gpu_run49/float32_opinion.py "$W/opinion" \
  --parts methods --dataset humaneval --prompts 8 --methods-max-new 128 --reps 1 --exit 6 --gamma 4 \
  --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --draft checkpoints/family-2x128 --mid-draft checkpoints/family-6x128
cat "$W/calls.log"; cat "$W/opinion/opinions.md" 2>/dev/null; tail -5 "$W/opinion.log"
grep -h '^| ours\|^| native' "$W/opinion/bench.md" 2>/dev/null | cut -d'|' -f2,9
