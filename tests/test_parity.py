"""Parity that explains itself: a divergence from AR is a near-tie or a bug.

The run-level test plants a real bug -- a greedy verifier that keeps every
drafted token, right or wrong -- and checks that the run reports it as
``mismatch`` and ``parity_unexplained > 0``, never as a tie of the arithmetic.
"""

from __future__ import annotations

import json

import pytest
import torch

from hsd_bench import parity, runner
from test_run_command import _cfg


def test_first_difference():
    assert parity.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert parity.first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert parity.first_difference([1, 2], [1, 2, 7]) == 2


class FixedLogits:
    """A 'model' whose logits at the divergence point are given."""

    def __init__(self, logits, dtype=torch.bfloat16):
        self.logits_ = torch.tensor(logits)
        self.dtype = dtype


@pytest.mark.parametrize(
    ("logits", "dtype", "expected"),
    [
        ([20.0, 19.99, 3.0], torch.bfloat16, "near_tie"),  # 0.01 apart at |20|: within 4 bf16 ulps
        ([20.0, 18.0, 3.0], torch.bfloat16, "mismatch"),  # the target clearly preferred token 0
        ([20.0, 19.99, 3.0], torch.float32, "mismatch"),  # no such rounding in float32
        ([20.0, 20.0, 19.99], torch.bfloat16, "near_tie"),
    ],
)
def test_classification_by_the_targets_margin(monkeypatch, logits, dtype, expected):
    model = FixedLogits(logits, dtype)
    monkeypatch.setattr(parity, "target_logits", lambda m, ids: m.logits_)
    out = parity.explain(model, [5, 6], ar_ids=[9, 0, 4], method_ids=[9, 1, 4])
    assert out["position"] == 1 and out["ar_token"] == 0 and out["method_token"] == 1
    assert out["class"] == expected
    assert out["margin"] == pytest.approx(logits[0] - max(logits[1:]), abs=1e-5)


def test_a_token_far_below_the_top_is_a_mismatch_even_when_the_top_two_tie(monkeypatch):
    monkeypatch.setattr(parity, "target_logits", lambda m, ids: m.logits_)
    out = parity.explain(FixedLogits([20.0, 20.0, 5.0]), [1], ar_ids=[0], method_ids=[2])
    assert out["class"] == "mismatch"


@pytest.mark.parametrize(("reference", "gap"), [([20.1, 18.05, 3.0], 2.05), ([19.0, 18.98, 3.0], 0.02)])
def test_a_mismatch_carries_a_float32_second_opinion_that_does_not_change_its_class(monkeypatch, reference, gap):
    """The bf16 rule says mismatch (token 1 is 2 below the top); float32 says either the same (a
    2.05 gap: a preference) or a near tie (0.02, within the bf16 logits' own error of ~1): the
    evidence is reported, the class and so the unexplained count stay the rule's."""
    monkeypatch.setattr(parity, "target_logits", lambda m, ids: m.logits_)
    asked = []

    def ref(ids):
        asked.append(list(ids))
        return torch.tensor(reference)

    out = parity.explain(FixedLogits([20.0, 18.0, 3.0]), [5, 6], ar_ids=[9, 0], method_ids=[9, 1],
                         reference_logits=ref)
    assert out["class"] == "mismatch" and asked == [[5, 6, 9]]  # the prefix up to the divergence
    second = out["float32"]
    assert second["ar_minus_method_logit"] == pytest.approx(gap, abs=1e-4)
    assert second["top1_token"] == 0
    assert second["run_dtype_error"] == pytest.approx(max(abs(20.0 - reference[0]), abs(18.0 - reference[1])), abs=1e-4)


def test_a_near_tie_asks_no_second_opinion(monkeypatch):
    monkeypatch.setattr(parity, "target_logits", lambda m, ids: m.logits_)

    def ref(ids):
        raise AssertionError("a near tie needs no float32 copy")

    out = parity.explain(FixedLogits([20.0, 19.99, 3.0]), [1], ar_ids=[0], method_ids=[1], reference_logits=ref)
    assert out["class"] == "near_tie" and "float32" not in out


def test_the_benchmarks_float32_reference_is_the_models_own_logits_in_float32():
    from hsd_bench.bench.models import float32_reference
    from test_native_backend import make_hf_model

    model = make_hf_model("llama_gqa", num_layers=2, seed=3).to(torch.bfloat16)
    ref = float32_reference(model)
    ids = [3, 1, 4, 1, 5]
    upcast = make_hf_model("llama_gqa", num_layers=2, seed=3).to(torch.bfloat16).float()
    torch.testing.assert_close(ref(ids), upcast(torch.tensor([ids])).logits[0, -1].detach())
    assert next(model.parameters()).dtype == torch.bfloat16  # the run's model is left as it was
    assert float32_reference(model, limit_bytes=16) is None  # too big for the limit: no copy


def test_target_logits_is_the_full_models_next_token_distribution():
    from conftest import make_model

    model = make_model("llama", num_layers=3, seed=1)
    ids = [256, 10, 20, 30]
    with torch.no_grad():
        ref = model.hf_model(torch.tensor([ids])).logits[0, -1].float()
    torch.testing.assert_close(parity.target_logits(model, ids), ref, atol=1e-5, rtol=1e-5)
    assert model.cache_len(0) == 0


def test_a_lossy_verifier_lands_in_mismatch(tmp_path, monkeypatch):
    import hsd_bench.engine as engine_mod

    def keep_every_draft(drafts, lengths, target):  # the bug: accept whatever was drafted
        out, d, t = [], drafts.tolist(), target.tolist()
        for k in lengths:
            out.append((k, d[:k] + [t[k]]))
            d, t = d[k:], t[k + 1:]
        return out

    monkeypatch.setattr(engine_mod, "greedy_accept_rows", keep_every_draft)
    result = runner.run_job(_cfg(tmp_path, "method=layerskip", "exit=1", "method.draft_len=3", "max_new_tokens=12"))
    rows = [json.loads(l) for l in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    bad = [r for r in rows if r["method"] == "layerskip" and not r["parity_exact"]]
    assert bad, "the planted bug changed no output"
    assert all(r["divergence"]["class"] == "mismatch" for r in bad)
    s = result.summary["methods"]["layerskip"]
    assert s["parity_unexplained"] == len(bad) > 0 and s["parity_near_tie"] == 0
    assert s["parity_exact"] < 1.0


def test_a_lossless_run_reports_zero_unexplained(tmp_path):
    result = runner.run_job(_cfg(tmp_path, "method=hispec", "exit=[1,2]"))
    s = result.summary["methods"]["hispec"]
    assert s["parity_exact"] == 1.0 and s["parity_unexplained"] == 0
    assert result.summary["methods"]["autoregressive"]["parity_unexplained"] == 0


def test_benchmark_rows_are_classified_by_the_same_rule(monkeypatch):
    """bench_gpu's "= AR" column: a run whose output parts from AR where the target clearly
    preferred AR's token is unexplained; one that parts at a tie is a near tie; an equal one
    is exact -- parity.classify through report.explain_parity, as the benchmark calls it."""
    from hsd_bench.bench.report import explain_parity, markdown, summarize
    from hsd_bench.bench.runs import RunResult

    def run(name, method, outputs):
        r = RunResult(name, "native", method)
        r.outputs, r.wall_s, r.tokens = outputs, [1.0], sum(map(len, outputs))
        return r

    # the target's logits after any prefix: tokens 0 and 1 tied on top, token 2 far below
    monkeypatch.setattr(parity, "target_logits", lambda m, ids: torch.tensor([20.0, 20.0, 5.0]))
    prompts = [[7], [8], [9]]
    ar = run("ours AR", "autoregressive", [[0, 0], [0, 0], [0, 0]])
    tie = run("ours layerskip", "layerskip", [[0, 0], [1, 0], [0, 0]])
    bug = run("ours hispec", "hispec", [[0, 2], [0, 0], [0, 0]])
    explain_parity([ar, tie, bug], ar, FixedLogits([0.0]), prompts)
    assert "parity_explained" not in ar.extra  # AR is the reference
    assert {k: tie.extra["parity_explained"][k] for k in ("exact", "near_tie", "unexplained")} == \
        {"exact": 2, "near_tie": 1, "unexplained": 0}
    assert {k: bug.extra["parity_explained"][k] for k in ("exact", "near_tie", "unexplained")} == \
        {"exact": 2, "near_tie": 0, "unexplained": 1}
    assert bug.extra["parity_explained"]["divergences"][0]["position"] == 1
    md = markdown(summarize([ar, tie, bug], {"native": ar}, None))
    assert "| 0.67 (1 near tie, 0 unexplained) |" in md and "| 0.67 (0 near ties, 1 unexplained) |" in md
