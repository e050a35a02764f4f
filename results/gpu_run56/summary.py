"""The fifty-sixth run's processes, by host-wait mode and load: rate, share and preemptions per method.

Run as ``python3 results/gpu_run56/summary.py DIR...`` (process folders holding ``bench.json``, and
``sync_mode.json`` where sync_mode.py ran it; a folder is named ``p<i>_<label>``: call 1's label is
``<mode>_<load>``, call 3's the layout). One line per engine row: the
context's scheduling flags after the run (1 spin, 2 yield, 4 block; 0 the driver's automatic
choice), the timed decode rate, the host probes, the share outside forwards (median measuring
pass) and the timed passes' preemptions, then every measuring pass's share with its slowdown
against the timed pass before it and its own preemptions. Then, per method and label, the
medians over processes, so modes and layouts read side by side.
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
    groups: dict[tuple[str, str], list[tuple[float, float | None, float]]] = defaultdict(list)
    for name in dirs:
        d = Path(name)
        if not (d / "bench.json").exists():
            print(f"{d.name}: no bench.json")
            continue
        sync, rows = rows_of(d)
        named = re.fullmatch(r"p\d+_(.+?)(_\d+)?", d.name)  # _<k>: unused()'s second of a name
        label = named.group(1) if named else d.name  # call 1: <mode>_<load>; call 3: the layout
        sched = (sync.get("after") or sync.get("set") or {}).get("sched")
        print(f"{d.name}  (context sched flags {sched})")
        for r in rows:
            if r.get("decode_tokens_per_s") is None:
                continue
            a = r.get("outside_forwards_async") or {}
            probes = ",".join(f"{x:.1f}" for x in r.get("host_probe_us_passes") or [])
            pre = r.get("preemptions_passes")
            passes_ = " ".join(f"{pct(p['gpu_idle_frac'])}({pct(p.get('paired_slowdown'))},{p.get('preemptions')})"
                               for p in a.get("passes") or [])
            print(f"  {r['name'][:16]:16} {r['decode_tokens_per_s']:7.0f} tok/s probes {probes:16} "
                  f"share {pct(a.get('gpu_idle_frac')):>5}% preempted {pre} "
                  f"measuring passes [share(paired slowdown %, preempted)] {passes_}")
            passes = r.get("decode_s") or []
            groups[(r["name"], label)].append(
                (r["decode_tokens_per_s"], a.get("gpu_idle_frac"),
                 statistics.median(pre) / statistics.median(passes) if pre and passes else float("nan")))
    print("\nmedians over processes: method, label: n, decode tok/s, share %, timed passes' preemptions per s of decode")
    for key in sorted(groups):
        vals = groups[key]
        shares = [s for _, s, _ in vals if s is not None]
        print(f"  {key[0][:16]:16} {key[1]:14} n={len(vals)} {statistics.median(v for v, _, _ in vals):7.0f} "
              f"{pct(statistics.median(shares)) if shares else '–':>5} {statistics.median(p for _, _, p in vals):8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
