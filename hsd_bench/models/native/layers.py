"""The decoder math as plain functions over tensors (gpt-fast style).

No modules, no config objects: a layer is a :class:`LayerWeights` tuple and a
few integers, so ``torch.compile`` traces one small graph per input shape and
reuses it for every layer (all layers have the same shapes). Every operation
follows the Hugging Face Llama/Qwen2/Qwen3/Mistral code in the same order and
dtype, which is what makes float32 logits match it to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from hsd_bench.draft_stop import top_probability
from hsd_bench.models.native import add_norm, decode_attention, gemv


class LayerWeights(NamedTuple):
    ln_attn: torch.Tensor  # [D]
    wqkv: torch.Tensor  # [(H + 2 KV) * hd, D]: q, k, v projections stacked (one matmul)
    bqkv: torch.Tensor | None  # Qwen2's q/k/v bias
    q_norm: torch.Tensor | None  # Qwen3's per-head RMSNorm on q and k
    k_norm: torch.Tensor | None
    wo: torch.Tensor  # [D, H * hd]
    bo: torch.Tensor | None
    ln_mlp: torch.Tensor  # [D]
    w_gate_up: torch.Tensor  # [2 I, D]: gate and up projections stacked
    b_gate_up: torch.Tensor | None
    w_down: torch.Tensor  # [D, I]
    b_down: torch.Tensor | None


class Dims(NamedTuple):
    num_heads: int
    num_kv_heads: int
    head_dim: int
    eps: float


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HF's LlamaRMSNorm: normalise in float32, cast back, then scale."""
    dtype = x.dtype
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def step_inputs(
    pos: torch.Tensor, cos_table: torch.Tensor, sin_table: torch.Tensor, kv_len: int, window: int, groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every layer of a step shares, computed once per step: the RoPE rows
    ``[b, T, hd]`` of the positions ``pos`` ``[b, T]`` and the additive attention mask.

    The mask ``[b, 1, groups * T, kv_len]`` lets the query of sequence ``i`` at
    absolute position ``pos[i, t]`` see key slot ``s`` of its cache row iff
    ``s <= pos[i, t]`` (and ``s > pos[i, t] - window``). It is built from
    positions alone, so stale cache slots past the frontier (left there by a
    rollback, or written by padding) are never seen: rollback only resets a
    length. Rows are repeated per query group (see ``layer_forward``).
    """
    slots = torch.arange(kv_len, device=pos.device)
    allowed = slots[None, None, :] <= pos[:, :, None]
    if window:
        allowed = allowed & (slots[None, None, :] > pos[:, :, None] - window)
    zero = torch.zeros((), dtype=cos_table.dtype, device=pos.device)
    mask = torch.where(allowed, zero, torch.finfo(cos_table.dtype).min)
    return cos_table[pos], sin_table[pos], mask.repeat(1, groups, 1)[:, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, impl: str):
    """``softmax(q k^T * scale + mask) v``; ``impl`` = ``sdpa`` (PyTorch's fused
    kernels) or ``math`` (plain ops that ``torch.compile`` can fuse itself; also what
    ``triton`` runs where its one-row kernel does not apply)."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale + mask.float()
    return torch.matmul(scores.softmax(dim=-1).to(v.dtype), v)


def layer_forward(
    x: torch.Tensor,
    delta: torch.Tensor,
    pos: torch.Tensor,
    w: LayerWeights,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor,
    dims: Dims,
    attn_impl: str = "sdpa",
    rows: torch.Tensor | None = None,
    matmul: str = "cublas",
    window: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer on ``x + delta`` ``[b, T, D]``, sequence ``i`` at positions ``pos[i]``
    (``pos``: ``[b, T]``); returns the layer's output as ``(x, delta)``, its sum not yet taken.

    Why the sum is left open: the residual add that ends a layer is a pointwise
    kernel of its own when the layer is compiled alone, but it fuses into the
    next layer's first RMSNorm when that layer takes it as its first operation
    -- one kernel fewer per layer, the same additions in the same order and
    dtype (``NativeLlama._layers`` takes the last one). ``delta`` is zeros
    for a range's first layer.

    ``cos``/``sin``/``mask`` come from :func:`step_inputs`. Sequence ``i``
    writes this layer's keys/values at slots ``pos[i]`` of cache row
    ``rows[i]`` (``rows=None``: row ``i``) of the static caches
    ``[R, KV, S, hd]`` and attends over that row's slots ``[0, kv_len)``,
    ``kv_len = mask.shape[-1]``. ``matmul``: the projections through ``F.linear``
    (``"cublas"``) or the one-pass GEMV kernel (``"gemv"``, :mod:`.gemv`). ``attn_impl="triton"``:
    a one-row step's RoPE, cache write and attention as one kernel (:mod:`.decode_attention`; a
    step of up to ``decode_attention.MAX_ROWS`` consecutive positions, as every fixed-shape step's
    are), which needs the layer's sliding ``window`` (0: none; the mask carries it otherwise).
    """
    linear = gemv.linear if matmul == "gemv" else F.linear
    # One-row steps on the GEMV kernel also take each residual add + RMSNorm as one kernel
    # (add_norm.py, on rows up to add_norm.MAX_HIDDEN wide).
    norm_kernel = matmul == "gemv" and gemv.kernel_applies(x, w.wqkv) and add_norm.kernel_applies(x)
    heads, kv_heads, hd, eps = dims
    b, t = x.shape[0], x.shape[1]
    kv_len = mask.shape[-1]
    h, x = _add_norm(x, delta, w.ln_attn, eps, norm_kernel)
    qkv = linear(h, w.wqkv, w.bqkv)
    q, k, v = qkv.split([heads * hd, kv_heads * hd, kv_heads * hd], dim=-1)
    q = q.view(b, t, heads, hd)
    k = k.view(b, t, kv_heads, hd)
    if w.q_norm is not None:
        q = rms_norm(q, w.q_norm, eps)
        k = rms_norm(k, w.k_norm, eps)
    if attn_impl == "triton" and decode_attention.kernel_applies(q, k_cache, rows):
        o = decode_attention.attend(q, k, v, cos, sin, pos, k_cache, v_cache, hd**-0.5, kv_len, window)
        return _mlp_block(o, x, w, eps, norm_kernel, linear)
    q = q.transpose(1, 2)
    k = k.transpose(1, 2)
    v = v.view(b, t, kv_heads, hd).transpose(1, 2)
    cos, sin = cos[:, None], sin[:, None]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin

    if rows is None and b == 1:  # one sequence: row 0
        k_cache[:1, :, pos[0]] = k
        v_cache[:1, :, pos[0]] = v
    else:
        index = torch.arange(b, device=x.device) if rows is None else rows
        k_cache[index[:, None], :, pos] = k.transpose(1, 2)
        v_cache[index[:, None], :, pos] = v.transpose(1, 2)
    if rows is None:
        keys, values = k_cache[:b, :, :kv_len], v_cache[:b, :, :kv_len]
    else:
        keys, values = k_cache[:, :, :kv_len].index_select(0, rows), v_cache[:, :, :kv_len].index_select(0, rows)

    # Grouped-query attention without copying the cache per query head: the
    # G query heads sharing a KV head become G * T query rows of that head.
    groups = heads // kv_heads
    qg = q.reshape(b, kv_heads, groups * t, hd)
    o = attention(qg, keys, values, mask, hd**-0.5, attn_impl)
    o = o.reshape(b, heads, t, hd).transpose(1, 2).reshape(b, t, heads * hd)
    return _mlp_block(o, x, w, eps, norm_kernel, linear)


def _add_norm(x: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor, eps: float, kernel: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rms_norm(x + delta), x + delta)``: one kernel (add_norm.py) or plain PyTorch."""
    if kernel:
        return add_norm.add_rms_norm(x, delta, weight, eps)
    x = x + delta
    return rms_norm(x, weight, eps), x


def _mlp_block(o: torch.Tensor, x: torch.Tensor, w: LayerWeights, eps: float, norm_kernel: bool, linear
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer after attention: the output projection and residual add, the MLP block; its output
    as ``(x, delta)`` (see :func:`layer_forward`)."""
    h, x = _add_norm(x, linear(o, w.wo, w.bo), w.ln_mlp, eps, norm_kernel)
    if linear is gemv.linear:  # the GEMV's epilogue takes silu(gate) * up (F.linear where it does not apply)
        act = gemv.gate_up_silu(h, w.w_gate_up, w.b_gate_up)
    else:
        gate, up = linear(h, w.w_gate_up, w.b_gate_up).chunk(2, dim=-1)
        act = F.silu(gate) * up
    return x, linear(act, w.w_down, w.b_down)


def head_forward(hidden: torch.Tensor, norm: torch.Tensor, lm_head: torch.Tensor, eps: float) -> torch.Tensor:
    """Final norm + LM head: ``[1, T, D] -> [T, V]`` float32."""
    return F.linear(rms_norm(hidden, norm, eps), lm_head)[0].float()


ARGMAX_CHUNKS = 64  # slices of a vocabulary row reduced in parallel by argmax_rows


def argmax_rows(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(dim=-1)`` of ``[T, V]`` (ties to the lowest id) in two reductions.

    Why: compiled, one row's argmax ran as one program looping over the whole row, 29 µs for
    a 128k vocabulary on an H200 -- 3 % of a Llama-1B step (docs/gpu-runs.md, "Twelfth run"). Here each of :data:`ARGMAX_CHUNKS` slices of the row is reduced
    by its own program, then the slices' maxima: the first slice holding the maximum, and its
    first position of it, is the lowest id of the maximum, as ``argmax`` returns.
    """
    t, v = scores.shape
    width = -(-v // ARGMAX_CHUNKS)
    if width < 512:  # small vocabularies: one reduction is no slower
        return scores.argmax(dim=-1)
    padded = F.pad(scores, (0, ARGMAX_CHUNKS * width - v), value=float("-inf"))
    top, where = padded.view(t, ARGMAX_CHUNKS, width).max(dim=-1)  # first maximum of each slice
    best = top.argmax(dim=-1)  # first slice holding the row's maximum
    return best * width + where.gather(-1, best[:, None])[:, 0]


def greedy_head_forward(hidden: torch.Tensor, norm: torch.Tensor, lm_head: torch.Tensor, eps: float) -> torch.Tensor:
    """Final norm + LM head + argmax: ``[1, T, D] -> [T]`` token ids.

    The same float32 logits as :func:`head_forward` (so the same argmax, ties
    to the lowest id), reduced without leaving the compiled graph.
    """
    return argmax_rows(head_forward(hidden, norm, lm_head, eps))


def greedy_head_confidence(
    hidden: torch.Tensor, norm: torch.Tensor, lm_head: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`greedy_head_forward` plus each row's top probability (softmax at temperature 1),
    the confidence a draft_stop rule reads: ``[1, T, D] -> ([T] ids, [T] float32)``."""
    logits = head_forward(hidden, norm, lm_head, eps)
    return argmax_rows(logits), top_probability(logits, logits=True)
