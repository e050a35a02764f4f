"""Diagnosis (not part of the project): a greedy verification's step without the copies nobody
reads ("new": the tokens are the step's own output, the hidden states of a model's last layer not
kept) against the same step copying both, as before ("old": each model's run_layers_greedy wrapped
to ask for the hidden states and clone the tokens -- the sixteenth run's path).

run.py's engines (HumanEval, N x NEW, bf16), timed as run.py times them (engine_run:
measure.prepare + timed_passes); per method REPS pairs, the order flipped each pair; AR (no
verification) as a null control. Outputs of both must be equal. usage: diag_clones.py OUT.json [methods] [reps]
"""
import json, os, sys, time, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "layerskip,vanilla_sd,hispec,hierarchy,autoregressive").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 6
DEV = os.environ.get("DEV", "cuda")
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")
w = run_py_workload(MODEL, methods, DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")


def copying(model):
    fused = type(model).run_layers_greedy.__get__(model)

    def run_layers_greedy(hidden, start, end, first_pos, keep_hidden=True):
        out, tokens = fused(hidden, start, end, first_pos, keep_hidden=True)
        return out, tokens.clone()
    return run_layers_greedy


res = {"model": MODEL, "methods": {}}
for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)  # prepare + warm
    models = list({id(s.model): s.model for s in eng.states}.values())
    out = {"new": [], "old": [], "probe": {"new": [], "old": []}, "equal": True, "captures_timed": 0}
    for rep in range(REPS):
        for mode in (("new", "old") if rep % 2 == 0 else ("old", "new")):
            for m in models:
                m.__dict__.pop("run_layers_greedy", None)
                if mode == "old" and hasattr(m, "run_layers_greedy"):
                    m.run_layers_greedy = copying(m)
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    for m in models:
        m.__dict__.pop("run_layers_greedy", None)
    ratios = [a / b for a, b in zip(out["new"], out["old"])]
    out["pair_ratios"] = ratios
    out["geomean_new_over_old"] = math.exp(sum(map(math.log, ratios)) / len(ratios))
    res["methods"][name] = out
    print(name, json.dumps(out), flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
