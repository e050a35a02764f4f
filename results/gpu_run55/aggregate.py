"""The fifty-fifth run's processes in one table, and the paired slowdowns and event costs pooled.

    python3 results/gpu_run55/aggregate.py

Per process (call, name): each method's timed decode rate, reported share (median measuring pass),
the kernel trace's device idle between launches at the timed rate. Pooled over HiSpec's and the
hierarchy's paired measuring passes by load: the slowdown against the timed pass just before each
(quartiles, extremes), and the event pair's host cost in every measuring pass.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def quartiles(xs: list[float]) -> str:
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"n={len(xs)} min {xs[0]:.1f} q1 {q[0]:.1f} median {q[1]:.1f} q3 {q[2]:.1f} max {xs[-1]:.1f}"


def main() -> None:
    paired: dict[str, list[float]] = {}
    pairs_us: dict[str, list[float]] = {}
    print("call/process | method | timed tok/s | share % (passes) | trace between % | trace idle %")
    for bench in sorted(HERE.glob("call*/p*_*/bench.json")):
        load = bench.parent.name.split("_", 1)[1]
        load = "memx16 unpinned" if load in ("memx16", "unpinned") else {"pinned": "memx16 pinned"}.get(load, load)
        for r in json.loads(bench.read_text())["parts"]["methods"]["rows"]:
            a = r.get("outside_forwards_async")
            if not a:
                continue
            method = r["method"]
            trace = r.get("device_trace") or {}
            print(f"{bench.parent.parent.name}/{bench.parent.name} | {method} | {r['decode_tokens_per_s']:.0f} | "
                  f"{100 * a['gpu_idle_frac']:.1f} ({len(a['passes'])}) | "
                  f"{100 * trace['between_launches_at_timed_rate']:.1f} | {100 * trace['idle_at_timed_rate']:.1f}")
            if method in ("hispec", "hierarchy"):
                paired.setdefault(load, []).extend(100 * p["paired_slowdown"] for p in a["passes"]
                                                   if p.get("paired_slowdown") is not None)
            pairs_us.setdefault(load, []).extend(p["event_pair_host_us"] for p in a["passes"])
    for load, xs in sorted(paired.items()):
        print(f"paired slowdown %, HiSpec and the hierarchy, {load}: {quartiles(xs)}")
    for load, xs in sorted(pairs_us.items()):
        print(f"event pair host µs, every measuring pass, {load}: {quartiles(xs)}")


if __name__ == "__main__":
    main()
