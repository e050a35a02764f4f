"""Sampling losslessness through the whole engine (Monte Carlo).

On tiny-vocabulary random models, the empirical distribution of the first
committed tokens over many seeds must match the target's exact distribution
(computed by enumeration with the target alone). Test: chi-square with cells
of expected count < 5 pooled; the false-alarm rate per case is 1e-3. A
deliberately broken rule (accept every draft) must be caught, which shows
the test has the power to see a lossy rule at this sample size.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch

from conftest import make_model
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig, warp
from hsd_bench.verify import Verdict, available_rules, get_rule, register_rule

VOCAB = 3
K = 2  # committed tokens compared
N = 800
ALPHA = 1e-3
PROMPT = [0, 1, 2, 1]
DECODING = dict(temperature=1.0)


@register_rule("_accept_all_for_tests")
class AcceptAll:
    """Lossy on purpose: commits the draft as if it came from the target."""

    lossless = False
    fixed_length = False

    def __call__(self, draft, q, p, generator=None):
        return Verdict(draft.shape[0], int(torch.multinomial(p[-1], 1, generator=generator)))

    def outcome_distribution(self, draft, q, p):
        raise NotImplementedError


def _exact_target(target, k: int = K) -> dict[tuple, float]:
    """The target's exact probability of every sequence of ``k`` tokens after PROMPT."""
    dec = DecodingConfig(**DECODING)
    out = {}
    for seq in itertools.product(range(VOCAB), repeat=k):
        prob, ctx = 1.0, list(PROMPT)
        for tok in seq:
            logits = target.hf_model(torch.tensor([ctx])).logits[0, -1:]
            prob *= float(warp(logits, dec)[0, tok])
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
    return target, small, _exact_target(target)


def _empirical(spec, target, small) -> Counter:
    codec = TextCodec(vocab_size=VOCAB)
    engine = build_engine(spec, target, lambda path: (small, codec), codec)
    counts = Counter()
    for seed in range(N):
        out = engine.generate(PROMPT, K, DecodingConfig(**DECODING, seed=seed)).output_ids
        counts[tuple(out)] += 1
    return counts


LOSSLESS_RULES = [r for r in available_rules() if get_rule(r).lossless and not r.startswith("_")]
METHODS = {
    "layerskip": lambda rule: MethodSpec("layerskip", exit=1, draft_len=3, verifier=rule),
    "vanilla_sd": lambda rule: MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier=rule),
    "hispec": lambda rule: MethodSpec("hispec", exit=[1, 2], draft_len=2, period=2, verifier=rule),
    "hierarchy": lambda rule: MethodSpec(
        "hierarchy", levels=[{"path": "small", "batch": 2}, {"path": "target", "exit": 2, "batch": 2}], verifier=rule),
}


# token-wise everywhere; every other lossless rule on a two-level and a
# three-level stack (keeps the suite's time in check: each case is N runs)
CASES = [(m, "tokenwise") for m in METHODS] + [
    (m, r) for r in LOSSLESS_RULES if r != "tokenwise" for m in ("vanilla_sd", "hierarchy")
]


@pytest.mark.parametrize("method,rule", CASES)
def test_committed_tokens_follow_the_target(method, rule, models):
    target, small, exact = models
    counts = _empirical(METHODS[method](rule), target, small)
    assert chi_square_pvalue(counts, exact, N) > ALPHA, (counts, exact)


def test_autoregressive_sampling_matches_exact(models):
    target, small, exact = models
    assert chi_square_pvalue(_empirical(MethodSpec("autoregressive"), target, small), exact, N) > ALPHA


def test_a_lossy_rule_is_detected(models):
    target, small, exact = models
    counts = _empirical(MethodSpec("vanilla_sd", draft_path="small", draft_len=2, verifier="_accept_all_for_tests"),
                        target, small)
    assert chi_square_pvalue(counts, exact, N) < ALPHA
