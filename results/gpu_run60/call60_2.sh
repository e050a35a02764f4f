#!/usr/bin/env bash
# Sixtieth run, call 2 (any card; call60_1.sh runs it where the machine can do nothing owed): the
# sixty-second session's record fixes, read on a GPU through run.py as a user runs it.
# - time_split_s at batch B from CUDA events (LevelClock.flush): each level interval is now split
#   among the rows it served, so summed over a batch's rows the level times must stay within its
#   decode time, with a rest above 0 (before, about B times the decode time and a rest of 0);
#   HiSpec on the shipped model at B = 4 and B = 1, level_split=true;
# - method=hf_generate: decode_tokens_per_s and decode_speedup_vs_ar null, the end-to-end speedup
#   kept. Carry [".whl"].
# A CPU dry run: OUT=<dir> DRY=1 bash results/gpu_run60/call60_2.sh
source scripts/gpu_env.sh
CALL=${CALL:-call2}
source scripts/gpu_call.sh
R=(model.path=checkpoints/ee-24x128 method=hispec exit=3,6 level_split=true timing_repeats=1)
if [[ -n ${DRY:-} ]]; then
  R+=(model.device=cpu max_new_tokens=8 dataset.limit=4); H=(model.device=cpu max_new_tokens=8 dataset.limit=2)
else
  R+=(model.device=cuda model.dtype=bfloat16 max_new_tokens=64 dataset.limit=8)
  H=(model.device=cuda model.dtype=bfloat16 max_new_tokens=32 dataset.limit=2)
fi
step b4 240 python3 run.py "${R[@]}" decoding.batch_size=4 results_dir="$W/b4"
step b1 150 python3 run.py "${R[@]}" decoding.batch_size=1 results_dir="$W/b1"
(( $(left) > 100 )) && step hf 100 python3 run.py model.path=checkpoints/ee-24x128 method=hf_generate "${H[@]}" results_dir="$W/hf"
python3 - "$W" > "$W/check.txt" 2>&1 <<'PY'
import json, sys, pathlib
for summary in sorted(pathlib.Path(sys.argv[1]).glob("*/*/summary.json")):
    s = json.loads(summary.read_text())
    for name, m in s["methods"].items():
        rows = [json.loads(l) for l in (summary.parent / "rows.jsonl").read_text().splitlines()]
        rows = [r for r in rows if r.get("method") == name and not r.get("skipped")]
        decode = None if any(r["decode_s"] is None for r in rows) else sum(r["decode_s"] for r in rows)
        split = m["time_split_s"]
        levels = sum(v for k, v in split.items() if k != "other")
        print(f"{summary.parent.parent.name} B={s['batch_size']} {name}: tok/s {m['tokens_per_s']:.1f}, "
              f"decode tok/s {m['decode_tokens_per_s']}, speedup {m.get('speedup_vs_ar')}, decode speedup "
              f"{m.get('decode_speedup_vs_ar')}; decode {decode} s, levels {levels:.4f} s, other "
              f"{split.get('other')}, levels/decode {levels / decode if decode else None}; parity "
              f"{m['parity_exact']}, unexplained {m['parity_unexplained']}; warnings {m['timing_warning_count']}")
PY
cat "$W/calls.log" "$W/check.txt"; pack
