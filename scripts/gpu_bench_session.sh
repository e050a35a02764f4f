#!/usr/bin/env bash
# One device call on a fresh GPU machine (10-minute limit): data, the GPU-scale
# early-exit model, then the benchmark -- everything that must share a machine,
# because the trained model never leaves it (docs/models.md, docs/performance.md).
#
#   bash scripts/gpu_bench_session.sh                 # OUT=<dir> is kept; default runs/bench
#   GPU_BUDGET=240 METHODS_HF=1 bash scripts/gpu_bench_session.sh
#   TRAIN=0 bash scripts/gpu_bench_session.sh         # no training: the shipped ee-24x128 is the target
#
# (a) `train_early_exit.py prepare --data $DATA`, then a check that the tokenizer it
#     built is the one shipped with the draft checkpoints: a separate draft must share
#     the target's token ids, or vanilla_sd measures nothing (bench_gpu.py then skips
#     it). The tokenizer is trained on the first 16 MB of the corpus, i.e. on the
#     installed Python's standard library: it reproduces the shipped one only on the
#     same Python installation (the GPU image: Python 3.12.3, /usr/lib/python3.12).
# (b) train gpu-24x1024 into $GPU_CKPT for GPU_BUDGET seconds of training.
# (c) bench_gpu.py --parts smoke,methods,overhead (methods only if (b) produced a
#     checkpoint; overhead always), told how much of SESSION_LIMIT is left so that it
#     starts no part it cannot begin in time. bench.json/bench.md are rewritten after
#     every part, engine method and overhead model, so a run cut off keeps its numbers.
#
# Files in $OUT (8, the most a device call returns): session.log (this script), prepare.log (+ data.json),
# train.log, training.json, TRAINING.md, bench.log, bench.json, bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/bench}
DATA=${DATA:-runs/ee_data}
GPU_CKPT=${GPU_CKPT:-runs/gpu-24x1024}
DRAFT=${DRAFT:-checkpoints/family-2x128}
SHIPPED=${SHIPPED:-checkpoints/ee-24x128}
TRAIN=${TRAIN:-1}
GPU_BUDGET=${GPU_BUDGET:-300}
SESSION_LIMIT=${SESSION_LIMIT:-590}     # seconds for this whole script (the device call's limit is 600)
BENCH_MARGIN=${BENCH_MARGIN:-45}        # no bench part starts later than this before SESSION_LIMIT
PARTS=${PARTS:-smoke,methods,overhead}
OVERHEAD_MODELS=${OVERHEAD_MODELS:-random:llama-1b,random:llama-8b}
METHODS_HF=${METHODS_HF:-0}             # 1: also HF generate baselines in the methods part (~1.5 min)
PY=${PYTHON:-python3}

export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$PWD/runs/inductor_cache}
mkdir -p "$OUT" "$TORCHINDUCTOR_CACHE_DIR"
start=$SECONDS
log() { echo "[$(date +%H:%M:%S) +$((SECONDS - start))s] $*" | tee -a "$OUT/session.log"; }
log "gpu_bench_session: OUT=$OUT DATA=$DATA GPU_CKPT=$GPU_CKPT DRAFT=$DRAFT TRAIN=$TRAIN GPU_BUDGET=$GPU_BUDGET"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$OUT/session.log" || true
$PY -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tee -a "$OUT/session.log"

# -- (a) data + tokenizer check ------------------------------------------------------
t0=$SECONDS
if $PY scripts/train_early_exit.py prepare --data "$DATA" 2>&1 | tee "$OUT/prepare.log"; then
  log "prepare done in $((SECONDS - t0)) s"
else
  log "prepare FAILED after $((SECONDS - t0)) s (see prepare.log); training will be skipped"
  TRAIN=0
fi
cat "$DATA/data.json" >>"$OUT/prepare.log" 2>/dev/null || true  # corpus + tokenizer record (not a 9th file)
# Compares the tokenizer.json documents (vocabulary, merges, pre-tokenizer, specials); exit 1 on any difference.
if $PY - "$DATA/tokenizer/tokenizer.json" "$DRAFT/tokenizer.json" "$SHIPPED/tokenizer.json" <<'EOF' 2>&1 | tee -a "$OUT/session.log"
import json, sys
built, *shipped = sys.argv[1:]
try:
    a = json.load(open(built))
except OSError as err:
    sys.exit(f"tokenizer check: no tokenizer built ({err})")
ok = True
for path in shipped:
    b = json.load(open(path))
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        ok = False
        va, vb = a["model"]["vocab"], b["model"]["vocab"]
        same_ids = sum(vb.get(t) == i for t, i in va.items())
        print(f"tokenizer check: {built} DIFFERS from {path} in {diff}; {same_ids}/{len(va)} tokens keep their id")
    else:
        print(f"tokenizer check: {built} is identical to {path}")
sys.exit(0 if ok else 1)
EOF
then
  log "tokenizer check passed"
else
  log "WARNING: the prepared tokenizer differs from the shipped one: vanilla_sd with $DRAFT will be skipped by bench_gpu.py"
fi

# -- (b) the GPU-scale model -----------------------------------------------------------
trained=0
if [[ "$TRAIN" == 1 ]]; then
  t0=$SECONDS
  if $PY scripts/train_early_exit.py train --preset gpu-24x1024 --data "$DATA" --out "$GPU_CKPT" \
      --time-budget-s "$GPU_BUDGET" --no-resume --progress off 2>&1 | tee "$OUT/train.log"; then
    log "training done in $((SECONDS - t0)) s"
    cp "$GPU_CKPT/training.json" "$GPU_CKPT/TRAINING.md" "$OUT/" 2>/dev/null || true
    [[ -f "$GPU_CKPT/config.json" ]] && trained=1
  else
    log "training FAILED after $((SECONDS - t0)) s (see train.log); the bench runs without the methods part"
  fi
fi
if [[ "$trained" == 1 ]]; then
  TARGET=$GPU_CKPT
elif [[ "$TRAIN" == 0 ]]; then
  TARGET=$SHIPPED  # asked for no training: the shipped (launch-bound) 5.6 M model
  log "no training requested: methods part on $TARGET"
else
  TARGET=""
  PARTS=$(echo "$PARTS" | tr ',' '\n' | { grep -vx methods || true; } | paste -sd, -)
fi

# -- (c) the benchmark -----------------------------------------------------------------
left=$((SESSION_LIMIT - (SECONDS - start) - BENCH_MARGIN))
if (( left < 30 )); then left=30; fi
hf_flag=()
[[ "$METHODS_HF" == 1 ]] || hf_flag=(--no-hf)
log "bench: parts $PARTS, target ${TARGET:-none}, $left s left to start parts"
set +e
$PY scripts/bench_gpu.py --parts "$PARTS" --out "$OUT" --time-limit-s "$left" \
  ${TARGET:+--target "$TARGET"} --draft "$DRAFT" --prompts "${PROMPTS:-4}" --methods-max-new "${MAX_NEW:-128}" \
  --reps "${REPS:-2}" --hf-reps 1 "${hf_flag[@]}" --prompt-len "${PROMPT_LEN:-128}" \
  --overhead-models "$OVERHEAD_MODELS" --overhead-prompts "${OVERHEAD_PROMPTS:-2}" \
  --overhead-max-new "${OVERHEAD_MAX_NEW:-128}" 2>&1 | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
set -e
log "bench exited with $rc; session took $((SECONDS - start)) s"
exit "$rc"
