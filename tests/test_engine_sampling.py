"""Sampling losslessness through the whole engine (Monte Carlo).

On tiny-vocabulary random models, the empirical distribution of the first
committed tokens over many seeds must match the target's exact distribution,
computed by enumeration with the target's logits alone and an independent,
hand-written temperature / top-k / top-p (not ``sampling.warp``, so a broken
warp cannot hide behind itself). A sequence the target gives zero mass must
never appear; the rest is a chi-square test with cells of expected count < 5
pooled; the false-alarm rate per case is 1e-3. Every method runs under every
rule declared lossless, and each method and each rule also under a top-k and a
top-p target. A deliberately broken rule (accept every draft) must be caught,
which shows the test has the power to see a lossy rule at this sample size.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from conftest import make_model
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig, sample
from hsd_bench.verify import Verdict, available_rules, get_rule, register_rule

VOCAB = 3
K = 2  # committed tokens compared
N = 800
ALPHA = 1e-3
PROMPT = [0, 1, 2, 1]
DECODINGS = {  # each cuts at least one token at every position (test_the_cuts_remove_tokens)
    "plain": dict(temperature=1.0),
    "top_k": dict(temperature=0.8, top_k=2),
    "top_p": dict(temperature=1.0, top_p=0.6),
}
DECODING = DECODINGS["plain"]  # the one other tests (test_draft_stop.py) sample with


@register_rule("_accept_all_for_tests")
class AcceptAll:
    """Lossy on purpose: commits the draft as if it came from the target."""

    lossless = False
    fixed_length = False

    def __call__(self, draft, q, p, generator=None):
        return Verdict(draft.shape[0], int(sample(p[-1], generator)))

    def outcome_distribution(self, draft, q, p):
        raise NotImplementedError


def reference_probs(logits: list[float], temperature: float, top_k: int = 0, top_p: float = 1.0) -> list[float]:
    """Temperature, then top-k (keep the k largest, ties included), then top-p (keep the most likely
    tokens until their mass reaches top_p), written out in plain Python."""

    def softmax(z: list[float]) -> list[float]:
        m = max(z)
        e = [math.exp(x - m) if x != -math.inf else 0.0 for x in z]
        return [x / sum(e) for x in e]

    z = [x / temperature for x in logits]
    if top_k:
        kth = sorted(z, reverse=True)[min(top_k, len(z)) - 1]
        z = [x if x >= kth else -math.inf for x in z]
    if top_p < 1.0:
        probs, mass = softmax(z), 0.0
        for i in sorted(range(len(z)), key=lambda i: -probs[i]):
            if mass >= top_p:
                z[i] = -math.inf
            mass += probs[i]
    return softmax(z)


@torch.no_grad()
def _exact_target(target, decoding: dict, k: int = K) -> dict[tuple, float]:
    """The target's exact probability of every sequence of ``k`` tokens after PROMPT."""
    out = {}
    for seq in itertools.product(range(VOCAB), repeat=k):
        prob, ctx = 1.0, list(PROMPT)
        for tok in seq:
            logits = target.hf_model(torch.tensor([ctx])).logits[0, -1].tolist()
            prob *= reference_probs(logits, **decoding)[tok]
            ctx.append(tok)
        out[seq] = prob
    return out


def chi_square_pvalue(counts: Counter, expected: dict[tuple, float], n: int) -> float:
    cells, pooled_obs, pooled_exp = [], 0.0, 0.0
    for key, p in expected.items():
        e = p * n
        if e < 5:
            pooled_obs += counts.get(key, 0)
            pooled_exp += e
        else:
            cells.append((counts.get(key, 0), e))
    if pooled_exp > 0:
        cells.append((pooled_obs, pooled_exp))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    dof = len(cells) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), torch.tensor(stat / 2, dtype=torch.float64)))


@pytest.fixture(scope="module")
def models():
    target = make_model("llama", num_layers=4, seed=11, vocab_size=VOCAB, deep_scale=0.5)
    small = make_model("llama", num_layers=1, seed=12, vocab_size=VOCAB, name="small")
    return target, small, {name: _exact_target(target, d) for name, d in DECODINGS.items()}


def _empirical(spec, target, small, decoding: str) -> Counter:
    codec = TextCodec(vocab_size=VOCAB)
    engine = build_engine(spec, target, lambda path: (small, codec), codec)
    counts = Counter()
    for seed in range(N):
        out = engine.generate(PROMPT, K, DecodingConfig(**DECODINGS[decoding], seed=seed)).output_ids
        counts[tuple(out)] += 1
    return counts


def assert_follows(counts: Counter, exact: dict[tuple, float]) -> None:
    forbidden = {seq: n for seq, n in counts.items() if exact.get(seq, 0.0) == 0.0}
    assert not forbidden, f"sequences the target gives zero mass were generated: {forbidden}"
    assert chi_square_pvalue(counts, exact, N) > ALPHA, (counts, exact)


LOSSLESS_RULES = [r for r in available_rules() if get_rule(r).lossless and not r.startswith("_")]
METHODS = {
    "layerskip": lambda rule: MethodSpec("layerskip", exit=1, draft_len=3, verifier=rule),
    "vanilla_sd": lambda rule: MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier=rule),
    "hispec": lambda rule: MethodSpec("hispec", exit=[1, 2], draft_len=2, period=2, verifier=rule),
    "hierarchy": lambda rule: MethodSpec(
        "hierarchy", levels=[{"path": "small", "batch": 2}, {"path": "target", "exit": 2, "batch": 2}], verifier=rule),
}

# Every method under every lossless rule, once each (each case is N runs: the
# suite's time). The decodings rotate so that every method and every rule also
# meets a top-k and a top-p target.
CASES = [
    (method, rule, list(DECODINGS)[(i + j) % len(DECODINGS)])
    for i, method in enumerate(METHODS)
    for j, rule in enumerate(LOSSLESS_RULES)
]


def test_every_method_meets_every_rule_and_cut():
    assert {(m, r) for m, r, _ in CASES} == {(m, r) for m in METHODS for r in LOSSLESS_RULES}
    assert {"tokenwise", "block", "hsd"} <= set(LOSSLESS_RULES)
    for method in METHODS:
        assert {d for m, _, d in CASES if m == method} == set(DECODINGS)
    for rule in LOSSLESS_RULES:
        assert {"top_k", "top_p"} <= {d for _, r, d in CASES if r == rule}


def test_the_cuts_remove_tokens(models):
    """The top-k and top-p targets give zero mass to some sequences: a sampler that ignores the cut is seen."""
    _, _, exact = models
    assert all(p > 0 for p in exact["plain"].values())
    for name in ("top_k", "top_p"):
        assert sum(p == 0.0 for p in exact[name].values()) >= 3


def test_reference_probs_by_hand():
    """The test's own warp, on numbers worked out by hand."""
    logits = [math.log(x) for x in (0.1, 0.2, 0.3, 0.4)]
    assert reference_probs(logits, 1.0) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert reference_probs(logits, 1.0, top_k=2) == pytest.approx([0, 0, 3 / 7, 4 / 7])
    assert reference_probs(logits, 1.0, top_p=0.5) == pytest.approx([0, 0, 3 / 7, 4 / 7])
    assert reference_probs(logits, 1.0, top_p=0.35) == pytest.approx([0, 0, 0, 1])
    assert reference_probs([0.0, math.log(2.0)], 0.5) == pytest.approx([1 / 5, 4 / 5])


@pytest.mark.parametrize("method,rule,decoding", CASES)
def test_committed_tokens_follow_the_target(method, rule, decoding, models):
    target, small, exact = models
    assert_follows(_empirical(METHODS[method](rule), target, small, decoding), exact[decoding])


def test_autoregressive_sampling_matches_exact(models):
    """The baseline (the cut targets are met by every method above, each warping every level)."""
    target, small, exact = models
    assert_follows(_empirical(MethodSpec("autoregressive"), target, small, "plain"), exact["plain"])


def test_a_lossy_rule_is_detected(models):
    target, small, exact = models
    spec = MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier="_accept_all_for_tests")
    counts = _empirical(spec, target, small, "plain")
    assert chi_square_pvalue(counts, exact["plain"], N) < ALPHA
