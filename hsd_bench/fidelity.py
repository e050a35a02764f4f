"""The exact fidelity test of DESIGN.md §4: is a verification rule lossless?

Setting. A tiny vocabulary V (2-6 tokens) and a *tree*: for every prefix up to
some depth a draft distribution q(. | prefix) and a target distribution
p(. | prefix), drawn at random per prefix (context-dependent). One round of
speculative decoding drafts x = x_1..x_k autoregressively from q (k = gamma,
or a random length when a drafter stopping rule is given), the rule returns
``(accepted, token)``, and the round *commits* c = (x_1..x_accepted, token):
1..gamma+1 tokens. Every draft is enumerated (probability = product of q), and
the law of the rule's verdict on each draft is that of the code the engine
runs: the rule's ``__call__`` executed with its uniforms integrated exactly on
the generator's grid (:func:`call_law`, :mod:`hsd_bench.exact_law`). So the law
of c is exact, and it is the law of the real sampler, comparisons, dtypes and
all. ``outcome_distribution`` (the rule's own formula) is only a cross-check.

The criterion. Commits have variable length, so their law cannot be compared
with the target's law of sequences of one fixed length. What generation
needs is this: after c, decoding goes on from context + c, and if every
later round is exact the tokens after c are distributed as p(. | c). So a rule
is lossless iff the committed tokens, extended by sampling from the target up
to the longest possible commit L = gamma + 1, are distributed as the target:

    P_ext(z) := sum_{m=1..L} P_rule(c = z_{1:m}) * p(z_{m+1:L} | z_{1:m})  ==  p(z_{1:L})
    for every z in V^L.

Necessary and sufficient: marginalising gives the same identity for every
shorter length, and by induction over rounds (each round sees only the
committed context) the whole generated stream is then distributed as the
target's autoregressive samples. Equivalently, per committed prefix: the
"reach ratio" S(z_{1:m}) = P_rule(|c| >= m, c_{1:m} = z_{1:m}) / p(z_{1:m}) must
not depend on the last token, S(z_{1:m}) = 1 - sum_{j<m} P_rule(c = z_{1:j}) /
p(z_{1:j}): stopping after a prefix may depend on the prefix, never on what the
target would say next. Two tempting checks are wrong: comparing P_rule(c) with
p(c) (commits stop early, so their mass is smaller), and comparing
P(|c| >= m, c_{1:m} = z) with p(z_{1:m}) (same problem). The test reports
max_z |P_ext(z) - p(z)| and the total-variation distance; "lossless" means
both are at float64 rounding level (``tol``, default 1e-12) *and* the mass
committed where the target has none is exactly 0 (``zero_mass_leak``): a
token the target forbids must never come out, not merely rarely.

Accepted tokens. ``expected_accepted`` is E[accepted]: draft tokens kept per
round, *without* the correction/bonus token (tokens committed per round =
accepted + 1). This is the convention of Sun et al.: on their toy case
(context-independent p = (1/3, 2/3), q = (2/3, 1/3), gamma = 2) it gives
10/9 for token-wise and 11/9 for block verification.

A drafter stopping rule (``stop``) makes the draft length random: after each
prefix of length 1..gamma-1 the drafter stops with probability stop(prefix).
This is the situation of a draft produced by a lower level of a hierarchy;
rules with ``fixed_length = False`` must stay lossless under it. A *broken*
drafter (``ToyTree.draft_rows``) samples from other rows than the q it reports,
so drafts can hold tokens with q(x) = 0; no rule can be lossless then, but
none may commit a token the target forbids.

Three levels (:func:`stack_law`): a drafter, a middle level and the top, as the
engine runs them -- the middle verifies the drafter's drafts for as many rounds
as its batch asks (or until a round rejects, HiSpec's flush), and hands its
output up with its own rows as q; the top verifies that. The top's commits
must pass the same criterion against the top's target.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from hsd_bench.exact_law import execution_law
from hsd_bench.sampling import DecodingConfig, warp
from hsd_bench.verify import Verdict
from hsd_bench.verify.block import block_tables
from hsd_bench.verify.hsd import hsd_tables
from hsd_bench.verify.tokenwise import residual

Prefix = tuple[int, ...]
StopRule = Callable[[Prefix], float]
Law = dict[tuple[int, int], float]


@dataclass(frozen=True)
class ToyTree:
    """q(. | prefix) and p(. | prefix), float64 ``[V]``, for every prefix of length <= depth.

    ``draft_rows`` (default: q) is what the drafter really samples from; a
    tree whose drafter samples outside q's support models a broken lower level.
    """

    vocab: int
    depth: int
    q: Mapping[Prefix, torch.Tensor]
    p: Mapping[Prefix, torch.Tensor]
    draft_rows: Mapping[Prefix, torch.Tensor] | None = None

    def path(self, draft: Prefix, base: Prefix = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """The rule's inputs for ``draft`` after context ``base``: q ``[k, V]`` and p ``[k + 1, V]`` along its path."""
        if draft:
            q = torch.stack([self.q[base + draft[:j]] for j in range(len(draft))])
        else:
            q = torch.zeros(0, self.vocab, dtype=torch.float64)
        p = torch.stack([self.p[base + draft[:j]] for j in range(len(draft) + 1)])
        return q, p

    def forbids(self, seq: Prefix) -> bool:
        """True when the target gives ``seq`` no mass: some token has p = 0 exactly after its prefix."""
        return any(float(self.p[seq[:j]][tok]) == 0.0 for j, tok in enumerate(seq))

    def target_prob(self, seq: Prefix, given: Prefix = ()) -> float:
        """p(seq | given), the target's autoregressive probability."""
        prob = 1.0
        for j, tok in enumerate(seq):
            prob *= float(self.p[given + seq[:j]][tok])
        return prob


def _check_size(vocab: int, gamma: int) -> None:
    if not 2 <= vocab <= 6:
        raise ValueError(f"vocab={vocab} must be in [2, 6] (the test enumerates vocab**(gamma+1) sequences)")
    if not 1 <= gamma <= 6:
        raise ValueError(f"gamma={gamma} must be in [1, 6]")


def _prefixes(vocab: int, depth: int):
    for n in range(depth + 1):
        yield from itertools.product(range(vocab), repeat=n)


def _row_sampler(rng: np.random.Generator, vocab: int, concentration: float, zero_prob: float) -> Callable[[], torch.Tensor]:
    """Dirichlet(concentration) rows; with probability ``zero_prob`` one entry set to 0."""
    if concentration <= 0:
        raise ValueError(f"concentration={concentration} must be > 0")

    def row() -> torch.Tensor:
        r = rng.dirichlet([concentration] * vocab)
        if rng.random() < zero_prob:
            r[rng.integers(vocab)] = 0.0
            if r.sum() == 0:
                r[rng.integers(vocab)] = 1.0
        return torch.tensor(r / r.sum(), dtype=torch.float64)

    return row


def random_tree(
    vocab: int,
    gamma: int,
    seed: int,
    concentration: float = 0.7,
    zero_prob: float = 0.15,
    tie_prob: float = 0.1,
) -> ToyTree:
    """Random context-dependent q and p on every prefix of length <= gamma.

    Dirichlet(concentration) rows; with probability ``zero_prob`` a row gets a
    zero entry (sparse supports: p = 0 on a draftable token, or q = 0 where p
    > 0), and with probability ``tie_prob`` p equals q at that prefix (the
    degenerate branches where nothing is left to resample).
    """
    _check_size(vocab, gamma)
    rng = np.random.default_rng(seed)
    row = _row_sampler(rng, vocab, concentration, zero_prob)
    q, p = {}, {}
    for prefix in _prefixes(vocab, gamma):
        q[prefix] = row()
        p[prefix] = q[prefix].clone() if rng.random() < tie_prob else row()
    return ToyTree(vocab, gamma, q, p)


def context_free_tree(p_row: Sequence[float], q_row: Sequence[float], gamma: int) -> ToyTree:
    """The same q and p after every prefix (Sun et al.'s toy case is one)."""
    if len(p_row) != len(q_row):
        raise ValueError(f"p_row has {len(p_row)} entries and q_row {len(q_row)}; they must match")
    vocab = len(p_row)
    _check_size(vocab, gamma)
    p = torch.tensor(p_row, dtype=torch.float64)
    q = torch.tensor(q_row, dtype=torch.float64)
    for name, t in (("p_row", p), ("q_row", q)):
        if bool((t < 0).any()) or abs(float(t.sum()) - 1) > 1e-12:
            raise ValueError(f"{name}={list(t.tolist())} must be a probability vector")
    prefixes = list(_prefixes(vocab, gamma))
    return ToyTree(vocab, gamma, {x: q for x in prefixes}, {x: p for x in prefixes})


def sun_toy_tree(gamma: int = 2) -> ToyTree:
    """Sun et al.'s motivating example: p = (1/3, 2/3), q = (2/3, 1/3), context-independent."""
    return context_free_tree([1 / 3, 2 / 3], [2 / 3, 1 / 3], gamma)


def truncate_rows(rows: Mapping[Prefix, torch.Tensor], top_k: int = 0, top_p: float = 1.0) -> dict[Prefix, torch.Tensor]:
    """Every row cut to the support the engine's top-k/top-p warp keeps, renormalised in float64.

    The support is decided by ``sampling.warp`` on log-probabilities (what
    the engine does to logits); the kept values stay float64, so the tree
    stays exact.
    """
    decoding = DecodingConfig(temperature=1.0, top_k=top_k, top_p=top_p)
    out = {}
    for prefix, row in rows.items():
        kept = warp(row.log()[None], decoding)[0] > 0
        cut = torch.where(kept, row, torch.zeros_like(row))
        out[prefix] = cut / cut.sum()
    return out


def truncated_tree(tree: ToyTree, top_k: int = 0, top_p: float = 1.0, broken_drafter: bool = False) -> ToyTree:
    """``tree`` with q and p cut by the same top-k/top-p (as every level of the engine warps).

    ``broken_drafter=True`` keeps the drafter sampling from the uncut q while
    it reports the cut one: drafts then hold tokens with q(x) = 0.
    """
    q = truncate_rows(tree.q, top_k, top_p)
    p = truncate_rows(tree.p, top_k, top_p)
    return ToyTree(tree.vocab, tree.depth, q, p, draft_rows=dict(tree.q) if broken_drafter else None)


def draft_law(tree: ToyTree, gamma: int, stop: StopRule | None = None, base: Prefix = ()) -> list[tuple[Prefix, float]]:
    """Every draft after context ``base`` with its probability: autoregressive from the drafter's
    rows (``draft_rows``, else q), length gamma (or stopped early by ``stop``)."""
    if len(base) + gamma > tree.depth:
        raise ValueError(f"gamma={gamma} after a context of {len(base)} tokens exceeds the tree depth {tree.depth}")
    rows = tree.draft_rows if tree.draft_rows is not None else tree.q
    out: list[tuple[Prefix, float]] = []

    def grow(prefix: Prefix, prob: float) -> None:
        if len(prefix) == gamma:
            out.append((prefix, prob))
            return
        if prefix and stop is not None:
            s = float(stop(base + prefix))
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"stop({base + prefix}) = {s} must be a probability in [0, 1]")
            if s > 0:
                out.append((prefix, prob * s))
            prob *= 1.0 - s
        if prob == 0.0:
            return
        for tok, qt in enumerate(rows[base + prefix].tolist()):
            if qt > 0:
                grow(prefix + (tok,), prob * qt)

    grow((), 1.0)
    return out


# -- the law of a rule's verdict, from its __call__ ------------------------------------------
def threshold_hints(draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> list[float]:
    """Where the built-in rules' uniforms change the verdict: acceptance probabilities and
    CDF points of every row they may draw from. Only tells the integrator where to look
    first (a wrong or missing hint costs time, not exactness)."""
    points: list[float] = []

    def cdf_points(row: torch.Tensor) -> None:
        cdf = row.double().cumsum(0)
        if float(cdf[-1]) > 0:
            points.extend((cdf / cdf[-1]).tolist())

    k = draft.shape[0]
    for h, rows in (block_tables(draft, q, p), hsd_tables(draft, q, p), hsd_tables(draft, q, p, cap_final=False)):
        points.extend(h.double().tolist())
        for row in rows:
            cdf_points(row)
    if k:
        idx = torch.arange(k)
        points.extend((p[idx, draft].double() / q[idx, draft].double()).nan_to_num(1.0).clamp(0, 1).tolist())
    for j in range(k):
        cdf_points(residual(p[j], q[j]))
    return points


def call_law(rule, draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> Law:
    """Exact law of ``rule(draft, q, p, generator)``'s verdict: the rule's own code, run with its
    uniforms integrated on the generator's grid (:func:`hsd_bench.exact_law.execution_law`)."""
    name = getattr(rule, "name", type(rule).__name__)
    k, vocab = draft.shape[0], p.shape[-1]

    def verdict(generator: torch.Generator) -> tuple[int, int]:
        v = rule(draft, q, p, generator)
        if not isinstance(v, Verdict) or not isinstance(v.accepted, int) or not isinstance(v.token, int):
            raise AssertionError(f"{name} returned {v!r}, not a Verdict of two ints")
        if not 0 <= v.accepted <= k or not 0 <= v.token < vocab:
            raise AssertionError(f"{name} returned {v} on a {k}-token draft over {vocab} tokens")
        return v.accepted, v.token

    return execution_law(verdict, hints=threshold_hints(draft, q, p))


def _cached_call_law(rule, draft: Prefix, q: torch.Tensor, p: torch.Tensor, cache: dict | None) -> Law:
    """:func:`call_law`, memoised in ``cache`` by the rule (class and attributes) and the input
    values: a rule is a pure function of them."""
    if cache is None:
        return call_law(rule, torch.tensor(draft, dtype=torch.long), q, p)
    settings = tuple(sorted((k, repr(v)) for k, v in vars(rule).items()))
    key = (type(rule), settings, draft, q.dtype, q.numpy().tobytes(), p.numpy().tobytes())
    if key not in cache:
        cache[key] = call_law(rule, torch.tensor(draft, dtype=torch.long), q, p)
    return cache[key]


# -- the criterion ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FidelityResult:
    rule: str
    gamma: int
    max_abs_error: float  # max_z |P_ext(z) - p(z)| over z in V^L
    tv_distance: float  # total variation between P_ext and p on V^L
    expected_accepted: float  # E[accepted draft tokens], bonus/correction excluded
    zero_mass_leak: float  # probability of committing a sequence the target gives 0; must be exactly 0
    lossless: bool


def committed_law(
    rule, tree: ToyTree, gamma: int, stop: StopRule | None = None, cache: dict | None = None, dtype: torch.dtype = torch.float64
) -> tuple[dict[Prefix, float], float]:
    """Exact law of the committed tokens c = draft[:accepted] + (token,), and E[accepted].

    ``dtype`` is what the rule receives (float32 is what the engine's warp
    gives); the law is still exact for those inputs.
    """
    law: dict[Prefix, float] = {}
    expected = 0.0
    for draft, prob in draft_law(tree, gamma, stop):
        q, p = tree.path(draft)
        for (accepted, token), pr in _cached_call_law(rule, draft, q.to(dtype), p.to(dtype), cache).items():
            c = draft[:accepted] + (token,)
            law[c] = law.get(c, 0.0) + prob * pr
            expected += prob * pr * accepted
    return law, expected


def extended_law(law: Mapping[Prefix, float], tree: ToyTree, length: int) -> dict[Prefix, float]:
    """P_ext: each commit extended to ``length`` tokens by the target (see module doc)."""
    out: dict[Prefix, float] = {}
    for c, prob in law.items():
        if len(c) > length:
            raise ValueError(f"commit {c} is longer than length={length}")
        for tail in itertools.product(range(tree.vocab), repeat=length - len(c)):
            z = c + tail
            out[z] = out.get(z, 0.0) + prob * tree.target_prob(tail, given=c)
    return out


def target_law(tree: ToyTree, length: int) -> dict[Prefix, float]:
    return {z: tree.target_prob(z) for z in itertools.product(range(tree.vocab), repeat=length)}


def compare_with_target(
    name: str, law: Mapping[Prefix, float], expected: float, tree: ToyTree, gamma: int, tol: float = 1e-12
) -> FidelityResult:
    """The criterion (module doc) for a law of commits against ``tree``'s target."""
    total = sum(law.values())
    if abs(total - 1.0) > 1e-9:
        raise AssertionError(f"{name}: the committed law sums to {total}")
    length = max(len(c) for c in law)
    ext = extended_law(law, tree, length)
    ref = target_law(tree, length)
    diffs = [abs(ext.get(z, 0.0) - ref[z]) for z in ref]
    stray = sum(v for z, v in ext.items() if z not in ref)  # impossible: ext lives on V^L
    leak = math.fsum(prob for c, prob in law.items() if tree.forbids(c))
    max_err = max(diffs)
    tv = 0.5 * (sum(diffs) + stray)
    lossless = bool(max_err <= tol and tv <= tol * len(ref) and leak == 0.0)
    return FidelityResult(name, gamma, max_err, tv, expected, leak, lossless)


def check_rule(
    rule,
    tree: ToyTree,
    gamma: int,
    stop: StopRule | None = None,
    tol: float = 1e-12,
    cache: dict | None = None,
    dtype: torch.dtype = torch.float64,
) -> FidelityResult:
    """Run the exact fidelity test of one rule on one tree."""
    law, expected = committed_law(rule, tree, gamma, stop, cache, dtype)
    return compare_with_target(_name(rule), law, expected, tree, gamma, tol)


# -- three levels -----------------------------------------------------------------------------
def middle_law(
    middle,
    lower: ToyTree,
    gamma: int,
    batch: int = 1,
    flush_on_reject: bool = False,
    stop: StopRule | None = None,
    cache: dict | None = None,
) -> dict[Prefix, float]:
    """Exact law of the tokens a middle level hands up: it runs rounds on the drafter's drafts
    (``gamma`` tokens, or stopped by ``stop``) until it holds ``batch`` tokens, or until a round
    rejects when ``flush_on_reject`` -- what ``Engine._produce`` does below the top."""
    out: dict[Prefix, float] = {}

    def rounds(base: Prefix, prob: float) -> None:
        for draft, pd in draft_law(lower, gamma, stop, base):
            q, p = lower.path(draft, base)
            for (a, token), pr in _cached_call_law(middle, draft, q, p, cache).items():
                held = base + draft[:a] + (token,)
                if len(held) >= batch or (flush_on_reject and a < len(draft)):
                    out[held] = out.get(held, 0.0) + prob * pd * pr
                else:
                    rounds(held, prob * pd * pr)

    rounds((), 1.0)
    return out


def stack_law(
    middle,
    top,
    lower: ToyTree,
    upper: ToyTree,
    gamma: int,
    batch: int = 1,
    flush_on_reject: bool = False,
    stop: StopRule | None = None,
    cache: dict | None = None,
) -> tuple[dict[Prefix, float], float]:
    """Exact law of what the top level commits in one round of drafter -> middle -> top, and E[accepted] at the top.

    ``lower`` holds the drafter's q and the middle's rows (its p), ``upper``
    the middle's rows again (the q the top sees) and the top's p. The middle
    hands up what :func:`middle_law` describes; the top verifies all of it,
    with the middle's rows along it as q -- as the engine does.
    """
    if lower.p is not upper.q:
        raise ValueError("the middle level's rows must be the q the top sees: build both trees with random_stack")
    law: dict[Prefix, float] = {}
    expected = 0.0
    for held, prob in middle_law(middle, lower, gamma, batch, flush_on_reject, stop, cache).items():
        q, p = upper.path(held)
        for (a, token), pr in _cached_call_law(top, held, q, p, cache).items():
            c = held[:a] + (token,)
            law[c] = law.get(c, 0.0) + prob * pr
            expected += prob * pr * a
    return law, expected


def random_stack(
    vocab: int,
    depth: int,
    seed: int,
    top_k: int = 0,
    top_p: float = 1.0,
    broken_drafter: bool = False,
    concentration: float = 0.7,
    zero_prob: float = 0.15,
) -> tuple[ToyTree, ToyTree]:
    """Random drafter, middle and top rows on every prefix of length <= depth, cut by top-k/top-p.

    Returns ``(lower, upper)`` for :func:`stack_law`; ``broken_drafter`` as in
    :func:`truncated_tree` (the drafter samples from its uncut rows).
    """
    _check_size(vocab, depth)
    rng = np.random.default_rng(seed)
    row = _row_sampler(rng, vocab, concentration, zero_prob)
    raw = [{}, {}, {}]
    for prefix in _prefixes(vocab, depth):
        for level in raw:
            level[prefix] = row()
    drafter, middle, target = (truncate_rows(rows, top_k, top_p) for rows in raw)
    lower = ToyTree(vocab, depth, drafter, middle, draft_rows=raw[0] if broken_drafter else None)
    return lower, ToyTree(vocab, depth, middle, target)


def hashed_stop(salt: int) -> StopRule:
    """A fixed pseudo-random prefix-dependent stopping rule: after each prefix 0, 1, 1/2 or a value in [0, 1)."""

    def stop(prefix: Prefix) -> float:
        h = int(hashlib.sha256(f"{salt}:{prefix}".encode()).hexdigest(), 16)
        return [0.0, 1.0, 0.5, (h >> 8) % 1000 / 1000][h % 4]

    return stop


def _name(rule) -> str:
    return getattr(rule, "name", type(rule).__name__)


def as_fraction_string(x: float, max_den: int = 1000) -> str:
    """``0.4444 -> '4/9'`` when x is that fraction to 1e-12, for reports."""
    from fractions import Fraction

    f = Fraction(x).limit_denominator(max_den)
    return f"{f.numerator}/{f.denominator}" if math.isclose(float(f), x, abs_tol=1e-12) else ""
