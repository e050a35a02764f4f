"""(hand-up plan, bucket-bounded: off / on [/ always]) Diagnosis (not part of the project): the hand-up verified ahead (Engine._hand_up_plan) on/off, in one process.
(Derived from diag_clock.py; modes "off" (_hand_up_plan returns False) and "on".)
Modes: "split" (level_split=True: two CUDA events per level interval, the code before this change)
and "default" (level_split=None: off on asynchronous CUDA). run.py's engines (HumanEval, N x NEW, bf16), timed
as run.py times them (engine_run); REPS rounds, modes rotated; outputs of all modes must be equal.
Also: host µs per Event.record(stream). usage: diag_clock.py OUT.json [methods] [reps]"""
import json, os, sys, time, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe
import hsd_bench.engine as E

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "hispec,hierarchy,vanilla_sd,layerskip").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 6
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")
MODES = tuple(os.environ.get("MODES", "off,on").split(","))
_PLAN = E.Engine._hand_up_plan

# host cost of one event record, on the device's stream
s = torch.cuda.current_stream(); ev = [torch.cuda.Event(enable_timing=True) for _ in range(64)]
torch.cuda.synchronize()
t = time.perf_counter()
for i in range(20000):
    ev[i % 64].record(s)
rec_us = (time.perf_counter() - t) / 20000 * 1e6
torch.cuda.synchronize()
print(f"Event.record(stream): {rec_us:.2f} us per call", flush=True)

MODE = ["split"]
def set_mode(eng, mode):
    MODE[0] = mode
    E.Engine._hand_up_plan = _PLAN if mode in ("on", "always", None) else (lambda self, *a: None)
    eng.hand_up_overflow_max = 1.0 if mode == "always" else E.HAND_UP_OVERFLOW_MAX

w = run_py_workload(MODEL, methods, "cuda", "bfloat16", N, NEW, draft="checkpoints/family-2x128")
res = {"model": MODEL, "record_us": rec_us, "modes": MODES, "methods": {}}
for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
    out = {m: [] for m in MODES}
    out.update({"probe": {m: [] for m in MODES}, "equal": True, "captures_timed": 0})
    for rep in range(REPS):
        for mode in MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]:
            set_mode(eng, mode)
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
            out.setdefault("hand_ups", {})[mode] = (r.extra.get("hand_ups_ahead"), r.extra.get("hand_ups_continued"))
    set_mode(eng, None)
    for m in MODES[1:]:
        ratios = [a / b for a, b in zip(out[m], out[MODES[0]])]
        out[f"{m}_over_{MODES[0]}"] = ratios
        out[f"geomean_{m}_over_{MODES[0]}"] = math.exp(sum(map(math.log, ratios)) / len(ratios))
        print(name, m, round(out[f"geomean_{m}_over_{MODES[0]}"], 3), [round(x, 3) for x in ratios], flush=True)
    print(name, "equal", out["equal"], "captures", out["captures_timed"], "probes", out["probe"], flush=True)
    res["methods"][name] = out
    Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
