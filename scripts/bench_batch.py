#!/usr/bin/env python3
"""Speedup over autoregressive decoding against batch size, on one GPU.

    python scripts/bench_batch.py --models random:llama-1b --out $OUT
    python scripts/bench_batch.py --models checkpoints/ee-24x128 --draft checkpoints/family-2x128 \
        --mid-draft checkpoints/family-6x128 --out $OUT
    python scripts/bench_batch.py --figure-from results/bench_batch/h200_batch.json --out results/bench_batch

For every model and every batch size B (default 1, 2, 4, ..., 64) each method
decodes ``--rows-per-batch * B`` prompts at batch B through the engine
(finished rows refilled, greedy, EOS off, ``--max-new`` tokens each) on the
native backend (compiled, CUDA graphs), AR first; the figure is each
method's aggregate tokens/s over AR's at the same B on the same prompts
(``hsd_bench/bench/batch.py``), and the table names the batch from which a
method stops paying. Random weights (``random:<shape>``) accept ~nothing:
their rows measure what a round costs at each batch, not a speedup a trained
model would get. At the largest batch AR is also run straight on the backend
(no engine), and both AR rows are compared with the roofline: every weight
and every row's KV read once at the measured copy bandwidth, or the step's
FLOPs at the measured matmul rate, whichever binds.

Writes ``batch.json`` and ``batch.md`` to ``--out`` after every run (a run
cut off by ``--time-limit-s`` keeps what it measured) and ``batch.png`` /
``batch.pdf`` at the end where matplotlib is installed (else rebuild them
with ``--figure-from``). Imports only torch / transformers / tokenizers on
the GPU path, like ``bench_gpu.py``, whose model helpers it reuses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gpu import (  # noqa: E402
    BACKEND_OPTIONS, DTYPES, ONE_SPAN, context_for, engine_label, engine_specs, free_device_memory, log, make_native,
)
from hsd_bench.bench.batch import ar_roofline, engine_batch_run, markdown, native_batch_loop, plot  # noqa: E402
from hsd_bench.bench.models import load_hf, prompts_for, same_vocabulary  # noqa: E402
from hsd_bench.bench.report import parity  # noqa: E402
from hsd_bench.bench.timing import copy_bandwidth, matmul_flops  # noqa: E402
from hsd_bench.methods import build_engine  # noqa: E402
from hsd_bench.models.loading import hardware_name  # noqa: E402
from hsd_bench.models.native import from_hf_model  # noqa: E402

METHODS = ("autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy")


def row_of(r, ar) -> dict:
    return {
        "name": r.name, "method": r.method, "batch": r.extra["batch"], "prompts": r.extra["prompts"],
        "tokens_per_rep": r.tokens, "reps": len(r.wall_s), "wall_s": r.wall_s,
        "tokens_per_s": r.tokens_per_s, "decode_tokens_per_s": r.decode_tokens_per_s,
        "speedup_vs_ar_same_batch": r.tokens_per_s / ar.tokens_per_s if ar else None,
        "mean_accepted_len": r.mean_accepted_len,
        "parity_vs_ar_same_batch": parity(r.outputs, ar.outputs) if ar else None,
        **{k: v for k, v in r.extra.items() if k not in ("batch", "prompts")},
    }


def bench_model(args, spec: str, device, dtype, publish, deadline, copy_bw, flops) -> dict:
    hf, tok = load_hf(spec, device, dtype)
    depth = hf.config.num_hidden_layers
    batches, max_b = args.batches, max(args.batches)
    prompts_all = prompts_for(tok, hf.config.vocab_size, args.rows_per_batch * max_b, args.prompt_len, seed=3)
    ctx = context_for(max(map(len, prompts_all)), args.max_new)
    native = make_native(hf, "target", ctx, BACKEND_OPTIONS["variant"])
    others = {}
    for key, path in (("draft", args.draft), ("mid", args.mid_draft)):
        if not path or (key == "mid" and "draft" not in others):
            continue
        hf_o, tok_o = load_hf(path, device, dtype)
        if same_vocabulary(tok, tok_o) is False:
            log(f"[{spec}] {path} has other token ids than the target: methods using it are skipped")
            continue
        others[key] = from_hf_model(hf_o, name=key, max_context=ctx, min_kv_bucket=ONE_SPAN,
                                    attention=native.attention)
    for m in (native, *others.values()):
        m.reserve_rows(max_b)  # once: growing the cache later would drop every captured graph
    del hf
    free_device_memory(device)
    e, e_d, e_v = args.exit or max(1, depth // 4), max(1, depth // 8), max(2, depth // 4)
    specs = engine_specs(depth, e, e_d, e_v, args.gamma, args.nd, args.ni, draft="draft" in others,
                         mid="mid" in others)
    methods = [m for m in args.methods if m in specs]
    engines = {m: build_engine(specs[m], native, load_other=lambda p: (others[p], None)) for m in methods}
    tag = spec.split(":")[-1].split("/")[-1]
    log(f"[{tag}] {depth} layers, methods {methods}, batches {batches}, {args.rows_per_batch}·B prompts of "
        f"{min(map(len, prompts_all))}-{max(map(len, prompts_all))} tokens, {args.max_new} new each")
    doc = {"layers": depth, "exit": e, "hispec_exits": [e_d, e_v], "gamma": args.gamma, "nd": args.nd,
           "ni": args.ni, "max_new": args.max_new, "rows_per_batch": args.rows_per_batch, "rows": [], "not_run": []}
    ar_at: dict[int, object] = {}
    for batch in batches:
        prompts = prompts_all[: args.rows_per_batch * batch]
        for method in methods:
            if deadline is not None and time.perf_counter() > deadline:
                doc["not_run"].append(f"{method} at B={batch}: time limit")
                continue
            label = f"[{tag}] B={batch} " + engine_label(method, e, e_d, e_v, args.gamma, args.nd, args.ni)
            r = engine_batch_run(label, engines[method], method, prompts, args.max_new, batch, args.reps)
            if method == "autoregressive":
                ar_at[batch] = r
            doc["rows"].append(row_of(r, ar_at.get(batch)))
            row = doc["rows"][-1]
            log(f"{label}: {r.tokens_per_s:.0f} tok/s, {_x(row['speedup_vs_ar_same_batch'])} vs AR, "
                f"τ={r.mean_accepted_len:.2f}, p50 latency {r.extra['latency_s']['p50']:.2f} s")
            publish(doc)
    if max_b in ar_at and (deadline is None or time.perf_counter() < deadline):
        avg_ctx = sum(map(len, prompts_all)) / len(prompts_all) + args.max_new / 2
        loop = native_batch_loop(f"[{tag}] B={max_b} native AR (loop, no engine)", native,
                                 prompts_all[: args.rows_per_batch * max_b], args.max_new, max_b, args.reps)
        doc["rows"].append(row_of(loop, ar_at[max_b]))
        doc["roofline"] = {
            label: ar_roofline(native, max_b, avg_ctx, max_b / r.decode_tokens_per_s, copy_bw, flops)
            for label, r in (("engine AR", ar_at[max_b]), ("native AR loop", loop)) if r.decode_tokens_per_s
        }
        for label, roof in doc["roofline"].items():
            if roof.get("fraction") is not None:
                log(f"[{tag}] {label} at B={max_b}: {roof['binds']} binds, {100 * roof['fraction']:.1f}% of the roofline")
        publish(doc)
    if device.type == "cuda":
        doc["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return doc


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def write(doc: dict, out: Path, figure: bool) -> None:
    (out / "batch.json").write_text(json.dumps(doc, indent=1, default=str))
    info = doc["info"]
    head = [f"# bench_batch — {info['device']}", "", f"`{info['command']}`", "",
            f"torch {info['torch']}, {info['dtype']}; speedup = aggregate tokens/s over AR's at the same batch "
            "on the same prompts (hsd_bench/bench/batch.py)"]
    (out / "batch.md").write_text("\n".join(head) + "\n" + markdown(doc) + "\n")
    if figure:
        try:
            for path in plot(doc, out / "batch"):
                log(f"figure written: {path}")
        except ImportError:
            log("matplotlib is not installed here: rebuild the figure with --figure-from batch.json")
        except ValueError as err:
            log(f"no figure: {err}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="random:llama-1b", help="comma-separated random:<shape> or checkpoint dirs")
    ap.add_argument("--draft", default=None, help="vanilla_sd's draft (checkpoint dir; same tokenizer as the model)")
    ap.add_argument("--mid-draft", default=None, help="middle model of the hierarchy row (draft -> mid -> target)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--batches", default="1,2,4,8,16,32,64", help="comma-separated batch sizes")
    ap.add_argument("--rows-per-batch", type=int, default=2, help="prompts per run = this times the batch size")
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=128, help="random-weight models' prompts")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--exit", type=int, default=None, help="layerskip E (default depth/4)")
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--nd", type=int, default=2)
    ap.add_argument("--ni", type=int, default=4)
    ap.add_argument("--device", default=None, help="default: cuda if available")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/bench_batch"))
    ap.add_argument("--time-limit-s", type=float, default=None, help="start no run after this many seconds")
    ap.add_argument("--figure-from", default=None, help="rebuild batch.md and the figure from this batch.json")
    args = ap.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        ap.error(f"--methods: unknown {sorted(unknown)}; valid: {', '.join(METHODS)}")
    if "autoregressive" not in args.methods:
        args.methods.insert(0, "autoregressive")  # every speedup is over AR at the same batch
    args.methods.sort(key=lambda m: m != "autoregressive")
    try:
        args.batches = sorted({int(b) for b in args.batches.split(",") if b})
    except ValueError:
        ap.error(f"--batches={args.batches!r} must be comma-separated integers")
    for name in ("rows_per_batch", "max_new", "prompt_len", "gamma", "nd", "ni"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if not args.batches or min(args.batches) < 1:
        ap.error(f"--batches must be integers >= 1, got {args.batches}")
    if args.reps < 0:
        ap.error(f"--reps={args.reps} must be >= 0")
    return args


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.figure_from:
        write(json.loads(Path(args.figure_from).read_text()), out, figure=True)
        return 0
    deadline = t_start + args.time_limit_s if args.time_limit_s else None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = DTYPES[args.dtype]
    info = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if argv is None else
        " ".join(["bench_batch.py", *argv]),
        "device": hardware_name(device),
        "torch": torch.__version__, "dtype": args.dtype, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    copy_bw = copy_bandwidth(device) if device.type == "cuda" else None
    flops = matmul_flops(device, dtype=dtype) if device.type == "cuda" else None
    log(f"{info}; copy bandwidth {copy_bw and copy_bw / 1e12} TB/s, matmul {flops and flops / 1e12} TFLOP/s")
    doc = {"info": info, "copy_bandwidth_Bps": copy_bw, "matmul_flops_per_s": flops, "models": {}}
    for spec in [s for s in args.models.split(",") if s]:
        def publish(model_doc, spec=spec):
            doc["models"][spec] = model_doc
            write(doc, out, figure=False)

        t0 = time.perf_counter()
        try:
            doc["models"][spec] = bench_model(args, spec, device, dtype, publish, deadline, copy_bw, flops)
        except Exception as err:  # noqa: BLE001 -- keep the other models' numbers
            import traceback

            traceback.print_exc()
            doc["models"][spec] = {**(doc["models"].get(spec) or {}), "error": f"{type(err).__name__}: {err}"}
        doc["models"][spec]["seconds"] = time.perf_counter() - t0
        log(f"[{spec}] took {doc['models'][spec]['seconds']:.1f} s")
        write(doc, out, figure=False)
        free_device_memory(device)
    write(doc, out, figure=True)
    print((out / "batch.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
