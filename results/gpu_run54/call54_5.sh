#!/usr/bin/env bash
# Fifty-fourth run, call 5 (any card, a fresh machine): one traced process of the methods part
# (HiSpec and AR, shipped 5.6 M target) beside LOAD (default mem:16) memory copiers. Why: in call 2
# the loaded processes' measuring pass (CUDA events around every model call) ran 16-54 % slower
# than their timed passes, which were only 3-7 % slower than unloaded ones -- the events' own host
# work may tip a host-bound method over its cliff in the very pass that measures it. A kernel
# trace's busy time against the timed passes' decode time (`between_launches_at_timed_rate`, the
# device's own idle) reads the timed passes without that pass. Carry [".whl"].
source scripts/gpu_env.sh
CALL=${CALL:-call5} source scripts/gpu_call.sh
source results/gpu_run53/load.sh
LOAD=${LOAD:-mem:16}
name=$(unused "traced_${LOAD/:/x}")
load_start "$LOAD" "$name"
step "$name" $(( $(left) - 5 )) python3 scripts/bench_gpu.py "${M[@]}" --methods hispec \
  --target checkpoints/ee-24x128 --out "$W/$name"
load_stop
pack
cat "$W/calls.log" "$W/loads.log"; grep -h "ours" "$W/$name/bench.md" | cut -d'|' -f2,4,10-14
