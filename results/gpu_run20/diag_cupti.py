"""Diagnosis (not part of the project): where the device waits, from the device's own kernel timestamps
(CUPTI via torch.profiler, CUDA activity only: no events recorded, no wrapper around model calls),
on run.py's engines (HumanEval, N x NEW, bf16) after their timed passes (engine_run, as run.py).
A marker kernel (torch.cuda._sleep) at each engine phase change delimits the decode windows on the
device's clock; device idle = window time with no kernel, memcpy or memset running.
usage: diag_cupti.py OUT.json [methods] [reps]"""
import json, os, sys, time, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from torch.profiler import profile, ProfilerActivity
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.bench.runs import engine_run
from hsd_bench.engine import DecodingConfig
from hsd_bench import host_probe

N = int(os.environ.get("N", 8)); NEW = int(os.environ.get("NEW", 128))
methods = (sys.argv[2] if len(sys.argv) > 2 else "autoregressive,layerskip,hispec,vanilla_sd,hierarchy").split(",")
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
MODEL = os.environ.get("MODEL", "checkpoints/ee-24x128")
BUSY_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}

def device_events(prof):
    """(start_us, end_us, name) of every device activity, sorted."""
    out = []
    try:
        for e in prof.profiler.kineto_results.events():
            if e.device_type() == torch.autograd.DeviceType.CUDA:
                out.append((e.start_ns() / 1e3, (e.start_ns() + e.duration_ns()) / 1e3, e.name()))
    except Exception as exc:  # fall back to the chrome trace
        print("kineto_results failed:", exc, flush=True)
        path = "/tmp/trace.json"; prof.export_chrome_trace(path)
        for ev in json.load(open(path))["traceEvents"]:
            if ev.get("cat") in BUSY_CATS and "dur" in ev:
                out.append((float(ev["ts"]), float(ev["ts"]) + float(ev["dur"]), ev.get("name", "")))
    out.sort()
    return out

def profiled_pass(eng, w):
    phases = []
    prev = eng.on_phase
    def mark(name):
        phases.append(name)
        torch.cuda._sleep(1)
        if prev is not None:
            prev(name)
    eng.on_phase = mark
    decode_s, tokens, outs = 0.0, 0, []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for p in w.prompts:
            g = eng.generate(p, NEW, DecodingConfig(), stop_sequences=w.stop, tokenizer=w.codec)
            decode_s += g.stats.decode_s; tokens += g.stats.n_generated; outs.append(g.output_ids)
            eng._phase_now = None  # every prompt opens its windows with a marker
        torch.cuda.synchronize()
    eng.on_phase = prev
    res = {"decode_s_host": decode_s, "tokens": tokens, "decode_tokens_per_s": tokens / decode_s}
    res.update(idle_stats(device_events(prof), phases))
    return res, outs

def idle_stats(evs, phases):
    marks = [e for e in evs if "spin" in e[2].lower() or "sleep" in e[2].lower()]
    res = {"markers": len(marks), "phases": len(phases)}
    if len(marks) != len(phases):
        res["error"] = f"{len(marks)} markers on the device, {len(phases)} phase changes"
        return res
    windows = [(m[1], nxt[0]) for m, nxt, ph in zip(marks, marks[1:] + [(evs[-1][1],) * 3], phases) if ph == "decode"]
    busy = span = 0.0; gaps = []
    ms = set(marks); others = [e for e in evs if e not in ms]
    i = 0
    for a, b in windows:
        span += b - a
        cur = a
        while i < len(others) and others[i][1] <= a:
            i += 1
        j = i
        while j < len(others) and others[j][0] < b:
            s, e = max(others[j][0], a), min(others[j][1], b)
            if s > cur:
                gaps.append(s - cur)
            if e > cur:
                busy += e - max(s, cur); cur = e
            j += 1
        if b > cur:
            gaps.append(b - cur)
        i = j
    res.update({"window_s": span / 1e6, "busy_s": busy / 1e6, "idle_frac": 1 - busy / span if span else None,
                "gaps": len(gaps), "gaps_over_5us": sum(g > 5 for g in gaps),
                "idle_in_gaps_over_5us_s": sum(g for g in gaps if g > 5) / 1e6})
    return res

if os.environ.get("SELFTEST"):
    evs = [(0, 1, "spin"), (2, 5, "k"), (4, 6, "k"), (8, 9, "k"), (10, 11, "spin_kernel"), (12, 13, "k"), (20, 21, "spin"), (22, 30, "k")]
    print(idle_stats(evs, ["prefill", "decode", "done"]))  # decode window [11, 20): busy 1 of 9
    print(idle_stats(evs, ["decode", "prefill", "decode"]))  # [1,10): busy 4+1=5 of 9; [21, 30): 8 of 9
    sys.exit()
w = run_py_workload(MODEL, methods, "cuda", "bfloat16", N, NEW, draft="checkpoints/family-2x128")
res = {"model": MODEL, "torch": torch.__version__, "methods": {}}
for name, eng in w.engines.items():
    r = engine_run(name, eng, name, w.prompts, NEW, REPS, w.stop, w.codec)
    row = {"timed_decode_tokens_per_s": r.decode_tokens_per_s, "tokens": r.tokens,
           "captures_timed": r.extra.get("graph_captures_timed"), "probe_us": host_probe.round_trip_us(eng.device)}
    profiled_pass(eng, w)  # the profiler's first use: set-up, not measured
    p, outs = profiled_pass(eng, w)
    p["equal"] = outs == r.outputs
    if p.get("decode_tokens_per_s"):
        p["profiled_slowdown"] = r.decode_tokens_per_s / p["decode_tokens_per_s"] - 1
    row["profiled"] = p
    res["methods"][name] = row
    print(name, json.dumps(row), flush=True)
json.dump(res, open(sys.argv[1], "w"), indent=1)
