"""``scripts/bench_batch.py`` end to end on CPU with tiny random models, and its table logic.

In float32 on CPU every method at every batch reproduces AR at that batch,
and the backend's own AR loop reproduces the engine's.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    """``scripts/bench_batch.py`` as a module (it imports ``bench_gpu`` from its own folder)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("bench_batch")


def test_bench_batch_script_on_cpu(tmp_path):
    bench = load_script()
    rc = bench.main([
        "--device", "cpu", "--dtype", "float32", "--models", "random:tiny", "--draft", "random:tiny-draft",
        "--mid-draft", "random:tiny-draft", "--batches", "1,3", "--rows-per-batch", "2", "--max-new", "6",
        "--prompt-len", "8", "--reps", "1", "--out", str(tmp_path),
    ])
    assert rc == 0
    doc = json.loads((tmp_path / "batch.json").read_text())
    model = doc["models"]["random:tiny"]
    assert "error" not in model, model
    rows = model["rows"]
    engine = [r for r in rows if r["method"] != "autoregressive(loop)"]
    assert {(r["method"], r["batch"]) for r in engine} == {
        (m, b) for m in ("autoregressive", "layerskip", "hispec", "vanilla_sd", "hierarchy") for b in (1, 3)}
    for r in rows:
        assert r["tokens_per_rep"] == 2 * r["batch"] * 6, r["name"]  # EOS off: the full budget for every prompt
        assert r["parity_vs_ar_same_batch"] == 1.0, r["name"]  # float32: every method reproduces AR
        assert r["speedup_vs_ar_same_batch"] > 0
    (loop,) = [r for r in rows if r["method"] == "autoregressive(loop)"]
    assert loop["batch"] == 3
    assert set(model["roofline"]) == {"engine AR", "native AR loop"}
    assert model["roofline"]["engine AR"]["bytes_per_step"] > model["roofline"]["engine AR"]["kv_bytes_per_step"] > 0
    md = (tmp_path / "batch.md").read_text()
    assert "| method | B=1 | B=3 | stops paying at |" in md and "| hispec |" in md
    assert (tmp_path / "batch.png").exists()
    again = tmp_path / "again"
    assert bench.main(["--figure-from", str(tmp_path / "batch.json"), "--out", str(again)]) == 0
    assert (again / "batch.png").exists() and (again / "batch.md").read_text() == md
    from hsd_bench.bench.batch import workload_label

    # the figure names the hardware, dtype and workload it measured
    assert workload_label(doc, "random:tiny", model) == f"{doc['info']['device']}, float32; 2×B random-id prompts × 6 tokens, 1 rep"


def test_speedups_and_where_a_method_stops_paying():
    from hsd_bench.bench.batch import speedup_table, stops_paying

    rows = [{"method": m, "batch": b, "tokens_per_s": t} for m, b, t in [
        ("autoregressive", 1, 10.0), ("autoregressive", 8, 40.0), ("autoregressive", 64, 100.0),
        ("hispec", 1, 25.0), ("hispec", 8, 50.0), ("hispec", 64, 90.0),
        ("autoregressive(loop)", 64, 120.0)]]
    table = speedup_table(rows)
    assert table["hispec"] == {1: 2.5, 8: 1.25, 64: 0.9} and "autoregressive(loop)" not in table
    assert stops_paying(table["hispec"]) == 64
    assert stops_paying({1: 2.0, 8: 0.9, 64: 1.1}) is None  # pays again at the largest batch
    assert stops_paying({1: 0.5, 8: 0.9}) == "never"
    from hsd_bench.bench.batch import paying_label
    # a method measured at one batch only says nothing about larger ones
    assert paying_label({1: 1.7, 4: None}) == "only B=1 measured"
    assert paying_label({1: 1.7, 4: 1.2}) == "pays up to B=4 (largest measured)"
    assert paying_label({1: 1.7, 4: 0.9}) == "4"


def test_roofline_names_what_binds():
    from types import SimpleNamespace

    from hsd_bench.bench.batch import ar_roofline

    class Cache:
        def nbytes_per_position(self):
            return 1000

    native = SimpleNamespace(args=SimpleNamespace(num_layers=2, num_heads=4, head_dim=8), cache=Cache(),
                             weight_bytes=lambda: 2_000_000, lm_head=SimpleNamespace(element_size=lambda: 2))
    small = ar_roofline(native, 1, 100.0, step_s=1e-3, copy_bw=2e9, matmul_flops=1e15)
    assert small["binds"] == "memory" and small["roofline_s"] == pytest.approx((2_000_000 + 100_000) / 2e9)
    assert small["fraction"] == pytest.approx(small["roofline_s"] / 1e-3)
    big = ar_roofline(native, 4096, 100.0, step_s=1.0, copy_bw=1e15, matmul_flops=1e9)
    assert big["binds"] == "compute" and big["compute_fraction"] == big["fraction"]


@pytest.mark.parametrize("bad,message", [(["--batches", "0,2"], "integers >= 1"), (["--methods", "nope"], "unknown"),
                                         (["--rows-per-batch", "0"], "must be >= 1")])
def test_bad_arguments_are_named(bad, message, capsys):
    bench = load_script()
    with pytest.raises(SystemExit):
        bench.parse_args(bad)
    assert message in capsys.readouterr().err
