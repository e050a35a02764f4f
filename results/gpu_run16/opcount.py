"""Diagnosis (not part of the project; CPU). Count the aten ops the engine issues on the host per generated token, outside graph replays,
on run.py's engines with a CPU stand-in for the graph cache (fixed shapes on, graphs "replayed").
Each op is attributed to the innermost hsd_bench frame that issued it."""
import collections, sys, traceback, functools
sys.path.insert(0, ".")
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from hsd_bench.models.native import model as nm

COUNTING = [False]
import os
ALL = os.environ.get("ALL") == "1"
VIEWS = {"slice","select","view","unsqueeze","expand","as_strided","alias","detach","squeeze","t","transpose","_unsafe_view","reshape","permute","split","unbind","narrow"}
PREFILL=[False]
class Graphs:
    def __init__(self): self.steps = {}; self.captures = 0
    def __contains__(self, k): return k in self.steps
    def run(self, key, fn):
        if COUNTING[0]:
            replays[key[0]] += 1
        if key not in self.steps:
            self.steps[key] = fn; self.captures += 1
        was = COUNTING[0]; COUNTING[0] = False
        try: return self.steps[key]()
        finally: COUNTING[0] = was

real_init = nm.NativeLlama.__init__
def init(self, *a, **kw):
    kw["fixed_shapes"] = True
    real_init(self, *a, **kw)
    self._graphs = Graphs()
nm.NativeLlama.__init__ = init
real_eager = nm.NativeLlama._run_eager
def eager(self, *a, **k):
    was = COUNTING[0]; COUNTING[0] = False
    try: return real_eager(self, *a, **k)
    finally: COUNTING[0] = was
nm.NativeLlama._run_eager = eager

ops = collections.Counter(); sites = collections.Counter(); replays = collections.Counter()
class Count(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if COUNTING[0]:
            name = str(func.overloadpacket).split(".")[-1]
            if name in VIEWS and not ALL: return func(*args, **(kwargs or {}))
            ops[name] += 1
            site = "?"
            for fr in reversed(traceback.extract_stack(limit=12)[:-1]):
                if "hsd_bench" in fr.filename:
                    site = f"{fr.filename.split('hsd_bench/')[-1]}:{fr.lineno}({fr.name})"; break
            sites[(name, site)] += 1
        return func(*args, **(kwargs or {}))

from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.sampling import DecodingConfig
methods = sys.argv[1].split(",")
w = run_py_workload("checkpoints/ee-24x128", methods, "cpu", "float32", 4, 64,
                    draft="checkpoints/family-2x128", overrides=["model.backend=native"])
for m, eng in w.engines.items():
    eng.prepare(max(len(p) for p in w.prompts) + 64, greedy=True)
    ops.clear(); sites.clear(); replays.clear(); toks = 0
    with Count():
        COUNTING[0] = True
        for p in w.prompts:
            g = eng.generate(p, 64, DecodingConfig())
            toks += len(g.output_ids)
        COUNTING[0] = False
    total = sum(ops.values())
    print(f"== {m}: {toks} tokens, {total/toks:.2f} device ops per token outside replays, "
          f"{sum(replays.values())/toks:.2f} replays per token ({', '.join(f'{k} {v/toks:.2f}' for k, v in replays.most_common())})")
    for (name, site), n in sites.most_common(40):
        print(f"  {n/toks:6.2f}  {name:18s} {site}")
