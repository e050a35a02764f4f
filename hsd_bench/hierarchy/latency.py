"""Expected latency per committed token of a hierarchy of drafters.

The model follows the engine's recursion (DESIGN.md §2, ``engine._produce``):

* level 0 drafts ``T_0`` tokens, one forward each;
* level ``i`` (``1 <= i < K``) runs *rounds* until it holds ``>= T_i`` tokens:
  one call of level ``i-1`` (a fresh call: nothing is carried over), one
  forward of level ``i`` over the ``k`` returned tokens plus the position
  before them, keep the accepted prefix ``a`` plus one correction/bonus
  token. A round can overshoot ``T_i`` and every token is handed up
  (``variant="overshoot"``, what the engine does with the token-wise rule);
  with a fixed-length rule the engine trims the handed-up tokens to exactly
  ``T_i`` (``variant="trim"``). ``flush_on_reject`` (HiSpec's option) ends
  the call after any round that rejected a token;
* the top level ``K`` (the target) runs one round and commits ``a + 1``.

Acceptance (the paper's assumption): each token is accepted independently of
the other positions, with a probability that depends only on the verifying
level and on the level that *produced* the token: ``accept[l][j]`` for a
token produced by level ``l`` (drafted by level 0, or a correction/bonus of
level ``l``) and verified by level ``j > l``. Two matrices matter:

* ``adjacent``: ``accept[l][j] = alpha(M_{j-1}, M_j)`` for every ``l`` --
  level ``j`` accepts any token of level ``j-1``'s output at the pair's rate.
  This is what an exactly-lossless stack does *on average*: level ``j-1``'s
  output is an exact sample of ``M_{j-1}``, whoever produced each token.
* ``provenance``: ``accept[l][j] = alpha(M_l, M_j)`` -- the pairwise rate of
  the model that produced the token. Then a middle level's output is a
  mixture and the rate at which the next level accepts it depends on the mix.

Every top round is a fresh, independent renewal cycle (every level starts
each call empty), so by the renewal-reward theorem::

    latency per token = E[cost of a top round] / E[tokens committed by it]

The expectations are exact under the model: the law of each level's output
is propagated upward by dynamic programming (:func:`expected_latency`), and
the ``E[cost]`` recursion uses Wald's identity,
``E[C_i] = E[R_i] * (E[C_{i-1}] + E[c_i(L_{i-1} + 1)])`` with ``R_i`` the
number of rounds of a level-``i`` call and ``L_{i-1}`` the length handed up.

Cost accounting: a level-``i`` forward over ``k`` draft tokens costs
``costs[i](k + 1)``; a level-0 draft step costs ``costs[0](1)``. The engine
sometimes feeds one or two extra "catch-up" positions (tokens appended by
upper levels after a bonus, which a lower model has not seen yet); those are
*not* in the formula -- :mod:`.simulate` counts them exactly, and
``docs/hierarchy.md`` reports the size of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

Cost = Callable[[int], float]
VARIANTS = ("overshoot", "trim")

__all__ = ["Cost", "StackSpec", "LatencyBreakdown", "expected_latency", "adjacent_matrix", "VARIANTS"]


def adjacent_matrix(alphas: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """``accept[l][j] = alphas[j-1]`` for every ``l < j``: the label-free model.

    ``alphas[j-1]`` is the rate at which level ``j`` accepts level ``j-1``'s tokens.
    """
    depth = len(alphas) + 1
    return tuple(tuple(float(alphas[j - 1]) if l < j else 1.0 for j in range(depth)) for l in range(depth))


@dataclass(frozen=True)
class StackSpec:
    """Everything the latency model needs about one stack, bottom (0) to top (K).

    ``batches`` are ``T_0 .. T_{K-1}`` (the top runs one round per commit, as
    in the engine; its batch does not change the latency per token).
    ``costs[0](1)`` is one level-0 draft step, ``costs[i](n)`` one level-``i``
    forward over ``n`` positions (already the cost *after* the level below,
    e.g. with reused layers). ``accept[l][j]`` is used for ``l < j``.
    """

    batches: tuple[int, ...]
    costs: tuple[Cost, ...]
    accept: tuple[tuple[float, ...], ...]
    variant: str = "overshoot"
    flush_on_reject: tuple[bool, ...] = ()
    names: tuple[str, ...] = ()
    # The target's own full forward (the AR baseline). ``costs[K]`` can be
    # cheaper when the level below is an exit of the target whose layers
    # are reused, so it must not serve as the baseline. None = costs[K].
    ar_cost: Cost | None = None

    def __post_init__(self):
        depth = len(self.costs)
        if depth < 1:
            raise ValueError("a stack needs at least the target level")
        object.__setattr__(self, "batches", tuple(self.batches))
        object.__setattr__(self, "costs", tuple(self.costs))
        if len(self.batches) != depth - 1:
            raise ValueError(
                f"a stack of {depth} levels needs {depth - 1} batch sizes T_0..T_{depth - 2}, got {list(self.batches)}"
            )
        for i, t in enumerate(self.batches):
            if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 1:
                raise ValueError(f"T_{i}={t!r} must be an integer >= 1")
        acc = tuple(tuple(float(a) for a in row) for row in self.accept)
        if len(acc) != depth or any(len(row) != depth for row in acc):
            raise ValueError(f"accept must be a {depth}x{depth} matrix (accept[l][j], l < j), got {len(acc)} rows")
        for l in range(depth):
            for j in range(l + 1, depth):
                if not 0.0 <= acc[l][j] <= 1.0:
                    raise ValueError(f"accept[{l}][{j}]={acc[l][j]!r} must be a probability in [0, 1]")
        object.__setattr__(self, "accept", acc)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}; valid: {', '.join(VARIANTS)}")
        flush = tuple(bool(f) for f in self.flush_on_reject) or (False,) * depth
        if len(flush) != depth:
            raise ValueError(f"flush_on_reject needs one flag per level ({depth}), got {len(flush)}")
        object.__setattr__(self, "flush_on_reject", flush)
        if self.names and len(self.names) != depth:
            raise ValueError(f"names needs one name per level ({depth}), got {list(self.names)}")
        for i, c in enumerate(self.costs):
            if not callable(c):
                raise ValueError(f"costs[{i}] must be callable positions -> seconds, got {c!r}")

    @property
    def top(self) -> int:
        return len(self.costs) - 1

    def label_free(self) -> bool:
        """True when acceptance at each level does not depend on who produced the token."""
        K = self.top
        return all(len({self.accept[l][j] for l in range(j)}) <= 1 for j in range(1, K + 1))


@dataclass
class LatencyBreakdown:
    """Expected quantities per committed token (engine counters divided by tokens)."""

    latency_per_token: float  # cost units (seconds) per committed token
    ar_latency_per_token: float  # one target forward over one position
    cycle_cost: float  # E[cost of one top round]
    tokens_per_cycle: float  # E[tokens committed per top round] = mean accepted length tau
    forwards_per_token: list[float]  # engine stats.rounds[i] / n_generated
    drafted_per_token: list[float]  # stats.drafted[i] / n (0 for level 0)
    accepted_per_token: list[float]  # stats.accepted[i] / n
    cost_per_token_by_level: list[float]  # time split: level i's share of the latency
    mean_output_len: list[float]  # E[tokens handed up per call of level i] (after trimming)
    rounds_per_call: list[float]  # E[R_i] (level 0: T_0 draft steps)
    names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.ar_latency_per_token / self.latency_per_token

    @property
    def acceptance_rate(self) -> list[float | None]:
        return [a / d if d > 0 else None for a, d in zip(self.accepted_per_token, self.drafted_per_token)]


# -- label-free dynamic program (law of the handed-up length only) -------------------------


def _round_increments(q: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Law of one round's increment ``a + 1`` given the law ``q`` of the lower length.

    Returns ``(inc_all, inc_rej, E[a])``: ``inc_*[r]`` = P(increment r, and all
    drafts accepted / some rejected). With ``a = min(G, L)``,
    ``P(G >= a) = alpha^a``: ``P(a, rejected) = (1 - alpha) alpha^a P(L > a)``
    and ``P(a = L = n, all accepted) = q[n] alpha^n``.
    """
    n_max = len(q) - 1
    powers = alpha ** np.arange(n_max + 1)
    tail = np.cumsum(q[::-1])[::-1]  # tail[m] = P(L >= m)
    inc_rej = np.zeros(n_max + 2)
    inc_rej[1 : n_max + 1] = (1.0 - alpha) * powers[:n_max] * tail[1:]
    inc_all = np.zeros(n_max + 2)
    inc_all[1:] = q * powers
    a = np.arange(n_max + 2) - 1.0
    mean_a = float((a[1:] * (inc_all[1:] + inc_rej[1:])).sum())
    return inc_all, inc_rej, mean_a


def _build_label_free(inc_all: np.ndarray, inc_rej: np.ndarray, T: int, flush: bool) -> tuple[np.ndarray, float]:
    """Run rounds until the level holds ``>= T`` tokens; return (law of its output length, E[rounds])."""
    r_max = len(inc_all) - 1
    prog = np.zeros(T)
    prog[0] = 1.0
    out = np.zeros(T + r_max)
    rounds = 0.0
    r = np.arange(r_max + 1)
    for s in range(T):
        m = prog[s]
        if m == 0.0:
            continue
        rounds += m
        nxt = s + r
        done = nxt >= T
        out[nxt[done]] += m * (inc_all[done] + inc_rej[done])
        keep = ~done
        if flush:
            out[nxt[keep]] += m * inc_rej[keep]
            prog[nxt[keep]] += m * inc_all[keep]
        else:
            prog[nxt[keep]] += m * (inc_all[keep] + inc_rej[keep])
    return out, rounds


def _trim_law(law: np.ndarray, T: int) -> np.ndarray:
    if len(law) <= T + 1:
        return law
    trimmed = law[: T + 1].copy()
    trimmed[T] += law[T + 1 :].sum()
    return trimmed


def _expect_cost(q: np.ndarray, cost: Cost) -> float:
    return float(sum(q[n] * cost(int(n) + 1) for n in np.nonzero(q)[0]))


def _levels_label_free(spec: StackSpec):
    """Per-level (E[R], E[len out], E[a], E[len in], E[verify cost]) with the label-free DP."""
    K = spec.top
    alphas = [spec.accept[0][j] for j in range(K + 1)]
    q = np.zeros(spec.batches[0] + 1)
    q[spec.batches[0]] = 1.0
    stats = []
    for i in range(1, K + 1):
        inc_all, inc_rej, mean_a = _round_increments(q, alphas[i])
        mean_in = float((np.arange(len(q)) * q).sum())
        vcost = _expect_cost(q, spec.costs[i])
        if i == K:
            stats.append((1.0, mean_a + 1.0, mean_a, mean_in, vcost))
            break
        law, rounds = _build_label_free(inc_all, inc_rej, spec.batches[i], spec.flush_on_reject[i])
        if spec.variant == "trim":
            law = _trim_law(law, spec.batches[i])
        stats.append((rounds, float((np.arange(len(law)) * law).sum()), mean_a, mean_in, vcost))
        q = law
    return stats


# -- general dynamic program (acceptance depends on who produced the token) ---------------
#
# A token produced by level l carries, for every level j > l, an independent
# "would-accept" bit with P(1) = accept[l][j]; sampling the bits early changes
# nothing (they are independent of everything else). For a sequence S handed up
# by level i, with f_j(S) = index of the first token whose bit_j is 0 (len(S) if
# none), the summary (n, h_{i+1}, ..., h_K) with h_j = min(f_{i+1}, ..., f_j) is
# sufficient: level i+1 accepts a = h_{i+1} tokens, its round output is
# S[:a] + [new], and for j >= i+2 that output has h'_j = h_j if h_j < a, else
# a + [the new token passes levels i+2..j]. Concatenating pieces: h_j(X+Y) =
# h_j(X) if h_j(X) < len(X) else len(X) + h_j(Y). Summaries are tuples of ints,
# so the laws are finite dictionaries.


def _token_pieces(acc_row: Sequence[float], lo: int, K: int) -> list[tuple[tuple[int, ...], float]]:
    """Bits of a new token w.r.t. levels lo..K: list of (h tuple for a 1-token piece, prob)."""
    pieces = []
    alive = 1.0
    for g in range(lo, K + 1):  # first level that rejects it
        p = alive * (1.0 - acc_row[g])
        if p > 0:
            pieces.append((tuple(1 if j < g else 0 for j in range(lo, K + 1)), p))
        alive *= acc_row[g]
    if alive > 0:
        pieces.append((tuple(1 for _ in range(lo, K + 1)), alive))
    return pieces


def _build_general(pieces: dict, T: int, flush: bool, width: int) -> tuple[dict, float]:
    """Append random pieces ``(r, h, rejected) -> prob`` until length >= T."""
    prog: list[dict] = [dict() for _ in range(T)]
    prog[0][(0,) * width] = 1.0
    law: dict = {}
    rounds = 0.0
    for s in range(T):
        for hb, m in prog[s].items():
            rounds += m
            for (r, hp, rejected), p in pieces.items():
                nh = tuple(x if x < s else s + y for x, y in zip(hb, hp))
                nxt = s + r
                w = m * p
                if nxt >= T or (flush and rejected):
                    key = (nxt, nh)
                    law[key] = law.get(key, 0.0) + w
                else:
                    prog[nxt][nh] = prog[nxt].get(nh, 0.0) + w
    return law, rounds


def _levels_general(spec: StackSpec):
    K = spec.top
    acc = spec.accept
    # Level 0: T_0 single tokens labelled 0, summaries w.r.t. levels 1..K.
    tok = {(1, h, False): p for h, p in _token_pieces(acc[0], 1, K)}
    law, _ = _build_general(tok, spec.batches[0], False, K)
    stats = []
    for i in range(1, K + 1):
        mean_in = sum(p * n for (n, _), p in law.items())
        vcost = sum(p * spec.costs[i](n + 1) for (n, _), p in law.items())
        mean_a = sum(p * h[0] for (_, h), p in law.items())
        if i == K:
            stats.append((1.0, mean_a + 1.0, mean_a, mean_in, vcost))
            break
        new_tok = _token_pieces(acc[i], i + 1, K)
        pieces: dict = {}
        for (n, h), p in law.items():
            a = h[0]
            for bits, pb in new_tok:
                hp = tuple(x if x < a else a + b for x, b in zip(h[1:], bits))
                key = (a + 1, hp, a < n)
                pieces[key] = pieces.get(key, 0.0) + p * pb
        new_law, rounds = _build_general(pieces, spec.batches[i], spec.flush_on_reject[i], K - i)
        if spec.variant == "trim":
            T = spec.batches[i]
            trimmed: dict = {}
            for (n, h), p in new_law.items():
                key = (min(n, T), tuple(min(x, T) for x in h))
                trimmed[key] = trimmed.get(key, 0.0) + p
            new_law = trimmed
        mean_out = sum(p * n for (n, _), p in new_law.items())
        stats.append((rounds, mean_out, mean_a, mean_in, vcost))
        law = new_law
    return stats


# -- assembling the breakdown -----------------------------------------------------------------


def expected_latency(spec: StackSpec, method: str = "auto") -> LatencyBreakdown:
    """Exact expected latency per committed token of ``spec`` under the model above.

    ``method``: ``"auto"`` uses the fast length-only program when acceptance
    does not depend on who produced a token, else the general one;
    ``"general"`` forces the general program (used to cross-check).
    """
    if method not in ("auto", "general", "label_free"):
        raise ValueError(f"method={method!r}; valid: auto, general, label_free")
    K = spec.top
    ar = float((spec.ar_cost or spec.costs[K])(1))
    if K == 0:  # autoregressive: the target drafts one token per cycle
        return LatencyBreakdown(ar, ar, ar, 1.0, [1.0], [0.0], [0.0], [ar], [1.0], [1.0], spec.names)
    if method == "label_free" and not spec.label_free():
        raise ValueError("method='label_free' needs an acceptance matrix whose columns are constant above the diagonal")
    use_free = method == "label_free" or (method == "auto" and spec.label_free())
    stats = _levels_label_free(spec) if use_free else _levels_general(spec)

    # stats[i-1] = (E[R_i], E[L_i] out, E[a_i], E[L_{i-1}] in, E[c_i(L_{i-1}+1)])
    T0 = spec.batches[0]
    draft_cost = float(spec.costs[0](1))
    call_cost = [T0 * draft_cost]  # E[C_i] per call
    for i in range(1, K + 1):
        rounds, _, _, _, vcost = stats[i - 1]
        call_cost.append(rounds * (call_cost[i - 1] + vcost))
    cycle_cost = call_cost[K]
    tokens = stats[K - 1][1]

    calls = [0.0] * (K + 1)  # calls of level i per top round
    calls[K] = 1.0
    for i in range(K, 0, -1):
        calls[i - 1] = calls[i] * stats[i - 1][0]
    forwards = [calls[0] * T0] + [calls[i] * stats[i - 1][0] for i in range(1, K + 1)]
    drafted = [0.0] + [forwards[i] * stats[i - 1][3] for i in range(1, K + 1)]
    accepted = [0.0] + [forwards[i] * stats[i - 1][2] for i in range(1, K + 1)]
    by_level = [forwards[0] * draft_cost] + [forwards[i] * stats[i - 1][4] for i in range(1, K + 1)]
    mean_out = [float(T0)] + [stats[i - 1][1] for i in range(1, K)] + [tokens]
    rounds_per_call = [float(T0)] + [stats[i - 1][0] for i in range(1, K + 1)]
    return LatencyBreakdown(
        latency_per_token=cycle_cost / tokens,
        ar_latency_per_token=ar,
        cycle_cost=cycle_cost,
        tokens_per_cycle=tokens,
        forwards_per_token=[f / tokens for f in forwards],
        drafted_per_token=[d / tokens for d in drafted],
        accepted_per_token=[a / tokens for a in accepted],
        cost_per_token_by_level=[c / tokens for c in by_level],
        mean_output_len=mean_out,
        rounds_per_call=rounds_per_call,
        names=spec.names,
        extra={"method": "label_free" if use_free else "general"},
    )
