"""Diagnosis (not part of the project): run.py model options A/B in one process (twelfth run: model.attention).

run.py's engines (HumanEval workload, 8 prompts x 128 tokens, bf16) built twice, once per
model.matmul; each engine prepared untimed; six rounds, the two kernels alternated in rotating
order; tokens/s per pass from the engine's own stats; median per kernel.
usage: diag_runpy.py MODEL OUTDIR METHODS KEY KINDS(values of model.KEY, first = baseline) [REPS]
"""
import json, sys, statistics as st
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench import measure
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.sampling import DecodingConfig

model = sys.argv[1]; out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
methods = sys.argv[3].split(",")
dec = DecodingConfig()
KEY = sys.argv[4]
KINDS = tuple(sys.argv[5].split(","))
REPS = int(sys.argv[6]) if len(sys.argv) > 6 else 6
work = {k: run_py_workload(model, methods, "cuda", "bfloat16", 8, 128, draft="checkpoints/family-2x128",
                           overrides=[f"model.{KEY}={k}"]) for k in KINDS}
print("kernels:", {k: (work[k].target.matmul_kernel(), work[k].target.attention_kernel()) for k in KINDS}, flush=True)
res = {}
for name in methods:
    engs = {k: work[k].engines[name] for k in KINDS}
    for k in KINDS:
        measure.prepare([engs[k]], work[k].prompts, 128, dec)
    rates = {k: [] for k in KINDS}
    outs = {}
    for rep in range(REPS):
        order = KINDS[rep % len(KINDS):] + KINDS[:rep % len(KINDS)]
        for k in (order if rep % 2 == 0 else order[::-1]):
            w = work[k]
            toks = wall = 0.0
            got = []
            for p in w.prompts:
                g = engs[k].generate(p, 128, dec, w.stop, w.codec)
                toks += g.stats.n_generated; wall += g.stats.wall_s
                got.append(g.output_ids)
            rates[k].append(toks / wall)
            outs.setdefault(k, got)
    med = {k: st.median(v) for k, v in rates.items()}
    res[name] = {"rates": rates, "median": med, "over_first": {k: med[k] / med[KINDS[0]] for k in KINDS},
                 "prompts_equal_first": {k: sum(a == b for a, b in zip(outs[k], outs[KINDS[0]])) for k in KINDS}}
    print(name, json.dumps(res[name]), flush=True)
json.dump(res, open(out / "diag_runpy.json", "w"), indent=1)
