"""Chunked autoregressive decoding (``ar_chunk``): the same tokens, fewer host round trips.

AR commits ``ar_chunk`` tokens per round (the target drafting them as one
greedy chain, nothing to verify) and checks for a stop between rounds. Its
output, stop reasons and sampled tokens must equal one-token rounds exactly;
the tokens it computed past a stop are counted, never committed.
"""

from __future__ import annotations

import pytest

from conftest import make_model, tiny_job_config
from hsd_bench import runner
from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import AR_CHUNK_CUDA, MAX_AR_CHUNK, MethodSpec, ar_chunk_for, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.runner import identity
from hsd_bench.validate import validate_run_config
from test_batch_parity import TEXTS

MAX_NEW = 20


@pytest.fixture
def tiny_run_cfg(tmp_path, monkeypatch) -> dict:
    return tiny_job_config(tmp_path, monkeypatch, "max_new_tokens=6", "method=layerskip", "exit=2", "dataset.limit=2")


def target_model(backend: str):
    model = make_model("llama", num_layers=4, seed=1, deep_scale=0.2)
    if backend == "hf":
        return model
    return from_hf_model(model.hf_model, name="target", max_context=256, fixed_shapes=True, max_graph_tokens=4,
                         min_kv_bucket=16)


def decode(model, codec, chunk: int, prompts, batch: int, decoding=None, eos=None, stop=(), lookahead=True):
    engine = build_engine(MethodSpec("autoregressive", ar_chunk=chunk, lookahead=lookahead), model, None, codec)
    assert engine.levels[0].batch == chunk
    if eos is not None:
        engine.eos_token_ids = {eos}
    got = dict(engine.generate_many(prompts, MAX_NEW, decoding, stop_sequences=stop, tokenizer=codec,
                                    batch_size=batch))
    return [got[i] for i in range(len(prompts))]


@pytest.mark.parametrize("backend", ["hf", "native-fixed"])
def test_chunks_commit_what_one_token_rounds_commit(backend, codec):
    model = target_model(backend)
    prompts = [codec.encode(t) for t in TEXTS]
    free = [g.output_ids for g in decode(model, codec, 1, prompts[:2], 1)]
    eos = free[0][5]  # a stop inside a chunk: the rest of that chunk is computed, then dropped
    stop = [codec.decode(free[1][9:11])]
    chains = []
    if backend == "native-fixed":  # spy: each fused round, and how many tokens it drafted
        fused = model.greedy_draft
        model.greedy_draft = lambda *args, **kw: chains.append(args[4]) or fused(*args, **kw)
    one = decode(model, codec, 1, prompts, 1, eos=eos, stop=stop, lookahead=False)
    assert {g.stop_reason for g in one} == {"stop", "max_new_tokens"}
    for chunk in (3, 8):
        for batch in (1, 3):
            for lookahead in (True, False):
                chains.clear()
                got = decode(model, codec, chunk, prompts, batch, eos=eos, stop=stop, lookahead=lookahead)
                # the next chunk is queued before a chunk is read only for one row on the fused path
                in_flight = lookahead and backend == "native-fixed" and batch == 1
                case = (chunk, batch, lookahead)
                for a, b in zip(got, one):
                    assert (a.output_ids, a.stop_reason, a.stats.n_generated) == (b.output_ids, b.stop_reason,
                                                                                  b.stats.n_generated), case
                    # every token a round committed is kept or counted as discarded, at most a chunk's tail
                    assert a.stats.rounds[0] == a.stats.n_generated + a.stats.discarded
                    assert 0 <= a.stats.discarded < chunk
                    assert a.stats.draft_calls == -(-a.stats.rounds[0] // chunk)
                    assert a.stats.as_row()["discarded_tokens"] == a.stats.discarded
                    assert 0 <= a.stats.draft_calls_ahead <= (a.stats.draft_calls - 1 if in_flight else 0), case
                    # the chunk queued past a row's stop: computed, dropped and reported, once per row
                    dropped = chunk if in_flight and a.stop_reason == "stop" and a.stats.n_generated < MAX_NEW else 0
                    assert a.stats.dropped_in_flight in ({0, dropped} if dropped else {0}), case
                    assert a.stats.as_row()["dropped_in_flight_tokens"] == a.stats.dropped_in_flight
                assert any(a.stats.discarded > 0 for a in got), case
                assert any(g.stats.draft_calls_ahead > 0 for g in got) == in_flight, case
                assert any(g.stats.dropped_in_flight > 0 for g in got) == in_flight, case
                if backend == "native-fixed" and batch == 1:  # every round was one chain on the device
                    assert len(chains) == sum(g.stats.draft_calls for g in got) and max(chains) == chunk
    assert all(g.stats.discarded == 0 for g in one)


def test_the_next_chunk_is_queued_before_this_chunk_is_read(codec, monkeypatch):
    """The order that takes the host's read and stop check off the device's path: chunk c + 1's
    launch comes before chunk c's tokens reach the host, and the launched chunk is the one taken."""
    from hsd_bench import engine as engine_module

    model = target_model("native-fixed")
    order = []
    launch, draft = model.launch_next_round, model.greedy_draft
    model.launch_next_round = lambda *a, **kw: order.append(("launch", a[2])) or launch(*a, **kw)
    model.greedy_draft = lambda *a, **kw: order.append(("take" if kw.get("launched") else "run", a[2])) or draft(*a, **kw)
    get = engine_module.HostValue.get
    monkeypatch.setattr(engine_module.HostValue, "get", lambda self: order.append(("read",)) or get(self))
    prompt = codec.encode(TEXTS[0])
    (gen,) = decode(model, codec, 4, [prompt], 1)
    n = len(prompt)
    assert gen.stop_reason == "max_new_tokens" and gen.stats.n_generated == MAX_NEW
    # 20 tokens in chunks of 4: the first run, four taken; each launched before the read before it
    expected = [("run", n)]
    for c in range(1, 5):
        expected += [("launch", n + 4 * c), ("read",), ("take", n + 4 * c)]
    assert order == expected  # the last chunk, with none after it, is read back the ordinary way
    assert gen.stats.draft_calls_ahead == 4 and gen.stats.discarded == 0


def test_sampled_chunks_draw_what_one_token_rounds_draw(codec):
    model = make_model("qwen2", num_layers=3, seed=2)
    prompts = [codec.encode(t) for t in TEXTS[:4]]
    sampling = DecodingConfig(temperature=1.0, seed=7)
    one = [g.output_ids for g in decode(model, codec, 1, prompts, 1, sampling)]
    assert [g.output_ids for g in decode(model, codec, 4, prompts, 1, sampling)] == one
    assert [g.output_ids for g in decode(model, codec, 4, prompts, 2, sampling)] == one


def test_default_chunk_follows_the_device():
    assert ar_chunk_for(None, "cpu") == 1
    assert ar_chunk_for(None, "cuda") == AR_CHUNK_CUDA > 1
    assert ar_chunk_for(5, "cuda") == 5


@pytest.mark.parametrize("bad", [0, -2, MAX_AR_CHUNK + 1, 2.5, True, "8"])
def test_bad_chunks_are_refused_naming_the_range(bad, tiny_run_cfg):
    with pytest.raises(ValueError, match=rf"ar_chunk={bad!r} must be an integer in 1\.\.{MAX_AR_CHUNK}"):
        ar_chunk_for(bad, "cpu")
    with pytest.raises(ValueError, match="ar_chunk="):
        validate_run_config({**tiny_run_cfg, "ar_chunk": bad}, hardware=False)


def test_the_default_chunk_names_nothing_in_the_run_hash(tiny_run_cfg):
    base = identity({**tiny_run_cfg, "ar_chunk": None})
    assert "ar_chunk" not in base
    assert identity({**tiny_run_cfg, "ar_chunk": 8})["ar_chunk"] == 8


def test_run_job_decodes_its_baseline_in_the_chunks_it_names(tiny_run_cfg):
    summary = runner.run_job({**tiny_run_cfg, "ar_chunk": 3}, log=lambda *_: None).summary
    assert summary["ar_chunk"] == 3
    assert summary["methods"]["layerskip"]["parity_exact"] == 1.0  # the same AR tokens, in chunks
    assert summary["methods"]["autoregressive"]["discarded_tokens"] >= 0
    default = runner.run_job(tiny_run_cfg, log=lambda *_: None).summary
    assert default["ar_chunk"] == 1  # CPU
