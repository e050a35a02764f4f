"""The decode attention kernel (``models/native/decode_attention.py``) computes what the compiled
"math" attention computes for a step of one or several consecutive positions, and writes the cache
slots it is given and no other.

It runs here as the GPU runs it, through Triton's CPU interpreter (conftest.py): same programs,
masks, chunks and in-kernel merge (the interpreter runs the programs one after another, so the
last program of a head is the one that merges, as on a GPU in some order). Where the interpreter
is lenient -- it lets a kernel through that the GPU compiler refuses -- the last test compiles the
kernels for a Hopper GPU without one. The GPU's own check is ``bench_gpu.py --parts smoke``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hsd_bench.bench.models import load_hf
from hsd_bench.engine import DecodingConfig
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.models.native import decode_attention, from_hf_model, gemv
from hsd_bench.models.native.layers import argmax_rows
from hsd_bench.parity import classify
from test_native_backend import make_hf_model

if os.environ.get("HSD_REQUIRE_TRITON") == "1":  # .ci/run: the dev install has Triton; never skip there
    import triton  # noqa: F401
else:
    pytest.importorskip("triton", reason="the decode attention kernel is a Triton kernel (dev extra, Linux)")

BF16 = torch.bfloat16
CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize(
    "heads, kv_heads, head_dim, kv_len, window, tiles, rows",
    [
        (8, 2, 32, 160, 0, None, 2),  # a verification of one draft: one program per KV head
        (8, 2, 32, 160, 0, (16, 32), 5),  # gamma = 4: five chunks merged, the step's rows across a boundary
        (4, 4, 16, 300, 0, (16, 16), 8),  # 19 chunks merged eight at a time; one query head per KV head
        (14, 2, 16, 96, 0, (16, 32), 3),  # seven query heads per KV head x 3 positions: 21 rows, padded to 32
        (8, 2, 32, 160, 40, (16, 32), 8),  # a sliding window: each row's own first slot
        (8, 2, 32, 160, 40, None, 16),  # a prefill chunk of max_graph_tokens positions
    ],
    ids=["two_rows", "merged_5", "many_chunks_8", "group_of_7_x3", "window_merged_8", "window_16"],
)
def test_kernel_takes_several_positions_as_the_math_attention(monkeypatch, heads, kv_heads, head_dim, kv_len,
                                                             window, tiles, rows):
    """A step of ``rows`` consecutive positions (a verification, a draft round's first step, a prefill
    chunk): every row attends causally to the slots before it and to the step's own earlier rows,
    its RoPE'd key and value land in its slot, and no other slot changes."""
    if tiles:
        monkeypatch.setattr(decode_attention, "default_config", small_chunks(*tiles))
    positions = tuple(sorted({0, 31, 32, 33 - rows // 2, kv_len // 2, kv_len - rows}))
    check = decode_attention.check_against_eager(heads, kv_heads, head_dim, kv_len, CPU, positions, window, seed=3,
                                                 rows=rows)
    assert check["cache_write_equal"] and check["other_slots_untouched"], check
    assert check["rel_err"] <= 2.0**-7, check
    assert not decode_attention.counters(CPU).any()


def test_a_row_that_sees_a_later_row_of_its_step_is_visible(monkeypatch):
    """The several-row check can fail: a step whose first row also saw the second row's key and value
    (the kernel launched again from one position later, so its first row is the old second) differs
    from the causal attention by far more than rounding."""
    real = decode_attention.launch

    def sees_one_row_ahead(q, k, v, cos, sin, pos, k_cache, v_cache, out, *args, **kwargs):
        real(q, k, v, cos, sin, pos, k_cache, v_cache, out, *args, **kwargs)
        shifted = out.clone()
        real(q[1:], k[1:], v[1:], cos[1:], sin[1:], pos, k_cache, v_cache, shifted[1:], *args, **kwargs)
        out[:1] = shifted[1:2]  # row 0's output from a step whose row 0 was the second row

    monkeypatch.setattr(decode_attention, "launch", sees_one_row_ahead)
    check = decode_attention.check_against_eager(8, 2, 32, 96, CPU, (10, 50), rows=4)
    assert not check["passed"]


def test_padding_rows_past_the_cache_write_nothing():
    """A step whose last rows (a fixed-shape step's padding) lie past the cache's last slot writes
    only the rows inside it -- the memory after the cache stays as it was -- and its real rows attend
    as in a step of those rows alone."""
    g = torch.Generator().manual_seed(5)
    kv_heads, heads, hd, slots = 2, 4, 16, 64

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(BF16)

    room_k, room_v = randn(1, kv_heads, slots + 8, hd), randn(1, kv_heads, slots + 8, hd)
    q, k, v = randn(4, heads * hd), randn(4, kv_heads * hd), randn(4, kv_heads * hd)
    cos, sin = randn(4, hd), randn(4, hd)
    pos = torch.tensor([slots - 2])
    after = room_k[:, :, slots:].clone(), room_v[:, :, slots:].clone()
    outs = {}
    for rows in (4, 2):
        k_cache, v_cache = room_k[:, :, :slots], room_v[:, :, :slots]  # views: the memory after them is watched
        outs[rows] = torch.empty(rows, heads * hd, dtype=BF16)
        decode_attention.launch(q[:rows], k[:rows], v[:rows], cos[:rows], sin[:rows], pos, k_cache, v_cache,
                                outs[rows], hd**-0.5, slots)
        assert torch.equal(room_k[:, :, slots:], after[0]) and torch.equal(room_v[:, :, slots:], after[1])
    torch.testing.assert_close(outs[4][:2].float(), outs[2].float(), atol=2e-2, rtol=0)


def test_a_window_past_the_first_merged_chunks_is_finite(monkeypatch):
    """With a sliding window past the first eight chunks (the merge takes them eight at a time),
    every row's running maximum is still -inf after the first group: the merge must not take
    ``exp(-inf - -inf)`` (NaN). It did, and the check read the NaN as no error; both are fixed."""
    monkeypatch.setattr(decode_attention, "default_config", small_chunks(16, 16))
    for rows in (1, 4):
        check = decode_attention.check_against_eager(8, 2, 32, 256, CPU, (200, 252 - rows), 40, seed=3, rows=rows)
        assert check["passed"] and check["rel_err"] > 0, check


def test_one_sequence_half_precision_steps_take_the_kernel(monkeypatch):
    cache = torch.zeros(1, 2, 64, 16, dtype=BF16)
    q = torch.zeros(1, 1, 4, 16, dtype=BF16)
    assert decode_attention.kernel_applies(q, cache, None)
    # several positions up to MAX_ROWS: 16 by default (measured, fiftieth run); 1 takes one-row steps only
    assert decode_attention.MAX_ROWS == [16]
    assert decode_attention.kernel_applies(torch.zeros(1, 16, 4, 16, dtype=BF16), cache, None)  # 16 positions
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [1])
    assert not decode_attention.kernel_applies(torch.zeros(1, 2, 4, 16, dtype=BF16), cache, None)
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [16])
    assert not decode_attention.kernel_applies(torch.zeros(1, 17, 4, 16, dtype=BF16), cache, None)  # MAX_ROWS
    assert not decode_attention.kernel_applies(torch.zeros(1, 16, 32, 16, dtype=BF16), cache, None)  # 256 rows a head
    assert not decode_attention.kernel_applies(q.float(), cache.float(), None)  # float32
    assert not decode_attention.kernel_applies(torch.zeros(2, 1, 4, 16, dtype=BF16), cache, None)  # a batch
    assert not decode_attention.kernel_applies(q, cache, torch.tensor([0]))  # rows of a batched cache
    # shared memory: a query tile past MAX_TILE_VALUES, a head size past MAX_HEAD_DIM
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [16])
    cache_128 = torch.zeros(1, 2, 64, 128, dtype=BF16)
    assert decode_attention.kernel_applies(torch.zeros(1, 16, 8, 128, dtype=BF16), cache_128, None)  # 64 rows
    assert not decode_attention.kernel_applies(torch.zeros(1, 16, 16, 128, dtype=BF16), cache_128, None)  # 128
    assert decode_attention.kernel_applies(torch.zeros(1, 16, 16, 64, dtype=BF16),
                                           torch.zeros(1, 2, 64, 64, dtype=BF16), None)  # 128 rows of 64
    assert not decode_attention.kernel_applies(torch.zeros(1, 1, 2, 256, dtype=BF16),
                                               torch.zeros(1, 2, 64, 256, dtype=BF16), None)  # head size 256
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
    rows = torch.zeros(3, 64, dtype=BF16)
    with pytest.raises(ValueError, match=r"k has 32 elements, needs 96 \(3 position\(s\)\)"):
        decode_attention.launch(rows, kv, kv, rope, rope, pos, cache, cache.clone(), torch.zeros_like(rows), 0.25, 64)
    wide = torch.zeros(8, 128 * 16, dtype=BF16)  # 64 query heads per KV head x 8 positions
    eight_kv, eight_rope = torch.zeros(8, 32, dtype=BF16), torch.zeros(8, 16, dtype=BF16)
    with pytest.raises(ValueError, match=r"64 query heads per KV head x 8 positions = 512 rows; the kernel takes "
                                         r"at most 128"):
        decode_attention.launch(wide, eight_kv, eight_kv, eight_rope, eight_rope, pos, cache, cache.clone(),
                                torch.zeros_like(wide), 0.25, 64)


def test_launch_refuses_a_tile_past_shared_memory():
    """A tile whose shared memory would not fit an SM is refused before any compile, naming the
    bound: 128 query rows of 128 (eight query heads per KV head x 16 positions), and a head size of
    256 at one position."""
    for heads, head_dim, positions, rows, tile in ((16, 128, 16, 128, 128), (2, 256, 1, 1, 16)):
        q = torch.zeros(positions, heads * head_dim, dtype=BF16)
        kv, rope = torch.zeros(positions, 2 * head_dim, dtype=BF16), torch.zeros(positions, head_dim, dtype=BF16)
        cache = torch.zeros(1, 2, 64, head_dim, dtype=BF16)
        with pytest.raises(ValueError, match=rf"head size {head_dim} with {rows} query rows \(a tile of {tile}\) "
                                             r"exceeds the kernel's tile: head size in \[16, 128\], tile rows x "
                                             r"head size <= 8192"):
            decode_attention.launch(q, kv, kv, rope, rope, torch.tensor([3]), cache, cache.clone(), torch.zeros_like(q),
                                    0.0625, 64)


def test_the_merge_reads_at_most_merge_values_per_iteration():
    """Eight chunks per iteration where they fit (every one-row step of up to 8 query heads of 128
    per KV head), fewer for wide several-row tiles: the 8B shape's 16-row step (64 rows of 128) one,
    which at eight asked Triton 3.6 for 256 KiB of shared memory on an H200."""
    assert decode_attention.merge_block(4, 128) == decode_attention.merge_block(8, 128) == 8
    assert decode_attention.merge_block(16, 64) == 8 and decode_attention.merge_block(32, 64) == 4
    assert decode_attention.merge_block(64, 128) == 1 and decode_attention.merge_block(128, 256) == 1
    for rows in (1, 2, 4, 8, 16, 32, 64, 128):
        for head_dim in (32, 64, 128, 256):
            block = decode_attention.merge_block(rows, head_dim)
            assert block & (block - 1) == 0 and (block == 1 or block * rows * head_dim <= decode_attention.MERGE_VALUES)


def test_a_check_whose_launch_raises_fails_alone(monkeypatch):
    def out_of_resources(*args, **kwargs):
        raise RuntimeError("out of resource: shared memory, Required: 262144, Hardware limit: 232448")

    monkeypatch.setattr(decode_attention, "launch", out_of_resources)
    check = decode_attention.check_against_eager(8, 2, 32, 96, CPU, (10,), rows=4)
    assert not check["passed"] and "262144" in check["error"] and check["rows"] == 4


STEP_ROWS = (4, 1, 3, 1, 4, 2, 1, 3, 4, 1, 2, 1, 3)  # a prompt chunk, then one-row steps and verifications


def native_steps(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The layers' outputs over ``ids`` in steps of :data:`STEP_ROWS` positions: (the several-row
    steps' rows, the one-row steps' rows), in float32."""
    several, single, p = [], [], 0
    for rows in STEP_ROWS:
        out = model.run_layers(model.embed(ids[p : p + rows]), 0, 2, p).float()
        (several if rows > 1 else single).append(out)
        p += rows
    return torch.cat(several, 1), torch.cat(single, 1)


@pytest.mark.parametrize("arch", ["llama_gqa", "qwen3_qknorm", "mistral_window"])
def test_native_steps_on_the_kernel_stay_as_close_to_float32_as_math(monkeypatch, arch):
    """A bfloat16 native model with ``attention="triton"`` against ``"math"``, both against the same
    model in float32 over steps of one to four positions (two layers, GQA / Qwen3's q/k norms /
    Mistral's window of 6), the kernel allowed several positions: it ran for both kinds of step (the
    outputs differ from math's), and its distance to float32 is ``math``'s own, within a quarter.
    With :data:`MAX_ROWS` at 1 (one-row steps only on the kernel) a several-row step is
    ``math``'s bit for bit."""
    monkeypatch.setattr(decode_attention, "default_config", small_chunks(16, 16))  # merged chunks too
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [16])  # several positions on the kernel too
    hf = make_hf_model(arch, num_layers=2)
    ref = from_hf_model(hf, max_context=48, fixed_shapes=True, max_graph_tokens=4, attention="math")
    hf_bf16 = make_hf_model(arch, num_layers=2).to(BF16)

    def bf16_model(kind: str):
        return from_hf_model(hf_bf16, max_context=48, fixed_shapes=True, max_graph_tokens=4, attention=kind,
                             matmul="cublas")

    models = {kind: bf16_model(kind) for kind in ("math", "triton")}
    assert {k: m.attention_kernel() for k, m in models.items()} == {"math": "math", "triton": "triton"}
    ids = torch.randint(0, 200, (sum(STEP_ROWS),), generator=torch.Generator().manual_seed(1))
    out = {kind: native_steps(m, ids) for kind, m in {**models, "float32": ref}.items()}
    for i, kind_of_step in enumerate(("several-row", "one-row")):
        assert not torch.equal(out["math"][i], out["triton"][i]), f"the {kind_of_step} steps did not run the kernel"
        err = {k: (out[k][i] - out["float32"][i]).abs().mean().item() for k in models}
        assert err["triton"] <= 1.25 * err["math"], (kind_of_step, err)
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [1])
    one_row_only = native_steps(bf16_model("triton"), ids)[0]
    first = STEP_ROWS[0]  # the prompt chunk, before any step has written the cache
    assert torch.equal(one_row_only[:, :first], out["math"][0][:, :first])
    assert not torch.equal(one_row_only[:, :first], out["triton"][0][:, :first])


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
import itertools
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hsd_bench.models.native import add_norm, gemv
from hsd_bench.models.native import decode_attention as da
from hsd_bench.models.native.decode_attention_kernel import decode_attention_kernel
from hsd_bench.models.native.graphs import MAX_GRAPH_TOKENS, next_pow2


def compile_for_sm90(kernel, signature, constants):
    source = ASTSource(fn=kernel, signature={**signature, **dict.fromkeys(constants, "constexpr")},
                       constexprs={(kernel.arg_names.index(n),): v for n, v in constants.items()})
    asm = triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm
    assert asm["cubin"]
    return asm["ptx"]


def first(ptx, instruction):
    return ptx.index(instruction) if instruction in ptx else len(ptx)


pointers = dict.fromkeys(["q_ptr", "k_ptr", "v_ptr", "cos_ptr", "sin_ptr", "kc_ptr", "vc_ptr", "o_ptr"], "*bf16")
attention_signature = {
    **pointers, "pos_ptr": "*i64", "part_ptr": "*fp32", "stat_ptr": "*fp32", "count_ptr": "*i32", "scale": "fp32",
    **dict.fromkeys(["stride_ch", "stride_cs", "stride_qt", "stride_kt", "stride_vt", "slots", "kv_len", "window",
                     "chunk"], "i32")}
for head_dim, groups, rows, merge, window, pdl in ((64, 4, 1, True, False, True), (128, 4, 1, False, True, False),
                                                   (32, 1, 1, True, True, True), (64, 4, 8, True, False, True),
                                                   (128, 4, 16, False, True, True), (64, 1, 5, True, True, False)):
    rows_p2 = next_pow2(groups * rows)
    ptx = compile_for_sm90(decode_attention_kernel, attention_signature, dict(
        G=groups, GP=rows_p2, HD=head_dim, ROWS=rows, BLOCK_R=da.dot_tile(groups * rows),
        BLOCK_T=da.dot_tile(rows), BLOCK_N=64, MERGE=merge, MERGE_BLOCK=8, HAS_WINDOW=window,
        DOT_F32=False, PDL=pdl))
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
# Shared memory: the largest query tile kernel_applies allows at each head size, merge on, compiled as
# launch specializes it (16-byte aligned pointers, sizes and strides divisible by 16 -- which makes
# Triton stage the loops' loads in shared memory), fits a Hopper SM's 227 KiB and an Ampere or Ada
# GPU's 99 KiB.
SHARED_PER_SM = {90: 232448, 86: 101376}  # Hopper; Ampere / Ada consumer and inference cards (99 KiB)
shared_at = {}
for (arch, limit), head_dim in itertools.product(SHARED_PER_SM.items(), (32, 64, da.MAX_HEAD_DIM)):
    tile = min(da.MAX_TILE_VALUES // head_dim, da.MAX_QUERY_ROWS)
    rows = min(MAX_GRAPH_TOKENS, tile)  # positions: a fixed-shape step's most
    groups = tile // rows
    constants = dict(G=groups, GP=tile, HD=head_dim, ROWS=rows, BLOCK_R=da.dot_tile(groups * rows),
                     BLOCK_T=da.dot_tile(rows), BLOCK_N=64, MERGE=True, MERGE_BLOCK=da.merge_block(tile, head_dim),
                     HAS_WINDOW=True, DOT_F32=False, PDL=arch >= 90)  # early launch: sm_90 on
    aligned = {(decode_attention_kernel.arg_names.index(n),): [["tt.divisibility", 16]]
               for n in attention_signature if n not in ("scale", "window")}
    source = ASTSource(fn=decode_attention_kernel,
                       signature={**attention_signature, **dict.fromkeys(constants, "constexpr")},
                       constexprs={(decode_attention_kernel.arg_names.index(n),): v for n, v in constants.items()},
                       attrs=aligned)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": da.default_config(4096, head_dim).num_warps})
    shared_at[(arch, head_dim, groups, rows)] = compiled.metadata.shared
    assert compiled.metadata.shared <= limit, shared_at
print("compiled")
"""


def test_kernels_compile_for_a_hopper_gpu():
    """The interpreter runs code the GPU compiler refuses (it let a variable change dtype across a
    branch through); compiling the Triton kernels for sm_90 -- without a GPU, in a process with the
    interpreter off -- catches that on any machine. The PTX also shows what early launch relies on:
    only weights are loaded before ``griddepcontrol.wait``, nothing is stored before it. And the
    attention kernel's largest allowed tiles fit an SM's shared memory, on sm_90 and on sm_86 (a
    launch that asks for more fails on the device: the fiftieth run's first smoke)."""
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("spec", [
    MethodSpec("hispec", exit=[2, 4], draft_len=2, period=2),
    MethodSpec("vanilla_sd", draft_len=3, draft_path="draft"),
], ids=["hispec", "vanilla_sd"])
@pytest.mark.slow  # 40-60 s each: the kernel through Triton's interpreter on a 6-layer model
def test_engine_greedy_on_several_row_steps_is_ar_up_to_near_ties(monkeypatch, spec):
    """The engine in bfloat16 on the shipped 6-layer model (its 2-layer sibling as vanilla_sd's draft)
    with the kernel on every step of one to four positions -- verifications, draft rounds' first
    steps, one-row steps: each method's greedy tokens equal the engine's AR's or part from them at a
    near tie of the target's own logits (hsd_bench/parity.py), what the GPU benchmark asks of every
    bf16 row. Trained weights: a random model's bf16 logits move by more than the tie tolerance
    whichever attention runs. The spy shows the several-row steps took the kernel."""
    monkeypatch.setattr(decode_attention, "MAX_ROWS", [16])
    rows_seen = []
    real = decode_attention.launch
    monkeypatch.setattr(decode_attention, "launch", lambda q, *a, **kw: rows_seen.append(
        q.shape[0] if q.dim() > 1 else 1) or real(q, *a, **kw))

    def model(name: str):
        hf, tok = load_hf(str(ROOT / "checkpoints" / name), CPU, BF16)
        return from_hf_model(hf, max_context=64, fixed_shapes=True, max_graph_tokens=4, min_kv_bucket=16,
                             matmul="cublas"), tok

    (target, tok), (draft, _) = model("family-6x128"), model("family-2x128")
    prompts = [tok.encode(text) for text in ("def fibonacci(n):\n    ", "import numpy as np\n\ndef mean(xs):\n")]
    ar = build_engine(MethodSpec("autoregressive"), target, load_other=None)
    engine = build_engine(spec, target, load_other=lambda _p: (draft, None))
    ar_out = [ar.generate(p, 16, DecodingConfig()).output_ids for p in prompts]
    out = [engine.generate(p, 16, DecodingConfig()).output_ids for p in prompts]
    assert max(rows_seen) > 1, "no step of several positions ran the kernel"
    verdict = classify(target, prompts, ar_out, out)
    assert verdict["unexplained"] == 0, verdict
