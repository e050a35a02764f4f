"""The fifty-sixth run's processes, by host-wait mode and load: rate, share and preemptions per method.

Run as ``python3 results/gpu_run56/summary.py DIR...`` (process folders holding ``bench.json`` and
``sync_mode.json``; a folder is named ``p<i>_<mode>_<load>``). One line per engine row: the
context's scheduling flags after the run (1 spin, 2 yield, 4 block; 0 the driver's automatic
choice), the timed decode rate, the host probes, the share outside forwards (median measuring
pass) and the timed passes' preemptions. Then, per method and load, the medians over processes
of each mode, so the two modes' rates and shares read side by side.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def rows_of(d: Path) -> tuple[dict, list[dict]]:
    sync = json.loads((d / "sync_mode.json").read_text()) if (d / "sync_mode.json").exists() else {}
    doc = json.loads((d / "bench.json").read_text())
    return sync, (doc.get("parts", {}).get("methods") or {}).get("rows", [])


def main(dirs: list[str]) -> None:
    groups: dict[tuple[str, str, str], list[tuple[float, float | None, float]]] = defaultdict(list)
    for name in dirs:
        d = Path(name)
        if not (d / "bench.json").exists():
            print(f"{d.name}: no bench.json")
            continue
        sync, rows = rows_of(d)
        named = re.fullmatch(r"p\d+_([a-z]+)_(.+?)(_\d+)?", d.name)  # _<k>: unused()'s second of a name
        mode, load = named.group(1, 2) if named else ("?", "?")
        sched = (sync.get("after") or sync.get("set") or {}).get("sched")
        print(f"{d.name}  (context sched flags {sched})")
        for r in rows:
            if r.get("decode_tokens_per_s") is None:
                continue
            a = r.get("outside_forwards_async") or {}
            probes = ",".join(f"{x:.1f}" for x in r.get("host_probe_us_passes") or [])
            pre = r.get("preemptions_passes")
            print(f"  {r['name'][:16]:16} {r['decode_tokens_per_s']:7.0f} tok/s probes {probes:16} "
                  f"share {pct(a.get('gpu_idle_frac')):>5}% preempted {pre}")
            passes = r.get("decode_s") or []
            groups[(r["name"], load, mode)].append(
                (r["decode_tokens_per_s"], a.get("gpu_idle_frac"),
                 statistics.median(pre) / statistics.median(passes) if pre and passes else float("nan")))
    print("\nmedians over processes: method, load, mode: n, decode tok/s, share %, preemptions per s of decode")
    for key in sorted(groups):
        vals = groups[key]
        shares = [s for _, s, _ in vals if s is not None]
        print(f"  {key[0][:16]:16} {key[1]:8} {key[2]:6} n={len(vals)} {statistics.median(v for v, _, _ in vals):7.0f} "
              f"{pct(statistics.median(shares)) if shares else '–':>5} {statistics.median(p for _, _, p in vals):8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
