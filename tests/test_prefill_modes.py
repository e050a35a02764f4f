"""``model.prefill``: how the native backend runs a prompt longer than one graph step.

``auto`` (the default) prefills in fixed-shape chunks up to the number of chunks its
cost model says beat one eager pass (``auto_prefill_chunk_limit``), eagerly beyond.
The choice changes kernels, never tokens in float32, and a run's summary says what ran.
"""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_job_config
from hsd_bench import runner
from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import from_hf_model
from hsd_bench.models.native.model import auto_prefill_chunk_limit
from hsd_bench.validate import validate_run_config
from test_native_backend import VOCAB, make_hf_model

CHUNK = 4


def native_model(prefill: str = "auto", **kwargs):
    hf = make_hf_model("llama_gqa", num_layers=4, seed=5)
    return hf, from_hf_model(hf, max_context=64, fixed_shapes=True, max_graph_tokens=CHUNK, prefill=prefill, **kwargs)


def test_the_chunk_limit_falls_with_the_bytes_a_chunk_reads():
    # the shapes measured on the H200 (layers, weight bytes): 5.6 M, 294 M, 1B, 3B, 8B
    limits = [auto_prefill_chunk_limit(24, 11_284_736), auto_prefill_chunk_limit(24, 587_302_912),
              auto_prefill_chunk_limit(16, 2_471_628_800), auto_prefill_chunk_limit(28, 6_425_499_648),
              auto_prefill_chunk_limit(32, 15_009_849_344)]
    assert limits == [23, 18, 8, 6, 3]
    assert auto_prefill_chunk_limit(32, 10**12) == 0  # a model too large for any chunk to pay


def test_auto_chunks_only_where_there_are_graph_replays():
    for prefill in ("auto", "eager", "chunked"):
        _, model = native_model(prefill)  # fixed shapes on the CPU: no CUDA graphs
        assert model.prefill_chunk_limit is None and model.prefill == prefill
    _, model = native_model()
    model.prefill_chunk_limit = None
    assert not model._prefills_in_chunks(2 * CHUNK)


def test_auto_routes_a_prompt_by_its_number_of_chunks(monkeypatch):
    _, native = native_model()
    native.prefill_chunk_limit = 3
    calls = {"eager": 0, "fixed": 0}
    for attr, kind in (("_run_eager", "eager"), ("_run_fixed", "fixed")):
        original = getattr(native, attr)

        def counted(*args, _original=original, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(native, attr, counted)

    def runs(length: int) -> dict[str, int]:
        native.reset()
        before = dict(calls)
        native.run_layers(native.embed(torch.arange(length) % VOCAB), 0, native.num_layers, 0)
        return {k: calls[k] - before[k] for k in before}

    assert runs(3 * CHUNK) == {"eager": 0, "fixed": 3}  # at the limit: chunks
    assert runs(2 * CHUNK + 1) == {"eager": 0, "fixed": 3}  # the last chunk padded
    assert runs(3 * CHUNK + 1) == {"eager": 1, "fixed": 0}  # one chunk more: one eager pass
    assert runs(CHUNK) == {"eager": 0, "fixed": 1}  # one step is a decode step, whatever the mode
    native.prefill = "eager"
    assert runs(2 * CHUNK) == {"eager": 1, "fixed": 0}
    native.prefill = "chunked"
    assert runs(9 * CHUNK) == {"eager": 0, "fixed": 9}


@pytest.mark.parametrize("limit", [0, 2, 5])
def test_every_method_decodes_generates_tokens_whichever_way_the_prompt_runs(limit):
    """Prompts of 2-5 chunks against limits that send some to chunks and some to one eager pass."""
    hf, native = native_model()
    native.prefill_chunk_limit = limit
    for length in (6, 13, 19):
        prompt = torch.randint(0, VOCAB, (length,), generator=torch.Generator().manual_seed(length)).tolist()
        ref = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12)[0, length:].tolist()
        for spec in (MethodSpec("autoregressive"), MethodSpec("layerskip", exit=1, draft_len=3),
                     MethodSpec("hispec", exit=[1, 2], draft_len=2, period=3)):
            out = build_engine(spec, native, load_other=None).generate(prompt, 12, DecodingConfig()).output_ids
            assert out == ref, (spec.name, length, limit)


def test_run_config_names_the_prefill_and_the_summary_reports_it(tmp_path, monkeypatch):
    cfg = tiny_job_config(tmp_path, monkeypatch, "max_new_tokens=4", "dataset.limit=1", "method=layerskip", "exit=2")
    assert cfg["model"]["prefill"] == "auto"
    assert "prefill" not in runner.identity(cfg)["model"]  # the default names nothing in the run hash
    chunked = {**cfg, "model": {**cfg["model"], "prefill": "chunked"}}
    assert runner.identity(chunked)["model"]["prefill"] == "chunked"
    with pytest.raises(ValueError, match=r"model.prefill='graphs' is not one of auto, eager, chunked"):
        validate_run_config({**cfg, "model": {**cfg["model"], "prefill": "graphs"}}, hardware=False)
    summary = runner.run_job(chunked, log=lambda *_: None).summary
    # the tiny random model on the CPU runs on the native backend without graph steps
    assert list(summary["prefill"].values()) == [{"mode": "chunked", "chunk_tokens": None}]
    summary = runner.run_job(cfg, log=lambda *_: None).summary
    assert list(summary["prefill"].values()) == [{"mode": "auto", "chunk_tokens": None, "chunk_limit": None}]


def test_run_config_names_the_kernels_and_the_summary_reports_them(tmp_path, monkeypatch):
    """``model.matmul`` and ``model.attention``: the defaults name nothing in the run hash, others do;
    the summary says which kernels each model's one-row steps ran (``cublas`` and ``math`` here: a
    float32 CPU model never runs the Triton kernels, whatever the options ask)."""
    cfg = tiny_job_config(tmp_path, monkeypatch, "max_new_tokens=4", "dataset.limit=1", "method=layerskip", "exit=2")
    for key, default, other, bad, valid in (("matmul", "gemv", "cublas", "cutlass", "cublas, gemv"),
                                            ("attention", "triton", "math", "flash", "sdpa, math, triton")):
        assert cfg["model"][key] == default
        assert key not in runner.identity(cfg)["model"]
        assert runner.identity({**cfg, "model": {**cfg["model"], key: other}})["model"][key] == other
        with pytest.raises(ValueError, match=rf"model.{key}='{bad}' is not one of {valid}"):
            validate_run_config({**cfg, "model": {**cfg["model"], key: bad}}, hardware=False)
    summary = runner.run_job(cfg, log=lambda *_: None).summary
    assert list(summary["matmul"].values()) == ["cublas"]
    assert list(summary["attention"].values()) == ["math"]
