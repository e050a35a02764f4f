"""The one-slice GEMV path against the sliced loop on small models (rows <= 1024 now take one
slice by default): native AR loop of each --models spec, graphs recaptured per mode, alternated."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_gpu  # noqa: E402
from hsd_bench.bench.models import load_hf, prompts_for  # noqa: E402
from hsd_bench.bench.runs import native_loop  # noqa: E402
from hsd_bench import host_probe  # noqa: E402
from hsd_bench.models.native import gemv  # noqa: E402
from hsd_bench.models.native.graphs import GraphCache  # noqa: E402

ORIG = gemv._kernel


class Sliced:
    def __init__(self, jit):
        self.jit = jit

    def __getitem__(self, grid):
        return lambda *a, **kw: self.jit[grid](*a, **{**kw, "ONE_SLICE": False})


def mode(one_slice: bool) -> None:
    gemv._kernel = ORIG if one_slice else (lambda: Sliced(ORIG()))


ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--models", default="checkpoints/ee-24x128,checkpoints/family-2x128")
ap.add_argument("--rounds", type=int, default=3)
args = ap.parse_args()
doc = {}
for spec in args.models.split(","):
    mode(True)
    hf, _ = load_hf(spec, "cuda", torch.bfloat16)
    prompts = prompts_for(None, hf.config.vocab_size, 4, 128, seed=0)
    native = bench_gpu.make_native(hf, "target", bench_gpu.context_for(128, 256), "triton+gemv")
    res = doc[spec] = {"one_slice": [], "sliced": [], "same_tokens": [], "probe_us": {"one_slice": [], "sliced": []}}
    for rnd in range(args.rounds):
        outs = {}
        for one in ((True, False) if rnd % 2 == 0 else (False, True)):
            mode(one)
            native._graphs = GraphCache(native.device)
            key = "one_slice" if one else "sliced"
            res["probe_us"][key].append(host_probe.round_trip_us("cuda"))  # the host's state beside the pass
            r = native_loop(f"{spec} {one}", native, prompts, 256, 5)
            res[key].append(r.decode_tokens_per_s)
            outs[key] = r.outputs
            print(f"[{spec}] round {rnd} {key}: {r.decode_tokens_per_s:.1f} tok/s, probe "
                  f"{res['probe_us'][key][-1]:.1f} µs", flush=True)
        res["same_tokens"].append(outs["one_slice"] == outs["sliced"])
    Path(args.out).write_text(json.dumps(doc, indent=1))
    del native, hf
mode(True)
print(json.dumps(doc, indent=1))
