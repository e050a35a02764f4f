"""Verification rules: exact law of ``__call__``, sampler vs that law, greedy reduction, zero mass, input checks.

The exhaustive losslessness test lives in tests/test_fidelity.py and runs
each rule's ``__call__`` with its uniforms integrated exactly
(hsd_bench/exact_law.py). This file checks each rule on single drafts: that
its ``outcome_distribution`` formula agrees with that exact law, that samples
drawn with a real generator follow it, and the edge cases (q(x) = 0,
p(x) = 0, one-hot rows, empty drafts, low precision).
"""

from __future__ import annotations

import math

import pytest
import torch

from hsd_bench.fidelity import call_law
from hsd_bench.verify import Verdict, available_rules, get_rule, greedy_verify
from hsd_bench.verify.block import block_tables
from hsd_bench.verify.hsd import hsd_tables

ALL_RULES = ["tokenwise", "block", "hsd", "hsd_official"]
JOINT_RULES = ["block", "hsd", "hsd_official"]


def random_case(seed: int, k: int, vocab: int, dtype=torch.float64):
    """A draft sampled from a random q, and a random p (skewed rows, some zeros)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(k, vocab, generator=g, dtype=torch.float64) ** 3
    p = torch.rand(k + 1, vocab, generator=g, dtype=torch.float64) ** 3
    p[0, 0] = 0.0  # a token the target rules out
    q = q / q.sum(-1, keepdim=True)
    p = p / p.sum(-1, keepdim=True)
    draft = torch.stack([torch.multinomial(row, 1, generator=g)[0] for row in q]) if k else torch.zeros(0, dtype=torch.long)
    return draft, q.to(dtype), p.to(dtype)


def spread_case():
    """A draft whose tests are all far from 0 and 1: token ratios p/q = 0.83, 0.86, 0.38 and block
    tests h = 0.58, 0.52, 0.27 (test_spread_case_is_spread), with a zero in every p row (a cut target).
    A sampler that accepts too often, or too rarely, moves every outcome's probability."""
    draft = torch.tensor([0, 1, 2])
    q = torch.tensor(
        [[0.30, 0.25, 0.15, 0.30], [0.30, 0.35, 0.25, 0.10], [0.20, 0.30, 0.40, 0.10]], dtype=torch.float64
    )
    p = torch.tensor(
        [[0.25, 0.60, 0.15, 0.00], [0.00, 0.30, 0.40, 0.30], [0.50, 0.00, 0.15, 0.35], [0.15, 0.55, 0.00, 0.30]],
        dtype=torch.float64,
    )
    return draft, q, p


def toy_case():
    """Sun et al.'s toy distributions, draft (b, a): hsd keeps it all w.p. 1/2, hsd_official w.p. 1."""
    q = torch.tensor([[2 / 3, 1 / 3]] * 2, dtype=torch.float64)
    p = torch.tensor([[1 / 3, 2 / 3]] * 3, dtype=torch.float64)
    return torch.tensor([1, 0]), q, p


CASES = {"spread": spread_case, "toy": toy_case}


def test_registry_flags():
    assert set(ALL_RULES) <= set(available_rules())
    assert get_rule("block").lossless and get_rule("hsd").lossless
    assert get_rule("hsd_official").lossless is False  # documented finding (docs/methods.md)
    for name in ALL_RULES:
        rule = get_rule(name)
        assert rule.name == name
        assert isinstance(rule.fixed_length, bool)


# -- the formula agrees with the code -------------------------------------------------
@pytest.mark.parametrize("name", ALL_RULES)
def test_outcome_distribution_is_the_law_of_call(name):
    """outcome_distribution (the formula) against the exact law of __call__ (the code), on many drafts."""
    rule = get_rule(name)
    cases = [random_case(seed, k=1 + seed % 4, vocab=2 + seed % 3) for seed in range(12)]
    cases = [c for c in cases if bool((c[1][torch.arange(c[0].shape[0]), c[0]] > 0).all())]
    for draft, q, p in cases + [spread_case(), toy_case()]:
        exact, formula = call_law(rule, draft, q, p), rule.outcome_distribution(draft, q, p)
        assert law_tv(exact, formula) < 1e-12, (name, draft.tolist())


def test_spread_case_is_spread():
    """The Monte-Carlo case below tests acceptance where it can go wrong both ways."""
    draft, q, p = spread_case()
    ratios = p[torch.arange(3), draft] / q[torch.arange(3), draft]
    h, _ = block_tables(draft, q, p)
    assert bool(((ratios > 0.3) & (ratios < 0.9)).all()) and float(ratios.max() - ratios.min()) > 0.4
    assert bool(((h[1:] > 0.25) & (h[1:] < 0.6)).all())


# -- the sampler agrees with the exact law ------------------------------------
# Weissman et al. (2003): for the empirical law of N draws over K outcomes,
# P(||emp - law||_1 >= eps) <= (2^K - 2) exp(-N eps^2 / 2). With TV = L1 / 2,
# P(TV >= t) <= 2^K exp(-2 N t^2); t below makes the false-alarm rate <= 1e-6
# per check (the seeds are fixed, so the test is also deterministic). K is the
# support of the law; a draw outside it fails the test outright. The law is the
# rule's formula (outcome_distribution), independent of the sampler's code; the
# test above equates it with the integrator's exact law of __call__, so the
# draws of a real torch.Generator also check the integrator's model of it.
N_DRAWS = 4000
FALSE_ALARM = 1e-6


def tv_bound(n_outcomes: int, n: int = N_DRAWS, delta: float = FALSE_ALARM) -> float:
    return math.sqrt((n_outcomes * math.log(2) + math.log(1 / delta)) / (2 * n))


def law_tv(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(o, 0.0) - b.get(o, 0.0)) for o in set(a) | set(b))


@pytest.mark.parametrize(
    "name, case", [(name, "spread") for name in ALL_RULES] + [(name, "toy") for name in JOINT_RULES]
)
def test_samples_match_outcome_distribution(name, case):
    draft, q, p = CASES[case]()
    rule = get_rule(name)
    law = rule.outcome_distribution(draft, q, p)
    assert abs(sum(law.values()) - 1) < 1e-12
    g = torch.Generator().manual_seed(11)
    counts: dict[tuple[int, int], int] = {}
    for _ in range(N_DRAWS):
        v = rule(draft, q, p, g)
        assert isinstance(v, Verdict) and isinstance(v.accepted, int) and isinstance(v.token, int)
        assert (v.accepted, v.token) in law, f"{name} drew {v}, which has probability 0"
        counts[(v.accepted, v.token)] = counts.get((v.accepted, v.token), 0) + 1
    tv = law_tv({o: c / N_DRAWS for o, c in counts.items()}, law)
    assert tv < tv_bound(len(law)), f"{name}: TV {tv:.4f} between samples and outcome_distribution"


def test_monte_carlo_can_tell_hsd_from_hsd_official():
    """The sampler test above has the power to see the one-line difference."""
    a = call_law(get_rule("hsd"), *toy_case())
    b = call_law(get_rule("hsd_official"), *toy_case())
    assert law_tv(a, b) == pytest.approx(0.5, abs=1e-12)
    assert law_tv(a, b) > 2 * tv_bound(max(len(a), len(b)))


# -- zero mass: p(x) = 0 and q(x) = 0 -------------------------------------------------
@pytest.mark.parametrize("name", ALL_RULES)
def test_a_token_the_target_forbids_is_never_accepted(name):
    """The issue's reproducer: draft (1), q = (1/2, 1/2), p = (1, 0). The old token-wise test
    (float32 u, u * q <= p) accepted it with probability 2^-24; exactly never now."""
    law = call_law(get_rule(name), torch.tensor([1]), torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert law == {(0, 0): 1.0}


@pytest.mark.parametrize("name", ALL_RULES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_draft_token_with_q_zero(name, dtype):
    """q(x) = 0 (a draft its own q rules out: a broken lower level): p(x) = 0 -> never kept, whatever
    follows; p(x) > 0 -> the ratio is +infinity, kept as surely as a token with p >= q."""
    q = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=dtype)
    p_forbids = torch.tensor([[0.5, 0.0, 0.5], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]], dtype=dtype)
    law = call_law(get_rule(name), torch.tensor([1, 2]), q, p_forbids)
    assert all(accepted == 0 and token != 1 for accepted, token in law)
    p_allows = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.1, 0.2, 0.7]], dtype=dtype)
    law = call_law(get_rule(name), torch.tensor([1, 2]), q, p_allows)
    assert sum(prob for (accepted, _), prob in law.items() if accepted == 2) == 1.0


# -- greedy reduction -------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_RULES)
@pytest.mark.parametrize("matches", [0, 1, 2, 3])
def test_one_hot_distributions_give_the_greedy_verdict(name, matches):
    vocab, k = 5, 3
    target = torch.tensor([4, 1, 3, 2])  # argmax of p at each of the k + 1 positions
    draft = target[:k].clone()
    if matches < k:
        draft[matches] = (target[matches] + 2) % vocab
    q = torch.nn.functional.one_hot(draft, vocab).double()
    p = torch.nn.functional.one_hot(target, vocab).double()
    expected = greedy_verify(draft, target)
    assert expected == Verdict(matches, int(target[matches]))
    rule = get_rule(name)
    assert call_law(rule, draft, q, p) == {(expected.accepted, expected.token): 1.0}


# -- edge cases ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_RULES)
def test_empty_draft_draws_the_bonus_from_p(name):
    p = torch.tensor([[0.25, 0.0, 0.75]], dtype=torch.float64)
    q = torch.zeros(0, 3, dtype=torch.float64)
    draft = torch.zeros(0, dtype=torch.long)
    law = call_law(get_rule(name), draft, q, p)
    assert law.keys() == {(0, 0), (0, 2)} and abs(law[(0, 2)] - 0.75) < 1e-15


@pytest.mark.parametrize("name", JOINT_RULES)
def test_identical_p_and_q_accept_everything(name):
    """p == q: the degenerate 0/0 branches must not swallow the draft."""
    draft, q, _ = random_case(seed=5, k=4, vocab=4)
    p = torch.cat([q, q[-1:]])
    law = call_law(get_rule(name), draft, q, p)
    assert sum(prob for (a, _), prob in law.items() if a == 4) == 1.0


@pytest.mark.parametrize("tables", [block_tables, hsd_tables])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_inputs_match_float64_tables(tables, dtype):
    draft, q, p = random_case(seed=7, k=4, vocab=6)
    h64, rows64 = tables(draft, q, p)
    h, rows = tables(draft, q.to(dtype), p.to(dtype))
    assert h.dtype == torch.float32  # computed in float32, not bfloat16
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(h.double(), h64, atol=tol, rtol=tol)
    torch.testing.assert_close(rows.double(), rows64, atol=tol, rtol=tol)
    v = get_rule("block")(draft, q.to(dtype), p.to(dtype), torch.Generator().manual_seed(0))
    assert 0 <= v.accepted <= 4 and 0 <= v.token < 6


def test_hsd_tables_equal_block_tables():
    """Two derivations (Sun's recursion, Zhou's capped joint ratios) of one algorithm."""
    for seed in range(20):
        draft, q, p = random_case(seed=seed, k=1 + seed % 5, vocab=2 + seed % 4)
        hb, rb = block_tables(draft, q, p)
        hh, rh = hsd_tables(draft, q, p)
        torch.testing.assert_close(hh[1:], hb[1:], atol=1e-12, rtol=0)  # h[0] is never read
        torch.testing.assert_close(rh, rb, atol=1e-12, rtol=0)


# -- input validation -------------------------------------------------------------------
@pytest.mark.parametrize("name", JOINT_RULES)
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d, q, p: (d, q[:-1], p), "q has 2 rows but the draft has k=3"),
        (lambda d, q, p: (d, q, p[:-1]), "p has 3 rows but the draft has k=3"),
        (lambda d, q, p: (d, q[:, :-1], p), "share a vocabulary size"),
        (lambda d, q, p: (d[None], q, p), "draft must be a 1-D"),
        (lambda d, q, p: (d.double(), q, p), "integer token ids"),
        (lambda d, q, p: (d, q[0], p), "q must be a 2-D tensor"),
        (lambda d, q, p: (d, q, p.long()), "floating-point"),
    ],
)
def test_shape_errors_are_clear(name, mutate, message):
    draft, q, p = random_case(seed=0, k=3, vocab=4)
    bad = mutate(draft, q, p)
    rule = get_rule(name)
    with pytest.raises(ValueError, match=message):
        rule(*bad, None)
    with pytest.raises(ValueError, match=message):
        rule.outcome_distribution(*bad)


@pytest.mark.parametrize("name", JOINT_RULES)
def test_value_errors_on_the_exact_path(name):
    draft, q, p = random_case(seed=0, k=3, vocab=4)
    rule = get_rule(name)
    q_zero = q.clone()
    q_zero[1, draft[1]] = 0.0
    q_zero[1] /= q_zero[1].sum()
    with pytest.raises(ValueError, match="draft tokens must have q > 0"):
        rule.outcome_distribution(draft, q_zero, p)
    with pytest.raises(ValueError, match="must sum to 1"):
        rule.outcome_distribution(draft, q, p * 1.5)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 3\]"):
        rule.outcome_distribution(torch.tensor([0, 7, 1]), q, p)
