"""Monte-Carlo simulation of the engine's recursion with Bernoulli acceptances.

This mirrors ``hsd_bench.engine.Engine._produce`` line for line -- one token
buffer, fresh lower calls, trimming for fixed-length rules, rollback of every
model's frontier after each round, the top committing one round at a time --
but replaces the models by labels and the verification rule by independent
coin flips with ``P(accept) = spec.accept[producer][verifier]``. It exists to
check :func:`~hsd_bench.hierarchy.latency.expected_latency` (the formula)
against the recursion it claims to describe, and to measure what the formula
leaves out: the engine feeds a model the positions it has not processed yet
(``upto - frontier``), which after a bonus token can be one or more positions
beyond the nominal ``k + 1`` (or 1 for a draft step) the formula charges.
Both costs are recorded.

:func:`enumerate_cycle` runs the same code over *every* outcome of the coin
flips of one top round (tiny stacks only) and returns exact expectations, so
the formula can be checked to float precision, not only statistically.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from hsd_bench.hierarchy.latency import StackSpec

__all__ = ["SimResult", "simulate", "enumerate_cycle", "CycleExpectation"]

PROMPT = -1  # label of prompt tokens (never verified)


class _Recursion:
    """One engine run over labels. ``coin(p)`` returns True with probability p."""

    def __init__(self, spec: StackSpec, coin):
        self.spec = spec
        self.K = spec.top
        self.coin = coin
        self.tok: list[int] = [PROMPT]  # position 0: the last prompt token
        self.frontier = [0] * (self.K + 1)  # positions each level's model has processed
        self.forwards = [0] * (self.K + 1)
        self.drafted = [0] * (self.K + 1)
        self.accepted = [0] * (self.K + 1)
        self.cost = 0.0  # nominal: k + 1 positions per verification, 1 per draft step
        self.cost_engine = 0.0  # what the engine processes: upto - frontier
        self.committed = 1

    def _write(self, pos: int, label: int) -> None:
        if pos == len(self.tok):
            self.tok.append(label)
        else:
            self.tok[pos] = label

    def _truncate(self, length: int) -> None:
        f = self.frontier
        for i in range(len(f)):
            if f[i] > length:
                f[i] = length
        del self.tok[length + 1 :]  # keep the token at `length` (the last kept one)

    def _draft(self, n: int, count: int) -> int:
        cost = self.spec.costs[0]
        for t in range(n, n + count):
            processed = t - self.frontier[0]
            self.frontier[0] = t
            self.cost += cost(1)
            self.cost_engine += cost(processed)
            self.forwards[0] += 1
            self._write(t, 0)
        return count

    def produce(self, i: int, n: int) -> int:
        spec = self.spec
        if i == 0:
            return self._draft(n, spec.batches[0] if self.K > 0 else 1)
        batch = spec.batches[i] if i < self.K else 1
        acc = spec.accept
        cost = spec.costs[i]
        out = 0
        while out < batch:
            m = n + out
            k = self.produce(i - 1, m)
            if spec.variant == "trim" and k > spec.batches[i - 1]:
                k = spec.batches[i - 1]
                self._truncate(m + k)
            processed = m + k - self.frontier[i]
            self.frontier[i] = m + k
            self.cost += cost(k + 1)
            self.cost_engine += cost(processed)
            self.forwards[i] += 1
            a = 0
            while a < k and self.coin(acc[self.tok[m + a]][i]):
                a += 1
            self._write(m + a, i)
            self.drafted[i] += k
            self.accepted[i] += a
            out += a + 1
            self._truncate(n + out - 1)
            if spec.flush_on_reject[i] and a < k:
                break
        return out

    def cycle(self) -> int:
        """One top round; returns the number of committed tokens."""
        count = self.produce(self.K, self.committed)
        self.committed += count
        self._truncate(self.committed - 1)
        return count


@dataclass
class SimResult:
    tokens: np.ndarray  # committed tokens per top round
    cost: np.ndarray  # nominal cost per top round (what the formula charges)
    cost_engine: np.ndarray  # cost with the engine's exact position counts
    forwards: np.ndarray  # [cycles, K+1] forwards of each level per top round
    drafted: np.ndarray  # [cycles, K+1]
    accepted: np.ndarray  # [cycles, K+1]
    names: tuple[str, ...] = ()

    @property
    def cycles(self) -> int:
        return len(self.tokens)

    def ratio(self, per_cycle: np.ndarray) -> tuple[float, float]:
        """Estimate of E[x] / E[tokens] per top round and its standard error (delta method)."""
        n = len(per_cycle)
        est = float(per_cycle.sum() / self.tokens.sum())
        resid = per_cycle - est * self.tokens
        se = math.sqrt(float(resid.var(ddof=1)) / n) / float(self.tokens.mean()) if n > 1 else math.inf
        return est, se

    def latency(self, engine_positions: bool = False) -> tuple[float, float]:
        """Cost per committed token and its standard error."""
        return self.ratio(self.cost_engine if engine_positions else self.cost)

    def tokens_per_cycle(self) -> tuple[float, float]:
        n = len(self.tokens)
        return float(self.tokens.mean()), math.sqrt(float(self.tokens.var(ddof=1)) / n) if n > 1 else math.inf

    def per_token(self, counter: str, level: int) -> tuple[float, float]:
        """``forwards``/``drafted``/``accepted`` of one level per committed token, with its SE."""
        return self.ratio(getattr(self, counter)[:, level].astype(float))


def simulate(spec: StackSpec, cycles: int, seed: int = 0) -> SimResult:
    """Run ``cycles`` top rounds of the recursion with seeded Bernoulli acceptances."""
    if cycles < 2:
        raise ValueError(f"cycles={cycles} must be >= 2 (a standard error needs two cycles)")
    rnd = random.Random(seed).random
    sim = _Recursion(spec, lambda p: rnd() < p)
    width = spec.top + 1
    tokens = np.empty(cycles)
    cost = np.empty(cycles)
    cost_engine = np.empty(cycles)
    cum = {k: np.zeros((cycles + 1, width), dtype=np.int64) for k in ("forwards", "drafted", "accepted")}
    for c in range(cycles):
        c0, e0 = sim.cost, sim.cost_engine
        tokens[c] = sim.cycle()
        cost[c] = sim.cost - c0
        cost_engine[c] = sim.cost_engine - e0
        cum["forwards"][c + 1] = sim.forwards
        cum["drafted"][c + 1] = sim.drafted
        cum["accepted"][c + 1] = sim.accepted
        if len(sim.tok) > 4096:  # keep the buffer short: shift every position left
            shift = sim.committed - 1 - 64  # frontiers lag the committed length by a few positions at most
            assert min(sim.frontier) >= shift
            del sim.tok[:shift]
            sim.committed -= shift
            sim.frontier = [f - shift for f in sim.frontier]
    counters = {k: np.diff(v, axis=0) for k, v in cum.items()}
    return SimResult(tokens, cost, cost_engine, counters["forwards"], counters["drafted"], counters["accepted"],
                     spec.names)


@dataclass
class CycleExpectation:
    cost: float
    tokens: float
    forwards: list[float]
    drafted: list[float]
    accepted: list[float]
    paths: int

    @property
    def latency(self) -> float:
        return self.cost / self.tokens


def enumerate_cycle(spec: StackSpec, max_paths: int = 200_000) -> CycleExpectation:
    """Exact expectations over one top round by enumerating every coin-flip outcome.

    Depth-first over choice sequences: each run replays a prefix of choices,
    takes "accept" (when possible) at every new coin, and queues the opposite
    outcome of each new coin as a branch to run later. A path's probability is
    the product of its coins' probabilities. Nominal costs only (each path
    starts from a fresh state, so there are no catch-up positions). For tiny
    stacks: the number of paths grows exponentially with the batch sizes.
    """
    K = spec.top
    e_cost = e_tok = 0.0
    e_fwd = [0.0] * (K + 1)
    e_dr = [0.0] * (K + 1)
    e_acc = [0.0] * (K + 1)
    pending: list[tuple[bool, ...]] = [()]
    paths = 0
    while pending:
        prefix = pending.pop()
        choices: list[bool] = []
        weight = [1.0]

        def coin(p: float) -> bool:
            idx = len(choices)
            if idx < len(prefix):
                choice = prefix[idx]
            else:
                choice = p > 0.0
                if (1.0 - p if choice else p) > 0.0:
                    pending.append(tuple(choices) + (not choice,))
            choices.append(choice)
            weight[0] *= p if choice else 1.0 - p
            return choice

        sim = _Recursion(spec, coin)
        tokens = sim.cycle()
        paths += 1
        if paths > max_paths:
            raise ValueError(f"more than {max_paths} outcome paths: use smaller batches for exact enumeration")
        w = weight[0]
        e_cost += w * sim.cost
        e_tok += w * tokens
        for i in range(K + 1):
            e_fwd[i] += w * sim.forwards[i]
            e_dr[i] += w * sim.drafted[i]
            e_acc[i] += w * sim.accepted[i]
    return CycleExpectation(e_cost, e_tok, e_fwd, e_dr, e_acc, paths)
