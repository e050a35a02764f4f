#!/usr/bin/env bash
# Twenty-ninth run, call 3 (5.6 M shipped model): the benchmark's methods part on the code with the
# verdict steps compiled (HEAD), on c52749f (the verification's count op by op, .ext/old29) and on
# b7c998c (before both cuts, .ext/old28), traces last; then run.py's hispec job twice.
source scripts/gpu_env.sh
export CI=true
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
MODEL=checkpoints/ee-24x128; DRAFT=checkpoints/family-2x128; MID=checkpoints/family-6x128
left() { echo $((${LIMIT:-420} - (SECONDS - start))); }
pack() { cp -r runs/agree1 runs/agree2 $W/ 2>/dev/null; tar czf $OUT/call3.tgz -C $W .; }
for run in new:scripts old29:.ext/old29/scripts old28:.ext/old28/scripts; do
  name=${run%%:*}; dir=${run#*:}
  (( $(left) < 100 )) && { echo "skip bench $name: $(left) s left" >> $W/calls.log; continue; }
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 $dir/bench_gpu.py --parts methods --target $MODEL --draft $DRAFT --mid-draft $MID \
    --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 \
    --no-hf --device-trace --out $W/bench_$name > $W/bench_$name.log 2>&1
  echo "bench $name rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
done
for r in 1 2; do
  (( $(left) < 35 )) && { echo "skip run.py hispec $r" >> $W/calls.log; continue; }
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 run.py model.path=$MODEL model.device=cuda model.dtype=bfloat16 max_new_tokens=128 \
    dataset.limit=8 progress=false method=hispec exit=3,6 method.draft_len=2 method.period=4 results_dir=runs/agree$r \
    > $W/runpy${r}_hispec.log 2>&1
  echo "run.py hispec $r rc=$? $((SECONDS - t0)) s: $(grep -h '\[hsd-bench\] done' $W/runpy${r}_hispec.log | tail -1)" >> $W/calls.log
done
pack
cat $W/calls.log
