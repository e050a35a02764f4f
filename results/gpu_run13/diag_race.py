"""Diagnosis (not part of the project): is the loop-vs-engine mismatch of call 3 (8B, pdl + add_norm)
a race (outputs change run to run) or arithmetic? Per variant (see diag_pdl.patches): loop twice,
engine AR twice (run.py's timing path), outputs compared, divergences classified.
usage: diag_race.py SPEC OUTDIR VARIANTS"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from hsd_bench.bench.models import load_hf, prompts_for
from hsd_bench.bench.runs import native_loop, engine_run
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model, gemv, add_norm
from hsd_bench.parity import classify

spec, out = sys.argv[1], Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
names = sys.argv[3].split(",")
dev = torch.device("cuda")
hf, _ = load_hf(spec, dev, torch.bfloat16)
prompts = prompts_for(None, hf.config.vocab_size, 1, 128, seed=0)
norm_max = add_norm.MAX_HIDDEN

def patches(name):
    parts = name.split("+")
    gemv.PROGRAMMATIC_LAUNCH[0] = parts[0] == "pdl"
    add_norm.MAX_HIDDEN = 0 if "inductor" in parts else norm_max
    torch._dynamo.reset()

res = {}
for name in names:
    patches(name)
    m = from_hf_model(hf, name="target", max_context=128 + 256 + 16, min_kv_bucket=512, attention="triton", matmul="gemv")
    l1 = native_loop("l", m, prompts, 256, reps=1); l2 = native_loop("l", m, prompts, 256, reps=1)
    eng = build_engine(MethodSpec("autoregressive"), m, load_other=None)
    e1 = engine_run("e", eng, "autoregressive", prompts, 256, 1); e2 = engine_run("e", eng, "autoregressive", prompts, 256, 1)
    m2 = from_hf_model(hf, name="target", max_context=128 + 256 + 16, min_kv_bucket=512, attention="triton", matmul="gemv")
    l3 = native_loop("l", m2, prompts, 256, reps=1)
    r = {"loop_rate": l1.decode_tokens_per_s, "engine_rate": e1.decode_tokens_per_s,
         "loop_repeat_equal": l1.outputs == l2.outputs, "loop_new_model_equal": l1.outputs == l3.outputs,
         "engine_repeat_equal": e1.outputs == e2.outputs,
         "loop_vs_engine": classify(m, prompts, e1.outputs, l1.outputs),
         "outputs": {"loop": l1.outputs[0][:64], "engine": e1.outputs[0][:64]}}
    res[name] = r
    print(name, json.dumps({k: v for k, v in r.items() if k != "outputs"}), flush=True)
    m = m2 = eng = None
names0 = names[0]
for name in names[1:]:
    res[name]["engine_vs_first_engine"] = res[name]["outputs"]["engine"] == res[names0]["outputs"]["engine"]
    res[name]["loop_vs_first_loop"] = res[name]["outputs"]["loop"] == res[names0]["outputs"]["loop"]
    print(name, "vs", names0, res[name]["engine_vs_first_engine"], res[name]["loop_vs_first_loop"])
json.dump(res, open(out / "diag_race.json", "w"), indent=1)
