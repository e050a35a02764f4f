#!/usr/bin/env python3
"""The fifty-eighth run: does a loaded pass lose what its timing thread waited for a CPU?

    python3 results/gpu_run58/wait_vs_rate.py            # reads call2/, call3/ and call4/ beside this file

For every timed pass of every run.py job (``runpy*/runs/*/summary.json``) and every benchmark
process (``s56_*/bench.json``, the methods part) of each call: the pass's rate, the share of the
pass its thread waited for a CPU (``cpu_wait_share_passes``, ``host_probe.cpu_wait_s``), and the
rate that wait alone predicts, ``reference x (1 - wait share)``, where the reference is the median
rate of the same method's passes in the same call that waited under 0.5 % (run.py jobs and
benchmark processes apart: their AR differ). Then each benchmark measuring pass's share outside
forwards beside its own wait, and that share with the wait taken out of both the outside time and
the decode time: a lower bound of what the engine leaves idle, since the device may run queued
work while the thread waits (and the wait also counts the generation's prefill)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUIET = 0.005  # a pass that waited less than this share of its wall is an unloaded reference


def passes(call: Path):
    """(kind, process, method, rates, wait shares, preemptions) for every job and benchmark row."""
    for summary in sorted(call.glob("runpy*/runs/*/summary.json")):
        doc = json.loads(summary.read_text())
        for method, s in doc["methods"].items():
            yield ("run.py", summary.parts[-4], method, s["tokens_per_s_passes"], s["cpu_wait_share_passes"],
                   s["preemptions_passes"])
    for bench in sorted(call.glob("s56_*/bench.json")):
        for row in json.loads(bench.read_text())["parts"]["methods"]["rows"]:
            if row.get("cpu_wait_share_passes"):
                yield ("bench", bench.parts[-2], row["name"], row["tokens_per_s_passes"], row["cpu_wait_share_passes"],
                       row["preemptions_passes"])


def main() -> None:
    for call in ("call2", "call3", "call4"):
        rows = list(passes(HERE / call))
        reference = {}
        for kind, _, method, rates, waits, _ in rows:
            reference.setdefault((kind, method), []).extend(r for r, w in zip(rates, waits) if w < QUIET)
        print(f"## {call}: timed passes that waited >= {100 * QUIET:.1f} % of their wall for a CPU")
        print("kind | process | method | rate | waited | predicted | actual / predicted | preempted")
        for kind, process, method, rates, waits, pre in rows:
            ref = statistics.median(reference[(kind, method)])
            for r, w, p in zip(rates, waits, pre):
                if w >= QUIET:
                    predicted = ref * (1 - w)
                    print(f"{kind} | {process} | {method} | {r:.0f} | {100 * w:.1f} % | {predicted:.0f} | "
                          f"{r / predicted:.3f} | {p}")
        print("references (median unloaded pass):",
              ", ".join(f"{k} {m} {statistics.median(v):.0f}" for (k, m), v in reference.items()))
        print(f"\n## {call}: measuring passes (outside forwards) that waited >= 1 ms")
        print("process | method | share | waited ms | share without the wait | preempted")
        for bench in sorted((HERE / call).glob("s56_*/bench.json")):
            for row in json.loads(bench.read_text())["parts"]["methods"]["rows"]:
                for p in (row.get("outside_forwards_async") or {}).get("passes", []):
                    wait = p.get("cpu_wait_s") or 0.0
                    if wait >= 1e-3:
                        outside = p["decode_s"] - p["model_busy_s"]
                        net = max(outside - wait, 0.0) / (p["decode_s"] - wait)
                        print(f"{bench.parts[-2]} | {row['name']} | {100 * p['gpu_idle_frac']:.1f} % | "
                              f"{1e3 * wait:.0f} | {100 * net:.1f} % | {p['preemptions']}")
        print()


if __name__ == "__main__":
    main()
