"""Diagnosis (not part of the project): the two host-side look-ahead steps of this session against
the sixteenth run's rule, in one process.

Modes (each hides model methods with an instance attribute None, so the engine's getattr finds none):
  "new"          the code as committed;
  "no-catch-up"  ``queue_catch_up`` hidden: a certain hand-up's catch-up runs after the verdict is read;
  "old"          ``queue_catch_up`` and ``queue_draft_inputs`` hidden: also a host-read guard stages
                 its round after the read (the sixteenth run's rule).
run.py's engines (HumanEval, N x NEW, bf16), timed as run.py times them (engine_run: measure.prepare
+ timed_passes). Per method REPS rounds, each running every mode once in a rotated order. Outputs of
all modes must be equal token for token. usage: diag_hostguard.py OUT.json [methods] [reps]
"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "hispec,hierarchy").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
DEV = os.environ.get("DEV", "cuda")
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")
HIDE = {"new": (), "no-catch-up": ("queue_catch_up",), "old": ("queue_catch_up", "queue_draft_inputs")}
MODES = list(HIDE)
w = run_py_workload(MODEL, methods, DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")
res = {"model": MODEL, "methods": {}}
for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)  # prepare + warm
    models = list({id(s.model): s.model for s in eng.states}.values())
    out = {mode: [] for mode in MODES}
    out.update({"ahead": {m: [] for m in MODES}, "probe": {m: [] for m in MODES}, "equal": True, "captures_timed": 0})
    for rep in range(REPS):
        order = MODES[rep % 3:] + MODES[:rep % 3]
        if rep % 2:
            order = order[::-1]
        for mode in order:
            for m in models:
                for attr in HIDE["old"]:
                    m.__dict__.pop(attr, None)
                for attr in HIDE[mode]:
                    setattr(m, attr, None)
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["ahead"][mode].append(r.extra.get("draft_rounds_ahead"))
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    for m in models:
        for attr in HIDE["old"]:
            m.__dict__.pop(attr, None)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    for mode in ("no-catch-up", "old"):
        out[f"ratio_new_over_{mode}"] = med(out["new"]) / med(out[mode])
        out[f"round_ratios_new_over_{mode}"] = [a / b for a, b in zip(out["new"], out[mode])]
    res["methods"][name] = out
    print(name, json.dumps({k: v for k, v in out.items()}), flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
