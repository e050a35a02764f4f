#!/usr/bin/env python3
"""Host launches per generated token for every engine method, on the graph path, without a GPU.

    python scripts/count_launches.py --out runs/launches                       # the benchmark's methods, CPU
    python scripts/count_launches.py --methods hispec --prompts 1 --max-new 32 --out /tmp/lc

Why: on the small models the device waits for the host's launches (the twenty-sixth GPU run:
HiSpec on the 5.6 M model leaves an H200 idle 30-50 % of its decode time between launches), and
the host's state moves any timing of that by up to a third between processes. The launches a
round issues -- fills, copies, clones, cats, graph replays, each a few µs of host time -- are a
property of the code: counted here on a CPU (``hsd_bench/bench/launches.py``), through the native
backend's fixed-shape steps with a graph stand-in, on the benchmark's methods part's models and
configurations (``bench_gpu.py --parts methods``: target, draft and middle model, E, γ, HiSpec's
exits, N_d, N_i, the HumanEval workload), AR in chunks of ``AR_CHUNK_CUDA`` as on CUDA. Only the
decode phase is counted; a replayed step's ops are its graph's, counted as one replay. Not counted:
the copy of each verdict into its pinned host buffer, which only CUDA makes (about one launch per
verification). Views (slices, selects, reshapes) launch nothing but cost the host a dispatcher
call each; they are counted apart, with their lines. Beside the counts, with ``--host-passes N``
(default 3; 0 leaves it out), the host's own time per token outside the step replays, the median
of N plain passes
(``launches.host_time_per_token``): a time of this machine's CPU, not a GPU host's, for comparing
two versions of the engine on one machine. Writes ``launches.json`` and ``launches.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_gpu, beside this script

import torch  # noqa: E402

import bench_gpu  # noqa: E402  (this folder: the benchmark's workload and method configurations)
from hsd_bench import measure  # noqa: E402
from hsd_bench.bench.launches import host_time_per_token, per_token, stand_in_graphs  # noqa: E402
from hsd_bench.bench.models import load_hf  # noqa: E402
from hsd_bench.engine import DecodingConfig  # noqa: E402
from hsd_bench.methods import AR_CHUNK_CUDA  # noqa: E402
from hsd_bench.models.native import from_hf_model  # noqa: E402

METHODS = ("autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="checkpoints/ee-24x128")
    p.add_argument("--draft", default="checkpoints/family-2x128", help="vanilla_sd's draft, the hierarchy's first level")
    p.add_argument("--mid-draft", default="checkpoints/family-6x128", help="the hierarchy's middle level")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--prompts", type=int, default=2, help="HumanEval prompts")
    p.add_argument("--max-new", type=int, default=64)
    p.add_argument("--exit", type=int, default=6, help="layerskip's exit")
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--hispec-exits", default="3,6")
    p.add_argument("--nd", type=int, default=2)
    p.add_argument("--ni", type=int, default=4)
    p.add_argument("--top", type=int, default=12, help="ops and lines listed per method")
    p.add_argument("--conditional-nodes", action="store_true",
                   help="count the path of CUDA graphs with conditional nodes (torch >= 2.12 on a GPU: a middle "
                        "level's guarded rounds are replays); default: without, the lent GPUs' torch 2.11")
    p.add_argument("--host-passes", type=int, default=3,
                   help="plain passes timing the host outside step replays (0: not timed)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    unknown = sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; valid: {', '.join(METHODS)}")
    for name in ("prompts", "max_new", "exit", "gamma", "nd", "ni", "top"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.host_passes < 0:
        p.error(f"--host-passes={args.host_passes} must be >= 0 (0: the host's time is not measured)")
    try:
        args.hispec_exits = [int(x) for x in args.hispec_exits.split(",")]
    except ValueError:
        p.error(f"--hispec-exits={args.hispec_exits!r}: two layer numbers, e.g. 3,6")
    if len(args.hispec_exits) != 2:
        p.error(f"--hispec-exits={args.hispec_exits}: two layer numbers (the draft's and the middle's exits)")
    return args


def markdown(doc: dict) -> str:
    nodes = "with conditional nodes" if doc.get("conditional_nodes") else "without conditional nodes"
    lines = [f"# Host launches per generated token: {doc['target']}, {doc['prompts']} HumanEval prompts × "
             f"{doc['max_new']} new tokens, decode phase, graph path (CPU stand-in, {nodes})", "",
             "| method | tokens | launches / token | graph replays / token | host reads / token | views / token "
             "| host µs / token outside replays (median; passes) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in doc["methods"].items():
        host = r.get("host_time")
        host_s = (f"{host['host_us_per_token']:.0f}; " + ", ".join(f"{v:.0f}" for v in host["passes_us_per_token"])
                  if host else "–")
        lines.append(f"| {name} | {r['tokens']} | {r['launches_per_token']:.2f} | {r['replays_per_token']:.2f} "
                     f"| {r['reads_per_token']:.2f} | {r['views_per_token']:.2f} | {host_s} |")
    if any(r.get("host_time") for r in doc["methods"].values()):
        lines += ["", "The host's µs are this machine's CPU time per generated token outside the step replays "
                  "(fills, copies, cats and their arithmetic included): a figure to compare two versions of the "
                  "engine on one machine, not a GPU host's time."]
    for name, r in doc["methods"].items():
        lines += ["", f"## {name}", "", "| op | per token |", "| --- | --- |"]
        lines += [f"| `{op}` | {v:.2f} |" for op, v in r["ops"].items()]
        lines += ["", "| line | per token |", "| --- | --- |"]
        lines += [f"| `{site}` | {v:.2f} |" for site, v in r["sites"].items()]
        lines += ["", "| line making views | per token |", "| --- | --- |"]
        lines += [f"| `{site}` | {v:.2f} |" for site, v in r["view_sites"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device, dtype = torch.device("cpu"), torch.float32
    hf_t, tok = load_hf(args.target, device, dtype)
    prompts, stop, codec = bench_gpu.dataset_workload("humaneval", args.prompts, tok)
    ctx = bench_gpu.context_for(max(map(len, prompts)), args.max_new)

    def native(hf, name):
        return from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN, fixed_shapes=True)

    target = native(hf_t, "target")
    others = {"draft": native(load_hf(args.draft, device, dtype)[0], "draft"),
              "mid": native(load_hf(args.mid_draft, device, dtype)[0], "mid")}
    graphs = stand_in_graphs([target, *others.values()], conditional_nodes=args.conditional_nodes)
    e_d, e_v = args.hispec_exits
    specs = bench_gpu.engine_specs(hf_t.config.num_hidden_layers, args.exit, e_d, e_v, args.gamma, args.nd, args.ni,
                                   draft=True, mid=True)
    # what run.py resolves on CUDA, where these launches cost the device its waits (on CPU AR
    # commits one token per round trip, methods.ar_chunk_for)
    specs["autoregressive"] = replace(specs["autoregressive"], ar_chunk=AR_CHUNK_CUDA)
    build = bench_gpu.engine_builder(specs, target, others, codec)
    doc = {"target": args.target, "draft": args.draft, "mid_draft": args.mid_draft, "prompts": len(prompts),
           "conditional_nodes": args.conditional_nodes,
           "max_new": args.max_new, "exit": args.exit, "gamma": args.gamma, "hispec_exits": args.hispec_exits,
           "nd": args.nd, "ni": args.ni, "methods": {}}
    decoding = DecodingConfig()
    for name in args.methods.split(","):
        t0 = time.perf_counter()
        engine = build(name)
        measure.prepare([engine], prompts, args.max_new, decoding, 1, stop_sequences=stop, tokenizer=codec)
        row = per_token(engine, graphs, prompts, args.max_new, decoding, stop, codec, top=args.top)
        if args.host_passes:
            row["host_time"] = host_time_per_token(engine, graphs, prompts, args.max_new, decoding, stop, codec,
                                                   passes=args.host_passes)
        doc["methods"][name] = row
        host = (f", host {row['host_time']['host_us_per_token']:.0f} µs per token outside replays"
                if args.host_passes else "")
        print(f"[count_launches] {name}: {row['tokens']} tokens, {row['launches_per_token']:.2f} launches per token "
              f"({row['replays_per_token']:.2f} graph replays), {row['views_per_token']:.2f} views{host}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        (out / "launches.json").write_text(json.dumps(doc, indent=1))
        (out / "launches.md").write_text(markdown(doc))
    print(f"[count_launches] wrote {out / 'launches.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
