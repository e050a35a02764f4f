"""GEMV tiles in the model: the AR loop (and engine AR) of random real shapes under tile sets.

    python3 .ext/diag_tiles.py --out $OUT/tiles.json --shapes llama-8b,llama-1b

One model per shape, compiled once; each tile set recaptures the graphs (a fresh GraphCache:
a captured launch keeps its tiles) and runs native_loop (2 prompts x 128, 256 new, warm-up
untimed, median of --reps), round robin over sets --rounds times. Then engine AR for the
baseline and the best set, alternated. Bandwidth share as the roofline part computes it.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_gpu  # noqa: E402
from hsd_bench.bench.models import load_hf, prompts_for  # noqa: E402
from hsd_bench.bench.runs import engine_run, native_loop  # noqa: E402
from hsd_bench.bench.timing import copy_bandwidth  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.models.native import gemv  # noqa: E402
from hsd_bench.models.native.graphs import GraphCache  # noqa: E402

C = gemv.GemvConfig
ORIG = gemv.default_config

QKV8, O8, GU8, DN8 = (6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)
QKV1, O1, GU1, DN1 = (3072, 2048), (2048, 2048), (16384, 2048), (2048, 8192)
SETS = {
    "llama-8b": {
        "base": {},
        "A_one_all": {QKV8: C(2, 4096, 8), O8: C(2, 4096, 8), GU8: C(2, 4096, 8)},
        "B_bn1_gu2": {QKV8: C(1, 4096, 8), O8: C(1, 4096, 8), GU8: C(2, 4096, 8)},
        "C_bn1_gu1": {QKV8: C(1, 4096, 8), O8: C(1, 4096, 8), GU8: C(1, 4096, 8)},
        "D_bn1_gu4": {QKV8: C(1, 4096, 8), O8: C(1, 4096, 8), GU8: C(4, 4096, 8)},
        "E_B_down1": {QKV8: C(1, 4096, 8), O8: C(1, 4096, 8), GU8: C(2, 4096, 8), DN8: C(1, 16384, 8)},
        "F_B_down1w16": {QKV8: C(1, 4096, 8), O8: C(1, 4096, 8), GU8: C(2, 4096, 8), DN8: C(1, 16384, 16)},
        "G_w16": {QKV8: C(2, 4096, 16), O8: C(2, 4096, 16), GU8: C(2, 4096, 16)},
    },
    "llama-1b": {
        "base": {},
        "A_one_all_w4": {QKV1: C(2, 2048, 4), O1: C(2, 2048, 4), GU1: C(4, 2048, 4)},
        "B_bn1_gu4": {QKV1: C(1, 2048, 4), O1: C(1, 2048, 4), GU1: C(4, 2048, 4)},
        "C_bn1_gu2": {QKV1: C(1, 2048, 4), O1: C(1, 2048, 4), GU1: C(2, 2048, 4)},
        "D_bn1_gu2w8": {QKV1: C(1, 2048, 4), O1: C(1, 2048, 4), GU1: C(2, 2048, 8)},
        "E_B_down1": {QKV1: C(1, 2048, 4), O1: C(1, 2048, 4), GU1: C(4, 2048, 4), DN1: C(1, 8192, 8)},
        "F_B_down2": {QKV1: C(1, 2048, 4), O1: C(1, 2048, 4), GU1: C(4, 2048, 4), DN1: C(2, 8192, 8)},
        "G_bn1w2": {QKV1: C(1, 2048, 2), O1: C(1, 2048, 2), GU1: C(4, 2048, 4)},
    },
}


def use(tiles: dict) -> None:
    gemv.default_config = lambda n, k: tiles.get((n, k)) or ORIG(n, k)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="llama-8b,llama-1b")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engine", type=int, default=1, help="engine AR rounds for base and best")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--deadline-s", type=float, default=540)
    args = ap.parse_args()
    t_start = time.time()
    dev = torch.device("cuda")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"copy_bw": copy_bandwidth(dev), "shapes": {}}
    print(f"copy bw {doc['copy_bw'] / 1e12:.3f} TB/s", flush=True)
    for shape in args.shapes.split(","):
        use({})
        hf, _ = load_hf(f"random:{shape}", "cuda", torch.bfloat16)
        prompts = prompts_for(None, hf.config.vocab_size, 2, 128, seed=0)
        ctx = bench_gpu.context_for(128, 256)
        native = bench_gpu.make_native(hf, "target", ctx, "triton+gemv")
        del hf
        torch.cuda.empty_cache()
        kv = native.cache.nbytes_per_position() * (128 + 128)
        bpt = native.weight_bytes() + kv
        res = doc["shapes"][shape] = {"bytes_per_token": bpt, "loop": {}, "engine": {}}
        if args.profile:
            bench_gpu.profile_decode(native, prompts[0], 32, out.parent / f"profile_{shape}.txt")
        for rnd in range(args.rounds):
            order = list(SETS[shape].items())
            for name, tiles in (order if rnd % 2 == 0 else order[::-1]):
                if time.time() - t_start > args.deadline_s:
                    break
                use(tiles)
                native._graphs = GraphCache(dev)
                r = native_loop(f"{shape} {name}", native, prompts, 256, args.reps)
                rate = r.decode_tokens_per_s
                res["loop"].setdefault(name, []).append({"decode_tok_s": rate, "bw": bpt * rate / doc["copy_bw"],
                                                         "decode_s": r.decode_s, "outputs0": r.outputs[0][:32]})
                print(f"[{shape}] round {rnd} {name}: {rate:.1f} tok/s, {100 * bpt * rate / doc['copy_bw']:.1f} %",
                      flush=True)
                out.write_text(json.dumps(doc, indent=1))
        med = {n: sorted(x["decode_tok_s"] for x in v)[len(v) // 2] for n, v in res["loop"].items()}
        best = max(med, key=med.get)
        res["best"] = best
        for rnd in range(args.engine):
            for name in dict.fromkeys(["base", best]):
                if time.time() - t_start > args.deadline_s:
                    break
                use(SETS[shape][name])
                native._graphs = GraphCache(dev)
                eng = build_engine(MethodSpec("autoregressive"), native, load_other=None)
                r = engine_run(f"{shape} engine {name}", eng, "autoregressive", prompts, 256, args.reps)
                rate = r.decode_tokens_per_s or r.tokens_per_s
                res["engine"].setdefault(name, []).append({"tok_s": rate, "bw": bpt * rate / doc["copy_bw"]})
                print(f"[{shape}] engine {name}: {rate:.1f} tok/s, {100 * bpt * rate / doc['copy_bw']:.1f} %", flush=True)
                out.write_text(json.dumps(doc, indent=1))
        del native
        torch.cuda.empty_cache()
    out.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
