"""Bad input fails before any generation, naming the value and the valid range."""

from __future__ import annotations

import pytest

from conftest import make_model
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.loading import ModelSpec, load_model
from hsd_bench.models.tokenizer import TextCodec
from hsd_bench.sampling import DecodingConfig


@pytest.fixture(scope="module")
def target():
    return make_model("llama", num_layers=4, seed=0)


def _build(spec, target, codec=None, other=None):
    codec = codec or TextCodec()
    return build_engine(spec, target, lambda path: other or (make_model("llama", 2, name=path), codec), codec)


@pytest.mark.parametrize("exit_", [0, 4, 9, -1])
def test_layerskip_exit_out_of_range(exit_, target):
    with pytest.raises(ValueError, match=rf"exit={exit_}.*1\.\.3.*4 layers"):
        _build(MethodSpec("layerskip", exit=exit_), target)


def test_hispec_exits_must_be_ordered_and_in_range(target):
    with pytest.raises(ValueError, match=r"E_d < E_v"):
        _build(MethodSpec("hispec", exit=[2, 1]), target)
    with pytest.raises(ValueError, match=r"exit\[1\] \(E_v\)=16 .*1\.\.3"):
        _build(MethodSpec("hispec", exit=[8 // 4, 16]), target)
    with pytest.raises(ValueError, match=r"two exits"):
        _build(MethodSpec("hispec", exit=3), target)


@pytest.mark.parametrize("gamma", [0, -2])
def test_draft_length_below_one(gamma, target):
    with pytest.raises(ValueError, match=rf"method.draft_len={gamma} must be an integer >= 1"):
        _build(MethodSpec("layerskip", exit=1, draft_len=gamma), target)


def test_unknown_method_and_verifier(target):
    with pytest.raises(ValueError, match=r"unknown method 'medusa'.*valid methods: autoregressive"):
        _build(MethodSpec("medusa"), target)
    with pytest.raises(ValueError, match=r"unknown verifier 'magic'.*tokenwise"):
        _build(MethodSpec("layerskip", exit=1, verifier="magic"), target)


def test_draft_with_another_vocabulary(target):
    other = make_model("llama", 2, vocab_size=300, name="other")
    with pytest.raises(ValueError, match=r"vocabulary of 300 tokens but the target has 258"):
        _build(MethodSpec("vanilla_sd", draft_path="other"), target, other=(other, TextCodec(vocab_size=300)))


def test_draft_with_another_tokenizer(target):
    class OtherCodec(TextCodec):
        def vocab_fingerprint(self):
            return ("other",)

    other = make_model("llama", 2, name="other")
    with pytest.raises(ValueError, match=r"different tokenizer"):
        _build(MethodSpec("vanilla_sd", draft_path="other"), target, other=(other, OtherCodec()))


def test_vanilla_sd_without_a_draft(target):
    with pytest.raises(ValueError, match=r"method.draft.path"):
        _build(MethodSpec("vanilla_sd"), target)


def test_empty_and_too_long_prompts(target):
    engine = _build(MethodSpec("layerskip", exit=1), target)
    with pytest.raises(ValueError, match=r"empty prompt"):
        engine.generate([], 4)
    with pytest.raises(ValueError, match=r"prompt of 600 tokens .* shorter than 512"):
        engine.generate([1] * 600, 4)
    with pytest.raises(ValueError, match=r"max_new_tokens=0"):
        engine.generate([1, 2], 0)


def test_bad_decoding_settings():
    with pytest.raises(ValueError, match=r"temperature=-1"):
        DecodingConfig(temperature=-1)
    with pytest.raises(ValueError, match=r"top_p=0"):
        DecodingConfig(top_p=0)


def test_unknown_model_names_the_override():
    with pytest.raises(ValueError, match=r"model.path='no-such/model-xyz'.*Hub.*model.path=<local checkpoint dir>"):
        load_model(ModelSpec("no-such/model-xyz"))
    with pytest.raises(ValueError, match=r"unknown random architecture 'gpt2'"):
        load_model(ModelSpec("random:gpt2"))
    with pytest.raises(ValueError, match=r"model.dtype='float8'"):
        load_model(ModelSpec("random:llama", dtype="float8"))
