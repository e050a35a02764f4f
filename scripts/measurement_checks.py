#!/usr/bin/env python3
"""The measurement-path checks, judged: does ``run.py`` on a GPU report what the benchmark measures?

    python scripts/measurement_checks.py $RUNS/checks.json $RUNS/bench/bench.json --out $OUT/checks.md

Reads what ``scripts/gpu_headline.sh PARTS=checks`` writes -- ``checks.json`` (every
``run.py`` summary's timing and parity fields, keyed by run directory) and the
benchmark's ``bench.json`` on the same workload -- and prints one table row per target
of docs/performance.md ("run.py on a GPU"): the ``hispec exit=8,16`` run on the native
backend with ``compile_s`` apart, no capture while timing and no unexplained
divergence; three AR runs in fresh processes within ``--ar-spread`` of each other
(max - min over mean); and ``run.py`` against the benchmark within ``--agreement`` for
AR (the method jobs' own AR, averaged) and each method. Exit status 0 when every check
is met, 1 when one is not, 2 when an input is missing. Why a script: the numbers
were worked out by hand each session, and a hand can pick the wrong AR.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

METHODS = ("layerskip", "hispec", "vanilla_sd")


@dataclass
class Check:
    name: str
    target: str
    measured: str
    met: bool | None  # None: nothing to judge (the run is missing)


def spread(values: list[float]) -> float:
    """(max - min) / mean: how far apart repeated measurements are."""
    return (max(values) - min(values)) / statistics.mean(values)


def _runs(checks: dict, prefix: str) -> list[dict]:
    return [v for k, v in sorted(checks.items()) if k.split("/")[0].startswith(prefix)]


def hispec_default_backend(checks: dict) -> Check:
    runs = _runs(checks, "check")
    target = "native, compile_s apart, 0 captures timed, 0 unexplained"
    if not runs:
        return Check("`hispec exit=8,16`, no backend named", target, "not run", None)
    run = runs[0]
    m = run["methods"].get("hispec", {})
    ok = (run.get("backend") == "native" and run.get("compile_s") is not None
          and run.get("graph_captures_timed") == 0 and m.get("parity_unexplained") == 0)
    measured = (f"{run.get('backend')}; compile_s {run.get('compile_s', float('nan')):.1f} s; "
                f"{run.get('graph_captures_timed')} captures; parity {m.get('parity_exact')}, "
                f"{m.get('parity_unexplained')} unexplained; {m.get('tokens_per_s', 0):.1f} tok/s")
    return Check("`hispec exit=8,16`, no backend named", target, measured, ok)


def ar_repeats(checks: dict, limit: float) -> Check:
    rates = [r["methods"]["autoregressive"]["tokens_per_s"] for r in _runs(checks, "ar_repeat_")]
    target = f"within {limit:.0%}"
    if len(rates) < 2:
        return Check("AR in fresh processes", target, f"{len(rates)} run(s)", None)
    s = spread(rates)
    return Check(f"{len(rates)} AR runs in fresh processes", target,
                 " / ".join(f"{r:.1f}" for r in rates) + f" tok/s: {s:.1%}", s <= limit)


def bench_rates(bench: dict) -> dict[str, float]:
    """The benchmark's engine rows (``ours ...``) by method: tokens/s."""
    rows = bench["parts"]["methods"]["rows"]
    return {r["method"]: r["tokens_per_s"] for r in rows if r["name"].startswith("ours ")}


def agreement(checks: dict, bench: dict, limit: float) -> list[Check]:
    ours = bench_rates(bench)
    agree = _runs(checks, "agree")
    target = f"within {limit:.0%}"
    out = []
    ar = [r["methods"]["autoregressive"]["tokens_per_s"] for r in agree if "autoregressive" in r["methods"]]
    rows = [("AR (the method jobs' own AR)", "autoregressive", statistics.mean(ar) if ar else None)]
    for method in METHODS:
        rates = [r["methods"][method]["tokens_per_s"] for r in agree if method in r["methods"]]
        rows.append((method, method, rates[0] if rates else None))
    for label, method, run_py in rows:
        ref = ours.get(method)
        if run_py is None or ref is None:
            out.append(Check(f"`run.py` vs benchmark: {label}", target, "not run", None))
            continue
        diff = run_py / ref - 1
        out.append(Check(f"`run.py` vs benchmark: {label}", target,
                         f"{run_py:.1f} vs {ref:.1f} tok/s: {diff:+.1%}", abs(diff) <= limit))
    return out


def judge(checks: dict, bench: dict | None, ar_spread: float = 0.05, agree: float = 0.10) -> list[Check]:
    out = [hispec_default_backend(checks), ar_repeats(checks, ar_spread)]
    if bench is None:
        out.append(Check("`run.py` vs benchmark", f"within {agree:.0%}", "no bench.json", None))
    else:
        out += agreement(checks, bench, agree)
    return out


def markdown(results: list[Check]) -> str:
    word = {True: "yes", False: "**no**", None: "not run"}
    lines = ["| check | target | measured | met |", "| --- | --- | --- | --- |"]
    lines += [f"| {c.name} | {c.target} | {c.measured} | {word[c.met]} |" for c in results]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checks", type=Path, help="checks.json written by gpu_headline.sh")
    ap.add_argument("bench", type=Path, nargs="?", help="the benchmark's bench.json on the same workload")
    ap.add_argument("--ar-spread", type=float, default=0.05, help="largest (max - min) / mean of the AR runs")
    ap.add_argument("--agreement", type=float, default=0.10, help="largest |run.py / benchmark - 1|")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    for path in filter(None, (args.checks, args.bench)):
        if not path.is_file():
            print(f"error: {path} does not exist (run scripts/gpu_headline.sh with PARTS=checks first)",
                  file=sys.stderr)
            return 2
    bench = json.loads(args.bench.read_text()) if args.bench else None
    results = judge(json.loads(args.checks.read_text()), bench, args.ar_spread, args.agreement)
    table = markdown(results)
    print(table, end="")
    if args.out:
        args.out.write_text(table)
    return 0 if all(c.met for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
