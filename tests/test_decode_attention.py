"""The one-row decode attention kernel (``models/native/decode_attention.py``) computes what the
compiled "math" attention computes, and writes the cache slot it is given and no other.

It runs here as the GPU runs it, through Triton's CPU interpreter (conftest.py): same programs,
masks, chunks and in-kernel merge (the interpreter runs the programs one after another, so the
last program of a head is the one that merges, as on a GPU in some order). Where the interpreter
is lenient -- it lets a kernel through that the GPU compiler refuses -- the last test compiles the
kernels for a Hopper GPU without one. The GPU's own check is ``bench_gpu.py --parts smoke``.
"""

from __future__ import annotations

import os

import pytest
import torch

from hsd_bench.models.native import decode_attention, from_hf_model, gemv
from hsd_bench.models.native.layers import argmax_rows
from test_native_backend import make_hf_model

if os.environ.get("HSD_REQUIRE_TRITON") == "1":  # .ci/run: the dev install has Triton; never skip there
    import triton  # noqa: F401
else:
    pytest.importorskip("triton", reason="the decode attention kernel is a Triton kernel (dev extra, Linux)")

BF16 = torch.bfloat16
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def interpreted(monkeypatch):
    assert gemv.interpreted(), "conftest.py turns Triton's interpreter on before triton is imported"
    monkeypatch.setattr(gemv, "CPU_INTERPRETER", [True])
    assert decode_attention.register()


def small_chunks(block_n: int, chunk: int):
    return lambda kv_len, head_dim: decode_attention.AttentionConfig(block_n, chunk, 4)


@pytest.mark.parametrize(
    "heads, kv_heads, head_dim, kv_len, window, tiles",
    [
        (8, 2, 32, 160, 0, None),  # one program per KV head, three 64-slot blocks
        (8, 2, 32, 160, 0, (16, 32)),  # five chunks merged in the kernel
        (4, 4, 16, 300, 0, (16, 16)),  # 19 chunks: the merge takes them eight at a time; one query head per KV head
        (14, 2, 16, 96, 0, (16, 32)),  # seven query heads per KV head (rows padded to a power of two)
        (8, 2, 32, 160, 40, (16, 32)),  # a sliding window: chunks before it contribute nothing
        (8, 2, 32, 160, 40, None),
    ],
    ids=["one_program", "merged", "many_chunks", "group_of_7", "window_merged", "window"],
)
def test_kernel_matches_the_math_attention(monkeypatch, heads, kv_heads, head_dim, kv_len, window, tiles):
    """At the first and last slot and either side of a chunk boundary: the RoPE'd key and the value
    land in slot ``pos`` (and nowhere else), and the output is the masked attention's within one
    bfloat16 spacing (``check_against_eager``, what the GPU smoke runs)."""
    if tiles:
        monkeypatch.setattr(decode_attention, "default_config", small_chunks(*tiles))
    positions = tuple(sorted({0, 31, 32, 33, kv_len // 2, kv_len - 1}))
    check = decode_attention.check_against_eager(heads, kv_heads, head_dim, kv_len, CPU, positions, window, seed=3)
    assert check["cache_write_equal"] and check["other_slots_untouched"], check
    assert check["rel_err"] <= 2.0**-7, check
    assert check["passed"]


def test_merged_launches_leave_the_counters_at_zero(monkeypatch):
    """A captured step replays the same launch: the per-head arrival counters must be zero again
    after every launch, or the next replay would merge at the wrong arrival."""
    monkeypatch.setattr(decode_attention, "default_config", small_chunks(16, 16))
    decode_attention.check_against_eager(8, 2, 16, 128, CPU, (5, 70, 127))
    assert not decode_attention.counters(CPU).any()


def test_a_wrong_position_range_is_visible(monkeypatch):
    """The check itself can fail: a kernel that also scored the slot after ``pos`` (stale cache
    contents) is off by far more than rounding."""
    monkeypatch.setattr(decode_attention, "default_config", small_chunks(16, 32))
    real = decode_attention.launch

    def one_slot_too_far(q, k, v, cos, sin, pos, *args, **kwargs):
        real(q, k, v, cos, sin, pos, *args, **kwargs)  # writes slot pos
        real(q, k, v, cos, sin, pos + 1, *args, **kwargs)  # and attends over one slot more

    monkeypatch.setattr(decode_attention, "launch", one_slot_too_far)
    check = decode_attention.check_against_eager(8, 2, 32, 96, CPU, (10, 50))
    assert not check["passed"]


def test_only_one_row_half_precision_steps_take_the_kernel(monkeypatch):
    cache = torch.zeros(1, 2, 64, 16, dtype=BF16)
    q = torch.zeros(1, 1, 4, 16, dtype=BF16)
    assert decode_attention.kernel_applies(q, cache, None)
    assert not decode_attention.kernel_applies(q.float(), cache.float(), None)  # float32
    assert not decode_attention.kernel_applies(torch.zeros(1, 2, 4, 16, dtype=BF16), cache, None)  # two positions
    assert not decode_attention.kernel_applies(torch.zeros(2, 1, 4, 16, dtype=BF16), cache, None)  # a batch
    assert not decode_attention.kernel_applies(q, cache, torch.tensor([0]))  # rows of a batched cache
    odd = torch.zeros(1, 1, 4, 24, dtype=BF16)
    assert not decode_attention.kernel_applies(odd, torch.zeros(1, 2, 64, 24, dtype=BF16), None)  # head size 24
    monkeypatch.setattr(gemv, "CPU_INTERPRETER", [False])
    assert not decode_attention.kernel_applies(q, cache, None)  # a CPU tensor without the interpreter


def test_launch_refuses_operands_that_do_not_fit():
    cache = torch.zeros(1, 2, 64, 16, dtype=BF16)
    q, kv, rope = torch.zeros(64, dtype=BF16), torch.zeros(32, dtype=BF16), torch.zeros(16, dtype=BF16)
    pos, out = torch.tensor([3]), torch.zeros(64, dtype=BF16)
    with pytest.raises(ValueError, match=r"kv_len=65 must be in \[1, 64\]"):
        decode_attention.launch(q, kv, kv, rope, rope, pos, cache, cache.clone(), out, 0.25, 65)
    with pytest.raises(ValueError, match=r"k has 16 elements, needs 32"):
        decode_attention.launch(q, kv[:16], kv, rope, rope, pos, cache, cache.clone(), out, 0.25, 64)
    with pytest.raises(ValueError, match=r"v_cache \(1, 2, 32, 16\) must match k_cache"):
        decode_attention.launch(q, kv, kv, rope, rope, pos, cache, cache[:, :, :32].clone(), out, 0.25, 64)


@pytest.mark.parametrize("arch", ["llama_gqa", "qwen3_qknorm", "mistral_window"])
def test_native_steps_on_the_kernel_stay_as_close_to_float32_as_math(monkeypatch, arch):
    """A bfloat16 native model with ``attention="triton"`` against ``"math"``, both against the same
    model in float32 over 30 one-row steps (two layers, GQA / Qwen3's q/k norms / Mistral's window
    of 6): the kernel ran (the outputs differ), steps of more rows are ``math``'s bit for bit, and
    the kernel's distance to float32 is ``math``'s own, within a quarter."""
    monkeypatch.setattr(decode_attention, "default_config", small_chunks(16, 16))  # merged chunks too
    hf = make_hf_model(arch, num_layers=2)
    ref = from_hf_model(hf, max_context=48, fixed_shapes=True, max_graph_tokens=4, attention="math")
    hf_bf16 = make_hf_model(arch, num_layers=2).to(BF16)
    models = {kind: from_hf_model(hf_bf16, max_context=48, fixed_shapes=True, max_graph_tokens=4, attention=kind,
                                  matmul="cublas") for kind in ("math", "triton")}
    assert {k: m.attention_kernel() for k, m in models.items()} == {"math": "math", "triton": "triton"}
    ids = torch.randint(0, 200, (34,), generator=torch.Generator().manual_seed(1))
    prefix, steps = {}, {}
    for kind, m in {**models, "float32": ref}.items():
        prefix[kind] = m.run_layers(m.embed(ids[:4]), 0, 2, 0)
        steps[kind] = torch.cat([m.run_layers(m.embed(ids[p : p + 1]), 0, 2, p) for p in range(4, 34)], 1).float()
    assert torch.equal(prefix["math"], prefix["triton"])
    assert not torch.equal(steps["math"], steps["triton"]), "the one-row steps did not run the kernel"
    err = {k: (steps[k] - steps["float32"]).abs().mean().item() for k in models}
    assert err["triton"] <= 1.25 * err["math"], err


def test_attention_option_is_checked():
    hf = make_hf_model("llama_gqa", num_layers=1)
    with pytest.raises(ValueError, match=r"attention='flash' must be one of sdpa, math, triton"):
        from_hf_model(hf, max_context=32, attention="flash")
    assert from_hf_model(hf, max_context=32, fixed_shapes=True).attention_kernel() == "math"  # float32: no kernel


@pytest.mark.parametrize("vocab", [100, 40_000, 128_256])
def test_argmax_in_two_reductions_is_argmax(vocab):
    """Slices of the row, then the slices' maxima: the same ids as ``argmax``, ties to the lowest id
    (within a slice, across slices, and between a slice's end and the next one's start)."""
    g = torch.Generator().manual_seed(vocab)
    rows = [torch.randn(3, vocab, generator=g), torch.randint(0, 3, (3, vocab), generator=g).float()]
    tied = torch.full((2, vocab), -1.0)
    width = -(-vocab // 64)
    tied[0, [vocab - 1, vocab // 2, width]] = 5.0  # the maximum in three slices
    tied[1, [width - 1, width]] = 5.0  # either side of a slice boundary
    for scores in (*rows, tied):
        assert torch.equal(argmax_rows(scores), scores.argmax(dim=-1))


COMPILE_FOR_HOPPER = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hsd_bench.models.native import add_norm, gemv
from hsd_bench.models.native.decode_attention_kernel import decode_attention_kernel


def compile_for_sm90(kernel, signature, constants):
    source = ASTSource(fn=kernel, signature={**signature, **dict.fromkeys(constants, "constexpr")},
                       constexprs={(kernel.arg_names.index(n),): v for n, v in constants.items()})
    asm = triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm
    assert asm["cubin"]
    return asm["ptx"]


def first(ptx, instruction):
    return ptx.index(instruction) if instruction in ptx else len(ptx)


pointers = dict.fromkeys(["q_ptr", "k_ptr", "v_ptr", "cos_ptr", "sin_ptr", "kc_ptr", "vc_ptr", "o_ptr"], "*bf16")
signature = {**pointers, "pos_ptr": "*i64", "part_ptr": "*fp32", "stat_ptr": "*fp32", "count_ptr": "*i32",
             **dict.fromkeys(["stride_ch", "stride_cs", "kv_len", "window", "chunk"], "i32"), "scale": "fp32"}
for head_dim, groups, merge, window, pdl in ((64, 4, True, False, True), (128, 4, False, True, False),
                                             (32, 1, True, True, True)):
    ptx = compile_for_sm90(decode_attention_kernel, signature, dict(
        G=groups, GP=1 << (groups - 1).bit_length(), HD=head_dim, BLOCK_G=16, BLOCK_N=64, MERGE=merge,
        MERGE_BLOCK=8, HAS_WINDOW=window, DOT_F32=False, PDL=pdl))
    # launched early, the attention kernel reads nothing before the previous kernel has finished
    assert ("griddepcontrol.wait" in ptx) == pdl
    assert not pdl or first(ptx, "griddepcontrol.wait") < first(ptx, "ld.global")
signature = {**dict.fromkeys(["x_ptr", "w_ptr", "b_ptr", "y_ptr"], "*bf16"), "N": "i32", "K": "i32", "stride_wn": "i32"}
for bias, gate_up, one_slice, pdl in ((False, False, False, True), (True, False, False, True),
                                      (True, True, False, True), (False, True, False, False),
                                      (False, False, True, True), (True, True, True, True)):
    ptx = compile_for_sm90(gemv._kernel(), signature, dict(
        HAS_BIAS=bias, GATE_UP=gate_up, BLOCK_N=2, ROWS=4 if gate_up else 2, BLOCK_K=1024, ONE_SLICE=one_slice,
        PDL=pdl))
    # the GEMV requests its first weight slice (one_slice: all its weights) before waiting, and
    # stores nothing before it
    assert ("griddepcontrol.wait" in ptx) == pdl
    if pdl:
        assert first(ptx, "ld.global") < first(ptx, "griddepcontrol.wait") < first(ptx, "st.global"), ptx[:4000]
signature = {**dict.fromkeys(["x_ptr", "d_ptr", "ln_ptr", "y_ptr", "xs_ptr"], "*bf16"), "K": "i32", "eps": "fp32"}
for delta, pdl in ((True, True), (False, False)):
    ptx = compile_for_sm90(add_norm._kernel(), signature, dict(HAS_DELTA=delta, BLOCK=4096, PDL=pdl))
    assert ("griddepcontrol.wait" in ptx) == pdl
    if pdl:  # the norm's weight requested before the wait, nothing stored before it
        assert first(ptx, "ld.global") < first(ptx, "griddepcontrol.wait") < first(ptx, "st.global"), ptx[:4000]
print("compiled")
"""


def test_kernels_compile_for_a_hopper_gpu():
    """The interpreter runs code the GPU compiler refuses (it let a variable change dtype across a
    branch through); compiling the Triton kernels for sm_90 -- without a GPU, in a process with the
    interpreter off -- catches that on any machine. The PTX also shows what early launch relies on:
    only weights are loaded before ``griddepcontrol.wait``, nothing is stored before it."""
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]
