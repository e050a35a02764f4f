"""Diagnosis (not part of the project): a fixed-count draft round as one graph vs one replay per step.

One process, run.py's engines on the shipped 5.6 M model (HumanEval, N x NEW, bf16), timed as run.py
times them (engine_run = decoder_run: measure.prepare + timed_passes). Per method, REPS alternating
A/B pairs (order flipped each pair): "round" = the code as committed (prepare() captured the
"draft-round" graphs), "steps" = the same engine with those graphs hidden from the cache, so every
round replays step by step. Outputs of both must be equal token for token. Prints/writes JSON.
usage: diag_rounds.py OUT.json [methods] [reps]
"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "hispec,layerskip,vanilla_sd,hierarchy,autoregressive").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DEV = os.environ.get("DEV", "cuda")
w = run_py_workload("checkpoints/ee-24x128", methods, DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")
res = {"methods": {}}


def rounds_of(eng):
    return {id(m): {k: v for k, v in m._graphs.graphs.items() if k[0] == "draft-round"} for m in eng.models
            if getattr(m, "_graphs", None) is not None}


for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)  # prepare + warm
    saved = rounds_of(eng)
    models = {id(m): m for m in eng.models}
    out = {"round": [], "steps": [], "probe": {"round": [], "steps": []}, "equal": True,
           "round_graphs": sum(len(v) for v in saved.values())}
    for rep in range(REPS):
        for mode in (("round", "steps") if rep % 2 == 0 else ("steps", "round")):
            for mid, graphs in saved.items():
                g = models[mid]._graphs.graphs
                if mode == "round":
                    g.update(graphs)
                else:
                    for k in graphs:
                        g.pop(k, None)
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out.setdefault("captures_timed", 0)
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    for mid, graphs in saved.items():
        models[mid]._graphs.graphs.update(graphs)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    out["ratio_round_over_steps"] = med(out["round"]) / med(out["steps"])
    out["pair_ratios"] = [a / b for a, b in zip(out["round"], out["steps"])]
    res["methods"][name] = out
    print(name, json.dumps(out), flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
