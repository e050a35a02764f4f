"""Where the host's time goes on a GPU host, line by line, with a sampling profiler (py-spy).

    py-spy record --nonblocking -r 1000 -f raw -o OUT/raw.txt -- python results/gpu_run37/spy_host.py OUT [target]

Why a sampler: cProfile (scripts/profile_host.py) adds a hook to every Python call, and the
host path of HiSpec makes about 440 calls per token, so it inflates exactly the small calls in
question; the CPU stand-in (scripts/count_launches.py) runs every fill and copy as real CPU work.
A sampler reads the stacks from outside at a fixed rate, so the share of samples at a line is the
share of the host's time spent there, C calls (launches, views, syncs) included.

The engines are bench_gpu.py's methods part's (bf16, CUDA graphs, one attention span, the
HumanEval workload). Per method: ``measure.prepare`` (compile, capture, warm-up), the decode rate
over ``measure.timed_passes`` (run.py's timing) before the sampled loop, then ``SECONDS`` of plain
passes inside a function named after the method (``sampled_<method>``), which the analysis
(``spy_analyze.py``) selects frames by. Writes ``rates.json``.
"""
import json, os, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
import torch

import bench_gpu  # noqa: E402
from hsd_bench import measure  # noqa: E402
from hsd_bench.bench.models import load_hf  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.models.native import from_hf_model  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
target_path = sys.argv[2] if len(sys.argv) > 2 else "checkpoints/ee-24x128"
METHODS = os.environ.get("METHODS", "autoregressive,hispec,hierarchy,vanilla_sd").split(",")
SECONDS = float(os.environ.get("SECONDS", 20))
PROMPTS, NEW = 8, 128
dev = torch.device(os.environ.get("DEV", "cuda"))
dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32

hf_t, tok = load_hf(target_path, dev, dtype)
prompts, stop, codec = bench_gpu.dataset_workload("humaneval", PROMPTS, tok)
ctx = bench_gpu.context_for(max(map(len, prompts)), NEW)
mk = lambda hf, name, **kw: from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN, **kw)
target = mk(hf_t, "target")
others = {p: mk(load_hf(path, dev, dtype)[0], p, attention=target.attention, prefill=target.prefill)
          for p, path in (("draft", "checkpoints/family-2x128"), ("mid", "checkpoints/family-6x128"))}
specs = bench_gpu.engine_specs(hf_t.config.num_hidden_layers, 6, 3, 6, 4, 2, 4, draft=True, mid=True)
engines = {m: build_engine(specs[m], target, load_other=lambda p: (others[p], None), target_codec=codec) for m in METHODS}
dec = DecodingConfig()
measure.prepare(list(engines.values()), prompts, NEW, dec, 1, stop_sequences=stop, tokenizer=codec)


def passes(engine, until: float) -> tuple[int, float, int]:
    tokens, decode, n = 0, 0.0, 0
    while n == 0 or time.perf_counter() < until:
        for p in prompts:
            g = engine.generate(p, NEW, dec, stop_sequences=stop, tokenizer=codec)
            tokens += g.stats.n_generated
            decode += g.stats.decode_s
        n += 1
    return tokens, decode, n


def sampled(method: str):
    # one function per method, so the analysis can tell their frames apart by name
    def run(until):
        return passes(engines[method], until)
    run.__name__ = run.__qualname__ = f"sampled_{method}"
    run.__code__ = run.__code__.replace(co_name=f"sampled_{method}", co_qualname=f"sampled_{method}") \
        if hasattr(run.__code__, "co_qualname") else run.__code__.replace(co_name=f"sampled_{method}")
    return run


rates = {}
for m in METHODS:
    timed = list(measure.timed_passes(engines[m], prompts, NEW, dec, 3, stop_sequences=stop, tokenizer=codec))
    gens = [t.generation for _, t in timed]
    before = sum(g.stats.n_generated for g in gens) / sum(g.stats.decode_s for g in gens)
    probes = [p for _, t in timed for p in (t.host_probe_us or [])]
    t0 = time.perf_counter()
    tokens, decode, n = sampled(m)(t0 + SECONDS)
    rates[m] = {"timed_decode_tok_s": before, "host_probe_us": statistics.median(probes) if probes else None,
                "sampled_tokens": tokens, "sampled_decode_s": decode, "sampled_passes": n,
                "sampled_decode_tok_s": tokens / decode, "sampled_wall_s": time.perf_counter() - t0}
    print(f"[spy] {m}: timed {before:.1f} tok/s, sampled {tokens / decode:.1f} tok/s ({n} passes, {tokens} tokens)",
          flush=True)
    (out / "rates.json").write_text(json.dumps(rates, indent=1))
