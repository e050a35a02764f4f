#!/usr/bin/env python3
"""The thirty-fifth run's A/B table from the calls' bench.json files: per process and method, decode
tok/s, model calls per token, the outside-forwards share (median of the passes, their range), the
device's idle between launches (trace) and the host probe. ``python3 results/gpu_run35/ab_table.py``
writes ab_table.md beside it."""
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALLS = [("call1", "294 M, machine A"), ("call2", "294 M, machine B"), ("call3", "5.6 M, machine C")]


def between_launches(bench_md: Path, name: str) -> str:
    """The trace column's between-launch share, as bench.md prints it ("13.9% (0.6%)" -> "0.6 %")."""
    for line in bench_md.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 11 and cells[1] == name:
            found = re.search(r"\((-?[\d.]+)%\)", cells[11])
            return f"{found.group(1)} %" if found else "–"
    return "–"


def order(path: Path) -> int:
    return int(re.search(r"(\d+)$", path.name).group(1)) * 2 + ("_on" in path.name)


lines = ["| machine | process | guarded rounds | method | decode tok/s | model calls / token | outside forwards "
         "(passes) | between launches (trace) | host probe |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for call, machine in CALLS:
    for run in sorted((p for p in (HERE / call).glob("m*_o*") if p.is_dir()), key=order):
        rows = json.loads((run / "bench.json").read_text())["parts"]["methods"]["rows"]
        for r in rows:
            if not r["name"].startswith("ours"):
                continue
            o = r["outside_forwards_async"]
            passes = [p["gpu_idle_frac"] * 100 for p in o["passes"]]
            lines.append(f"| {machine} | {run.name} | {'on' if '_on' in run.name else 'off'} | {r['method']} "
                         f"| {r['decode_tokens_per_s']:.1f} | {o['model_calls_per_token']:.3f} "
                         f"| {o['gpu_idle_frac'] * 100:.1f} % ({min(passes):.1f}–{max(passes):.1f}) "
                         f"| {between_launches(run / 'bench.md', r['name'])} | {r['host_probe_us']:.1f} µs |")
(HERE / "ab_table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
