#!/usr/bin/env bash
# Fifty-first run, call 4 (run on the same warm machine after call 3): every method's share outside
# forwards on the 1B shape (random weights) with the several-row attention default, against the
# issue's 5 % -- the last reading was the thirty-third run's, before the kernel took verification
# steps. The benchmark's overhead part, the 1B shape alone. Carry [".whl"].
source scripts/gpu_env.sh
mkdir -p "$OUT/ov"
timeout 290 python3 scripts/bench_gpu.py --parts overhead --overhead-models random:llama-1b --out "$OUT/ov" \
  > "$OUT/ov/log.txt" 2>&1
echo rc=$?
grep -h "ours" "$OUT/ov/bench.md" | cut -d'|' -f2,4,10
