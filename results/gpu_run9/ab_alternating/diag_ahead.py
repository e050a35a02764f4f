"""Throwaway diagnosis (not committed): look-ahead on/off, alternating, and a device timeline."""
import json, sys, time, statistics as st
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench import measure
from hsd_bench.bench.jobs import run_py_workload
from hsd_bench.sampling import DecodingConfig

model = sys.argv[1]; out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
methods = sys.argv[3].split(",")
w = run_py_workload(model, methods, "cuda", "bfloat16", 8, 128, draft="checkpoints/family-2x128")
dec = DecodingConfig()
res = {}
for name in methods:
    eng = w.engines[name]
    measure.prepare([eng], w.prompts, 128, dec)
    rates = {True: [], False: []}
    for rep in range(6):
        for ahead in ((True, False) if rep % 2 == 0 else (False, True)):
            eng.lookahead = ahead
            toks = wall = 0.0
            for p in w.prompts:
                g = eng.generate(p, 128, dec, w.stop, w.codec)
                toks += g.stats.n_generated; wall += g.stats.wall_s
            rates[ahead].append(toks / wall)
    res[name] = {"on": rates[True], "off": rates[False],
                 "ratio_median": st.median(rates[True]) / st.median(rates[False])}
    print(name, json.dumps(res[name]), flush=True)
    # device timeline of one prompt, each way
    for ahead in ((True, False) if len(sys.argv) > 4 else ()):
        eng.lookahead = ahead
        p = w.prompts[0]
        eng.generate(p, 128, dec, w.stop, w.codec)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
            g = eng.generate(p, 128, dec, w.stop, w.codec)
            torch.cuda.synchronize()
        ev = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        ev.sort(key=lambda e: e.time_range.start)
        gaps = []
        end = ev[0].time_range.end
        busy = 0.0
        for a, b in zip(ev, ev[1:]):
            end = max(end, a.time_range.end)
            gap = b.time_range.start - end
            if gap > 0:
                gaps.append((gap, a.name[:60], b.name[:60]))
        span = ev[-1].time_range.end - ev[0].time_range.start
        tot = sum(gp for gp, _, _ in gaps)
        big = sorted(gaps, reverse=True)[:12]
        cpu = {}
        for e in prof.key_averages():
            if e.key.startswith("cuda") :
                cpu[e.key] = (e.count, e.cpu_time_total / 1e3)
        tag = f"{name}-{'on' if ahead else 'off'}"
        res[tag] = {"tokens": g.stats.n_generated, "span_ms": span / 1e3, "gap_ms": tot / 1e3,
                    "kernels": len(ev), "gaps_over_20us": sum(1 for gp, _, _ in gaps if gp > 20),
                    "gap_ms_over_20us": sum(gp for gp, _, _ in gaps if gp > 20) / 1e3,
                    "big": big, "cuda_api_ms": cpu}
        print(tag, json.dumps({k: v for k, v in res[tag].items() if k != "big"}), flush=True)
        for gp, a, b in big[:8]:
            print(f"   gap {gp:7.1f} us after {a} before {b}", flush=True)
        prof.export_chrome_trace(str(out / f"{tag}.json"))
json.dump(res, open(out / "diag.json", "w"), indent=1)
