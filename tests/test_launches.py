"""hsd_bench/bench/launches.py and scripts/count_launches.py: the host's launches per generated token
on the graph path, counted on a CPU through the native backend's fixed-shape steps and the graph
stand-in."""

from __future__ import annotations

import json
import time

import pytest
import torch

from hsd_bench.bench.launches import REPLAY, HostLaunches, host_time_per_token, per_token, stand_in_graphs
from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.graphs import RecordingGraphs
from tests.conftest import load_script
from tests.test_native_backend import VOCAB, make_hf_model


def test_a_replay_is_one_launch_and_views_and_allocations_are_none():
    graphs = RecordingGraphs()
    static = torch.zeros(4)

    def step():  # three ops a captured graph would run as one launch
        static.add_(1.0)
        static.mul_(2.0)
        return static.clone()

    graphs.run(("step",), step)  # recorded before counting, as prepare() records
    with HostLaunches([graphs]) as count:
        static[:2].fill_(3.0)  # a view (not counted), then a fill (counted)
        torch.empty(8)  # an allocation: no kernel
        graphs.run(("step",), None)
        value = static.sum().item()  # a reduction (a launch), then a host read
    assert dict(count.ops) == {"fill_": 1, REPLAY: 1, "sum": 1}
    assert count.launches == 3 and count.reads == 1
    assert count.views == 1  # the slice: no launch, but a dispatcher call, counted apart
    # the capture ran the step twice, as a CUDA capture does (warm-up, replay): 6.0 everywhere; then
    # the replay ran it on the filled values: (3 + 1) * 2 and (6 + 1) * 2
    assert value == pytest.approx(2 * 8.0 + 2 * 14.0)
    assert graphs.run.__func__ is RecordingGraphs.run  # the stand-in is itself again after counting
    site = next(iter(count.sites))
    assert site.startswith("(outside hsd_bench)")  # this test's own lines are not the project's


def native(hf, **kw):
    return from_hf_model(hf, max_context=160, fixed_shapes=True, max_graph_tokens=8, min_kv_bucket=16, **kw)


@pytest.mark.parametrize("spec", [MethodSpec("autoregressive"), MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3)],
                         ids=["autoregressive", "hispec"])
def test_the_count_is_of_the_decode_phase_on_the_graph_path_and_the_same_every_pass(spec):
    """Every forward of a decode runs inside a replayed step (no matmul is counted: the prompt's
    eager prefill is outside the count), nothing is recorded while decoding, and the count is a
    property of the code: two passes count the same."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model = native(hf)
    graphs = stand_in_graphs([model])
    assert len(graphs) == 1 and model._graphs is graphs[0]
    engine = build_engine(spec, model, load_other=None)
    prompts = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (9, 14)]
    engine.prepare(40, greedy=True)
    engine.generate(prompts[0], 24, DecodingConfig())  # records the shapes a first pass meets
    first = per_token(engine, graphs, prompts, 24, DecodingConfig())
    second = per_token(engine, graphs, prompts, 24, DecodingConfig())
    assert first == second
    assert first["tokens"] == 48 and first["recorded_while_decoding"] == 0
    assert first["replays_per_token"] > 0 and "mm" not in first["ops"] and "addmm" not in first["ops"]
    assert first["launches_per_token"] == pytest.approx(sum(first["ops"].values()))
    assert engine.on_phase is None  # the counting hook is gone


@pytest.mark.parametrize("spec", [MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3),
                                  MethodSpec("layerskip", exit=2, draft_len=3)], ids=["hispec", "layerskip"])
def test_a_one_row_round_makes_few_views(spec):
    """A view launches nothing but costs the host a dispatcher call, on the path the device waits on
    (docs/gpu-runs.md, "Thirty-sixth run"): a one-row greedy decode makes at most eight per
    verification -- the verified drafts and the verifier's tokens, the token written back, the
    states handed to the verification and the round's own -- where, before the row's views were
    kept and the pending states kept as returned, it made 19 (HiSpec) and 17 (layerskip) here."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model = native(hf)
    graphs = stand_in_graphs([model])
    engine = build_engine(spec, model, load_other=None)
    prompts = [torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(n)).tolist() for n in (9, 14)]
    engine.prepare(40, greedy=True)
    engine.generate(prompts[0], 24, DecodingConfig())
    row = per_token(engine, graphs, prompts, 24, DecodingConfig(), top=100)  # every line
    gens = [engine.generate(p, 24, DecodingConfig()) for p in prompts]
    verifications = sum(sum(g.stats.rounds[1:]) for g in gens) / sum(g.stats.n_generated for g in gens)
    assert verifications > 0.5
    assert 0 < row["views_per_token"] <= 8 * verifications, row["view_sites"]
    assert sum(row["view_sites"].values()) == pytest.approx(row["views_per_token"])


def test_the_host_time_leaves_out_what_the_replays_take():
    """Each replay made to last 20 ms longer: the host's time outside replays stays far below what
    the replays added per token (so they are not in it), and the hooks are gone afterwards."""
    hf = make_hf_model("llama_gqa", num_layers=4, seed=3)
    model = native(hf)
    graphs = stand_in_graphs([model])
    spec = MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3)
    engine = build_engine(spec, model, load_other=None)
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, VOCAB, (9,), generator=gen).tolist()]
    engine.prepare(40, greedy=True)
    engine.generate(prompts[0], 16, DecodingConfig())
    replays = per_token(engine, graphs, prompts, 16, DecodingConfig())["replays_per_token"]
    run = graphs[0].run

    def slow_run(key, fn):
        time.sleep(0.02)
        return run(key, fn)

    graphs[0].run = slow_run
    host = host_time_per_token(engine, graphs, prompts, 16, DecodingConfig(), passes=2)
    assert len(host["passes_us_per_token"]) == 2 and host["host_us_per_token"] > 0
    assert host["host_us_per_token"] < 0.25 * replays * 20_000  # the sleeps are inside the replays' time
    assert engine.on_phase is None and graphs[0].run is slow_run  # put back as it was found
    with pytest.raises(ValueError, match="passes=0 must be >= 1"):
        host_time_per_token(engine, graphs, prompts, 16, DecodingConfig(), passes=0)


def test_count_launches_writes_a_row_per_method_and_refuses_bad_arguments(tmp_path, capsys):
    script = load_script("count_launches")
    assert script.main(["--methods", "hispec", "--prompts", "1", "--max-new", "8", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "launches.json").read_text())
    row = doc["methods"]["hispec"]
    assert row["tokens"] > 0 and row["launches_per_token"] > row["replays_per_token"] > 0
    assert row["views_per_token"] > 0 and row["view_sites"]
    assert len(row["host_time"]["passes_us_per_token"]) == 3  # --host-passes' default
    assert "| hispec |" in (tmp_path / "launches.md").read_text()
    assert "| line making views | per token |" in (tmp_path / "launches.md").read_text()
    assert script.main(["--methods", "layerskip", "--prompts", "1", "--max-new", "8", "--host-passes", "0",
                        "--out", str(tmp_path / "untimed")]) == 0
    assert "host_time" not in json.loads((tmp_path / "untimed" / "launches.json").read_text())["methods"]["layerskip"]
    # the stand-in's graphs have no conditional nodes unless asked (whatever this torch has): a count is the
    # same on every machine
    assert doc["conditional_nodes"] is False and "without conditional nodes" in (tmp_path / "launches.md").read_text()
    assert script.main(["--methods", "hispec", "--prompts", "1", "--max-new", "8", "--host-passes", "0",
                        "--conditional-nodes", "--out", str(tmp_path / "nodes")]) == 0
    assert json.loads((tmp_path / "nodes" / "launches.json").read_text())["conditional_nodes"] is True
    assert "with conditional nodes" in (tmp_path / "nodes" / "launches.md").read_text()
    for bad, says in ((["--methods", "beam"], "unknown beam"), (["--max-new", "0"], "--max-new=0"),
                      (["--hispec-exits", "3"], "two layer numbers"), (["--host-passes", "-1"], "--host-passes=-1")):
        with pytest.raises(SystemExit):
            script.parse_args(bad + ["--out", str(tmp_path)])
        assert says in capsys.readouterr().err
