#!/usr/bin/env python3
"""Thirty-fifth run: the by-hand conditional node (results/gpu_run34/conditional_attempt.py) inside
the project's own GraphCache capture, before the benchmark trusts it. A probe, not project code.

Three checks, each reported in cond_cache_probe.json:
1. "runs and skips": a GraphCache step x += 1; if pred: x += (w @ v).sum()*0 + 10 (allocates and
   calls cuBLAS on the body's stream); x += 100 -- replayed with pred true/false/true moves x by
   111 / 101 / 111, and the process is not left capturing.
2. "a failing body ends its capture": a body that raises leaves no capture under way, and the
   current stream is the one the capture began on -- call 5's failure, where the process stayed
   capturing.
3. "a second capture after it": a plain GraphCache step captured and replayed afterwards works.
"""
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "results" / "gpu_run34")]

import torch  # noqa: E402

import conditional_attempt as cond  # noqa: E402
from hsd_bench.models.native.graphs import GraphCache  # noqa: E402

out = {"torch": torch.__version__, "cuda": torch.version.cuda, "native": cond.native(),
       "unavailable_reason": cond.unavailable_reason()}
path = os.path.join(os.environ.get("OUT", "."), "cond_cache_probe.json")


def save():
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1), flush=True)


save()
dev = torch.device("cuda")
cache = GraphCache(dev)
_capture = GraphCache._capture


def _capture_with_pool(self, fn):
    with cond.capturing_into(self.pool):
        return _capture(self, fn)


GraphCache._capture = _capture_with_pool
x = torch.zeros(1, device=dev)
w, v = torch.randn(64, 64, device=dev), torch.randn(64, device=dev)
pred = torch.ones(2, dtype=torch.bool, device=dev)


def guarded(body):
    def step():
        x.add_(1)
        if torch.cuda.is_current_stream_capturing():
            with cond.by_hand(pred[0]):
                body()
        else:
            body()
        x.add_(100)
        return x
    return step


def add_ten():
    x.add_((w @ v).sum() * 0 + 10)


try:
    moves = []
    for flag in (True, False, True):
        pred.fill_(flag)
        before = x.item()
        cache.run(("guarded",), guarded(add_ten))
        torch.cuda.synchronize()
        moves.append(x.item() - before)
    out["moves"] = moves
    out["capturing_after"] = torch.cuda.is_current_stream_capturing()
    # the first run also warms the step up (the body runs there too): 222
    out["runs and skips"] = moves == [222.0, 101.0, 111.0] and not out["capturing_after"]
except Exception as err:  # noqa: BLE001 -- a probe reports what failed
    out["runs and skips"] = f"{type(err).__name__}: {err}"
save()

stream = torch.cuda.current_stream()


def boom():
    if torch.cuda.is_current_stream_capturing():  # the warm-up runs it outside the capture
        raise RuntimeError("a body that fails")


try:
    cache.run(("failing",), guarded(boom))
    out["a failing body ends its capture"] = "no error raised"
except RuntimeError as err:
    out["failing_error"] = str(err)[:300]
    out["a failing body ends its capture"] = (not torch.cuda.is_current_stream_capturing()
                                              and torch.cuda.current_stream() == stream)
save()

try:
    y = torch.zeros(1, device=dev)
    def plain():
        y.add_(5)
        return y
    for _ in range(2):
        cache.run(("plain",), plain)
    torch.cuda.synchronize()
    out["a second capture after it"] = y.item() == 15.0  # the warm-up, then two replays
    out["plain_y"] = y.item()
except Exception as err:  # noqa: BLE001
    out["a second capture after it"] = f"{type(err).__name__}: {err}"
save()
