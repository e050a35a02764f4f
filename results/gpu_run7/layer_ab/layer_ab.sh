#!/usr/bin/env bash
# A/B of commit 31e61bd (the residual add fused into the next layer's first norm): bench_gpu's
# roofline part with the code as it is ("new") and, right after, with that commit reversed
# ("old", a copy of the tree under /tmp/old), on one machine in one call; then the
# math+autotune variant (inductor max-autotune) on the new code.
#   OUT=<dir> [DEVICE=cuda DTYPE=bfloat16 NEW_MODELS=... OLD_MODELS=... AT_MODELS=... MAX_NEW=256] bash .ext/layer_ab.sh
set -uo pipefail
source scripts/gpu_env.sh
OUT=${OUT:?}; DEVICE=${DEVICE:-cuda}; DTYPE=${DTYPE:-bfloat16}; MAX_NEW=${MAX_NEW:-256}
NEW_MODELS=${NEW_MODELS:-random:llama-1b,random:llama-8b}; OLD_MODELS=${OLD_MODELS:-random:llama-1b}
AT_MODELS=${AT_MODELS:-random:llama-1b}
PATCH=$PWD/.ext/residual.patch
rm -rf /tmp/old && mkdir -p /tmp/old "$OUT"
tar --exclude=./runs --exclude=./.ext --exclude=./.git -cf - . | tar -xf - -C /tmp/old
(cd /tmp/old && patch -s -p1 -R < "$PATCH") || { echo "reverse patch failed"; exit 1; }
common=(--parts roofline --device "$DEVICE" --dtype "$DTYPE" --roofline-hf-reps 0 --max-new "$MAX_NEW" --reps 3)
run() {  # NAME DIR SECONDS ARGS...
  local name=$1 dir=$2 secs=$3; shift 3; local t0=$SECONDS
  (cd "$dir" && timeout "$secs" python3 scripts/bench_gpu.py "${common[@]}" "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1)
  echo "$name: rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/ab.txt"
}
run new "$PWD" "${NEW_S:-200}" --variants math --profile --roofline-models "$NEW_MODELS"
run old /tmp/old "${OLD_S:-110}" --variants math --profile --roofline-models "$OLD_MODELS"
run autotune "$PWD" "${AT_S:-150}" --variants math+autotune --roofline-models "$AT_MODELS"
grep -h "native AR\|params\|GB of weights" "$OUT"/new.log "$OUT"/old.log "$OUT"/autotune.log | tee -a "$OUT/ab.txt"
tar czf "$OUT/ab_dirs.tar.gz" -C "$OUT" new old autotune 2>/dev/null && rm -rf "$OUT/new" "$OUT/old" "$OUT/autotune"
