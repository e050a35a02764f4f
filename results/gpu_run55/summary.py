"""Per process and method: the outside share of the interleaved measuring passes beside what pairs them.

Run as ``python3 results/gpu_run55/summary.py DIR...`` (folders holding ``bench.json``). One line per
engine row: the timed decode rate and host probes, the reported share (median pass) and every pass's
share with its slowdown against the timed pass just before it and the CUDA event pair's host cost in
that pass's state, the cross-check at the timed passes' rate, and the kernel trace's device idle at
that rate (total, between launches) where the process traced, and the timed passes' preemptions
where the rows carry them (``preemptions_passes``, since ``c066a38``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def main(dirs: list[str]) -> None:
    for d in dirs:
        path = Path(d) / "bench.json"
        if not path.exists():
            print(f"{d}: no bench.json")
            continue
        doc = json.loads(path.read_text())
        part = doc.get("parts", {}).get("methods") or {}
        print(Path(d).name)
        for r in part.get("rows", []):
            a = r.get("outside_forwards_async")
            if not a:
                continue
            passes = " ".join(
                f"{pct(p['gpu_idle_frac'])}({pct(p.get('paired_slowdown'))},"
                f"{p['event_pair_host_us']:.1f}us)" if p.get("event_pair_host_us") is not None else
                f"{pct(p['gpu_idle_frac'])}({pct(p.get('paired_slowdown'))})" for p in a["passes"])
            trace = r.get("device_trace") or {}
            probes = ",".join(f"{x:.1f}" for x in r.get("host_probe_us_passes") or [])
            preempted = r.get("preemptions_passes")  # since c066a38: other threads' time slices, per pass
            print(f"  {r['name'][:16]:16} {r['decode_tokens_per_s']:7.0f} tok/s probes {probes:16} "
                  f"share {pct(a['gpu_idle_frac']):>5}% passes [share(paired slowdown %, event pair)] {passes} "
                  f"at-rate {pct(a.get('outside_at_timed_rate'))}% trace idle {pct(trace.get('idle_at_timed_rate'))}% "
                  f"between {pct(trace.get('between_launches_at_timed_rate'))}%"
                  + (f" preempted {','.join(map(str, preempted))}" if preempted else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
