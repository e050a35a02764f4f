"""Diagnosis (not part of the project): the eighteenth run's last host trims ("new": gather's one-piece
fast path, verdict_input's views made once per size, _verdict_round_fits without a slice, the verdict's
pinned read buffer sliced once per size) against the same engines with the previous functions ("old").
run.py's engines (HumanEval, N x NEW, bf16), timed as run.py times them (engine_run); REPS pairs, order
flipped each pair; outputs of both must be equal. usage: diag_micro.py OUT.json [methods] [reps]"""
import json, os, sys, time, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench import host_probe
import hsd_bench.engine as E
from hsd_bench.models.native import model as nm

t_start = time.time()
N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "hispec,hierarchy").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 6
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")

def old_gather(pieces):
    first = pieces[0][0]
    if all(source is first for source, _, _ in pieces) and all(a[1] + a[2] == b[1] for a, b in zip(pieces, pieces[1:])):
        return first[pieces[0][1] : pieces[-1][1] + pieces[-1][2]][None]
    return torch.cat([source[off : off + n] for source, off, n in pieces])[None]
def old_verdict_input(self, k):
    if not self.fixed_shapes or not 1 <= k < self.max_graph_tokens:
        return None
    return self._verdict_in[: 2 * k + 1]
def old_fits(self, m, k, count):
    return self.verdict_input(k) is not None and count <= nm.MAX_FUSED_DRAFT and m + k + 1 + count <= self.max_context
def old_verdict_host(self, packed):
    if packed.device.type != "cuda":
        return ()
    if getattr(self, "_old_read", None) is None or self._old_read[0].numel() < packed.numel():
        self._old_read = (torch.empty(max(packed.numel(), 64), dtype=packed.dtype, pin_memory=True),
                          torch.cuda.Event(), torch.cuda.current_stream(packed.device))
    return self._old_read
NEW_FNS = (E.gather, nm.NativeLlama.verdict_input, nm.NativeLlama._verdict_round_fits, E.Engine._verdict_host)
OLD_FNS = (old_gather, old_verdict_input, old_fits, old_verdict_host)
def use(fns):
    E.gather, nm.NativeLlama.verdict_input, nm.NativeLlama._verdict_round_fits, E.Engine._verdict_host = fns

w = run_py_workload(MODEL, methods, "cuda", "bfloat16", N, NEW, draft="checkpoints/family-2x128")
res = {"model": MODEL, "methods": {}}
for name, eng in w.engines.items():
    use(NEW_FNS)
    first = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
    out = {"new": [], "old": [], "probe": {"new": [], "old": []}, "equal": True, "captures_timed": 0}
    for rep in range(REPS):
        for mode in (("new", "old") if rep % 2 == 0 else ("old", "new")):
            use(NEW_FNS if mode == "new" else OLD_FNS)
            eng._old_read = None
            out["probe"][mode].append(host_probe.round_trip_us(eng.device))
            r = engine_run(name, eng, name, w.prompts, NEW, 1, w.stop, w.codec)
            out[mode].append(r.tokens / r.kept_wall_s)
            out["equal"] &= r.outputs == first.outputs
            out["captures_timed"] += r.extra.get("graph_captures_timed", 0)
    use(NEW_FNS)
    ratios = [a / b for a, b in zip(out["new"], out["old"])]
    out["pair_ratios"] = ratios
    out["geomean_new_over_old"] = math.exp(sum(map(math.log, ratios)) / len(ratios))
    res["methods"][name] = out
    print(name, round(out["geomean_new_over_old"], 3), [round(x, 3) for x in ratios], out["equal"], out["captures_timed"], flush=True)
res["wall_s"] = time.time() - t_start
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
