"""The per-run progress bar (running tok/s, speedup, acceptance) and the one-line job summary."""

from __future__ import annotations

import io

import pytest

from hsd_bench.progress import RunProgress, bar_enabled, summary_line


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _rows(sample: str, ar_wall: float, m_wall: float, drafted: int, accepted: int, n: int = 10) -> list[dict]:
    return [
        {"sample_id": sample, "method": "autoregressive", "n_generated": n, "wall_s": ar_wall},
        {"sample_id": sample, "method": "layerskip", "n_generated": n, "wall_s": m_wall,
         "drafted": drafted, "accepted": accepted},
    ]


def test_bar_only_on_a_terminal_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert bar_enabled(True, FakeTTY())
    assert not bar_enabled(False, FakeTTY())
    assert not bar_enabled(True, io.StringIO()), "not a terminal: no bar"
    monkeypatch.setenv("CI", "true")
    assert not bar_enabled(True, FakeTTY()), "CI=true: no bar"


def test_running_figures_are_token_weighted(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = FakeTTY()
    bar = RunProgress(total=6, desc="layerskip humaneval", stream=out, unit="generation")
    bar.update(_rows("a", ar_wall=1.0, m_wall=0.5, drafted=8, accepted=6))
    bar.update(_rows("b", ar_wall=1.0, m_wall=1.5, drafted=8, accepted=2))
    s = bar.stats()
    assert s["tok_s"] == pytest.approx(20 / 2.0)
    assert s["speedup"] == pytest.approx((20 / 2.0) / (20 / 2.0))
    assert s["accept"] == pytest.approx(8 / 16)
    bar.close()
    text = out.getvalue()
    assert "layerskip humaneval" in text and "4/6" in text, "one step per row written"
    assert "generation" in text
    assert "tok_s=10.0" in text and "speedup=1.00x" in text and "accept=0.50" in text


def test_resume_starts_from_rows_on_disk(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = FakeTTY()
    with RunProgress(total=4, stream=out, done_rows=_rows("a", 1.0, 0.25, 4, 4)) as bar:
        assert bar.stats()["speedup"] == pytest.approx(4.0)
        assert bar.stats()["accept"] == pytest.approx(1.0)
        bar.update([], steps=2)  # sample "a"'s two generations, finished before the resume
        bar.update(_rows("b", 1.0, 0.5, 4, 0))
        assert bar.stats()["speedup"] == pytest.approx((20 / 0.75) / (20 / 2.0))
        assert bar.stats()["accept"] == pytest.approx(0.5)
    assert "4/4" in out.getvalue() and "speedup=2.67x" in out.getvalue()


def test_quiet_in_ci_but_still_counts(monkeypatch):
    monkeypatch.setenv("CI", "true")
    out = FakeTTY()
    bar = RunProgress(total=2, stream=out)
    bar.update(_rows("a", 1.0, 0.5, 4, 3))
    bar.close()
    assert out.getvalue() == ""
    assert bar.stats()["accept"] == pytest.approx(0.75)


def test_skipped_rows_and_baseline_only_runs():
    bar = RunProgress(total=2, enabled=False)
    bar.update([{"sample_id": "x", "method": "*", "skipped": True}])
    bar.update([{"sample_id": "y", "method": "autoregressive", "n_generated": 5, "wall_s": 0.5}])
    assert bar.stats() == {"tok_s": pytest.approx(10.0), "speedup": None, "accept": None}
    with pytest.raises(ValueError, match="total=-1"):
        RunProgress(total=-1)


def test_summary_line():
    summary = {"method": "hispec", "config": {"dataset": {"name": "gsm8k"}},
               "backend": "native", "compile_s": 12.34, "graph_captures_timed": 0,
               "methods": {"hispec": {"n_samples": 5, "tokens_per_s": 123.456, "speedup_vs_ar": 1.5,
                                      "acceptance_rate": 0.7, "mean_accepted_len": 2.25, "parity_exact": 1.0,
                                      "parity_unexplained": 0},
                           "autoregressive": {"n_samples": 5, "tokens_per_s": 82.3}}}
    line = summary_line(summary, "runs/abc")
    assert line == ("[hsd-bench] done hispec on gsm8k: 5 samples, 123.5 tok/s (1.50x vs AR), accept 0.70, "
                    "tau 2.25, parity 1.00 (0 unexplained), native backend, compile 12.3 s, 0 captures timed "
                    "-> runs/abc")
    assert "\n" not in line
    summary["methods"]["hispec"]["host_probe_us"] = 17.25
    assert summary_line(summary).endswith("0 captures timed, host probe 17.2 µs")
    summary["methods"]["hispec"]["preemptions_passes"] = [40, 3, 7]  # the median pass's count beside it
    assert summary_line(summary).endswith("0 captures timed, host probe 17.2 µs, preempted 7x a pass")
    summary["methods"]["hispec"]["cpu_wait_share_passes"] = [0.0, 0.226, 0.0]  # and the most any pass waited
    assert summary_line(summary).endswith("preempted 7x a pass, waiting for a CPU up to 22.6 % of a pass")
    bare = summary_line({"methods": {"autoregressive": {"n_samples": 1, "tokens_per_s": 3.0}}})
    assert bare.startswith("[hsd-bench] done autoregressive on ?: 1 samples, 3.0 tok/s (- vs AR)")


def test_transformers_weight_loading_bar_follows_the_runs_rule(monkeypatch, capfd):
    """In CI (or off a terminal) run.py draws no bar, and transformers' "Loading weights" bar, one per
    model, must not fill a job's log either; transformers' own setting is restored afterwards."""
    from transformers.utils import logging as tf_logging

    from hsd_bench.models.loading import ModelSpec, load_hf_model

    monkeypatch.setenv("CI", "true")
    assert tf_logging.is_progress_bar_enabled()
    load_hf_model(ModelSpec("checkpoints/family-2x128"))
    assert "Loading weights" not in capfd.readouterr().err
    assert tf_logging.is_progress_bar_enabled()
