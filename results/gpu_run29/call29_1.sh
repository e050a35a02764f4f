#!/usr/bin/env bash
# Twenty-ninth run, call 1 (5.6 M shipped model): run.py's jobs and the benchmark's methods part
# interleaved, the benchmark before (b7c998c hsd_bench, .ext/old28) and after (HEAD), both with
# traces last (4d5ed6a); the float32 smoke part on the graph path; run.py again.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
MODEL=checkpoints/ee-24x128; DRAFT=checkpoints/family-2x128; MID=checkpoints/family-6x128
COMMON=(model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 dataset.limit=8 progress=false)
left() { echo $((575 - (SECONDS - start))); }
runpy() {  # round
  local R=runs/agree$1
  for m in autoregressive hispec vanilla_sd hierarchy; do
    (( $(left) < 40 )) && { echo "skip run.py $m $1" >> $W/calls.log; continue; }
    case $m in
      autoregressive) a=(method=autoregressive) ;;
      hispec) a=(method=hispec exit=3,6 method.draft_len=2 method.period=4) ;;
      vanilla_sd) a=(method=vanilla_sd method.draft.path=$DRAFT method.draft_len=4) ;;
      hierarchy) a=(method=hierarchy method.levels.0.path=$DRAFT method.levels.0.batch=4 method.levels.1.path=$MID method.levels.1.batch=4) ;;
    esac
    t0=$SECONDS
    timeout $(( $(left) - 5 )) python3 run.py "${COMMON[@]}" "${a[@]}" results_dir=$R > $W/runpy$1_$m.log 2>&1
    echo "run.py $m $1 rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' $W/runpy$1_$m.log | tail -1)" >> $W/calls.log
  done
}
bench() {  # name script
  (( $(left) < 100 )) && { echo "skip bench $1: $(left) s left" >> $W/calls.log; return; }
  t0=$SECONDS
  timeout $(( $(left) - 5 )) python3 $2 --parts methods --target $MODEL --draft $DRAFT --mid-draft $MID \
    --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 \
    --no-hf --device-trace --out $W/bench_$1 > $W/bench_$1.log 2>&1
  echo "bench $1 rc=$? $((SECONDS - t0)) s" >> $W/calls.log
}
smoke() {
  (( $(left) < 80 )) && { echo "skip smoke: $(left) s left" >> $W/calls.log; return; }
  t0=$SECONDS
  timeout $(( $(left) - 5 )) python3 scripts/bench_gpu.py --parts smoke --target $MODEL --draft $DRAFT \
    --mid-draft $MID --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --out $W/smoke > $W/smoke.log 2>&1
  echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log
}
runpy 1; bench new1 scripts/bench_gpu.py; bench old1 .ext/old28/scripts/bench_gpu.py; smoke
bench new2 scripts/bench_gpu.py; runpy 2
for r in 1 2; do
  [[ -d runs/agree$r ]] && python3 scripts/measurement_checks.py $W/checks$r.json --collect runs/agree$r >> $W/calls.log 2>&1
done
cp -r runs/agree1 runs/agree2 $W/ 2>/dev/null
tar czf $OUT/call1.tgz -C $W .
cat $W/calls.log
