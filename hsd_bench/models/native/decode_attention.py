"""A one-sequence step's attention as one Triton kernel: RoPE, the cache write and attention.

Why a kernel of our own: after the projections became one-pass GEMVs (:mod:`.gemv`), the
rest of a batch-1 layer's attention block was six small kernels -- RoPE of q and k, the cache
write, q·Kᵀ, the masked softmax and p·V -- each a launch plus a gap inside the step's CUDA graph,
about 10 µs per layer on an H200 against ~40 µs of weights (docs/gpu-runs.md, "Twelfth run").
This kernel does all of it in one launch and reads only the cache slots a position can see
(``[0, pos]``, inside a sliding window where the layer has one) instead of the whole
attention span the step was compiled for. It also takes a step of several consecutive positions
(a verification, a draft round's first step, a prefill chunk), where the compiled attention takes
five launches a layer, about 9 µs on the 294 M shape (docs/gpu-runs.md, "Forty-ninth run"): up to
:data:`MAX_ROWS` positions.

How: one program per (KV head, chunk of slots; one chunk up to :data:`CHUNK_SLOTS`). Each
applies RoPE to its query rows (the group's query heads at each of the step's positions, as the
math path groups them), scores them against its chunk's slots before the step's first position
with an online softmax and, where that first position falls in its chunk, writes the step's keys
and values to the cache and scores them from registers, each row causally (row ``t`` sees the
step's rows ``0..t``; no program reads a slot being written, so no ordering between programs is
needed for it). With more than one chunk the partial results are merged by whichever program of a
head finishes last (an atomic counter per head, reset by that program), so there is no second
kernel.

Rounding follows the compiled "math" path it replaces: RoPE in float32 rounded once to the
model's dtype, each score rounded to the dtype before the float32 softmax, the probabilities
rounded to the dtype for p·V with float32 accumulation. The softmax is normalised at the end
(flash-decoding) rather than before p·V, so results agree to the dtype's rounding, not bit
for bit; a greedy divergence it causes is a near tie (hsd_bench/parity.py classifies them).

It is the native backend's ``attention="triton"`` for one-row (and up to :data:`MAX_ROWS`-row)
fixed-shape steps of one sequence in bfloat16/float16 on CUDA (run.py: ``model.attention``);
other steps, batches, float32 and machines without Triton run the "math" attention, and long
prompts run eagerly on SDPA.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from hsd_bench.models.native import gemv
from hsd_bench.models.native.graphs import MAX_GRAPH_TOKENS, next_pow2

MAX_SPLITS = 64  # chunks per head at most: the merge reads every chunk's partial result
# Slots one program scores before a span is split into chunks merged in the kernel. H200, same
# process: one program per KV head over a 512-slot span against 64-slot chunks merged, Llama-1B
# shape AR loop 1059.4 vs 1058.8 tok/s (equal), Llama-8B shape 233.6 vs 228.3 (results/gpu_run12/).
CHUNK_SLOTS = 512
# Positions of one step the kernel takes: up to MAX_GRAPH_TOKENS (a fixed-shape step's most): a
# verification, a draft round's first step, a prefill chunk. Measured (fiftieth run,
# results/gpu_run50/, H200): a verification step of 2-16 positions 9-11 % less device time on the
# 294 M and Llama-3.2-1B shapes, every speculative method faster in one process (5.6 M model: +7 to
# +19 %; 294 M: +3 to +8 %), parity with 0 unexplained bf16 divergences; the device smoke passed at
# 1, 5 and 16 rows (H100) once the merge's shared memory was bounded (MERGE_VALUES). 1 runs the
# one-row kernel alone (several-row steps on the compiled "math" attention, as before). A list so
# that a measurement sets it before the steps are captured (bench_gpu.py --attention-rows).
MAX_ROWS = [MAX_GRAPH_TOKENS]
MAX_QUERY_ROWS = 128  # query heads per KV head x positions: one program holds them all
# A program's query tile, at most: its rows (rounded up to a power of two, 16 at least) x the head
# size; and the head size. Why: the tile, the blocks of keys and values Triton stages for the
# scoring loop and their layout changes live in shared memory, which grows with both. Compiled by
# Triton 3.6 (torch 2.11's) and 3.9 with a launch's argument alignment, the largest tiles this
# allows need at most 144 KiB on sm_90 (head size 128, 64 rows), where an SM has 227 KiB, and 74 KiB
# on sm_80/86/89, where an Ampere or Ada GPU may have 99 KiB. A head size of 256 needs 130 KiB at one
# row (more than an RTX 4090 / L4 / A10 has) and 288 KiB at 64 rows on sm_90; no Llama, Qwen or
# Mistral shape has one, so it runs math. tests/test_decode_attention.py compiles them.
MAX_TILE_VALUES = 8192
MAX_HEAD_DIM = 128
# Partial results the merge reads per iteration, at most (float32 values: chunks x rows x head size).
# Why a bound: Triton stages the merge loop's loads in shared memory, all of one iteration at once;
# at 8 chunks a step of 16 rows of four 128-wide query heads (the 8B shape's verification) asked
# for 256 KiB, more than a Hopper SM has (H200, torch 2.11's Triton 3.6: results/gpu_run50/call1).
# 8192 keeps 8 chunks for every one-row step of up to 16 query heads of 64 (8 of 128) per KV head.
MERGE_VALUES = 8192


def merge_block(rows_p2: int, head_dim: int) -> int:
    """Chunks the merge reads per iteration: 8, fewer where :data:`MERGE_VALUES` would be exceeded
    (a power of two, as ``rows_p2`` and ``head_dim`` are; at least 1)."""
    return max(1, min(8, MERGE_VALUES // (rows_p2 * head_dim)))


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
    one sequence (cache row 0) at up to :data:`MAX_ROWS` consecutive positions, at most
    :data:`MAX_QUERY_ROWS` query rows per KV head, bfloat16/float16, a power-of-two head size of at
    least 16 (the kernel's tensor-core dots), on CUDA or a test's interpreter."""
    b, t, heads, hd = q.shape
    kv_heads = k_cache.shape[1]
    return (_REGISTERED[0] and gemv.kernel_device(q) and rows is None and b == 1 and 1 <= t <= MAX_ROWS[0]
            and q.dtype in (torch.bfloat16, torch.float16) and k_cache.dtype == q.dtype
            and hd & (hd - 1) == 0 and heads % kv_heads == 0 and kv_heads <= COUNTER_SLOTS
            and heads // kv_heads * t <= MAX_QUERY_ROWS and tile_fits(heads // kv_heads * t, hd)
            and k_cache.stride(-1) == 1)


def dot_tile(rows: int) -> int:
    """A tile of ``rows`` rows for the kernel's dots (a KV head's query rows; the step's keys): a power
    of two, 16 at least (tensor-core dots take 16 rows or more)."""
    return max(16, next_pow2(rows))


def tile_fits(query_rows: int, head_dim: int) -> bool:
    """The head size and a program's query tile within :data:`MAX_HEAD_DIM` and
    :data:`MAX_TILE_VALUES` (the kernel's shared memory fits an SM)."""
    return 16 <= head_dim <= MAX_HEAD_DIM and dot_tile(query_rows) * head_dim <= MAX_TILE_VALUES


def _rows(x: torch.Tensor, t: int, width: int) -> torch.Tensor:
    """``x`` as ``t`` rows of ``width`` with unit stride along a row: a view where the layout allows
    (the q/k/v split of one projection is read in place), else a copy."""
    x = x.reshape(t, width)
    return x if x.stride(-1) == 1 else x.contiguous()


def launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, out: torch.Tensor, scale: float,
           kv_len: int, window: int = 0, config: AttentionConfig | None = None) -> None:
    """``out`` ``[T, H * hd]`` = attention of the RoPE'd query heads ``q`` ``[T, H * hd]`` of ``T``
    consecutive positions ``pos[0] + t`` over cache row 0's slots ``[0, pos[0] + t]``, after writing
    the RoPE'd keys ``k`` and the values ``v`` (``[T, KV * hd]`` each) to slots ``pos[0] + t`` of
    ``k_cache`` / ``v_cache`` ``[R, KV, S, hd]`` (``pos``: an integer tensor whose first element is
    the first position, ``< kv_len``; a row whose slot lies past the cache -- a fixed-shape step's
    padding -- writes nothing). ``cos``/``sin``: the RoPE rows of the positions ``[T, hd]``. One
    position: 1-D ``[H * hd]`` operands are one row. ``window`` > 0: each row sees only the last
    ``window`` positions (Mistral's sliding window)."""
    kv_heads, slots, hd = k_cache.shape[1], k_cache.shape[2], k_cache.shape[3]
    t = q.shape[0] if q.dim() > 1 else 1
    heads = q.numel() // (t * hd)
    for name, x, size in (("q", q, t * heads * hd), ("k", k, t * kv_heads * hd), ("v", v, t * kv_heads * hd),
                          ("cos", cos, t * hd), ("sin", sin, t * hd), ("out", out, t * heads * hd)):
        if x.numel() != size:
            raise ValueError(f"decode_attention.launch: {name} has {x.numel()} elements, needs {size} "
                             f"({t} position(s))")
    if pos.numel() < 1:
        raise ValueError("decode_attention.launch: pos is empty, needs the first position")
    if v_cache.shape != k_cache.shape or v_cache.stride() != k_cache.stride():
        raise ValueError(f"decode_attention.launch: v_cache {tuple(v_cache.shape)} must match k_cache "
                         f"{tuple(k_cache.shape)} and its layout")
    if not 1 <= kv_len <= slots:
        raise ValueError(f"decode_attention.launch: kv_len={kv_len} must be in [1, {slots}] (the cache's slots)")
    groups = heads // kv_heads
    if groups * t > MAX_QUERY_ROWS:
        raise ValueError(f"decode_attention.launch: {groups} query heads per KV head x {t} positions = "
                         f"{groups * t} rows; the kernel takes at most {MAX_QUERY_ROWS}")
    if not tile_fits(groups * t, hd):
        raise ValueError(f"decode_attention.launch: head size {hd} with {groups * t} query rows (a tile of "
                         f"{dot_tile(groups * t)}) exceeds the kernel's tile: head size in [16, {MAX_HEAD_DIM}], "
                         f"tile rows x head size <= {MAX_TILE_VALUES}")
    q, k, v = _rows(q, t, heads * hd), _rows(k, t, kv_heads * hd), _rows(v, t, kv_heads * hd)
    cos, sin = cos.contiguous(), sin.contiguous()
    if not out.is_contiguous():
        raise ValueError("decode_attention.launch: out must be contiguous")
    cfg = config or default_config(kv_len, hd)
    if cfg.chunk % cfg.block_n:
        raise ValueError(f"decode_attention: chunk={cfg.chunk} must be a multiple of block_n={cfg.block_n}")
    splits = -(-kv_len // cfg.chunk)
    rows_p2 = next_pow2(groups * t)  # a KV head's query rows, rounded up to a power of two
    merge = splits > 1
    part = out.new_empty((kv_heads * splits * rows_p2 * hd,) if merge else (1,), dtype=torch.float32)
    stat = out.new_empty((kv_heads * splits * rows_p2 * 2,) if merge else (1,), dtype=torch.float32)
    _kernel()[(kv_heads, splits)](
        q, k, v, cos, sin, pos, k_cache, v_cache, out, part, stat, counters(out.device),
        k_cache.stride(1), k_cache.stride(2), q.stride(0), k.stride(0), v.stride(0), slots, kv_len, int(window),
        float(scale), cfg.chunk,
        G=groups, GP=rows_p2, HD=hd, ROWS=t, BLOCK_R=dot_tile(groups * t), BLOCK_T=dot_tile(t),
        BLOCK_N=cfg.block_n, MERGE=merge,
        MERGE_BLOCK=merge_block(rows_p2, hd), HAS_WINDOW=window > 0, DOT_F32=gemv.interpreted(),
        num_warps=cfg.num_warps, **gemv.launch_options(out.device),
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
        t = q.shape[1]  # positions of the step: q is [1, T, H, hd], a view of the q/k/v projection
        out = torch.empty(q.numel(), dtype=q.dtype, device=q.device)
        launch(q.reshape(t, -1), k.reshape(t, -1), v.reshape(t, -1), cos.reshape(t, -1), sin.reshape(t, -1),
               pos.reshape(-1)[:1], k_cache[0:1], v_cache[0:1], out, scale, kv_len, window)
        return out

    @decode_attention_op.register_fake
    def _(q, k, v, cos, sin, pos, k_cache, v_cache, scale, kv_len, window):
        return q.new_empty(q.numel())

    _REGISTERED[0] = True
    return True


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           pos: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scale: float, kv_len: int,
           window: int) -> torch.Tensor:
    """A one-sequence step's attention block from the projections: ``q`` ``[1, T, H, hd]``,
    ``k``/``v`` ``[1, T, KV, hd]`` (or ``[1, T, KV * hd]``) before RoPE at the consecutive positions
    ``pos`` ``[1, T]``, ``cos``/``sin`` ``[1, T, hd]``; returns ``[1, T, H * hd]``. Only where
    :func:`kernel_applies`."""
    out = torch.ops.hsd_bench.decode_attention(q, k, v, cos, sin, pos, k_cache, v_cache, scale, kv_len, window)
    return out.view(1, q.shape[1], -1)


def check_against_eager(heads: int, kv_heads: int, head_dim: int, kv_len: int, device: torch.device,
                        positions: tuple[int, ...] | None = None, window: int = 0, seed: int = 0,
                        rows: int = 1) -> dict:
    """The kernel on ``device`` against the "math" attention it replaces (bfloat16), for a step of
    ``rows`` consecutive positions starting at a few places of a ``kv_len`` span (chunk boundaries,
    the first and last slot): the cache slots written must equal eager's RoPE'd keys and the values
    bit for bit on the GPU, every other slot untouched, and the output within one bfloat16 spacing of
    the largest value plus the largest output (``rel_err``, ``passed``). What a GPU run checks before
    timing the kernel (``bench_gpu.py --parts smoke``); the CPU tests run it through Triton's
    interpreter. A launch that raises fails this check only (``error``): the smoke's other checks
    still run (the fiftieth run's smoke lost them all to one kernel that asked for too much shared
    memory)."""
    from hsd_bench.models.native.layers import attention, rotate_half  # layers imports this module

    if not register():
        return {"passed": False, "error": "Triton does not import here"}
    g = torch.Generator(device=device).manual_seed(seed)
    bf16 = torch.bfloat16

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device).to(bf16)

    groups, slots, t = heads // kv_heads, kv_len + 1, rows
    last = kv_len - t  # the last first position whose rows all lie in the span
    positions = positions or tuple(sorted({p for p in (0, 63, 64, kv_len // 2, last) if p <= last}))
    if not positions or min(positions) < 0 or max(positions) > last:
        raise ValueError(f"check_against_eager: first positions {positions} must lie in [0, {last}] "
                         f"({t} rows in a span of {kv_len})")
    worst, cache_ok, others_ok = 0.0, True, True
    for pos in positions:
        k_cache, v_cache = randn(1, kv_heads, slots, head_dim), randn(1, kv_heads, slots, head_dim)
        q, k, v = randn(t, heads * head_dim), randn(t, kv_heads * head_dim), randn(t, kv_heads * head_dim)
        angle = torch.rand(t, head_dim // 2, generator=g, device=device) * 6.3
        cos, sin = torch.cat([angle.cos()] * 2, -1).to(bf16), torch.cat([angle.sin()] * 2, -1).to(bf16)
        ref_k, ref_v = k_cache.clone(), v_cache.clone()
        out = torch.empty(t, heads * head_dim, dtype=bf16, device=device)
        try:
            launch(q, k, v, cos, sin, torch.tensor([pos], device=device), k_cache, v_cache, out, head_dim**-0.5,
                   kv_len, window)
        except Exception as error:  # e.g. Triton's OutOfResources: this check fails, the others still run
            return {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "kv_len": kv_len, "rows": t,
                    "window": window, "passed": False, "error": f"{type(error).__name__}: {error}"}
        # the compiled math path's arithmetic (layers.layer_forward): RoPE in float32 rounded once,
        # then the masked attention of a KV head's query heads x positions as its rows
        qf = q.view(1, t, heads, head_dim).transpose(1, 2).float()
        kf = k.view(1, t, kv_heads, head_dim).transpose(1, 2).float()
        q_rope = (qf * cos.float() + rotate_half(qf) * sin.float()).to(bf16)
        k_rope = (kf * cos.float() + rotate_half(kf) * sin.float()).to(bf16)
        ref_k[0, :, pos : pos + t] = k_rope[0]
        ref_v[0, :, pos : pos + t] = v.view(t, kv_heads, head_dim).transpose(0, 1)
        span = torch.arange(kv_len, device=device)
        at = pos + torch.arange(t, device=device)[:, None]
        seen = (span[None, :] <= at) & ((span[None, :] > at - window) if window else True)
        mask = torch.where(seen, 0.0, torch.finfo(bf16).min).to(bf16).repeat(groups, 1)[None, None]
        ref = attention(q_rope.reshape(1, kv_heads, groups * t, head_dim), ref_k[:, :, :kv_len],
                        ref_v[:, :, :kv_len], mask, head_dim**-0.5, "math")
        ref = ref.reshape(1, heads, t, head_dim).transpose(1, 2).reshape(t, heads * head_dim)
        # Each path rounds the probabilities to bfloat16 before p·V, an error relative to the values
        # (not to the output, an average far smaller than they are), and rounds the output.
        scale = v.float().abs().max() + ref.float().abs().max()
        err = ((out.float() - ref.float()).abs().max() / scale).item()
        if not err <= worst:  # a NaN too (max() would keep the number before it)
            worst = err
        written = (k_cache[0, :, pos : pos + t].float() - ref_k[0, :, pos : pos + t].float()).abs().max().item()
        cache_ok &= bool(torch.equal(v_cache, ref_v)) and (written == 0.0 or gemv.interpreted())
        k_cache[0, :, pos : pos + t], ref_k[0, :, pos : pos + t] = 0, 0
        others_ok &= bool(torch.equal(k_cache, ref_k))
    out = {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "kv_len": kv_len, "rows": t,
           "positions": list(positions), "window": window, "cache_write_equal": cache_ok,
           "other_slots_untouched": others_ok, "rel_err": worst}
    out["passed"] = cache_ok and others_ok and worst <= 2.0**-7
    return out
