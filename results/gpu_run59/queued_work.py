#!/usr/bin/env python3
"""The fifty-ninth run, calls 1-3 (folders call2/, call3/, call4/; three H100 machines): does device work queued past the host's next read hide a wait for
a CPU, in proportion to its length?

    python3 results/gpu_run59/queued_work.py            # reads call2/, call3/ and call4/ beside this file

run.py's AR job at each chunk (``ar_chunk``: tokens per host round trip; the next chunk is queued
before the host reads the last) unloaded, then beside 16 unpinned memory copiers. For every loaded
pass that waited at least 2 % of its wall (``host_probe.CPU_WAIT_SHARE``): its rate against the
unloaded job's median pass at the same chunk, the mean length of one wait (the pass's wait over its
preemptions) and the share ``h`` of its wait the pass did not lose, from ``rate = reference x
(1 - (1 - h) x wait share)`` (as ``results/gpu_run58/hidden_wait.py``). A chunk's device time is
``chunk / reference rate``. Last, the loaded passes that decoded more than 10 % below that
reference without waiting over 2 %: a slowdown the wait does not see."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAITED = 0.02  # host_probe.CPU_WAIT_SHARE


def jobs(call: Path):
    """(chunk, load, AR's summary entry) for every job of the call, in the order they ran."""
    for summary in sorted(call.glob("ar*/runs/*/summary.json"), key=lambda p: int(p.parts[-4][2:].split("_")[0])):
        name = summary.parts[-4]  # ar<i>_c<chunk>_<load>
        _, chunk, load = name.split("_", 2)
        yield int(chunk[1:]), load, json.loads(summary.read_text())["methods"]["autoregressive"]


def main() -> None:
    hidden_by_chunk: dict[int, list[float]] = {}
    unseen = []  # loaded passes > 10 % slow that did not wait
    print("call | chunk | unloaded tok/s (median pass) | chunk's device time, ms | loaded pass: tok/s | waited | "
          "preempted | ms a wait | share of the wait hidden")
    for call in ("call2", "call3", "call4"):
        rows = list(jobs(HERE / call))
        reference = {chunk: statistics.median(s["tokens_per_s_passes"]) for chunk, load, s in rows if load == "none"}
        for chunk, load, s in rows:
            if load == "none":
                continue
            ref = reference[chunk]
            for r, wait, w, p in zip(s["tokens_per_s_passes"], s["cpu_wait_s_passes"], s["cpu_wait_share_passes"],
                                     s["preemptions_passes"]):
                if w < WAITED and r < 0.9 * ref:
                    unseen.append(f"{call} | {chunk} | {ref:.0f} | {r:.0f} | {100 * (1 - r / ref):.0f} % | "
                                  f"{100 * w:.2f} % | {p}")
                if w >= WAITED:
                    hidden = 1 - (1 - r / ref) / w
                    hidden_by_chunk.setdefault(chunk, []).append(hidden)
                    per_wait = f"{1e3 * wait / p:.1f}" if p else "-"
                    print(f"{call} | {chunk} | {ref:.0f} | {1e3 * chunk / ref:.1f} | {r:.0f} | {100 * w:.1f} % | {p} | "
                          f"{per_wait} | {100 * hidden:.0f} %")
        print(f"{call}: unloaded rate by chunk (tokens computed past a stop are discarded, so a longer chunk "
              "decodes fewer committed tokens a second):", ", ".join(f"{c}: {r:.0f}" for c, r in reference.items()))
    print("\nchunk | passes | share of the wait hidden")
    for chunk, hidden in sorted(hidden_by_chunk.items()):
        print(f"{chunk} | {len(hidden)} | " + ", ".join(f"{100 * h:.0f} %" for h in hidden))
    print("\nloaded passes more than 10 % below the unloaded rate without waiting for a CPU")
    print("call | chunk | unloaded tok/s | pass tok/s | slower by | waited | preempted")
    print("\n".join(unseen) or "(none)")


if __name__ == "__main__":
    main()
