"""The native backend and the engine run in inference mode (models/native/inference.py): the
per-round fills, copies and views cost the host less there, most of all on tensors made in the
mode. These pin down that the buffers the decode path writes are such tensors, and that callers
need not enter the mode themselves."""
from __future__ import annotations

import torch

from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.inference import inference_only
from tests.test_native_backend import VOCAB, make_hf_model


def native(hf):
    return from_hf_model(hf, max_context=96, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16)


def test_the_buffers_the_decode_path_writes_are_inference_tensors():
    model = native(make_hf_model("llama_gqa", num_layers=3, seed=5))
    assert model._verdict_in.is_inference() and model._draft_ids.is_inference() and model._pos_base.is_inference()
    assert model.cache.k[0].is_inference()
    engine = build_engine(MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3), model, load_other=None)
    engine.generate([5, 9, 11, 3], 6, DecodingConfig())
    assert engine._tokens.is_inference()


def test_callers_need_not_enter_inference_mode():
    """With grad on, the engine and the model's steps enter the mode themselves, and decode as
    they do in it."""
    hf = make_hf_model("llama_gqa", num_layers=3, seed=5)
    spec = MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3)
    prompt = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(2)).tolist()
    with torch.enable_grad():
        assert not torch.is_inference_mode_enabled()
        out = build_engine(spec, native(hf), load_other=None).generate(prompt, 12, DecodingConfig()).output_ids
    with torch.inference_mode():
        again = build_engine(spec, native(hf), load_other=None).generate(prompt, 12, DecodingConfig()).output_ids
    assert out == again and len(out) == 12


def test_inference_only_enters_the_mode_only_when_it_is_off():
    seen = []

    @inference_only
    def probe():
        seen.append(torch.is_inference_mode_enabled())
        return torch.zeros(1)

    assert probe().is_inference() and not torch.is_inference_mode_enabled()
    with torch.inference_mode(False):
        probe()
    with torch.inference_mode():
        probe()
    assert seen == [True, True, True]
