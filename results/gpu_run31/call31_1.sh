#!/usr/bin/env bash
# Thirty-first run, call 1 (5.6 M shipped model): a launched-ahead round verified the moment its
# verdict is read (the working tree) against a4eb488 (.ext/old31: git archive a4eb488 hsd_bench conf,
# and the current scripts): the float32 smoke of the new code on the graph path first, then the
# benchmark's methods part in alternating fresh processes, traces last; each process's hsd_bench
# path is logged.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
MODEL=checkpoints/ee-24x128; DRAFT=checkpoints/family-2x128; MID=checkpoints/family-6x128
left() { echo $((${LIMIT:-575} - (SECONDS - start))); }
pack() { tar czf $OUT/call1_$1.tgz -C $W $1 $1.log calls.log gpu.txt 2>/dev/null; }
t0=$SECONDS
timeout $(( $(left) - 3 )) python3 scripts/bench_gpu.py --parts smoke --target $MODEL --draft $DRAFT --mid-draft $MID \
  --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf --out $W/smoke > $W/smoke.log 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack smoke
for run in new1:scripts old1:.ext/old31/scripts new2:scripts old2:.ext/old31/scripts; do
  name=${run%%:*}; dir=${run#*:}
  (( $(left) < 105 )) && { echo "skip bench $name: $(left) s left" >> $W/calls.log; continue; }
  python3 -c "import sys; sys.path.insert(0, '$dir/..'); import hsd_bench; print('$name', hsd_bench.__file__)" >> $W/calls.log
  t0=$SECONDS
  timeout $(( $(left) - 3 )) python3 $dir/bench_gpu.py --parts methods --target $MODEL --draft $DRAFT --mid-draft $MID \
    --dataset humaneval --prompts 8 --methods-max-new 128 --reps 3 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 \
    --no-hf --device-trace --out $W/$name > $W/$name.log 2>&1
  echo "bench $name rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack $name
done
cat $W/calls.log
