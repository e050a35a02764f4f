#!/usr/bin/env python3
"""Side-by-side decoding speed on one GPU, in one process and one run.

    python scripts/bench_gpu.py --parts smoke,roofline,methods \
        --target checkpoints/ee-24x128 --draft checkpoints/family-2x128 --out $OUT

Parts:
* ``smoke``    -- the native backend (compiled, CUDA graphs) against the HF
  model in float32 on the device: logits and greedy tokens.
* ``roofline`` -- a random-weight model of a real shape (default
  Llama-3.2-1B's): HF eager ``generate``, the native backend's AR loop and
  the engine's AR on it, as a fraction of the measured copy bandwidth;
  optionally HF ``assistant_early_exit`` vs our layerskip at the same E, γ.
* ``methods``  -- a trained early-exit checkpoint and a draft model: HF AR,
  HF ``assistant_early_exit``, HF ``assistant_model`` against the engine's
  autoregressive, layerskip, hispec and vanilla_sd on the native backend.
* ``overhead`` -- random-weight models of real shapes (default Llama-3.2-1B's
  and Llama-3.1-8B's): the engine's autoregressive, layerskip (E = L/4, γ)
  and hispec (E_d, E_v = L/8, L/4, N_d, N_i) on the native backend, and
  vanilla_sd and the draft -> mid -> target hierarchy (γ, γ) with the drafts
  of ``--overhead-drafts`` (default: the target's own shape cut to L/8 and
  L/4 layers). Random weights accept ~nothing, so this is the cost structure
  of the rounds, not a speedup.
* ``gpt_fast`` -- the external reference (``--gpt-fast``, a clone of
  pytorch-labs/gpt-fast; not in the default parts): gpt-fast's own decoder,
  compiled as its ``main`` does, against the engine's AR on the same weights
  and prompts (``--gpt-fast-models``, default the ``--target``), with the
  ratio and why any prompt's tokens part (``hsd_bench/bench/gpt_fast.py``).

For every engine method (methods and overhead parts) two overhead figures
(``hsd_bench/bench/runs.py``): *outside forwards (async)* -- the share of
decode wall time the device spends outside model calls, timed with CUDA
events and no added syncs: the engine overhead of issue 7, the median of
``--overhead-passes`` instrumented passes with every pass's share, rate and
host probe beside it (one after each timed pass, each with its slowdown
against that pass), and the share recomputed at the timed passes' decode
time as a cross-check -- and the *host-serial overhead*, the same with the
device synchronised around every call (an upper bound: all of the engine's
host time). With ``--device-trace``, a third: the device's own idle share
in the timed passes, the busy time of a kernel trace of one more pass against
their decode time (``bench/trace.py``; the traced pass's own share, which
mostly measures the tracer's host cost, is kept beside it). The traced passes
run last, after every part's timed passes (``PendingTrace``): a trace leaves
the profiler attached to the process and slows every launch after it.

Greedy, same prompts and token budget everywhere (EOS off), warm-up
excluded, device synchronised before every clock read, medians over
repetitions. Writes ``bench.json`` and ``bench.md`` to ``--out`` after every
part (and every engine method / overhead model), so a run cut off by a time
limit keeps what it measured.
Imports only torch / transformers / tokenizers (the GPU machines have no
Hydra).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.bench import gpt_fast  # noqa: E402
from hsd_bench.bench.instrument import event_pair_host_s  # noqa: E402
from hsd_bench.bench.models import float32_reference, load_hf, prompts_for, same_vocabulary, spec_problem  # noqa: E402
from hsd_bench.bench.report import explain_parity, markdown, pct, state_warnings, summarize  # noqa: E402
from hsd_bench.bench.runs import (engine_overheads, engine_run, hf_generate, native_loop,  # noqa: E402
                                   outside_at_rate, outside_forwards_pass, plan_mismatch, timed_plan)
from hsd_bench.bench.timing import copy_bandwidth  # noqa: E402
from hsd_bench.bench.trace import at_timed_rate, decode_device_idle  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.models.loading import hardware_name  # noqa: E402
from hsd_bench.models.native import add_norm, decode_attention, from_hf_model, gemv  # noqa: E402
from hsd_bench.models.native.model import MAX_GRAPH_TOKENS, PREFILL_MODES  # noqa: E402

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


ATTENTION_ROWS_LIMIT = MAX_GRAPH_TOKENS  # --attention-rows at most: no step takes more positions
ONE_SPAN = 1 << 30  # min_kv_bucket: one attention span (the whole short cache) -> fewest compiled shapes


def context_for(n_max: int, max_new: int) -> int:
    """Cache size for the run, a multiple of 64 (aligned attention masks)."""
    return -(-(n_max + max_new + 16) // 64) * 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- parts ---------------------------------------------------------------------
def guarded_round_check(native) -> str:
    """On the graph path, whether the look-ahead's guarded draft rounds (a CUDA conditional node)
    are in use: ``prepare`` captures them and checks the device both runs and skips one."""
    from hsd_bench.models.native.model import conditional_graphs_available

    if native.use_graphs and not conditional_graphs_available():
        return f"not available (torch {torch.__version__} has no conditional CUDA graph nodes)"
    end, count = native.num_layers, 3
    native.prepare(64, [(0, end)], heads=("greedy-head",), chains=[(end, count, False, False)], guarded=(3,))
    native.reset()
    return "runs and skips" if native._guarded_keys else "off (prepare's check failed: see the warning above)"


def part_smoke(args, device) -> dict:
    hf, _ = load_hf("random:tiny", device, torch.float32, seed=1)
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() >= 2:
                p.mul_(4.0)  # peaked logits: greedy has no near-ties
    native = from_hf_model(hf, max_context=256)
    prompt = torch.randint(0, hf.config.vocab_size, (40,), generator=torch.Generator().manual_seed(0)).tolist()
    ids = torch.tensor([prompt], device=device)
    with torch.no_grad():
        ref = hf(ids).logits[0].float()
    depth = native.num_layers
    h = native.run_layers(native.embed(ids[0, :36]), 0, depth, 0)  # eager prefill
    outs = [native.logits(h)]
    # fixed-shape (compiled, graph) steps: 3 tokens padded to 4, a rollback, then single tokens by ranges
    h = native.run_layers(native.embed(ids[0, 36:39]), 0, depth, 36)
    native.truncate(0, depth, 38)
    for pos in (38, 39):
        h1 = native.run_layers(native.embed(ids[0, pos : pos + 1]), 0, depth // 2, pos)
        h2 = native.run_layers(h1, depth // 2, depth, pos)
        h = torch.cat([h[:, : pos - 36], h2], dim=1) if pos == 38 else torch.cat([h, h2], dim=1)
    outs.append(native.logits(h))
    got = torch.cat(outs)
    rel = ((got - ref).norm() / ref.norm()).item()
    hf_out = hf.generate(ids, do_sample=False, max_new_tokens=32)[0, 40:].tolist()
    loop = native_loop("smoke", native, [prompt], 32, reps=1).outputs[0]
    res = {"logits_rel_err": rel, "greedy_equal": hf_out == loop, "graphs": native.num_graphs()}
    # Every engine method on the compiled, graph-replayed path (fused greedy draft rounds,
    # fused head+argmax) must reproduce HF's greedy output in float32.
    hf_d, _ = load_hf("random:tiny-draft", device, torch.float32, seed=2)
    draft = from_hf_model(hf_d, name="draft", max_context=256)
    depth = native.num_layers
    specs = {
        "autoregressive": MethodSpec("autoregressive"),
        "layerskip": MethodSpec("layerskip", exit=max(1, depth // 2), draft_len=3),
        "hispec": MethodSpec("hispec", exit=[1, max(2, depth // 2)], draft_len=2, period=3),
        "vanilla_sd": MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"),
        "hierarchy": MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2}, {"exit": max(1, depth // 2), "batch": 3}]),
        # three models (the middle a second copy of the target): hand-ups verified before the middle's
        # verdict, every one of them (hand_up_overflow_max = 1), so hand-ups longer than the queued step occur
        "hierarchy-3": MethodSpec("hierarchy", levels=[{"path": "draft", "batch": 2}, {"path": "mid", "batch": 3}]),
    }
    from hsd_bench.engine import DecodingConfig

    others = {"draft": draft, "mid": from_hf_model(hf, name="mid", max_context=256)}
    engine_equal, ahead, hand_ups = {}, {}, {}
    for name, spec in specs.items():
        engine = build_engine(spec, native, load_other=lambda path: (others[path], None))
        engine.prepare(len(prompt) + 32, True)  # as run.py does: the look-ahead's guarded rounds are captured here
        if name == "hierarchy-3":
            engine.hand_up_overflow_max = 1.0
        gen = engine.generate(prompt, 32, DecodingConfig())
        engine_equal[name] = gen.output_ids == hf_out
        ahead[name] = f"{gen.stats.draft_calls_ahead}/{gen.stats.draft_calls}"
        hand_ups[name] = f"{gen.stats.hand_ups_ahead} ({gen.stats.hand_ups_continued} continued)"
    res["engine_equal"] = engine_equal
    res["draft_rounds_ahead"] = ahead
    res["hand_ups_ahead"] = hand_ups
    res["guarded_round"] = guarded_round_check(native)
    res["graphs"] = native.num_graphs()
    # The one-row GEMV kernel runs in bfloat16 only, so the float32 checks above never reach it:
    # its fused forms against eager at the Llama-1B q/k/v shape and the shipped model's.
    res["gemv"] = ([gemv.check_against_eager(n, k, device) for n, k in ((3072, 2048), (384, 128))]
                   if device.type == "cuda" else "not on CUDA")
    # Likewise the decode attention kernel: Llama-1B and -8B heads over one program's span and over
    # chunks merged in the kernel, a sliding window, and the shipped model's heads; one position,
    # a verification's five (gamma = 4) and a prefill chunk's sixteen.
    res["decode_attention"] = ([decode_attention.check_against_eager(h, kv, hd, span, device, window=w, rows=t)
                                for h, kv, hd, span, w in ((32, 8, 64, 512, 0), (32, 8, 128, 4096, 0),
                                                           (32, 8, 128, 1024, 300), (4, 4, 32, 384, 0))
                                for t in (1, 5, 16)]
                               if device.type == "cuda" else "not on CUDA")
    # The one-row add + RMSNorm kernel at the Llama-1B shape's width and the shipped model's.
    res["add_norm"] = ([add_norm.check_against_eager(k, device) for k in (2048, 128)]
                       if device.type == "cuda" else "not on CUDA")
    res["programmatic_launch"] = programmatic_launch_check(device)
    res["passed"] = (rel <= 1e-4 and hf_out == loop and all(engine_equal.values())
                     and not res["guarded_round"].startswith("off")
                     and all(isinstance(res[k], str) or all(c["passed"] for c in res[k])
                             for k in ("gemv", "decode_attention", "add_norm"))
                     and (isinstance(res["programmatic_launch"], str) or res["programmatic_launch"]["passed"]))
    log(f"smoke {'passed' if res['passed'] else 'FAILED (speed numbers below are suspect)'}: {res}")
    return res


def programmatic_launch_check(device: torch.device) -> dict | str:
    """Kernels launched while their predecessor still runs (``gemv.PROGRAMMATIC_LAUNCH``) read
    nothing but weights before that kernel has finished, so a step must give the same bits either
    way: a bfloat16 model's logits over 24 graph-replayed one-row steps, launched early and
    launched plainly, with the add + norm kernel and with the compiled norms (the layer form of rows
    wider than ``add_norm.MAX_HIDDEN``)."""
    if device.type != "cuda":
        return "not on CUDA"
    hf, _ = load_hf("random:tiny", device, torch.bfloat16, seed=3)
    prompt = list(range(1, 33))
    widest, setting = add_norm.MAX_HIDDEN, gemv.PROGRAMMATIC_LAUNCH[0]
    logits, kernels = {}, ""
    try:
        for norm_width in (widest, 0):
            for early in (True, False):
                add_norm.MAX_HIDDEN, gemv.PROGRAMMATIC_LAUNCH[0] = norm_width, early
                torch._dynamo.reset()  # the layer's form is chosen while tracing
                native = from_hf_model(hf, name="pdl", max_context=128)
                h = native.run_layers(native.embed(torch.tensor(prompt, device=device)), 0, native.num_layers, 0)
                tok, rows = native.greedy_tokens(h[:, -1:]), []
                for pos in range(len(prompt), len(prompt) + 24):
                    h = native.run_layers(native.embed(tok), 0, native.num_layers, pos)
                    rows.append(native.logits(h))
                    tok = native.greedy_tokens(h)
                logits[norm_width, early] = torch.cat(rows)
                kernels = f"{native.matmul_kernel()}, {native.attention_kernel()}"
    finally:
        add_norm.MAX_HIDDEN, gemv.PROGRAMMATIC_LAUNCH[0] = widest, setting
        torch._dynamo.reset()
    equal = {("add_norm kernel" if width else "compiled norms"): bool(torch.equal(logits[width, True], logits[width, False]))
             for width in (widest, 0)}
    return {"launched_early": gemv.programmatic_launch(device), "kernels": kernels, "bit_equal": equal,
            "passed": all(equal.values())}


VARIANTS = {
    # name: (attention kernel, inductor coordinate-descent tuning, inductor max-autotune[, matmul])
    "sdpa": ("sdpa", False, False),
    "math": ("math", False, False),
    "sdpa+cdt": ("sdpa", True, False),
    "math+cdt": ("math", True, False),
    # The projections as one-pass Triton GEMVs instead of cuBLAS (models/native/gemv.py).
    "math+gemv": ("math", False, False, "gemv"),
    # + a one-row step's RoPE, cache write and attention as one Triton kernel (decode_attention.py)
    "triton+gemv": ("triton", False, False, "gemv"),
    # Triton matmul templates tried beside cuBLAS for every decode shape, with the layer's
    # pointwise ops fused into them where a template wins (issue 15: the per-layer kernels
    # around the GEMVs); compiles for minutes, so a roofline experiment, not run.py's default.
    # Measured slower: Llama-1B shape on an H200, AR loop 649 tok/s against math's 825
    # (results/gpu_run7/layer_ab/) -- each template won its isolated benchmark.
    "math+autotune": ("math", False, True),
}
# What the methods part uses: the roofline sweep's fastest variant, and how prompts are prefilled
# (--prefill; NativeLlama's prefill: "auto" as run.py, "eager" or "chunked" fixed-shape steps).
BACKEND_OPTIONS: dict = {"variant": "triton+gemv", "prefill": "auto"}  # run.py's backend: triton + gemv


def make_native(hf, name: str, ctx: int, variant: str):
    """A native model for ``variant``; a fresh dynamo cache so inductor settings take effect."""
    attention, cdt, autotune, *matmul = VARIANTS[variant]
    torch._dynamo.reset()
    import torch._inductor.config as inductor_config

    inductor_config.coordinate_descent_tuning = cdt
    inductor_config.max_autotune = autotune
    return from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=ONE_SPAN, attention=attention,
                         prefill=BACKEND_OPTIONS["prefill"], matmul=matmul[0] if matmul else "cublas")


def profile_decode(native, prompt: list[int], steps: int, path: Path) -> None:
    """Kernel-level breakdown of ``steps`` AR decode steps (one graph replay each)."""
    from torch.profiler import ProfilerActivity, profile

    native_loop("profile-warmup", native, [prompt], steps, reps=0)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        native_loop("profile", native, [prompt], steps, reps=0)
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40, max_name_column_width=90)
    path.write_text(f"{steps} decode steps (plus one eager prefill)\n{table}\n")
    log(f"profile written to {path}")


def part_roofline(args, device, dtype, copy_bw, out: Path) -> dict:
    models = {}
    for i, spec in enumerate(args.roofline_models.split(",")):
        try:
            models[spec] = roofline_one(args, spec, device, dtype, copy_bw, out, first=i == 0)
        except Exception as err:  # noqa: BLE001 -- keep the other models' numbers
            import traceback

            traceback.print_exc()
            models[spec] = {"error": f"{type(err).__name__}: {err}"}
        gc.collect()
        torch.cuda.empty_cache() if device.type == "cuda" else None
    rows = [r for m in models.values() for r in m.get("rows", [])]
    return {"models": models, "rows": rows, "best_variant": BACKEND_OPTIONS["variant"]}


def roofline_one(args, spec: str, device, dtype, copy_bw, out: Path, first: bool) -> dict:
    hf, _ = load_hf(spec, device, dtype)
    prompts = prompts_for(None, hf.config.vocab_size, args.roofline_prompts, args.prompt_len, seed=0)
    ctx = context_for(max(len(p) for p in prompts), args.max_new)
    nparams = sum(p.numel() for p in hf.parameters())
    tag = spec.split(":")[-1]
    results = []
    hf_reps = args.roofline_hf_reps if first else min(1, args.roofline_hf_reps)
    hf_ar = None  # --roofline-hf-reps 0: no transformers row (device time), no parity against it
    if hf_reps:
        hf_ar = hf_generate(f"[{tag}] HF eager AR", hf, prompts, args.max_new, hf_reps)
        results.append(hf_ar)
        log(f"[{tag}] HF eager AR: {hf_ar.tokens_per_s:.1f} tok/s")
    log(f"[{tag}] {nparams / 1e9:.3f}B params")
    variants = args.variants.split(",") if first else [BACKEND_OPTIONS["variant"]]
    best = None
    for variant in variants:
        try:
            cand = make_native(hf, "target", ctx, variant)
            r = native_loop(f"[{tag}] native AR loop ({variant})", cand, prompts, args.max_new, args.reps)
        except Exception as err:  # noqa: BLE001
            log(f"[{tag}] variant {variant} FAILED: {type(err).__name__}: {err}")
            continue
        finally:
            cand = None
        r.extra["variant"] = variant
        results.append(r)
        log(f"[{tag}] native loop {variant}: {r.tokens_per_s:.1f} tok/s, decode {r.decode_tokens_per_s:.1f}")
        if best is None or r.decode_tokens_per_s > best.decode_tokens_per_s:
            best = r
    if best is None:
        raise RuntimeError(f"[{tag}] every native variant failed")
    if first and not args.methods_variant:
        BACKEND_OPTIONS["variant"] = best.extra["variant"]
    variant = best.extra["variant"]
    # Rebuilt so that the inductor settings of the chosen variant are the live ones.
    native = make_native(hf, "target", ctx, variant)
    weight_bytes = native.weight_bytes()
    log(f"[{tag}] best variant {variant}; {weight_bytes / 1e9:.3f} GB of weights read per token")
    eng = build_engine(MethodSpec("autoregressive"), native, load_other=None)
    results.append(engine_run(f"[{tag}] native AR engine ({variant})", eng, "autoregressive", prompts,
                              args.max_new, args.reps))
    log(f"[{tag}] native engine AR: {results[-1].tokens_per_s:.1f} tok/s")
    if first and args.roofline_layerskip:
        e, g = args.roofline_exit, args.gamma
        results.append(hf_generate(f"[{tag}] HF assistant_early_exit={e} γ={g}", hf, prompts, args.max_new, 1,
                                   gamma=g, assistant_early_exit=e))
        log(f"[{tag}] HF early exit: {results[-1].tokens_per_s:.1f} tok/s")
        eng = build_engine(MethodSpec("layerskip", exit=e, draft_len=g), native, load_other=None)
        results.append(engine_run(f"[{tag}] ours layerskip E={e} γ={g}", eng, "layerskip", prompts,
                                  args.max_new, args.reps))
        log(f"[{tag}] ours layerskip: {results[-1].tokens_per_s:.1f} tok/s")
    if first and args.profile and device.type == "cuda":
        try:
            profile_decode(native, prompts[0], 32, out / "profile.txt")
        except Exception as err:  # noqa: BLE001
            log(f"profile failed: {type(err).__name__}: {err}")
    engine_ar = next(r for r in results if "AR engine" in r.name)
    explain_parity(results, engine_ar, native, prompts)
    bpt, kv = ar_bytes_per_token(native, prompts, args.max_new, results)
    rows = summarize(results, {"hf": hf_ar, "native": engine_ar}, hf_ar, bpt, copy_bw)
    del native, hf, eng
    return {"params": nparams, "weight_bytes_per_token": weight_bytes, "kv_bytes_per_token_avg": kv,
            "variant": variant, "prompts": len(prompts), "prompt_len": args.prompt_len, "max_new": args.max_new,
            "rows": rows}


def ar_bytes_per_token(native, prompts: list[list[int]], max_new: int, results) -> tuple[dict[str, float], float]:
    """Bytes an AR step reads (all weights + the KV of the average context) for every AR row,
    and that KV share: the numerator of the bandwidth fraction."""
    avg_ctx = sum(len(p) for p in prompts) / len(prompts) + max_new / 2
    kv = native.cache.nbytes_per_position() * avg_ctx
    return {r.name: native.weight_bytes() + kv for r in results if r.method.startswith("autoregressive")}, kv


def dataset_workload(name: str, limit: int, tokenizer):
    """(prompt ids, stop sequences, codec) of ``run.py dataset=<name> dataset.limit=<limit>``."""
    from dataclasses import asdict

    from hsd_bench.config import DatasetConf
    from hsd_bench.models.tokenizer import TextCodec
    from hsd_bench.runner import _Attr
    from hsd_bench.tasks.base import get_task

    task = get_task(name)
    samples = task.load(_Attr({**asdict(DatasetConf()), "name": name, "limit": limit}))
    codec = TextCodec(tokenizer)
    return [codec.encode(s.prompt) for s in samples], tuple(task.stop_sequences), codec


def engine_specs(depth: int, e: int, e_d: int, e_v: int, g: int, nd: int, ni: int, draft: bool,
                 mid: bool = False) -> dict:
    specs = {
        "autoregressive": MethodSpec("autoregressive"),
        "layerskip": MethodSpec("layerskip", exit=e, draft_len=g),
        "hispec": MethodSpec("hispec", exit=[e_d, e_v], draft_len=nd, period=ni),
    }
    if draft:
        specs["vanilla_sd"] = MethodSpec("vanilla_sd", draft_len=g, draft_path="draft")
    if draft and mid:
        # Mohri-style family hierarchy: the small draft feeds a middle model, which feeds the target.
        specs["hierarchy"] = MethodSpec("hierarchy", levels=[{"path": "draft", "batch": g}, {"path": "mid", "batch": g}])
    return specs


NO_AHEAD = "-no-lookahead"  # a method name's suffix: the same engine with Engine.lookahead off


METHOD_NAMES = ("autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy")  # engine_specs' keys


def method_list(value: str) -> list[str]:
    """``--methods``: a comma-separated subset of :data:`METHOD_NAMES`, refused early otherwise."""
    names = [m for m in value.split(",") if m]
    bad = [m for m in names if m not in METHOD_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{value!r}: name methods among {', '.join(METHOD_NAMES)}")
    return names


def method_names(specs: dict, lookahead: str, only: list[str] | None = None) -> list[str]:
    """The engines to measure: every method (``only``: AR, the baseline of every ratio, and those
    named), and with ``--lookahead both`` each again right after it with the look-ahead off (an A/B
    in one process; for AR the next chunk queued before a chunk is read)."""
    for name in only or ():
        if name not in specs:
            raise ValueError(f"--methods: {name!r} is not one of {', '.join(specs)}")
    names = []
    for name in specs:
        if only and name != "autoregressive" and name not in only:
            continue
        names.append(name)
        if lookahead == "both":
            names.append(name + NO_AHEAD)
    return names


def build_method(specs: dict, name: str, target, load_other, codec=None):
    """``build_engine`` for a name of :func:`method_names`: the off variant is the method's spec with
    ``lookahead=False``, what ``run.py method.lookahead=false`` builds."""
    spec = replace(specs[name.removesuffix(NO_AHEAD)], lookahead=not name.endswith(NO_AHEAD))
    return build_engine(spec, target, load_other=load_other, target_codec=codec)


def draft_native(hf, name: str, ctx: int, target):
    """A draft or middle model on the native backend, sharing the target's attention and prefill
    (so every level of a hierarchy steps through the same kind of kernels)."""
    return from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=ONE_SPAN, attention=target.attention,
                         prefill=target.prefill)


def engine_builder(specs: dict, target, others: dict, codec=None):
    """``build(name, wrap=identity)`` for :func:`measure_engine`: the method's engine over ``target``
    and the models of ``others`` (keyed as the specs name them: "draft", "mid"), each wrapped."""

    def build(name, wrap=lambda m: m):
        wrapped = {key: wrap(m) for key, m in others.items()}
        return build_method(specs, name, wrap(target), lambda path: (wrapped[path], None), codec)

    return build


def engine_label(name: str, e: int, e_d: int, e_v: int, g: int, nd: int, ni: int) -> str:
    if name.endswith(NO_AHEAD):
        return engine_label(name.removesuffix(NO_AHEAD), e, e_d, e_v, g, nd, ni) + " (no look-ahead)"
    return {"autoregressive": "ours AR", "layerskip": f"ours layerskip E={e} γ={g}",
            "hispec": f"ours hispec E={e_d},{e_v} N_d={nd} N_i={ni}", "vanilla_sd": f"ours vanilla_sd γ={g}",
            "hierarchy": f"ours hierarchy draft→mid→target γ={g},{g}"}[name]


class PendingTrace(NamedTuple):
    """A row's kernel-traced pass (``--device-trace``), owed until every timed pass of the process has run.

    Why last: a torch.profiler trace leaves CUPTI attached to the process -- Kineto finalizes it
    only under ``TEARDOWN_CUPTI=1`` (pytorch/pytorch#144455) -- and every launch after it costs the
    host more. In the twenty-sixth to twenty-eighth GPU runs, which traced each method right after
    timing it, the host probe of the rows timed after a trace was per process a median 1.08x (mean
    1.15x) the probe of the first row, timed before any (0.99x / 0.98x in the runs without traces),
    and 19 of 50 such probes were 17 µs or more against 3 of 101 (``results/gpu_run28/
    probe_after_trace.py``); the host-bound rows follow the probe, so the benchmark timed every
    method but the first on a slowed host, and ``run.py`` (which never traces) against it compared
    two hosts (docs/gpu-runs.md, "Twenty-eighth run"). ``refresh`` rewrites the rows of the
    part the result belongs to once the trace is in."""

    label: str
    name: str
    build: Callable
    prompts: list
    max_new: int
    stop: tuple
    codec: object
    result: object  # the row's RunResult, whose extra["device_trace"] the trace fills
    refresh: Callable[[], None]


NOT_TRACED = "not traced: the process stopped before its traced passes, which run after every timed pass"


def measure_engine(label: str, name: str, build, prompts, max_new: int, reps: int, stop=(), codec=None,
                   overhead_passes: int = 1, traces: list[PendingTrace] | None = None,
                   refresh: Callable[[], None] = lambda: None):
    """Throughput (clean passes) and both overhead measures: ``overhead_passes`` instrumented passes
    for the outside share (the median pass reported, every pass listed), one host-serial pass. With
    ``traces`` (a list), the row's pass under a kernel trace for the device's own idle share
    (``bench/trace.py``) is appended to it as a :class:`PendingTrace`, to be run by
    :func:`run_traces` after every timed pass of the process; ``refresh`` rewrites the part's rows.

    The instrumented passes are interleaved with the timed ones: one after each timed pass
    (``measure.timed_passes``' ``after_pass``), any beyond ``reps`` after the last. Run after all
    timed passes, on a loaded host they ran 16-54 % slower than those passes in five of seven
    processes (docs/gpu-runs.md, "Fifty-fourth run"): another host state or the events' own cost,
    which back to back cannot tell apart. Paired, each pass's ``paired_slowdown`` against the timed
    pass just before it (same tokens, seconds apart) and ``event_pair_host_us``, what an event pair
    cost the host in that state, tell them apart: unloaded the pairs read the events' own cost
    (+3.9 % median on HiSpec and the hierarchy), on a loaded host -27 to +68 % at an unchanged
    event cost -- its state moves within one pass (the fifty-fifth run)."""
    wrapped = lambda wrap: build(name, wrap)  # noqa: E731 -- the engine with every model wrapped
    records: list[dict] = []

    def measuring_pass(_timed_pass: int) -> None:
        if len(records) < overhead_passes:
            records.append(outside_forwards_pass(wrapped, prompts, max_new, stop, codec))

    r = engine_run(label, build(name), name, prompts, max_new, reps, stop, codec, after_pass=measuring_pass)
    paired = len(records)
    r.extra.update(engine_overheads(wrapped, prompts, max_new, stop, codec, overhead_passes, measured=records))
    async_ = r.extra["outside_forwards_async"]
    # the events' own host cost and the pass's host state, visible as a slower instrumented pass
    # (instrument.py's caveat); per pass, since each met its own state
    clean = r.decode_tokens_per_s
    for k, p in enumerate(async_["passes"]):
        timed = r.decode_s[k] if k < min(paired, len(r.decode_s)) else None  # the timed pass just before it
        p["paired_slowdown"] = p["decode_s"] / timed - 1 if timed else None
    async_["paired_slowdown"] = async_["passes"][async_["median_pass"]]["paired_slowdown"]
    for p in [async_] + async_["passes"]:
        inst = p["decode_tokens_per_s"]
        p["instrumented_slowdown"] = clean / inst - 1 if inst and clean else None
    async_["outside_at_timed_rate"] = outside_at_rate(async_, r.kept_decode_s)
    idle, serial = async_["gpu_idle_frac"], r.extra["host_serial"]["overhead_frac"]
    slow = async_["instrumented_slowdown"]
    lo, hi = async_["gpu_idle_frac_range"] or (idle, idle)
    at_rate = async_["outside_at_timed_rate"]
    log(f"{label}: {r.tokens_per_s:.1f} tok/s (decode {r.decode_tokens_per_s:.1f}), τ={r.mean_accepted_len:.2f}, "
        f"outside forwards (async) {100 * idle:.1f}% (median of {len(async_['passes'])} passes, "
        f"{100 * lo:.1f}-{100 * hi:.1f}%; that pass {100 * (slow or 0):+.1f}% decode time"
        + (f", {100 * async_['paired_slowdown']:+.1f}% against the timed pass before it"
           if async_["paired_slowdown"] is not None else "")
        + (f", event pair {async_['event_pair_host_us']:.1f} µs" if async_.get("event_pair_host_us") else "")
        + (f", preempted {async_['preemptions']}x" if async_.get("preemptions") is not None else "")
        + (f", waited {1e3 * async_['cpu_wait_s']:.1f} ms for a CPU" if async_.get("cpu_wait_s") is not None else "")
        + "; at the timed passes' rate "
        + (f"{100 * at_rate:.1f}%" if at_rate is not None else "–") + f"), host-serial overhead {100 * serial:.1f}%"
        + (f", {100 * r.extra['draft_rounds_ahead']:.0f}% of draft rounds launched ahead"
           if r.extra.get("draft_rounds_ahead") is not None else "")
        + (", timed passes waited " + "/".join(f"{100 * w:.1f}" for w in r.extra["cpu_wait_share_passes"])
           + "% for a CPU" if r.extra.get("cpu_wait_share_passes") else ""))
    if traces is not None:
        r.extra["device_trace"] = {"skipped": NOT_TRACED}
        traces.append(PendingTrace(label, name, build, prompts, max_new, stop, codec, r, refresh))
    for measure in ("outside_forwards_async", "host_serial"):
        if r.extra[measure]["tokens"] != r.tokens:  # greedy: the same tokens, or the share is of another workload
            log(f"WARNING: {label}: the {measure} pass decoded {r.extra[measure]['tokens']} tokens, the timed "
                f"passes {r.tokens}: its overhead share describes a different workload")
        for p in r.extra[measure].get("passes") or [r.extra[measure]]:  # the reported pass is one of them
            differs = plan_mismatch(timed_plan(r), p.get("plan"))
            if differs:  # the same tokens, other work queued ahead of the verdicts: another plan
                log(f"WARNING: {label}: a {measure} pass queued other work ahead than the timed passes "
                    f"({differs}): its share describes another plan")
                break
    waits = async_.get("idle_by_transition") or []
    if waits:
        log("  device time between calls, largest: " + "; ".join(
            f"{w['after']} → {w['before']} {100 * w['share']:.1f}% ({w['count']}×)" for w in waits[:4]))
    return r


def trace_row(job: PendingTrace) -> None:
    """One pass of ``job``'s engine under a kernel trace: the device's own idle share, read at the
    rate of the row's timed passes (``bench/trace.py``), into the row's ``device_trace``."""
    r, clean = job.result, job.result.decode_tokens_per_s
    try:
        traced = decode_device_idle(lambda wrap: job.build(job.name, wrap), job.prompts, job.max_new, job.stop,
                                    job.codec)
    except Exception as err:  # noqa: BLE001 -- a tracer that fails costs this figure, not the row
        traced = {"error": f"{type(err).__name__}: {err}"}
    if traced.get("decode_tokens_per_s") and clean:
        traced["traced_slowdown"] = clean / traced["decode_tokens_per_s"] - 1
    if "busy_s" in traced:
        traced.update(at_timed_rate(traced, r.kept_decode_s, r.extra.get("guarded_rounds_on_device") or 0))
    r.extra["device_trace"] = traced
    differs = plan_mismatch(timed_plan(r), traced.get("plan"))
    if differs:
        log(f"WARNING: {job.label}: the traced pass queued other work ahead than the timed passes ({differs}): "
            "its idle share describes another plan")
    if traced.get("idle_at_timed_rate") is None:
        log(f"{job.label}: device idle in decode (kernel trace): {traced.get('skipped') or traced.get('error')}")
        return
    split = (f"no split between and inside launches ({r.extra['guarded_rounds_on_device']} rounds ran in CUDA "
             f"conditional nodes, whose launches the trace stretches inside)" if traced.get("split_left_out") else
             f"{pct(traced['between_launches_at_timed_rate'])} between launches and "
             f"{pct(traced['within_launches_at_timed_rate'])} inside them")
    log(f"{job.label}: device idle in decode (kernel trace): {100 * traced['idle_at_timed_rate']:.1f}% at the timed "
        f"passes' rate, {split} "
        f"(busy {traced['busy_s']:.4f} s of {r.kept_decode_s:.4f} s; the traced pass itself "
        f"{pct(traced.get('device_idle_frac'))} over {traced['windows']} windows, "
        f"{100 * traced.get('traced_slowdown', 0):+.1f}% decode time)")
    for key, what in (("waits_before", "between launches"), ("gaps_inside_before", "inside launches")):
        if traced.get(key):  # seconds of the traced pass (the tracer stretched the gaps between launches)
            log(f"  the device waited longest {what} before: " + "; ".join(
                f"{kernel} {1e3 * sec:.1f} ms ({n}×)" for kernel, sec, n in traced[key][:3]))


def run_traces(traces: list[PendingTrace], deadline: float | None = None) -> None:
    """Every pending traced pass, in the order the rows were timed, each row's part rewritten after
    its trace; a trace that would start past ``deadline`` is left as :data:`NOT_TRACED`."""
    if traces:
        log(f"device traces: {len(traces)} traced passes, after every timed pass (a trace slows the launches after it)")
    for job in traces:
        if deadline is not None and time.perf_counter() > deadline:
            job.result.extra["device_trace"] = {"skipped": f"{NOT_TRACED}; time limit reached (--time-limit-s)"}
        else:
            trace_row(job)
        job.refresh()
    traces.clear()


def part_methods(args, device, dtype, publish=lambda _doc: None, copy_bw: float | None = None,
                 traces: list[PendingTrace] | None = None) -> dict:
    hf_t, tok = load_hf(args.target, device, dtype)
    hf_d, tok_d = load_hf(args.draft, device, dtype)
    same_vocab = same_vocabulary(tok, tok_d)
    if same_vocab is False:
        log(f"WARNING: draft {args.draft} does not share the tokenizer of target {args.target} (different ids): "
            "vanilla_sd and HF assistant_model are skipped (their acceptance would be meaningless)")
    stop, codec = (), None
    if args.dataset:
        # run.py's workload: the same samples, prompts, stop sequences and EOS (--dataset humaneval --limit N
        # selects what `run.py dataset=humaneval dataset.limit=N` selects), for the run.py-vs-bench check.
        prompts, stop, codec = dataset_workload(args.dataset, args.prompts, tok)
    else:
        prompts = prompts_for(tok, hf_t.config.vocab_size, args.prompts, args.prompt_len, seed=1)
    n_max = max(len(p) for p in prompts)
    depth = hf_t.config.num_hidden_layers
    e = args.exit or max(1, depth // 4)
    e_d, e_v = args.hispec_exits or (max(1, depth // 8), max(2, depth // 4))
    g, nd, ni = args.gamma, args.nd, args.ni
    ctx = context_for(n_max, args.methods_max_new or args.max_new)
    variant = BACKEND_OPTIONS["variant"]
    nat_t = make_native(hf_t, "target", ctx, variant)
    others = {"draft": draft_native(hf_d, "draft", ctx, nat_t)}
    if args.mid_draft and same_vocab is not False:
        hf_m, tok_m = load_hf(args.mid_draft, device, dtype)
        if same_vocabulary(tok, tok_m) is False:
            log(f"WARNING: mid draft {args.mid_draft} has other token ids than the target: hierarchy skipped")
        else:
            others["mid"] = draft_native(hf_m, "mid", ctx, nat_t)
    log(f"methods: target {args.target} ({depth} layers), draft {args.draft}, mid draft {args.mid_draft}; "
        f"E={e} γ={g} hispec={e_d},{e_v} N_d={nd} N_i={ni}; {len(prompts)} prompts of "
        f"{min(map(len, prompts))}-{n_max} tokens; native variant {variant}")
    specs = engine_specs(depth, e, e_d, e_v, g, nd, ni, draft=same_vocab is not False, mid="mid" in others)
    build = engine_builder(specs, nat_t, others, codec)

    reps, max_new = args.reps, args.methods_max_new or args.max_new
    hf_reps = args.hf_reps or reps
    doc = {"target": args.target, "draft": args.draft, "draft_same_tokenizer": same_vocab, "variant": variant,
           "prefill": BACKEND_OPTIONS["prefill"],
           "exit": e, "gamma": g, "hispec_exits": [e_d, e_v], "nd": nd, "ni": ni, "prompts": len(prompts),
           "max_new": max_new, "rows": []}
    results = []
    hf_ar = None
    if not args.no_hf:
        hf_ar = hf_generate("HF eager AR", hf_t, prompts, max_new, hf_reps, codec=codec, stop=stop)
        results.append(hf_ar)
        results.append(hf_generate(f"HF assistant_early_exit={e} γ={g}", hf_t, prompts, max_new, hf_reps,
                                   gamma=g, codec=codec, stop=stop, assistant_early_exit=e))
        if same_vocab is not False:
            results.append(hf_generate(f"HF assistant_model=draft γ={g}", hf_t, prompts, max_new, hf_reps,
                                       gamma=g, codec=codec, stop=stop, assistant_model=hf_d))
        for r in results:
            log(f"{r.name}: {r.tokens_per_s:.1f} tok/s, τ={r.mean_accepted_len:.2f}")
    results.append(native_loop("native AR (loop, no engine)", nat_t, prompts, max_new, reps, stop, codec))
    eng_results = {}
    reference = float32_reference(hf_t)  # a float32 copy only once a divergence is unexplained

    def tabulate() -> None:  # the rows from every result so far (again once a deferred trace is in)
        bpt, _ = ar_bytes_per_token(nat_t, prompts, max_new, results)
        doc["rows"] = summarize(results, {"hf": hf_ar, "native": eng_results["autoregressive"]} if hf_ar else
                                {"native": eng_results["autoregressive"]}, hf_ar, bpt, copy_bw)
        publish(doc)

    for name in method_names(specs, args.lookahead, args.methods):
        r = measure_engine(engine_label(name, e, e_d, e_v, g, nd, ni), name, build, prompts, max_new, reps,
                           stop, codec, args.overhead_passes, traces, tabulate)
        eng_results[name] = r
        results.append(r)
        explain_parity(results, eng_results["autoregressive"], nat_t, prompts, reference)
        tabulate()
    by = {r["name"]: r for r in doc["rows"]}

    def ratio(ours: str, theirs: str | None):
        if theirs is None or ours not in eng_results:
            return None
        return eng_results[ours].tokens_per_s / by[theirs]["tokens_per_s"] if theirs in by else None

    hf_names = [r.name for r in results if r.backend == "hf"]
    doc["comparisons"] = {
        "layerskip_ours_over_hf": ratio("layerskip", next((n for n in hf_names if "early_exit" in n), None)),
        "vanilla_sd_ours_over_hf": ratio("vanilla_sd", next((n for n in hf_names if "assistant_model" in n), None)),
        "ar_ours_over_hf": ratio("autoregressive", hf_ar.name if hf_ar else None),
        "hispec_outside_forwards_async_frac":
            eng_results["hispec"].extra["outside_forwards_async"]["gpu_idle_frac"] if "hispec" in eng_results else None,
        "hispec_host_serial_overhead_frac":
            eng_results["hispec"].extra["host_serial"]["overhead_frac"] if "hispec" in eng_results else None,
    }
    log(f"comparisons: {doc['comparisons']}")
    return doc


OVERHEAD_NOTE = (
    "Random weights accept almost nothing (τ ≈ 1): these rows measure the cost structure of one "
    "draft-and-verify round on a model of this shape -- tokens/s and the share of decode time outside "
    "model forwards -- not a speedup."
)


def part_overhead(args, device, dtype, publish=lambda _doc: None, deadline: float | None = None,
                  traces: list[PendingTrace] | None = None) -> dict:
    """Engine overhead on random models of real shapes: AR, layerskip and hispec per model, and
    vanilla_sd and the hierarchy with the drafts of ``--overhead-drafts``."""
    doc = {"note": OVERHEAD_NOTE, "event_pair_host_s": event_pair_host_s(device), "models": {}, "rows": []}
    log(f"overhead: {OVERHEAD_NOTE}")
    if doc["event_pair_host_s"] is not None:
        log(f"overhead: one CUDA event pair costs {1e6 * doc['event_pair_host_s']:.2f} µs of host time")
    for spec in [s for s in args.overhead_models.split(",") if s]:
        if deadline is not None and time.perf_counter() > deadline:
            doc["models"][spec] = {"skipped": "time limit reached (--time-limit-s)"}
            log(f"overhead [{spec}] skipped: time limit reached")
            continue
        def partial(model_doc: dict, spec=spec) -> None:  # keep finished methods if the run is cut off
            doc["models"][spec] = model_doc
            doc["rows"] = [r for m in doc["models"].values() for r in m.get("rows", [])]
            publish(doc)

        try:
            doc["models"][spec] = overhead_one(args, spec, device, dtype, partial, traces)
        except Exception as err:  # noqa: BLE001 -- keep the other models' numbers
            import traceback

            traceback.print_exc()
            doc["models"][spec] = {"error": f"{type(err).__name__}: {err}"}
        doc["rows"] = [r for m in doc["models"].values() for r in m.get("rows", [])]
        publish(doc)
        free_device_memory(device)
    return doc


def overhead_drafts(spec: str, drafts: str, depth: int) -> list[tuple[str, str, int | None]]:
    """The overhead part's draft models for target ``spec`` (``--overhead-drafts``) as ``(key,
    spec, layers)``: "draft" (vanilla_sd, the hierarchy's bottom) and "mid" (the hierarchy's
    middle). ``auto``: the target's own random shape cut to ``depth // 8`` and ``depth // 4``
    layers (at least 1 and 2) -- same width and vocabulary, as a model family's smaller
    members; none for a checkpoint. ``''``: none. Else one or two specs (draft, then mid)."""
    if drafts == "auto":
        if not spec.startswith("random:"):
            return []
        return [("draft", spec, max(1, depth // 8)), ("mid", spec, max(2, depth // 4))]
    return [(key, d, None) for key, d in zip(("draft", "mid"), [d for d in drafts.split(",") if d])]


def overhead_one(args, spec: str, device, dtype, partial=lambda _doc: None,
                 traces: list[PendingTrace] | None = None) -> dict:
    hf, _ = load_hf(spec, device, dtype)
    prompts = prompts_for(None, hf.config.vocab_size, args.overhead_prompts, args.prompt_len, seed=2)
    depth = hf.config.num_hidden_layers
    e = max(1, depth // 4)
    e_d, e_v = max(1, depth // 8), max(2, depth // 4)
    g, nd, ni, max_new = args.gamma, args.nd, args.ni, args.overhead_max_new
    ctx = context_for(max(len(p) for p in prompts), max_new)
    nparams = sum(p.numel() for p in hf.parameters())
    vocab = hf.config.vocab_size
    native = make_native(hf, "target", ctx, BACKEND_OPTIONS["variant"])
    del hf  # the native model keeps the weights it uses
    gc.collect()
    others, drafts_doc = {}, {}
    for seed, (key, d_spec, layers) in enumerate(overhead_drafts(spec, args.overhead_drafts, depth), 1):
        hf_d, _ = load_hf(d_spec, device, dtype, seed=10 + seed, layers=layers)
        if hf_d.config.vocab_size != vocab:
            raise ValueError(f"--overhead-drafts: {d_spec} has a vocabulary of {hf_d.config.vocab_size}, the target "
                             f"{spec} one of {vocab}; a draft must share the target's token ids")
        drafts_doc[key] = {"spec": d_spec, "layers": hf_d.config.num_hidden_layers,
                           "params": sum(p.numel() for p in hf_d.parameters())}
        others[key] = draft_native(hf_d, key, ctx, native)
        del hf_d
    tag = spec.split(":")[-1]
    shown = "; ".join(f"{k} {v['spec']} ({v['layers']} layers)" for k, v in drafts_doc.items()) or "no drafts"
    log(f"overhead [{tag}]: {nparams / 1e9:.3f}B params, {depth} layers; E={e} γ={g}, hispec E={e_d},{e_v} "
        f"N_d={nd} N_i={ni}; {shown}; {len(prompts)} random prompts of {args.prompt_len} tokens, {max_new} new")
    specs = engine_specs(depth, e, e_d, e_v, g, nd, ni, draft="draft" in others, mid="mid" in others)
    build = engine_builder(specs, native, others)

    doc = {"params": nparams, "layers": depth, "exit": e, "hispec_exits": [e_d, e_v], "gamma": g, "nd": nd,
           "ni": ni, "prompts": len(prompts), "prompt_len": args.prompt_len, "max_new": max_new,
           "variant": BACKEND_OPTIONS["variant"], "drafts": drafts_doc, "rows": []}
    results = [native_loop(f"[{tag}] native AR (loop, no engine)", native, prompts, max_new, args.reps)]
    eng = {}

    def tabulate() -> None:  # the rows from every result so far (again once a deferred trace is in)
        doc["rows"] = summarize(results, {"native": eng["autoregressive"]}, None)
        partial(doc)

    for name in method_names(specs, args.lookahead, args.methods):
        label = f"[{tag}] " + engine_label(name, e, e_d, e_v, g, nd, ni)
        eng[name] = measure_engine(label, name, build, prompts, max_new, args.reps,
                                   overhead_passes=args.overhead_passes, traces=traces, refresh=tabulate)
        results.append(eng[name])
        explain_parity(results, eng["autoregressive"], native, prompts)
        tabulate()
    del native, others
    return doc


def free_device_memory(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gpt_fast_models(args) -> list[str]:
    """The gpt_fast part's models: ``--gpt-fast-models``, else the ``--target``."""
    return [m for m in (args.gpt_fast_models or args.target).split(",") if m]


def part_gpt_fast(args, device, dtype, publish: Callable[[dict], None]) -> dict:
    """gpt-fast against our AR on each of ``--gpt-fast-models`` (``gpt_fast.compare_model``), compiled
    as gpt-fast's ``main`` does on CUDA and eager elsewhere (a CPU dry run). A model that fails is
    recorded as such and the next one runs."""
    gf_model, gf_generate = gpt_fast.import_gpt_fast(Path(args.gpt_fast))
    compiled = device.type == "cuda"
    if compiled:
        gpt_fast.compile_like_gpt_fast_main(gf_generate)
    doc = {"gpt_fast": str(args.gpt_fast), "compiled": compiled, "models": {},
           "note": "gpt-fast's own generate() on our weights and prompts (EOS off on both sides), beside the "
                   "engine's AR timed as run.py times it; *prompts equal / near tie / unexplained*: why a prompt's "
                   "greedy tokens part from ours (hsd_bench/parity.py on our target)."}
    for spec in gpt_fast_models(args):
        try:
            doc["models"][spec] = gpt_fast.compare_model(spec, gf_model, gf_generate, str(device), dtype,
                                                         args.gpt_fast_prompts, args.prompt_len, args.max_new,
                                                         args.reps, log)
        except Exception as err:  # noqa: BLE001 -- keep the other models' rows
            doc["models"][spec] = {"error": f"{type(err).__name__}: {err}"}
            log(f"gpt_fast {spec}: {doc['models'][spec]['error']}")
        doc["table"] = gpt_fast.markdown(doc["models"])
        publish(doc)
        free_device_memory(device)
    return doc


# -- main ------------------------------------------------------------------------
PARTS = ("smoke", "roofline", "methods", "overhead", "gpt_fast")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="smoke,roofline,methods", help=f"comma-separated, in order: {', '.join(PARTS)}")
    ap.add_argument("--device", default=None, help="default: cuda if available")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/bench"))
    ap.add_argument("--time-limit-s", type=float, default=None,
                    help="start no part (and no overhead model) after this many seconds; results so far are "
                         "saved after every part, model and engine method anyway")
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=128, help="random-weight prompts only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--roofline-models", default="random:llama-1b",
                    help="comma-separated; the first gets the variant sweep, HF early exit and the profile")
    ap.add_argument("--variants", default="math+gemv,triton+gemv",
                    help=f"native variants for the first model: {list(VARIANTS)}")
    ap.add_argument("--methods-variant", default=None, choices=sorted(VARIANTS),
                    help="native variant of the methods and overhead parts (default: the roofline part's "
                         "fastest, else run.py's: triton+gemv)")
    ap.add_argument("--prefill", default="auto", choices=PREFILL_MODES,
                    help="how native models run a prompt: one eager pass, chunked fixed-shape steps (graph "
                         "replays), or auto (run.py's default: chunked up to the number of chunks the cost "
                         "model says beat one eager pass)")
    ap.add_argument("--roofline-hf-reps", type=int, default=2,
                    help="roofline part: transformers generate passes on the first model (1 on the others); 0 skips it")
    ap.add_argument("--profile", action="store_true", help="write a kernel-level profile of AR decode steps")
    ap.add_argument("--roofline-prompts", type=int, default=1)
    ap.add_argument("--roofline-layerskip", action="store_true", help="also HF early exit vs ours on random weights")
    ap.add_argument("--roofline-exit", type=int, default=4)
    ap.add_argument("--target", default="checkpoints/ee-24x128")
    ap.add_argument("--draft", default="checkpoints/family-2x128")
    ap.add_argument("--mid-draft", default="checkpoints/family-6x128",
                    help="middle model of the hierarchy row (draft -> mid -> target); '' to skip it")
    ap.add_argument("--prompts", type=int, default=4, help="methods part: prompts (with --dataset: dataset.limit)")
    ap.add_argument("--dataset", default=None, choices=["humaneval", "gsm8k"],
                    help="methods part: run.py's workload for this dataset (its samples, stops and EOS) instead of "
                         "the built-in code prompts with EOS off")
    ap.add_argument("--methods-max-new", type=int, default=None, help="methods part (default --max-new)")
    ap.add_argument("--hf-reps", type=int, default=None, help="methods part, HF runs (default --reps)")
    ap.add_argument("--no-hf", action="store_true", help="methods part: skip the HF generate runs (device time)")
    ap.add_argument("--exit", type=int, default=None, help="layerskip E (default depth/4)")
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--hispec-exits", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--nd", type=int, default=2)
    ap.add_argument("--ni", type=int, default=4)
    ap.add_argument("--lookahead", default="on", choices=["on", "both"],
                    help="both: measure every method again with the engine's look-ahead off, right after it "
                         "(an A/B in one process; AR's is the next chunk queued before a chunk is read)")
    ap.add_argument("--methods", default=None, type=method_list,
                    help="methods and overhead parts: comma-separated engines to measure besides AR (default: all)")
    ap.add_argument("--overhead-models", default="random:llama-1b,random:llama-8b",
                    help="overhead part: comma-separated random:<shape> specs (or checkpoint directories)")
    ap.add_argument("--overhead-drafts", default="auto",
                    help="overhead part: the draft (vanilla_sd) and middle (hierarchy) models, comma-separated; "
                         "auto: each random target's own shape cut to L/8 and L/4 layers; '' for neither")
    ap.add_argument("--overhead-prompts", type=int, default=2, help="overhead part: random prompts per model")
    ap.add_argument("--overhead-max-new", type=int, default=128, help="overhead part: new tokens per prompt")
    ap.add_argument("--device-trace", action="store_true",
                    help="methods and overhead parts: one more pass per engine under a kernel trace, for the "
                         "device's own idle share while decoding (bench/trace.py; CUDA only)")
    ap.add_argument("--gpt-fast", default=None, metavar="PATH",
                    help="gpt_fast part: a clone of pytorch-labs/gpt-fast (its model.py and generate.py are imported)")
    ap.add_argument("--gpt-fast-models", default=None,
                    help="gpt_fast part: comma-separated checkpoints or random:<shape> (default: --target)")
    ap.add_argument("--gpt-fast-prompts", type=int, default=2, help="gpt_fast part: prompts per model")
    ap.add_argument("--attention-rows", type=int, default=None,
                    help="decode_attention.MAX_ROWS for every model built: the most positions of a step the "
                         f"attention kernel takes (1: one-row steps only; at most {ATTENTION_ROWS_LIMIT}; default: "
                         "the module's)")
    ap.add_argument("--overhead-passes", type=int, default=3,
                    help="methods and overhead parts: instrumented passes per engine for the outside share (the "
                         "median pass is reported, every pass listed: on a host-bound model one pass meets one "
                         "host state)")
    args = ap.parse_args(argv)
    for name in ("reps", "prompts", "overhead_prompts", "overhead_max_new", "overhead_passes", "max_new",
                 "prompt_len", "gamma", "nd", "ni", "gpt_fast_prompts"):
        if getattr(args, name) < 1:  # --reps too: every timed run needs at least one pass (measure.timed_passes)
            ap.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    named = [d for d in args.overhead_drafts.split(",") if d]
    if args.overhead_drafts != "auto" and len(named) > 2:
        ap.error(f"--overhead-drafts={args.overhead_drafts!r} names {len(named)} models; at most two: the draft, "
                 "then the hierarchy's middle model (or auto, or '' for none)")
    if "gpt_fast" in args.parts.split(","):
        problem = gpt_fast.clone_problem(args.gpt_fast)
        if problem:
            ap.error(f"--parts gpt_fast needs --gpt-fast: {problem}")
        for problem in filter(None, map(spec_problem, gpt_fast_models(args))):
            ap.error(f"--gpt-fast-models: {problem}")
    if args.roofline_hf_reps < 0:
        ap.error(f"--roofline-hf-reps={args.roofline_hf_reps} must be >= 0 (0 skips the transformers rows)")
    if args.attention_rows is not None and not 1 <= args.attention_rows <= ATTENTION_ROWS_LIMIT:
        ap.error(f"--attention-rows={args.attention_rows} must be in [1, {ATTENTION_ROWS_LIMIT}]")
    if args.hf_reps is not None and args.hf_reps < 1:
        ap.error(f"--hf-reps={args.hf_reps} must be >= 1 (--no-hf skips the transformers runs)")
    return args


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    BACKEND_OPTIONS["prefill"] = args.prefill
    if args.attention_rows is not None:
        decode_attention.MAX_ROWS[0] = args.attention_rows
    if args.methods_variant:
        BACKEND_OPTIONS["variant"] = args.methods_variant
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown --parts {sorted(unknown)}; valid: {', '.join(PARTS)}")
    deadline = t_start + args.time_limit_s if args.time_limit_s else None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = DTYPES[args.dtype]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import transformers

    info = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if argv is None else
        " ".join(["bench_gpu.py", *argv]),
        "device": hardware_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "attention_rows": decode_attention.MAX_ROWS[0],
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log(f"{info}")
    copy_bw = copy_bandwidth(device) if device.type == "cuda" else None
    if copy_bw:
        log(f"device-to-device copy bandwidth: {copy_bw / 1e12:.3f} TB/s (read + write)")
    doc = {"info": info, "copy_bandwidth_Bps": copy_bw, "parts": {}}

    def save():
        (out / "bench.json").write_text(json.dumps(doc, indent=1, default=str))
        md = [f"# bench_gpu — {info['device']}", "", f"`{info['command']}`", "",
              f"torch {info['torch']}, transformers {info['transformers']}, {info['dtype']}; "
              f"copy bandwidth {copy_bw / 1e12:.3f} TB/s" if copy_bw else "no CUDA device"]
        for name, part in doc["parts"].items():
            if isinstance(part, dict) and "rows" in part:
                md += ["", f"## {name}", ""]
                if part.get("note"):
                    md += [part["note"], ""]
                md += [markdown(part["rows"])]
                # each row against its backend's AR (a part of several models names each row by its model)
                md += [f"\nwarning: {w} (docs/performance.md, rule 6)" for w in state_warnings(part["rows"])]
                if "comparisons" in part:
                    md += ["", "```", json.dumps(part["comparisons"], indent=1), "```"]
            elif isinstance(part, dict) and "table" in part:
                md += ["", f"## {name}", "", part["note"], "", part["table"]]
            elif isinstance(part, dict) and ("error" in part or "skipped" in part):
                md += ["", f"## {name}"]
            for key in ("error", "skipped"):
                if isinstance(part, dict) and key in part:
                    md += ["", f"{key}: {part[key]}"]
            # a part with its own table (gpt_fast) names a failed model in its row
            per_model = part.get("models") if isinstance(part, dict) and "table" not in part else None
            for model, sub in (per_model or {}).items():
                for key in ("error", "skipped"):
                    if isinstance(sub, dict) and key in sub:
                        md += ["", f"{model} {key}: {sub[key]}"]
        md += ["", "*outside forwards (async)*: share of decode wall time the device spends outside model calls, "
               "timed with CUDA events and no added syncs (the engine overhead as decoding runs); where that pass's "
               "thread waited for a CPU more than 2 % of it, how long (time the device idles for a host-bound row, "
               "other processes' on the run's cores, not the engine's: hsd_bench/host_probe.py). "
               "*host-serial overhead*: the same with the device synchronised around every call "
               "(all of the engine's host time; an upper bound). See hsd_bench/bench/instrument.py. "
               "*device idle (trace)* (--device-trace): the device's idle share in the timed passes, a kernel "
               "trace's busy time against their decode time (hsd_bench/bench/trace.py; every traced pass runs after "
               "every timed pass of the process, as a trace slows the host's launches after it); it does not count the "
               "device waiting inside a call for the host as busy. In brackets the part between launches, the device "
               "waiting for the host's next launch; none for a row whose rounds ran inside CUDA conditional nodes, "
               "since the trace stretches the gaps inside such launches. "
               "*= AR*: share of prompts whose greedy output equals the same backend's engine AR; where one "
               "differs, why, in parentheses (hsd_bench/parity.py, as run.py classifies its rows): a near tie "
               "of the dtype's rounding at the first differing position, or unexplained -- which a lossless "
               "method must never have. *host probe*: µs per tiny kernel launch + event wait before the timed passes "
               "(hsd_bench/host_probe.py; lower is a faster host): host-bound rows follow it."]
        (out / "bench.md").write_text("\n".join(md) + "\n")
        return "\n".join(md)

    def publish(name):
        def _publish(partial: dict) -> None:
            doc["parts"][name] = partial
            save()
        return _publish

    # Every row's traced pass waits for the end of the process (PendingTrace: a trace slows the launches after it).
    traces: list[PendingTrace] | None = [] if args.device_trace else None
    later = set(parts[parts.index("roofline") + 1:]) if "roofline" in parts else set()
    if args.profile and "roofline" in parts and ({"methods", "overhead"} & later
                                                  or len([m for m in args.roofline_models.split(",") if m]) > 1):
        log("WARNING: --profile traces the first roofline model's decode, and the profiler stays attached: the "
            "timed passes after it (later roofline models, later parts) run on a host slowed by it (PendingTrace); "
            "profile in a process of its own")
    for part in parts:
        if deadline is not None and time.perf_counter() > deadline:
            doc["parts"][part] = {"skipped": f"time limit reached (--time-limit-s {args.time_limit_s:g})"}
            log(f"part {part} skipped: time limit reached")
            save()
            continue
        t0 = time.perf_counter()
        try:
            if part == "smoke":
                doc["parts"]["smoke"] = part_smoke(args, device)
            elif part == "roofline":
                doc["parts"]["roofline"] = part_roofline(args, device, dtype, copy_bw, out)
            elif part == "methods":
                doc["parts"]["methods"] = part_methods(args, device, dtype, publish(part), copy_bw, traces)
            elif part == "gpt_fast":
                doc["parts"]["gpt_fast"] = part_gpt_fast(args, device, dtype, publish(part))
            else:
                doc["parts"]["overhead"] = part_overhead(args, device, dtype, publish(part), deadline, traces)
        except Exception as err:  # noqa: BLE001 -- keep the other parts' numbers
            import traceback

            traceback.print_exc()
            doc["parts"][part] = {**(doc["parts"].get(part) or {}), "error": f"{type(err).__name__}: {err}"}
        doc.setdefault("part_seconds", {})[part] = time.perf_counter() - t0
        log(f"part {part} took {doc['part_seconds'][part]:.1f} s")
        save()
        free_device_memory(device)
    t0 = time.perf_counter()
    run_traces(traces or [], deadline)
    if args.device_trace:
        doc["trace_seconds"] = time.perf_counter() - t0
    print(save())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
