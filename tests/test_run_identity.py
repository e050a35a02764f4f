"""Run identity and resume: a relaunch never returns rows that no longer describe its inputs.

What is checked: editing a dataset file (or a checkpoint) gives a new run
instead of the finished run's rows; ``cpu_threads`` is part of the identity;
the file-hash cache cannot be fooled by a rewrite that keeps size and mtime;
every row records its code version and a resume across a code change is
refused unless asked for; a launch that takes the lock after another job
finished the run does nothing; a corrupt row in the middle of rows.jsonl is
set aside (and said) while every valid row around it is kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hsd_bench import fingerprint, runner
from hsd_bench.config import register_schemas
from hsd_bench.results import CORRUPT_NAME, RunDir

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "fixtures" / "datasets"
TINY = ["model=tiny_random", "max_new_tokens=4", "warmup_tokens=0", "progress=false", "method=layerskip", "exit=2"]


@pytest.fixture(autouse=True)
def hash_cache(tmp_path, monkeypatch) -> Path:
    """A private file-hash cache per test (never the user's ~/.cache)."""
    path = tmp_path / "hash-cache.json"
    monkeypatch.setenv(fingerprint.CACHE_ENV, str(path))
    return path


def _cfg(results: Path, *overrides: str) -> dict:
    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, f"results_dir={results}", *overrides])
    return runner._as_container(cfg)


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]


def _humaneval_file(path: Path, n: int = 2) -> Path:
    lines = (DATA / "humaneval_test.jsonl").read_text().splitlines()[:n]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_editing_the_dataset_file_reruns_instead_of_returning_stale_rows(tmp_path, capsys):
    data = _humaneval_file(tmp_path / "he.jsonl")
    cfg = _cfg(tmp_path / "runs", f"dataset.path={data}", "baseline=false")
    first = runner.run_job(cfg)
    old = {r["sample_id"]: r for r in _rows(first.run_dir)}
    assert runner.run_job(cfg).skipped  # unchanged file: finished, nothing to do

    # the same path, new content: a problem replaced in place
    records = [json.loads(line) for line in data.read_text().splitlines()]
    records[0].update(task_id="Edited/0", prompt="def totally_new_function(x):\n    ")
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = runner.GENERATIONS_RUN
    second = runner.run_job(cfg)
    assert not second.skipped and second.run_dir != first.run_dir
    assert runner.GENERATIONS_RUN - before == len(records)
    assert {r["sample_id"] for r in _rows(second.run_dir)} == {r["task_id"] for r in records}
    assert "Edited/0" not in old and (first.run_dir / "DONE").exists()  # the old run is kept as it was


def test_inputs_and_cpu_threads_enter_the_identity(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(ROOT / "checkpoints" / "family-2x128", ckpt)
    data = _humaneval_file(tmp_path / "he.jsonl")
    base = _cfg(tmp_path, f"model.path={ckpt}", f"dataset.path={data}")
    ident = runner.identity(base)
    assert set(ident["input_hashes"]) == {"model.path", "dataset.path"}
    assert runner.identity(_cfg(tmp_path, f"model.path={ckpt}", f"dataset.path={data}", "cpu_threads=2")) != ident

    # weights rewritten in place, same size and mtime restored: a new identity all the same
    weights = ckpt / "model.safetensors"
    st = weights.stat()
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert weights.stat().st_size == st.st_size and weights.stat().st_mtime_ns == st.st_mtime_ns
    edited = runner.identity(base)
    assert edited["input_hashes"]["model.path"] != ident["input_hashes"]["model.path"]
    assert edited["input_hashes"]["dataset.path"] == ident["input_hashes"]["dataset.path"]
    # a file outside the checkpoint's weights/config/tokenizer (notes) does not change it
    (ckpt / "NOTES.md").write_text("trained on a Tuesday\n")
    assert runner.identity(base) == edited


def test_file_hashes_are_cached_but_never_stale(tmp_path, monkeypatch, hash_cache):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 4096)
    calls = []
    real = fingerprint._sha256
    monkeypatch.setattr(fingerprint, "_sha256", lambda p: calls.append(p) or real(p))
    first = fingerprint.file_sha256(f)
    assert fingerprint.file_sha256(f) == first and len(calls) == 1  # second look: from the cache
    assert str(f.resolve()) in json.loads(hash_cache.read_text())
    st = f.stat()
    f.write_bytes(b"b" * 4096)  # same size, mtime put back: only ctime tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint.file_sha256(f) != first and len(calls) == 2
    hash_cache.write_text("{not json")  # a broken cache costs a rehash, never an error
    assert fingerprint.file_sha256(f) == fingerprint._sha256(f)


def test_rows_record_their_code_version_and_a_resume_across_versions_is_refused(tmp_path, monkeypatch, capsys):
    cfg = _cfg(tmp_path, "dataset.limit=2", "baseline=false")
    first = runner.run_job(cfg)
    rows = _rows(first.run_dir)
    here = fingerprint.code_version()
    assert all(r["code_version"] == here for r in rows)
    assert first.summary["code_versions"] == [{**here, "rows": len(rows)}]
    # a killed run: the last row is gone, then the code changes
    (first.run_dir / "DONE").unlink()
    lines = (first.run_dir / "rows.jsonl").read_text().splitlines(keepends=True)
    (first.run_dir / "rows.jsonl").write_text(lines[0])
    other = {**here, "source": "0123456789abcdef", "commit": "f" * 40, "dirty": False}
    monkeypatch.setattr(runner, "code_version", lambda: other)
    before = runner.GENERATIONS_RUN
    with pytest.raises(ValueError, match=r"resume_across_code_change=false: .* 1 row\(s\) written by code "
                                         r".*\[source " + here["source"] + r"\].*this is code ffffffffffff"):
        runner.run_job(cfg)
    assert runner.GENERATIONS_RUN == before
    assert (first.run_dir / "rows.jsonl").read_text() == lines[0]  # untouched

    resumed = runner.run_job({**cfg, "resume_across_code_change": True})
    assert runner.GENERATIONS_RUN - before == 1 and resumed.run_dir == first.run_dir  # not part of the identity
    assert [r["code_version"]["source"] for r in _rows(first.run_dir)] == [here["source"], other["source"]]
    assert sorted(v["source"] for v in resumed.summary["code_versions"]) == sorted([here["source"], other["source"]])


def test_a_run_finished_while_waiting_for_the_lock_is_not_redone(tmp_path, monkeypatch):
    """Two launches pass the first DONE check; the second takes the lock after the first finished."""
    cfg = _cfg(tmp_path, "dataset.limit=1", "baseline=false")
    finished = runner.run_job(cfg)
    summary = (finished.run_dir / "summary.json").read_bytes()
    done = finished.run_dir / "DONE"
    done.unlink()
    real_lock = RunDir.try_lock

    def lock_after_the_other_job_finished(self):
        done.write_text("")  # the other job writes DONE just before we get the lock
        return real_lock(self)

    monkeypatch.setattr(RunDir, "try_lock", lock_after_the_other_job_finished)
    monkeypatch.setattr(runner, "ModelPool", lambda *a, **k: pytest.fail("loaded a model for a finished run"))
    monkeypatch.setattr(runner, "_log_wandb", lambda *a, **k: pytest.fail("logged a finished run again"))
    before = runner.GENERATIONS_RUN
    again = runner.run_job(cfg)
    assert again.skipped and runner.GENERATIONS_RUN == before
    assert (finished.run_dir / "summary.json").read_bytes() == summary


def test_a_corrupt_row_mid_file_is_set_aside_and_the_rows_after_it_kept(tmp_path, capsys):
    cfg = _cfg(tmp_path, "dataset.limit=4", "baseline=false", "model.max_context=1024")  # every prompt fits
    first = runner.run_job(cfg)
    rows_file = first.run_dir / "rows.jsonl"
    lines = rows_file.read_text().splitlines(keepends=True)
    assert len(lines) == 4 and all(json.loads(line)["method"] == "layerskip" for line in lines)
    (first.run_dir / "DONE").unlink()
    garbage = '{"sample_id": "HumanEval/x", "method": "lay\x00\n'
    rows_file.write_text(lines[0] + garbage + lines[2] + lines[3][:10])  # row 2 corrupt, row 4 torn
    capsys.readouterr()
    before = runner.GENERATIONS_RUN
    second = runner.run_job(cfg)
    out = capsys.readouterr().out
    assert runner.GENERATIONS_RUN - before == 2  # the corrupt row's sample and the torn one's
    assert f"line(s) 2 are not valid rows; moved them to {CORRUPT_NAME}" in out
    assert "dropped a torn last line" in out
    assert (first.run_dir / CORRUPT_NAME).read_text() == garbage
    now = rows_file.read_text().splitlines(keepends=True)
    assert now[:2] == [lines[0], lines[2]]  # the valid rows, byte for byte, in place
    ids = [json.loads(line)["sample_id"] for line in now]
    assert sorted(ids) == sorted(json.loads(line)["sample_id"] for line in lines)
    assert second.summary["methods"]["layerskip"]["n_samples"] == first.summary["methods"]["layerskip"]["n_samples"]


def test_a_load_error_leaves_no_run_directory(tmp_path):
    cfg = _cfg(tmp_path / "runs", "model.path=nobody/no-such-model-xyz")
    with pytest.raises(ValueError, match=r"cannot load model.path='nobody/no-such-model-xyz'"):
        runner.run_job(cfg)
    assert list((tmp_path / "runs").iterdir()) == []  # no folder holding only .lock


def test_code_version_outside_a_git_checkout_falls_back_to_the_package(tmp_path, monkeypatch):
    """An installed copy (here: inside an unrelated git repository) records its package version, not that repo's commit."""
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    copy = tmp_path / "site-packages" / "hsd_bench"
    shutil.copytree(fingerprint.CODE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "CODE_DIR", copy)
    version = fingerprint.code_version.__wrapped__()
    assert "commit" not in version and version["package"].startswith("hsd-bench")
    assert version["source"] == fingerprint.code_version()["source"]  # the same files, the same source hash
    (copy / "engine.py").write_text((copy / "engine.py").read_text() + "\n# edited\n")
    assert fingerprint.code_version.__wrapped__()["source"] != version["source"]


def test_timing_repeats_times_every_row_in_several_passes_and_enters_the_identity(tmp_path):
    """timing_repeats=N: each decoder decodes the samples N times; a row keeps its median pass and
    lists every pass's wall time; the summary gives each pass's tokens/s. The default (null)
    names nothing in the hash, so runs from before the key keep their directories."""
    data = _humaneval_file(tmp_path / "he.jsonl")
    default = _cfg(tmp_path / "runs", f"dataset.path={data}")
    assert "timing_repeats" not in runner.identity(default)
    cfg = _cfg(tmp_path / "runs", f"dataset.path={data}", "timing_repeats=3")
    assert runner.identity(cfg) != runner.identity(default)
    before = runner.GENERATIONS_RUN
    result = runner.run_job(cfg)
    rows = _rows(result.run_dir)
    assert runner.GENERATIONS_RUN - before == 3 * len(rows)  # 2 samples x (AR + layerskip) x 3 passes
    for r in rows:
        assert len(r["wall_s_passes"]) == 3 and r["wall_s"] == sorted(r["wall_s_passes"])[1]
        assert "pass_outputs_differ" not in r  # greedy on CPU: every pass decodes the same tokens
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["timing_repeats"] == 3
    for method, s in summary["methods"].items():
        mine = [r for r in rows if r["method"] == method]
        tokens = sum(r["n_generated"] for r in mine)
        assert s["tokens_per_s_passes"] == pytest.approx(
            [tokens / sum(r["wall_s_passes"][k] for r in mine) for k in range(3)])
        # the host's speed before each pass (host_probe.py), the same passes for every row
        probes = mine[0]["host_probe_us_passes"]
        assert len(probes) == 3 and all(0 < p < 1e5 for p in probes)
        assert all(r["host_probe_us_passes"] == probes for r in mine)
        assert s["host_probe_us_passes"] == probes and s["host_probe_us"] == sorted(probes)[1]
        # the timing thread's preemptions in each pass's generation (Linux counts them per thread)
        assert all(len(r["preemptions_passes"]) == 3 and min(r["preemptions_passes"]) >= 0 for r in mine)
        assert s["preemptions_passes"] == [sum(r["preemptions_passes"][k] for r in mine) for k in range(3)]
        # ... and how long it waited for a CPU (Linux's run delay), summed per pass and as a share of the pass
        assert all(len(r["cpu_wait_s_passes"]) == 3 and min(r["cpu_wait_s_passes"]) >= 0 for r in mine)
        waits = [sum(r["cpu_wait_s_passes"][k] for r in mine) for k in range(3)]
        assert s["cpu_wait_s_passes"] == pytest.approx(waits)
        assert s["cpu_wait_share_passes"] == pytest.approx(
            [waits[k] / sum(r["wall_s_passes"][k] for r in mine) for k in range(3)])
        assert all(0 <= w < 1 for w in s["cpu_wait_share_passes"])


def test_passes_that_decode_different_tokens_are_flagged_counted_and_said(tmp_path, monkeypatch):
    """A decoder that is not deterministic would make the kept output depend on which pass was
    the median: the row says so, the summary counts it, the log warns."""
    from hsd_bench import measure

    real = measure.timed_passes

    def unsteady(*args, **kwargs):
        for i, timed in real(*args, **kwargs):
            timed.outputs_agree = i != 0  # the first sample of every decoder "differed"
            yield i, timed

    monkeypatch.setattr(measure, "timed_passes", unsteady)
    data = _humaneval_file(tmp_path / "he.jsonl")
    lines: list[str] = []
    result = runner.run_job(_cfg(tmp_path / "runs", f"dataset.path={data}", "timing_repeats=2"), log=lines.append)
    rows = _rows(result.run_dir)
    assert sum(bool(r.get("pass_outputs_differ")) for r in rows) == 2  # one per decoder
    assert json.loads((result.run_dir / "summary.json").read_text())["pass_outputs_differ"] == 2
    assert any("decoded different tokens in different timed passes" in line for line in lines)


def test_a_job_timed_across_host_states_says_so_in_its_log(tmp_path, monkeypatch):
    """The host probe before each pass (measure.py rule 6): AR's two passes in one host state, the
    method's in another -- the log names both the method's mixed passes and its speedup."""
    from hsd_bench import host_probe, measure

    probes = iter([16.0, 16.4, 26.0, 16.2])  # AR pass 1, AR pass 2, layerskip pass 1, layerskip pass 2
    monkeypatch.setattr(measure.host_probe, "round_trip_us", lambda device: next(probes))
    data = _humaneval_file(tmp_path / "he.jsonl")
    lines: list[str] = []
    result = runner.run_job(_cfg(tmp_path / "runs", f"dataset.path={data}", "timing_repeats=2"), log=lines.append)
    methods = json.loads((result.run_dir / "summary.json").read_text())["methods"]
    assert methods["autoregressive"]["host_probe_us_passes"] == [16.0, 16.4]
    assert methods["layerskip"]["host_probe_us_passes"] == [26.0, 16.2]
    warned = [line for line in lines if line.startswith("[hsd-bench] warning:") and line.endswith("rule 6)")]
    assert warned == [f"[hsd-bench] warning: {w} (docs/performance.md, rule 6)"
                      for w in host_probe.state_warnings(methods, "autoregressive")]
    # AR's passes may also warn of their rates' spread (a CPU's two passes of a tiny model can lie
    # more than RATE_SPREAD apart); layerskip's probes name two states, so its passes warn of that
    states = [line for line in warned if "host states" in line]
    assert len(states) == 2 and "layerskip's timed passes ran in different host states" in states[0]
    assert "layerskip and autoregressive were timed in different host states" in states[1]
    # the record keeps what the log said, and each method's count: a scalar W&B and the sweep's table carry
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert [f"[hsd-bench] warning: {w} (docs/performance.md, rule 6)" for w in summary["timing_warnings"]] == warned
    counts = {name: m["timing_warning_count"] for name, m in methods.items()}
    own = {name: sum(w.startswith((f"{name}'s ", f"{name} and ")) for w in summary["timing_warnings"])
           for name in methods}
    # a method's count includes AR's own warnings: its speedup divides by AR's rate
    assert counts == {"autoregressive": own["autoregressive"], "layerskip": own["layerskip"] + own["autoregressive"]}
    assert own["layerskip"] >= 2 and sum(own.values()) == len(warned)
    from hsd_bench import collect, wandb_logging

    table = collect.summary_table(collect.collect_summaries([tmp_path / "runs"]))
    assert table.loc[table["method"] == "layerskip", "timing_warnings"].tolist() == [counts["layerskip"]]
    assert wandb_logging.summary_metrics(summary)["timing_warning_count"] == counts["layerskip"]


def test_the_progress_bar_counts_every_pass_and_ends_at_its_total(tmp_path, monkeypatch):
    """One unit per timed generation: samples x decoders x passes, advanced as each finishes."""
    from hsd_bench import progress

    bars = []

    class Recorder(progress.RunProgress):
        def __init__(self, total, **kwargs):
            super().__init__(total, **{**kwargs, "enabled": False})
            self.steps, self.rows = 0, 0
            bars.append(self)

        def update(self, rows=(), steps=None):
            rows = list(rows)
            self.rows += len(rows)
            self.steps += len(rows) if steps is None else steps
            super().update(rows, steps)

    monkeypatch.setattr(runner, "RunProgress", Recorder)
    data = _humaneval_file(tmp_path / "he.jsonl")
    runner.run_job(_cfg(tmp_path / "runs", f"dataset.path={data}", "timing_repeats=3"))
    (bar,) = bars
    assert bar.total == 2 * 2 * 3 and bar.steps == bar.total and bar.rows == 4
