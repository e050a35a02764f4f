"""``scripts/bench_gpu.py`` end to end on CPU with tiny random models.

The GPU run is scarce (minutes a session), so the script must not meet a bug
there first. In float32 every speculative method must reproduce its
backend's autoregressive output exactly, and the script must report it so.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script_methods_part_on_cpu(tmp_path):
    bench = load_script()
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--parts", "methods", "--target", "random:tiny",
        "--draft", "random:tiny-draft", "--prompts", "2", "--prompt-len", "8", "--max-new", "12", "--reps", "1",
        "--out", str(tmp_path),
    ])
    assert rc == 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    part = doc["parts"]["methods"]
    assert "error" not in part, part
    rows = {r["name"]: r for r in part["rows"]}
    ours = [r for r in rows.values() if r["name"].startswith("ours")]
    assert {r["method"] for r in ours} == {"autoregressive", "layerskip", "hispec", "vanilla_sd"}
    for r in rows.values():
        assert r["tokens_per_rep"] == 2 * 12, r["name"]  # EOS off: every run makes the full budget
        assert r["tokens_per_s"] > 0 and r["mean_accepted_len"] >= 1.0
    for r in ours:
        assert r["parity_vs_same_backend_ar"] == 1.0, r["name"]
        assert r["parity_vs_hf_ar"] == 1.0, r["name"]
        split = r["time_split"]
        assert 0.0 <= split["overhead_frac"] <= 1.0
    for name in ("HF assistant_early_exit", "HF assistant_model"):
        (row,) = [r for n, r in rows.items() if n.startswith(name)]
        assert row["parity_vs_same_backend_ar"] == 1.0
    assert set(part["comparisons"]) >= {"layerskip_ours_over_hf", "vanilla_sd_ours_over_hf", "hispec_engine_overhead_frac"}
    md = (tmp_path / "bench.md").read_text()
    assert "ours hispec" in md and "HF eager AR" in md


def test_bench_script_rejects_unknown_part(tmp_path):
    bench = load_script()
    with pytest.raises(SystemExit, match="unknown --parts"):
        bench.main(["--device", "cpu", "--parts", "nope", "--out", str(tmp_path)])
