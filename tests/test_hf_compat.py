"""The HF backend's transformers internals, each probed at load.

Every case breaks one internal the way a transformers release could (a
renamed keyword, a mask that is not honoured, a rotary call or return type
that changed) and checks that *loading* fails with a message naming the
installed transformers version and the tested releases -- before a sample is
generated, never a wrong answer.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from hydra import compose, initialize_config_dir

from conftest import ARCHS
from hsd_bench import runner
from hsd_bench.config import register_schemas
from hsd_bench.models import hf_compat
from hsd_bench.models.hf_backend import HFLayeredModel
from hsd_bench.models.loading import build_random_model
from test_run_command import ROOT, TINY


def _version_message(err: Exception) -> None:
    text = str(err)
    assert f"transformers {transformers.__version__}" in text
    assert all(v in text for v in hf_compat.TESTED_TRANSFORMERS)


@pytest.mark.parametrize("arch", ARCHS)
def test_probe_passes_and_leaves_the_cache_empty(arch):
    model = HFLayeredModel(build_random_model(arch, num_layers=2))
    assert model._cache_kwarg in hf_compat.CACHE_KWARGS
    assert model.cache.lengths == [0, 0]


def test_cache_keyword_follows_the_signature():
    class New(torch.nn.Module):
        def forward(self, hidden_states, cache=None, **kwargs): ...

    class Old(torch.nn.Module):
        def forward(self, hidden_states, past_key_values=None, **kwargs): ...

    class Older(torch.nn.Module):
        def forward(self, hidden_states, past_key_value=None, **kwargs): ...

    class Unknown(torch.nn.Module):
        def forward(self, hidden_states, kv_store=None, **kwargs): ...

    assert hf_compat.cache_kwarg(New()) == "cache"
    assert hf_compat.cache_kwarg(Old()) == "past_key_values"
    assert hf_compat.cache_kwarg(Older()) == "past_key_value"
    with pytest.raises(hf_compat.TransformersDriftError, match="none of the cache keywords") as err:
        hf_compat.cache_kwarg(Unknown())
    _version_message(err.value)


def test_a_swallowed_cache_keyword_fails_at_load(monkeypatch):
    # What transformers 5.24 did to 5.23's adapter: the layer takes an unknown
    # keyword into **kwargs and the harness's cache is never written.
    monkeypatch.setattr(hf_compat, "cache_kwarg", lambda layer: "past_key_value_renamed")
    with pytest.raises(hf_compat.TransformersDriftError, match="left 0 positions") as err:
        HFLayeredModel(build_random_model("llama", num_layers=2))
    _version_message(err.value)


def test_a_mask_that_is_not_honoured_fails_at_load(monkeypatch):
    hf = build_random_model("mistral", num_layers=2)
    for layer in hf.model.layers:
        forward = layer.forward

        def drop_mask(*args, _forward=forward, **kwargs):
            kwargs["attention_mask"] = None  # attention falls back to plain causal
            return _forward(*args, **kwargs)

        layer.forward = drop_mask
    with pytest.raises(hf_compat.TransformersDriftError, match="mask") as err:
        HFLayeredModel(hf)
    _version_message(err.value)


def test_a_changed_rotary_call_fails_at_load():
    hf = build_random_model("llama", num_layers=2)

    class OneTensor(torch.nn.Module):  # one tensor, not (cos, sin)
        def __init__(self, rotary):
            super().__init__()
            self.rotary = rotary

        def forward(self, x, pos):
            return torch.cat(self.rotary(x, pos), dim=-1)

    hf.model.rotary_emb = OneTensor(hf.model.rotary_emb)
    with pytest.raises(hf_compat.TransformersDriftError, match="rotary_emb") as err:
        HFLayeredModel(hf)
    _version_message(err.value)


def test_a_changed_return_type_fails_at_load():
    hf = build_random_model("qwen2", num_layers=2)
    layer = hf.model.layers[0]
    forward = layer.forward
    layer.forward = lambda *a, **k: {"hidden_states": forward(*a, **k)}
    with pytest.raises(hf_compat.TransformersDriftError, match="returned dict") as err:
        HFLayeredModel(hf)
    _version_message(err.value)


def test_a_missing_module_fails_at_load():
    hf = build_random_model("llama", num_layers=2)
    del hf.model.rotary_emb
    with pytest.raises(hf_compat.TransformersDriftError, match="no `rotary_emb`") as err:
        HFLayeredModel(hf)
    _version_message(err.value)


def test_run_stops_before_any_sample_with_the_version_message(tmp_path, monkeypatch, capsys):
    # backend=hf named: `auto` picks the native backend, which never calls transformers' layers.
    monkeypatch.setattr(hf_compat, "cache_kwarg", lambda layer: "no_such_cache_kwarg")
    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "model.backend=hf", f"results_dir={tmp_path}",
                                                 "method=layerskip", "exit=2"])
    before = runner.GENERATIONS_RUN
    with pytest.raises(hf_compat.TransformersDriftError) as err:
        runner.run_job(cfg)
    assert runner.GENERATIONS_RUN == before
    _version_message(err.value)
    assert not list(tmp_path.glob("*/rows.jsonl"))
