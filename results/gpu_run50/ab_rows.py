"""One process, two engines per method on the same weights: the decode attention kernel taking
several positions (``decode_attention.MAX_ROWS = [16]``, "several": the code as shipped from the
fiftieth run) and the one-row kernel alone (``[1]``, "one": several-row steps on the compiled
"math" attention, as before), alternating timed passes -- as ``results/gpu_run36/ab_views.py``
does with two copies of the package, here with one package and the setting each side's steps are
captured with (set again before each side's passes, so nothing captured late takes the other's).

Why one process: a host-bound method's rate follows the lent host's state, which moves between
processes by more than a change like this (docs/gpu-runs.md, "Fourteenth run"). Each side builds
its own native models from the same HF models (bf16, CUDA graphs, one attention span, as
bench_gpu.py's methods part), its own engines (methods.build_engine, bench_gpu.engine_specs),
prepares them with ``measure.prepare`` and times them with ``measure.timed_passes`` -- run.py's
timing. Per method and round: each side's decode tok/s, the host probe, the ratio several / one,
and whether the two sides' tokens are equal (the kernel rounds differently from the math
attention, so in bfloat16 a near tie may go either way; each side's parity against AR is the
benchmark's to judge, ``bench_gpu.py --parts methods``).

    [METHODS=a,b] [SEVERAL=n] python results/gpu_run50/ab_rows.py OUT [target] [rounds]

(``SEVERAL``: the "several" side's ``MAX_ROWS``, 16 unless set; 1 runs the same code on both sides,
an A/A control of the process -- the third call's, after the first's autoregressive rows read 0.97.)
"""
import json, os, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
import torch

import bench_gpu  # noqa: E402
from hsd_bench import measure, methods  # noqa: E402
from hsd_bench.bench.models import load_hf  # noqa: E402
from hsd_bench.models import native  # noqa: E402
from hsd_bench.models.native import decode_attention, gemv  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
target_path = sys.argv[2] if len(sys.argv) > 2 else "checkpoints/ee-24x128"
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
DRAFT, MID = "checkpoints/family-2x128", "checkpoints/family-6x128"
METHODS = os.environ.get("METHODS", "autoregressive,layerskip,hispec,vanilla_sd,hierarchy").split(",")
PROMPTS, NEW, REPS = int(os.environ.get("PROMPTS", 8)), int(os.environ.get("NEW", 128)), 3
SETTINGS = {"several": int(os.environ.get("SEVERAL", 16)), "one": 1}  # SEVERAL=1: an A/A control
dev = torch.device(os.environ.get("DEV", "cuda"))  # DEV=cpu: a dry run of the script
dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32

hf_t, tok = load_hf(target_path, dev, dtype)
hf_d, _ = load_hf(DRAFT, dev, dtype)
hf_m, _ = load_hf(MID, dev, dtype)
prompts, stop, codec = bench_gpu.dataset_workload("humaneval", PROMPTS, tok)
ctx = bench_gpu.context_for(max(map(len, prompts)), NEW)
L = hf_t.config.num_hidden_layers
specs = bench_gpu.engine_specs(L, 6, 3, 6, 4, 2, 4, draft=True, mid=True)


def side(name: str) -> dict:
    decode_attention.MAX_ROWS[0] = SETTINGS[name]
    mk = lambda hf, n, **kw: native.from_hf_model(hf, name=n, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN, **kw)
    target = mk(hf_t, "target")
    others = {"draft": mk(hf_d, "draft", attention=target.attention, prefill=target.prefill),
              "mid": mk(hf_m, "mid", attention=target.attention, prefill=target.prefill)}
    engines = {m: methods.build_engine(specs[m], target, load_other=lambda p: (others[p], None), target_codec=codec)
               for m in METHODS}
    dec = DecodingConfig()
    t0 = time.perf_counter()
    measure.prepare(list(engines.values()), prompts, NEW, dec, 1, stop_sequences=stop, tokenizer=codec)
    print(f"[ab] {name} (MAX_ROWS {SETTINGS[name]}): prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"engines": engines, "dec": dec, "name": name}


sides = {name: side(name) for name in SETTINGS}


def timed(s: dict, m: str):
    decode_attention.MAX_ROWS[0] = SETTINGS[s["name"]]
    passes = list(measure.timed_passes(s["engines"][m], prompts, NEW, s["dec"], REPS, stop_sequences=stop,
                                       tokenizer=codec))
    gens = [t.generation for _, t in passes]
    probes = [p for _, t in passes for p in (t.host_probe_us or [])]
    tokens = sum(len(g.output_ids) for g in gens)
    decode = sum(g.stats.decode_s for g in gens)
    return tokens / decode, statistics.median(probes) if probes else None, [g.output_ids for g in gens]


res = {m: {"several": [], "one": [], "probe_several": [], "probe_one": [], "ratio": []} for m in METHODS}
prompts_differing = {}
for rnd in range(rounds):
    for m in METHODS:
        order = ("several", "one") if rnd % 2 == 0 else ("one", "several")
        got = {}
        for k in order:
            rate, probe, outs = timed(sides[k], m)
            res[m][k].append(rate); res[m]["probe_" + k].append(probe); got[k] = (rate, outs)
        res[m]["ratio"].append(got["several"][0] / got["one"][0])
        differing = sum(a != b for a, b in zip(got["several"][1], got["one"][1]))
        prompts_differing[m] = max(prompts_differing.get(m, 0), differing)
        print(f"[ab] round {rnd} {m}: several {got['several'][0]:.1f} one {got['one'][0]:.1f} tok/s, ratio "
              f"{res[m]['ratio'][-1]:.3f}, probes {res[m]['probe_several'][-1]}/{res[m]['probe_one'][-1]} µs, "
              f"prompts whose tokens differ {differing} of {PROMPTS}", flush=True)
summary = {m: {"ratio_median": statistics.median(r["ratio"]), "ratio_min": min(r["ratio"]),
               "ratio_max": max(r["ratio"]), "several_median": statistics.median(r["several"]),
               "one_median": statistics.median(r["one"]), "passes_differing_max": prompts_differing[m], **r}
           for m, r in res.items()}
(out / "ab_rows.json").write_text(json.dumps({"target": target_path, "rounds": rounds, "prompts": PROMPTS,
                                               "max_new": NEW, "reps": REPS, "methods": summary}, indent=1))
lines = [f"# In-process A/B, {target_path}: decode attention on several-row steps against the one-row kernel "
         f"alone, {rounds} rounds × {REPS} passes", "",
         "| method | one-row only, tok/s (median) | several rows, tok/s (median) | several/one per round "
         "(median; min–max) | prompts whose tokens differ (most in a round) |",
         "| --- | --- | --- | --- | --- |"]
for m, s in summary.items():
    lines.append(f"| {m} | {s['one_median']:.1f} | {s['several_median']:.1f} | {s['ratio_median']:.3f}; "
                 f"{s['ratio_min']:.3f}–{s['ratio_max']:.3f} | {s['passes_differing_max']} of {PROMPTS} |")
(out / "ab_rows.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines), flush=True)
