#!/usr/bin/env bash
# Diagnosis (not part of the project): does run.py's vanilla_sd speed depend on where the process runs?
# Runs the gpu_headline "agree_vanilla_sd" job several times in fresh processes, unpinned and pinned to
# core pairs, sampling which CPUs the process's threads run on; prints AR and vanilla_sd tok/s per job.
# usage: OUT=<dir> bash .ext/diag_procs.sh SPEC...   (SPEC: none, or a taskset core list like 0-1)
mkdir -p "$OUT"
source scripts/gpu_env.sh
command -v taskset pgrep ps >"$OUT/tools.txt" 2>&1 || echo "missing tools" >>"$OUT/tools.txt"

nvidia-smi topo -m >"$OUT/topo.txt" 2>&1; lscpu >"$OUT/lscpu.txt" 2>&1
COMMON=(model.path=checkpoints/ee-24x128 model.device=${DEVICE:-cuda} model.dtype=${DTYPE:-bfloat16} max_new_tokens=${MAX_NEW:-128} dataset.limit=${LIMIT:-8} progress=false)
n=0
for spec in "$@"; do
  n=$((n + 1))
  pre=(); [[ $spec != none ]] && pre=(taskset -c "$spec")
  t0=$SECONDS
  "${pre[@]}" python3 run.py "${COMMON[@]}" method=vanilla_sd method.draft.path=checkpoints/family-2x128 \
    method.draft_len=4 results_dir="runs/procs/$n" >"$OUT/job$n.log" 2>&1 &
  pid=$!
  : >"$OUT/psr$n.txt"
  while kill -0 $pid 2>/dev/null; do
    for c in $(pgrep -P $pid) $pid; do ps -L -o psr=,pcpu= -p $c 2>/dev/null; done | sort -k2 -nr | head -3 | tr '\n' ' ' >>"$OUT/psr$n.txt"
    echo >>"$OUT/psr$n.txt"; sleep 1
  done
  wait $pid; rc=$?
  python3 - "$n" "$spec" "$rc" "$((SECONDS - t0))" "$OUT" <<'PY'
import json, sys, glob, collections
n, spec, rc, wall, out = sys.argv[1:]
s = sorted(glob.glob(f"runs/procs/{n}/**/summary.json", recursive=True))
cpus = collections.Counter()
for line in open(f"{out}/psr{n}.txt"):
    f = line.split()
    if f: cpus[f[0]] += 1  # the busiest thread's CPU, each second
line = f"job {n} pin={spec} rc={rc} wall={wall}s cpus(busiest thread, per s)={dict(cpus)}"
if s:
    m = json.load(open(s[-1]))["methods"]
    for k in ("autoregressive", "vanilla_sd"):
        v = m[k]
        line += f" | {k} {v['tokens_per_s']:.1f} passes {[round(x, 1) for x in v.get('tokens_per_s_passes') or []]}"
print(line, flush=True)
PY
done
