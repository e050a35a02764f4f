"""The exact fidelity test of DESIGN.md §4: is a verification rule lossless?

Setting. A tiny vocabulary V (2-4 tokens) and a *tree*: for every prefix of
length 0..gamma a draft distribution q(. | prefix) and a target distribution
p(. | prefix), drawn at random per prefix (context-dependent). One round of
speculative decoding drafts x = x_1..x_k autoregressively from q (k = gamma,
or a random length when a drafter stopping rule is given), the rule returns
``(accepted, token)``, and the round *commits* c = (x_1..x_accepted, token):
1..gamma+1 tokens. Every draft is enumerated (probability = product of q) and
every outcome of the rule is weighted by its ``outcome_distribution``, so the
law of c is computed exactly, in float64.

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
both are at float64 rounding level (``tol``, default 1e-12).

Accepted tokens. ``expected_accepted`` is E[accepted]: draft tokens kept per
round, *without* the correction/bonus token (tokens committed per round =
accepted + 1). This is the convention of Sun et al.: on their toy case
(context-independent p = (1/3, 2/3), q = (2/3, 1/3), gamma = 2) it gives
10/9 for token-wise and 11/9 for block verification.

A drafter stopping rule (``stop``) makes the draft length random: after each
prefix of length 1..gamma-1 the drafter stops with probability stop(prefix).
This is the situation of a draft produced by a lower level of a hierarchy;
rules with ``fixed_length = False`` must stay lossless under it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

Prefix = tuple[int, ...]
StopRule = Callable[[Prefix], float]


@dataclass(frozen=True)
class ToyTree:
    """q(. | prefix) and p(. | prefix), float64 ``[V]``, for every prefix of length <= depth."""

    vocab: int
    depth: int
    q: Mapping[Prefix, torch.Tensor]
    p: Mapping[Prefix, torch.Tensor]

    def path(self, draft: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
        """The rule's inputs for ``draft``: q ``[k, V]`` and p ``[k + 1, V]`` along its path."""
        q = torch.stack([self.q[draft[:j]] for j in range(len(draft))]) if draft else torch.zeros(0, self.vocab, dtype=torch.float64)
        p = torch.stack([self.p[draft[:j]] for j in range(len(draft) + 1)])
        return q, p

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
    if concentration <= 0:
        raise ValueError(f"concentration={concentration} must be > 0")
    rng = np.random.default_rng(seed)

    def row() -> np.ndarray:
        r = rng.dirichlet([concentration] * vocab)
        if rng.random() < zero_prob:
            r[rng.integers(vocab)] = 0.0
            if r.sum() == 0:
                r[rng.integers(vocab)] = 1.0
        return r / r.sum()

    q, p = {}, {}
    for prefix in _prefixes(vocab, gamma):
        q[prefix] = torch.tensor(row(), dtype=torch.float64)
        p[prefix] = q[prefix].clone() if rng.random() < tie_prob else torch.tensor(row(), dtype=torch.float64)
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


def draft_law(tree: ToyTree, gamma: int, stop: StopRule | None = None) -> list[tuple[Prefix, float]]:
    """Every draft with its probability: autoregressive from q, length gamma (or stopped early)."""
    if gamma > tree.depth:
        raise ValueError(f"gamma={gamma} exceeds the tree depth {tree.depth}")
    out: list[tuple[Prefix, float]] = []

    def grow(prefix: Prefix, prob: float) -> None:
        if len(prefix) == gamma:
            out.append((prefix, prob))
            return
        if prefix and stop is not None:
            s = float(stop(prefix))
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"stop({prefix}) = {s} must be a probability in [0, 1]")
            if s > 0:
                out.append((prefix, prob * s))
            prob *= 1.0 - s
        if prob == 0.0:
            return
        for tok, qt in enumerate(tree.q[prefix].tolist()):
            if qt > 0:
                grow(prefix + (tok,), prob * qt)

    grow((), 1.0)
    return out


@dataclass(frozen=True)
class FidelityResult:
    rule: str
    gamma: int
    max_abs_error: float  # max_z |P_ext(z) - p(z)| over z in V^(gamma+1)
    tv_distance: float  # total variation between P_ext and p on V^(gamma+1)
    expected_accepted: float  # E[accepted draft tokens], bonus/correction excluded
    lossless: bool


def committed_law(rule, tree: ToyTree, gamma: int, stop: StopRule | None = None) -> tuple[dict[Prefix, float], float]:
    """Exact law of the committed tokens c = draft[:accepted] + (token,), and E[accepted]."""
    law: dict[Prefix, float] = {}
    expected = 0.0
    for draft, prob in draft_law(tree, gamma, stop):
        q, p = tree.path(draft)
        outcomes = rule.outcome_distribution(torch.tensor(draft, dtype=torch.long), q, p)
        total = sum(outcomes.values())
        if abs(total - 1.0) > 1e-9:
            raise AssertionError(f"{_name(rule)}.outcome_distribution sums to {total} on draft {draft}")
        for (accepted, token), pr in outcomes.items():
            if not 0 <= accepted <= len(draft):
                raise AssertionError(f"{_name(rule)} accepted {accepted} of a {len(draft)}-token draft")
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


def check_rule(rule, tree: ToyTree, gamma: int, stop: StopRule | None = None, tol: float = 1e-12) -> FidelityResult:
    """Run the exact fidelity test of one rule on one tree."""
    law, expected = committed_law(rule, tree, gamma, stop)
    length = gamma + 1
    ext = extended_law(law, tree, length)
    ref = target_law(tree, length)
    diffs = [abs(ext.get(z, 0.0) - ref[z]) for z in ref]
    stray = sum(v for z, v in ext.items() if z not in ref)  # impossible: ext lives on V^L
    max_err = max(diffs)
    tv = 0.5 * (sum(diffs) + stray)
    return FidelityResult(_name(rule), gamma, max_err, tv, expected, bool(max_err <= tol and tv <= tol * len(ref)))


def _name(rule) -> str:
    return getattr(rule, "name", type(rule).__name__)


def as_fraction_string(x: float, max_den: int = 1000) -> str:
    """``0.4444 -> '4/9'`` when x is that fraction to 1e-12, for reports."""
    from fractions import Fraction

    f = Fraction(x).limit_denominator(max_den)
    return f"{f.numerator}/{f.denominator}" if math.isclose(float(f), x, abs_tol=1e-12) else ""
