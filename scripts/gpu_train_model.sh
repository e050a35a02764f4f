#!/usr/bin/env bash
# The GPU-scale early-exit model, trained on the GPU it will be measured on
# (it is 587 MB and never leaves the machine): data + tokenizer, then
# gpu-24x1024 for GPU_BUDGET seconds of training (docs/models.md). Skips the
# training when $GPU_CKPT already holds a model (a second device call on the
# same, still-warm machine reuses it).
#
#   OUT=<log dir> GPU_BUDGET=150 bash scripts/gpu_train_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_logs}
DATA=${DATA:-runs/ee_data}
GPU_CKPT=${GPU_CKPT:-runs/gpu-24x1024}
GPU_BUDGET=${GPU_BUDGET:-150}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [[ -f "$GPU_CKPT/config.json" && -f "$GPU_CKPT/model.safetensors" ]]; then
  echo "gpu_train_model: $GPU_CKPT already trained; reusing it"
  exit 0
fi
t0=$SECONDS
$PY scripts/train_early_exit.py prepare --data "$DATA" >"$OUT/prepare.log" 2>&1
echo "gpu_train_model: data prepared in $((SECONDS - t0)) s"
t0=$SECONDS
$PY scripts/train_early_exit.py train --preset gpu-24x1024 --data "$DATA" --out "$GPU_CKPT" \
  --time-budget-s "$GPU_BUDGET" --no-resume --progress off >"$OUT/train.log" 2>&1
echo "gpu_train_model: trained in $((SECONDS - t0)) s: $(tail -n 1 "$OUT/train.log")"
