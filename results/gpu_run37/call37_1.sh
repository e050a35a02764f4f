#!/usr/bin/env bash
# Thirty-seventh run, call 1: where the host's time goes on the H200's host, line by line, with a
# sampling profiler (py-spy, carried as a wheel in .whl/), for the shipped 5.6 M target.
source scripts/gpu_env.sh
start=$SECONDS
W=/tmp/w1; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
SPY=/tmp/site/bin/py-spy
left() { echo $((${LIMIT:-585} - (SECONDS - start))); }
pack() { tar czf $OUT/call1.tgz -C $W . ; }
t0=$SECONDS
SECONDS_PER=20 timeout $(( $(left) - 5 )) $SPY record --idle --nonblocking -r 1000 -f raw -o $W/raw.txt -- \
  env SECONDS=20 python3 results/gpu_run37/spy_host.py $W/py > $W/py.log 2>&1
echo "py rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
python3 results/gpu_run37/spy_analyze.py $W/raw.txt $W/py/rates.json 1000 30 > $W/spy.md 2>> $W/calls.log; pack
if (( $(left) > 150 )); then
  t0=$SECONDS
  timeout $(( $(left) - 5 )) $SPY record --idle --nonblocking --native -r 500 -f raw -o $W/raw_native.txt -- \
    env SECONDS=15 METHODS=hispec python3 results/gpu_run37/spy_host.py $W/native > $W/native.log 2>&1
  echo "native rc=$? $((SECONDS - t0)) s" >> $W/calls.log; pack
fi
cat $W/calls.log; tail -3 $W/py.log; head -80 $W/spy.md
