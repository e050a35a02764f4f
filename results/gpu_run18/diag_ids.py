"""Diagnosis (not part of the project): the eighteenth run's host savings ("new") against the
same engines without them ("old"), and without only the last ("no-view": a draft round's states copied as before):
 - a verification from layer 0 runs from its token ids (old: embed launched first, the states copied in --
   the hidden-input graph of (0, end), captured here too so that "old" replays a graph as before);
 - a model whose only view drafts keeps no copy of a round's hidden states (old: ModelState._draft_states "copy");
 - a model whose draft view feeds a deeper segment hands the round's buffer to its verification (old, no-view: "copy");
 - the stop check's decode calls the Rust decode directly (old: transformers' decode).
run.py's engines (HumanEval, N x NEW, bf16), timed as run.py times them (engine_run); per method REPS
pairs, the order flipped each pair; hispec and layerskip change only by the stop check (a near-null control).
Outputs of both modes must be equal. usage: diag_ids.py OUT.json [methods] [reps]
"""
import json, os, sys, time, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe
from hsd_bench.engine import ModelState
from hsd_bench.models.native import model as nm

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "vanilla_sd,hierarchy,autoregressive,hispec").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 6
DEV = os.environ.get("DEV", "cuda")
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")

real_prepare = nm.NativeLlama.prepare
def prepare(self, max_len, ranges, heads=("head", "greedy-head"), chains=(), guarded=(), verifying=(), catch_ups=()):
    n = real_prepare(self, max_len, ranges, heads, chains, guarded, verifying, catch_ups)
    if self.fixed_shapes and self._graphs is not None:  # the old hidden-input graphs of the (0, end) verifications
        sizes = [1 << k for k in range(self.max_graph_tokens.bit_length())]
        for a, b in sorted(set(verifying)):
            if a == 0:
                for tb in sizes:
                    self._replay(*self._layers_greedy_step(a, b, tb, self.fixed_span, "hidden"))
        self.reset()
    return n
nm.NativeLlama.prepare = prepare

MODE = ["new"]
real_states = ModelState._draft_states
ModelState._draft_states = property(lambda self: "copy" if MODE[0] == "old" or (MODE[0] == "no-view" and real_states.fget(self) == "view") else real_states.fget(self))

w = run_py_workload(MODEL, methods, DEV, "bfloat16" if DEV == "cuda" else "float32", N, NEW,
                    draft="checkpoints/family-2x128")


def embedding_first(model):
    fused = type(model).run_layers_greedy.__get__(model)

    def run_layers_greedy(hidden, start, end, first_pos, keep_hidden=True):
        if hidden.dim() == 1:
            hidden = model.embed(hidden)
        return fused(hidden, start, end, first_pos, keep_hidden=keep_hidden)
    return run_layers_greedy


res = {"model": MODEL, "methods": {}}
for name, eng in w.engines.items():
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)  # prepare + warm
    models = list({id(s.model): s.model for s in eng.states}.values())
    codec = eng._stop[1]
    rust = getattr(codec, "_rust_decode", None)
    MODES = ("new", "no-view", "old")
    out = {m: [] for m in MODES}
    out.update({"probe": {m: [] for m in MODES}, "equal": True, "captures_timed": 0,
           "rust_decode": rust is not None})
    for rep in range(REPS):
        for mode in MODES[rep % 3:] + MODES[:rep % 3]:
            MODE[0] = mode
            for m in models:
                m.__dict__.pop("run_layers_greedy", None)
                if mode == "old" and hasattr(m, "run_layers_greedy"):
                    m.run_layers_greedy = embedding_first(m)
            if codec is not None:
                codec._rust_decode = None if mode == "old" else rust
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    MODE[0] = "new"
    for m in models:
        m.__dict__.pop("run_layers_greedy", None)
    if codec is not None:
        codec._rust_decode = rust
    for other in ("old", "no-view"):
        ratios = [a / b for a, b in zip(out["new"], out[other])]
        out[f"ratios_over_{other}"] = ratios
        out[f"geomean_new_over_{other}"] = math.exp(sum(map(math.log, ratios)) / len(ratios))
    res["methods"][name] = out
    print(name, json.dumps(out), flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
