#!/usr/bin/env bash
# Thirty-first run, call 2 (5.6 M shipped model): why call 1's HiSpec ran 19 % slower with the round
# verified early -- in one process, run.py's hispec and layerskip engines with the early verification on
# and off alternating (.ext/ab_early.py; copied to call2_5m_inprocess/ab_early.py), then host time per
# graph replay and per event wait, and a cProfile of each.
source scripts/gpu_env.sh
W=/tmp/w; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $W/gpu.txt
timeout 400 python3 .ext/ab_early.py $W/ab > $W/ab.log 2>&1; echo "ab rc=$?" >> $W/ab.log
tar czf $OUT/call2.tgz -C $W .
tail -12 $W/ab.log
