"""Diagnosis (not part of the project): is a process whose draft rounds are captured as one graph
more often slow? MODE=new: the code as committed; MODE=old: prepare() captures no round graph (its
_round_step returns an already captured step), so every round replays step by step, as before
c83a8f1. One process: run.py's hispec engine (exit 3,6) timed as run.py times it (engine_run, 3
passes). Prints one JSON line."""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.models.native.model import NativeLlama
MODE = os.environ.get("MODE", "new")
if MODE == "old":
    NativeLlama._round_step = lambda self, end, tb, upto, count, pl: self._draft_first_step(
        end, tb, self._kv_bucket(upto), False)
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
DEV = os.environ.get("DEV", "cuda"); N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
t0 = time.time()
w = run_py_workload("checkpoints/ee-24x128", ["hispec"], DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW)
eng = w.engines["hispec"]
r = engine_run("hispec", eng, "hispec", w.prompts, NEW, 3, w.stop, w.codec)
graphs = getattr(w.target, "_graphs", None)
rounds = sum(k[0] == "draft-round" for k in graphs.graphs) if graphs is not None else 0
print(json.dumps({"mode": MODE, "tok_s": round(r.tokens / r.kept_wall_s, 1),
                  "passes": [round(r.tokens / x, 1) for x in r.wall_s], "probe_us": r.extra.get("host_probe_us"),
                  "round_graphs": rounds, "tau": r.mean_accepted_len if hasattr(r, "mean_accepted_len") else None,
                  "captures_timed": r.extra.get("graph_captures_timed"), "wall_s": round(time.time() - t0, 1)}),
      flush=True)
