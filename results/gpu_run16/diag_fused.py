"""Diagnosis (not part of the project): a greedy verification as one graph (the verifying segment
and the greedy head, ``run_layers_greedy``) vs the two steps it replaced.

One process, run.py's engines on the shipped 5.6 M model (HumanEval, N x NEW, bf16), timed as run.py
times them (engine_run: measure.prepare + timed_passes). Per method, REPS alternating A/B pairs
(order flipped each pair): "fused" = the code as committed; "pair" = the same engine with each
model's ``run_layers_greedy`` hidden (an instance attribute None: the engine's getattr finds no
fusion), so every verification replays the layers graph and then the head graph. Outputs of both
must be equal token for token. usage: diag_fused.py OUT.json [methods] [reps]
"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "hispec,layerskip,vanilla_sd,hierarchy").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DEV = os.environ.get("DEV", "cuda")
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")
w = run_py_workload(MODEL, methods, DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")
res = {"model": MODEL, "methods": {}}
for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)  # prepare + warm
    models = list({id(s.model): s.model for s in eng.states}.values())
    out = {"fused": [], "pair": [], "probe": {"fused": [], "pair": []}, "equal": True, "captures_timed": 0,
           "fused_graphs": sum(1 for m in models if getattr(m, "_graphs", None) is not None
                               for k in m._graphs.graphs if k[0] == "layers-greedy")}
    for rep in range(REPS):
        for mode in (("fused", "pair") if rep % 2 == 0 else ("pair", "fused")):
            for m in models:
                if mode == "pair":
                    m.run_layers_greedy = None
                else:
                    m.__dict__.pop("run_layers_greedy", None)
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    for m in models:
        m.__dict__.pop("run_layers_greedy", None)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    out["ratio_fused_over_pair"] = med(out["fused"]) / med(out["pair"])
    out["pair_ratios"] = [a / b for a, b in zip(out["fused"], out["pair"])]
    res["methods"][name] = out
    print(name, json.dumps(out), flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
