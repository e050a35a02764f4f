"""Diagnosis (not part of the project): where a verification step's extra device time goes.

Why: a greedy verification step of 2-8 rows costs 1.4-1.9x a one-row decode step on every shape
the twenty-first run measured (294 M shape: 570 us for one row, 920-1155 us for 2-8), where a
bandwidth-bound step of a few rows should cost about one row's. The one-row step runs the
project's kernels (GEMV, decode attention, add + norm), a multi-row step cuBLAS and the compiled
attention; which of them holds the difference decides what a kernel for 2-8 rows would recover.
This times ``run_layers_greedy`` from ids over every layer (graph replays, as
``results/gpu_run21/diag_rows.py``) per row count, then sums a CUDA-only profile of 20 more
replays per row count by kernel class.

    python3 results/gpu_run49/diag_step_kernels.py OUT.json [preset,...]   # default gpu-24x1024

Random bf16 weights of the preset's shape (``random:llama-1b`` for the 1B shape); no timing
includes compilation or capture (``prepare`` captures every step first, then warm-up replays).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CLASSES = (  # first match wins, on the kernel's lower-cased name
    ("gemv (ours)", ("gemv",)),
    ("decode attention (ours)", ("decode_attention", "attention_kernel")),
    ("add + norm (ours)", ("add_norm",)),
    ("cuBLAS GEMM", ("nvjet", "gemm", "cutlass", "xmma", "sm90_", "splitk", "ampere")),
    ("inductor (compiled)", ("triton_",)),
    ("copies / fills", ("memcpy", "memset", "copy", "fill")),
)


def kernel_class(name: str) -> str:
    low = name.lower()
    for label, keys in CLASSES:
        if any(k in low for k in keys):
            return label
    return "other"


def by_class(kernels: dict[str, float], replays: int) -> dict[str, float]:
    """Microseconds per replay by kernel class, from total microseconds per kernel name."""
    out: dict[str, float] = {}
    for name, us in kernels.items():
        out[kernel_class(name)] = out.get(kernel_class(name), 0.0) + us / replays
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def profile_summary(prof, replays: int, top: int) -> dict:
    """A profile's device time per replay by kernel class (:func:`by_class`) and its ``top`` kernels."""
    kernels = {}
    for ev in prof.key_averages():
        us = getattr(ev, "device_time_total", None)
        if us is None:
            us = getattr(ev, "cuda_time_total", 0.0)
        if us:
            kernels[ev.key] = float(us)
    largest = sorted(kernels.items(), key=lambda kv: -kv[1])[:top]
    return {"by_class_us": by_class(kernels, replays), "top_kernels_us": {k: v / replays for k, v in largest}}


def random_model(preset: str, device):
    """Random bf16 weights of a shape: ``random:<shape>`` as the benchmark builds them, else a
    training preset's (``gpu-24x1024``: the 294 M shape). Returns ``(hf_model, config)``."""
    import torch
    from transformers import LlamaForCausalLM

    import bench_gpu
    from hsd_bench.training.config import get_preset

    if preset.startswith("random:"):
        hf, _ = bench_gpu.load_hf(preset, str(device), torch.bfloat16, seed=0)
        return hf, hf.config
    cfg = get_preset(preset).shape.llama_config(bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).to(device, torch.bfloat16).eval(), cfg


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import bench_gpu

    out_path = Path(sys.argv[1])
    presets = sys.argv[2].split(",") if len(sys.argv) > 2 else ["gpu-24x1024"]
    torch.manual_seed(0)
    res: dict = {}
    for preset in presets:
        hf, cfg = random_model(preset, "cuda")
        nat = bench_gpu.make_native(hf, preset, 512, bench_gpu.BACKEND_OPTIONS["variant"])
        layers = nat.num_layers
        nat.prepare(400, [(0, layers)], verifying=[(0, layers)])
        ids = torch.randint(0, cfg.vocab_size, (300,), device="cuda")
        nat.reset()
        nat.run_layers(nat.embed(ids[:200]), 0, layers, 0)
        torch.cuda.synchronize()

        def step(t: int) -> None:
            nat.truncate(0, layers, 200)
            nat.run_layers_greedy(ids[200:200 + t], 0, layers, 200, keep_hidden=False)

        sizes = [1, 2, 4, 5, 8]
        timed: dict[int, list[float]] = {}
        for _ in range(3):
            for t in sizes:
                for _ in range(5):
                    step(t)
                torch.cuda.synchronize()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(100):
                    step(t)
                end.record()
                torch.cuda.synchronize()
                timed.setdefault(t, []).append(start.elapsed_time(end) / 100 * 1000)
        profiled: dict[int, dict] = {}
        for t in sizes:
            for _ in range(5):
                step(t)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(20):
                    step(t)
                torch.cuda.synchronize()
            profiled[t] = profile_summary(prof, 20, 12)
        res[preset] = {"step_us": {t: sorted(v) for t, v in timed.items()}, "profile": profiled}
        print(preset, {t: round(min(v), 1) for t, v in timed.items()}, flush=True)
        for t in sizes:
            print(f"  {t} rows:", {k: round(v, 1) for k, v in profiled[t]["by_class_us"].items()}, flush=True)
        out_path.write_text(json.dumps(res, indent=1))
        del nat, hf
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
