"""The GPU grid planner: acceptance tables, predictions, pruning to a box, commands and calls."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import make_model
from hsd_bench.hierarchy.acceptance import ALL, TARGET, AcceptanceTables, measure
from hsd_bench.hierarchy.plan import (
    CostModel,
    Job,
    ModelCost,
    Prediction,
    TimeModel,
    draft_stop_round,
    expand,
    pack,
    plan_commands,
    predict,
    product_cover,
    prune,
)
from hsd_bench.training.exit_agreement import implied_tau

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
REPO = Path(__file__).resolve().parents[1]


def table(alphas: dict[tuple[str, str], float], stops: dict[str, tuple] = ()) -> AcceptanceTables:
    t = AcceptanceTables()
    for (d, v), a in alphas.items():
        t.pairs[(ALL, 0.0, d, v)] = [a * 1000, 1000]
    for d, (below, acc_b, acc_a) in dict(stops).items():
        t.stops[(ALL, d, 0.5)] = [below * 1000, acc_b * below * 1000, acc_a * (1 - below) * 1000, 1000]
    return t


def cfg(method: dict, verifier: str = "tokenwise", temperature: float = 0.0) -> dict:
    return {"method": {"name": "layerskip", "exit": None, "draft_len": 4, "period": 4, "flush_on_mismatch": False,
                       "draft": {"path": None}, "levels": [], "draft_stop": None, **method},
            "verifier": verifier, "decoding": {"temperature": temperature}}


COSTS = CostModel(target=ModelCost(80e-6, 44e-6), depth=24)


# -- predictions --------------------------------------------------------------------------------
@pytest.mark.parametrize("e, gamma, alpha", [(6, 4, 0.62), (12, 1, 0.8), (3, 6, 0.4)])
def test_layerskip_prediction_is_the_closed_form(e, gamma, alpha):
    p = predict(cfg({"exit": e, "draft_len": gamma}), table({(f"target@{e}", TARGET): alpha}), COSTS)
    tau = implied_tau(alpha, gamma)
    latency = (gamma * (80e-6 + e * 44e-6) + 80e-6 + (24 - e) * 44e-6) / tau
    assert p.tau == pytest.approx(tau) and p.latency_s == pytest.approx(latency)
    assert p.speedup == pytest.approx((80e-6 + 24 * 44e-6) / latency)


def test_hispec_uses_both_pairs_and_a_missing_pair_is_not_guessed():
    spec = cfg({"name": "hispec", "exit": [3, 8], "draft_len": 2, "period": 4})
    base = {("target@3", "target@8"): 0.6, ("target@8", TARGET): 0.8}
    p = predict(spec, table(base), COSTS)
    better = predict(spec, table({**base, ("target@3", "target@8"): 0.9}), COSTS)
    assert 1 < p.speedup < better.speedup
    missing = predict(spec, table({("target@8", TARGET): 0.8}), COSTS)
    assert missing.speedup is None and "target@3 -> target@8" in missing.note


def test_block_at_temperature_is_a_lower_bound_and_greedy_needs_no_note():
    t = AcceptanceTables()
    t.pairs[(ALL, 1.0, "target@6", TARGET)] = [700, 1000]
    p = predict(cfg({"exit": 6}, verifier="block", temperature=1.0), t, COSTS)
    assert p.speedup and "lower bound" in p.note


def _enumerate_stop_round(gamma, s, a_low, a_high):
    """E[drafted], E[committed] by enumerating every token's (unconfident, accepted) bits."""
    drafted = committed = 0.0
    for bits in itertools.product([(0, 0), (0, 1), (1, 0), (1, 1)], repeat=gamma):
        prob = 1.0
        for low, acc in bits:
            pa = a_low if low else a_high
            prob *= (s if low else 1 - s) * (pa if acc else 1 - pa)
        k = next((j + 1 for j, (low, _) in enumerate(bits) if low), gamma)  # drafted through the first unconfident
        a = next((j for j in range(k) if not bits[j][1]), k)  # accepted prefix of the drafted tokens
        drafted += prob * k
        committed += prob * (a + 1)
    return drafted, committed


@pytest.mark.parametrize("gamma, s, a_low, a_high", [(1, 0.3, 0.2, 0.9), (3, 0.5, 0.4, 0.95), (4, 0.0, 0.1, 0.7),
                                                     (4, 1.0, 0.3, 0.8)])
def test_draft_stop_round_is_exact(gamma, s, a_low, a_high):
    assert draft_stop_round(gamma, s, a_low, a_high) == pytest.approx(_enumerate_stop_round(gamma, s, a_low, a_high))
    if s == 0:  # no stop: the fixed-γ round
        assert draft_stop_round(gamma, s, a_low, a_high) == pytest.approx((gamma, implied_tau(a_high, gamma)))


def test_draft_stop_prediction_uses_the_stop_statistics():
    t = table({("target@6", TARGET): 0.6}, {"target@6": (0.4, 0.3, 0.8)})
    fixed = predict(cfg({"exit": 6, "draft_len": 8}), t, COSTS)
    adaptive = predict(cfg({"exit": 6, "draft_len": 8, "draft_stop": {"threshold": 0.5}}), t, COSTS)
    drafted, tau = draft_stop_round(8, 0.4, 0.3, 0.8)
    assert adaptive.tau == pytest.approx(tau) and adaptive.speedup > fixed.speedup
    t.pairs[(ALL, 0.0, "target@3", "target@6")] = [500, 1000]
    three = predict(cfg({"name": "hispec", "exit": [3, 6], "draft_stop": 0.5}), t, COSTS)
    assert three.speedup is None and "two-level" in three.note


# -- pruning and commands ---------------------------------------------------------------------------
def _jobs(sweep, grid: dict[str, list], speed) -> list[Job]:
    keys = list(grid)
    out = []
    for vals in itertools.product(*grid.values()):
        over = [f"{k}={v}" for k, v in zip(keys, vals)]
        c = cfg({"exit": vals[0], "draft_len": vals[1]})
        out.append(Job(sweep, over, c, Prediction(speed(*vals), 2.0, 1e-3), {"humaneval": 10.0, "gsm8k": 10.0}))
    return out


def test_prune_keeps_a_box_around_the_best_within_budget():
    jobs = _jobs("grid_layerskip", {"exit": [2, 4, 6, 8, 10], "method.draft_len": [1, 2, 4, 8]},
                 lambda e, g: 2.0 - abs(e - 6) * 0.15 - abs(g - 2) * 0.1)
    box, dropped = prune(jobs, keep_frac=0.85, budget_s=130, command_s=20)
    kept = [j for j in jobs if j.status == "kept"]
    assert {tuple(sorted(j.key().items())) for j in kept} == {
        tuple(sorted({"exit": e, "method.draft_len": g}.items())) for e in box["exit"] for g in box["method.draft_len"]}
    assert sum(j.est_s for j in kept) + 20 <= 130
    assert max(jobs, key=lambda j: j.prediction.speedup).status == "kept"
    assert all(j.why in ("unpromising", "budget") and j.reason for j in jobs if j.status == "pruned")
    assert dropped and all(v not in box[k] for k, v, _ in dropped)
    assert abs(len(box["exit"]) - len(box["method.draft_len"])) <= 1  # balanced: every γ has the same exits


def test_rules_at_greedy_are_one_run_and_fixed_gamma_is_always_measured():
    rules = []
    for v, t in itertools.product(["tokenwise", "block", "hsd"], ["0.0", "1.0"]):
        c = cfg({"exit": 6}, verifier=v, temperature=float(t))
        rules.append(Job("grid_rules", [f"verifier={v}", f"decoding.temperature={t}"], c, Prediction(1.5, 2.0, 1e-3),
                         {"humaneval": 10.0}))
    prune(rules, 0.0, 1000)
    pruned = {(j.key()["verifier"], j.key()["decoding.temperature"]) for j in rules if j.status == "pruned"}
    assert pruned == {("block", "0.0"), ("hsd", "0.0")}
    stops = []
    for stop, g in itertools.product(["null", "0.3", "0.5"], ["4", "8"]):
        c = cfg({"exit": 6, "draft_len": int(g), "draft_stop": None if stop == "null" else float(stop)})
        sp = 1.0 if stop == "null" else 1.5 + float(stop)
        stops.append(Job("grid_draft_stop", [f"method.draft_stop={stop}", f"method.draft_len={g}"], c,
                         Prediction(sp, 2.0, 1e-3), {"humaneval": 10.0}))
    box, _ = prune(stops, 0.9, 45)
    assert "null" in box["method.draft_stop"] and "0.5" in box["method.draft_stop"]


def test_product_cover_is_exact_and_disjoint():
    rng = torch.Generator().manual_seed(0)
    universe = [{"a": str(a), "b": str(b), "c": str(c)} for a in range(3) for b in range(3) for c in range(2)]
    for _ in range(20):
        rows = [r for r in universe if torch.rand(1, generator=rng).item() < 0.5] or universe[:1]
        cover = product_cover(rows, ["a", "b", "c"])
        expanded = [dict(zip(p, vals)) for p in cover for vals in itertools.product(*p.values())]
        assert sorted(map(json.dumps, expanded)) == sorted(map(json.dumps, rows))  # exact, no job twice


def test_commands_and_calls():
    jobs = _jobs("grid_layerskip", {"exit": [6, 8], "method.draft_len": [1, 2]}, lambda e, g: 1.5)
    jobs[0].drop("budget", "x")  # exit=6 γ=1 out: not a product any more
    cmds = plan_commands(jobs, ["${GPU}", "dataset=humaneval"], TimeModel(command_s=20), "humaneval")
    assert sum(n for _, _, n in cmds) == 3 and len(cmds) == 2
    assert all(c.startswith("python run.py -m +experiment=grid_layerskip ${GPU} dataset=humaneval ") for c, _, _ in cmds)
    assert {round(s) for _, s, _ in cmds} == {30, 40}  # 20 per command + 10 per job on this dataset
    calls = pack([("a", 300.0, 1), ("b", 300.0, 1), ("c", 100.0, 1)], call_s=540, first_call_extra_s=200)
    assert [[c[0] for c in call] for call in calls] == [["a"], ["b", "c"]]


def test_expand_gives_every_job_of_a_sweep_resolved():
    jobs = expand("grid_vanilla_sd")
    assert len(jobs) == 12
    seen = {(c["method"]["draft"]["path"], c["method"]["draft_len"]) for _, c in jobs}
    assert len(seen) == 12 and all(c["method"]["name"] == "vanilla_sd" for _, c in jobs)


# -- measurement ----------------------------------------------------------------------------------
class _Pool:
    def __init__(self, models, codec):
        self.models, self.codec = models, codec

    def get(self, path):
        return self.models[path], self.codec


def test_measure_counts_agreement_and_saves_what_a_stack_can_use(codec, tmp_path):
    target = make_model("llama", num_layers=3, seed=1, deep_scale=0.2)
    small = make_model("llama", num_layers=1, seed=2, name="small")
    pool = _Pool({"t": target, "small": small}, codec)
    prompts = [("a", codec.encode("def f(x):")), ("b", codec.encode("hello world"))]
    tables = measure(pool, "t", ["small"], prompts, new_tokens=6, temperatures=(1.0,), thresholds=(0.02, 0.5))
    # the pooled rows are the per-dataset rows summed
    for key in [("target@1", TARGET), ("small", "target@2")]:
        a, b, pooled = (tables.pairs[(ds, 0.0, *key)] for ds in ("a", "b", ALL))
        assert pooled == [a[0] + b[0], a[1] + b[1]] and pooled[1] == 12
    # greedy agreement is symmetric and a rate; 1 - TV is at least the greedy... both in [0, 1]
    assert tables.alpha("target@1", TARGET) == tables.alpha(TARGET, "target@1")
    assert all(0 <= tables.alpha(d, v, t) <= 1 for (_, t, d, v) in tables.pairs)
    below, _, _ = tables.stop_stats("target@1", 0.5)
    assert below == 1.0  # random tiny models are never 50% sure
    tables.save(tmp_path)
    back = AcceptanceTables.load(tmp_path)
    assert back.alpha("target@1", "target@2") == pytest.approx(tables.alpha("target@1", "target@2"), abs=1e-6)
    assert back.stop_stats("small", 0.02) == pytest.approx(tables.stop_stats("small", 0.02), abs=1e-6)
    rows = pd.read_csv(tmp_path / "acceptance.csv")
    assert not ((rows["drafter"] == "target@2") & (rows["verifier"] == "target@1")).any()  # deeper never drafts
    assert set(rows[rows["dataset"] != ALL]["verifier"]) == {TARGET}


def test_predictions_join_the_measured_runs(tmp_path):
    from synthetic_runs import base_config, make_run

    from hsd_bench import collect

    c = base_config(**{"method.exit": 6, "method.draft_len": 2})
    make_run(tmp_path, c)
    make_run(tmp_path, base_config(**{"method.exit": 8}))
    predictions = pd.DataFrame({"config_key": [collect.config_key(c)], "predicted_speedup": [1.37]})
    t = collect.summary_table(collect.collect_summaries([tmp_path]), predictions)
    got = dict(zip(t["exit"].astype(int), t["predicted_speedup"]))
    assert got[6] == pytest.approx(1.37) and pd.isna(got[8])


def test_the_committed_plan_was_made_from_the_committed_tables():
    """results/grid_plan holds the measured tables, the plan and its calls; each call fits a device call."""
    folder = REPO / "results" / "grid_plan"
    tables = AcceptanceTables.load(folder)
    assert tables.alpha("target@6", TARGET) > tables.alpha("target@2", TARGET)  # deeper exits agree more
    plan = pd.read_csv(folder / "plan.csv")
    kept = plan[plan["status"] == "kept"]
    assert len(kept) and (plan[plan["status"] == "pruned"]["reason"].str.len() > 0).all()
    calls = sorted((folder / "calls").glob("call_*.sh"))
    assert calls
    for call in calls:
        steps = [line.split()[1] for line in call.read_text().splitlines() if line.startswith("run_step ")]
        assert steps and sum(map(float, steps)) <= 540
