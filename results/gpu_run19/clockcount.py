"""Diagnosis (CPU): level-clock starts/stops per token, and how many starts follow the previous stop
with no device op (outside replays) and no replay in between (a boundary one event could serve)."""
import sys, collections
sys.argv = [sys.argv[0], sys.argv[1]]
exec(open(".ext/opcount.py").read().split("from hsd_bench.bench.jobs import run_py_workload")[0])
import hsd_bench.engine as E
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.sampling import DecodingConfig
state = {"since_stop": None, "starts": 0, "stops": 0, "contig": 0, "pairs": collections.Counter()}
rs, rp = E.LevelClock.start, E.LevelClock.stop
def start(self):
    state["starts"] += 1
    if state["since_stop"] == 0: state["contig"] += 1
    return rs(self)
def stop(self, level, mark, served):
    state["stops"] += 1; state["since_stop"] = 0
    return rp(self, level, mark, served)
E.LevelClock.start, E.LevelClock.stop = start, stop
class Watch(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket).split(".")[-1]
        if COUNTING[0] and name not in VIEWS and state["since_stop"] is not None:
            state["since_stop"] += 1
        return func(*args, **(kwargs or {}))
rg = Graphs.run
def run(self, key, fn):
    if COUNTING[0] and state["since_stop"] is not None: state["since_stop"] += 1
    return rg(self, key, fn)
Graphs.run = run
w = run_py_workload("checkpoints/ee-24x128", sys.argv[1].split(","), "cpu", "float32", 4, 64,
                    draft="checkpoints/family-2x128", overrides=["model.backend=native"])
for m, eng in w.engines.items():
    eng.prepare(max(len(p) for p in w.prompts) + 64, greedy=True)
    for k in ("starts", "stops", "contig"): state[k] = 0
    toks = 0
    with Watch():
        COUNTING[0] = True
        for p in w.prompts:
            state["since_stop"] = None
            toks += len(eng.generate(p, 64, DecodingConfig()).output_ids)
        COUNTING[0] = False
    print(f"{m}: per token starts {state['starts']/toks:.2f} stops {state['stops']/toks:.2f} "
          f"starts right after a stop {state['contig']/toks:.2f}")
