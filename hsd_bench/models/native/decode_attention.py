"""A one-row decode step's attention as one Triton kernel: RoPE, the cache write and attention.

Why a kernel of our own: after the projections became one-pass GEMVs (:mod:`.gemv`), the
rest of a batch-1 layer's attention block was six small kernels -- RoPE of q and k, the cache
write, q·Kᵀ, the masked softmax and p·V -- each a launch plus a gap inside the step's CUDA graph,
about 10 µs per layer on an H200 against ~40 µs of weights (docs/gpu-runs.md, "Twelfth run").
This kernel does all of it in one launch and reads only the cache slots a position can see
(``[0, pos]``, inside a sliding window where the layer has one) instead of the whole
attention span the step was compiled for.

How: one program per (KV head, chunk of slots; one chunk up to :data:`CHUNK_SLOTS`). Each
applies RoPE to its group of query heads, scores them against its chunk with an online softmax and, where the key/value just
computed falls in its chunk, writes them to the cache and takes them from registers (no
program reads the slot being written, so no ordering between programs is needed for it).
With more than one chunk the partial results are merged by whichever program of a head
finishes last (an atomic counter per head, reset by that program), so there is no second
kernel.

Rounding follows the compiled "math" path it replaces: RoPE in float32 rounded once to the
model's dtype, each score rounded to the dtype before the float32 softmax, the probabilities
rounded to the dtype for p·V with float32 accumulation. The softmax is normalised at the end
(flash-decoding) rather than before p·V, so results agree to the dtype's rounding, not bit
for bit; a greedy divergence it causes is a near tie (hsd_bench/parity.py classifies them).

It is the native backend's ``attention="triton"`` for one-row fixed-shape steps in
bfloat16/float16 on CUDA (run.py: ``model.attention``); steps of more rows, batches, float32
and machines without Triton run the "math" attention.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from hsd_bench.models.native import gemv

MAX_SPLITS = 64  # chunks per head at most: the merge reads every chunk's partial result
# Slots one program scores before a span is split into chunks merged in the kernel. H200, same
# process: one program per KV head over a 512-slot span against 64-slot chunks merged, Llama-1B
# shape AR loop 1059.4 vs 1058.8 tok/s (equal), Llama-8B shape 233.6 vs 228.3 (results/gpu_run12/).
CHUNK_SLOTS = 512


class AttentionConfig(NamedTuple):
    """Tiles of one call."""

    block_n: int = 64  # cache slots scored per iteration
    chunk: int = 64  # slots per program (a multiple of block_n); the span / chunk programs per head
    num_warps: int = 4


def default_config(kv_len: int, head_dim: int) -> AttentionConfig:
    """64-slot blocks; one program per KV head up to :data:`CHUNK_SLOTS` slots, beyond that chunks of
    that many (more where :data:`MAX_SPLITS` would be exceeded) scored in parallel and merged."""
    block = 64
    blocks = -(-kv_len // block)
    per_chunk = max(CHUNK_SLOTS // block, -(-blocks // MAX_SPLITS))
    return AttentionConfig(block_n=block, chunk=block * per_chunk, num_warps=4 if head_dim <= 64 else 8)


@functools.lru_cache(maxsize=None)
def _kernel():
    from hsd_bench.models.native.decode_attention_kernel import decode_attention_kernel

    return decode_attention_kernel


# One arrival counter per KV head and device, zero between launches (the last program of a head
# resets it). Created before any graph capture (NativeLlama calls counters()) so that a captured
# step reads the same buffer on every replay.
_COUNTERS: dict[str, torch.Tensor] = {}
COUNTER_SLOTS = 1024  # KV heads of one call, at most


def counters(device: torch.device) -> torch.Tensor:
    key = str(device)
    if key not in _COUNTERS:
        _COUNTERS[key] = torch.zeros(COUNTER_SLOTS, dtype=torch.int32, device=device)
    return _COUNTERS[key]


def kernel_applies(q: torch.Tensor, k_cache: torch.Tensor, rows: torch.Tensor | None) -> bool:
    """Whether :func:`attend` runs the kernel for a step with queries ``q`` ``[b, T, H, hd]``:
    one sequence (cache row 0), one position, bfloat16/float16, a power-of-two head size of at
    least 16 (the kernel's tensor-core dots), on CUDA or a test's interpreter."""
    b, t, heads, hd = q.shape
    kv_heads = k_cache.shape[1]
    return (_REGISTERED[0] and gemv.kernel_device(q) and rows is None and b == 1 and t == 1
            and q.dtype in (torch.bfloat16, torch.float16) and k_cache.dtype == q.dtype
            and hd >= 16 and hd & (hd - 1) == 0 and heads % kv_heads == 0 and kv_heads <= COUNTER_SLOTS
            and k_cache.stride(-1) == 1)


def launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor, scale: float,
           kv_len: int, window: int = 0, config: AttentionConfig | None = None) -> None:
    """``out`` ``[H * hd]`` = attention of the RoPE'd query heads ``q`` ``[H * hd]`` over cache row 0's
    slots ``[0, pos]`` (``pos``: a one-element integer tensor, ``< kv_len``), after writing the
    RoPE'd key ``k`` and the value ``v`` (``[KV * hd]`` each) to slot ``pos`` of ``k_cache`` /
    ``v_cache`` ``[R, KV, S, hd]``. ``cos``/``sin``: the RoPE rows of ``pos`` ``[hd]``. ``window`` > 0:
    only the last ``window`` positions are seen (Mistral's sliding window)."""
    kv_heads, slots, hd = k_cache.shape[1], k_cache.shape[2], k_cache.shape[3]
    heads = q.numel() // hd
    for name, t, size in (("q", q, heads * hd), ("k", k, kv_heads * hd), ("v", v, kv_heads * hd),
                          ("cos", cos, hd), ("sin", sin, hd), ("pos", pos, 1), ("out", out, heads * hd)):
        if t.numel() != size:
            raise ValueError(f"decode_attention.launch: {name} has {t.numel()} elements, needs {size}")
    if v_cache.shape != k_cache.shape or v_cache.stride() != k_cache.stride():
        raise ValueError(f"decode_attention.launch: v_cache {tuple(v_cache.shape)} must match k_cache "
                         f"{tuple(k_cache.shape)} and its layout")
    if not 1 <= kv_len <= slots:
        raise ValueError(f"decode_attention.launch: kv_len={kv_len} must be in [1, {slots}] (the cache's slots)")
    groups = heads // kv_heads
    cfg = config or default_config(kv_len, hd)
    if cfg.chunk % cfg.block_n:
        raise ValueError(f"decode_attention: chunk={cfg.chunk} must be a multiple of block_n={cfg.block_n}")
    splits = -(-kv_len // cfg.chunk)
    group_p2 = 1 << (groups - 1).bit_length()
    block_g = max(16, group_p2)  # tensor-core dots take 16 rows or more
    merge = splits > 1
    part = out.new_empty((kv_heads * splits * group_p2 * hd,) if merge else (1,), dtype=torch.float32)
    stat = out.new_empty((kv_heads * splits * group_p2 * 2,) if merge else (1,), dtype=torch.float32)
    _kernel()[(kv_heads, splits)](
        q, k, v, cos, sin, pos, k_cache, v_cache, out, part, stat, counters(out.device),
        k_cache.stride(1), k_cache.stride(2), kv_len, int(window), float(scale), cfg.chunk,
        G=groups, GP=group_p2, HD=hd, BLOCK_G=block_g, BLOCK_N=cfg.block_n, MERGE=merge, MERGE_BLOCK=8,
        HAS_WINDOW=window > 0, DOT_F32=gemv.interpreted(), num_warps=cfg.num_warps, **gemv.launch_options(out.device),
    )


_REGISTERED = [False]  # a plain flag, not a cached call: kernel_applies runs while dynamo traces


def register() -> bool:
    """Define ``torch.ops.hsd_bench.decode_attention`` (once, before anything is compiled), an
    opaque call in a compiled step that writes the caches it is given (``mutates_args``), so
    ``torch.compile`` orders it after earlier writes and before later reads of them. Returns
    whether the kernel is available (Triton imports)."""
    if _REGISTERED[0] or not gemv.triton_available():
        return _REGISTERED[0]

    @torch.library.custom_op("hsd_bench::decode_attention", mutates_args=("k_cache", "v_cache"))
    def decode_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor,
                            sin: torch.Tensor, pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            scale: float, kv_len: int, window: int) -> torch.Tensor:
        out = torch.empty(q.numel(), dtype=q.dtype, device=q.device)
        launch(q.contiguous().view(-1), k.contiguous().view(-1), v.contiguous().view(-1),
               cos.contiguous().view(-1), sin.contiguous().view(-1), pos.reshape(-1)[:1], k_cache[0:1],
               v_cache[0:1], out, scale, kv_len, window)
        return out

    @decode_attention_op.register_fake
    def _(q, k, v, cos, sin, pos, k_cache, v_cache, scale, kv_len, window):
        return q.new_empty(q.numel())

    _REGISTERED[0] = True
    return True


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float, kv_len: int,
           window: int) -> torch.Tensor:
    """A one-row step's attention block from the projections: ``q`` ``[1, 1, H, hd]``, ``k``/``v``
    ``[1, 1, KV, hd]`` before RoPE, ``pos`` ``[1, 1]``; returns ``[1, 1, H * hd]``. Only where
    :func:`kernel_applies`."""
    out = torch.ops.hsd_bench.decode_attention(q, k, v, cos, sin, pos, k_cache, v_cache, scale, kv_len, window)
    return out.view(1, 1, -1)


def check_against_eager(heads: int, kv_heads: int, head_dim: int, kv_len: int, device: torch.device,
                        positions: tuple[int, ...] | None = None, window: int = 0, seed: int = 0) -> dict:
    """The kernel on ``device`` against the "math" attention it replaces (bfloat16), at a few positions
    of a ``kv_len`` span (chunk boundaries, the first and last slot): the cache slot written must
    equal eager's RoPE'd key and the value bit for bit on the GPU, every other slot untouched, and
    the output within one bfloat16 spacing of the largest value plus the largest output
    (``rel_err``, ``passed``). What a GPU run checks before timing the kernel (``bench_gpu.py
    --parts smoke``); the CPU tests run it through Triton's interpreter."""
    from hsd_bench.models.native.layers import attention, rotate_half  # layers imports this module

    if not register():
        return {"passed": False, "error": "Triton does not import here"}
    g = torch.Generator(device=device).manual_seed(seed)
    bf16 = torch.bfloat16

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device).to(bf16)

    groups, slots = heads // kv_heads, kv_len + 1
    positions = positions or tuple(sorted({p for p in (0, 63, 64, kv_len // 2, kv_len - 1) if p < kv_len}))
    worst, cache_ok, others_ok = 0.0, True, True
    for pos in positions:
        k_cache, v_cache = randn(1, kv_heads, slots, head_dim), randn(1, kv_heads, slots, head_dim)
        q, k, v = randn(heads * head_dim), randn(kv_heads * head_dim), randn(kv_heads * head_dim)
        angle = torch.rand(head_dim // 2, generator=g, device=device) * 6.3
        cos, sin = torch.cat([angle.cos()] * 2).to(bf16), torch.cat([angle.sin()] * 2).to(bf16)
        ref_k, ref_v = k_cache.clone(), v_cache.clone()
        out = torch.empty(heads * head_dim, dtype=bf16, device=device)
        launch(q, k, v, cos, sin, torch.tensor([pos], device=device), k_cache, v_cache, out, head_dim**-0.5,
               kv_len, window)
        # the compiled math path's arithmetic: RoPE in float32 rounded once, then the masked attention
        qf, kf = q.view(1, heads, 1, head_dim).float(), k.view(1, kv_heads, 1, head_dim).float()
        q_rope = (qf * cos.float() + rotate_half(qf) * sin.float()).to(bf16)
        k_rope = (kf * cos.float() + rotate_half(kf) * sin.float()).to(bf16)
        ref_k[0, :, pos], ref_v[0, :, pos] = k_rope[0, :, 0], v.view(kv_heads, head_dim)
        span = torch.arange(kv_len, device=device)
        seen = (span <= pos) & ((span > pos - window) if window else True)
        mask = torch.where(seen, 0.0, torch.finfo(bf16).min).to(bf16).expand(1, 1, groups, kv_len)
        ref = attention(q_rope.view(1, kv_heads, groups, head_dim), ref_k[:, :, :kv_len], ref_v[:, :, :kv_len],
                        mask, head_dim**-0.5, "math").reshape(-1)
        # Each path rounds the probabilities to bfloat16 before p·V, an error relative to the values
        # (not to the output, an average far smaller than they are), and rounds the output.
        scale = v.float().abs().max() + ref.float().abs().max()
        worst = max(worst, ((out.float() - ref.float()).abs().max() / scale).item())
        written = (k_cache[0, :, pos].float() - ref_k[0, :, pos].float()).abs().max().item()
        cache_ok &= bool(torch.equal(v_cache, ref_v)) and (written == 0.0 or gemv.interpreted())
        k_cache[0, :, pos], ref_k[0, :, pos] = 0, 0
        others_ok &= bool(torch.equal(k_cache, ref_k))
    out = {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "kv_len": kv_len, "positions": list(positions),
           "window": window, "cache_write_equal": cache_ok, "other_slots_untouched": others_ok, "rel_err": worst}
    out["passed"] = cache_ok and others_ok and worst <= 2.0**-7
    return out
