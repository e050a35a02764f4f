"""The one-row add + RMSNorm kernel (``models/native/add_norm.py``) computes eager's residual add
and HF's RMSNorm, and a native model's one-row steps run it where it applies.

It runs here as the GPU runs it, through Triton's CPU interpreter (conftest.py); the interpreter
truncates where the GPU rounds float32 to bfloat16, so results are compared within bfloat16
spacings. Its sm_90 compile (and the order of its loads and waits) is checked with the other
kernels in test_decode_attention.py; the GPU's own check is ``bench_gpu.py --parts smoke``.
"""

from __future__ import annotations

import os

import pytest
import torch

from hsd_bench.models.native import add_norm, from_hf_model, gemv
from hsd_bench.models.native.layers import rms_norm
from test_gemv import close_in_bf16, randn, tiny_model

if os.environ.get("HSD_REQUIRE_TRITON") == "1":  # .ci/run: the dev install has Triton; never skip there
    import triton  # noqa: F401
else:
    pytest.importorskip("triton", reason="the add + norm kernel is a Triton kernel (dev extra, Linux)")

BF16 = torch.bfloat16


@pytest.fixture(autouse=True)
def interpreted(monkeypatch):
    assert gemv.interpreted(), "conftest.py turns Triton's interpreter on before triton is imported"
    monkeypatch.setattr(gemv, "CPU_INTERPRETER", [True])
    assert gemv.register() and add_norm.register()


@pytest.mark.parametrize("k", [64, 100, 4096])
def test_add_and_norm_match_eager(k):
    """Rows of a power of two and ragged ones: the sum as eager rounds it, the normalised row within
    a bfloat16 spacing; without ``delta`` the norm of ``x`` itself, and ``x`` handed back."""
    x, delta, weight = randn(1, 1, k, seed=1), randn(1, 1, k, seed=2), 1 + 0.3 * randn(k, seed=3)
    y, x_sum = add_norm.add_rms_norm(x, delta, weight, 1e-5)
    assert y.shape == x_sum.shape == x.shape
    close_in_bf16(x_sum, x + delta, ulps=1)
    close_in_bf16(y, rms_norm(x + delta, weight, 1e-5))
    scaled = x * 50
    y2, same = add_norm.add_rms_norm(scaled, None, weight, 1e-5)  # the scale divides out
    assert same is scaled
    close_in_bf16(y2, rms_norm(x, weight, 1e-5))


def test_bad_operands_are_refused():
    x = randn(32, seed=4)
    with pytest.raises(ValueError, match=r"weight has 31 elements, the row has 32"):
        add_norm.launch(x, None, randn(31, seed=5), 1e-5, torch.empty(32, dtype=BF16))
    with pytest.raises(ValueError, match=r"x_sum, which is missing"):
        add_norm.launch(x, x, x, 1e-5, torch.empty(32, dtype=BF16))
    wide = torch.zeros(add_norm.MAX_WIDTH + 1, dtype=BF16)
    with pytest.raises(ValueError, match=rf"a row of {add_norm.MAX_WIDTH + 1} elements; the kernel takes 1 to"):
        add_norm.launch(wide, None, wide, 1e-5, torch.empty_like(wide))
    assert not add_norm.kernel_applies(randn(1, 2, 32, seed=6)) and not add_norm.kernel_applies(torch.ones(1, 1, 32))


def test_the_device_check_a_gpu_run_makes():
    check = add_norm.check_against_eager(96, torch.device("cpu"))
    assert check["k"] == 96 and check["rel_err"] <= 2.0**-7


@pytest.mark.parametrize("arch", ["llama_gqa", "qwen2_bias"])
def test_native_steps_take_the_kernel_up_to_its_width(monkeypatch, arch):
    """A bfloat16 native model's one-row steps run the add + norm kernel twice per layer and agree
    with the cuBLAS model's within bfloat16 rounding; rows wider than ``MAX_HIDDEN`` (here every
    row) take the compiled norms instead, and agree the same way."""
    launches = []
    real = add_norm.launch
    monkeypatch.setattr(add_norm, "launch", lambda *a, **k: (launches.append(1), real(*a, **k))[1])
    hf = tiny_model(arch)
    ids = torch.tensor([3, 17, 42, 5, 60])
    out, default = {}, add_norm.MAX_HIDDEN
    for kind, widest in (("cublas", default), ("gemv", default), ("gemv", 0)):
        monkeypatch.setattr(add_norm, "MAX_HIDDEN", widest)
        m = from_hf_model(hf, max_context=32, fixed_shapes=True, max_graph_tokens=4, matmul=kind)
        m.run_layers(m.embed(ids[:4]), 0, 2, 0)  # 4 rows: plain PyTorch in every model
        before = len(launches)
        out[kind, widest] = m.run_layers(m.embed(ids[4:5]), 0, 2, 4)
        on_kernel = kind == "gemv" and widest > 0
        assert len(launches) - before == (2 * 2 if on_kernel else 0)  # two layers, before attention and MLP
    ref = out["cublas", default]
    close_in_bf16(out["gemv", default], ref, ulps=8)
    close_in_bf16(out["gemv", 0], ref, ulps=8)
