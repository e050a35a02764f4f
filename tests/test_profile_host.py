"""``scripts/profile_host.py`` end to end on CPU with a tiny random model.

It is run on a scarce GPU to find where the engine's host time goes, so it must not
meet a bug there first: every method's engine is built as run.py builds it (a draft
whose path is the target's is a model of its own), and the report names the engine's
functions with their calls.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("profile_host", ROOT / "scripts" / "profile_host.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_host_on_cpu(tmp_path):
    script = load_script()
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
        load_script().parse_args([*argv, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
