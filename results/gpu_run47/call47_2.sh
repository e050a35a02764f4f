#!/usr/bin/env bash
# Forty-seventh run, call 2: a second round of run.py against the benchmark on the shipped 5.6 M
# target for every method (AGREE_ONLY=1: run.py's method jobs and the benchmark step, not the
# path checks call 1 ran), with the kernel trace this time (the device's idle between launches).
# Carry [".whl"].
CALL=call2 RUNS=runs/c56b AGREE_ONLY=1 DEVICE_TRACE=1 exec bash results/gpu_run47/call47_1.sh
