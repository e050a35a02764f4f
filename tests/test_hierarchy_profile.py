"""The profiler writes a usable pool profile, and the measured stack is lossless."""

from __future__ import annotations

import dataclasses

import pytest

from hsd_bench.api import ModelPool
from hsd_bench.hierarchy.profile import Member, measure_stack, profile_pool
from hsd_bench.hierarchy.profile_format import PoolProfile
from hsd_bench.hierarchy.select import select_hierarchy
from hsd_bench.models.loading import ModelSpec


def test_profile_select_and_measure_on_tiny_models(tmp_path):
    pool = ModelPool(ModelSpec("random:llama", num_layers=4, seed=1))
    members = [Member("exit1", "target", 1), Member("exit2", "target", 2)]
    prompts = [[256, 10, 20, 30], [256, 40, 50]]
    profile = profile_pool(pool, "random:llama", members, prompts, new_tokens=20, repeats=1)
    profile.save(tmp_path / "pool.json")
    loaded = PoolProfile.load(tmp_path / "pool.json")
    assert set(loaded.members) == {"target", "exit1", "exit2"}
    for a, row in loaded.acceptance.items():
        for b, rate in row.items():
            assert 0.0 <= rate <= 1.0
            assert rate == loaded.acceptance[b][a]  # agreement is symmetric
    assert all(m.cost(1) > 0 for m in loaded.members.values())
    # the engine's AR step was timed, and what it pays beyond the target's forward kept
    assert loaded.provenance["engine_round_step_s"] > 0
    assert loaded.round_overhead_s == max(0.0, loaded.provenance["engine_round_step_s"] - loaded.members["target"].cost(1))
    # on CPU autoregressive decoding is one round per token: the baseline is that round
    assert loaded.provenance["ar_chunk"] == 1 and loaded.ar_step_s == loaded.provenance["engine_round_step_s"]
    assert loaded.ar_cost()(1) == loaded.ar_step_s
    sel = select_hierarchy(loaded, t_max=3)
    levels = sel.method_levels(loaded) or [{"path": "target", "exit": 1, "batch": 2}]
    measured = measure_stack(pool, "random:llama", levels, prompts, 12)
    assert measured["parity_exact"]
    assert measured["measured_speedup"] > 0


def _breakdown():
    from hsd_bench.hierarchy.latency import expected_latency
    from hsd_bench.hierarchy.profile_format import MemberProfile, fit_cost
    from hsd_bench.hierarchy.select import build_stack

    def member(name, exit_, fixed):
        return MemberProfile(name=name, path="target", exit=exit_, num_layers=8,
                             cost=fit_cost([(n, fixed * (1 + 0.01 * n)) for n in (1, 2, 4, 8, 16)]))

    pool = PoolProfile(target="target", members={"target": member("target", None, 1e-3),
                                                 "e2": member("e2", 2, 3e-4), "e4": member("e4", 4, 5e-4)},
                       acceptance={"target": {"e2": 0.6, "e4": 0.8}, "e2": {"target": 0.6, "e4": 0.7},
                                   "e4": {"target": 0.8, "e2": 0.7}})
    return expected_latency(build_stack(pool, ("e2", "e4", "target"), (2, 3)))


def test_prediction_gap_splits_the_error_into_its_terms():
    from hsd_bench.hierarchy.gap import MeasuredStack, prediction_gap

    b = _breakdown()
    n = 1000
    exact = MeasuredStack(n_generated=n, decode_s=b.latency_per_token * n,
                          forwards=[f * n for f in b.forwards_per_token],
                          level_s=[c * n for c in b.cost_per_token_by_level],
                          ar_n_generated=n, ar_decode_s=b.ar_latency_per_token * n)
    gap = prediction_gap(b, exact)
    assert (gap.forwards, gap.cost, gap.other) == pytest.approx((0, 0, 0), abs=1e-12)
    assert gap.speedup_ratio == pytest.approx(1.0) and gap.measured_tau == pytest.approx(b.tokens_per_cycle)

    # the host adds 20 % of the predicted latency between calls; AR is 1.5x slower than profiled
    slow_host = dataclasses.replace(exact, decode_s=exact.decode_s * 1.2, ar_decode_s=exact.ar_decode_s * 1.5)
    gap = prediction_gap(b, slow_host)
    assert (gap.forwards, gap.cost, gap.other) == pytest.approx((0, 0, 0.2), abs=1e-12)
    assert gap.speedup_ratio == pytest.approx(1.5 / 1.2)

    # the middle level makes twice the forwards the acceptance model said, each at its predicted cost
    extra = b.cost_per_token_by_level[1] * n
    more_calls = dataclasses.replace(exact, forwards=[exact.forwards[0], exact.forwards[1] * 2, exact.forwards[2]],
                                     level_s=[exact.level_s[0], exact.level_s[1] + extra, exact.level_s[2]],
                                     decode_s=exact.decode_s + extra)
    gap = prediction_gap(b, more_calls)
    share = b.cost_per_token_by_level[1] / b.latency_per_token
    assert (gap.forwards, gap.cost, gap.other) == pytest.approx((share, 0, 0), abs=1e-12)
    assert gap.latency_ratio == pytest.approx(1 + share)

    with pytest.raises(ValueError, match="3 levels, the measurement 2"):
        prediction_gap(b, dataclasses.replace(exact, forwards=exact.forwards[:2]))


def test_measured_stack_counters_add_up_on_tiny_models():
    from hsd_bench.hierarchy.gap import prediction_gap
    from hsd_bench.hierarchy.select import build_stack
    from hsd_bench.hierarchy.latency import expected_latency

    pool = ModelPool(ModelSpec("random:llama", num_layers=4, seed=1))
    prompts = [[256, 10, 20, 30], [256, 40, 50]]
    members = [Member("exit1", "target", 1), Member("exit2", "target", 2)]
    profile = profile_pool(pool, "random:llama", members, prompts, new_tokens=12, repeats=1)
    levels = [{"path": "target", "exit": 1, "batch": 2}, {"path": "target", "exit": 2, "batch": 2}]
    measured = measure_stack(pool, "random:llama", levels, prompts, 12)
    stack = measured["stack"]
    assert len(stack.forwards) == len(stack.level_s) == 3
    assert stack.n_generated == stack.ar_n_generated > 0  # lossless: the same tokens as AR
    assert stack.forwards[-1] >= 1 and stack.forwards[0] >= stack.forwards[1]
    assert 0 < sum(stack.level_s) <= stack.decode_s * 1.001
    predicted = expected_latency(build_stack(profile, ("exit1", "exit2", "target"), (2, 2)))
    gap = prediction_gap(predicted, stack)
    assert 1.0 <= gap.measured_tau <= (2 + 1) * (2 + 1) + 1
    assert gap.latency_ratio == pytest.approx(1 + gap.forwards + gap.cost + gap.other, rel=1e-9)
    predicted_speedup = predicted.ar_latency_per_token / predicted.latency_per_token
    assert gap.speedup_ratio == pytest.approx(measured["measured_speedup"] / predicted_speedup, rel=1e-9)
