#!/usr/bin/env python3
"""What host work between timed generations costs: one process, the same engines, the same prompts.

    python scripts/diag_timing_gap.py --model checkpoints/ee-24x128 --out $OUT/diag.json   # on a GPU
    python scripts/diag_timing_gap.py --conditions b2b,run_py_before --threads 16,1 ...

Why: ``run.py`` timed the shipped 5.6 M model 9-18 % below ``bench_gpu.py`` on an
H200 although both time through ``measure.timed_generate``. This script builds
``run.py``'s engines (AR and layerskip) on ``run.py``'s HumanEval workload once, then
times them under each *condition* -- what happens between two timed generations --
so only that differs: decoder after decoder with nothing in between (the
benchmark), alternating sample by sample, scoring in line, scoring on a
background thread, a pause, an fsync, an untimed pre-roll. Every condition runs
``--reps`` passes over all prompts; the JSON has tokens/s, decode tokens/s and the
mean prefill per method. ``docs/performance.md`` ("How a run is timed", rule 4)
has what it found; ``results/gpu_run4/timing_gap/`` the three calls.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from hsd_bench import measure, parity, runner  # noqa: E402
from hsd_bench.api import ModelPool, truncate_at_stop  # noqa: E402
from hsd_bench.config import register_schemas  # noqa: E402
from hsd_bench.methods import MethodSpec, build_engine  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402
from hsd_bench.tasks.base import get_task  # noqa: E402

BOTH = ("autoregressive", "layerskip")
# name -> (decoders, what happens after each timed generation; "alternate": sample-major order)
CONDITIONS = {
    "b2b": (BOTH, ""),
    "alternate": (BOTH, "alternate"),
    "sleep": (("autoregressive",), "sleep"),
    "score": (("autoregressive",), "score"),
    "fsync": (("autoregressive",), "fsync"),
    "run_py_before": (BOTH, "alternate score fsync explain"),  # run.py's loop before deferred scoring
    "run_py_before_preroll": (BOTH, "alternate score fsync explain preroll"),
    "sleep_preroll": (("autoregressive",), "sleep preroll"),
    "background": (BOTH, "background fsync explain"),  # scores on a thread beside the next generations
    "alternate_background": (BOTH, "alternate background fsync explain"),
    "deferred_scoring": (BOTH, "fsync explain"),  # run.py now: the row written, scores after the last
    "b2b_again": (BOTH, ""),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/ee-24x128")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--limit", type=int, default=8, help="HumanEval samples (run.py's dataset.limit)")
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1", help="comma-separated intra-op CPU thread counts, run in this order")
    ap.add_argument("--conditions", default="b2b,deferred_scoring,b2b_again",
                    help=f"comma-separated, in order, of {', '.join(CONDITIONS)}")
    ap.add_argument("--out", default="diag_timing_gap.json")
    args = ap.parse_args(argv)
    unknown = [c for c in args.conditions.split(",") if c not in CONDITIONS]
    if unknown:
        ap.error(f"unknown condition(s) {', '.join(unknown)}; valid: {', '.join(CONDITIONS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    register_schemas()
    overrides = [f"model.path={args.model}", f"model.device={args.device}", f"model.dtype={args.dtype}",
                 "dataset=humaneval", f"dataset.limit={args.limit}", f"max_new_tokens={args.max_new}",
                 "method=layerskip", "exit=6", "method.draft_len=4", "results_dir=/tmp/diag_timing_gap"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = runner._as_container(compose("config", overrides=overrides))
    task = get_task("humaneval")
    samples = task.load(runner._Attr(cfg["dataset"]))
    target, codec = ModelPool(runner.model_spec(cfg)).get(args.model)
    engines = {"autoregressive": build_engine(MethodSpec("autoregressive"), target, None, codec),
               "layerskip": build_engine(runner.method_spec(cfg), target, None, codec)}
    decoding, stop = DecodingConfig(), list(task.stop_sequences)
    prompts = [codec.encode(s.prompt) for s in samples]
    compile_s = measure.prepare(engines.values(), prompts, args.max_new, decoding, 1, stop_sequences=stop,
                                tokenizer=codec)
    print(f"compile_s {compile_s:.1f}", flush=True)
    rows_file = tempfile.NamedTemporaryFile("a", delete=False)
    scorer = ThreadPoolExecutor(1)

    def between(kind: str, i: int, gen, ar_ids) -> None:
        text = truncate_at_stop(codec.decode(gen.output_ids), stop)
        if "background" in kind:
            scorer.submit(task.score, samples[i], text)
        if "sleep" in kind:
            time.sleep(0.2)
        if "score" in kind:
            task.score(samples[i], text)
        if "fsync" in kind:
            rows_file.write(json.dumps(gen.output_ids) + "\n")
            rows_file.flush()
            os.fsync(rows_file.fileno())
        if "explain" in kind and ar_ids is not None:
            parity.explain(target, prompts[i], ar_ids, gen.output_ids)

    def condition(name: str) -> dict:
        methods, kind = CONDITIONS[name]
        acc = {m: {"tokens": 0, "wall": 0.0, "prefill": 0.0, "n": 0} for m in methods}
        for _ in range(args.reps):
            order = ([(i, m) for i in range(len(prompts)) for m in methods] if "alternate" in kind
                     else [(i, m) for m in methods for i in range(len(prompts))])
            ar_ids: dict[int, list[int]] = {}
            for i, m in order:
                if "preroll" in kind:
                    engines[m].generate(prompts[i], 2, decoding)
                g = measure.timed_generate(engines[m], prompts[i], args.max_new, decoding, stop_sequences=stop,
                                           tokenizer=codec).generation
                a = acc[m]
                a["tokens"] += g.stats.n_generated
                a["wall"] += g.stats.wall_s
                a["prefill"] += g.stats.prefill_s
                a["n"] += 1
                if m == "autoregressive":
                    ar_ids[i] = g.output_ids
                between(kind, i, g, None if m == "autoregressive" else ar_ids.get(i))
        scorer.submit(lambda: None).result()  # background scores finished before the next condition
        return {m: {"tok_s": a["tokens"] / a["wall"], "decode_tok_s": a["tokens"] / (a["wall"] - a["prefill"]),
                    "prefill_ms": 1000 * a["prefill"] / a["n"]} for m, a in acc.items()}

    results = {"compile_s": compile_s, "threads_default": torch.get_num_threads(), "args": vars(args)}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        key = f"threads={threads}"
        results[key] = {}
        for name in args.conditions.split(","):
            results[key][name] = row = condition(name)
            print(key, name, json.dumps({m: {k: round(v, 1) for k, v in d.items()} for m, d in row.items()}),
                  flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    scorer.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
