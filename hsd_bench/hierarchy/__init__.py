"""Mohri-style hierarchies (arXiv 2510.19705): latency model, its Monte-Carlo check, the selector.

* :mod:`.latency` -- expected latency per committed token of a stack, from per-level
  forward costs and acceptance rates, following the engine's recursion exactly;
* :mod:`.simulate` -- the same recursion with Bernoulli acceptances (Monte Carlo and
  exhaustive enumeration), to check the formula;
* :mod:`.select` -- the latency-optimal stack and batch sizes out of a pool of drafters
  (a generalized shortest path), and a brute-force enumerator to test it;
* :mod:`.profile_format` -- the JSON the profiler writes and the selector reads.

The derivation, assumptions and measured agreement are in ``docs/hierarchy.md``.
"""

from hsd_bench.hierarchy.latency import LatencyBreakdown, StackSpec, adjacent_matrix, expected_latency
from hsd_bench.hierarchy.profile_format import CostFit, MemberProfile, PoolProfile, fit_cost
from hsd_bench.hierarchy.select import Selection, brute_force, build_stack, select_hierarchy
from hsd_bench.hierarchy.simulate import enumerate_cycle, simulate

__all__ = [
    "CostFit",
    "LatencyBreakdown",
    "MemberProfile",
    "PoolProfile",
    "Selection",
    "StackSpec",
    "adjacent_matrix",
    "brute_force",
    "build_stack",
    "enumerate_cycle",
    "expected_latency",
    "fit_cost",
    "select_hierarchy",
    "simulate",
]
