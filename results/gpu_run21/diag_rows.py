"""Diagnosis (not part of the project): device time of one greedy verification step
(run_layers_greedy from ids, graph replay) against its padded row count, on random weights of the
294 M shape (gpu-24x1024) and the 5.6 M shape, bf16. usage: diag_rows.py OUT.json"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import torch
from transformers import LlamaForCausalLM
import bench_gpu
from hsd_bench.training.config import get_preset
torch.manual_seed(0)
res = {}
for preset in (sys.argv[2].split(",") if len(sys.argv) > 2 else ("gpu-24x1024", "ee-24x128")):
    if preset.startswith("random:"):
        hf, _ = bench_gpu.load_hf(preset, "cuda", torch.bfloat16, seed=0)
        cfg = hf.config
    else:
        shape = get_preset(preset).shape
        cfg = shape.llama_config(bos_token_id=1, eos_token_id=2)
        hf = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    nat = bench_gpu.make_native(hf, preset, 512, bench_gpu.BACKEND_OPTIONS["variant"])
    L = nat.num_layers
    nat.prepare(400, [(0, L)], verifying=[(0, L)])
    ids = torch.randint(0, cfg.vocab_size, (300,), device="cuda")
    nat.reset()
    h = nat.run_layers(nat.embed(ids[:200]), 0, L, 0)
    torch.cuda.synchronize()
    rows = {}
    sizes = [1, 2, 4, 5, 8, 9, 16]
    for rep in range(3):
        for t in sizes:
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
            for w in range(5):
                nat.truncate(0, L, 200); nat.run_layers_greedy(ids[200:200 + t], 0, L, 200, keep_hidden=False)
            torch.cuda.synchronize()
            n = 100
            ev[0].record()
            for i in range(n):
                nat.truncate(0, L, 200)
                nat.run_layers_greedy(ids[200:200 + t], 0, L, 200, keep_hidden=False)
            ev[1].record(); torch.cuda.synchronize()
            rows.setdefault(t, []).append(ev[0].elapsed_time(ev[1]) / n * 1000)
    res[preset] = {t: sorted(v) for t, v in rows.items()}
    print(preset, {t: round(min(v), 1) for t, v in rows.items()}, "graphs", nat.num_graphs(), flush=True)
    del nat, hf; torch.cuda.empty_cache()
json.dump(res, open(sys.argv[1], "w"), indent=1)
