"""scripts/measurement_checks.py: the GPU checks judged from checks.json and bench.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measurement_checks.py"


def summary(method: str, ar: float, rate: float | None = None, **extra) -> dict:
    methods = {"autoregressive": {"tokens_per_s": ar, "parity_unexplained": 0, "parity_exact": 1.0}}
    if rate is not None:
        methods[method] = {"tokens_per_s": rate, "parity_unexplained": extra.pop("unexplained", 0),
                           "parity_exact": 1.0}
    return {"method": method, "backend": extra.pop("backend", "native"), "compile_s": 10.0,
            "graph_captures_timed": extra.pop("captures", 0), "methods": methods}


def checks(ar_repeats=(690.0, 695.0, 697.0), hispec_default=None, agree=None) -> dict:
    doc = {"check/aaa": hispec_default or summary("hispec", 691.0, 940.0)}
    for i, rate in enumerate(ar_repeats, 1):
        doc[f"ar_repeat_{i}/bbb"] = summary("autoregressive", rate)
    agree = agree or {"layerskip": (700.0, 1150.0), "hispec": (680.0, 900.0), "vanilla_sd": (670.0, 880.0),
                      "hierarchy": (690.0, 610.0)}
    for j, (method, (ar, rate)) in enumerate(agree.items()):
        doc[f"agree/{j}"] = summary(method, ar, rate)
    return doc


def bench(**rates) -> dict:
    rates = {"autoregressive": 691.0, "layerskip": 1190.0, "hispec": 920.0, "vanilla_sd": 915.0, "hierarchy": 600.0,
             **rates}
    rows = [{"name": "native AR (loop, no engine)", "method": "autoregressive(loop)", "tokens_per_s": 5000.0}]
    rows += [{"name": f"ours {m}", "method": m, "tokens_per_s": r} for m, r in rates.items()]
    return {"parts": {"methods": {"rows": rows}}}


def run(tmp_path: Path, checks_doc: dict, bench_doc: dict | None) -> tuple[int, str]:
    c = tmp_path / "checks.json"
    c.write_text(json.dumps(checks_doc))
    args = [sys.executable, str(SCRIPT), str(c)]
    if bench_doc is not None:
        b = tmp_path / "bench.json"
        b.write_text(json.dumps(bench_doc))
        args.append(str(b))
    done = subprocess.run(args + ["--out", str(tmp_path / "checks.md")], capture_output=True, text=True)
    return done.returncode, done.stdout


def row(table: str, start: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {start}"))


def test_every_check_met(tmp_path):
    rc, table = run(tmp_path, checks(), bench())
    assert rc == 0, table
    assert table == (tmp_path / "checks.md").read_text()
    # AR is the mean of the method jobs' own AR (700, 680, 670, 690 -> 685.0), not the repeats'
    assert "685.0 vs 691.0 tok/s: -0.9%" in row(table, "`run.py` vs benchmark: AR")
    assert "690.0 / 695.0 / 697.0 tok/s: 1.0%" in row(table, "3 AR runs")  # (max - min) / mean
    assert row(table, "`run.py` vs benchmark: hispec").endswith("| yes |")
    assert "610.0 vs 600.0 tok/s: +1.7%" in row(table, "`run.py` vs benchmark: hierarchy")


def test_each_miss_is_named_and_fails_the_run(tmp_path):
    rc, table = run(tmp_path, checks(ar_repeats=(650.0, 690.0, 700.0)), bench(hispec=1010.0))
    assert rc == 1
    assert row(table, "3 AR runs").endswith("| **no** |")  # 50 / 680 = 7.4 %
    assert "900.0 vs 1010.0 tok/s: -10.9%" in row(table, "`run.py` vs benchmark: hispec")
    assert row(table, "`run.py` vs benchmark: hispec").endswith("| **no** |")
    assert row(table, "`run.py` vs benchmark: layerskip").endswith("| yes |")
    rc, table = run(tmp_path, checks(), bench(hierarchy=700.0))  # the three-model hierarchy is judged too
    assert rc == 1 and row(table, "`run.py` vs benchmark: hierarchy").endswith("| **no** |")


def test_an_unexplained_divergence_or_a_timed_capture_fails_the_default_backend_check(tmp_path):
    for bad in (summary("hispec", 691.0, 940.0, unexplained=1), summary("hispec", 691.0, 940.0, captures=2),
                summary("hispec", 691.0, 940.0, backend="hf")):
        rc, table = run(tmp_path, checks(hispec_default=bad), bench())
        assert rc == 1 and row(table, "`hispec exit=8,16`").endswith("| **no** |")


def test_missing_runs_are_not_run_never_met(tmp_path):
    rc, table = run(tmp_path, checks(), None)
    assert rc == 1 and row(table, "`run.py` vs benchmark").endswith("| not run |")
    doc = {k: v for k, v in checks().items() if not k.startswith("agree/2")}  # no vanilla_sd job
    rc, table = run(tmp_path, doc, bench())
    assert rc == 1 and row(table, "`run.py` vs benchmark: vanilla_sd").endswith("| not run |")
    rows = bench()["parts"]["methods"]["rows"]  # a benchmark without --mid-draft has no hierarchy row
    no_mid = {"parts": {"methods": {"rows": [r for r in rows if r["method"] != "hierarchy"]}}}
    rc, table = run(tmp_path, checks(), no_mid)
    assert rc == 1 and row(table, "`run.py` vs benchmark: hierarchy").endswith("| not run |")
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "nope.json")], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "nope.json does not exist" in missing.stderr


def test_several_passes_show_each_sides_range_and_the_speedups(tmp_path):
    """With timing_repeats / --reps, a reader sees whether the two sides' passes overlap, and the
    speedup inside the run.py job next to the benchmark's (same process for AR and the method)."""
    doc = checks()
    hispec = doc["agree/1"]["methods"]["hispec"]
    hispec.update(tokens_per_s_passes=[880.0, 900.0, 930.0], speedup_vs_ar=1.32)
    bench_doc = bench()
    ours = next(r for r in bench_doc["parts"]["methods"]["rows"] if r["method"] == "hispec")
    ours.update(tokens_per_rep=800, wall_s=[0.8, 0.9, 1.0], speedup_vs_same_backend_ar=1.35)
    rc, table = run(tmp_path, doc, bench_doc)
    assert rc == 0, table
    assert ("900.0 (passes 880.0-930.0) vs 920.0 (passes 800.0-1000.0) tok/s: -2.2%; speedup 1.32x vs 1.35x"
            in row(table, "`run.py` vs benchmark: hispec"))
    assert "(passes" not in row(table, "`run.py` vs benchmark: layerskip")  # one pass: no range


def test_the_host_probes_of_both_sides_are_shown_where_both_took_them(tmp_path):
    """A host-bound method's run.py/benchmark gap next to the two processes' host speeds."""
    doc = checks()
    doc["agree/2"]["methods"]["vanilla_sd"]["host_probe_us"] = 26.4
    bench_doc = bench()
    next(r for r in bench_doc["parts"]["methods"]["rows"] if r["method"] == "vanilla_sd")["host_probe_us"] = 16.5
    _, table = run(tmp_path, doc, bench_doc)
    assert row(table, "`run.py` vs benchmark: vanilla_sd").split(" | ")[2].endswith("; host probe 26.4 vs 16.5 µs")
    assert "host probe" not in row(table, "`run.py` vs benchmark: hispec")  # neither side probed
    assert "two host states" not in table  # met: nothing to explain
    for i, probe in enumerate((26.2, 17.0, 16.0), 1):  # each AR process's host state beside its rate
        doc[f"ar_repeat_{i}/bbb"]["methods"]["autoregressive"]["host_probe_us"] = probe
    _, table = run(tmp_path, doc, bench_doc)
    assert "690.0 (26.2 µs) / 695.0 (17.0 µs) / 697.0 (16.0 µs) tok/s: 1.0%" in row(table, "3 AR runs")
    # a spread past 5 % between processes two host states apart says so; one host state does not
    doc["ar_repeat_1/bbb"]["methods"]["autoregressive"]["tokens_per_s"] = 640.0
    rc, table = run(tmp_path, doc, bench_doc)
    assert rc == 1 and row(table, "3 AR runs").endswith(
        "tok/s: 8.4% (two host states: the spread is the host's, rule 6) | **no** |")
    doc["ar_repeat_1/bbb"]["methods"]["autoregressive"]["host_probe_us"] = 17.5
    _, table = run(tmp_path, doc, bench_doc)
    assert "two host states" not in row(table, "3 AR runs")
    doc["ar_repeat_1/bbb"]["methods"]["autoregressive"]["tokens_per_s"] = 690.0
    doc["agree/2"]["methods"]["vanilla_sd"]["tokens_per_s"] = 700.0  # 915 in the benchmark: a miss
    rc, table = run(tmp_path, doc, bench_doc)
    miss = row(table, "`run.py` vs benchmark: vanilla_sd")
    assert rc == 1 and miss.endswith("host probe 26.4 vs 16.5 µs (two host states: the gap is the host's, rule 6) "
                                     "| **no** |")
    # a side whose timing thread waited for a CPU says so too (rule 6; the fifty-eighth GPU run)
    doc["agree/2"]["methods"]["vanilla_sd"]["cpu_wait_share_passes"] = [0.0, 0.226, 0.0]
    rc, table = run(tmp_path, doc, bench_doc)
    assert rc == 1 and row(table, "`run.py` vs benchmark: vanilla_sd").endswith(
        "(a timing thread waited for a CPU up to 22.6 % of a pass: other processes' time on its cores, rule 6) "
        "| **no** |")
    doc["agree/2"]["methods"]["vanilla_sd"]["cpu_wait_share_passes"] = [0.0, 0.019, 0.0]  # under 2 %: not said
    _, table = run(tmp_path, doc, bench_doc)
    assert "waited for a CPU" not in table


def test_the_checks_judge_saved_json_without_torch(tmp_path):
    """The script reads checks.json and bench.json; a machine without torch can judge them
    (what it imports from the package, host_probe.STATE_RATIO, must not pull torch in)."""
    c = tmp_path / "checks.json"
    c.write_text(json.dumps(checks()))
    code = ("import runpy, sys; sys.modules['torch'] = None; "  # any `import torch` now fails
            f"sys.argv = ['measurement_checks.py', {str(c)!r}]; runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # judged: the benchmark's side is missing, so not every check is met
    assert "| 3 AR runs in fresh processes |" in done.stdout


def test_collect_writes_the_checks_from_run_py_summaries(tmp_path):
    """``--collect RUNS`` is how gpu_headline.sh writes checks.json: each summary.json under RUNS,
    keyed by its folder (the step name first, which the checks select by), reduced to the fields
    they judge; the result is what the judging reads."""
    runs = tmp_path / "runs"
    for step, method, rate in (("ar_repeat_1/aaa", "autoregressive", 690.0), ("agree/bbb", "hispec", 900.0)):
        folder = runs / step
        folder.mkdir(parents=True)
        methods = {"autoregressive": {"tokens_per_s": 690.0, "parity_exact": 1.0, "not_kept": 1},
                   method: {"tokens_per_s": rate, "host_probe_us": 12.5, "parity_unexplained": 0}}
        (folder / "summary.json").write_text(json.dumps({
            "method": method, "backend": "native", "compile_s": 3.0, "graph_captures_timed": 0, "rows": [1, 2],
            "config": {"method": method, "exit": [3, 6], "dataset": {"name": "humaneval"}, "seed": 0},
            "methods": methods}))
    out = tmp_path / "checks.json"
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), "--collect", str(runs)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert sorted(doc) == ["agree/bbb", "ar_repeat_1/aaa"]
    entry = doc["agree/bbb"]
    assert entry["dataset"] == "humaneval" and entry["config"] == {"method": "hispec", "exit": [3, 6], "verifier": None}
    assert "rows" not in entry and "not_kept" not in entry["methods"]["autoregressive"]
    assert entry["methods"]["hispec"]["host_probe_us"] == 12.5
    _, table = run(tmp_path, doc, None)  # the collected file is one the judging reads
    assert "1 AR runs" not in table and "AR in fresh processes" in table
    missing = subprocess.run([sys.executable, str(SCRIPT), str(out), "--collect", str(tmp_path / "nope")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_a_miss_timed_after_the_benchmarks_own_traces_says_so(tmp_path):
    """A benchmark that traced each method right after timing it (bench_gpu.py before its traces
    moved to the end of the process) timed every row after the first on a host its traces had
    slowed: a miss on such a row says so; the first row, and a benchmark that traced last, do not."""
    doc = checks()
    doc["agree/2"]["methods"]["vanilla_sd"]["tokens_per_s"] = 1100.0  # 915 in the benchmark: +20 %
    bench_doc = {**bench(), "info": {"command": "bench_gpu.py --parts methods --device-trace"}}
    note = "after its own kernel traces"
    rc, table = run(tmp_path, doc, bench_doc)
    assert rc == 1 and note in row(table, "`run.py` vs benchmark: vanilla_sd")
    assert note not in row(table, "`run.py` vs benchmark: hispec")  # met: nothing to explain
    _, table = run(tmp_path, doc, {**bench_doc, "trace_seconds": 30.0})  # traces after every timed pass
    assert note not in table
    _, table = run(tmp_path, doc, {**bench(), "info": {"command": "bench_gpu.py --parts methods"}})
    assert note not in table
    doc = checks(agree={"layerskip": (700.0, 1150.0), "hispec": (680.0, 900.0), "vanilla_sd": (670.0, 880.0),
                        "hierarchy": (690.0, 610.0)})
    for j in range(4):
        doc[f"agree/{j}"]["methods"]["autoregressive"]["tokens_per_s"] = 900.0  # +30 % against 691
    _, table = run(tmp_path, doc, bench_doc)
    assert "**no**" in row(table, "`run.py` vs benchmark: AR") and note not in row(table, "`run.py` vs benchmark: AR")
