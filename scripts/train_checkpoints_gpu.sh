#!/usr/bin/env bash
# Rebuild the shipped early-exit checkpoints on one GPU (docs/models.md).
#
#   bash scripts/train_checkpoints_gpu.sh            # default + family: ~4 min on an H100 (the shipped run)
#   GPU_MODEL=1 bash scripts/train_checkpoints_gpu.sh # also the 24x1024 benchmark model
#
# One shared data directory (corpus + tokenizer), then the three shipped
# models in parallel: they are small and launch-bound, so they overlap on one
# GPU. Each run anneals to its end within BUDGET seconds of training.
set -euo pipefail
DATA=${DATA:-runs/ee_data}
CKPT=${CKPT:-checkpoints}
LOGS=${LOGS:-runs/train_logs}
BUDGET=${BUDGET:-180}
STEPS=${STEPS:-3000}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
T="$PY scripts/train_early_exit.py"
mkdir -p "$LOGS"
$T prepare --data "$DATA" 2>&1 | tee "$LOGS/prepare.log"
pids=()
for preset in ee-24x128 family-6x128 family-2x128; do
  $T train --preset "$preset" --data "$DATA" --out "$CKPT/$preset" --steps "$STEPS" \
    --time-budget-s "$BUDGET" --progress off --no-resume >"$LOGS/$preset.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
if [[ "${GPU_MODEL:-0}" == 1 ]]; then
  $T train --preset gpu-24x1024 --data "$DATA" --out "${GPU_CKPT:-runs/gpu-24x1024}" --no-resume \
    --time-budget-s "${GPU_BUDGET:-360}" --progress off 2>&1 | tee "$LOGS/gpu-24x1024.log"
fi
tail -n 2 "$LOGS"/*.log
