"""The hierarchy latency model against closed forms, exhaustive enumeration and Monte Carlo.

Three independent checks of :func:`expected_latency`:

* closed forms (vanilla speculative decoding; deterministic acceptance 0 / 1);
* exact enumeration of every coin-flip outcome of one top round of the
  simulator (:func:`enumerate_cycle`) -- same expectations to float rounding;
* Monte Carlo over many top rounds (:func:`simulate`): within 4 standard
  errors plus a 1e-9 relative slack (the slack covers the deterministic
  cases, where the standard error is 0). A 4-SE two-sided band has a false
  alarm rate of about 6e-5 per comparison under a normal approximation; the
  seeds are fixed, so the test is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsd_bench.hierarchy.latency import StackSpec, adjacent_matrix, expected_latency
from hsd_bench.hierarchy.profile_format import CostFit
from hsd_bench.hierarchy.simulate import enumerate_cycle, simulate

C0, C1, C2, C3 = CostFit(0.03, 0.003), CostFit(0.1, 0.005), CostFit(0.3, 0.01), CostFit(1.0, 0.02)
TABLE = CostFit(0.2, 0.0, ((1, 0.2), (3, 0.21), (8, 0.3)))  # nonlinear in positions

PROV3 = ((1, 0.6, 0.35), (1, 1, 0.8), (1, 1, 1))
PROV4 = ((1, 0.8, 0.5, 0.4), (1, 1, 0.8, 0.6), (1, 1, 1, 0.85), (1, 1, 1, 1))
EXTREME4 = ((1, 0.02, 1.0, 0.0), (1, 1, 0.97, 1.0), (1, 1, 1, 0.9), (1, 1, 1, 1))


def spec(batches, costs, accept, variant="overshoot", flush=()):
    return StackSpec(tuple(batches), tuple(costs), accept, variant, flush)


def rel_close(a, b, tol=1e-10):
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


# -- closed forms ----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("gamma", [1, 4])
def test_two_levels_match_vanilla_speculative_decoding(alpha, gamma):
    b = expected_latency(spec((gamma,), (C0, C3), adjacent_matrix([alpha])))
    tau = sum(alpha**a for a in range(gamma + 1))  # Leviathan et al.: (1 - a^(g+1)) / (1 - a)
    assert rel_close(b.tokens_per_cycle, tau)
    assert rel_close(b.cycle_cost, gamma * C0(1) + C3(gamma + 1))
    assert rel_close(b.latency_per_token, (gamma * C0(1) + C3(gamma + 1)) / tau)
    assert rel_close(b.forwards_per_token[1], 1 / tau)
    assert rel_close(b.forwards_per_token[0], gamma / tau)
    assert rel_close(b.acceptance_rate[1], (tau - 1) / gamma)


def test_autoregressive_stack_is_one_target_forward_per_token():
    b = expected_latency(StackSpec((), (C3,), ((1.0,),)))
    assert b.latency_per_token == C3(1) and b.speedup == 1.0 and b.tokens_per_cycle == 1.0


@pytest.mark.parametrize("variant", ["overshoot", "trim"])
def test_deterministic_acceptance_by_hand(variant):
    # alpha = 1: level 1 (T_1 = 5) gets 3 tokens per round from T_0 = 2 drafts -> 2 rounds, 6 tokens;
    # the top accepts all it gets (6, or 5 when trimmed) plus a bonus.
    b = expected_latency(spec((2, 5), (C0, C1, C3), adjacent_matrix([1.0, 1.0]), variant))
    handed = 6 if variant == "overshoot" else 5
    assert rel_close(b.tokens_per_cycle, handed + 1)
    assert rel_close(b.cycle_cost, 2 * (2 * C0(1) + C1(3)) + C3(handed + 1))
    assert b.rounds_per_call == [2.0, 2.0, 1.0]
    # alpha = 0: every round of level 1 yields its correction only -> 5 rounds; the top rejects at once.
    b = expected_latency(spec((2, 5), (C0, C1, C3), adjacent_matrix([0.0, 0.0]), variant))
    assert rel_close(b.tokens_per_cycle, 1.0)
    assert rel_close(b.cycle_cost, 5 * (2 * C0(1) + C1(3)) + C3(6))


# -- exact enumeration of the simulator --------------------------------------------------------

ENUM_CASES = {
    "2L": spec((3,), (C0, C3), adjacent_matrix([0.6])),
    "3L adjacent": spec((2, 3), (C0, C1, C3), adjacent_matrix([0.7, 0.5])),
    "3L provenance": spec((2, 3), (C0, C1, C3), PROV3),
    "3L provenance trim": spec((2, 3), (C0, C1, C3), PROV3, "trim"),
    "3L flush": spec((2, 4), (C0, C1, C3), PROV3, flush=(False, True, False)),
    "3L table cost": spec((3, 2), (C0, TABLE, C3), PROV3),
    "4L provenance": spec((2, 2, 3), (C0, C1, C2, C3), PROV4),
    "4L provenance trim": spec((2, 2, 3), (C0, C1, C2, C3), PROV4, "trim"),
    "4L extreme": spec((2, 2, 2), (C0, C1, C2, C3), EXTREME4),
}


@pytest.mark.parametrize("name", sorted(ENUM_CASES))
def test_formula_equals_exhaustive_enumeration(name):
    s = ENUM_CASES[name]
    b = expected_latency(s)
    e = enumerate_cycle(s)
    assert e.paths > 1 or name == "4L extreme"
    assert rel_close(b.cycle_cost, e.cost), (b.cycle_cost, e.cost)
    assert rel_close(b.tokens_per_cycle, e.tokens), (b.tokens_per_cycle, e.tokens)
    for i in range(s.top + 1):
        assert rel_close(b.forwards_per_token[i], e.forwards[i] / e.tokens)
        assert rel_close(b.drafted_per_token[i], e.drafted[i] / e.tokens)
        assert rel_close(b.accepted_per_token[i], e.accepted[i] / e.tokens)
    assert rel_close(sum(b.cost_per_token_by_level), b.latency_per_token)


def test_enumeration_detects_a_wrong_model():
    # The check has teeth: trimming changes the answer, and the enumerator sees it.
    over, trim = ENUM_CASES["3L provenance"], ENUM_CASES["3L provenance trim"]
    assert not rel_close(expected_latency(over).latency_per_token, enumerate_cycle(trim).latency, 1e-6)


@pytest.mark.parametrize("variant", ["overshoot", "trim"])
@pytest.mark.parametrize("seed", range(4))
def test_general_program_equals_label_free_program(variant, seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(2, 5))
    alphas = rng.uniform(0.05, 0.98, depth - 1)
    batches = tuple(int(t) for t in rng.integers(1, 6, depth - 1))
    flush = tuple(bool(f) for f in rng.integers(0, 2, depth))
    s = spec(batches, (C0, C1, C2, C3)[-depth:], adjacent_matrix(alphas), variant, flush)
    fast, general = expected_latency(s), expected_latency(s, method="general")
    assert fast.extra["method"] == "label_free" and general.extra["method"] == "general"
    assert rel_close(fast.latency_per_token, general.latency_per_token)
    assert np.allclose(fast.forwards_per_token, general.forwards_per_token, rtol=1e-10)


def test_provenance_differs_from_adjacent_when_non_adjacent_rates_differ():
    base = spec((3, 4), (C0, C1, C3), PROV3)
    adj = spec((3, 4), (C0, C1, C3), adjacent_matrix([PROV3[0][1], PROV3[1][2]]))
    # tokens drafted by level 0 reach the top at 0.35 instead of 0.8: fewer tokens per target forward
    assert expected_latency(base).tokens_per_cycle < expected_latency(adj).tokens_per_cycle - 0.1


# -- Monte Carlo -----------------------------------------------------------------------------------

MC_CASES = {
    "2L alpha=0.05": (spec((4,), (C0, C3), adjacent_matrix([0.05])), 10000),
    "2L alpha=0.97": (spec((6,), (C0, C3), adjacent_matrix([0.97])), 10000),
    "2L alpha=0": (spec((3,), (C0, C3), adjacent_matrix([0.0])), 2000),
    "2L alpha=1": (spec((3,), (C0, C3), adjacent_matrix([1.0])), 2000),
    "3L adjacent": (spec((2, 4), (C0, C1, C3), adjacent_matrix([0.7, 0.8])), 10000),
    "3L provenance": (spec((3, 5), (C0, C1, C3), PROV3), 10000),
    "3L provenance trim": (spec((3, 5), (C0, C1, C3), PROV3, "trim"), 10000),
    "3L flush": (spec((2, 4), (C0, C1, C3), adjacent_matrix([0.6, 0.9]), flush=(False, True, False)), 10000),
    "3L table cost": (spec((4, 3), (C0, TABLE, C3), PROV3), 10000),
    "4L provenance": (spec((2, 3, 5), (C0, C1, C2, C3), PROV4), 6000),
    "4L near 1": (spec((3, 4, 6), (C0, C1, C2, C3), adjacent_matrix([0.99, 0.98, 0.995])), 6000),
    "4L near 0": (spec((3, 2, 4), (C0, C1, C2, C3), adjacent_matrix([0.05, 0.1, 0.02])), 6000),
    "4L extreme provenance": (spec((3, 2, 4), (C0, C1, C2, C3), EXTREME4), 6000),
}


def within(est: float, se: float, exact: float, k: float = 4.0, slack: float = 1e-9) -> bool:
    return abs(est - exact) <= k * se + slack * max(1.0, abs(exact))


@pytest.mark.parametrize("name", sorted(MC_CASES))
def test_monte_carlo_agrees_with_formula(name):
    s, cycles = MC_CASES[name]
    b = expected_latency(s)
    sim = simulate(s, cycles, seed=sorted(MC_CASES).index(name))
    lat, se = sim.latency()
    assert within(lat, se, b.latency_per_token), f"{name}: MC {lat} +- {se} vs formula {b.latency_per_token}"
    tok, tok_se = sim.tokens_per_cycle()
    assert within(tok, tok_se, b.tokens_per_cycle), f"{name}: tokens {tok} +- {tok_se} vs {b.tokens_per_cycle}"
    for i in range(s.top + 1):
        f, f_se = sim.per_token("forwards", i)
        assert within(f, f_se, b.forwards_per_token[i]), f"{name} level {i}: forwards {f} +- {f_se}"
        a, a_se = sim.per_token("accepted", i)
        assert within(a, a_se, b.accepted_per_token[i]), f"{name} level {i}: accepted {a} +- {a_se}"
    # the check has power: the relative standard error is small next to typical modelling errors
    assert se <= 0.01 * b.latency_per_token


def test_monte_carlo_rejects_a_wrong_formula():
    s, _ = MC_CASES["3L provenance"]
    wrong = expected_latency(spec((3, 5), (C0, C1, C3), adjacent_matrix([0.6, 0.8]))).latency_per_token
    lat, se = simulate(s, 3000, seed=0).latency()
    assert not within(lat, se, wrong)


# -- engine position accounting ------------------------------------------------------------------


def test_engine_positions_add_catch_up_after_bonus_tokens():
    # alpha = 1, T_0 = g: each round the drafter re-feeds its last draft and the target's bonus
    # (2 positions) in its first step, so the engine cost per round is c_d(2) + (g-1) c_d(1) + c_t(g+1).
    g = 4
    s = spec((g,), (C0, C3), adjacent_matrix([1.0]))
    sim = simulate(s, 50, seed=0)
    assert np.allclose(sim.cost_engine[1:], C0(2) + (g - 1) * C0(1) + C3(g + 1))
    assert np.allclose(sim.cost, g * C0(1) + C3(g + 1))
    # with costs independent of positions, the engine's accounting equals the formula's
    flat = spec((2, 3), (CostFit(0.1), CostFit(0.3), CostFit(1.0)), PROV3)
    sim = simulate(flat, 2000, seed=1)
    assert np.allclose(sim.cost_engine, sim.cost)
    # in general it only adds positions
    sim = simulate(MC_CASES["4L near 1"][0], 2000, seed=2)
    assert (sim.cost_engine >= sim.cost - 1e-12).all() and sim.cost_engine.sum() > sim.cost.sum()


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batches": (0,)}, "T_0=0"),
        ({"batches": (2, 3)}, "needs 1 batch"),
        ({"accept": ((1, 1.5), (1, 1))}, r"accept\[0\]\[1\]=1.5"),
        ({"accept": ((1,),)}, "2x2 matrix"),
        ({"variant": "exact"}, "variant='exact'"),
        ({"flush_on_reject": (True,)}, "one flag per level"),
        ({"costs": (C0, 3.0)}, r"costs\[1\]"),
    ],
)
def test_bad_specs_fail_early_with_the_bad_value(kwargs, match):
    base = dict(batches=(2,), costs=(C0, C3), accept=adjacent_matrix([0.5]), variant="overshoot")
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        StackSpec(**base)


def test_simulate_needs_two_cycles():
    with pytest.raises(ValueError, match="cycles=1"):
        simulate(ENUM_CASES["2L"], 1)
