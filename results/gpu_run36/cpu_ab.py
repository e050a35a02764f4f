"""The same A/B as ab_views.py on the CPU stand-in: one process, old (``hsd_bench_old``, made by
make_old_package.sh) and new alternating, the host's µs per token outside the stand-in's replays
(``bench.launches.host_time_per_token``, the minimum of 3 passes per round; level split off, as on
CUDA), on count_launches.py's workload (2 HumanEval prompts × 64 tokens, the methods part's
configurations).

    python results/gpu_run36/cpu_ab.py hispec 6
"""
import importlib, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
import torch
import bench_gpu
from hsd_bench.bench.models import load_hf
torch.set_num_threads(1)
method = sys.argv[1]; rounds = int(sys.argv[2])
hf_t, tok = load_hf("checkpoints/ee-24x128", torch.device("cpu"), torch.float32)
hf_d, _ = load_hf("checkpoints/family-2x128", torch.device("cpu"), torch.float32)
hf_m, _ = load_hf("checkpoints/family-6x128", torch.device("cpu"), torch.float32)
prompts, stop, codec = bench_gpu.dataset_workload("humaneval", 2, tok)
ctx = bench_gpu.context_for(max(map(len, prompts)), 64)
specs = bench_gpu.engine_specs(24, 6, 3, 6, 4, 2, 4, draft=True, mid=True)
sides = {}
for pkg in ("hsd_bench", "hsd_bench_old"):
    L = importlib.import_module(pkg + ".bench.launches"); M = importlib.import_module(pkg + ".methods")
    N = importlib.import_module(pkg + ".models.native"); S = importlib.import_module(pkg + ".sampling")
    meas = importlib.import_module(pkg + ".measure")
    mk = lambda hf, name: N.from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN, fixed_shapes=True)
    t = mk(hf_t, "target"); o = {"draft": mk(hf_d, "draft"), "mid": mk(hf_m, "mid")}
    graphs = L.stand_in_graphs([t, *o.values()])
    spec = M.MethodSpec(**{k: getattr(specs[method], k) for k in specs[method].__dataclass_fields__})
    e = M.build_engine(spec, t, load_other=lambda p: (o[p], None), target_codec=codec)
    e.level_split = False
    meas.prepare([e], prompts, 64, S.DecodingConfig(), 1, stop_sequences=stop, tokenizer=codec)
    sides[pkg] = (L, e, graphs, S.DecodingConfig())
res = {k: [] for k in sides}
for r in range(rounds):
    for k in (sides if r % 2 == 0 else list(sides)[::-1]):
        L, e, g, d = sides[k]
        res[k].append(min(L.host_time_per_token(e, g, prompts, 64, d, stop, codec, passes=3)["passes_us_per_token"]))
ratio = [a / b for a, b in zip(res["hsd_bench"], res["hsd_bench_old"])]
print(method, "new", [round(x) for x in res["hsd_bench"]], "old", [round(x) for x in res["hsd_bench_old"]],
      "new/old median", round(statistics.median(ratio), 3), "min-max", round(min(ratio), 3), round(max(ratio), 3))
