"""The gpt-fast reference row (``hsd_bench/bench/gpt_fast.py``) and ``bench_gpu.py --parts gpt_fast``.

gpt-fast itself is an external clone that neither CI nor a user's checkout has, so its two modules
are stood in for here by objects with the same entry points: a ``Transformer`` that takes the
mapped state dict, and a ``generate()`` that decodes greedily with the very transformers model the
row loads (so its tokens must equal our AR's) or commits the token our target ranks last (so every
prompt must be reported as an unexplained divergence, not hidden in a fraction of equal tokens).
What is tested is the row's plumbing -- both rates, the ratio, the equal fraction, the parity
classification through ``hsd_bench.parity``, the table, a model that fails -- and the early
errors; the weight mapping onto gpt-fast's real modules is checked on a clone (docs/performance.md).
"""

from __future__ import annotations

import json
import types

import pytest
import torch
from conftest import load_script

from hsd_bench.bench import gpt_fast
from hsd_bench.bench.models import load_hf


def fake_gpt_fast(mode: str):
    """Stand-ins for gpt-fast's ``model`` and ``generate`` modules (see the module doc)."""
    reference, _ = load_hf("random:tiny", "cpu", torch.float32)  # what compare_model loads (seed 0)
    loaded = {}

    class Transformer:
        def __init__(self, args):
            self.args = args

        def load_state_dict(self, state, assign, strict):
            loaded.update(state)

        def to(self, device=None, dtype=None):
            return self

        def eval(self):
            return self

    def generate(model, ids, max_new, batch_size, interactive, draft_model, temperature, top_k):
        assert temperature == 0.0 and draft_model is None and batch_size == 1
        seq = ids.long().view(1, -1)
        with torch.no_grad():
            for _ in range(max_new):
                logits = reference(seq).logits[0, -1]
                nxt = logits.argmax() if mode == "greedy" else logits.argmin()
                seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
        return seq, None

    model_module = types.SimpleNamespace(ModelArgs=lambda **kw: kw, Transformer=Transformer)
    generate_module = types.SimpleNamespace(generate=generate, decode_one_token=None)
    return model_module, generate_module, loaded


def test_a_decoder_equal_to_ours_is_reported_equal():
    gf_model, gf_generate, loaded = fake_gpt_fast("greedy")
    row = gpt_fast.compare_model("random:tiny", gf_model, gf_generate, "cpu", torch.float32, prompts=2,
                                 prompt_len=6, max_new=8, reps=1, log=lambda _: None)
    assert "layers.0.attention.wqkv.weight" in loaded and "output.weight" in loaded  # gpt-fast's names
    assert row["tokens_equal_fraction"] == 1.0
    assert row["parity"]["exact"] == 2 and row["parity"]["unexplained"] == 0
    assert row["gpt_fast_tokens_per_s"] > 0 and row["ours_tokens_per_s"] > 0
    assert row["ours_over_gpt_fast"] == pytest.approx(row["ours_tokens_per_s"] / row["gpt_fast_tokens_per_s"])
    assert "| random:tiny |" in gpt_fast.markdown({"random:tiny": row})
    assert gpt_fast.markdown({"random:tiny": row}).rstrip().endswith("| 2 / 0 / 0 |")


def test_a_decoder_that_parts_from_ours_is_reported_unexplained():
    gf_model, gf_generate, _ = fake_gpt_fast("worst")
    row = gpt_fast.compare_model("random:tiny", gf_model, gf_generate, "cpu", torch.float32, prompts=2,
                                 prompt_len=6, max_new=8, reps=1, log=lambda _: None)
    assert row["tokens_equal_fraction"] == 0.0
    assert row["parity"]["unexplained"] == 2
    assert [d["position"] for d in row["parity"]["divergences"]] == [0, 0]


def fake_clone(tmp_path):
    clone = tmp_path / "gpt-fast"
    clone.mkdir()
    (clone / "model.py").write_text("")
    (clone / "generate.py").write_text("")
    return clone


@pytest.mark.parametrize("extra, message", [
    ([], "no gpt-fast clone given"),
    (["--gpt-fast", "{empty}"], "no model.py and generate.py there"),
])
def test_the_gpt_fast_part_needs_a_clone_before_anything_runs(tmp_path, capsys, extra, message):
    bench = load_script("bench_gpu")
    argv = ["--device", "cpu", "--parts", "gpt_fast", *[a.format(empty=tmp_path) for a in extra]]
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    err = capsys.readouterr().err
    assert "--parts gpt_fast needs --gpt-fast" in err and message in err and gpt_fast.GPT_FAST_URL in err


@pytest.mark.parametrize("models, message", [
    ("random:tiny,checkpoints/no-such-model", "checkpoint directory 'checkpoints/no-such-model' does not exist"),
    ("random:no-such-shape", "unknown random shape 'no-such-shape'"),
])
def test_the_gpt_fast_part_refuses_a_model_it_cannot_load_before_anything_runs(tmp_path, capsys, models, message):
    bench = load_script("bench_gpu")
    with pytest.raises(SystemExit):
        bench.parse_args(["--parts", "gpt_fast", "--gpt-fast", str(fake_clone(tmp_path)), "--gpt-fast-models", models])
    assert message in capsys.readouterr().err


def test_the_command_line_refuses_a_model_it_cannot_load_before_anything_runs(tmp_path, capsys):
    script = load_script("gpt_fast_reference")
    with pytest.raises(SystemExit):
        script.parse_args(["--gpt-fast", str(fake_clone(tmp_path)), "--models", "random:tiny,checkpoints/no-such-model"])
    assert "--models: checkpoint directory 'checkpoints/no-such-model' does not exist" in capsys.readouterr().err


def test_the_gpt_fast_part_writes_its_table_and_keeps_going_past_a_failed_model(tmp_path, monkeypatch):
    clone = fake_clone(tmp_path)
    gf_model, gf_generate, _ = fake_gpt_fast("greedy")
    monkeypatch.setattr(gpt_fast, "import_gpt_fast", lambda path: (gf_model, gf_generate))
    compare = gpt_fast.compare_model

    def failing_on_the_draft(spec, *args, **kwargs):
        if spec == "random:tiny-draft":
            raise RuntimeError("gpt-fast could not build this model")
        return compare(spec, *args, **kwargs)

    monkeypatch.setattr(gpt_fast, "compare_model", failing_on_the_draft)
    bench = load_script("bench_gpu")
    out = tmp_path / "out"
    rc = bench.main(["--device", "cpu", "--dtype", "float32", "--parts", "gpt_fast", "--gpt-fast", str(clone),
                     "--gpt-fast-models", "random:tiny-draft,random:tiny", "--gpt-fast-prompts", "2",
                     "--prompt-len", "6", "--max-new", "8", "--reps", "1", "--out", str(out)])
    assert rc == 0
    part = json.loads((out / "bench.json").read_text())["parts"]["gpt_fast"]
    assert part["compiled"] is False  # CPU: gpt-fast eager
    assert part["models"]["random:tiny-draft"]["error"] == "RuntimeError: gpt-fast could not build this model"
    assert part["models"]["random:tiny"]["parity"]["exact"] == 2
    md = (out / "bench.md").read_text()
    assert "## gpt_fast" in md and "| random:tiny |" in md and "| random:tiny-draft | error:" in md
    assert md.count("gpt-fast could not build this model") == 1  # its row names it, no second line
