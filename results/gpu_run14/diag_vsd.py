"""Diagnosis (not part of the project): what differs in a process whose vanilla_sd runs slow?

One process: run.py's AR and vanilla_sd engines on HumanEval (8 x 128), timed as run.py times them
(engine_run: measure.prepare + timed_passes, 3 passes), then per method one instrumented pass with
run.py's stop sequences (device time inside model calls vs outside, by transition), and host
micro-benchmarks: tokenizer decode of a 200-token text, a tiny kernel + event sync round trip, an
empty-graph replay. Prints one JSON line. usage: diag_vsd.py OUT.json
"""
import json, os, sys, time, statistics as st
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench.bench.instrument import EventTimer, PhaseGate, Timeline
from hsd_bench.engine import Engine, Level, ModelState
from hsd_bench.sampling import DecodingConfig

t_start = time.time()
DEV = os.environ.get("DEV", "cuda"); N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
w = run_py_workload("checkpoints/ee-24x128", ["autoregressive", "vanilla_sd"], DEV,
                    "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")
res = {"hashseed": os.environ.get("PYTHONHASHSEED"), "cpu": os.sched_getaffinity(0).__len__()}
for name, eng in w.engines.items():
    r = engine_run(name, eng, name, w.prompts, NEW, 3, w.stop, w.codec)
    res[name] = {"tok_s": r.tokens / r.kept_wall_s, "passes": [round(r.tokens / x, 1) for x in r.wall_s]}


def instrumented(eng):
    gate, tl, timers, states = PhaseGate(("decode",)), Timeline(), [], {}
    def st_of(s):
        if id(s) not in states:
            t = EventTimer(s.model, gate, timeline=tl); timers.append(t)
            states[id(s)] = ModelState(t, s.bounds)
        return states[id(s)]
    levels = [Level(st_of(lv.state), lv.exit_layer, lv.batch, lv.rule, lv.name, lv.flush_on_reject, lv.draft_stop)
              for lv in eng.levels]
    e = Engine(levels, eng.eos_token_ids); e.on_phase = gate
    total = busy1 = 0.0
    for rep in range(2):
        decode = toks = 0.0
        for p in w.prompts:
            g = e.generate(p, NEW, DecodingConfig(), w.stop, w.codec)
            tl.collect(); [t.collect() for t in timers]
            decode += g.stats.decode_s; toks += g.stats.n_generated
        total += decode
        if rep == 0:
            busy1 = sum(t.seconds for t in timers)
    busy2 = sum(t.seconds for t in timers) - busy1
    return {"decode_s": decode, "busy_s": busy2, "outside_frac": 1 - busy2 / decode, "tok_s": toks / decode,
            "top": [(x["after"], x["before"], x["count"], round(x["s"] / x["count"] * 1e6, 1)) for x in tl.top(5, total)]}


for name, eng in w.engines.items():
    try:
        res[name]["instrumented"] = instrumented(eng)
    except Exception as exc:  # a diagnosis: report, go on
        res[name]["instrumented"] = repr(exc)

ids = w.codec.encode("def f(x):\n    return x * 2\n" * 12)[:200]
t0 = time.perf_counter()
for _ in range(300): w.codec.decode(ids)
res["decode_us"] = (time.perf_counter() - t0) / 300 * 1e6
if DEV != "cuda":
    print(json.dumps(res)); sys.exit()
x = torch.zeros(16, device="cuda"); ev = torch.cuda.Event()
for _ in range(50): x.add_(1); ev.record(); ev.synchronize()
t0 = time.perf_counter()
for _ in range(1000): x.add_(1); ev.record(); ev.synchronize()
res["op_sync_us"] = (time.perf_counter() - t0)
t0 = time.perf_counter()
for _ in range(1000): x.add_(1)
torch.cuda.synchronize(); res["op_launch_us"] = (time.perf_counter() - t0)
t0 = time.perf_counter()
for _ in range(1000): x[:4].tolist()
res["tolist_us"] = (time.perf_counter() - t0)
tgt = w.target
res["ptrs_mod_2M"] = {"embed": tgt.embed_weight.data_ptr() % (1 << 21), "k0": tgt.cache.k[0].data_ptr() % (1 << 21)}
res["wall_s"] = time.time() - t_start
line = json.dumps(res)
print(line, flush=True)
Path(sys.argv[1]).write_text(line)
