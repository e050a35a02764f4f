"""Diagnosis (not part of the project): what makes the benchmark's instrumented pass (EventTimer,
bench.runs.engine_outside_forwards) slower than the timed passes on a host-bound model.
bench_gpu.py --parts methods runs with measure_engine replaced: per engine, the timed passes
(engine_run, as run.py), then single passes of fresh engines built as the overhead passes build them:
  fresh     no wrapper (a fresh engine's first pass: the first-use effect alone)
  fresh2    the same fresh engine's second pass
  wrapper   models wrapped, no events, no labels (the wrapper's Python)
  events    EventTimer as shipped (records + labels + timeline)
  nolabel   EventTimer without the per-call label and timeline
then the timed passes again (drift). usage: diag_inst.py OUT.json <bench_gpu args>"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import torch
import bench_gpu
from hsd_bench.bench import instrument as I
from hsd_bench.bench.runs import engine_run, engine_outside_forwards
from hsd_bench.engine import DecodingConfig
from hsd_bench import host_probe

OUT = sys.argv[1]; RES = {}
orig_timed = I.EventTimer._timed

def plain_pass(engine, prompts, max_new, stop, codec):
    dec = tok = 0
    for p in prompts:
        g = engine.generate(p, max_new, DecodingConfig(), stop_sequences=stop, tokenizer=codec)
        dec += g.stats.decode_s; tok += g.stats.n_generated
    return tok / dec, tok

def nolabel_timed(self, fn, *args, **kwargs):
    if not self._cuda:
        return orig_timed(self, fn, *args, **kwargs)
    if self._used == len(self._pool):
        self._pool.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
    start, end = self._pool[self._used]; self._used += 1
    start.record(self._stream)
    try:
        return fn(*args, **kwargs)
    finally:
        end.record(self._stream)

def wrapper_timed(self, fn, *args, **kwargs):
    return fn(*args, **kwargs)

def measure(label, name, build, prompts, max_new, reps, stop=(), codec=None):
    r = engine_run(label, build(name), name, prompts, max_new, reps, stop, codec)
    timed = r.decode_tokens_per_s
    row = {"timed": timed, "tokens": r.tokens, "probe_us": host_probe.round_trip_us(build(name).device)}
    eng = build(name)
    row["fresh"], _ = plain_pass(eng, prompts, max_new, stop, codec)
    row["fresh2"], _ = plain_pass(eng, prompts, max_new, stop, codec)
    for variant, fn in (("wrapper", wrapper_timed), ("events", orig_timed), ("nolabel", nolabel_timed), ("events_again", orig_timed)):
        I.EventTimer._timed = fn
        I.Timeline.collect = (lambda self: self.entries.clear()) if variant == "nolabel" else ORIG_COLLECT
        try:
            o = engine_outside_forwards(lambda wrap: build(name, wrap), prompts, max_new, stop, codec)
        finally:
            I.EventTimer._timed = orig_timed; I.Timeline.collect = ORIG_COLLECT
        row[variant] = o["decode_tokens_per_s"]
        if variant != "wrapper":
            row[variant + "_idle"] = o["gpu_idle_frac"]
        row[variant + "_tokens"] = o["tokens"]
    r2 = engine_run(label, build(name), name, prompts, max_new, reps, stop, codec)
    row["timed_again"] = r2.decode_tokens_per_s
    row["slowdown"] = {k: timed / row[k] - 1 for k in ("fresh", "fresh2", "wrapper", "events", "nolabel", "events_again", "timed_again")}
    RES[name] = row
    print(name, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row["slowdown"].items()}),
          "idle", round(row["events_idle"], 4), round(row["nolabel_idle"], 4), round(row["events_again_idle"], 4), flush=True)
    json.dump(RES, open(OUT, "w"), indent=1)
    r.extra.update({"outside_forwards_async": {"tokens": r.tokens, "decode_tokens_per_s": None, "gpu_idle_frac": 0.0},
                    "host_serial": {"tokens": r.tokens, "overhead_frac": 0.0}})
    return r

ORIG_COLLECT = I.Timeline.collect
bench_gpu.measure_engine = measure
sys.exit(bench_gpu.main(sys.argv[2:]))
