"""How far apart a process's timed passes decode, unloaded and beside other load: the data behind
run.py's RATE_SPREAD warning (hsd_bench/host_probe.py), read from every benchmark process of the
fifty-third to fifty-seventh GPU runs that kept its passes (methods part, --reps >= 2).

Run as ``python3 results/gpu_run57/pass_spread.py`` from the repository root (output:
``results/gpu_run57/pass_spread.txt``). A process is loaded where its folder's label names a load
(memory copiers, CPU spinners, a layout of copiers) and not "none"; the first process of a fresh
machine, "solo" and "none" are unloaded. Each row's spread is its fastest pass's tokens/s over its
slowest's, minus one (tokens over each pass's wall time, as run.py's ``tokens_per_s_passes``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(RESULTS.parent))
from hsd_bench.host_probe import RATE_SPREAD, different_states  # noqa: E402 -- run.py's rule (no torch)

LOADED = re.compile(r"(mem|cpu|rest|all|self|sib|far|pinned)")
METHODS = ("native AR", "ours AR", "ours hispec", "ours hierarchy")
LIMIT = RATE_SPREAD - 1


def rows() -> list[tuple[str, bool, str, float, bool]]:
    """(process folder, loaded, method, passes' spread, probes in two states) for every row."""
    out = []
    for run in sorted(RESULTS.glob("gpu_run5[3-7]")):
        for f in sorted(run.rglob("bench.json")):
            label = f.parent.name
            loaded = bool(LOADED.search(label)) and "none" not in label
            doc = json.loads(f.read_text())
            for r in ((doc.get("parts") or {}).get("methods") or {}).get("rows", []):
                walls = r.get("wall_s") or []
                method = next((m for m in METHODS if r["name"].startswith(m)), None)
                if len(walls) < 2 or method is None:
                    continue
                rates = [r["tokens_per_rep"] / w for w in walls]
                probes = r.get("host_probe_us_passes") or []
                states = bool(probes) and different_states(min(probes), max(probes))
                out.append((str(f.parent.relative_to(RESULTS)), loaded, method, max(rates) / min(rates) - 1, states))
    return out


def main() -> None:
    found = rows()
    for loaded in (False, True):
        mine = [r for r in found if r[1] == loaded]
        print(f"{'beside load' if loaded else 'unloaded'}: {len({r[0] for r in mine})} processes")
        for method in METHODS:
            spreads = sorted(r[3] for r in mine if r[2] == method)
            if not spreads:
                continue
            past = [r for r in mine if r[2] == method and r[3] > LIMIT]
            print(f"  {method:15s} rows {len(spreads):3d}  spread median {100 * spreads[len(spreads) // 2]:5.1f} %  "
                  f"max {100 * spreads[-1]:5.1f} %  past {100 * LIMIT:.0f} %: {len(past):2d} "
                  f"({sum(not r[4] for r in past)} with the probes in one state)")
        for r in mine:
            if r[3] > LIMIT and not loaded:
                print(f"    {r[0]} {r[2]}: {100 * r[3]:.1f} %{' (probes in two states)' if r[4] else ''}")


if __name__ == "__main__":
    main()
