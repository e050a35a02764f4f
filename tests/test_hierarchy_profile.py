"""The profiler writes a usable pool profile, and the measured stack is lossless."""

from __future__ import annotations

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
    sel = select_hierarchy(loaded, t_max=3)
    levels = sel.method_levels(loaded) or [{"path": "target", "exit": 1, "batch": 2}]
    measured = measure_stack(pool, "random:llama", levels, prompts, 12)
    assert measured["parity_exact"]
    assert measured["measured_speedup"] > 0
