"""Diagnosis (not part of the project): host time from the middle level's verdict read to the
target's verification launch (the hierarchy's hand-up), on CPU with fixed shapes forced.
usage: diag_window.py [method] [N] [NEW]"""
import cProfile, pstats, sys, time, io
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
import hsd_bench.models.native.model as NM
_init = NM.NativeLlama.__init__
def _forced(self, *a, **kw):
    kw["fixed_shapes"] = True
    _init(self, *a, **kw)
NM.NativeLlama.__init__ = _forced
import hsd_bench.engine as E
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
method = sys.argv[1] if len(sys.argv) > 1 else "hierarchy"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 4
NEW = int(sys.argv[3]) if len(sys.argv) > 3 else 64
torch.set_num_threads(1)
w = run_py_workload("checkpoints/ee-24x128", [method], "cpu", "float32", N, NEW, overrides=("model.backend=native",))
eng = w.engines[method]
top = eng.levels[-1].state.model
win = {"t0": None, "times": [], "prof": None, "cur": cProfile.Profile()}
_accept = E.greedy_accept_rows
def accept(*a, **kw):
    r = _accept(*a, **kw)
    win["t0"] = time.perf_counter()
    if win["prof"] is not None:
        win["cur"] = cProfile.Profile(); win["cur"].enable()
    return r
E.greedy_accept_rows = accept
_rlg = top.run_layers_greedy
def rlg(*a, **kw):
    if win["t0"] is not None:
        if win["prof"] is not None:
            win["cur"].disable(); win["kept"].append(win["cur"])
        win["times"].append(time.perf_counter() - win["t0"])
        win["t0"] = None
    return _rlg(*a, **kw)
top.run_layers_greedy = rlg
# anything else the window closes on: other models' forwards
for lv in eng.levels[:-1]:
    m = lv.state.model
    for name in ("run_layers_greedy", "greedy_draft", "run_layers"):
        f = getattr(m, name, None)
        if f is None:
            continue
        def closer(*a, _f=f, **kw):
            if win["t0"] is not None:
                if win["prof"] is not None:
                    win["cur"].disable()
                win["t0"] = None
            return _f(*a, **kw)
        setattr(m, name, closer)
engine_run(method, eng, method, w.prompts, NEW, 1, w.stop, w.codec)
win["times"].clear()
r = engine_run(method, eng, method, w.prompts, NEW, 1, w.stop, w.codec)
ts = sorted(win["times"])
print(f"{method}: {len(ts)} windows, median {1e6*ts[len(ts)//2]:.1f} us, p10 {1e6*ts[len(ts)//10]:.1f}, p90 {1e6*ts[9*len(ts)//10]:.1f}")
win["times"].clear(); win["prof"] = True; win["kept"] = []
engine_run(method, eng, method, w.prompts, NEW, 1, w.stop, w.codec)
print(len(win["kept"]), "profiled hand-ups")
s = io.StringIO(); pstats.Stats(*win["kept"], stream=s).sort_stats("tottime").print_stats(40); print(s.getvalue())
