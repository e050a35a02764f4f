"""Diagnosis: host speed of the CPU this process is pinned to (pure Python, CUDA launch, sync, D2H)."""
import json, os, sys, time
import torch
def best(fn, n, reps=5):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(n); out.append((time.perf_counter() - t0) / n * 1e6)
    return round(min(out), 3), round(sorted(out)[len(out) // 2], 3)
def py(n):
    s = 0
    for i in range(n): s += i * i
x = torch.zeros(16, device="cuda"); ev = torch.cuda.Event(); torch.cuda.synchronize()
def launch(n):
    for _ in range(n): x.add_(1)
    torch.cuda.synchronize()
def sync(n):
    for _ in range(n): x.add_(1); ev.record(); ev.synchronize()
def tolist(n):
    for _ in range(n): x[:4].tolist()
for f in (launch, sync, tolist): f(200)
print(json.dumps({"cpus": sorted(os.sched_getaffinity(0)), "py_loop_ns": best(py, 200000)[0] * 1e3,
                  "launch_us": best(launch, 2000), "sync_us": best(sync, 2000), "tolist_us": best(tolist, 2000)}), flush=True)
