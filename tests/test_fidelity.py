"""The exact fidelity test (DESIGN.md §4) applied to every verification rule.

Every law here is that of the rule's ``__call__`` -- the code the engine
runs -- with its uniforms integrated exactly on the generator's grid
(hsd_bench/exact_law.py); ``outcome_distribution`` is not used. A rule
declared lossless must pass on every tree, including top-k/top-p-truncated
targets, drafts with q(x) = 0 and three-level stacks, and must never commit
a token the target forbids (zero mass exactly, not to a tolerance); a rule
declared lossy (``hsd_official``) must be caught -- its loss is a documented
finding, and this test keeps the finding reproducible.
"""

from __future__ import annotations

import pytest
import torch

from hsd_bench.exact_law import IntegrationError
from hsd_bench.fidelity import (
    check_rule,
    committed_law,
    compare_with_target,
    context_free_tree,
    draft_law,
    hashed_stop,
    middle_law,
    random_stack,
    random_tree,
    stack_law,
    sun_toy_tree,
    truncated_tree,
)
from hsd_bench.sampling import draw, uniforms
from hsd_bench.verify import Verdict, get_rule
from hsd_bench.verify.tokenwise import TokenwiseRule, residual

ALL_RULES = ["tokenwise", "block", "hsd", "hsd_official"]
LOSSLESS = ["tokenwise", "block", "hsd"]
SEEDS = [0, 1, 2]
LAWS: dict = {}  # exact call laws, shared by the tests of this module (keyed by rule class and input values)


def check(rule, tree, gamma, **kwargs):
    return check_rule(rule, tree, gamma, cache=LAWS, **kwargs)


# -- broken rules: samplers the test must catch ----------------------------------------------------
class AcceptEverything:
    """Keeps every draft token, then a bonus from p."""

    name = "accept_everything"

    def __call__(self, draft, q, p, generator=None):
        k = draft.shape[0]
        return Verdict(k, int(draw(p[k], uniforms(1, generator, p.device))))


class ResampleFromTarget(TokenwiseRule):
    """Token-wise acceptance, but the correction is drawn from p, not from the residual."""

    name = "resample_from_target"

    def __call__(self, draft, q, p, generator=None):
        v = super().__call__(draft, q, p, generator)
        if v.accepted < draft.shape[0]:  # redraw the correction from p with a fresh uniform
            return Verdict(v.accepted, int(draw(p[v.accepted], uniforms(1, generator, p.device))))
        return v


class OverAccepting:
    """Token-wise with the acceptance probability inflated: accept iff u * q < factor * p."""

    def __init__(self, factor: float):
        self.factor = factor
        self.name = f"tokenwise_x{factor}"

    def __call__(self, draft, q, p, generator=None):
        k = draft.shape[0]
        u = uniforms(k + 1, generator, p.device)
        idx = torch.arange(k)
        rejected = (u[:k] * q[idx, draft] >= self.factor * p[idx, draft]).nonzero()
        if rejected.numel():
            j = int(rejected[0, 0])
            return Verdict(j, int(draw(residual(p[j], q[j]), u[k:])))
        return Verdict(k, int(draw(p[k], u[k:])))


class Float32LessEqual:
    """The token-wise test before the fix: a float32 uniform and ``u * q <= p``."""

    name = "tokenwise_float32_le"

    def __call__(self, draft, q, p, generator=None):
        k = draft.shape[0]
        u = torch.rand(k, generator=generator, dtype=torch.float32)
        idx = torch.arange(k)
        rejected = (u * q[idx, draft] > p[idx, draft]).nonzero()
        token = uniforms(1, generator, p.device)
        if rejected.numel():
            j = int(rejected[0, 0])
            return Verdict(j, int(draw(residual(p[j], q[j]), token)))
        return Verdict(k, int(draw(p[k], token)))


# -- Sun et al.'s toy case ------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected, lossless",
    [("tokenwise", 10 / 9, True), ("block", 11 / 9, True), ("hsd", 11 / 9, True), ("hsd_official", 12 / 9, False)],
)
def test_sun_toy_case(name, expected, lossless):
    """p = (1/3, 2/3), q = (2/3, 1/3), gamma = 2: E[accepted draft tokens], bonus excluded."""
    result = check(get_rule(name), sun_toy_tree(2), 2)
    assert result.expected_accepted == pytest.approx(expected, abs=1e-12)
    assert result.lossless is lossless
    if not lossless:
        # committed (b) then target-extended: P_ext(b, a) = 3/9 where p(b, a) = 2/9
        assert result.tv_distance == pytest.approx(1 / 9, abs=1e-12)


def test_toy_case_convention_is_accepted_tokens_without_bonus():
    """Token-wise acceptance is beta = sum min(p, q) = 2/3 per token: beta + beta^2 = 10/9."""
    beta = 2 / 3
    result = check(get_rule("tokenwise"), sun_toy_tree(2), 2)
    assert result.expected_accepted == pytest.approx(beta + beta**2, abs=1e-12)


# -- random context-dependent trees ---------------------------------------------------------
@pytest.mark.parametrize("vocab", [2, 3])
@pytest.mark.parametrize("gamma", [1, 2, 3])
@pytest.mark.parametrize("name", ALL_RULES)
def test_random_trees(name, gamma, vocab):
    rule = get_rule(name)
    results = [check(rule, random_tree(vocab, gamma, seed), gamma) for seed in SEEDS]
    assert all(r.zero_mass_leak == 0.0 for r in results)
    if rule.lossless:
        worst = max(r.max_abs_error for r in results)
        assert all(r.lossless for r in results), f"{name} lost {worst:.2e} at gamma={gamma}, V={vocab}"
    elif gamma == 1:
        # One draft token: the cap over an empty set of proper prefixes is 1, so
        # hsd_official coincides with hsd (and block) and is exact.
        assert all(r.lossless for r in results)
    else:
        assert any(not r.lossless for r in results), f"{name} is declared lossy but passed every tree"
        assert max(r.max_abs_error for r in results) > 1e-3


@pytest.mark.parametrize(
    "rule", [AcceptEverything(), ResampleFromTarget(), OverAccepting(1.05), OverAccepting(1.2), OverAccepting(1.5)],
    ids=lambda r: r.name,
)
def test_broken_rules_fail(rule):
    assert not check(rule, sun_toy_tree(2), 2).lossless
    for gamma in (1, 2):
        # tie_prob=0: a tree with p == q at the root would make any rule exact at gamma = 1
        assert all(not check(rule, random_tree(3, gamma, s, tie_prob=0.0), gamma).lossless for s in SEEDS)


def test_the_old_float32_test_leaks_exactly_one_grid_point():
    """The issue's reproducer, through the integrator: draft (1) with q = (1/2, 1/2) and p = (1, 0):
    accepted on u = 0 only, probability 2^-24, which the criterion refuses however small."""
    tree = context_free_tree([1.0, 0.0], [0.5, 0.5], 1)
    leaky = check(Float32LessEqual(), tree, 1)
    assert leaky.zero_mass_leak == pytest.approx(0.5 * 2.0**-24, rel=1e-12)
    assert leaky.max_abs_error < 1e-7 and not leaky.lossless
    fixed = check(get_rule("tokenwise"), tree, 1)
    assert fixed.zero_mass_leak == 0.0 and fixed.lossless


def test_criterion_is_not_the_naive_comparison():
    """Commits stop early: P_rule(c) != p(c) even for an exact rule, which is why
    the test extends commits by the target before comparing."""
    tree = random_tree(3, 2, seed=0)
    law, _ = committed_law(get_rule("tokenwise"), tree, 2, cache=LAWS)
    naive_gap = max(abs(prob - tree.target_prob(c)) for c, prob in law.items())
    assert naive_gap > 1e-2
    assert check(get_rule("tokenwise"), tree, 2).lossless


# -- zero target mass: top-k / top-p, q(x) = 0 -----------------------------------------------------
TRUNCATIONS = [dict(top_k=2), dict(top_p=0.8), dict(top_k=2, top_p=0.6)]


@pytest.mark.parametrize("cut", TRUNCATIONS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("name", ALL_RULES)
def test_truncated_targets(name, cut):
    """Every level cut by the same top-k/top-p, as the engine warps: the lossless rules stay exact and
    no rule commits a token the cut removed."""
    rule = get_rule(name)
    for seed in SEEDS[:2]:
        tree = truncated_tree(random_tree(3, 2, seed), **cut)
        assert any(float(row.min()) == 0.0 for row in tree.p.values())  # the cut removed tokens
        result = check(rule, tree, 2)
        assert result.zero_mass_leak == 0.0
        assert result.lossless or not rule.lossless, f"{name} lost {result.max_abs_error:.2e} under {cut}"


@pytest.mark.parametrize("name", ALL_RULES)
def test_drafts_with_q_zero_never_commit_what_the_target_forbids(name):
    """A broken drafter samples from uncut rows but reports the cut q: its drafts hold tokens with
    q(x) = 0, and some of them have p(x) = 0 too. No rule can be lossless on such drafts; none
    may commit a forbidden token."""
    rule = get_rule(name)
    for seed in SEEDS:
        tree = truncated_tree(random_tree(3, 2, seed), top_k=2, broken_drafter=True)
        assert check(rule, tree, 2).zero_mass_leak == 0.0


@pytest.mark.parametrize("name", LOSSLESS)
def test_float32_inputs_as_the_engine_passes_them(name):
    """warp() gives float32 rows: the law moves by float32 rounding only, and zero mass stays exactly zero."""
    tree = truncated_tree(random_tree(3, 2, 1), top_k=2)
    result = check(get_rule(name), tree, 2, dtype=torch.float32)
    assert result.zero_mass_leak == 0.0
    assert result.max_abs_error < 1e-6


# -- findings about the joint rules -----------------------------------------------------------
@pytest.mark.parametrize("gamma", [1, 2, 3])
def test_hsd_has_the_outcome_law_of_block(gamma):
    """Zhou et al.'s Algorithm 2 is Sun et al.'s block verification, draft by draft."""
    hsd, block = get_rule("hsd"), get_rule("block")
    for seed in SEEDS:
        tree = random_tree(3, gamma, seed)
        law_h, e_h = committed_law(hsd, tree, gamma, cache=LAWS)
        law_b, e_b = committed_law(block, tree, gamma, cache=LAWS)
        assert e_h == pytest.approx(e_b, abs=1e-12)
        assert max(abs(law_h.get(c, 0.0) - law_b.get(c, 0.0)) for c in set(law_h) | set(law_b)) < 1e-12


@pytest.mark.parametrize("gamma", [2, 3])
def test_tokenwise_never_beats_block(gamma):
    for seed in SEEDS:
        tree = random_tree(3, gamma, seed)
        e_token = check(get_rule("tokenwise"), tree, gamma).expected_accepted
        e_block = check(get_rule("block"), tree, gamma).expected_accepted
        assert e_token <= e_block + 1e-12


@pytest.mark.parametrize("gamma", [2, 3])
@pytest.mark.parametrize("name", LOSSLESS)
def test_variable_length_drafts(name, gamma):
    """A drafter that stops after a prefix with a prefix-dependent probability
    (what a lower level of a hierarchy is): rules with fixed_length = False
    must stay exact. Block verification does; proof in docs/methods.md."""
    rule = get_rule(name)
    assert rule.fixed_length is False
    for seed in SEEDS:
        for salt in range(2):
            result = check(rule, random_tree(3, gamma, seed), gamma, stop=hashed_stop(salt))
            assert result.lossless, f"{name} loses {result.max_abs_error:.2e} with a stopping drafter"


# -- three levels: drafter -> middle -> top ---------------------------------------------------------
def check_stack(middle, top, lower, upper, gamma, **kwargs):
    law, expected = stack_law(middle, top, lower, upper, gamma, cache=LAWS, **kwargs)
    return compare_with_target(f"{middle.name}->{top.name}", law, expected, upper, gamma)


@pytest.mark.parametrize("top", LOSSLESS + ["hsd_official"])
@pytest.mark.parametrize("middle", LOSSLESS)
def test_three_level_stack(middle, top):
    """The middle's output, verified by the top against the middle's rows, commits exactly the top's
    law: on uncut rows, and on rows all cut by top-k, where every level sees zeros (q(x) = 0 for
    tokens the level below never proposes, p(x) = 0 for tokens it must never accept)."""
    results = []
    for seed, top_k in ((4, 0), (8, 2)):
        lower, upper = random_stack(3, 3, seed=seed, top_k=top_k)
        results.append(check_stack(get_rule(middle), get_rule(top), lower, upper, 2))
    assert all(r.zero_mass_leak == 0.0 for r in results)
    if top == "hsd_official":  # still caught, three levels up
        assert any(not r.lossless and r.max_abs_error > 1e-3 for r in results)
    else:
        assert all(r.lossless for r in results), f"{middle}->{top} lost {max(r.max_abs_error for r in results):.2e}"


@pytest.mark.parametrize("flush_on_reject", [False, True])
@pytest.mark.parametrize("name", LOSSLESS)
def test_three_level_stack_with_a_batched_middle(name, flush_on_reject):
    """HiSpec's shape: the middle runs rounds until it holds 2 tokens (or flushes on a rejection)
    under a stopping drafter; the surplus it hands up is kept, and the top stays exact."""
    lower, upper = random_stack(2, 4, seed=5, top_k=0)
    rule = get_rule(name)
    result = check_stack(rule, rule, lower, upper, 2, batch=2, flush_on_reject=flush_on_reject, stop=hashed_stop(3))
    assert result.lossless, f"{name} lost {result.max_abs_error:.2e}"


def _forbidden_by_both(lower, upper, seq) -> bool:
    """Some token of ``seq`` has zero mass under the middle's rows (the top's q) and the top's p."""
    return any(float(lower.p[seq[:j]][t]) == 0 and float(upper.p[seq[:j]][t]) == 0 for j, t in enumerate(seq))


@pytest.mark.parametrize("top", ALL_RULES + ["tokenwise_float32_le"])
@pytest.mark.parametrize("bottom", ["broken_drafter", "leaky_middle"])
def test_three_level_zero_mass(top, bottom):
    """q(x) = 0 below every level: a broken drafter feeds the middle tokens with q(x) = 0; a leaky
    middle (accepts everything) hands the top tokens its own rows give 0, so the top sees
    q(x) = 0 -- where the old test `u * 0 <= p` accepted whatever p(x) was. The top must
    still commit nothing its target forbids; the old test at the top is caught doing so."""
    lower, upper = random_stack(3, 3, seed=7, top_k=2, broken_drafter=bottom == "broken_drafter")
    top_rule = Float32LessEqual() if top == "tokenwise_float32_le" else get_rule(top)
    if bottom == "broken_drafter":
        middle = get_rule("tokenwise")
        drafts = draft_law(lower, 2)
        assert any(float(lower.q[d[:j]][t]) == 0 for d, _ in drafts for j, t in enumerate(d))
        assert sum(prob for c, prob in middle_law(middle, lower, 2, cache=LAWS).items() if lower.forbids(c)) == 0.0
    else:
        middle = AcceptEverything()
        handed_up = middle_law(middle, lower, 2, cache=LAWS)
        assert sum(prob for c, prob in handed_up.items() if _forbidden_by_both(lower, upper, c)) > 0
    law, _ = stack_law(middle, top_rule, lower, upper, 2, cache=LAWS)
    leak = sum(prob for c, prob in law.items() if upper.forbids(c))
    if top == "tokenwise_float32_le":  # u = 0 passes u * q <= p(x) = 0: 2^-24 per draft token with p(x) = 0 ...
        assert leak > (0.01 if bottom == "leaky_middle" else 0)  # ... and every time when q(x) = 0
    else:
        assert leak == 0.0


# -- argument checks ---------------------------------------------------------------------------------
def test_tree_arguments_are_checked():
    with pytest.raises(ValueError, match="vocab=1 must be in"):
        random_tree(1, 2, seed=0)
    with pytest.raises(ValueError, match="gamma=0 must be in"):
        random_tree(2, 0, seed=0)
    with pytest.raises(ValueError, match="must match"):
        context_free_tree([0.5, 0.5], [1.0], 2)
    with pytest.raises(ValueError, match="probability vector"):
        context_free_tree([0.5, 0.6], [0.5, 0.5], 2)
    with pytest.raises(ValueError, match="exceeds the tree depth"):
        check(get_rule("tokenwise"), random_tree(2, 1, seed=0), 2)
    with pytest.raises(ValueError, match="must be a probability"):
        check(get_rule("tokenwise"), random_tree(2, 2, seed=0), 2, stop=lambda prefix: 1.5)
    lower, _ = random_stack(2, 2, seed=0)
    with pytest.raises(ValueError, match="rows must be the q the top sees"):
        stack_law(get_rule("tokenwise"), get_rule("tokenwise"), lower, random_tree(2, 2, seed=0), 1)


def test_rule_contract_violations_are_reported():
    class Overreaching:
        name = "overreaching"

        def __call__(self, draft, q, p, generator=None):
            return Verdict(draft.shape[0] + 1, 0)

    class Multinomial:
        name = "multinomial"

        def __call__(self, draft, q, p, generator=None):
            return Verdict(0, int(torch.multinomial(p[0], 1, generator=generator)))

    with pytest.raises(AssertionError, match="on a 1-token draft"):
        check_rule(Overreaching(), sun_toy_tree(1), 1)
    with pytest.raises(IntegrationError, match="other than torch.rand"):
        check_rule(Multinomial(), sun_toy_tree(1), 1)
