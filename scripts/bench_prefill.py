#!/usr/bin/env python3
"""How long a prompt takes to prefill on the native backend: one eager pass or fixed-shape chunks.

    python scripts/bench_prefill.py --models checkpoints/ee-24x128,random:llama-1b,random:llama-8b \\
        --lengths 32,128,512 --out $OUT/prefill.json                          # on a GPU
    python scripts/bench_prefill.py --models random:tiny --device cpu --dtype float32 --lengths 16,40

Why: a prompt longer than the graphs' step (``max_graph_tokens``) runs either as one
exact-shape pass launched kernel by kernel ("eager") or as replays of the captured
fixed-shape steps, ``max_graph_tokens`` positions at a time ("chunked"). Eager costs
host launches and was the phase whose time moved most between processes on the
shipped 5.6 M model (docs/gpu-runs.md, "Fifth run"); chunks re-read every weight
once per chunk, so they lose on large models. ``model.prefill=auto`` picks between
them by model size; this script measures where the crossover lies.

Both modes run on one model (the mode is switched between calls), warmed up at every
length first (the chunks' shapes captured, the eager shapes' libraries loaded), then
timed alternately, ``--reps`` times each, synchronised around every clock read
(``hsd_bench.bench.timing.timed``). The JSON has, per model and length, the median
and min-max of each mode, the ratio eager / chunked, and the largest difference
between the two modes' hidden states.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hsd_bench.bench.models import load_hf  # noqa: E402
from hsd_bench.bench.timing import median, timed  # noqa: E402
from hsd_bench.models.native import from_hf_model  # noqa: E402
from hsd_bench.models.native.model import PREFILL_MODES  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="checkpoints/ee-24x128,random:llama-1b",
                    help="comma-separated checkpoint directories or random:<shape>")
    ap.add_argument("--lengths", default="32,128,512", help="comma-separated prompt lengths (positions prefilled)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    ap.add_argument("--out", default="prefill.json")
    args = ap.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    if min(lengths) < 2:
        ap.error(f"--lengths={args.lengths!r}: every length must be >= 2")
    if args.reps < 1:
        ap.error(f"--reps={args.reps} must be >= 1")
    return args


def bench_model(spec: str, lengths: list[int], reps: int, device: str, dtype: torch.dtype) -> dict:
    hf, _ = load_hf(spec, device, dtype)
    native = from_hf_model(hf, name=spec, max_context=max(lengths) + 64)
    del hf
    depth = native.num_layers
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, native.vocab_size, (1, max(lengths)), generator=g).to(device)

    def prefill(mode: str, n: int) -> torch.Tensor:
        native.prefill = mode
        native.reset()  # host-side only: rewinds the cached lengths
        return native.run_layers(native.embed(ids[:, :n]), 0, depth, 0)

    out = {"weight_bytes": native.weight_bytes(), "layers": depth, "max_graph_tokens": native.max_graph_tokens,
           "lengths": {}}
    for n in lengths:  # warm-up: every shape of both modes met once, untimed
        for mode in PREFILL_MODES:
            for _ in range(2):
                prefill(mode, n)
    for n in lengths:
        times: dict[str, list[float]] = {m: [] for m in PREFILL_MODES}
        hidden = {}
        for _ in range(reps):
            for mode in PREFILL_MODES:  # alternating: a drift in the host's speed lands on both
                hidden[mode], s = timed(lambda mode=mode: prefill(mode, n), device)
                times[mode].append(s)
        row = {m: {"median_ms": 1000 * median(t), "min_ms": 1000 * min(t), "max_ms": 1000 * max(t)}
               for m, t in times.items()}
        row["eager_over_chunked"] = row["eager"]["median_ms"] / row["chunked"]["median_ms"]
        row["max_abs_diff"] = (hidden["eager"].float() - hidden["chunked"].float()).abs().max().item()
        out["lengths"][n] = row
        print(f"{spec} L={n}: eager {row['eager']['median_ms']:.2f} ms, chunked {row['chunked']['median_ms']:.2f} ms"
              f" ({row['eager_over_chunked']:.2f}x), max |diff| {row['max_abs_diff']:.3g}", flush=True)
    del native
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype)
    lengths = [int(n) for n in args.lengths.split(",")]
    doc = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
           "dtype": args.dtype, "torch": torch.__version__, "reps": args.reps, "models": {}}
    for spec in args.models.split(","):
        doc["models"][spec] = bench_model(spec, lengths, args.reps, args.device, dtype)
        Path(args.out).write_text(json.dumps(doc, indent=1))  # kept after every model
    return 0


if __name__ == "__main__":
    sys.exit(main())
