"""scripts/gpu_headline.sh's checks part: which jobs it starts, with and without ``AGREE_ONLY=1`` and ``AGREE_METHODS``.

Why: a device call has ten minutes, and a second round of run.py against the benchmark (its
method jobs and the benchmark step) fits one only without the path checks the first round ran
(``hispec exit=8,16``, AR in three processes; forty-seventh run). The script's Python is a stub
here that records its arguments, so the test sees the steps without running any of them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def started_jobs(tmp_path: Path, **env: str) -> list[str]:
    """The argument lines of every Python command gpu_headline.sh runs with PARTS=checks."""
    stub_dir, log = tmp_path / "bin", tmp_path / "python_calls.log"
    stub_dir.mkdir()
    stub = stub_dir / "python3"
    stub.write_text('#!/bin/sh\necho "$@" >> "$STUB_LOG"\n')
    stub.chmod(0o755)
    run_env = {"PATH": f"{stub_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "STUB_LOG": str(log),
               "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "PARTS": "checks", "TRAIN": "0",
               "HF_CHECK": "0", "DEVICE": "cpu", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), **env}
    subprocess.run(["bash", str(ROOT / "scripts" / "gpu_headline.sh")], env=run_env, capture_output=True,
                   text=True, timeout=60, check=True)
    return [line for line in log.read_text().splitlines() if not line.startswith("-c ")]


def test_the_checks_part_runs_the_path_checks_then_run_py_against_the_benchmark(tmp_path):
    jobs = started_jobs(tmp_path)
    assert sum("method=hispec exit=8,16" in j for j in jobs) == 1
    assert sum("method=autoregressive" in j for j in jobs) == 3
    for method in ("layerskip", "hispec exit=3,6", "vanilla_sd", "hierarchy"):
        assert sum(f"method={method}" in j for j in jobs) == 1, method
    assert sum("scripts/bench_gpu.py" in j for j in jobs) == 1


@pytest.mark.parametrize("value, path_checks", [("1", False), ("0", True)])
def test_agree_only_leaves_out_the_path_checks_and_keeps_the_agreement(tmp_path, value, path_checks):
    jobs = started_jobs(tmp_path, AGREE_ONLY=value)
    assert any("method=hispec exit=8,16" in j for j in jobs) is path_checks
    assert any("method=autoregressive" in j for j in jobs) is path_checks
    for method in ("layerskip", "hispec exit=3,6", "vanilla_sd", "hierarchy"):
        assert sum(f"method={method}" in j for j in jobs) == 1, method
    bench = [j for j in jobs if "scripts/bench_gpu.py" in j]
    assert len(bench) == 1 and "--device-trace" in bench[0]
    # the judgement still runs: checks.json collected, then judged against the benchmark's bench.json
    assert any("scripts/measurement_checks.py" in j and "--collect" in j for j in jobs)
    assert any("scripts/measurement_checks.py" in j and "bench.json" in j and "--collect" not in j for j in jobs)


def test_agree_methods_runs_only_the_named_method_jobs_and_keeps_the_benchmark(tmp_path):
    # a short device call names fewer of run.py's jobs so the benchmark step, which the judgement needs, still fits
    jobs = started_jobs(tmp_path, AGREE_ONLY="1", AGREE_METHODS="hispec hierarchy")
    assert sum("method=hispec exit=3,6" in j for j in jobs) == 1
    assert sum("method=hierarchy" in j for j in jobs) == 1
    assert not any("method=layerskip" in j or "method=vanilla_sd" in j for j in jobs)
    assert sum("scripts/bench_gpu.py" in j for j in jobs) == 1


def test_an_unknown_agree_method_stops_the_script_before_any_job(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as err:
        started_jobs(tmp_path, AGREE_METHODS="hispec layer_skip")
    assert err.value.returncode == 2
    assert "'layer_skip'" in err.value.stderr and "layerskip hispec vanilla_sd hierarchy" in err.value.stderr
    assert not (tmp_path / "python_calls.log").exists() or not [
        line for line in (tmp_path / "python_calls.log").read_text().splitlines() if not line.startswith("-c ")]


@pytest.mark.parametrize("session_limit, method_jobs", [("180", 0), ("210", 4)])
def test_a_method_job_runs_only_where_the_benchmark_step_still_fits_after_it(tmp_path, session_limit, method_jobs):
    # without the trace the benchmark step needs 150 s and a method job 50 s more (the stub takes none):
    # with 180 s left a job would leave the benchmark too little, so the jobs are skipped, not the benchmark
    jobs = started_jobs(tmp_path, AGREE_ONLY="1", DEVICE_TRACE="0", SESSION_LIMIT=session_limit)
    assert sum(" run.py " in f" {j} " and "method=" in j for j in jobs) == method_jobs
    assert sum("scripts/bench_gpu.py" in j for j in jobs) == 1
