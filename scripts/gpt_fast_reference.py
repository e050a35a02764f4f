#!/usr/bin/env python3
"""gpt-fast as an external reference: the same weights and prompts, AR through its generate() and ours.

    git clone https://github.com/pytorch-labs/gpt-fast /path/gpt-fast          # once, anywhere
    python scripts/gpt_fast_reference.py --gpt-fast /path/gpt-fast \\
        --models checkpoints/ee-24x128,random:llama-1b,random:llama-8b --out $OUT/gpt_fast.json   # on a GPU
    python scripts/gpt_fast_reference.py --gpt-fast /path/gpt-fast --models random:tiny \\
        --device cpu --dtype float32 --no-compile --max-new 16                # a dry run

Why and how: ``hsd_bench/bench/gpt_fast.py`` (one row per model: both rates, their ratio, how
many tokens are equal and why a prompt's tokens part). This is its command line, one JSON for
all models, written after every model so a time limit keeps the finished ones; ``bench_gpu.py
--parts ...,gpt_fast --gpt-fast PATH`` puts the same rows in the benchmark's report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hsd_bench.bench import gpt_fast  # noqa: E402
from hsd_bench.bench.models import spec_problem  # noqa: E402
from hsd_bench.models.loading import DTYPES  # noqa: E402

_START = time.perf_counter()


def log(msg: str) -> None:
    """Progress with the seconds since start, so a run cut off by a time limit shows where its time went."""
    print(f"[+{time.perf_counter() - _START:.0f}s] {msg}", flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gpt-fast", type=Path, required=True, help="a clone of pytorch-labs/gpt-fast")
    ap.add_argument("--models", default="checkpoints/ee-24x128,random:llama-1b,random:llama-8b",
                    help="comma-separated checkpoint directories or random:<shape>")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=128, help="random prompts' length (models without a tokenizer)")
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="gpt-fast eager (a CPU dry run)")
    ap.add_argument("--out", type=Path, default=Path("gpt_fast.json"))
    args = ap.parse_args(argv)
    problem = gpt_fast.clone_problem(args.gpt_fast)
    if problem:
        ap.error(f"--gpt-fast: {problem}")
    for problem in filter(None, map(spec_problem, args.models.split(","))):  # bench_gpu's check of its models
        ap.error(f"--models: {problem}")
    for key in ("prompts", "prompt_len", "max_new", "reps"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')}={getattr(args, key)} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = DTYPES[args.dtype]
    gf_model, gf_generate = gpt_fast.import_gpt_fast(args.gpt_fast)
    if not args.no_compile:
        gpt_fast.compile_like_gpt_fast_main(gf_generate)
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__, "models": {}}
    for spec in args.models.split(","):
        results["models"][spec] = gpt_fast.compare_model(spec, gf_model, gf_generate, args.device, dtype, args.prompts,
                                                         args.prompt_len, args.max_new, args.reps, log)
        args.out.write_text(json.dumps(results, indent=1))  # after every model: a timeout keeps the finished ones
    return 0


if __name__ == "__main__":
    sys.exit(main())
