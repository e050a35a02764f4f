"""Sweeps on a real SLURM cluster: job arrays through submitit, scancel, resume.

Needs a SLURM that answers (``sudo scripts/local_slurm.sh start`` makes a
one-node one here in seconds). Without one the tests skip and say why --
unless ``HSD_REQUIRE_SLURM=1`` (set by ``.ci/run``, which starts the cluster
first): then a missing cluster is a FAILURE, so CI can never go green by
skipping.

What is checked, with the real ``run.py`` on the tiny random model:
1. a 4-job sweep (``hydra/launcher=slurm``) runs as one job array and every
   job leaves DONE + summary.json;
2. relaunching that finished sweep generates nothing: every job logs that
   its run is finished, and no run file is touched;
3. a sweep whose slow job is ``scancel``-ed mid-run (after its first
   generation) makes the launcher fail; relaunching it finishes that job from
   its written rows (kept in place; only their deferred scores filled in) and
   skips the jobs that had finished.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# One cluster of one node: its tests run one after another, on one xdist worker.
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.xdist_group("slurm")]

REPO = Path(__file__).resolve().parents[1]
LAUNCH_TIMEOUT_S = 150  # per launcher call; the whole module stays under ~4 minutes on 2 cores
FINISHED_MSG = "already finished, nothing to do"  # hsd_bench.runner, when DONE exists
RESUME_MSG = "resuming:"  # hsd_bench.runner, when rows.jsonl already has rows


def _slurm_problem() -> str | None:
    """None if a SLURM controller answers with a usable node, else what is wrong."""
    for tool in ("sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    try:
        out = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`sinfo` did not answer within 20 s"
    if out.returncode != 0:
        return f"`sinfo` failed: {out.stderr.strip() or out.stdout.strip()}"
    states = {s.strip().rstrip("*~#!%$@^-") for s in out.stdout.split()}
    if not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no usable node (sinfo states: {sorted(states) or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _slurm_problem()
    if problem:
        if os.environ.get("HSD_REQUIRE_SLURM") == "1":
            pytest.fail(f"HSD_REQUIRE_SLURM=1 but no SLURM cluster answers: {problem}. "
                        "Start one with `scripts/local_slurm.sh start` (root).")
        pytest.skip(f"no SLURM cluster answers ({problem}); start one with `sudo scripts/local_slurm.sh start`")


@pytest.fixture
def job_name(cluster):
    """A unique SLURM job name for this test's arrays; anything left of them is cancelled afterwards."""
    name = f"hsdtest-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=30)


def _launch_cmd(tmp: Path, sweep: str, job_name: str, *overrides: str) -> list[str]:
    return [
        sys.executable, str(REPO / "run.py"), "-m", "hydra/launcher=slurm",
        "model=tiny_random", "warmup_tokens=2", f"results_dir={tmp / 'runs'}",
        f"hydra.sweep.dir={tmp / sweep}", f"hydra.launcher.name={job_name}",
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
        *overrides,
    ]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start a launcher in its own process group (so a hung one can be ended with its children)."""
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    return subprocess.Popen(cmd, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait(proc: subprocess.Popen, log: Path, timeout: float = LAUNCH_TIMEOUT_S) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        pytest.fail(f"launcher still running after {timeout}s; its log:\n{_tail(log)}")


def _launch(cmd: list[str], log: Path) -> int:
    return _wait(_start(cmd, log), log)


def _tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


def _run_dirs(tmp: Path) -> list[Path]:
    root = tmp / "runs"
    return sorted(p.parent for p in root.glob("*/config.json")) if root.exists() else []


def _job_logs(sweep_dir: Path) -> dict[str, str]:
    """Array task id (``<array>_<index>``) -> its stdout+stderr log."""
    logs = {}
    for d in sorted((sweep_dir / ".submitit").glob("*_*")):
        if d.is_dir() and re.fullmatch(r"\d+_\d+", d.name):
            logs[d.name] = "".join(p.read_text(errors="replace") for p in sorted(d.glob("*_log.*")))
    return logs


def _wait_until_gone(job_name: str, timeout: float = LAUNCH_TIMEOUT_S) -> None:
    """Block until SLURM lists no task named ``job_name`` (the launcher can exit before its array does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "--noheader", f"--name={job_name}", "--format=%i %T"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(0.5)
    pytest.fail(f"tasks of {job_name} still queued or running after {timeout}s: {out.stdout}")


def _stamp(run_dir: Path) -> dict[str, int]:
    return {f: (run_dir / f).stat().st_mtime_ns for f in ("rows.jsonl", "summary.json", "DONE")}


def _generation(row: dict) -> dict:
    """A row without what is completed after the timed generations (``hsd_bench/deferred.py``)."""
    return {k: v for k, v in row.items() if k not in ("scores", "divergence")}


def _rows_of(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _rows(run_dir: Path) -> list[dict]:
    return _rows_of((run_dir / "rows.jsonl").read_bytes())


def _limit(run_dir: Path) -> int:
    return json.loads((run_dir / "config.json").read_text())["dataset"]["limit"]


def _fail_with_logs(msg: str, launcher_log: Path, sweep_dir: Path) -> None:
    jobs = "\n".join(f"--- {k}\n{v[-3000:]}" for k, v in _job_logs(sweep_dir).items())
    pytest.fail(f"{msg}\nlauncher log:\n{_tail(launcher_log)}\njob logs:\n{jobs}")


def _sweep_or_fail(tmp: Path, sweep_name: str, job_name: str, overrides: list[str], what: str) -> float:
    """Launch a sweep into ``tmp/sweep_name`` and wait; its wall time, or a failure with the logs."""
    log = tmp / f"{sweep_name}.log"
    t0 = time.monotonic()
    rc = _launch(_launch_cmd(tmp, sweep_name, job_name, *overrides), log)
    seconds = time.monotonic() - t0
    if rc != 0:
        _fail_with_logs(f"{what} failed (rc={rc})", log, tmp / sweep_name)
    return seconds


def test_sweep_runs_as_a_job_array_and_a_relaunch_does_nothing(tmp_path, job_name):
    sweep = ["dataset.limit=1", "max_new_tokens=8", "method=layerskip,hispec", "method.draft_len=2,3"]
    first_s = _sweep_or_fail(tmp_path, "sweep1", job_name, sweep, "sweep")

    # One array of four tasks went through sbatch.
    tasks = sorted(_job_logs(tmp_path / "sweep1"))
    arrays = {t.split("_")[0] for t in tasks}
    assert len(tasks) == 4 and len(arrays) == 1, tasks
    assert (tmp_path / "sweep1" / ".submitit" / arrays.pop() / f"{tasks[0].split('_')[0]}_submission.sh").exists()

    runs = _run_dirs(tmp_path)
    assert len(runs) == 4, runs
    combos = set()
    for d in runs:
        assert (d / "DONE").exists(), f"{d} has no DONE"
        summary = json.loads((d / "summary.json").read_text())
        name = summary["config"]["method"]["name"]
        combos.add((name, summary["config"]["method"]["draft_len"]))
        assert set(summary["methods"]) == {name, "autoregressive"}
        assert summary["methods"][name]["n_samples"] == 1
        assert len(_rows(d)) == 2  # the method and the AR baseline on the one sample
    assert combos == {("layerskip", 2), ("layerskip", 3), ("hispec", 2), ("hispec", 3)}

    # Relaunching the finished sweep: four tasks run, none generates or writes anything.
    before = {d: _stamp(d) for d in runs}
    relaunch_s = _sweep_or_fail(tmp_path, "sweep2", job_name, sweep, "relaunch")
    assert {d: _stamp(d) for d in _run_dirs(tmp_path)} == before, "a finished run was touched by the relaunch"
    logs = _job_logs(tmp_path / "sweep2")
    assert len(logs) == 4
    for task, text in logs.items():
        assert FINISHED_MSG in text, f"task {task} did not report its run as finished:\n{text[-2000:]}"
        assert RESUME_MSG not in text
    print(f"\n4-job sweep: {first_s:.0f}s; relaunch of the finished sweep: {relaunch_s:.0f}s")


def test_scancel_mid_run_then_relaunch_resumes_only_the_cancelled_job(tmp_path, job_name):
    # Task 0 is the slow one (12 samples, some skipped as too long for the tiny model's
    # context); tasks 1 and 2 are quick. The slow one must outlast the time between scancel
    # and SIGKILL (KillWait=0 in scripts/local_slurm.sh) after its first rows: ~1.5 s once,
    # 4.6 s on the CI VM of 2026-12-06, where one pass's remaining ~6 s of work sometimes
    # finished first and the job completed. Three timed passes: its first rows come after AR's
    # last pass, and the method's three passes (~13 s) remain.
    victim_limit = 12
    sweep = ["max_new_tokens=192", "timing_repeats=3", f"dataset.limit={victim_limit},1,2"]
    cmd = _launch_cmd(tmp_path, "sweep1", job_name, *sweep)
    log = tmp_path / "launch1.log"
    t0 = time.monotonic()
    proc = _start(cmd, log)

    # Wait until the slow job has written its first generation (after the rows of the samples
    # too long for the model, which come first), then cancel its array task.
    victim, deadline = None, time.monotonic() + LAUNCH_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        victim = next((d for d in _run_dirs(tmp_path) if _limit(d) == victim_limit), None)
        if (victim is not None and (victim / "rows.jsonl").exists()
                and any(not r.get("skipped") for r in _rows(victim))):
            break
        time.sleep(0.2)
    else:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        _fail_with_logs("the slow job never wrote its first sample", log, tmp_path / "sweep1")
    task0 = next(t for t in _job_logs(tmp_path / "sweep1") if t.endswith("_0"))
    assert not (victim / "DONE").exists()
    subprocess.run(["scancel", task0], check=True, timeout=30)
    cancelled_after = len(_rows(victim))

    rc = _wait(proc, log)
    # submitit raises at the first failed task, so the launcher may exit while the quick
    # tasks still run; relaunching before they end would run them twice at once.
    _wait_until_gone(job_name)
    first_s = time.monotonic() - t0
    assert rc != 0, f"the launcher must report the cancelled task as failed:\n{_tail(log)}"
    assert "UncompletedJobError" in log.read_text() or "has not produced any output" in log.read_text(), _tail(log)
    assert not (victim / "DONE").exists(), (
        "the slow job finished inside the kill grace period: it was not cancelled mid-run "
        "(give it more work: dataset.limit or max_new_tokens)")
    partial = (victim / "rows.jsonl").read_bytes()
    n_partial = len(_rows(victim))
    assert cancelled_after <= n_partial and not (victim / "summary.json").exists(), n_partial
    others = [d for d in _run_dirs(tmp_path) if d != victim]
    assert len(others) == 2 and all((d / "DONE").exists() for d in others), "the quick jobs should have finished"
    before = {d: _stamp(d) for d in others}

    # Relaunch the same sweep: only the cancelled job does work, from where it stopped.
    relaunch_s = _sweep_or_fail(tmp_path, "sweep2", job_name, sweep, "relaunch")
    assert (victim / "DONE").exists()
    assert {d: _stamp(d) for d in others} == before, "a finished job was redone by the relaunch"
    rows = _rows(victim)
    kept = _rows_of(partial)
    # Rows are written as generations finish and completed (scores, divergences) after the
    # job's last one (hsd_bench/deferred.py): the relaunch keeps every row written before
    # the cancel, in place, and only fills in what was pending.
    assert [_generation(r) for r in rows[: len(kept)]] == [_generation(r) for r in kept], (
        "rows written before the cancel must be kept as they were")
    assert any(r.get("scores") is None for r in kept if not r.get("skipped")), "the cancel came before any scoring"
    assert all(r.get("skipped") or r["scores"] is not None for r in rows), "every row is scored in the end"
    keys = [(r["sample_id"], r["method"]) for r in rows]
    assert len(keys) == len(set(keys)), "a (sample, method) row was written twice"
    per_sample: dict[str, set] = {}
    for sid, method in keys:
        per_sample.setdefault(sid, set()).add(method)
    # every sample: the method and AR, or one "*" row when its prompt does not fit the tiny model's context
    assert len(per_sample) == victim_limit
    assert all(m in ({"layerskip", "autoregressive"}, {"*"}) for m in per_sample.values()), per_sample

    logs = _job_logs(tmp_path / "sweep2")
    by_run = {d: [t for t, text in logs.items() if str(d) in text] for d in [victim, *others]}
    for d in others:
        (task,) = by_run[d]
        assert FINISHED_MSG in logs[task], logs[task][-2000:]
    (vtask,) = by_run[victim]
    assert f"{RESUME_MSG} {n_partial} rows already written" in logs[vtask], logs[vtask][-2000:]
    done_before = len({r["sample_id"] for r in _rows_of(partial)})
    print(f"\ncancel sweep: {first_s:.0f}s (scancel after {cancelled_after} rows; killed after {done_before} of "
          f"{victim_limit} samples); relaunch: {relaunch_s:.0f}s")
