"""Greedy losslessness: every method's ids equal autoregressive decoding's,
token for token, and equal transformers' own ``generate(do_sample=False)``."""

from __future__ import annotations

import pytest
import torch

from conftest import ARCHS, make_model
from hsd_bench.methods import MethodSpec, build_engine

PROMPTS = ["def add(a, b):", "The quick brown fox", "x"]
MAX_NEW = 24


def _engine(spec, target, codec, drafts):
    return build_engine(spec, target, lambda path: (drafts[path], codec), codec)


def _methods(depth: int) -> list[MethodSpec]:
    return [
        MethodSpec("layerskip", exit=1, draft_len=1),
        MethodSpec("layerskip", exit=depth // 2, draft_len=3),
        MethodSpec("layerskip", exit=depth - 1, draft_len=MAX_NEW + 10),  # gamma past the end
        MethodSpec("vanilla_sd", draft_path="small", draft_len=1),
        MethodSpec("vanilla_sd", draft_path="small", draft_len=5),
        MethodSpec("hispec", exit=[1, depth // 2], draft_len=2, period=4),
        MethodSpec("hispec", exit=[2, depth - 1], draft_len=3, period=2, flush_on_mismatch=True),
        MethodSpec("hispec", exit=[1, 3], draft_len=1, period=1),
        MethodSpec("hierarchy", levels=[{"path": "small", "batch": 2}, {"path": "target", "exit": depth // 2, "batch": 3}]),
        MethodSpec("hierarchy", levels=[{"path": "small", "batch": 3}, {"path": "mid", "batch": 2}]),
        MethodSpec("hierarchy", levels=[{"path": "target", "exit": 1, "batch": 2}, {"path": "mid", "batch": 4},
                                        {"path": "target", "exit": depth - 2, "batch": 2}]),
    ]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("deep_scale", [1.0, 0.2])
def test_every_method_matches_autoregressive_and_hf_generate(arch, deep_scale, codec):
    target = make_model(arch, num_layers=6, seed=1, deep_scale=deep_scale)
    drafts = {"small": make_model(arch, num_layers=2, seed=2, name="small"),
              "mid": make_model(arch, num_layers=3, seed=3, deep_scale=deep_scale, name="mid")}
    ar = _engine(MethodSpec("autoregressive"), target, codec, drafts)
    engines = [(s, _engine(s, target, codec, drafts)) for s in _methods(target.num_layers)]
    accepted_somewhere = 0
    for prompt in PROMPTS:
        ids = codec.encode(prompt)
        expected = ar.generate(ids, MAX_NEW).output_ids
        hf = target.hf_model.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False,
                                      eos_token_id=None, pad_token_id=0)[0, len(ids):].tolist()
        assert expected == hf
        for spec, engine in engines:
            gen = engine.generate(ids, MAX_NEW)
            assert gen.output_ids == expected, (spec, prompt)
            accepted_somewhere += sum(gen.stats.accepted)
    # the accept paths were exercised, not only rejections
    assert accepted_somewhere > 0


def test_mistral_sliding_window_is_respected(codec):
    # the random Mistral has a 12-token window; a 40-token prompt crosses it
    target = make_model("mistral", num_layers=4, seed=5, deep_scale=0.3)
    ids = codec.encode("a sliding window shorter than this prompt ")
    ar = build_engine(MethodSpec("autoregressive"), target, None, codec).generate(ids, 16).output_ids
    hf = target.hf_model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=None,
                                  pad_token_id=0)[0, len(ids):].tolist()
    ls = build_engine(MethodSpec("layerskip", exit=2, draft_len=4), target, None, codec).generate(ids, 16).output_ids
    assert ar == hf == ls


def test_eos_stops_generation_at_the_same_token(codec):
    target = make_model("llama", num_layers=4, seed=1, deep_scale=0.3)
    ids = codec.encode("hello")
    free = build_engine(MethodSpec("autoregressive"), target, None, codec).generate(ids, 20).output_ids
    eos = free[5]  # pretend the 6th generated token is EOS
    for spec in [MethodSpec("autoregressive"), MethodSpec("layerskip", exit=1, draft_len=4),
                 MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3)]:
        engine = build_engine(spec, target, None, codec)
        engine.eos_token_ids = {eos}
        gen = engine.generate(ids, 20)
        assert gen.output_ids == free[: free.index(eos) + 1]
        assert gen.stop_reason == "stop"


def test_stop_sequence_cuts_output_identically(codec):
    target = make_model("qwen2", num_layers=4, seed=3, deep_scale=0.3)
    ids = codec.encode("stop here")
    free = build_engine(MethodSpec("autoregressive"), target, None, codec).generate(ids, 30).output_ids
    text = codec.decode(free)
    stop = text[8:10]  # a string that occurs in the output
    outs = [build_engine(s, target, None, codec).generate(ids, 30, stop_sequences=[stop], tokenizer=codec).output_ids
            for s in [MethodSpec("autoregressive"), MethodSpec("layerskip", exit=2, draft_len=5)]]
    assert outs[0] == outs[1]
    assert stop in codec.decode(outs[0]) and len(outs[0]) < len(free)


def test_max_new_tokens_is_exact_for_every_method(codec):
    target = make_model("llama", num_layers=4, seed=1, deep_scale=0.2)
    ids = codec.encode("count")
    for spec in [MethodSpec("autoregressive"), MethodSpec("layerskip", exit=1, draft_len=7),
                 MethodSpec("hispec", exit=[1, 2], draft_len=3, period=5)]:
        for n in (1, 2, 9):
            assert len(build_engine(spec, target, None, codec).generate(ids, n).output_ids) == n


def test_generation_stops_at_the_context_length(codec):
    target = make_model("llama", num_layers=2, seed=1)  # max_position_embeddings = 512
    engine = build_engine(MethodSpec("layerskip", exit=1, draft_len=4), target, None, codec)
    engine.eos_token_ids = set()
    gen = engine.generate([1] * 505, 20)
    assert len(gen.output_ids) == 512 - 505 and gen.stop_reason == "context"
    assert engine.generate([1] * 5, 3).stop_reason == "max_new_tokens"
