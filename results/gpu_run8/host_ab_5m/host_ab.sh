#!/usr/bin/env bash
# A/B of the host-time change (engine.py: one decode per stop check, events on a cached stream):
# "new" = the tree as given, "old" = a copy with .ext/host.patch reversed; bench_gpu's methods
# part on MODEL, alternating new/old ROUNDS times. Usage: OUT=... MODEL=... ROUNDS=2 bash .ext/host_ab.sh
set -uo pipefail
source scripts/gpu_env.sh >/dev/null 2>&1
MODEL=${MODEL:-checkpoints/ee-24x128}; ROUNDS=${ROUNDS:-2}; EACH_S=${EACH_S:-140}; TAG=${TAG:-5m}
rm -rf /tmp/old && mkdir -p /tmp/old && cp -r . /tmp/old/ && (cd /tmp/old && patch -R -p1 -s < .ext/host.patch) || exit 1
here=$PWD
for round in $(seq "$ROUNDS"); do
  for side in new old; do
    dir=$here; [[ $side == old ]] && dir=/tmp/old
    t0=$SECONDS
    (cd "$dir" && timeout "$EACH_S" python3 scripts/bench_gpu.py --parts methods --device cuda --dtype bfloat16 \
      --target "$MODEL" --draft checkpoints/family-2x128 --mid-draft '' --dataset humaneval --prompts 8 \
      --methods-max-new 128 --reps 3 --exit 6 --gamma 4 --hispec-exits 3,6 --nd 2 --ni 4 --no-hf \
      --out "$OUT/${TAG}_${side}_$round" >"$OUT/${TAG}_${side}_$round.log" 2>&1)
    echo "$TAG $side round $round: rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/ab.txt"
    grep -E "^\| (ours|native)" "$OUT/${TAG}_${side}_$round/bench.md" 2>/dev/null | cut -d'|' -f2,4,5,10,11 | tee -a "$OUT/ab.txt"
  done
done
