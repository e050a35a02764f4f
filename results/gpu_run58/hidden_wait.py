#!/usr/bin/env python3
"""The fifty-eighth run, read again in the sixty-first session: how much of a wait for a CPU can
queued device work hide, and would a faster host turn hide more?

    python3 results/gpu_run58/hidden_wait.py            # reads call2/, call3/ and call4/ beside this file

For every timed pass that waited at least 2 % of its wall (``host_probe.CPU_WAIT_SHARE``) and was
preempted at least once: the mean length of one wait (the pass's wait over its preemptions), and
the share ``h`` of its wait the pass did not lose, from ``rate = reference x (1 - (1 - h) x wait
share)`` (``wait_vs_rate.py``'s reference: the median rate of the same method's passes in the same
call that waited under 0.5 %). A pass whose device had ``q`` seconds of work queued when its thread
lost the CPU hides about ``min(q, wait)`` of each wait. AR keeps a chunk of ``AR_CHUNK_CUDA``
tokens in flight (``q`` = chunk / reference rate); a speculative method's host reads a verdict
before it queues the next round, so what it has queued is at most a round's first launches. The
last lines put the two side by side."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUIET = 0.005  # as wait_vs_rate.py: a pass that waited less is an unloaded reference
WAITED = 0.02  # host_probe.CPU_WAIT_SHARE
AR_CHUNK_CUDA = 8  # hsd_bench.methods.AR_CHUNK_CUDA when this run was taken


def passes(call: Path):
    """(kind, process, method, rates, waits s, wait shares, preemptions) for every job and benchmark row."""
    for summary in sorted(call.glob("runpy*/runs/*/summary.json")):
        for method, s in json.loads(summary.read_text())["methods"].items():
            yield ("run.py", summary.parts[-4], method, s["tokens_per_s_passes"], s["cpu_wait_s_passes"],
                   s["cpu_wait_share_passes"], s["preemptions_passes"])
    for bench in sorted(call.glob("s56_*/bench.json")):
        for row in json.loads(bench.read_text())["parts"]["methods"]["rows"]:
            if row.get("cpu_wait_share_passes"):
                yield ("bench", bench.parts[-2], row["name"], row["tokens_per_s_passes"], row["cpu_wait_s_passes"],
                       row["cpu_wait_share_passes"], row["preemptions_passes"])


def family(method: str) -> str:
    return "AR" if method in ("autoregressive", "ours AR") else method.split()[1] if method.startswith("ours") else method


def main() -> None:
    by_family: dict[str, list[tuple[float, float]]] = {}
    refs: dict[str, list[float]] = {}
    print("call | kind | process | method | waited | preempted | ms a wait | share of the wait hidden")
    for call in ("call2", "call3", "call4"):
        rows = list(passes(HERE / call))
        reference = {}
        for kind, _, method, rates, _, shares, _ in rows:
            reference.setdefault((kind, method), []).extend(r for r, w in zip(rates, shares) if w < QUIET)
        for kind, process, method, rates, waits, shares, pre in rows:
            ref = statistics.median(reference[(kind, method)])
            refs.setdefault(family(method), []).append(ref)
            for r, wait, w, p in zip(rates, waits, shares, pre):
                if w >= WAITED and p:
                    hidden = 1 - (1 - r / ref) / w
                    by_family.setdefault(family(method), []).append((1e3 * wait / p, hidden))
                    print(f"{call} | {kind} | {process} | {method} | {100 * w:.1f} % | {p} | {1e3 * wait / p:.1f} | "
                          f"{100 * hidden:.0f} %")
    print("\nmethod | passes | ms a wait (median; range) | share hidden (median; range) | "
          "device work queued at a lost CPU, ms")
    for name, pairs in by_family.items():
        ms, hid = zip(*pairs)
        queued = (f"AR's chunk: {AR_CHUNK_CUDA} tokens / {statistics.median(refs[name]):.0f} tok/s = "
                  f"{1e3 * AR_CHUNK_CUDA / statistics.median(refs[name]):.1f}" if name == "AR" else
                  "at most a round's first launches (the host reads each verdict before it queues the next round)")
        print(f"{name} | {len(pairs)} | {statistics.median(ms):.1f}; {min(ms):.1f}-{max(ms):.1f} | "
              f"{100 * statistics.median(hid):.0f} %; {100 * min(hid):.0f}-{100 * max(hid):.0f} % | {queued}")


if __name__ == "__main__":
    main()
