#!/usr/bin/env bash
# The headline GPU results, through run.py: what sweeps, SLURM arrays, W&B and the
# figures use is what is measured here. Two parts, each one device call of <= 10 minutes
# on one H100/H200, training included where the model is not there yet (a second call on
# the still-warm machine reuses it):
#
#   OUT=<dir> PARTS=checks bash scripts/gpu_headline.sh    # train + the measurement-path checks
#     (training ~4 min with GPU_BUDGET=140, the checks ~8 min with HF_CHECK=0 on an H200: more than
#     one 10-minute call -- the steps that do not fit are skipped and logged. Train in one call
#     (PARTS=none TRAIN=1), then PARTS=checks on the warm machine, which reuses the model.)
#   OUT=<dir> PARTS=figures bash scripts/gpu_headline.sh   # (train +) the named sweeps + figures (9.4 min on an H200)
#   OUT=<dir> bash scripts/gpu_headline.sh                 # both, where no 10-minute limit applies
#   OUT=<dir> PARTS=checks,ar_chunk1 HF_CHECK=0 TRAIN=0 bash scripts/gpu_headline.sh  # + AR at ar_chunk=1
#   MODEL=checkpoints/ee-24x128 TRAIN=0 bash scripts/gpu_headline.sh   # the shipped 5.6 M model instead
#   OUT=<dir> PARTS=checks AGREE_ONLY=1 HF_CHECK=0 TRAIN=0 bash scripts/gpu_headline.sh  # run.py against the benchmark alone
#   DEVICE=cpu DTYPE=float32 MODEL=checkpoints/ee-24x128 TRAIN=0 LIMIT=2 MAX_NEW=8 bash scripts/gpu_headline.sh  # a dry run
#
# Steps, each skipped once too little of SESSION_LIMIT is left (results so far are kept):
#  1. the GPU-trained model (scripts/gpu_train_model.sh);
#  2. the measurement-path checks (docs/performance.md): `method=hispec exit=8,16` with no backend
#     named; AR three times in fresh processes; layerskip / hispec / vanilla_sd / the three-model
#     hierarchy (DRAFT -> MID -> MODEL) through run.py and the same configurations through
#     scripts/bench_gpu.py on run.py's workload (--dataset), with the device's own idle share from
#     a kernel trace (--device-trace, about 30 s more; DEVICE_TRACE=0 leaves it out);
#     transformers' assistant_early_exit through run.py (method=hf_early_exit; HF_CHECK=0 skips it);
#     with PARTS=...,ar_chunk1, AR three more times at ar_chunk=1 (one host round trip per token),
#     interleaved with the default-chunk repeats; AGREE_ONLY=1 runs only run.py's method jobs and the benchmark
#     (a second round of run.py against the benchmark that fits one call with the trace);
#     AGREE_METHODS="hispec hierarchy" runs only those of run.py's four method jobs, and a method job
#     starts only where the benchmark step still fits after it;
#  3. the named sweeps of conf/experiment/ (method_comparison on HumanEval and GSM8K, exit_layer,
#     draft_length) through `run.py -m`;
#  4. tables (scripts/collect.py) and figures (scripts/make_figures.py) under $RESULTS, packed with
#     every run's summary.json into $OUT/headline.tar.gz; the checks judged against their targets
#     in $OUT/checks.md (scripts/measurement_checks.py).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/headline_out}
RUNS=${RUNS:-runs/headline}
RESULTS=${RESULTS:-$RUNS/results}
MODEL=${MODEL:-runs/gpu-24x1024}
DRAFT=${DRAFT:-checkpoints/family-2x128}
MID=${MID:-checkpoints/family-6x128}
TRAIN=${TRAIN:-1}
DEVICE_TRACE=${DEVICE_TRACE:-1}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-bfloat16}
LIMIT=${LIMIT:-8}
MAX_NEW=${MAX_NEW:-128}
GSM8K=${GSM8K:-.data/gsm8k/test.jsonl}
SESSION_LIMIT=${SESSION_LIMIT:-585}
PARTS=${PARTS:-checks,figures}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
PY=${PYTHON:-python3}
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
export CI=true
mkdir -p "$OUT" "$RUNS" "$RESULTS"
start=$SECONDS
log() { echo "[$(date +%H:%M:%S) +$((SECONDS - start))s] $*" | tee -a "$OUT/headline.log"; }
left() { echo $((SESSION_LIMIT - (SECONDS - start))); }
# step NAME SECONDS CMD...: run CMD if at least SECONDS are left, logging to $RUNS/NAME.log
step() {
  local name=$1 need=$2; shift 2
  if (( $(left) < need )); then log "SKIP $name: $(left) s left, needs ~$need s"; return 0; fi
  local t0=$SECONDS
  timeout $(( $(left) - 5 )) "$@" >"$RUNS/$name.log" 2>&1
  local rc=$?
  log "$name: rc=$rc in $((SECONDS - t0)) s; $(grep -h '\[hsd-bench\] done' "$RUNS/$name.log" | tail -n 3 | tr '\n' ' ')"
}
COMMON=(model.path="$MODEL" model.device="$DEVICE" model.dtype="$DTYPE" max_new_tokens="$MAX_NEW" dataset.limit="$LIMIT" progress=false)
log "gpu_headline: PARTS=$PARTS MODEL=$MODEL DEVICE=$DEVICE DTYPE=$DTYPE LIMIT=$LIMIT MAX_NEW=$MAX_NEW"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/headline.log" 2>&1 || true

# AGREE_METHODS: which of run.py's method jobs run (all four unless named; a short call names fewer
# so the benchmark's part, which needs them all, still fits)
AGREE_ALL="layerskip hispec vanilla_sd hierarchy"
for m in ${AGREE_METHODS:-$AGREE_ALL}; do
  [[ " $AGREE_ALL " == *" $m "* ]] || { echo "gpu_headline.sh: AGREE_METHODS names '$m'; valid: $AGREE_ALL" >&2; exit 2; }
done
agree() { [[ " ${AGREE_METHODS:-$AGREE_ALL} " == *" $1 "* ]]; }

# 1. the model
if [[ "$TRAIN" == 1 ]]; then
  OUT="$RUNS" GPU_CKPT="$MODEL" bash scripts/gpu_train_model.sh 2>&1 | tee -a "$OUT/headline.log"
  cp "$MODEL/TRAINING.md" "$OUT/" 2>/dev/null || true
fi

# 2. the measurement-path checks
if part checks; then
if [[ "${AGREE_ONLY:-0}" != 1 ]]; then
step hispec_8_16 60 $PY run.py "${COMMON[@]}" model.backend=auto method=hispec exit=8,16 results_dir="$RUNS/check"
for i in 1 2 3; do
  step "ar_repeat_$i" 40 $PY run.py "${COMMON[@]}" method=autoregressive results_dir="$RUNS/ar_repeat_$i"
  part ar_chunk1 && step "ar_chunk1_repeat_$i" 40 $PY run.py "${COMMON[@]}" method=autoregressive ar_chunk=1 \
    results_dir="$RUNS/ar_chunk1_repeat_$i"
done
fi
TRACE_ARGS=()
[[ "$DEVICE_TRACE" == 1 ]] && TRACE_ARGS=(--device-trace)
# smoke + methods: about 70 + 80 s on an H200, the traced passes about 30 s more (twenty-eighth run:
# a 147 s remainder cut it off before its last two methods)
BENCH_NEED=150; [[ "$DEVICE_TRACE" == 1 ]] && BENCH_NEED=200
# A method job is compared against the benchmark step, so it runs only where that step still fits
# after it: in a short call the jobs that do not fit are skipped, never the benchmark.
AGREE_NEED=$((50 + BENCH_NEED))
agree layerskip && step agree_layerskip $AGREE_NEED $PY run.py "${COMMON[@]}" method=layerskip exit=6 method.draft_len=4 results_dir="$RUNS/agree"
agree hispec && step agree_hispec $AGREE_NEED $PY run.py "${COMMON[@]}" method=hispec exit=3,6 method.draft_len=2 method.period=4 results_dir="$RUNS/agree"
agree vanilla_sd && step agree_vanilla_sd $AGREE_NEED $PY run.py "${COMMON[@]}" method=vanilla_sd method.draft.path="$DRAFT" method.draft_len=4 results_dir="$RUNS/agree"
agree hierarchy && step agree_hierarchy $AGREE_NEED $PY run.py "${COMMON[@]}" method=hierarchy method.levels.0.path="$DRAFT" method.levels.0.batch=4 \
  method.levels.1.path="$MID" method.levels.1.batch=4 results_dir="$RUNS/agree"
step agree_bench $BENCH_NEED $PY scripts/bench_gpu.py --parts smoke,methods --device "$DEVICE" --dtype "$DTYPE" --target "$MODEL" \
  --draft "$DRAFT" --mid-draft "$MID" --dataset humaneval --prompts "$LIMIT" --methods-max-new "$MAX_NEW" --reps 3 \
  --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf "${TRACE_ARGS[@]}" --out "$RUNS/bench"
[[ "${HF_CHECK:-1}" == 1 ]] && step hf_early_exit 70 $PY run.py "${COMMON[@]}" method=hf_early_exit exit=6 method.draft_len=4 results_dir="$RUNS/hf"
fi

# 3. the named sweeps (one process each: compiled steps are reused from job to job)
if part figures; then
step method_comparison_humaneval 90 $PY run.py -m +experiment=method_comparison "${COMMON[@]}" \
  hydra.sweeper.params.dataset=humaneval results_dir="$RUNS/method_comparison"
if [[ -f "$GSM8K" ]]; then
  step method_comparison_gsm8k 90 $PY run.py -m +experiment=method_comparison "${COMMON[@]}" \
    hydra.sweeper.params.dataset=gsm8k dataset.path="$GSM8K" dataset.num_fewshot=0 \
    results_dir="$RUNS/method_comparison"
fi
step exit_layer 90 $PY run.py -m +experiment=exit_layer "${COMMON[@]}" results_dir="$RUNS/exit_layer"
step draft_length 90 $PY run.py -m +experiment=draft_length "${COMMON[@]}" results_dir="$RUNS/draft_length"
fi

# 4. tables, figures, and everything small into one archive
for fig in method_comparison exit_layer draft_length; do
  [[ -d "$RUNS/$fig" ]] && $PY scripts/collect.py "$RUNS/$fig" --figure "$fig" --results "$RESULTS" --no-cache \
    >>"$OUT/headline.log" 2>&1
done
$PY scripts/make_figures.py --results "$RESULTS" >>"$OUT/headline.log" 2>&1 || log "make_figures failed"
# The measurement-path checks in one file: each run.py summary's timing and parity fields.
$PY scripts/measurement_checks.py "$OUT/checks.json" --collect "$RUNS" >>"$OUT/headline.log" 2>&1
# The checks judged against their targets (scripts/measurement_checks.py): $OUT/checks.md
part checks && $PY scripts/measurement_checks.py "$OUT/checks.json" "$RUNS/bench/bench.json" --out "$OUT/checks.md" \
  >>"$OUT/headline.log" 2>&1
tar czf "$OUT/headline.tar.gz" -C "$RUNS" . 2>>"$OUT/headline.log"
cp "$RUNS/bench/bench.json" "$RUNS/bench/bench.md" "$OUT/" 2>/dev/null || true
log "gpu_headline done in $((SECONDS - start)) s"
