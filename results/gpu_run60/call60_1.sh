#!/usr/bin/env bash
# Sixtieth run, call 1 (the sixty-second session): the owed readings only a machine unlike every
# loan since the fifty-first run can give, through results/gpu_run58/call58_1.sh's dispatch:
# - torch's own conditional graph nodes present (torch >= 2.12): results/gpu_run48/call48_1.sh;
# - an H200: results/gpu_run51/call51_2.sh (the next call on the warm machine is
#   results/gpu_run51/call51_3.sh);
# - otherwise (an H100 with torch 2.11, as every loan since the fifty-first run): nothing. Its
#   fallbacks have been measured three times (results/gpu_run59/), so the machine is given back at
#   once and the session's device time kept for another try at an H200.
# Carry [".whl"].
FALLBACK=/dev/null exec bash results/gpu_run58/call58_1.sh
