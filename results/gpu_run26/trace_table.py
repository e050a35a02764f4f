#!/usr/bin/env python3
"""The device's idle share at the timed passes' rate beside the events' outside share, per engine row
of one or more ``bench_gpu.py --device-trace`` results (the methods part, or the overhead part).

    python results/gpu_run26/trace_table.py results/gpu_run26/*/m*/bench.json

Recomputed through ``hsd_bench.bench.trace.at_timed_rate`` (call 1 ran before the benchmark
reported it), with the timed passes' kept decode time as ``tokens_per_rep / decode_tokens_per_s``. Also
prints each row's busy time by the events (median instrumented pass) and by the trace: where a
call holds host work, the events count the device's wait for it as busy and the trace does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hsd_bench.bench.report import pct  # noqa: E402
from hsd_bench.bench.trace import at_timed_rate  # noqa: E402


def main(paths: list[str]) -> None:
    print("| result | row | decode tok/s | outside forwards (events) | device idle (trace, timed rate) "
          "| between launches | inside launches | busy: events / trace (s) | traced pass slower by |")
    print("|" + " --- |" * 9)
    for path in paths:
        parts = json.loads(Path(path).read_text())["parts"]
        rows = (parts["methods"]["rows"] if "methods" in parts
                else [r for m in parts["overhead"]["models"].values() for r in m["rows"]])
        for r in rows:
            traced = r.get("device_trace")
            if not traced or "busy_s" not in traced:
                continue
            decode_s = r["tokens_per_rep"] / r["decode_tokens_per_s"]
            shares = at_timed_rate(traced, decode_s)
            events = r["outside_forwards_async"]
            busy = sorted(p["model_busy_s"] for p in events["passes"])[len(events["passes"]) // 2]
            print(f"| {path} | {r['name']} | {r['decode_tokens_per_s']:.1f} | {pct(events['gpu_idle_frac'])} "
                  f"| {pct(shares['idle_at_timed_rate'])} | {pct(shares['between_launches_at_timed_rate'])} "
                  f"| {pct(shares['within_launches_at_timed_rate'])} | {busy:.4f} / {traced['busy_s']:.4f} "
                  f"| {100 * traced['traced_slowdown']:+.1f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])
