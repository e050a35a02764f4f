"""Diagnosis (not part of the project): the twelfth run's step changes, A/B in one process.

Variants of the native AR loop (bench_gpu's native_loop: random weights of a real shape, 128-token
prompt, 256 new tokens), each built under its own patches, captured untimed, then measured in
rounds (order rotated per round), median decode tok/s:
  old      the eleventh run's step (math attention, one-reduction argmax, silu*mul its own kernel)
  argmax   + the two-reduction argmax
  attn     + the one-kernel decode attention (one program per KV head up to 512 slots)   [= call 5's default]
  gu       as attn, silu(gate) * up in the gate/up projection's epilogue   [= the new default]
  attn64   as attn, 64-slot chunks merged in the kernel
  fuse*    as attn, norms and residual adds fused into the projections on 4096-wide rows too (tiles)
usage: diag_attn.py SPEC OUTDIR VARIANTS ROUNDS [--profile]
"""
import json, sys, statistics as st, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
import torch.nn.functional as F
from hsd_bench.bench.models import load_hf, prompts_for
from hsd_bench.bench.runs import native_loop
from hsd_bench.bench.timing import copy_bandwidth
from hsd_bench.models.native import from_hf_model, gemv, decode_attention, layers
from hsd_bench.parity import classify

spec, out = sys.argv[1], Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
names = sys.argv[3].split(","); rounds = int(sys.argv[4]); want_profile = "--profile" in sys.argv
dev = torch.device("cuda")
copy_bw = copy_bandwidth(dev)
print(f"copy bandwidth {copy_bw/1e12:.3f} TB/s", flush=True)
print("attention check:", [decode_attention.check_against_eager(h, kv, hd, L, dev) for h, kv, hd, L in
                           ((32, 8, 64, 512), (32, 8, 128, 512), (32, 8, 64, 4096), (4, 2, 32, 384))], flush=True)
print("attention check window:", decode_attention.check_against_eager(32, 8, 128, 512, dev, window=100), flush=True)
hf, _ = load_hf(spec, dev, torch.bfloat16)
prompts = prompts_for(None, hf.config.vocab_size, 1, 128, seed=0)
def old_gate_up(x, w, b=None, norm=None, eps=0.0):
    gate, up = (gemv.linear(x, w, b) if norm is None else gemv.add_norm_linear(x, None, norm, eps, w, b)[0]).chunk(2, dim=-1)
    return F.silu(gate) * up

orig = {"gate_up": gemv.gate_up_silu, "argmax": layers.argmax_rows, "cfg": decode_attention.default_config, "fuse": gemv.FUSE_MAX_HIDDEN,
        "tiles": dict(gemv.TUNED_TILES)}
FUSE_TILES = {"fuse": None, "fuse4": (4, 1024), "fuse8": (8, 1024), "fuse8w": (8, 512)}

def patches(name):
    layers.argmax_rows = orig["argmax"] if name != "old" else (lambda s: s.argmax(dim=-1))
    decode_attention.default_config = orig["cfg"] if name != "attn64" else (
        lambda kv_len, hd: decode_attention.AttentionConfig(64, 64, 4 if hd <= 64 else 8))
    gemv.FUSE_MAX_HIDDEN = 8192 if name in FUSE_TILES else orig["fuse"]
    gemv.gate_up_silu = orig["gate_up"] if name.startswith("gu") else old_gate_up
    gemv.TUNED_TILES.clear(); gemv.TUNED_TILES.update(orig["tiles"])
    if FUSE_TILES.get(name):
        for nk in ((6144, 4096), (28672, 4096)):
            gemv.TUNED_TILES[nk] = FUSE_TILES[name]
    return "triton" if name.startswith(("attn", "fuse", "gu")) else "math"

models, res = {}, {}
for name in names:
    attn = patches(name)
    torch._dynamo.reset()
    t0 = time.time()
    m = from_hf_model(hf, name="target", max_context=128 + 256 + 16, min_kv_bucket=512, attention=attn, matmul="gemv")
    r = native_loop(name, m, prompts, 256, reps=1)
    models[name] = m
    res[name] = {"rates": [], "attention": m.attention_kernel(), "matmul": m.matmul_kernel(), "outputs": r.outputs,
                 "build_s": time.time() - t0}
    print(name, "built", res[name]["attention"], f"{r.decode_tokens_per_s:.1f}", flush=True)
patches("attn")
for i in range(rounds):
    order = names[i % len(names):] + names[:i % len(names)]
    for name in (order if i % 2 == 0 else order[::-1]):
        r = native_loop(name, models[name], prompts, 256, reps=1)
        res[name]["rates"].append(r.decode_tokens_per_s)
m0 = models[names[0]]
bpt = m0.weight_bytes() + m0.cache.nbytes_per_position() * (128 + 128)
for name in names:
    d = res[name]
    d["median"] = st.median(d["rates"]); d["over_first"] = d["median"] / res[names[0]]["median"]
    d["bw_fraction"] = d["median"] * bpt / copy_bw
    d["parity_vs_first"] = classify(m0, prompts, res[names[0]]["outputs"], d["outputs"]) if name != names[0] else None
    print(name, json.dumps({k: v for k, v in d.items() if k != "outputs"}, default=str), flush=True)
json.dump({"spec": spec, "copy_bw": copy_bw, "bytes_per_token": bpt, "variants": res}, open(out / "diag_attn.json", "w"),
          indent=1, default=str)
if want_profile:
    from torch.profiler import ProfilerActivity, profile
    m = models[names[-1]]
    depth = m.num_layers
    p = prompts[0]
    m.reset()
    h = m.run_layers(m.embed(torch.tensor(p, device=dev)), 0, depth, 0)
    tok = m.greedy_tokens(h[:, -1:])
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for pos in range(len(p), len(p) + 32):
            h = m.run_layers(m.embed(tok), 0, depth, pos)
            tok = m.greedy_tokens(h)
        torch.cuda.synchronize()
    (out / f"profile_{names[-1]}.txt").write_text(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30,
                                                                            max_name_column_width=70))
    print("profile written", flush=True)
