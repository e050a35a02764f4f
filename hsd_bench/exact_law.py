"""The exact law of a function of uniforms: run the real code, integrate its randomness.

Decoding draws every random number through ``torch.rand`` (``sampling.uniforms``:
acceptance tests and inverse-CDF token draws). On CPU, ``torch.rand`` returns
k * 2^-b with k uniform on [0, 2^b): b = 53 for float64, 24 for float32
(ATen's ``uniform_real``: b random bits times 2^-b; ``tests/test_exact_law.py``
checks the grid). So a function ``fn(generator)`` that draws n uniforms is a
function on a finite grid of 2^(b n) points, each equally likely, and its law
is a sum of cell volumes -- exact, not an estimate.

:func:`execution_law` computes it by running ``fn`` with ``torch.rand``
replaced by a source that returns chosen grid points. It partitions the grid
into boxes on which the outcome is constant: from the lower corner x of an
unexplored box it walks each coordinate up to the first grid point where the
outcome changes (a binary search on the grid; 53 runs, or about 8 when a
``hints`` value -- a real number where a threshold is expected, e.g. an
acceptance probability -- lands next to it; hints only choose where to look,
every threshold is still found by running ``fn`` on both sides of it), takes
the box those steps span as one cell, and explores the rest of the box.

Exact for the functions a verification rule is made of: each uniform is
compared with a threshold that depends on the inputs only (an acceptance test
``u < h``, ``u * q < p``), or is the argument of an inverse CDF, and the
outcome is decided by which tests pass (first rejection, longest passing
prefix) and which CDF cell each draw falls in. Then every outcome is an
interval along each coordinate and the box grown from a cell's lower corner is
constant. The integrator checks that assumption where it is cheapest to break
-- the point diagonally opposite the lower corner must give the same outcome --
and otherwise shrinks the box, so a function outside that class is still
integrated, without the guarantee. It refuses randomness it cannot see (any
draw from the generator or the global RNG other than ``torch.rand``), e.g.
``torch.multinomial``.

Probabilities are sums of integer cell volumes divided by the grid size, so an
outcome reachable from a single grid point has probability 2^-(b n) > 0, never 0:
a zero-mass leak of the kind a float32 uniform with ``<=`` produces (u = 0 with
probability 2^-24) shows up exactly.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Hashable, Iterable
from unittest import mock

import torch

__all__ = ["IntegrationError", "execution_law", "uniform_bits"]


class IntegrationError(AssertionError):
    """The function drew randomness the integrator cannot integrate, or would not converge."""


def uniform_bits(dtype: torch.dtype) -> int:
    """b such that CPU ``torch.rand(dtype=dtype)`` returns k * 2^-b, k in [0, 2^b): the mantissa digits."""
    return round(-math.log2(torch.finfo(dtype).eps)) + 1


class _MoreCoordinates(Exception):
    """A run drew more uniforms than the grid had coordinates: restart with more."""


class _GridSource:
    """Stands in for ``torch.rand`` during a run: returns the coordinates of one grid point, in draw order."""

    def __init__(self) -> None:
        self.point: list[int] = []
        self.pos = 0
        self.bits: list[int] = []  # grid of each coordinate, learnt from the dtype of its draw

    def __call__(self, *size, generator=None, dtype=None, device=None, out=None, **kwargs) -> torch.Tensor:
        if out is not None:
            raise IntegrationError("torch.rand(out=...) cannot be integrated; draw into a new tensor")
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)
        dtype = dtype or torch.get_default_dtype()
        bits = uniform_bits(dtype)
        values = []
        for _ in range(math.prod(shape)):
            i = self.pos
            self.pos += 1
            if i == len(self.bits):
                self.bits.append(bits)
            elif self.bits[i] != bits:
                raise IntegrationError(
                    f"uniform #{i} is drawn as {dtype} ({bits} bits) on one path and with {self.bits[i]} bits on another"
                )
            values.append((self.point[i] if i < len(self.point) else 0) * 2.0**-bits)  # exact
        return torch.tensor(values, dtype=torch.float64).to(dtype).reshape(shape).to(device or "cpu")


def execution_law(
    fn: Callable[[torch.Generator], Hashable], hints: Iterable[float] = (), max_runs: int = 200_000
) -> dict[Hashable, float]:
    """Exact law of ``fn(generator)`` over the uniforms it draws with ``torch.rand`` (see the module doc).

    ``fn`` must be deterministic given its uniforms and return a hashable
    outcome; ``hints`` are real numbers in [0, 1] near which thresholds are
    expected (a speed-up only). Returns ``{outcome: probability}``; the
    probabilities are exact rationals rounded once to float64.
    """
    source = _GridSource()
    generator = torch.Generator().manual_seed(0)
    own_state, global_state = generator.get_state(), torch.default_generator.get_state()
    runs = 0

    def run(point: list[int]) -> Hashable:
        nonlocal runs
        runs += 1
        if runs > max_runs:
            raise IntegrationError(f"no exact law after {max_runs} runs: the outcome is not a threshold function of its uniforms")
        source.point, source.pos = point, 0
        outcome = fn(generator)
        if not torch.equal(generator.get_state(), own_state) or not torch.equal(
            torch.default_generator.get_state(), global_state
        ):
            raise IntegrationError(
                "the function drew random numbers other than torch.rand (e.g. torch.multinomial): "
                "its law cannot be integrated"
            )
        if source.pos > len(point):
            raise _MoreCoordinates
        return outcome

    hint_list = sorted({float(t) for t in hints if 0.0 <= float(t) <= 1.0})
    with mock.patch.object(torch, "rand", source):
        try:
            run([])  # learn how many uniforms a run draws, and their grids
        except _MoreCoordinates:
            pass
        while True:
            sizes = [1 << b for b in source.bits]
            try:
                volumes = _integrate(run, sizes, hint_list)
                break
            except _MoreCoordinates:  # a path drew more uniforms than the first: add coordinates
                continue
    total = math.prod(sizes)
    return {outcome: volume / total for outcome, volume in volumes.items()}


def _integrate(run: Callable[[list[int]], Hashable], sizes: list[int], hints: list[float]) -> dict[Hashable, int]:
    """Integer cell volume of every outcome, over the grid prod(range(size))."""
    n = len(sizes)
    candidates = {size: _hint_points(hints, size) for size in set(sizes)}
    found: list[set[int]] = [set() for _ in range(n)]  # thresholds found so far, per coordinate
    volumes: dict[Hashable, int] = {}
    boxes = [((0,) * n, tuple(sizes))]
    while boxes:
        lo, hi = boxes.pop()
        outcome = run(list(lo))
        top = [_reach(run, list(lo), i, outcome, hi[i], found[i], candidates[sizes[i]]) for i in range(n)]
        while n and top != [x + 1 for x in lo] and run([t - 1 for t in top]) != outcome:
            # not constant on the box: shrink its widest side and look again
            i = max(range(n), key=lambda j: top[j] - lo[j])
            top[i] = lo[i] + max(1, (top[i] - lo[i]) // 2)
        volumes[outcome] = volumes.get(outcome, 0) + math.prod(t - x for t, x in zip(top, lo))
        for i in range(n):  # the rest of the box, as disjoint boxes
            if top[i] < hi[i]:
                boxes.append((lo[:i] + (top[i],) + lo[i + 1 :], tuple(top[:i]) + (hi[i],) + hi[i + 1 :]))
    return volumes


def _hint_points(hints: list[float], size: int) -> list[int]:
    """Grid points next to each hint: the first point at or above it, and two on either side."""
    points: set[int] = set()
    for t in hints:
        c = math.ceil(t * size)
        points.update(x for x in range(c - 2, c + 3) if 0 < x < size)
    return sorted(points)


def _reach(run, x: list[int], i: int, outcome: Hashable, hi: int, found: set[int], hints: list[int]) -> int:
    """The first grid point above ``x[i]`` (at most ``hi``) where moving coordinate i alone changes the outcome."""
    a = x[i]  # outcome here is `outcome`
    if hi - a == 1:
        return hi

    def at(v: int) -> Hashable:
        y = list(x)
        y[i] = v
        return run(y)

    b = hi - 1  # outcome here differs, once checked
    if at(b) == outcome:
        return hi
    points = sorted(found.union(hints)) if found else hints
    while True:  # bisect over the candidate points first ...
        left, right = bisect.bisect_right(points, a), bisect.bisect_left(points, b)
        if left >= right:
            break
        c = points[(left + right) // 2]
        if at(c) == outcome:
            a = c
        else:
            b = c
    while b - a > 1:  # ... then over the grid
        mid = (a + b) // 2
        if at(mid) == outcome:
            a = mid
        else:
            b = mid
    found.add(b)
    return b
