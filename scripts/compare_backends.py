#!/usr/bin/env python
"""Which backend is faster on this machine? The evidence behind ``model.backend=auto``.

    python scripts/compare_backends.py                      # shipped model, CPU, AR and layerskip
    python scripts/compare_backends.py --device cuda --dtype bfloat16 --model runs/gpu-24x1024

Both backends load the same checkpoint; each method is prepared and warmed up
(``measure.prepare``) and then timed exactly as ``run.py`` times it
(``measure.timed_generate``), the backends interleaved repetition by
repetition so that machine load hits both alike. Prints the median tokens/s
of each (backend, method) with every repetition.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench import measure  # noqa: E402
from hsd_bench.api import ModelPool  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.models.loading import ModelSpec  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402

PROMPTS = ["def add(a, b):\n    return", "import os\n\ndef walk(root):\n", "class Stack:\n    def push(self, x):\n"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/ee-24x128")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--exit", type=int, default=6, help="layerskip's E")
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    decoding = DecodingConfig()
    engines, prompts = {}, None
    for backend in ("hf", "native"):
        pool = ModelPool(ModelSpec(args.model, dtype=args.dtype, device=args.device, backend=backend))
        target, codec = pool.get(args.model)
        prompts = [codec.encode(p) for p in PROMPTS]
        for spec in (MethodSpec("autoregressive"), MethodSpec("layerskip", exit=args.exit)):
            engines[(backend, spec.name)] = engine = build_engine(spec, target, pool.get, codec)
            measure.prepare([engine], prompts, args.max_new, decoding)
    rates = {key: [] for key in engines}
    for _ in range(args.reps):
        for key, engine in engines.items():
            gens = [measure.timed_generate(engine, p, args.max_new, decoding).generation for p in prompts]
            rates[key].append(sum(g.stats.n_generated for g in gens) / sum(g.stats.wall_s for g in gens))
    for (backend, method), values in rates.items():
        print(f"{backend:7s} {method:15s} median {statistics.median(values):7.1f} tok/s   "
              + " ".join(f"{v:.1f}" for v in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
