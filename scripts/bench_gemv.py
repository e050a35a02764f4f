"""The projections of a decode step, kernel by kernel: cuBLAS against the one-pass GEMV.

    python scripts/bench_gemv.py --shapes llama-1b,llama-8b --out $OUT/gemv.json

For every projection matrix of a model shape (q/k/v stacked, o, gate/up
stacked, down), one row times the matrix (a decode step), it times
``torch.mm`` (cuBLAS; also with ``preferred_blas_library("cublaslt")``) and
the Triton GEMV of ``hsd_bench/models/native/gemv.py`` under each tile
configuration of ``--sweep`` (default: the kernel's own choice only), and reports microseconds per call and
the fraction of the measured copy bandwidth the weight read reaches. Each call
follows a small elementwise kernel that writes its input row, as in a layer
(a norm before q/k/v, attention before o): the time is that pair's.

How it is timed (the project's rules): every candidate is warmed up (Triton
compiles, cuBLAS picks its kernel) before a CUDA graph of ``--calls`` back-to-back
calls is captured, so neither compilation nor launch cost from Python is
timed -- as in the native backend, whose steps are graph replays. Successive
calls read different copies of the matrix, together larger than the L2 cache,
so each call streams its weight from memory as a model's layers do. Events
around each replay; the median of ``--reps`` replays and their range.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.bench.models import SHAPES  # noqa: E402
from hsd_bench.bench.timing import copy_bandwidth, device_times, median  # noqa: E402
from hsd_bench.models.native import gemv  # noqa: E402

STREAMED_BYTES = 512 << 20  # copies of a matrix per graph: > 8x an H100/H200 L2 cache


def projections(shape: str) -> dict[str, tuple[int, int]]:
    """``name -> (N, K)`` of a decoder layer's matrices, as the native backend stacks them."""
    cfg = SHAPES[shape]
    d, inter = cfg["hidden_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // heads)
    return {"qkv": ((heads + 2 * kv) * hd, d), "o": (d, heads * hd), "gate_up": (2 * inter, d), "down": (d, inter)}


def time_graph(fn, copies: int, calls: int, reps: int) -> dict:
    """Per-call microseconds of ``fn(i)`` (``i`` = the copy to read) replayed as one graph."""
    for i in range(copies):  # warm-up: compilation, algorithm choice, first-touch allocation
        fn(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for c in range(calls):
            fn(c % copies)
    graph.replay()
    torch.cuda.synchronize()
    times = [t * 1e6 / calls for t in device_times(graph.replay, reps)]
    del graph
    return {"us": median(times), "us_min": min(times), "us_max": max(times)}


def sweep_configs(n: int, k: int, full: bool) -> list[gemv.GemvConfig]:
    """The kernel's own choice first, then (``--sweep``) a grid of tiles: sliced loops, and the
    one-slice form (``block_k`` the whole row, a power of two) with one or two output features per
    program and 4-16 warps -- the tiles the twenty-fourth run committed came from that family, found
    by a sweep inside the model, which this grid could not reach."""
    if not full:
        return [gemv.default_config(n, k)]
    sliced = [gemv.GemvConfig(bn, bk, w, s) for bn, bk, (w, s) in
              itertools.product((1, 2, 4), (512, 1024, 2048), ((4, 1), (4, 2), (4, 3), (8, 2))) if bk < k]
    whole = 1 << (k - 1).bit_length()
    one_slice = [gemv.GemvConfig(bn, whole, w) for bn, w in itertools.product((1, 2), (4, 8, 16))]  # no loop: stages unused
    configs = [gemv.default_config(n, k)]
    for cfg in sliced + one_slice:  # the default once, whichever family it belongs to
        if cfg not in configs:
            configs.append(cfg)
    return configs


def bench_matrix(n: int, k: int, args, copy_bw: float) -> dict:
    dev = torch.device("cuda")
    nbytes = n * k * 2
    copies = max(2, math.ceil(STREAMED_BYTES / nbytes))
    calls = max(args.calls, copies)
    ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * k**-0.5 for _ in range(copies)]
    x_src = torch.randn(k, device=dev, dtype=torch.bfloat16)
    x = torch.empty_like(x_src)
    y = torch.empty(n, device=dev, dtype=torch.bfloat16)
    ref = ws[0].float() @ x_src.float()
    out: dict = {"n": n, "k": k, "weight_bytes": nbytes, "copies": copies, "calls": calls}

    def produce() -> None:  # the kernel before a projection (a norm, attention) writes its input
        torch.mul(x_src, 1.0, out=x)

    def bw(us: float) -> float:
        return nbytes / (us * 1e-6) / copy_bw

    for lib in ("cublas", "cublaslt"):
        try:
            torch.backends.cuda.preferred_blas_library(lib)
            r = time_graph(lambda i: (produce(), torch.mv(ws[i], x, out=y)), copies, calls, args.reps)
            r["bw_fraction"] = bw(r["us"])
            out[lib] = r
        except Exception as err:  # noqa: BLE001 -- keep the other candidates
            out[lib] = {"error": f"{type(err).__name__}: {err}"}
        finally:
            torch.backends.cuda.preferred_blas_library("cublas")
    tried = []
    for cfg in sweep_configs(n, k, args.sweep):
        label = "bn{}_bk{}_w{}_s{}".format(*cfg)
        try:
            produce()
            gemv.launch(x, ws[0], None, y, cfg)
            err = ((y.float() - ref).abs().max() / ref.abs().max()).item()
            r = time_graph(lambda i, cfg=cfg: (produce(), gemv.launch(x, ws[i], None, y, cfg)), copies, calls,
                           args.reps)
            r.update(config=label, rel_err=err, bw_fraction=bw(r["us"]))
        except Exception as e:  # noqa: BLE001 -- a config Triton cannot build (registers, shared memory)
            r = {"config": label, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        tried.append(r)
    ok = [r for r in tried if "us" in r and r["rel_err"] < 1e-2]
    out["gemv_default"] = tried[0]
    out["gemv_best"] = min(ok, key=lambda r: r["us"]) if ok else None
    out["gemv_all"] = tried
    del ws
    torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="llama-1b", help=f"comma-separated, of {sorted(SHAPES)}")
    ap.add_argument("--sweep", action="store_true", help="time a grid of tile configurations too")
    ap.add_argument("--calls", type=int, default=32, help="calls per captured graph")
    ap.add_argument("--reps", type=int, default=20, help="timed replays per candidate")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    unknown = [s for s in args.shapes.split(",") if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown --shapes {unknown}; valid: {', '.join(sorted(SHAPES))}")
    if not torch.cuda.is_available():
        raise SystemExit("bench_gemv.py times CUDA kernels: no CUDA device here")
    if not gemv.triton_available():
        raise SystemExit("bench_gemv.py: Triton does not import here")
    import triton

    copy_bw = copy_bandwidth("cuda")
    doc = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
           "copy_bw_Bps": copy_bw, "results": []}
    print(f"{doc['device']}, torch {doc['torch']}, triton {doc['triton']}, copy {copy_bw / 1e12:.2f} TB/s", flush=True)
    print(f"{'shape':9} {'matrix':8} {'MB':>6} | {'cublas us':>9} {'BW':>5} | {'lt us':>9} {'BW':>5} | "
          f"{'gemv us':>9} {'BW':>5} | best gemv", flush=True)
    for shape in args.shapes.split(","):
        qkv = projections(shape)["qkv"]
        doc.setdefault("fused_checks", {})[shape] = check = gemv.check_against_eager(*qkv, torch.device("cuda"))
        print(f"{shape} fused forms at q/k/v: {check}", flush=True)
        for name, (n, k) in projections(shape).items():
            res = bench_matrix(n, k, args, copy_bw)
            res.update(shape=shape, matrix=name)
            doc["results"].append(res)
            gb = res["gemv_best"]

            def cell(c):
                return f"{c['us']:9.2f} {100 * c['bw_fraction']:4.0f}%" if c and "us" in c else f"{'error':>9} {'':5}"

            best = f"{gb['config']} {gb['us']:.2f} us {100 * gb['bw_fraction']:.0f}%" if gb else "none"
            print(f"{shape:9} {name:8} {res['weight_bytes'] / 1e6:6.1f} | {cell(res['cublas'])} | "
                  f"{cell(res['cublaslt'])} | {cell(res['gemv_default'])} | {best}",
                  flush=True)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
