"""Choose the latency-optimal hierarchy out of a pool of drafters.

A *stack* is a chain ``M_0 -> M_1 -> ... -> target`` of distinct pool
members, cheapest at the bottom (the paper's ``M_0 < M_1 < ... < M_K``:
members are ordered by the cost of one forward, and a stack is an increasing
subsequence ending at the target), with batch sizes ``T_0..T_{K-1}`` in
``1..t_max``.

Why it is a shortest path (generalized: edge weights multiply). Under the
``trim`` variant each level hands up exactly ``T_i`` tokens, and with
``adjacent`` acceptance level ``v``'s behaviour depends on what is below it
only through the pair ``(u, T_u)`` directly below and the expected cost
``C_u`` of one call of that level::

    C_v = m(alpha_uv, T_u, T_v) * (C_u + c_{u->v}(T_u + 1))       (Wald)
    latency = (C_u + c_{u->t}(T_u + 1)) / (1 + sum_{a=1..T_u} alpha_ut^a)   (top)

with ``m`` the expected number of rounds (a renewal function). ``C_v`` is an
increasing affine function of ``C_u``, so the cheapest way to reach a node
``(v, T_v)`` extends the cheapest way to reach one of its predecessors:
dynamic programming over nodes ``(member, T)`` in cost order -- a
generalized shortest path (edge gain ``m``, edge cost ``m * c``) -- is exact
(:func:`_gsp`). With ``n`` drafters: ``O(n^2 t_max^3)`` to tabulate the
renewal functions, then ``O(n^2 t_max^2 keep)`` relaxations for the
``keep`` best paths per node (one suffices for the optimum; ``keep`` more
list the runners-up). A depth limit adds a depth index: ``O(depth n^2
t_max^2 keep)``. Without one no index is needed: chains increase in cost,
so every path is simple and a node's best path does not depend on length.

The engine's default (token-wise rule) *overshoots*: a level hands up every
token of its last round, so what a level hands up has a *law* of lengths,
and the levels above depend on that whole law, not on one number; no
scalar decomposition holds. :func:`_beam` runs the same DP carrying each
partial stack's exact law of handed-up lengths and keeps, per node, the
``keep`` partial stacks that would be best if the target verified them
directly (a beam with a one-step look-ahead), ``O(keep n^2 t_max^3 L)``
with ``L <= depth * t_max`` the longest hand-up; under ``trim`` it reduces
to the exact DP. The ``keep`` best distinct chains it returns, plus the
target alone and every single-drafter chain (so the answer is never worse
than autoregressive decoding or the best vanilla speculative decoding in
the pool), then get their batch sizes searched
under the exact model (exhaustive when small, else coordinate descent,
``depth * t_max`` exact evaluations per sweep). Every reported latency is
exact; the optimum is not guaranteed.

With ``provenance`` acceptance (a token's acceptance depends on which model
produced it) the mix of producers in a handed-up batch matters as well and
the exact law would have to track it for every possible upper level. The
beam then uses a mean-field surrogate (the expected share of each producer,
and the mixture acceptance rate) to generate candidates, which are scored
exactly. Polynomial, not guaranteed optimal.

The tests compare every mode with :func:`brute_force` on seeded random
pools; ``docs/hierarchy.md`` reports a larger sweep.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from hsd_bench.hierarchy.latency import (
    VARIANTS,
    LatencyBreakdown,
    StackSpec,
    _expect_cost,
    _round_increments,
    _trim_law,
    expected_latency,
)
from hsd_bench.hierarchy.profile_format import PoolProfile

ACCEPTANCE_MODELS = ("adjacent", "provenance")

__all__ = [
    "ACCEPTANCE_MODELS",
    "Candidate",
    "Selection",
    "brute_force",
    "build_stack",
    "evaluate",
    "ordered_drafters",
    "select_hierarchy",
]


@dataclass(frozen=True)
class Candidate:
    names: tuple[str, ...]  # bottom -> top; the last is the target
    batches: tuple[int, ...]  # T_0 .. T_{K-1}
    latency: float  # predicted cost per committed token
    ar_latency: float  # target alone, one position per forward

    @property
    def speedup(self) -> float:
        return self.ar_latency / self.latency

    def describe(self) -> str:
        if len(self.names) == 1:
            return f"{self.names[0]} (autoregressive)"
        parts = [f"{n}(T={t})" for n, t in zip(self.names, self.batches)] + [self.names[-1]]
        return " -> ".join(parts)


@dataclass
class Selection:
    best: Candidate
    alternatives: list[Candidate]  # next-best distinct chains, each with its best batches found
    variant: str
    acceptance: str
    t_max: int
    exact: bool  # True when the polynomial algorithm is provably optimal for this model
    excluded: list[str] = field(default_factory=list)  # drafters not cheaper than the target
    evaluations: int = 0
    breakdown: LatencyBreakdown | None = None

    def method_levels(self, pool: PoolProfile) -> list[dict]:
        """The chosen stack as ``method=hierarchy`` levels (everything below the target)."""
        out = []
        for name, t in zip(self.best.names[:-1], self.best.batches):
            m = pool.members[name]
            out.append({"path": m.path, "exit": m.exit, "batch": int(t)})
        return out


def _check(variant: str, acceptance: str, t_max: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}; valid: {', '.join(VARIANTS)}")
    if acceptance not in ACCEPTANCE_MODELS:
        raise ValueError(f"acceptance={acceptance!r}; valid: {', '.join(ACCEPTANCE_MODELS)}")
    if not isinstance(t_max, int) or t_max < 1:
        raise ValueError(f"t_max={t_max!r} must be an integer >= 1")


def ordered_drafters(pool: PoolProfile) -> tuple[list[str], list[str]]:
    """Drafters cheaper than the target, cheapest first; and the excluded ones."""
    t_cost = pool.draft_cost(pool.target)(1)
    keep, excluded = [], []
    for name in pool.drafters:
        (keep if pool.draft_cost(name)(1) < t_cost else excluded).append(name)
    keep.sort(key=lambda n: (pool.draft_cost(n)(1), n))
    return keep, sorted(excluded)


def build_stack(
    pool: PoolProfile,
    names: tuple[str, ...] | list[str],
    batches: tuple[int, ...] | list[int],
    acceptance: str = "adjacent",
    variant: str = "overshoot",
) -> StackSpec:
    """The :class:`StackSpec` of a chain of pool members (bottom -> top)."""
    names = tuple(names)
    if acceptance not in ACCEPTANCE_MODELS:
        raise ValueError(f"acceptance={acceptance!r}; valid: {', '.join(ACCEPTANCE_MODELS)}")
    for n in names:
        if n not in pool.members:
            raise ValueError(f"{n!r} is not a pool member; members: {sorted(pool.members)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a stack uses each member once, got {list(names)}")
    costs = [pool.draft_cost(names[0])] + [pool.verify_cost(names[i - 1], names[i]) for i in range(1, len(names))]
    d = len(names)
    if acceptance == "adjacent":
        acc = [[pool.alpha(names[j - 1], names[j]) if l < j else 1.0 for j in range(d)] for l in range(d)]
    else:
        acc = [[pool.alpha(names[l], names[j]) if l < j else 1.0 for j in range(d)] for l in range(d)]
    return StackSpec(tuple(int(t) for t in batches), tuple(costs), tuple(map(tuple, acc)), variant, names=names,
                     ar_cost=pool.ar_cost() if names[-1] == pool.target else pool.draft_cost(names[-1]))


def evaluate(pool: PoolProfile, names, batches, acceptance: str = "adjacent", variant: str = "overshoot") -> Candidate:
    spec = build_stack(pool, names, batches, acceptance, variant)
    b = expected_latency(spec)
    return Candidate(tuple(names), tuple(int(t) for t in batches), b.latency_per_token, b.ar_latency_per_token)


def brute_force(
    pool: PoolProfile,
    t_max: int,
    acceptance: str = "adjacent",
    variant: str = "overshoot",
    max_depth: int | None = None,
) -> list[Candidate]:
    """Every stack (increasing-cost chain ending at the target) and every batch vector in
    ``1..t_max``, evaluated exactly; best first. Exponential: for tests and small pools."""
    _check(variant, acceptance, t_max)
    drafters, _ = ordered_drafters(pool)
    depth = len(drafters) if max_depth is None else min(max_depth, len(drafters))
    out = [evaluate(pool, (pool.target,), (), acceptance, variant)]
    for k in range(1, depth + 1):
        for chain in itertools.combinations(drafters, k):
            names = chain + (pool.target,)
            for batches in itertools.product(range(1, t_max + 1), repeat=k):
                out.append(evaluate(pool, names, batches, acceptance, variant))
    out.sort(key=lambda c: (c.latency, len(c.names), c.names, c.batches))
    return out


# -- the generalized shortest path ---------------------------------------------------------------


def _increment_law(alpha: float, t_low: int) -> np.ndarray:
    """P(round adds r tokens), r = 1..t_low+1, when the level below hands up exactly t_low."""
    a = np.arange(t_low + 1)
    p = alpha**a * (1.0 - alpha)
    p[t_low] = alpha**t_low
    return p  # index a <-> increment a + 1


def _renewal(alpha: float, t_low: int, t_max: int) -> np.ndarray:
    """m[t] = E[rounds to hold >= t tokens], t = 0..t_max (m[0] = 0)."""
    inc = _increment_law(alpha, t_low)
    m = np.zeros(t_max + 1)
    for t in range(1, t_max + 1):
        total = 1.0
        for a, p in enumerate(inc):
            r = a + 1
            if r < t:
                total += p * m[t - r]
        m[t] = total
    return m


def _node_layers(n: int, max_depth: int) -> tuple[int, bool]:
    """Nodes carry a depth index only when the depth limit binds; otherwise one layer.

    Chains are increasing in cost, so without a limit every path is simple and
    the best way to reach ``(member, T)`` does not depend on the path's length.
    """
    layered = max_depth < n
    return (max_depth if layered else 1), layered


def _gsp(pool: PoolProfile, drafters: list[str], t_max: int, keep: int, max_depth: int) -> list[tuple]:
    """k-best DP over nodes (member, T) [and depth, when limited] under the trim + adjacent model.

    Returns complete paths ``(latency, names, batches)`` -- up to ``keep`` per
    node below the target -- plus the target alone; the caller sorts.
    """
    n = len(drafters)
    target = pool.target
    draft_c = [pool.draft_cost(u)(1) for u in drafters]
    # renewal[(iu, iv)][T_u] -> array over T_v
    renewal = {}
    for iu in range(n):
        for iv in range(iu + 1, n):
            a = pool.alpha(drafters[iu], drafters[iv])
            renewal[(iu, iv)] = [None] + [_renewal(a, tu, t_max) for tu in range(1, t_max + 1)]
    vcost = {(iu, iv): pool.verify_cost(drafters[iu], drafters[iv]) for iu in range(n) for iv in range(iu + 1, n)}
    layers, layered = _node_layers(n, max_depth)
    # best[d][iv][T] = sorted list of (C, path) where path = ((i, T), ...) bottom -> this node
    best = [[[[] for _ in range(t_max + 1)] for _ in range(n)] for _ in range(layers)]
    for d in range(layers):
        for iv in range(n):
            for tv in range(1, t_max + 1):
                cands = [(tv * draft_c[iv], ((iv, tv),))] if d == 0 else []
                if d > 0 or not layered:
                    src = best[d - 1] if layered else best[0]
                    for iu in range(iv):
                        ren = renewal[(iu, iv)]
                        vc = vcost[(iu, iv)]
                        for tu in range(1, t_max + 1):
                            gain = ren[tu][tv]
                            step = vc(tu + 1)
                            for c, path in src[iu][tu]:
                                cands.append((gain * (c + step), path + ((iv, tv),)))
                cands.sort(key=lambda x: x[0])
                best[d][iv][tv] = cands[:keep]
    tops = [(pool.ar_cost()(1), (target,), ())]
    for d in range(layers):
        for iu in range(n):
            a = pool.alpha(drafters[iu], target)
            vc = pool.verify_cost(drafters[iu], target)
            for tu in range(1, t_max + 1):
                tokens = 1.0 + sum(a**k for k in range(1, tu + 1))
                for c, path in best[d][iu][tu]:
                    lat = (c + vc(tu + 1)) / tokens
                    names = tuple(drafters[i] for i, _ in path) + (target,)
                    tops.append((lat, names, tuple(t for _, t in path)))
    return tops


def _extend(q: np.ndarray, alpha: float, t_max: int, variant: str) -> list[tuple[float, np.ndarray]]:
    """For a level whose lower level hands up lengths with law ``q``: (E[rounds], law of what it
    hands up) for every batch size T = 1..t_max, from one pass of the round process."""
    inc_all, inc_rej, _ = _round_increments(q, alpha)
    inc = inc_all + inc_rej
    r_max = len(inc) - 1
    width = t_max + r_max
    visit = np.zeros(width + 1)  # P(the level ever holds exactly s tokens at a round start)
    visit[0] = 1.0
    for s in range(t_max):
        if visit[s]:
            visit[s + 1 : s + r_max + 1] += visit[s] * inc[1:]
    # reach[s, l] = sum_{s' <= s} visit[s'] * P(round adds l - s'): ends at l from a state <= s
    flow = np.zeros((t_max, width))
    for s in range(t_max):
        flow[s, s + 1 : s + r_max + 1] = visit[s] * inc[1:]
    reach = np.cumsum(flow, axis=0)
    rounds = np.cumsum(visit[:t_max])
    out = []
    for tv in range(1, t_max + 1):
        law = np.zeros(width)
        law[tv:] = reach[tv - 1, tv:]
        if variant == "trim":
            law = _trim_law(law, tv)
        out.append((float(rounds[tv - 1]), law))
    return out


class _CostVector:
    """``c(n + 1)`` for ``n = 0, 1, ...`` as a cached vector, so that E[c(L + 1)] is one dot product."""

    def __init__(self, fn):
        self.fn = fn
        self.vec = np.zeros(0)

    def expect(self, q: np.ndarray) -> float:
        if len(q) > len(self.vec):
            self.vec = np.array([self.fn(n + 1) for n in range(max(len(q), 2 * len(self.vec)))])
        return float(q @ self.vec[: len(q)])


def _beam(
    pool: PoolProfile, drafters: list[str], t_max: int, keep: int, max_depth: int, variant: str,
    acceptance: str = "adjacent",
) -> list[tuple]:
    """The same DP over nodes (member, T) [and depth, when limited], carrying each partial
    stack's exact law of handed-up length.

    A node keeps the ``keep`` partial stacks that would be best if the target
    verified them directly (a beam with a one-step look-ahead, which weighs
    both what a partial stack costs and how acceptable what it hands up is).
    With ``adjacent`` acceptance every returned latency is exact, and under
    ``trim`` this is the exact k-best DP (at a fixed node the look-ahead is an
    increasing function of the cost). With ``provenance`` acceptance it is a
    mean-field surrogate: each partial stack also carries the expected number
    of handed-up tokens produced by each member, and the next level accepts
    at the mixture rate ``sum_l share_l * alpha(l, next)``; the caller
    re-scores its candidates exactly.
    """
    n = len(drafters)
    target = pool.target
    members = drafters + [target]
    mean_field = acceptance == "provenance"
    alpha = [[pool.alpha(members[i], members[j]) if i != j else 1.0 for j in range(n + 1)] for i in range(n + 1)]
    draft_c = [pool.draft_cost(u)(1) for u in drafters]
    layers, layered = _node_layers(n, max_depth)

    def rate(mix: np.ndarray, path, j: int) -> float:
        if not mean_field:
            return alpha[path[-1][0]][j]
        return float(mix @ np.array([alpha[i][j] for i in range(n + 1)]) / mix.sum())

    to_target = [_CostVector(pool.verify_cost(u, target)) for u in drafters]
    between = {(iu, iv): _CostVector(pool.verify_cost(drafters[iu], drafters[iv]))
               for iu in range(n) for iv in range(iu + 1, n)}

    def look_ahead(c: float, q: np.ndarray, mix: np.ndarray, path) -> float:
        """Latency per token if the target verified this partial stack directly."""
        # E[accepted] = sum_{a >= 1} alpha^a P(L >= a)
        tail = np.cumsum(q[::-1])[::-1]
        mean_a = float(rate(mix, path, n) ** np.arange(1, len(q)) @ tail[1:])
        return (c + to_target[path[-1][0]].expect(q)) / (1.0 + mean_a)

    # nodes[d][iv][T] = list of (proxy, C, q, mix, path); mix[i] = E[tokens produced by member i handed up]
    nodes = [[[[] for _ in range(t_max + 1)] for _ in range(n)] for _ in range(layers)]
    for d in range(layers):
        for iv in range(n):
            cands: list[list] = [[] for _ in range(t_max + 1)]
            if d == 0:
                for tv in range(1, t_max + 1):
                    q = np.zeros(tv + 1)
                    q[tv] = 1.0
                    mix = np.zeros(n + 1)
                    mix[iv] = tv
                    path = ((iv, tv),)
                    c = tv * draft_c[iv]
                    cands[tv].append((look_ahead(c, q, mix, path), c, q, mix, path))
            if d > 0 or not layered:
                src = nodes[d - 1] if layered else nodes[0]
                for iu in range(iv):
                    for tu in range(1, t_max + 1):
                        for _, c, q, mix, path in src[iu][tu]:
                            a = rate(mix, path, iv)
                            vc = between[(iu, iv)].expect(q)
                            _, _, mean_a = _round_increments(q, a)
                            share = mix / mix.sum()
                            for tv, (rounds, law) in enumerate(_extend(q, a, t_max, variant), start=1):
                                c_new = rounds * (c + vc)
                                mean_len = float((np.arange(len(law)) * law).sum())
                                new_mix = rounds * mean_a * share  # accepted tokens keep their producer (Wald)
                                new_mix[iv] += rounds  # one correction/bonus per round
                                new_mix *= mean_len / new_mix.sum()  # trimming: shrink proportionally
                                new_path = path + ((iv, tv),)
                                proxy = look_ahead(c_new, law, new_mix, new_path)
                                cands[tv].append((proxy, c_new, law, new_mix, new_path))
            for tv in range(1, t_max + 1):
                cands[tv].sort(key=lambda x: x[0])
                nodes[d][iv][tv] = cands[tv][:keep]
    tops = [(pool.ar_cost()(1), (target,), ())]
    for d in range(layers):
        for iu in range(n):
            for tu in range(1, t_max + 1):
                for lat, _, _, _, path in nodes[d][iu][tu]:  # the look-ahead is the complete stack's latency
                    tops.append((lat, tuple(drafters[i] for i, _ in path) + (target,), tuple(t for _, t in path)))
    return tops


def _search_batches(pool, names, start, t_max, acceptance, variant, exhaustive_limit, counter) -> Candidate:
    """Best batch vector for one chain under the exact model."""
    k = len(names) - 1

    def ev(b):
        counter[0] += 1
        return evaluate(pool, names, b, acceptance, variant)

    if k == 0:
        return ev(())
    if t_max**k <= exhaustive_limit:
        return min((ev(b) for b in itertools.product(range(1, t_max + 1), repeat=k)), key=lambda c: c.latency)
    cur = ev(tuple(start))
    improved = True
    while improved:
        improved = False
        for i in range(k):
            for t in range(1, t_max + 1):
                if t == cur.batches[i]:
                    continue
                b = list(cur.batches)
                b[i] = t
                c = ev(tuple(b))
                if c.latency < cur.latency * (1 - 1e-12):
                    cur, improved = c, True
    return cur


def select_hierarchy(
    pool: PoolProfile,
    t_max: int = 8,
    acceptance: str = "adjacent",
    variant: str = "overshoot",
    max_depth: int | None = None,
    top_k: int = 5,
    keep: int = 16,
    exhaustive_limit: int = 64,
) -> Selection:
    """The latency-optimal stack and batch sizes for ``pool`` (see the module docstring).

    * ``trim`` + ``adjacent``: the generalized shortest path, provably optimal;
    * ``overshoot`` + ``adjacent`` (the engine with the token-wise rule): the
      same DP carrying exact laws of handed-up lengths, ``keep`` partial
      stacks per node (a beam), then the ``keep`` best distinct chains and
      every single-drafter chain get their batch sizes searched under the
      exact model;
    * ``provenance``: the same with a mean-field beam, every candidate scored
      exactly under provenance acceptance.

    The batch search is exhaustive when ``t_max ** depth <= exhaustive_limit``,
    else coordinate descent from the beam's batches.

    ``max_depth`` bounds the number of drafters in a stack.
    """
    _check(variant, acceptance, t_max)
    if top_k < 0 or keep < 1:
        raise ValueError(f"top_k={top_k} must be >= 0 and keep={keep} must be >= 1")
    if max_depth is not None and max_depth < 0:
        raise ValueError(f"max_depth={max_depth} must be >= 0")
    drafters, excluded = ordered_drafters(pool)
    depth = len(drafters) if max_depth is None else min(max_depth, len(drafters))
    ar = pool.ar_cost()(1)
    exact = variant == "trim" and acceptance == "adjacent"
    n_keep = max(keep, top_k + 1)
    if depth == 0:
        tops: list[tuple] = [(ar, (pool.target,), ())]
    elif exact:
        tops = _gsp(pool, drafters, t_max, n_keep, depth)
    else:
        tops = _beam(pool, drafters, t_max, n_keep, depth, variant, acceptance)
    tops.sort(key=lambda x: (x[0], len(x[1]), x[1], x[2]))
    counter = [0]
    if exact:
        # Distinct chains in order; the first occurrence of a chain is its optimal batch vector.
        seen: dict[tuple, Candidate] = {}
        for lat, names, batches in tops:
            if names not in seen:
                seen[names] = Candidate(names, batches, float(lat), ar)
        ranked = list(seen.values())
    else:
        # The best distinct chains of the beam, each with its batch sizes searched under the exact model
        # (starting from the beam's, so a chain never gets worse than the beam found it).
        chains: dict[tuple, tuple] = {}
        for _, names, batches in tops:
            if len(chains) >= n_keep:
                break
            chains.setdefault(names, batches)
        chains.setdefault((pool.target,), ())  # never worse than autoregressive decoding ...
        for name in drafters if depth > 0 else ():  # ... or than the best single-drafter stack
            chains.setdefault((name, pool.target), (min(t_max, 4),))
        ranked = [
            _search_batches(pool, names, start, t_max, acceptance, variant, exhaustive_limit, counter)
            for names, start in chains.items()
        ]
        ranked.sort(key=lambda c: (c.latency, len(c.names), c.names))
    best = ranked[0]
    breakdown = expected_latency(build_stack(pool, best.names, best.batches, acceptance, variant))
    if not math.isclose(breakdown.latency_per_token, best.latency, rel_tol=1e-9):
        raise AssertionError(  # the DP and the latency model must agree on every stack they both score
            f"selector value {best.latency} != latency model {breakdown.latency_per_token} for {best.describe()}"
        )
    return Selection(best, ranked[1 : 1 + top_k], variant, acceptance, t_max, exact, excluded, counter[0], breakdown)
