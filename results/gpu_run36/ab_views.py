"""One process, two engines per method: the code before a change (``hsd_bench_old``: commit
``AB_OLD``, by default 4922074, before the thirty-sixth session's host cuts -- a copy under another
package name made by ``make_old_package.sh [commit]``) and the code after, on the same HF weights,
alternating timed passes. ``AB_NAME`` names the output files (default ``ab_views``), ``AB_LABEL``
the change in their title (default "host cuts"); the thirty-seventh run's A/Bs set all three.

Why one process: a host-bound method's rate follows the lent host's state, which moves between
processes by more than the change measured (docs/gpu-runs.md, "Fourteenth run"); alternating
in one process puts both sides in the same states. Each side builds its own native models from
the same HF models (bf16, CUDA graphs, one attention span, as bench_gpu.py's methods part), its
own engines (methods.build_engine, bench_gpu.engine_specs), prepares them with its own
``measure.prepare`` and times them with its own ``measure.timed_passes`` -- run.py's timing.
Outputs: both sides' tokens must be equal prompt by prompt (no device work changed); per method
and round the decode tok/s of each side, the host probe, and the paired ratio new / old.

    [METHODS=a,b] [AB_OLD=commit AB_NAME=name AB_LABEL=text] python results/gpu_run36/ab_views.py OUT [target] [rounds]
"""
import importlib, json, os, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
import torch

import bench_gpu  # noqa: E402  (the new package's workload and specs)
from hsd_bench.bench.models import load_hf  # noqa: E402

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
target_path = sys.argv[2] if len(sys.argv) > 2 else "checkpoints/ee-24x128"
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
DRAFT, MID = "checkpoints/family-2x128", "checkpoints/family-6x128"
METHODS = os.environ.get("METHODS", "autoregressive,layerskip,hispec,vanilla_sd,hierarchy").split(",")
OLD, NAME = os.environ.get("AB_OLD", "4922074"), os.environ.get("AB_NAME", "ab_views")
LABEL = os.environ.get("AB_LABEL", "host cuts")
PROMPTS, NEW, REPS = int(os.environ.get("PROMPTS", 8)), int(os.environ.get("NEW", 128)), 3
dev = torch.device(os.environ.get("DEV", "cuda"))  # DEV=cpu: a dry run of the script
dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32

hf_t, tok = load_hf(target_path, dev, dtype)
hf_d, _ = load_hf(DRAFT, dev, dtype)
hf_m, _ = load_hf(MID, dev, dtype)
prompts, stop, codec = bench_gpu.dataset_workload("humaneval", PROMPTS, tok)
ctx = bench_gpu.context_for(max(map(len, prompts)), NEW)
L = hf_t.config.num_hidden_layers
specs = bench_gpu.engine_specs(L, 6, 3, 6, 4, 2, 4, draft=True, mid=True)


def side(pkg_name):
    pkg = importlib.import_module(pkg_name)
    methods = importlib.import_module(pkg_name + ".methods")
    native = importlib.import_module(pkg_name + ".models.native")
    measure = importlib.import_module(pkg_name + ".measure")
    sampling = importlib.import_module(pkg_name + ".sampling")
    mk = lambda hf, name, **kw: native.from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN, **kw)
    target = mk(hf_t, "target")
    others = {"draft": mk(hf_d, "draft", attention=target.attention, prefill=target.prefill),
              "mid": mk(hf_m, "mid", attention=target.attention, prefill=target.prefill)}
    engines = {}
    for name in METHODS:
        spec = methods.MethodSpec(**{k: getattr(specs[name], k) for k in specs[name].__dataclass_fields__})
        engines[name] = methods.build_engine(spec, target, load_other=lambda p: (others[p], None), target_codec=codec)
    dec = sampling.DecodingConfig()
    t0 = time.perf_counter()
    measure.prepare(list(engines.values()), prompts, NEW, dec, 1, stop_sequences=stop, tokenizer=codec)
    print(f"[ab] {pkg_name}: prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"measure": measure, "engines": engines, "dec": dec, "pkg": pkg}


sides = {"new": side("hsd_bench"), "old": side("hsd_bench_old")}


def timed(s, name):
    passes = list(s["measure"].timed_passes(s["engines"][name], prompts, NEW, s["dec"], REPS, stop_sequences=stop,
                                            tokenizer=codec))
    gens = [t.generation for _, t in passes]
    probes = [p for _, t in passes for p in (t.host_probe_us or [])]
    tokens = sum(len(g.output_ids) for g in gens)
    decode = sum(g.stats.decode_s for g in gens)
    return tokens / decode, statistics.median(probes) if probes else None, [g.output_ids for g in gens]


res = {m: {"new": [], "old": [], "probe_new": [], "probe_old": [], "ratio": []} for m in METHODS}
same = {}
for rnd in range(rounds):
    for m in METHODS:
        order = ("new", "old") if rnd % 2 == 0 else ("old", "new")
        got = {}
        for k in order:
            rate, probe, outs = timed(sides[k], m)
            res[m][k].append(rate); res[m]["probe_" + k].append(probe); got[k] = (rate, outs)
        res[m]["ratio"].append(got["new"][0] / got["old"][0])
        same[m] = same.get(m, True) and got["new"][1] == got["old"][1]
        print(f"[ab] round {rnd} {m}: new {got['new'][0]:.1f} old {got['old'][0]:.1f} tok/s, ratio "
              f"{res[m]['ratio'][-1]:.3f}, probes {res[m]['probe_new'][-1]}/{res[m]['probe_old'][-1]} µs, "
              f"outputs equal {got['new'][1] == got['old'][1]}", flush=True)
summary = {m: {"ratio_median": statistics.median(r["ratio"]), "ratio_min": min(r["ratio"]), "ratio_max": max(r["ratio"]),
               "new_median": statistics.median(r["new"]), "old_median": statistics.median(r["old"]),
               "outputs_equal": same[m], **r} for m, r in res.items()}
(out / f"{NAME}.json").write_text(json.dumps({"target": target_path, "rounds": rounds, "prompts": PROMPTS,
                                               "max_new": NEW, "reps": REPS, "methods": summary}, indent=1))
lines = [f"# In-process A/B, {target_path}: new ({LABEL}) against old ({OLD}), {rounds} rounds × {REPS} passes", "",
         "| method | old tok/s (median) | new tok/s (median) | new/old per round (median; min–max) | outputs equal |",
         "| --- | --- | --- | --- | --- |"]
for m, s in summary.items():
    lines.append(f"| {m} | {s['old_median']:.1f} | {s['new_median']:.1f} | {s['ratio_median']:.3f}; "
                 f"{s['ratio_min']:.3f}–{s['ratio_max']:.3f} | {s['outputs_equal']} |")
(out / f"{NAME}.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines), flush=True)
