"""The run command end to end: config composition, run directories, resume,
argument rewriting, and validation before any generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hsd_bench import runner
from hsd_bench.cli import rewrite_exit_lists
from hsd_bench.config import register_schemas

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model=tiny_random", "dataset=humaneval", "dataset.limit=3", "max_new_tokens=8", "warmup_tokens=2",
        "dataset.ids=[HumanEval/0,HumanEval/2,HumanEval/4]"]


def _cfg(tmp_path, *overrides):
    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*TINY, f"results_dir={tmp_path}", *overrides])


def test_exit_lists_are_rewritten_outside_multirun():
    assert rewrite_exit_lists(["run.py", "method=hispec", "exit=8,16"]) == ["run.py", "method=hispec", "exit=[8,16]"]
    assert rewrite_exit_lists(["run.py", "method.exit=3,6"]) == ["run.py", "method.exit=[3,6]"]
    assert rewrite_exit_lists(["run.py", "exit=4"]) == ["run.py", "exit=4"]
    assert rewrite_exit_lists(["run.py", "-m", "exit=4,8"]) == ["run.py", "-m", "exit=4,8"]  # a sweep
    assert rewrite_exit_lists(["run.py", "dataset.ids=[a,b]"]) == ["run.py", "dataset.ids=[a,b]"]


def test_run_writes_rows_summary_and_done_then_skips(tmp_path, capsys):
    before = runner.GENERATIONS_RUN
    result = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=2", "method.draft_len=3"))
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"run directory: {result.run_dir}"
    assert (result.run_dir / "DONE").exists()
    rows = [json.loads(l) for l in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    methods = {r["method"] for r in rows if not r.get("skipped")}
    assert methods == {"layerskip", "autoregressive"}
    for r in rows:
        if not r.get("skipped"):
            assert {"sample_id", "method", "output_ids", "output_text", "scores"} <= set(r)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    for name in ("layerskip", "autoregressive"):
        s = summary["methods"][name]
        for key in ("tokens_per_s", "speedup_vs_ar", "acceptance_rate", "mean_accepted_len",
                    "layer_evals_per_token", "parity_exact"):
            assert key in s
    assert summary["methods"]["layerskip"]["parity_exact"] == 1.0
    assert summary["lossless"] is True and summary["provenance"]["torch"]
    ran = runner.GENERATIONS_RUN - before
    assert ran == 2 * summary["methods"]["layerskip"]["n_samples"]
    # a relaunch does no generation at all
    again = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=2", "method.draft_len=3"))
    assert again.skipped and again.run_dir == result.run_dir
    assert runner.GENERATIONS_RUN - before == ran


def test_killed_run_resumes_without_redoing_finished_samples(tmp_path):
    cfg = _cfg(tmp_path, "method=hispec", "exit=[1,3]", "baseline=false")
    first = runner.run_job(cfg)
    rows_file = first.run_dir / "rows.jsonl"
    lines = rows_file.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    # simulate a kill: DONE and summary gone, the last row torn mid-write
    (first.run_dir / "DONE").unlink()
    (first.run_dir / "summary.json").unlink()
    rows_file.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    before = runner.GENERATIONS_RUN
    second = runner.run_job(cfg)
    assert runner.GENERATIONS_RUN - before == 2  # only the torn and the missing sample
    new_lines = rows_file.read_text().splitlines()
    assert new_lines[0] == lines[0].rstrip("\n")
    assert [json.loads(l)["sample_id"] for l in new_lines] == [json.loads(l)["sample_id"] for l in lines]
    assert (second.run_dir / "DONE").exists()


def test_a_resumed_run_says_its_speedup_mixes_processes_and_counts_every_rows_timing(tmp_path):
    """A resumed run keeps its finished rows and times the rest in a new process: its speedup is
    then no ratio from one job, which the record says; and the summary's must-be-0 timing counts
    cover the rows an earlier process wrote, not only this one's."""
    cfg = _cfg(tmp_path, "method=layerskip", "exit=2", "method.draft_len=3")
    first = runner.run_job(cfg)
    assert not any("processes" in w for w in first.summary["timing_warnings"])
    assert first.summary["methods"]["layerskip"]["launches"] == 1
    rows_file = first.run_dir / "rows.jsonl"
    rows = [json.loads(l) for l in rows_file.read_text().splitlines()]
    kept = [r for r in rows if not (r["method"] == "layerskip" and r["sample_id"] == rows[-1]["sample_id"])]
    kept[0] = {**kept[0], "graph_captures": 2, "retimed": True}  # what an earlier process measured
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (first.run_dir / "DONE").unlink()
    (first.run_dir / "summary.json").unlink()
    logged = []
    second = runner.run_job(cfg, log=logged.append)
    s = second.summary
    assert any("timed by 2 run.py processes" in line and line.endswith("(docs/sweeps.md, resuming)")
               for line in logged)
    assert s["methods"]["layerskip"]["launches"] == 2 and s["methods"]["autoregressive"]["launches"] == 1
    assert any("timed by 2 run.py processes" in w and w.startswith("layerskip") for w in s["timing_warnings"])
    assert s["methods"]["layerskip"]["timing_warning_count"] >= 1
    assert s["graph_captures_timed"] == 2 and s["retimed_samples"] == 1


def test_different_configs_get_different_run_dirs(tmp_path):
    a = runner.RunDir(tmp_path, runner.identity(runner._as_container(_cfg(tmp_path, "method.draft_len=2"))))
    b = runner.RunDir(tmp_path, runner.identity(runner._as_container(_cfg(tmp_path, "method.draft_len=3"))))
    c = runner.RunDir(tmp_path, runner.identity(runner._as_container(_cfg(tmp_path / "x", "method.draft_len=2", "progress=false"))))
    assert a.hash != b.hash and a.hash == c.hash


def test_unknown_key_fails_at_compose_time(tmp_path):
    with pytest.raises(Exception, match="bogus"):
        _cfg(tmp_path, "method.bogus=1")


@pytest.mark.parametrize("override,message", [
    ("exit=99", r"exit=99 is outside the model's depth: an early exit must be in 1..7"),
    ("method.draft_len=0", r"method.draft_len=0 must be an integer >= 1"),
    ("dataset.name=squad", r"unknown dataset 'squad'"),
])
def test_bad_values_fail_before_loading_models(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        runner.run_job(_cfg(tmp_path, "method=layerskip", override))
    assert not any(tmp_path.iterdir())  # nothing was written


def _run_cli(args, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CI": "true"}
    return subprocess.run([sys.executable, "run.py", *args, f"results_dir={tmp_path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_hispec_exit_list_as_typed_and_too_shallow_model(tmp_path):
    ok = _run_cli(["method=hispec", "exit=8,16", *TINY[:1], "model.num_layers=18", "dataset.limit=1",
                   "max_new_tokens=4", "warmup_tokens=0", "dataset.ids=[HumanEval/2]"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "run directory:" in ok.stdout
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["config"]["method"]["exit"] == [8, 16]
    assert [p.name for p in tmp_path.iterdir()] == [summary["run_hash"]]  # no hydra/<timestamp>/ beside it
    bad = _run_cli(["method=hispec", "exit=8,16", *TINY], tmp_path / "bad")
    assert bad.returncode == 2
    assert "exit[0] (E_d)=8 is outside the model's depth" in bad.stderr and "1..7" in bad.stderr


def test_bad_sweep_fails_before_any_job(tmp_path):
    res = _run_cli(["-m", "method=layerskip", "exit=2,42", *TINY], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "exit=42 is outside the model's depth" in res.stderr
    assert not list(tmp_path.glob("*/rows.jsonl"))  # no job ran, not even the valid one


def test_resume_after_a_recorded_skip(tmp_path):
    """A prompt too long for the context is a recorded skip; a resumed run keeps it and moves on."""
    cfg = _cfg(tmp_path, "method=layerskip", "exit=2", "model.max_context=400")
    first = runner.run_job(cfg)
    rows = [json.loads(l) for l in (first.run_dir / "rows.jsonl").read_text().splitlines()]
    skipped = [r for r in rows if r.get("skipped")]
    assert skipped and "does not fit the context of 400" in skipped[0]["reason"]
    assert json.loads((first.run_dir / "summary.json").read_text())["skipped_samples"]
    (first.run_dir / "DONE").unlink()
    before = runner.GENERATIONS_RUN
    second = runner.run_job(cfg)
    assert not second.skipped and runner.GENERATIONS_RUN == before  # nothing left to generate
    assert len((second.run_dir / "rows.jsonl").read_text().splitlines()) == len(rows)


def test_summary_table_when_every_prompt_was_skipped():
    from hsd_bench.metrics import format_table

    assert "every prompt was skipped" in format_table({})


def test_a_run_held_by_another_job_is_left_alone(tmp_path):
    """An overlapping relaunch must not append the same rows twice."""
    cfg = _cfg(tmp_path, "method=layerskip", "exit=2")
    holder = runner.RunDir(tmp_path, runner.identity(runner._as_container(cfg)))
    assert holder.try_lock()
    try:
        before = runner.GENERATIONS_RUN
        result = runner.run_job(cfg)
        assert result.skipped and runner.GENERATIONS_RUN == before
        assert not (holder.path / "rows.jsonl").exists()
    finally:
        holder.unlock()
    assert not runner.run_job(cfg).skipped  # free again: the run proceeds


def test_a_resumed_run_warms_up_only_the_decoders_it_still_times(tmp_path, monkeypatch):
    """Warm-up compiles and captures every shape a decoder reaches (a minute or more on a GPU); a
    resumed run whose AR rows, or all rows, are written has nothing to time for those decoders."""
    from hsd_bench import measure

    warmed = []
    real_prepare = measure.prepare
    monkeypatch.setattr(measure, "prepare",
                        lambda decoders, *a, **k: real_prepare(warmed.append(list(decoders)) or warmed[-1], *a, **k))
    cfg = _cfg(tmp_path, "method=layerskip", "exit=2", "method.draft_len=3")
    first = runner.run_job(cfg)
    assert len(warmed[-1]) == 2  # the method and AR
    rows_file = first.run_dir / "rows.jsonl"
    rows = [json.loads(l) for l in rows_file.read_text().splitlines()]
    (first.run_dir / "DONE").unlink()
    (first.run_dir / "summary.json").unlink()
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))  # the method's last row lost
    runner.run_job(cfg)
    assert len(warmed[-1]) == 1 and len(warmed[-1][0].levels) == 2  # the method alone (AR: one level)
    (first.run_dir / "DONE").unlink()
    (first.run_dir / "summary.json").unlink()  # every row written, the summary not (killed while scoring)
    logged = []
    before = runner.GENERATIONS_RUN
    again = runner.run_job(cfg, log=logged.append)
    assert warmed[-1] == [] and runner.GENERATIONS_RUN == before and again.summary["compile_s"] == 0.0
    assert "[hsd-bench] every row was already generated: nothing to warm up or time" in logged


def test_a_lossy_rule_says_so_in_the_log_not_only_in_the_summary(tmp_path):
    logged = []
    lossy = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=2", "verifier=hsd_official"), log=logged.append)
    assert lossy.summary["lossless"] is False
    assert any(line.startswith("[hsd-bench] note: verifier=hsd_official is not lossless") for line in logged)
    logged.clear()
    exact = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=2", "verifier=hsd"), log=logged.append)
    assert exact.summary["lossless"] is True and not any("not lossless" in line for line in logged)
