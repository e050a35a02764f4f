"""Same process, alternating: HiSpec/layerskip with the early verification on and off (Engine._verify_round_early
a no-op), run.py's engines and timing; then host time per graph replay by key and a cProfile of each."""
import cProfile, io, json, pstats, statistics, sys, time
from collections import defaultdict
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import torch
from hsd_bench import measure
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.sampling import DecodingConfig
from hsd_bench.engine import Engine
import hsd_bench.models.native.graphs as G
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
model = sys.argv[2] if len(sys.argv) > 2 else "checkpoints/ee-24x128"
methods = ["hispec", "layerskip"]
import os
DEV = os.environ.get("DEV", "cuda"); LIM = int(os.environ.get("LIM", 8)); NEW = int(os.environ.get("NEW", 128))
job = run_py_workload(model, methods, DEV, "bfloat16" if DEV == "cuda" else "float32", LIM, NEW, draft="checkpoints/family-2x128", overrides=[])
dec = DecodingConfig()
measure.prepare(job.engines.values(), job.prompts, NEW, dec, 1, stop_sequences=job.stop, tokenizer=job.codec)
early = Engine._verify_round_early
def set_mode(on): Engine._verify_round_early = early if on else (lambda self, first, upto: None)
def timed(engine, reps):
    gens = [t.generation for _, t in measure.timed_passes(engine, job.prompts, NEW, dec, reps, stop_sequences=job.stop, tokenizer=job.codec)]
    return sum(g.stats.wall_s for g in gens), sum(len(g.output_ids) for g in gens)
res = defaultdict(list)
for rnd in range(4):
    for m in methods:
        for on in ((True, False) if rnd % 2 == 0 else (False, True)):
            set_mode(on)
            s, n = timed(job.engines[m], 3)
            res[f"{m} {'on' if on else 'off'}"].append(1e6 * s / n)
            print(f"round {rnd} {m} {'on' if on else 'off'}: {1e6*s/n:.1f} us/token", flush=True)
summary = {k: {"us_per_token": v, "median": statistics.median(v)} for k, v in res.items()}
# host time per replay by key, and per event wait
rep = {}
orig_run = G.GraphCache.run
ev_sync = torch.cuda.Event.synchronize
for m in methods:
    for on in (True, False):
        set_mode(on)
        acc = defaultdict(list); waits = []
        def run(self, key, fn, acc=acc):
            t0 = time.perf_counter(); o = orig_run(self, key, fn); acc[str(key[:3])].append(time.perf_counter() - t0); return o
        def sync(self, waits=waits):
            t0 = time.perf_counter(); ev_sync(self); waits.append(time.perf_counter() - t0)
        G.GraphCache.run = run; torch.cuda.Event.synchronize = sync
        s, n = timed(job.engines[m], 1)
        G.GraphCache.run = orig_run; torch.cuda.Event.synchronize = ev_sync
        rep[f"{m} {'on' if on else 'off'}"] = {
            "us_per_token": 1e6 * s / n,
            "event_wait_us_per_token": 1e6 * sum(waits) / n, "event_waits": len(waits),
            "event_wait_median_us": 1e6 * statistics.median(waits) if waits else None,
            "replays": {k: {"n": len(v), "median_us": 1e6 * statistics.median(v), "p90_us": 1e6 * sorted(v)[int(0.9 * len(v))], "total_us_per_token": 1e6 * sum(v) / n} for k, v in acc.items()}}
        print(m, on, json.dumps(rep[f"{m} {'on' if on else 'off'}"], indent=None)[:1500], flush=True)
prof = {}
for on in (True, False):
    set_mode(on)
    p = cProfile.Profile(); p.enable(); s, n = timed(job.engines["hispec"], 1); p.disable()
    st = pstats.Stats(p, stream=io.StringIO()); rows = []
    for (path, line, name), (_, calls, own, cum, _) in st.stats.items():
        rows.append((own, cum, calls, f"{Path(path).name}:{line}({name})"))
    rows.sort(reverse=True)
    prof["on" if on else "off"] = [{"own_us_per_token": 1e6 * o / n, "cum_us_per_token": 1e6 * c / n, "calls": k, "fn": f} for o, c, k, f in rows[:40]]
(out / "ab_early.json").write_text(json.dumps({"timed": summary, "replays": rep, "profile": prof}, indent=1))
for k, v in summary.items(): print(k, [round(x, 1) for x in v["us_per_token"]], "median", round(v["median"], 1))
