"""The optimal-hierarchy selector against brute force, the pool profile format, and the CLI.

Pools are synthetic and seeded: each drafter has a cost and a latent quality
that grows with cost; acceptance between two members falls with their
quality gap. That makes deep stacks and large batches competitive, so the
optimum is not trivially "one drafter, T = 1".
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hsd_bench.hierarchy.latency import expected_latency
from hsd_bench.hierarchy.profile_format import CostFit, MemberProfile, PoolProfile, fit_cost
from hsd_bench.hierarchy.select import (
    _beam,
    _gsp,
    brute_force,
    build_stack,
    evaluate,
    ordered_drafters,
    select_hierarchy,
)


def random_pool(seed: int, n_drafters: int = 4, per_position: float = 0.01) -> PoolProfile:
    rng = np.random.default_rng(seed)
    members = {"target": MemberProfile("target", "target", None, 32, CostFit(1.0, per_position))}
    quality = {"target": 1.0}
    for i in range(n_drafters):
        name = f"d{i}"
        c = float(rng.uniform(0.005, 0.35))
        members[name] = MemberProfile(name, f"org/{name}", None, 4, CostFit(c, c * per_position))
        quality[name] = float(np.clip(0.35 + 0.6 * (c / 0.35) ** 0.5 + rng.normal(0, 0.08), 0.05, 0.97))
    acc = {
        i: {j: float(np.clip(1 - abs(quality[i] - quality[j]) * rng.uniform(0.7, 1.1), 0.01, 0.99))
            for j in quality if j != i}
        for i in quality
    }
    return PoolProfile("target", members, acc, {"synthetic_seed": seed})


def same_optimum(sel, bf) -> bool:
    return math.isclose(sel.best.latency, bf[0].latency, rel_tol=1e-12)


# -- selector vs brute force -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_shortest_path_is_exact_for_trim_with_adjacent_acceptance(seed):
    pool = random_pool(seed)
    sel = select_hierarchy(pool, t_max=4, acceptance="adjacent", variant="trim")
    bf = brute_force(pool, 4, "adjacent", "trim")
    assert sel.exact
    assert same_optimum(sel, bf), (sel.best.describe(), bf[0].describe())
    assert sel.best.latency < bf[-1].latency  # not a degenerate pool: choices matter
    # the DP value is the latency model's value for the chosen stack
    b = expected_latency(build_stack(pool, sel.best.names, sel.best.batches, "adjacent", "trim"))
    assert math.isclose(b.latency_per_token, sel.best.latency, rel_tol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_beam_finds_the_optimum_for_the_engine_default(seed):
    pool = random_pool(seed)
    sel = select_hierarchy(pool, t_max=4, acceptance="adjacent", variant="overshoot")
    bf = brute_force(pool, 4, "adjacent", "overshoot")
    assert not sel.exact
    assert same_optimum(sel, bf), (sel.best.describe(), bf[0].describe())


@pytest.mark.parametrize("variant", ["overshoot", "trim"])
@pytest.mark.parametrize("seed", range(3))
def test_provenance_selection_matches_brute_force(seed, variant):
    pool = random_pool(seed + 10, n_drafters=3)
    sel = select_hierarchy(pool, t_max=3, acceptance="provenance", variant=variant)
    bf = brute_force(pool, 3, "provenance", variant)
    assert same_optimum(sel, bf), (sel.best.describe(), bf[0].describe())


def test_beam_under_trim_is_the_exact_shortest_path():
    pool = random_pool(7, n_drafters=5)
    drafters, _ = ordered_drafters(pool)
    gsp = sorted(_gsp(pool, drafters, 6, 1, len(drafters)))[0]
    beam = sorted(_beam(pool, drafters, 6, 1, len(drafters), "trim"), key=lambda x: x[0])[0]
    assert math.isclose(gsp[0], beam[0], rel_tol=1e-12) and gsp[1:] == beam[1:]


def test_overshoot_and_trim_optima_differ_and_the_selector_knows_which_it_solved():
    pool = random_pool(1)
    over = select_hierarchy(pool, t_max=6, variant="overshoot")
    trim = select_hierarchy(pool, t_max=6, variant="trim")
    assert over.best.latency < trim.best.latency  # overshoot uses every accepted token
    # a stack chosen for one variant, scored under the other, is no better than that variant's optimum
    cross = evaluate(pool, trim.best.names, trim.best.batches, "adjacent", "overshoot")
    assert cross.latency >= over.best.latency * (1 - 1e-12)


def test_max_depth_limits_the_stack():
    pool = random_pool(1)
    sel = select_hierarchy(pool, t_max=4, variant="overshoot", max_depth=1)
    bf = brute_force(pool, 4, "adjacent", "overshoot", max_depth=1)
    assert len(sel.best.names) <= 2 and same_optimum(sel, bf)
    ar = select_hierarchy(pool, t_max=4, max_depth=0)
    assert ar.best.names == ("target",) and ar.best.speedup == 1.0


@pytest.mark.parametrize("variant", ["overshoot", "trim"])
@pytest.mark.parametrize("acceptance", ["adjacent", "provenance"])
def test_useless_drafters_leave_autoregressive_decoding(variant, acceptance):
    pool = random_pool(0, n_drafters=3)
    for i, row in pool.acceptance.items():
        for j in row:
            row[j] = 0.01
    sel = select_hierarchy(pool, t_max=4, acceptance=acceptance, variant=variant)
    assert sel.best.names == ("target",) and sel.best.speedup == 1.0
    assert all(c.speedup < 1.0 for c in sel.alternatives)


def test_alternatives_are_distinct_chains_ranked_by_latency():
    sel = select_hierarchy(random_pool(3), t_max=5, top_k=4)
    chains = [sel.best.names] + [c.names for c in sel.alternatives]
    assert len(set(chains)) == len(chains) == 5
    lats = [sel.best.latency] + [c.latency for c in sel.alternatives]
    assert lats == sorted(lats)


def test_drafters_not_cheaper_than_the_target_are_excluded():
    pool = random_pool(2, n_drafters=3)
    pool.members["slow"] = MemberProfile("slow", "org/slow", None, 48, CostFit(2.0))
    for m in pool.members:
        if m != "slow":
            pool.acceptance.setdefault("slow", {})[m] = 0.99
            pool.acceptance[m]["slow"] = 0.99
    sel = select_hierarchy(pool, t_max=3)
    assert sel.excluded == ["slow"] and "slow" not in sel.best.names
    assert ordered_drafters(pool)[0] == sorted(ordered_drafters(pool)[0], key=lambda n: pool.draft_cost(n)(1))


def test_selector_rejects_bad_arguments():
    pool = random_pool(0, 2)
    with pytest.raises(ValueError, match="t_max=0"):
        select_hierarchy(pool, t_max=0)
    with pytest.raises(ValueError, match="variant='fast'"):
        select_hierarchy(pool, variant="fast")
    with pytest.raises(ValueError, match="acceptance='mixed'"):
        select_hierarchy(pool, acceptance="mixed")
    with pytest.raises(ValueError, match="not a pool member"):
        build_stack(pool, ("nope", "target"), (2,))


# -- profile format ---------------------------------------------------------------------------------------


def test_profile_round_trips_through_json(tmp_path):
    pool = random_pool(4, 3)
    pool.members["d0"] = MemberProfile("d0", "org/d0", None, 4, CostFit(0.01, 0.001, ((1, 0.011), (4, 0.014))),
                                       {"d1": CostFit(0.005)})
    path = tmp_path / "pool.json"
    pool.save(path)
    back = PoolProfile.load(path)
    assert back.to_dict() == pool.to_dict()
    assert json.loads(path.read_text())["format"] == "hsd-bench/pool-profile"


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(format="other"), "not a pool profile"),
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d.update(target="ghost"), "target 'ghost'"),
        (lambda d: d["acceptance"]["d0"].update(target=1.2), r"acceptance\['d0'\]\['target'\]=1.2"),
        (lambda d: d["members"]["d0"].update(speed=1), "unknown keys"),
        (lambda d: d["members"]["d0"]["cost"].update(fixed_s=-1), "fixed_s=-1"),
        (lambda d: d["members"]["d0"].update(exit=9), "exit=9"),
        (lambda d: d["members"]["d0"]["cost"].update(table=[[2, 0.1], [1, 0.2]]), "increasing"),
    ],
)
def test_bad_profiles_fail_with_the_bad_value(mutate, match):
    d = random_pool(0, 2).to_dict()
    mutate(d)
    with pytest.raises(ValueError, match=match):
        PoolProfile.from_dict(d)


def test_missing_acceptance_pair_names_the_pair():
    pool = random_pool(0, 2)
    del pool.acceptance["d0"]["d1"]
    with pytest.raises(ValueError, match=r"acceptance\['d0'\]\['d1'\]"):
        build_stack(pool, ("d0", "d1", "target"), (2, 3))


def test_cost_table_interpolates_and_fit_recovers_a_line():
    c = CostFit(0.0, 0.001, ((1, 0.010), (3, 0.012), (5, 0.020)))
    assert c(1) == 0.010 and math.isclose(c(2), 0.011) and math.isclose(c(4), 0.016)
    assert math.isclose(c(7), 0.028)  # last segment extrapolated
    fit = fit_cost([(n, 0.004 + 0.0005 * n) for n in (1, 2, 4, 8, 16) for _ in range(3)])
    assert math.isclose(fit.fixed_s, 0.004, rel_tol=1e-9) and math.isclose(fit.per_position_s, 0.0005, rel_tol=1e-9)
    assert math.isclose(fit(3), 0.0055)


def test_views_of_one_model_share_layers_in_verification_costs():
    full = CostFit(0.024, 0.0024)
    members = {
        "target": MemberProfile("target", "target", None, 24, full),
        "t@6": MemberProfile("t@6", "target", 6, 24, CostFit(0.006, 0.0006)),
        "t@12": MemberProfile("t@12", "target", 12, 24, CostFit(0.012, 0.0012), {"t@6": CostFit(0.0065)}),
        "small": MemberProfile("small", "org/small", None, 4, CostFit(0.002)),
    }
    pool = PoolProfile("target", members, {})
    assert math.isclose(pool.verify_cost("t@6", "target")(3), full(3) * 18 / 24)  # layers 6..24 only
    assert pool.verify_cost("t@6", "t@12") == CostFit(0.0065)  # a measured entry wins
    assert pool.verify_cost("small", "target") == full  # separate model: a full forward
    assert pool.verify_cost("t@12", "t@6") == members["t@6"].cost  # a deeper view below: no reuse


def test_a_continuation_keeps_the_per_forward_cost_that_does_not_shrink_with_layers():
    # 1 ms of head and launches per forward plus 0.1 ms per layer: an exit's forward is not its
    # share of layers, and neither is the continuation from it.
    def view(name, exit_):
        layers = exit_ or 24
        return MemberProfile(name, "target", exit_, 24, CostFit(0.001 + 0.0001 * layers))

    members = {"target": view("target", None), "t@4": view("t@4", 4), "t@8": view("t@8", 8)}
    pool = PoolProfile("target", members, {})
    assert math.isclose(pool.verify_cost("t@4", "t@8")(1), 0.001 + 0.0001 * 4)  # head + layers 4..8
    assert math.isclose(pool.verify_cost("t@8", "target")(1), 0.001 + 0.0001 * 16)
    # never below the proportional share, even when the views' costs say less
    cheap = dict(members, **{"t@8": MemberProfile("t@8", "target", 8, 24, CostFit(0.0005))})
    assert PoolProfile("target", cheap, {}).verify_cost("t@4", "t@8")(1) >= cheap["t@8"].cost(1) * 4 / 8


def test_round_overhead_is_paid_by_every_verification_and_by_ar():
    full = CostFit(0.010)
    members = {"target": MemberProfile("target", "target", None, 24, full),
               "small": MemberProfile("small", "org/small", None, 2, CostFit(0.001))}
    acceptance = {"small": {"target": 0.7}, "target": {"small": 0.7}}
    plain = PoolProfile("target", members, acceptance)
    busy = PoolProfile("target", members, acceptance, round_overhead_s=0.002)
    assert busy.ar_cost()(1) == pytest.approx(0.012) and busy.verify_cost("small", "target")(5) == pytest.approx(0.012)
    assert busy.draft_cost("small")(1) == 0.001  # a draft step is a forward of the drafter alone
    b0 = expected_latency(build_stack(plain, ("small", "target"), (4,)))
    b1 = expected_latency(build_stack(busy, ("small", "target"), (4,)))
    assert b1.ar_latency_per_token == pytest.approx(0.012)
    # the overhead is paid once per round, i.e. once per tau tokens, so the stack gains on AR
    assert b1.latency_per_token == pytest.approx(b0.latency_per_token + 0.002 / b0.tokens_per_cycle)
    assert b1.ar_latency_per_token / b1.latency_per_token > b0.ar_latency_per_token / b0.latency_per_token
    assert select_hierarchy(busy, t_max=4).best.ar_latency == pytest.approx(0.012)
    assert PoolProfile.from_dict(busy.to_dict()).round_overhead_s == 0.002
    assert "round_overhead_s" not in plain.to_dict()
    with pytest.raises(ValueError, match=r"round_overhead_s=-1 must be a number of seconds >= 0"):
        PoolProfile("target", members, acceptance, round_overhead_s=-1)


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_prints_the_selection(tmp_path, capsys):
    from importlib import util
    from pathlib import Path

    spec = util.spec_from_file_location("select_cli", Path(__file__).parents[1] / "scripts" / "select_hierarchy.py")
    cli = util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    pool = random_pool(5)
    path = tmp_path / "pool.json"
    pool.save(path)

    assert cli.main([str(path), "--t-max", "4", "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    sel = select_hierarchy(pool, t_max=4, top_k=3)
    assert out["best"]["stack"] == list(sel.best.names) and out["best"]["batches"] == list(sel.best.batches)
    assert math.isclose(out["best"]["speedup_vs_ar"], sel.best.speedup)
    assert len(out["alternatives"]) == 3
    assert [lv["batch"] for lv in out["method_levels"]] == list(sel.best.batches)

    assert cli.main([str(path), "--t-max", "4"]) == 0
    text = capsys.readouterr().out
    assert "speedup" in text and "method=hierarchy" in text and sel.best.describe() in text

    assert cli.main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_speedup_baseline_is_the_full_target_even_after_a_target_exit():
    """Reused layers make the target's verification after its own exit cheaper,
    but the AR baseline is always one full target forward."""
    from hsd_bench.hierarchy.profile_format import CostFit, MemberProfile, PoolProfile
    from hsd_bench.hierarchy.select import evaluate

    members = {
        "target": MemberProfile("target", "target", None, 24, CostFit(0.012, 0.0)),
        "target@6": MemberProfile("target@6", "target", 6, 24, CostFit(0.003, 0.0)),
        "small": MemberProfile("small", "small", None, 2, CostFit(0.001, 0.0)),
    }
    pool = PoolProfile("target", members, {"target@6": {"target": 0.8}, "small": {"target": 0.8}})
    a = evaluate(pool, ("target@6", "target"), (2,))
    b = evaluate(pool, ("small", "target"), (2,))
    assert a.ar_latency == b.ar_latency == 0.012
