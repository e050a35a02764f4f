"""The one-row GEMV kernel (``models/native/gemv.py``) computes what eager PyTorch computes.

The kernel runs here exactly as the GPU runs it, through Triton's CPU interpreter
(``TRITON_INTERPRET=1``, set by conftest.py before triton is imported): same program, same masks and
tails, same gate/up epilogue. The interpreter truncates where the GPU rounds to nearest-even when it
casts float32 to bfloat16, so results are compared within a couple of bfloat16 ulps
(a wrong offset, mask, bias or norm is off by far more); the GPU's own check of the
same forms against eager is ``scripts/bench_gemv.py`` (docs/performance.md).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from hsd_bench.models.native import from_hf_model, gemv
from test_native_backend import make_hf_model

if os.environ.get("HSD_REQUIRE_TRITON") == "1":  # .ci/run: the dev install has Triton; never skip there
    import triton  # noqa: F401
else:
    pytest.importorskip("triton", reason="the GEMV kernel is a Triton kernel (dev extra, Linux)")

BF16 = torch.bfloat16
SMALL_TILES = gemv.GemvConfig(block_n=8, block_k=64)  # few interpreted programs per call


@pytest.fixture(autouse=True)
def interpreted(monkeypatch):
    assert gemv.interpreted(), "conftest.py turns Triton's interpreter on before triton is imported"
    monkeypatch.setattr(gemv, "CPU_INTERPRETER", [True])
    assert gemv.register()


def close_in_bf16(got: torch.Tensor, ref: torch.Tensor, ulps: float = 2.0) -> None:
    """``got`` within ``ulps`` bfloat16 spacings of ``ref``'s largest value: each path rounds its
    operands on its own (the truncating interpreter one spacing further per cast), and a small
    result of large operands keeps their rounding."""
    got, ref = got.float(), ref.float()
    err, tol = (got - ref).abs().max(), ulps * ref.abs().max() * 2.0**-7
    assert err <= tol, f"max error {err:.4g} > {tol:.4g} ({ulps} bf16 spacings of |ref| max {ref.abs().max():.4g})"


def randn(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(BF16)


@pytest.mark.parametrize("n, k", [(40, 128), (37, 100), (8, 300)], ids=["even", "ragged", "long_k"])
@pytest.mark.parametrize("bias", [False, True])
def test_projection_matches_eager(n, k, bias):
    """Every tile shape -- those that divide N and K and those that leave tails -- gives eager's result."""
    x, w = randn(k, seed=1), randn(n, k, seed=2) * k**-0.5
    b = randn(n, seed=3) if bias else None
    ref = F.linear(x.float(), w.float(), None if b is None else b.float())
    # The last tiles' slice covers K for two of the shapes: the one-slice path (no loop).
    for cfg in (SMALL_TILES, gemv.GemvConfig(block_n=1, block_k=32), gemv.GemvConfig(block_n=16, block_k=256)):
        y = torch.full((n,), float("nan"), dtype=BF16)
        gemv.launch(x, w, b, y, cfg)
        close_in_bf16(y, ref)


@pytest.mark.parametrize("bias", [False, True])
def test_gate_up_silu_is_the_mlp_activation(monkeypatch, bias):
    """``silu(gate) * up`` of the stacked gate/up projection, each program pairing gate row j with up
    row j: eager's activation of eager's projections, for tiles of one and of several pairs and a
    row count that leaves a tail, with the row in slices and in one."""
    k, inter = 96, 37
    x, w = randn(1, 1, k, seed=30), randn(2 * inter, k, seed=31) * k**-0.5
    b = randn(2 * inter, seed=32) if bias else None
    gate, up = F.linear(x, w, b).chunk(2, dim=-1)
    ref = F.silu(gate.float()) * up.float()
    for tiles in (gemv.GemvConfig(block_n=2, block_k=32), gemv.GemvConfig(block_n=8, block_k=64),
                  gemv.GemvConfig(block_n=4, block_k=128)):  # the last: one slice covers K
        monkeypatch.setattr(gemv, "default_config", lambda n, k, tiles=tiles: tiles)
        got = gemv.gate_up_silu(x, w, b)
        assert got.shape == (1, 1, inter)
        close_in_bf16(got, ref, ulps=4)  # gate, up and the product: each truncated here
    assert torch.equal(gemv.gate_up_silu(x.float(), w.float()), F.silu(F.linear(x.float(), w.float()).chunk(2, -1)[0])
                       * F.linear(x.float(), w.float()).chunk(2, -1)[1])  # float32: F.linear, bit for bit


def test_operands_that_do_not_fit_are_refused():
    w = randn(16, 32, seed=20)
    with pytest.raises(ValueError, match=r"x has 31 elements, the matrix \[16, 32\] needs 32"):
        gemv.launch(randn(31, seed=21), w, None, torch.empty(16, dtype=BF16))
    with pytest.raises(ValueError, match=r"bias has 15 elements, the matrix \[16, 32\] needs 16"):
        gemv.launch(randn(32, seed=21), w, randn(15, seed=22), torch.empty(16, dtype=BF16))
    with pytest.raises(ValueError, match=r"gate_up needs an even number of rows \(got 15\)"):
        gemv.launch(randn(32, seed=21), w[:15], None, torch.empty(7, dtype=BF16), gate_up=True)


def test_only_one_row_half_precision_steps_take_the_kernel(monkeypatch):
    """More rows, float32 (whose products the kernel would round differently from cuBLAS), or a
    CPU tensor without the interpreter: ``linear`` is ``F.linear`` itself, bit for bit."""
    w = randn(16, 32, seed=12)
    assert gemv.kernel_applies(randn(1, 1, 32, seed=13), w)
    for x, weight in ((randn(1, 2, 32, seed=14), w), (torch.randn(1, 1, 32), w.float())):
        assert not gemv.kernel_applies(x, weight)
        assert torch.equal(gemv.linear(x, weight), F.linear(x, weight))
    monkeypatch.setattr(gemv, "CPU_INTERPRETER", [False])
    assert not gemv.kernel_applies(randn(1, 1, 32, seed=13), w)


def test_the_op_traces_for_torch_compile(monkeypatch):
    """``torch.compile(fullgraph=True)`` keeps the op as one call (its fake implementation gives the
    shapes): compiled and eager calls of a layer's projections give the same bits."""
    monkeypatch.setattr(gemv, "default_config", lambda n, k: SMALL_TILES)
    k, n = 64, 40
    x, w = randn(1, 1, k, seed=15), randn(2 * n, k, seed=17) * k**-0.5
    w_out = randn(k, n, seed=19) * n**-0.5

    def block(x):
        return gemv.linear(gemv.gate_up_silu(x, w), w_out)

    assert torch.equal(block(x), torch.compile(block, backend="aot_eager", fullgraph=True)(x))


def tiny_model(arch: str):
    """test_native_backend's randomised fixture model (biases and norm weights too), two layers, bf16."""
    return make_hf_model(arch, num_layers=2).to(BF16)


@pytest.mark.parametrize("arch", ["llama_gqa", "qwen2_bias", "qwen3_qknorm"])
def test_native_steps_on_the_kernel_match_cublas(monkeypatch, arch):
    """A bfloat16 native model with ``matmul="gemv"`` against the same model with ``"cublas"``:
    one-row steps (the kernel, and add_norm's: q/k/v bias, q/k norms, residual stream across layers
    and ranges) agree within bfloat16 rounding; steps of more rows run ``F.linear`` and agree exactly."""
    monkeypatch.setattr(gemv, "default_config", lambda n, k: SMALL_TILES)
    hf = tiny_model(arch)
    models = {kind: from_hf_model(hf, max_context=32, fixed_shapes=True, max_graph_tokens=4, matmul=kind)
              for kind in ("cublas", "gemv")}
    assert {k: m.matmul_kernel() for k, m in models.items()} == {"cublas": "cublas", "gemv": "gemv"}
    ids = torch.tensor([3, 17, 42, 5, 60, 8])
    out = {}
    for kind, m in models.items():
        h = m.run_layers(m.embed(ids[:4]), 0, 2, 0)  # 4 rows: F.linear in both
        one = m.run_layers(m.embed(ids[4:5]), 0, 1, 4)  # one row, split across two ranges
        one = m.run_layers(one, 1, 2, 4)
        last = m.run_layers(m.embed(ids[5:6]), 0, 2, 5)
        out[kind] = (h, one, last)
    assert torch.equal(out["gemv"][0], out["cublas"][0])
    for got, ref in zip(out["gemv"][1:], out["cublas"][1:]):
        close_in_bf16(got, ref, ulps=8)  # two layers of bfloat16 roundings, each path its own
    assert not torch.equal(out["gemv"][1], out["cublas"][1]), "the one-row steps did not run the kernel"


def test_matmul_option_is_checked():
    hf = tiny_model("llama_gqa")
    with pytest.raises(ValueError, match=r"matmul='cutlass' must be one of cublas, gemv"):
        from_hf_model(hf, max_context=32, matmul="cutlass")
    assert from_hf_model(hf.float(), max_context=32, fixed_shapes=True).matmul_kernel() == "cublas"  # float32


def test_the_device_check_a_gpu_run_makes():
    """``check_against_eager`` (what ``bench_gpu.py --parts smoke`` runs on the GPU) on the interpreter."""
    check = gemv.check_against_eager(24, 64, torch.device("cpu"))
    assert (check["n"], check["k"]) == (24, 64) and check["linear_rel_err"] <= 2.0**-7
    # the gate/up form: the interpreter's truncations all lean one way (gate's, up's and the
    # product's); a wrong pairing of gate and up rows is off by the values themselves
    assert check["gate_up_silu_rel_err"] <= 2.0**-4


def test_kernels_launch_early_only_where_the_gpu_and_triton_can(monkeypatch):
    """Programmatic dependent launch: on CUDA devices of compute capability 9.0 or later with a
    Triton that has it (the constraints' does), never on CPU or through the interpreter, and off
    when PROGRAMMATIC_LAUNCH says so -- then the kernels are launched plainly."""
    assert gemv._triton_launches_early()
    assert not gemv.programmatic_launch(torch.device("cpu"))
    assert gemv.launch_options(torch.device("cpu")) == {"PDL": False}
    assert not gemv.programmatic_launch(torch.device("cuda", 0))  # the interpreter is on in these tests
    monkeypatch.setattr(gemv, "interpreted", lambda: False)
    monkeypatch.setattr(gemv, "_capability", lambda index: (8, 0))
    assert not gemv.programmatic_launch(torch.device("cuda", 0))  # an A100
    monkeypatch.setattr(gemv, "_capability", lambda index: (9, 0))
    assert gemv.launch_options(torch.device("cuda", 0)) == {"PDL": True, "launch_pdl": True}
    monkeypatch.setattr(gemv, "PROGRAMMATIC_LAUNCH", [False])
    assert not gemv.programmatic_launch(torch.device("cuda", 0))


def pow2(v: int) -> bool:
    """Whether ``v`` is a block size or warp count Triton builds: a positive power of two."""
    return v > 0 and v & (v - 1) == 0


def test_tuned_tiles_are_tiles_triton_builds():
    """Every measured tile is one Triton can build (power-of-two blocks, warps) and reads each
    weight row once: a one-slice tile's slice covers the row, a sliced one's is narrower than it.
    A typo in the table would otherwise surface only as a compile error on a GPU."""
    for (n, k), (block_n, block_k, warps) in gemv.TUNED_TILES.items():
        cfg = gemv.default_config(n, k)
        assert (cfg.block_n, cfg.block_k, cfg.num_warps) == (block_n, block_k, warps)
        assert pow2(block_n) and pow2(block_k) and pow2(warps) and warps <= 32, (n, k)
        assert block_k < 2 * k, f"({n}, {k}): a slice of {block_k} is more than twice the row"
    assert gemv.default_config(384, 128) == gemv.GemvConfig(2, 1024, 4)  # unmeasured: one slice up to 1024


def test_bench_gemv_sweep_reaches_the_one_slice_tiles():
    """``scripts/bench_gemv.py --sweep`` times the one-slice family the committed tiles come from
    (``block_k`` covering the row), the default first and no tile twice; without ``--sweep`` only
    the default."""
    from conftest import load_script

    bench = load_script("bench_gemv")
    for n, k in ((6144, 4096), (2048, 8192), (4096, 14336), (384, 128), (1000, 1000)):
        configs = bench.sweep_configs(n, k, True)
        assert configs[0] == gemv.default_config(n, k) and len(set(configs)) == len(configs)
        whole = [c for c in configs if c.block_k >= k]
        assert {(c.block_n, c.num_warps) for c in whole} >= {(1, 8), (2, 8), (1, 16)}, (n, k)
        assert all(pow2(c.block_k) for c in configs)
        # sliced loops, or one slice of the row's power-of-two width: nothing wider
        assert all(c.block_k < k or c.block_k == 1 << (k - 1).bit_length() for c in configs[1:])
    # the 8B down's committed tile (one slice of 16384 for 14336 columns) is one the grid holds
    assert gemv.GemvConfig(*gemv.TUNED_TILES[(4096, 14336)]) in bench.sweep_configs(4096, 14336, True)
    assert bench.sweep_configs(6144, 4096, False) == [gemv.default_config(6144, 4096)]
