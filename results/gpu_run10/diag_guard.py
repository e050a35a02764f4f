"""Diagnosis (not part of the project): the guarded look-ahead of middle levels, A/B in one process.

Modes, alternated per round in rotating order, on run.py's engines and HumanEval workload:
  as_is -- the code as it is: middle levels launch the next draft round guarded (a < below)
           where torch has conditional CUDA graph nodes, else as "certain";
  speculate -- the guarded rounds launched unguarded: the device always drafts them, the host
           discards them where the level hands up (the guard's gain minus the wasted rounds);
  certain -- the ninth session's rule: only rounds certain whatever the verdict (guards disabled
             by patching Engine._ahead_plan to refuse a guarded plan);
  off -- Engine.lookahead = False.
usage: diag_guard.py MODEL OUTDIR METHODS
"""
import json, sys, statistics as st
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench import measure
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.engine import Engine
from hsd_bench.sampling import DecodingConfig

model = sys.argv[1]; out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
methods = sys.argv[3].split(",")
w = run_py_workload(model, methods, "cuda", "bfloat16", 8, 128, draft="checkpoints/family-2x128")
dec = DecodingConfig()
from hsd_bench.models.native.model import conditional_graphs_available
plan = Engine._ahead_plan
MODES = ("as_is", "speculate", "certain", "off")
print("conditional CUDA graph nodes:", conditional_graphs_available(), flush=True)


def set_mode(eng, mode):
    eng.lookahead = mode != "off"
    bottom = eng.levels[0].state.model
    bottom.__dict__.pop("launch_draft_after_verdict", None)
    eng.__dict__.pop("_ahead_plan", None)
    if mode == "certain":
        eng._ahead_plan = lambda *a: (lambda p: None if p is None or p[2] is not None else p)(plan(eng, *a))
    elif mode == "speculate":
        launch = type(bottom).launch_draft_after_verdict
        bottom.launch_draft_after_verdict = lambda *a, accepted_below=None: launch(bottom, *a)


res = {}
for name in methods:
    eng = w.engines[name]
    measure.prepare([eng], w.prompts, 128, dec)
    rates = {m: [] for m in MODES}
    ahead = {m: [] for m in MODES}
    outs = {}
    for rep in range(6):
        order = MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]
        for mode in (order if rep % 2 == 0 else order[::-1]):
            set_mode(eng, mode)
            toks = wall = 0.0
            n_ahead = n_rounds = 0
            got = []
            for p in w.prompts:
                g = eng.generate(p, 128, dec, w.stop, w.codec)
                toks += g.stats.n_generated; wall += g.stats.wall_s
                n_ahead += g.stats.draft_calls_ahead; n_rounds += g.stats.draft_calls
                got.append(g.output_ids)
            rates[mode].append(toks / wall)
            ahead[mode].append(n_ahead / max(1, n_rounds))
            outs.setdefault(mode, got)
    set_mode(eng, MODES[0])
    med = {m: st.median(v) for m, v in rates.items()}
    res[name] = {"rates": rates, "median": med, "ahead_share": {m: ahead[m][0] for m in MODES},
                 "over_certain": {m: med[m] / med["certain"] for m in MODES},
                 "over_off": {m: med[m] / med["off"] for m in MODES},
                 "outputs_equal": all(outs[m] == outs["off"] for m in MODES)}
    print(name, json.dumps(res[name]), flush=True)
json.dump(res, open(out / "diag_guard.json", "w"), indent=1)
