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

Greedy, same prompts and token budget everywhere (EOS off), warm-up
excluded, device synchronised before every clock read, medians over
repetitions. Writes ``bench.json`` and ``bench.md`` to ``--out``.
Imports only torch / transformers / tokenizers (the GPU machines have no
Hydra).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.bench.models import load_hf, prompts_for  # noqa: E402
from hsd_bench.bench.report import markdown, summarize  # noqa: E402
from hsd_bench.bench.runs import engine_run, engine_time_split, hf_generate, native_loop  # noqa: E402
from hsd_bench.bench.timing import copy_bandwidth  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.models.native import from_hf_model  # noqa: E402

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


ONE_SPAN = 1 << 30  # min_kv_bucket: one attention span (the whole short cache) -> fewest compiled shapes


def context_for(n_max: int, max_new: int) -> int:
    """Cache size for the run, a multiple of 64 (aligned attention masks)."""
    return -(-(n_max + max_new + 16) // 64) * 64


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def set_assistant(gen_model, gamma: int) -> None:
    """HF reads the draft length from the *assistant's* generation config:
    fixed γ, no dynamic schedule, no confidence-based early stop -- the same
    policy as our methods, so the comparison is at the same E and γ."""
    gc_ = gen_model.generation_config
    gc_.num_assistant_tokens = gamma
    gc_.num_assistant_tokens_schedule = "constant"
    gc_.assistant_confidence_threshold = 0.0


# -- parts ---------------------------------------------------------------------
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
    res["passed"] = rel <= 1e-4 and hf_out == loop
    log(f"smoke {'passed' if res['passed'] else 'FAILED (speed numbers below are suspect)'}: {res}")
    return res


VARIANTS = {
    # name: (attention kernel, inductor coordinate-descent tuning)
    "sdpa": ("sdpa", False),
    "math": ("math", False),
    "sdpa+cdt": ("sdpa", True),
    "math+cdt": ("math", True),
}
BACKEND_OPTIONS: dict = {"variant": "math"}  # what the methods part uses: the roofline sweep's fastest


def make_native(hf, name: str, ctx: int, variant: str):
    """A native model for ``variant``; a fresh dynamo cache so inductor settings take effect."""
    attention, cdt = VARIANTS[variant]
    torch._dynamo.reset()
    import torch._inductor.config as inductor_config

    inductor_config.coordinate_descent_tuning = cdt
    return from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=ONE_SPAN, attention=attention)


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
    hf_reps = args.roofline_hf_reps if first else 1
    results.append(hf_generate(f"[{tag}] HF eager AR", hf, prompts, args.max_new, hf_reps))
    log(f"[{tag}] {nparams / 1e9:.3f}B params; HF eager AR: {results[-1].tokens_per_s:.1f} tok/s")
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
    if first:
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
        set_assistant(hf, g)
        results.append(hf_generate(f"[{tag}] HF assistant_early_exit={e} γ={g}", hf, prompts, args.max_new, 1,
                                   assistant_early_exit=e))
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
    hf_ar = results[0]
    engine_ar = next(r for r in results if "AR engine" in r.name)
    avg_ctx = sum(len(p) for p in prompts) / len(prompts) + args.max_new / 2
    kv = native.cache.nbytes_per_position() * avg_ctx
    bpt = {r.name: weight_bytes + kv for r in results if r.method.startswith("autoregressive")}
    rows = summarize(results, {"hf": hf_ar, "native": engine_ar}, hf_ar, bpt, copy_bw)
    del native, hf, eng
    return {"params": nparams, "weight_bytes_per_token": weight_bytes, "kv_bytes_per_token_avg": kv,
            "variant": variant, "prompts": len(prompts), "prompt_len": args.prompt_len, "max_new": args.max_new,
            "rows": rows}


def part_methods(args, device, dtype) -> dict:
    hf_t, tok = load_hf(args.target, device, dtype)
    hf_d, _ = load_hf(args.draft, device, dtype)
    prompts = prompts_for(tok, hf_t.config.vocab_size, args.prompts, args.prompt_len, seed=1)
    n_max = max(len(p) for p in prompts)
    depth = hf_t.config.num_hidden_layers
    e = args.exit or max(1, depth // 4)
    e_d, e_v = args.hispec_exits or (max(1, depth // 8), max(2, depth // 4))
    g = args.gamma
    ctx = context_for(n_max, args.methods_max_new or args.max_new)
    variant = BACKEND_OPTIONS["variant"]
    nat_t = make_native(hf_t, "target", ctx, variant)
    nat_d = from_hf_model(hf_d, name="draft", max_context=ctx, min_kv_bucket=ONE_SPAN, attention=nat_t.attention)
    log(f"methods: target {args.target} ({depth} layers), draft {args.draft}; E={e} γ={g} hispec={e_d},{e_v} "
        f"N_d={args.nd} N_i={args.ni}; {len(prompts)} prompts of {min(map(len, prompts))}-{n_max} tokens; "
        f"native variant {variant}")
    specs = {
        "autoregressive": MethodSpec("autoregressive"),
        "layerskip": MethodSpec("layerskip", exit=e, draft_len=g),
        "hispec": MethodSpec("hispec", exit=[e_d, e_v], draft_len=args.nd, period=args.ni),
        "vanilla_sd": MethodSpec("vanilla_sd", draft_len=g, draft_path="draft"),
    }

    def build(name, wrap=lambda m: m):
        return build_engine(specs[name], wrap(nat_t), load_other=lambda _p: (wrap(nat_d), None))

    reps, max_new = args.reps, args.methods_max_new or args.max_new
    hf_reps = args.hf_reps or reps
    results = [hf_generate("HF eager AR", hf_t, prompts, max_new, hf_reps)]
    set_assistant(hf_t, g)
    set_assistant(hf_d, g)
    results.append(hf_generate(f"HF assistant_early_exit={e} γ={g}", hf_t, prompts, max_new, hf_reps,
                               assistant_early_exit=e))
    results.append(hf_generate(f"HF assistant_model=draft γ={g}", hf_t, prompts, max_new, hf_reps,
                               assistant_model=hf_d))
    for r in results:
        log(f"{r.name}: {r.tokens_per_s:.1f} tok/s, τ={r.mean_accepted_len:.2f}")
    results.append(native_loop("native AR (loop, no engine)", nat_t, prompts, max_new, reps))
    labels = {"autoregressive": "ours AR", "layerskip": f"ours layerskip E={e} γ={g}",
              "hispec": f"ours hispec E={e_d},{e_v} N_d={args.nd} N_i={args.ni}",
              "vanilla_sd": f"ours vanilla_sd γ={g}"}
    eng_results = {}
    for name in specs:
        r = engine_run(labels[name], build(name), name, prompts, max_new, reps)
        r.extra["time_split"] = engine_time_split(lambda wrap, n=name: build(n, wrap), prompts, max_new)
        eng_results[name] = r
        results.append(r)
        log(f"{r.name}: {r.tokens_per_s:.1f} tok/s, τ={r.mean_accepted_len:.2f}, "
            f"overhead {100 * r.extra['time_split']['overhead_frac']:.1f}%")
    rows = summarize(results, {"hf": results[0], "native": eng_results["autoregressive"]}, results[0])
    by = {r["name"]: r for r in rows}
    comparisons = {
        "layerskip_ours_over_hf": by[labels["layerskip"]]["tokens_per_s"] / by[results[1].name]["tokens_per_s"],
        "vanilla_sd_ours_over_hf": by[labels["vanilla_sd"]]["tokens_per_s"] / by[results[2].name]["tokens_per_s"],
        "ar_ours_over_hf": by[labels["autoregressive"]]["tokens_per_s"] / by[results[0].name]["tokens_per_s"],
        "hispec_engine_overhead_frac": eng_results["hispec"].extra["time_split"]["overhead_frac"],
    }
    log(f"comparisons: {comparisons}")
    return {"target": args.target, "draft": args.draft, "variant": variant, "exit": e, "gamma": g,
            "hispec_exits": [e_d, e_v],
            "nd": args.nd, "ni": args.ni, "prompts": len(prompts), "max_new": max_new,
            "rows": rows, "comparisons": comparisons}


# -- main ------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="smoke,roofline,methods")
    ap.add_argument("--device", default=None, help="default: cuda if available")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/bench"))
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=128, help="random-weight prompts only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--roofline-models", default="random:llama-1b",
                    help="comma-separated; the first gets the variant sweep, HF early exit and the profile")
    ap.add_argument("--variants", default="sdpa,math", help=f"native variants for the first model: {list(VARIANTS)}")
    ap.add_argument("--roofline-hf-reps", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="write a kernel-level profile of AR decode steps")
    ap.add_argument("--roofline-prompts", type=int, default=1)
    ap.add_argument("--roofline-layerskip", action="store_true", help="also HF early exit vs ours on random weights")
    ap.add_argument("--roofline-exit", type=int, default=4)
    ap.add_argument("--target", default="checkpoints/ee-24x128")
    ap.add_argument("--draft", default="checkpoints/family-2x128")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--methods-max-new", type=int, default=None, help="methods part (default --max-new)")
    ap.add_argument("--hf-reps", type=int, default=None, help="methods part, HF runs (default --reps)")
    ap.add_argument("--exit", type=int, default=None, help="layerskip E (default depth/4)")
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--hispec-exits", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--nd", type=int, default=2)
    ap.add_argument("--ni", type=int, default=4)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = DTYPES[args.dtype]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import transformers

    info = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": args.dtype,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log(f"{info}")
    copy_bw = copy_bandwidth(device) if device.type == "cuda" else None
    if copy_bw:
        log(f"device-to-device copy bandwidth: {copy_bw / 1e12:.3f} TB/s (read + write)")
    doc = {"info": info, "copy_bandwidth_Bps": copy_bw, "parts": {}}
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - {"smoke", "roofline", "methods"}
    if unknown:
        raise SystemExit(f"unknown --parts {sorted(unknown)}; valid: smoke, roofline, methods")

    def save():
        (out / "bench.json").write_text(json.dumps(doc, indent=1, default=str))
        md = [f"# bench_gpu — {info['device']}", "", f"`{info['command']}`", "",
              f"torch {info['torch']}, transformers {info['transformers']}, {info['dtype']}; "
              f"copy bandwidth {copy_bw / 1e12:.3f} TB/s" if copy_bw else "no CUDA device"]
        for name, part in doc["parts"].items():
            if isinstance(part, dict) and "rows" in part:
                md += ["", f"## {name}", "", markdown(part["rows"])]
                if "comparisons" in part:
                    md += ["", "```", json.dumps(part["comparisons"], indent=1), "```"]
        (out / "bench.md").write_text("\n".join(md) + "\n")
        return "\n".join(md)

    for part in parts:
        t0 = time.perf_counter()
        try:
            if part == "smoke":
                doc["parts"]["smoke"] = part_smoke(args, device)
            elif part == "roofline":
                doc["parts"]["roofline"] = part_roofline(args, device, dtype, copy_bw, out)
            else:
                doc["parts"]["methods"] = part_methods(args, device, dtype)
        except SystemExit:
            save()
            raise
        except Exception as err:  # noqa: BLE001 -- keep the other parts' numbers
            import traceback

            traceback.print_exc()
            doc["parts"][part] = {"error": f"{type(err).__name__}: {err}"}
        doc.setdefault("part_seconds", {})[part] = time.perf_counter() - t0
        log(f"part {part} took {doc['part_seconds'][part]:.1f} s")
        save()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(save())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
