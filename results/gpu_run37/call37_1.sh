#!/usr/bin/env bash
# Thirty-seventh run, call 1: where the host's time goes on the H200's host, line by line, with a
# sampling profiler (py-spy, carried as a wheel in .whl/), for the shipped 5.6 M target.
# (Ran with these steps written out; folded onto scripts/gpu_call.sh after the thirty-eighth run.)
source scripts/gpu_env.sh
CALL=call1 source scripts/gpu_call.sh
SPY=/tmp/site/bin/py-spy
step py $(( $(left) - 5 )) $SPY record --idle --nonblocking -r 1000 -f raw -o "$W/raw.txt" -- \
  env SECONDS=20 python3 results/gpu_run37/spy_host.py "$W/py"
python3 results/gpu_run37/spy_analyze.py "$W/raw.txt" "$W/py/rates.json" 1000 30 > "$W/spy.md" 2>> "$W/calls.log"; pack
if (( $(left) > 150 )); then
  step native $(( $(left) - 5 )) $SPY record --idle --nonblocking --native -r 500 -f raw -o "$W/raw_native.txt" -- \
    env SECONDS=15 METHODS=hispec python3 results/gpu_run37/spy_host.py "$W/native"
fi
cat "$W/calls.log"; tail -3 "$W/py.log"; head -80 "$W/spy.md"
