"""Diagnosis (not part of the project): programmatic dependent launch on/off, A/B in one process.

Variants of the native AR loop (bench_gpu's native_loop: random weights of a real shape, 128-token
prompt, 256 new tokens), each built under its own setting, captured untimed, then measured in
rounds (order rotated per round), median decode tok/s:
  LAUNCH[+inductor][+unfused] (see patches)
usage: diag_pdl.py SPEC OUTDIR VARIANTS ROUNDS [--profile]
"""
import json, sys, statistics as st, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.models import load_hf, prompts_for
from hsd_bench.bench.runs import native_loop
from hsd_bench.bench.timing import copy_bandwidth
from hsd_bench.models.native import from_hf_model, gemv
from hsd_bench.parity import classify

spec, out = sys.argv[1], Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
names = sys.argv[3].split(","); rounds = int(sys.argv[4]); want_profile = "--profile" in sys.argv
dev = torch.device("cuda")
copy_bw = copy_bandwidth(dev)
print(f"copy bandwidth {copy_bw/1e12:.3f} TB/s", flush=True)
hf, _ = load_hf(spec, dev, torch.bfloat16)
prompts = prompts_for(None, hf.config.vocab_size, 1, 128, seed=0)

from hsd_bench.models.native import add_norm
norm_max = add_norm.MAX_HIDDEN

def patches(name):
    """LAUNCH[+inductor][+unfused]: pdl / plain launches; +inductor: wide rows' add + norm compiled by
    inductor (the twelfth run's step) instead of add_norm.py's kernel; +unfused: every width unfused."""
    parts = name.split("+")
    gemv.PROGRAMMATIC_LAUNCH[0] = parts[0] == "pdl"
    add_norm.MAX_HIDDEN = 0 if "inductor" in parts else norm_max
    torch._dynamo.reset()

models, res = {}, {}
for name in names:
    patches(name)
    t0 = time.time()
    m = from_hf_model(hf, name="target", max_context=128 + 256 + 16, min_kv_bucket=512, attention="triton", matmul="gemv")
    r = native_loop(name, m, prompts, 256, reps=1)
    models[name] = m
    res[name] = {"rates": [], "attention": m.attention_kernel(), "matmul": m.matmul_kernel(), "outputs": r.outputs,
                 "build_s": time.time() - t0}
    print(name, "built", res[name]["attention"], f"{r.decode_tokens_per_s:.1f}", flush=True)
for i in range(rounds):
    order = names[i % len(names):] + names[:i % len(names)]
    for name in (order if i % 2 == 0 else order[::-1]):
        r = native_loop(name, models[name], prompts, 256, reps=1)
        res[name]["rates"].append(r.decode_tokens_per_s)
        res[name].setdefault("outputs_stable", True)
        res[name]["outputs_stable"] &= r.outputs == res[name]["outputs"]
m0 = models[names[0]]
bpt = m0.weight_bytes() + m0.cache.nbytes_per_position() * (128 + 128)
for name in names:
    d = res[name]
    d["median"] = st.median(d["rates"]); d["over_first"] = d["median"] / res[names[0]]["median"]
    d["bw_fraction"] = d["median"] * bpt / copy_bw
    d["outputs_equal_first"] = d["outputs"] == res[names[0]]["outputs"]
    d["parity_vs_first"] = classify(m0, prompts, res[names[0]]["outputs"], d["outputs"]) if name != names[0] else None
    print(name, json.dumps({k: v for k, v in d.items() if k != "outputs"}, default=str), flush=True)
json.dump({"spec": spec, "copy_bw": copy_bw, "bytes_per_token": bpt, "variants": res}, open(out / "diag_pdl.json", "w"),
          indent=1, default=str)
if want_profile:
    from torch.profiler import ProfilerActivity, profile
    for name in names:
        m = models[name]
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
        (out / f"profile_{name}.txt").write_text(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25,
                                                                           max_name_column_width=70))
    print("profile written", flush=True)
