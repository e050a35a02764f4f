#!/usr/bin/env python3
"""Where the engine's host time goes, function by function, on run.py's engines and workload.

    python scripts/profile_host.py --model runs/gpu-24x1024 --out $OUT/host_profile      # on a GPU
    python scripts/profile_host.py --device cpu --dtype float32 --limit 2 --max-new 16 --out /tmp/hp

Why: on small models the device idles while the host does a round's bookkeeping
(docs/performance.md, "Engine overhead": hispec and vanilla_sd 12 % of decode time on
the 294 M model). ``bench_gpu.py --profile`` shows the device's kernels; this shows the
host's Python. CPU runs cannot stand in: there the native backend runs eagerly, without the
fixed-shape steps and graph replays whose host work is the question.

For each method it builds the engine run.py builds (same config composition), prepares it
untimed (``measure.prepare``: compile, capture, warm-up), times ``--reps`` passes over the
prompts without the profiler, then one pass under ``cProfile`` -- both through
``measure.timed_passes``, run.py's timing. The report gives both walls
(the profiler's own cost), and the functions with the most own time and the project's
functions by cumulative time; ``host_profile.json`` has the same rows as numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hsd_bench import measure  # noqa: E402
from hsd_bench.bench.jobs import METHOD_OVERRIDES, run_py_workload  # noqa: E402
from hsd_bench.sampling import DecodingConfig  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="checkpoints/ee-24x128")
    p.add_argument("--draft", default="checkpoints/family-2x128", help="vanilla_sd's draft model")
    p.add_argument("--methods", default="autoregressive,layerskip,hispec,vanilla_sd")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--limit", type=int, default=8, help="HumanEval prompts")
    p.add_argument("--max-new", type=int, default=128)
    p.add_argument("--reps", type=int, default=2, help="unprofiled passes; each prompt's median is kept (the wall "
                   "the profile is compared to)")
    p.add_argument("--top", type=int, default=30, help="rows per table")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a further run.py override for every method (repeatable), e.g. model.num_layers=8")
    p.add_argument("--out", required=True, help="folder for host_profile.txt and host_profile.json")
    args = p.parse_args(argv)
    unknown = sorted(set(args.methods.split(",")) - set(METHOD_OVERRIDES))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; valid: {', '.join(METHOD_OVERRIDES)}")
    for name in ("limit", "max_new", "reps", "top"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    return args


def _rows(stats: pstats.Stats, sort: str, top: int, only_project: bool) -> list[dict]:
    """The profile's functions as dicts, sorted by ``sort`` ("tottime" or "cumtime")."""
    rows = []
    for (path, line, name), (_, calls, own, cum, _) in stats.stats.items():
        if only_project and "hsd_bench" not in path:
            continue
        short = path.split("hsd_bench/", 1)[-1] if "hsd_bench" in path else Path(path).name
        rows.append({"function": f"{short}:{line}({name})", "calls": calls, "tottime_s": own, "cumtime_s": cum})
    rows.sort(key=lambda r: -r[f"{sort}_s"])
    return rows[:top]


def _table(rows: list[dict], tokens: int) -> str:
    lines = ["| function | calls | own ms | cum ms | own µs/token |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['function']}` | {r['calls']} | {1e3 * r['tottime_s']:.1f} | {1e3 * r['cumtime_s']:.1f} "
                     f"| {1e6 * r['tottime_s'] / max(tokens, 1):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    job = run_py_workload(args.model, methods, args.device, args.dtype, args.limit, args.max_new, draft=args.draft,
                          overrides=args.override)
    engines, target, codec, prompts, stop = job.engines, job.target, job.codec, job.prompts, job.stop
    decoding = DecodingConfig()
    compile_s = measure.prepare(engines.values(), prompts, args.max_new, decoding, 1, stop_sequences=stop,
                                tokenizer=codec)
    print(f"[profile_host] {len(prompts)} prompts, {target.backend} backend, compile_s {compile_s:.1f}", flush=True)

    def timed(engine, reps: int) -> tuple[float, int]:
        """Seconds and tokens over all prompts, timed as run.py times a job (measure.timed_passes:
        each prompt's median pass of ``reps``, no graph capture inside a kept timing)."""
        gens = [t.generation for _, t in measure.timed_passes(engine, prompts, args.max_new, decoding, reps,
                                                               stop_sequences=stop, tokenizer=codec)]
        return sum(g.stats.wall_s for g in gens), sum(len(g.output_ids) for g in gens)

    report, doc = [f"# Host profile: {args.model}, {args.device} {args.dtype}, {len(prompts)} HumanEval prompts "
                   f"x {args.max_new} new tokens\n"], {"args": vars(args), "compile_s": compile_s, "methods": {}}
    for m, engine in engines.items():
        plain_s, tokens = timed(engine, args.reps)
        profiler = cProfile.Profile()
        profiler.enable()
        profiled_s, _ = timed(engine, 1)
        profiler.disable()
        stats = pstats.Stats(profiler, stream=io.StringIO())
        own = _rows(stats, "tottime", args.top, only_project=False)
        project = _rows(stats, "cumtime", args.top, only_project=True)
        doc["methods"][m] = {"tokens": tokens, "plain_s": plain_s, "profiled_s": profiled_s,
                             "own_time": own, "project_cumulative": project}
        report += [f"## {m}\n", f"{tokens} tokens: {1e6 * plain_s / tokens:.0f} µs/token unprofiled (median of "
                   f"{args.reps} passes per prompt), {1e6 * profiled_s / tokens:.0f} µs/token under cProfile\n",
                   "Most own time:\n", _table(own, tokens), "\nProject functions by cumulative time:\n",
                   _table(project, tokens), ""]
        print(f"[profile_host] {m}: {1e6 * plain_s / tokens:.0f} µs/token, profiled {1e6 * profiled_s / tokens:.0f}",
              flush=True)
    (out / "host_profile.txt").write_text("\n".join(report) + "\n")
    (out / "host_profile.json").write_text(json.dumps(doc, indent=1))
    print(f"[profile_host] wrote {out / 'host_profile.txt'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
