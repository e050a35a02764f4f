#!/usr/bin/env bash
# Sixtieth run, call 1 (the sixty-second session): the owed readings only a machine unlike every
# loan since the fifty-first run can give, through results/gpu_run58/call58_1.sh's dispatch:
# - torch's own conditional graph nodes present (torch >= 2.12): results/gpu_run48/call48_1.sh;
# - an H200: results/gpu_run51/call51_2.sh (the next call on the warm machine is
#   results/gpu_run51/call51_3.sh);
# - otherwise (an H100 with torch 2.11, as every loan since the fifty-first run):
#   results/gpu_run60/call60_2.sh, this session's record fixes read on a GPU through run.py (the
#   level split at batch B from CUDA events, the hf_* references' null decode rate).
# Carry [".whl"].
FALLBACK=results/gpu_run60/call60_2.sh exec bash results/gpu_run58/call58_1.sh
