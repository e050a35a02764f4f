"""``scripts/profile_host.py`` end to end on CPU with a tiny random model.

It is run on a scarce GPU to find where the engine's host time goes, so it must not
meet a bug there first: every method's engine is built as run.py builds it (a draft
whose path is the target's is a model of its own), and the report names the engine's
functions with their calls.
"""

from __future__ import annotations

import json

import pytest
from conftest import load_script


def test_profile_host_on_cpu(tmp_path):
    script = load_script("profile_host")
    assert script.main([
        "--model", "random:llama", "--draft", "random:llama", "--override", "model.num_layers=8",
        "--methods", "hispec,vanilla_sd", "--device", "cpu", "--dtype", "float32", "--limit", "1",
        "--max-new", "4", "--reps", "1", "--out", str(tmp_path),
    ]) == 0
    doc = json.loads((tmp_path / "host_profile.json").read_text())
    assert set(doc["methods"]) == {"hispec", "vanilla_sd"}
    for name, m in doc["methods"].items():
        assert m["tokens"] == 4, name  # one prompt, four new tokens
        assert m["plain_s"] > 0 and m["profiled_s"] > 0
        functions = {r["function"].split(":")[0] + ":" + r["function"].split("(")[-1] for r in m["project_cumulative"]}
        assert "engine.py:generate)" in functions, functions
        assert all(r["calls"] >= 1 and r["cumtime_s"] >= r["tottime_s"] for r in m["project_cumulative"])
    text = (tmp_path / "host_profile.txt").read_text()
    assert "## hispec" in text and "## vanilla_sd" in text and "µs/token under cProfile" in text


@pytest.mark.parametrize("argv, message", [
    (["--methods", "hispec,nope"], "unknown nope"),
    (["--reps", "0"], "--reps=0 must be >= 1"),
    (["--max-new", "0"], "--max-new=0 must be >= 1"),
])
def test_profile_host_rejects_bad_arguments(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        load_script("profile_host").parse_args([*argv, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_run_py_workload_refuses_an_unknown_method():
    from hsd_bench.bench.jobs import run_py_workload

    with pytest.raises(ValueError, match="valid are autoregressive, layerskip, hispec, vanilla_sd"):
        run_py_workload("random:llama", ["autoregressive", "medusa"], "cpu", "float32", 1, 4)
