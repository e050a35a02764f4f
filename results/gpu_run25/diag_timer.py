"""The outside-forwards timer as the twenty-fourth run left it (a new wrapper per fast-path lookup,
labels formatted between calls) against the leaner one (wrappers kept, labels formatted at
collect): one process, run.py's workload, passes alternating, each with its host probe."""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_gpu  # noqa: E402
from hsd_bench.bench import instrument, runs  # noqa: E402
from hsd_bench.bench.models import load_hf  # noqa: E402

NEW = instrument.EventTimer


def old_label(model, fn, args):
    name = f"{getattr(model, 'name', 'model')}.{getattr(fn, '__name__', 'call')}"
    ranged = name.endswith((".run_layers", ".run_layers_greedy")) and len(args) >= 3
    return f"{name}[{args[1]}:{args[2]}]" if ranged else name


class Old(NEW):
    def __getattr__(self, name):
        model = self.__dict__.get("_model")
        if model is None:
            raise AttributeError(name)
        attr = getattr(model, name)
        if name in instrument.OPTIONAL_FORWARD_METHODS and callable(attr):
            return lambda *args, **kwargs: self._call(attr, *args, **kwargs)
        return attr

    def _call(self, fn, *args, **kwargs):
        if self._gate is not None and not self._gate.open:
            return fn(*args, **kwargs)
        self.calls += 1
        return self._timed(fn, *args, **kwargs)

    def _label(self, fn, args):
        return old_label(self._model, fn, args)


ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--target", default="checkpoints/ee-24x128")
ap.add_argument("--methods", default="hispec,autoregressive,hierarchy")
ap.add_argument("--rounds", type=int, default=3)
args = ap.parse_args()
DEV, DT = ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)
hf_t, tok = load_hf(args.target, DEV, DT)
hf_d, _ = load_hf("checkpoints/family-2x128", DEV, DT)
hf_m, _ = load_hf("checkpoints/family-6x128", DEV, DT)
prompts, stop, codec = bench_gpu.dataset_workload("humaneval", 8, tok)
ctx = bench_gpu.context_for(max(map(len, prompts)), 128)
nat = bench_gpu.make_native(hf_t, "target", ctx, "triton+gemv")
others = {"draft": bench_gpu.draft_native(hf_d, "draft", ctx, nat), "mid": bench_gpu.draft_native(hf_m, "mid", ctx, nat)}
specs = bench_gpu.engine_specs(hf_t.config.num_hidden_layers, 6, 3, 6, 4, 2, 4, draft=True, mid=True)
build = bench_gpu.engine_builder(specs, nat, others, codec)
doc = {}
for name in args.methods.split(","):
    r = runs.engine_run(name, build(name), name, prompts, 128, 3, stop, codec)
    row = doc[name] = {"timed_decode_tok_s": r.decode_tokens_per_s, "old": [], "new": []}
    for rnd in range(args.rounds):
        for variant in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
            runs.EventTimer = Old if variant == "old" else NEW
            o = runs.engine_outside_forwards(lambda wrap: build(name, wrap), prompts, 128, stop, codec)
            row[variant].append({"share": o["gpu_idle_frac"], "tok_s": o["decode_tokens_per_s"],
                                 "probe": o["host_probe_us"], "tokens": o["tokens"]})
            print(f"{name} round {rnd} {variant}: outside {100 * o['gpu_idle_frac']:.1f}%, "
                  f"{o['decode_tokens_per_s']:.1f} tok/s (timed {r.decode_tokens_per_s:.1f}), probe "
                  f"{o['host_probe_us']:.1f} µs", flush=True)
    runs.EventTimer = NEW
    Path(args.out).write_text(json.dumps(doc, indent=1))
