#!/usr/bin/env python
"""Pick the latency-optimal Mohri-style hierarchy from a profiled pool of drafters.

    python scripts/select_hierarchy.py pool.json [--t-max 8] [--variant overshoot|trim]
        [--acceptance adjacent|provenance] [--max-depth N] [--top-k 5] [--json]

Reads a pool profile (``hsd_bench.hierarchy.profile_format``: per-member
forward costs and pairwise acceptance rates, as the profiler writes it) and
prints the chosen stack with its batch sizes, the predicted latency per token
and speedup over autoregressive decoding of the target, the predicted engine
counters per level, the ``method=hierarchy`` levels to run it, and the next
best alternatives. ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.hierarchy.profile_format import PoolProfile  # noqa: E402
from hsd_bench.hierarchy.select import ACCEPTANCE_MODELS, select_hierarchy  # noqa: E402
from hsd_bench.hierarchy.latency import VARIANTS  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile", help="pool profile JSON (format hsd-bench/pool-profile)")
    p.add_argument("--t-max", type=int, default=8, help="largest batch size T_i searched (default 8)")
    p.add_argument("--variant", choices=VARIANTS, default="overshoot",
                   help="overshoot: a level hands up every token (engine + token-wise rule); "
                        "trim: exactly T_i (engine + fixed-length rules)")
    p.add_argument("--acceptance", choices=ACCEPTANCE_MODELS, default="adjacent",
                   help="adjacent: level j accepts level j-1's output at alpha(M_{j-1}, M_j); "
                        "provenance: at alpha(producer, M_j) per token")
    p.add_argument("--max-depth", type=int, default=None, help="most drafters in a stack (default: no limit)")
    p.add_argument("--top-k", type=int, default=5, help="alternatives to list (default 5)")
    p.add_argument("--keep", type=int, default=8, help="partial stacks kept per DP node (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def _candidate_dict(c) -> dict:
    return {
        "stack": list(c.names),
        "batches": list(c.batches),
        "latency_per_token_s": c.latency,
        "tokens_per_s": 1.0 / c.latency,
        "speedup_vs_ar": c.speedup,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        pool = PoolProfile.load(args.profile)
        sel = select_hierarchy(pool, t_max=args.t_max, acceptance=args.acceptance, variant=args.variant,
                               max_depth=args.max_depth, top_k=args.top_k, keep=args.keep)
    except (OSError, ValueError) as err:
        print(f"select_hierarchy: {err}", file=sys.stderr)
        return 2
    b = sel.breakdown
    levels = sel.method_levels(pool)
    per_level = [
        {
            "level": i,
            "member": name,
            "forwards_per_token": b.forwards_per_token[i],
            "acceptance_rate": b.acceptance_rate[i],
            "cost_share": b.cost_per_token_by_level[i] / b.latency_per_token,
        }
        for i, name in enumerate(sel.best.names)
    ]
    report = {
        "profile": str(args.profile),
        "model": {"variant": sel.variant, "acceptance": sel.acceptance, "t_max": sel.t_max,
                  "provably_optimal": sel.exact},
        "best": _candidate_dict(sel.best),
        "ar_latency_per_token_s": sel.best.ar_latency,
        "mean_accepted_len": b.tokens_per_cycle,
        "levels": per_level,
        "method_levels": levels,
        "alternatives": [_candidate_dict(c) for c in sel.alternatives],
        "excluded_not_cheaper_than_target": sel.excluded,
        "provenance": pool.provenance,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"pool: {args.profile}  target: {pool.target}  drafters: {len(pool.drafters)}")
    print(f"model: variant={sel.variant} acceptance={sel.acceptance} T in 1..{sel.t_max}"
          f" ({'provably optimal' if sel.exact else 'best found; not guaranteed optimal'})")
    if sel.excluded:
        print(f"excluded (not cheaper than the target): {', '.join(sel.excluded)}")
    best = sel.best
    print(f"\nbest: {best.describe()}")
    print(f"  predicted latency {best.latency * 1e3:.4g} ms/token ({1 / best.latency:.4g} tok/s), "
          f"AR {best.ar_latency * 1e3:.4g} ms/token -> speedup {best.speedup:.3f}x")
    print(f"  mean accepted length per target forward: {b.tokens_per_cycle:.3f}")
    for row in per_level:
        acc = "" if row["acceptance_rate"] is None else f"  acceptance {row['acceptance_rate']:.3f}"
        print(f"  L{row['level']} {row['member']:<20} forwards/token {row['forwards_per_token']:.3f}"
              f"  time share {row['cost_share']:.1%}{acc}")
    if levels:
        print("  run it: method=hierarchy 'method.levels=[" + ",".join(
            "{path:%s,exit:%s,batch:%d}" % (lv["path"], "null" if lv["exit"] is None else lv["exit"], lv["batch"])
            for lv in levels) + "]'")
    if sel.alternatives:
        print(f"\nnext {len(sel.alternatives)} alternatives:")
        for i, c in enumerate(sel.alternatives, 2):
            print(f"  {i}. {c.describe()}  {c.latency * 1e3:.4g} ms/token  speedup {c.speedup:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
