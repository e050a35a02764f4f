"""Diagnosis (not part of the project): a verification step's device time with the decode
attention kernel taking several positions (``decode_attention.MAX_ROWS = [16]``, the code as
shipped from this run) against the one-row kernel alone (``[1]``, the code before: several-row
steps on the compiled "math" attention), in one process.

Why: the forty-ninth run split a 2-8-row step of the 294 M shape into cuBLAS projections and
compiled kernels; of the latter, RoPE with the cache write, the transposes, q.Kt, the softmax and
p.V (five launches a layer, about 9 us) are the attention the one-row step does in one kernel.
This times ``run_layers_greedy`` from ids over every layer (graph replays, as
``results/gpu_run49/diag_step_kernels.py``), both models built from the same weights, their steps
captured with their own setting, timed in alternating blocks of 100 replays (best of three per
model), then a CUDA-only profile of 20 replays of a 5-row step of each by kernel class. Each
model's greedy tokens of a 5- and a 16-row step are kept too (random weights: a reading of how
often the rounding change moves an argmax, not a parity measurement).

    python3 results/gpu_run50/diag_rows_attention.py OUT.json [preset,...]   # default gpu-24x1024

Random bf16 weights of the preset's shape (``random:llama-1b`` for the 1B shape); no timing
includes compilation or capture (``prepare`` captures every step first, then warm-up replays).
``PROFILE_ROWS=2,4,8`` profiles those step sizes instead of 5 alone (``results/gpu_run51/call51_2.sh``:
why a 2- or 4-row step of the 294 M shape took longer than an 8-row one on an H200).
``DEV=cpu``: a dry run of the script through Triton's interpreter (``TRITON_INTERPRET=1``, preset
``tiny``), wall-clock timed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "results" / "gpu_run49"))

SIZES = [1, 2, 4, 5, 8, 16]
SETTINGS = {"several": 16, "one": 1}  # decode_attention.MAX_ROWS while a model's steps are captured


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import bench_gpu
    from diag_step_kernels import profile_summary, random_model
    from hsd_bench.models.native import decode_attention

    dev = torch.device(os.environ.get("DEV", "cuda"))
    if dev.type == "cpu":  # the dry run: the kernels through Triton's interpreter
        from hsd_bench.models.native import gemv

        gemv.CPU_INTERPRETER[0] = True

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def block_us(fn, n: int) -> float:
        """Microseconds per call of ``n`` back-to-back calls, the device synchronised around them."""
        sync()
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            sync()
            return start.elapsed_time(end) / n * 1000
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    out_path = Path(sys.argv[1])
    presets = sys.argv[2].split(",") if len(sys.argv) > 2 else ["gpu-24x1024"]
    torch.manual_seed(0)
    res: dict = {}
    for preset in presets:
        hf, cfg = random_model(preset, dev)
        ids = torch.randint(0, cfg.vocab_size, (300,), device=dev)
        models = {}
        for name, rows in SETTINGS.items():
            decode_attention.MAX_ROWS[0] = rows
            nat = bench_gpu.make_native(hf, preset, 512, bench_gpu.BACKEND_OPTIONS["variant"])
            layers = nat.num_layers
            nat.prepare(400, [(0, layers)], verifying=[(0, layers)])
            nat.reset()
            nat.run_layers(nat.embed(ids[:200]), 0, layers, 0)
            models[name] = nat
        decode_attention.MAX_ROWS[0] = 16
        sync()

        rows_of = {id(nat): SETTINGS[name] for name, nat in models.items()}

        def step(nat, t: int):
            decode_attention.MAX_ROWS[0] = rows_of[id(nat)]  # a step captured late gets its model's setting
            nat.truncate(0, layers, 200)
            return nat.run_layers_greedy(ids[200:200 + t], 0, layers, 200, keep_hidden=False)

        agree = {}
        for t in (5, 16):
            toks = {name: step(nat, t) for name, nat in models.items()}
            agree[t] = {name: [int(x) for x in v[1].reshape(-1).tolist()] for name, v in toks.items()}
        timed: dict[str, dict[int, list[float]]] = {name: {} for name in models}
        reps = 100 if dev.type == "cuda" else 2
        for _ in range(3):
            for t in SIZES:
                for name, nat in models.items():
                    for _ in range(5 if dev.type == "cuda" else 1):
                        step(nat, t)
                    timed[name].setdefault(t, []).append(block_us(lambda: step(nat, t), reps))
        profiled: dict[str, dict] = {}
        profile_rows = [int(t) for t in os.environ.get("PROFILE_ROWS", "5").split(",")]  # 5: gamma = 4's verification
        for t in profile_rows:
            for name, nat in models.items():
                for _ in range(5):
                    step(nat, t)
                sync()
                with profile(activities=[ProfilerActivity.CUDA if dev.type == "cuda" else ProfilerActivity.CPU]) as prof:
                    for _ in range(20):
                        step(nat, t)
                    sync()
                profiled[f"{name}/{t}"] = profile_summary(prof, 20, 14)
        best = {name: {t: min(v) for t, v in per.items()} for name, per in timed.items()}
        res[preset] = {"step_us": {name: {t: sorted(v) for t, v in per.items()} for name, per in timed.items()},
                       "several_over_one": {t: best["several"][t] / best["one"][t] for t in SIZES},
                       "greedy_tokens": agree, "profile": profiled}
        print(preset, {name: {t: round(v, 1) for t, v in b.items()} for name, b in best.items()}, flush=True)
        print("  several/one:", {t: round(r, 3) for t, r in res[preset]["several_over_one"].items()}, flush=True)
        for key, p in profiled.items():
            print(f"  {key}:", {k: round(v, 1) for k, v in p["by_class_us"].items()}, flush=True)
        out_path.write_text(json.dumps(res, indent=1))
        del models, nat, hf
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
