#!/usr/bin/env python
"""Acceptance between every pair of views (all exits, the target, separate drafts) on real prompts.

    python scripts/measure_acceptance.py --gsm8k-path ../shared/data/gsm8k/test.jsonl

Prompts are the runs' own (the humaneval and gsm8k tasks' prompts, seed 0);
each view is compared with every other along the target's greedy
continuation: greedy agreement, 1 - TV at each --temperatures, and the
draft_stop statistics. Writes acceptance.csv, draft_stop.csv, acceptance.md
and meta.json under --out (default results/grid_plan), which
scripts/plan_grid.py reads. Logic: hsd_bench/hierarchy/acceptance.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="checkpoints/ee-24x128")
    p.add_argument("--drafts", nargs="*", default=["checkpoints/family-2x128", "checkpoints/family-6x128"])
    p.add_argument("--humaneval", type=int, default=6, help="HumanEval prompts (task selection, seed 0)")
    p.add_argument("--gsm8k", type=int, default=6, help="GSM8K test prompts (5-shot, seed 0); needs --gsm8k-path")
    p.add_argument("--gsm8k-path", help="GSM8K test JSONL, e.g. ../shared/data/gsm8k/test.jsonl")
    p.add_argument("--new-tokens", type=int, default=96)
    p.add_argument("--temperatures", type=float, nargs="*", default=[0.6, 1.0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("results/grid_plan"))
    args = p.parse_args(argv)
    if args.gsm8k and not args.gsm8k_path:
        p.error("--gsm8k N needs --gsm8k-path (a GSM8K test JSONL), or --gsm8k 0")
    if args.new_tokens < 1 or args.humaneval < 0 or args.gsm8k < 0 or args.humaneval + args.gsm8k < 1:
        p.error("need --new-tokens >= 1 and at least one prompt")

    import torch

    from hsd_bench.api import ModelPool
    from hsd_bench.hierarchy.acceptance import measure
    from hsd_bench.models.loading import ModelSpec
    from hsd_bench.tasks.base import get_task

    torch.set_num_threads(args.threads)
    pool = ModelPool(ModelSpec(args.target, dtype=args.dtype, device=args.device))
    _, codec = pool.get(args.target)
    prompts = []
    for name, n, path in (("humaneval", args.humaneval, None), ("gsm8k", args.gsm8k, args.gsm8k_path)):
        if n:
            samples = get_task(name).load({"path": path, "limit": n, "seed": 0})
            prompts += [(name, codec.encode(s.prompt)) for s in samples]
    t0 = time.perf_counter()
    tables = measure(pool, args.target, list(args.drafts), prompts, args.new_tokens, tuple(args.temperatures))
    seconds = time.perf_counter() - t0
    tables.save(args.out)
    (args.out / "acceptance.md").write_text(report(tables, args))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "git_commit": commit,
            "target": args.target, "drafts": args.drafts, "prompts": {"humaneval": args.humaneval, "gsm8k": args.gsm8k},
            "new_tokens": args.new_tokens, "temperatures": args.temperatures, "device": args.device,
            "dtype": args.dtype, "host": platform.node(), "torch": torch.__version__, "seconds": round(seconds, 1)}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print((args.out / "acceptance.md").read_text())
    print(f"{len(prompts)} prompts in {seconds:.0f} s -> {args.out}")
    return 0


def report(tables, args) -> str:
    """A readable summary: each drafter against the target, per dataset and temperature."""
    from hsd_bench.hierarchy.acceptance import TARGET

    datasets = sorted({k[0] for k in tables.pairs})
    temps = tables.temperatures
    drafters = sorted((v for v in tables.views() if v != TARGET),
                      key=lambda v: (not v.startswith(TARGET + "@"), int(v.split("@")[1]) if "@" in v else 0, v))
    head = " | ".join(f"{d} T={t:g}" for d in datasets for t in temps)
    lines = [f"# Acceptance by the target, measured on CPU ({args.dtype}) with {args.target}", "",
             "Greedy agreement (T=0) and 1 - TV (T>0) of each drafter with the target along the target's greedy "
             "continuations; every pair of views is in acceptance.csv, the draft_stop statistics in draft_stop.csv.",
             "", f"| drafter | {head} |", "| --- |" + " --- |" * (len(datasets) * len(temps))]
    for d in drafters:
        cells = [f"{tables.alpha(d, TARGET, t, ds):.3f}" for ds in datasets for t in temps]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    n = {ds: tables.pairs[(ds, 0.0, drafters[0], TARGET)][1] for ds in datasets}
    lines += ["", "Positions: " + ", ".join(f"{ds} {v}" for ds, v in n.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
