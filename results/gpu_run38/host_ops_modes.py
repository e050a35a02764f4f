"""Host µs per call of the one-row path's small device ops under ``no_grad`` and under inference mode.

    python results/gpu_run38/host_ops_modes.py [OUT]

Why: the thirty-seventh run's sampled profile put most of HiSpec's host work per token in small
eager ops (fills, copies, cats, views) around the graph replays, about ten µs each on the lent
host. Under ``torch.no_grad`` each op still passes autograd's dispatch layer and, written in
place or viewed, the version-counter / view-tracking layer; ``torch.inference_mode`` removes the
first for every tensor and the second for tensors made in the mode (inference tensors). This
times the same ops three ways -- no_grad on ordinary tensors (the engine before the change),
inference mode on ordinary tensors, inference mode on inference tensors (the engine after) --
each as N calls in a loop between two device syncs, the host clock around the loop only (the
device work is a few µs per call and runs behind the launches: the loop measures the host's
issue rate). ``DEV=cpu`` runs it on CPU tensors (a dry run; the op cost then includes the work).
"""
import json, os, sys, time
import torch

N = int(os.environ.get("N", 20000))
dev = torch.device(os.environ.get("DEV", "cuda"))
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def buffers():
    return {"tokens": torch.zeros(1, 4096, dtype=torch.long, device=dev),
            "src": torch.arange(8, dtype=torch.long, device=dev),
            "packed": torch.zeros(64, dtype=torch.long, device=dev),
            "pinned": torch.zeros(64, dtype=torch.long, pin_memory=dev.type == "cuda")}


def ops(b):
    row, src, packed, pinned = b["tokens"][0], b["src"], b["packed"], b["pinned"]
    return [
        ("row[p].fill_(int)", lambda p: row[p].fill_(p)),
        ("view row[p:p+4]", lambda p: row[p : p + 4]),
        ("row[p:p+4].copy_(src[:4])", lambda p: row[p : p + 4].copy_(src[:4])),
        ("torch.cat([a, b], out=packed[:9])", lambda p: torch.cat((src[:4], src[:5]), out=packed[:9])),
        ("pinned[:9].copy_(packed[:9], non_blocking)", lambda p: pinned[:9].copy_(packed[:9], non_blocking=True)),
        ("src.add(1)", lambda p: src.add(1)),
    ]


def timed(fn):
    for _ in range(200):
        fn(5)
    sync()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(N):
            fn(i & 1023)
        best = min(best, time.perf_counter() - t0)
        sync()
    return 1e6 * best / N


settings = {}
b = buffers()
with torch.no_grad():
    settings["no_grad, ordinary tensors"] = {label: timed(fn) for label, fn in ops(b)}
with torch.inference_mode():
    settings["inference mode, ordinary tensors"] = {label: timed(fn) for label, fn in ops(b)}
    bi = buffers()
    assert bi["tokens"].is_inference()
    settings["inference mode, inference tensors"] = {label: timed(fn) for label, fn in ops(bi)}
names = list(settings)
print("| op | " + " | ".join(names) + " |")
print("| --- |" + " --- |" * len(names))
for label in settings[names[0]]:
    print(f"| `{label}` | " + " | ".join(f"{settings[n][label]:.2f}" for n in names) + " |")
print("| sum | " + " | ".join(f"{sum(settings[n].values()):.2f}" for n in names) + " |")
if len(sys.argv) > 1:
    os.makedirs(sys.argv[1], exist_ok=True)
    json.dump({"device": str(dev), "n": N, "us_per_call": settings}, open(sys.argv[1] + "/host_ops_modes.json", "w"), indent=1)
