#!/usr/bin/env python3
"""The measurement-path checks, judged: does ``run.py`` on a GPU report what the benchmark measures?

    python scripts/measurement_checks.py $OUT/checks.json --collect $RUNS    # write checks.json
    python scripts/measurement_checks.py $OUT/checks.json $RUNS/bench/bench.json --out $OUT/checks.md

Reads what ``scripts/gpu_headline.sh PARTS=checks`` writes -- ``checks.json`` (every
``run.py`` summary's timing and parity fields, keyed by run directory) and the
benchmark's ``bench.json`` on the same workload -- and prints one table row per target
of docs/performance.md ("run.py on a GPU"): the ``hispec exit=8,16`` run on the native
backend with ``compile_s`` apart, no capture while timing and no unexplained
divergence; three AR runs in fresh processes within ``--ar-spread`` of each other
(max - min over mean); and ``run.py`` against the benchmark within ``--agreement`` for
AR (the method jobs' own AR, averaged) and each speculative method -- layerskip, hispec,
vanilla_sd and the three-model hierarchy. Exit status 0 when every check
is met, 1 when one is not, 2 when an input is missing. Why a script: the numbers
were worked out by hand each session, and a hand can pick the wrong AR.

Where both sides were timed in several passes (``timing_repeats``, ``--reps``), the measured
column also gives each side's range over passes, and for the methods the speedup over AR
inside the ``run.py`` job next to the benchmark's: on a host whose speed drifts over
seconds, two processes' absolute rates can differ more than their passes do, while a
speedup compares AR and the method within one process (docs/gpu-runs.md, "Sixth run").
Where both sides probed the host (``host_probe_us``, ``hsd_bench/host_probe.py``), the column
gives both probes too, and a miss whose probes are two host states apart
(``host_probe.different_states``) says so: a host-bound method disagreeing by as much as the two
probes differ measured two host states, not two timing paths (docs/gpu-runs.md, "Fourteenth
run"). So does a miss where either side's timing thread waited for a CPU more than
``host_probe.CPU_WAIT_SHARE`` of a pass (``cpu_wait_share_passes``): a host-bound pass loses that
share of its rate (docs/gpu-runs.md, "Fifty-eighth run"). It stays a miss.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hsd_bench.host_probe import cpu_wait_past, different_states  # noqa: E402

METHODS = ("layerskip", "hispec", "vanilla_sd", "hierarchy")
# what checks.json keeps of a run.py summary, and of each of its methods
RUN_FIELDS = ("method", "backend", "dtype", "compile_s", "graph_captures_timed", "ar_chunk", "timing_repeats",
              "retimed_samples")
CONFIG_FIELDS = ("method", "exit", "verifier")
METHOD_FIELDS = ("n_samples", "tokens_per_s", "decode_tokens_per_s", "speedup_vs_ar", "mean_accepted_len",
                 "acceptance_rate", "parity_exact", "parity_near_tie", "parity_unexplained", "discarded_tokens",
                 "tokens_per_s_passes", "host_probe_us", "host_probe_us_passes", "cpu_wait_share_passes")


def checks_entry(summary: dict) -> dict:
    """One run.py ``summary.json`` reduced to the timing and parity fields the checks judge."""
    entry = {k: summary.get(k) for k in RUN_FIELDS}
    entry["config"] = {k: summary["config"].get(k) for k in CONFIG_FIELDS}
    entry["dataset"] = summary["config"]["dataset"]["name"]
    entry["methods"] = {m: {k: v.get(k) for k in METHOD_FIELDS} for m, v in summary["methods"].items()}
    return entry


def collect(runs: Path) -> dict:
    """``checks.json``: every ``summary.json`` under ``runs``, keyed by its folder relative to ``runs``
    (``agree/<hash>``, ``ar_repeat_1/<hash>``: the step names the checks select by)."""
    return {str(path.parent.relative_to(runs)): checks_entry(json.loads(path.read_text()))
            for path in sorted(runs.glob("**/summary.json"))}


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
    runs = [r["methods"]["autoregressive"] for r in _runs(checks, "ar_repeat_")]
    rates = [r["tokens_per_s"] for r in runs]
    target = f"within {limit:.0%}"
    if len(rates) < 2:
        return Check("AR in fresh processes", target, f"{len(rates)} run(s)", None)
    s = spread(rates)
    probes = [r.get("host_probe_us") for r in runs]
    each = [f"{rate:.1f}" + (f" ({p:.1f} µs)" if p else "") for rate, p in zip(rates, probes)]
    measured = " / ".join(each) + f" tok/s: {s:.1%}"
    ok = s <= limit
    taken = [p for p in probes if p]
    if not ok and len(taken) == len(probes) and different_states(min(taken), max(taken)):
        # as for the agreements below: a miss whose processes probed two host states apart
        measured += " (two host states: the spread is the host's, rule 6)"
    return Check(f"{len(rates)} AR runs in fresh processes", target, measured, ok)


def bench_rows(bench: dict) -> dict[str, dict]:
    """The benchmark's engine rows (``ours ...``) by method."""
    rows = bench["parts"]["methods"]["rows"]
    return {r["method"]: r for r in rows if r["name"].startswith("ours ")}


def bench_rates(bench: dict) -> dict[str, float]:
    """The benchmark's engine rows (``ours ...``) by method: tokens/s."""
    return {m: r["tokens_per_s"] for m, r in bench_rows(bench).items()}


def _passes(rates: list[float] | None) -> str:
    """' (passes a-b)' for several timed passes, else ''."""
    rates = [r for r in rates or [] if r is not None]
    return f" (passes {min(rates):.1f}-{max(rates):.1f})" if len(rates) > 1 else ""


def _bench_passes(row: dict) -> list[float]:
    tokens = row.get("tokens_per_rep")
    return [tokens / w for w in row.get("wall_s") or [] if tokens and w]


def timed_after_traces(bench: dict) -> set[str]:
    """The benchmark's engine rows timed after a kernel trace in its process: every row but the
    first, where ``bench_gpu.py --device-trace`` traced each method right after timing it (before
    its traces moved to the end of the process, ``bench_gpu.PendingTrace``, which writes
    ``trace_seconds``). A trace leaves the profiler attached and slows the host's launches after it,
    so those rows measured a slowed host."""
    command = (bench.get("info") or {}).get("command") or ""
    if "--device-trace" not in command.split() or "trace_seconds" in bench:
        return set()
    return set(list(bench_rows(bench))[1:])


def agreement(checks: dict, bench: dict, limit: float) -> list[Check]:
    ours = bench_rows(bench)
    after_traces = timed_after_traces(bench)
    agree = _runs(checks, "agree")
    target = f"within {limit:.0%}"
    out = []
    ar = [r["methods"]["autoregressive"]["tokens_per_s"] for r in agree if "autoregressive" in r["methods"]]
    rows = [("AR (the method jobs' own AR)", "autoregressive", statistics.mean(ar) if ar else None, None)]
    for method in METHODS:
        runs = [r["methods"][method] for r in agree if method in r["methods"]]
        rows.append((method, method, runs[0]["tokens_per_s"] if runs else None, runs[0] if runs else None))
    for label, method, run_py, summary in rows:
        ref = ours.get(method)
        if run_py is None or ref is None:
            out.append(Check(f"`run.py` vs benchmark: {label}", target, "not run", None))
            continue
        diff = run_py / ref["tokens_per_s"] - 1
        measured = (f"{run_py:.1f}{_passes((summary or {}).get('tokens_per_s_passes'))} vs "
                    f"{ref['tokens_per_s']:.1f}{_passes(_bench_passes(ref))} tok/s: {diff:+.1%}")
        theirs = ref.get("speedup_vs_same_backend_ar")
        if summary and summary.get("speedup_vs_ar") and theirs:
            measured += f"; speedup {summary['speedup_vs_ar']:.2f}x vs {theirs:.2f}x"
        ok = abs(diff) <= limit
        mine, theirs_probe = (summary or {}).get("host_probe_us"), ref.get("host_probe_us")
        if mine and theirs_probe:
            measured += f"; host probe {mine:.1f} vs {theirs_probe:.1f} µs"
            if not ok and different_states(mine, theirs_probe):
                measured += " (two host states: the gap is the host's, rule 6)"
        waited = cpu_wait_past([*((summary or {}).get("cpu_wait_share_passes") or []),
                                *(ref.get("cpu_wait_share_passes") or [])])
        if not ok and waited is not None:  # what a loaded host took, measured (rule 6)
            measured += (f" (a timing thread waited for a CPU up to {100 * waited:.1f} % of a pass: other "
                         f"processes' time on its cores, rule 6)")
        if not ok and method in after_traces:
            measured += " (the benchmark timed it after its own kernel traces, on a host they slowed)"
        out.append(Check(f"`run.py` vs benchmark: {label}", target, measured, ok))
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
    ap.add_argument("checks", type=Path, help="checks.json written by gpu_headline.sh (or by --collect)")
    ap.add_argument("bench", type=Path, nargs="?", help="the benchmark's bench.json on the same workload")
    ap.add_argument("--collect", type=Path, metavar="RUNS",
                    help="write CHECKS from every run.py summary.json under RUNS instead of judging it")
    ap.add_argument("--ar-spread", type=float, default=0.05, help="largest (max - min) / mean of the AR runs")
    ap.add_argument("--agreement", type=float, default=0.10, help="largest |run.py / benchmark - 1|")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    if args.collect is not None:
        if not args.collect.is_dir():
            print(f"error: --collect {args.collect} is not a folder of run.py results", file=sys.stderr)
            return 2
        doc = collect(args.collect)
        args.checks.write_text(json.dumps(doc, indent=1))
        print(f"{args.checks}: {len(doc)} runs")
        return 0
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
