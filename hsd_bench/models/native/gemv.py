"""The linear layers of a decode or verification step as one-pass GEMVs (a Triton kernel).

Why a kernel of our own: a batch-1 step multiplies 1-16 rows by every weight
matrix once, so its floor is the time to read the weights. cuBLAS reads the
large ones near the copy bandwidth, but for the small per-layer matrices of a
1B model (q/k/v, o, the down projection) it picks split-K kernels plus a
separate reduce that read them at about half of it (docs/performance.md,
"Roofline"). This kernel streams each weight matrix once, a block of output
features per program, with the reduction over ``K`` inside the program: one
kernel per matrix, no partial sums in memory.

It is the ``matmul="gemv"`` option of the native backend's fixed-shape steps
(``layers.layer_forward``); ``"cublas"`` (``F.linear``) stays the default
until a GPU run measures the kernel faster (docs/performance.md). Rows are
independent: a row's result does not depend on how many rows the step has
(one row: a multiply-and-sum; 2-16 rows: ``tl.dot`` on a 16-row tile).
Without Triton (or for more than :data:`MAX_ROWS` rows, or float32, whose
``tl.dot`` would round through TF32) the op is ``F.linear``.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F

MAX_ROWS = 1  # one-row steps only: for 8 rows cuBLAS measured as fast or faster (docs/performance.md)


class GemvConfig(NamedTuple):
    """Tile sizes and launch options of one call (a GPU run picks them, see :func:`default_config`)."""

    block_n: int = 2  # output features per program
    block_k: int = 1024  # reduction slice loaded per iteration
    num_warps: int = 4
    num_stages: int = 3


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # noqa: BLE001 -- any import failure means: no kernel
        return False
    return True


# Tiles measured fastest on an H200 for the Llama-3 shapes' projections, (N, K) -> (block_n,
# block_k), each call after the elementwise kernel that writes its input (scripts/bench_gemv.py
# --sweep, results/gpu_run11/): the good tiles lie within a few percent of each other, but a
# poor one costs up to 15 % (Llama-8B's down projection with two features per program).
TUNED_TILES: dict[tuple[int, int], tuple[int, int]] = {
    (3072, 2048): (4, 1024),  # Llama-3.2-1B q/k/v
    (2048, 2048): (2, 1024),  # 1B o
    (16384, 2048): (4, 1024),  # 1B gate/up
    (2048, 8192): (1, 1024),  # 1B down
    (6144, 4096): (2, 1024),  # Llama-3.1-8B q/k/v
    (4096, 4096): (4, 1024),  # 8B o
    (28672, 4096): (2, 2048),  # 8B gate/up
    (4096, 14336): (4, 1024),  # 8B down
}


def default_config(n: int, k: int) -> GemvConfig:
    """Tiles for one row times a ``[n, k]`` matrix: :data:`TUNED_TILES` where measured, else two
    output features per program and 1024-wide slices (the fastest or within a few percent of it
    for every matrix of the sweep)."""
    block_n, block_k = TUNED_TILES.get((n, k), (2, 1024))
    return GemvConfig(block_n, block_k)


@functools.lru_cache(maxsize=None)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def gemv_kernel(
        x_ptr, w_ptr, b_ptr, y_ptr, N, K, stride_wn,
        HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        pid = tl.program_id(0)
        rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        n_ok = rn < N
        w_ptrs = w_ptr + rn[:, None] * stride_wn + rk[None, :]
        # Weights are loaded one slice ahead of their use (the slice a step multiplies was
        # requested a step earlier), so the next slice's read overlaps this step's arithmetic.
        w = tl.load(w_ptrs, mask=n_ok[:, None] & (rk < K)[None, :], other=0.0)
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            x = tl.load(x_ptr + k0 + rk, mask=(k0 + rk) < K, other=0.0)
            w_next = tl.load(w_ptrs + BLOCK_K, mask=n_ok[:, None] & ((k0 + BLOCK_K + rk) < K)[None, :], other=0.0)
            acc += tl.sum(w.to(tl.float32) * x.to(tl.float32)[None, :], axis=1)
            w = w_next
            w_ptrs += BLOCK_K
        if HAS_BIAS:
            acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)
        tl.store(y_ptr + rn, acc.to(y_ptr.dtype.element_ty), mask=n_ok)

    return gemv_kernel


def interpreted() -> bool:
    """Triton's CPU interpreter is on (``TRITON_INTERPRET=1``): how the tests run the kernel."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def kernel_applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether :func:`linear` runs the kernel for these operands (else it is ``F.linear``)."""
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    return (_REGISTERED[0] and (x.is_cuda or interpreted()) and 1 <= rows <= MAX_ROWS and x.dtype == w.dtype
            and x.dtype in (torch.bfloat16, torch.float16) and w.dim() == 2 and w.stride(-1) == 1)


def launch(x1: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y1: torch.Tensor,
           config: GemvConfig | None = None) -> None:
    """``y1 = w @ x1 (+ b)`` for the contiguous vectors ``x1`` ``[K]`` and ``y1`` ``[N]``."""
    n, k = w.shape
    cfg = config or default_config(n, k)
    _kernel()[((n + cfg.block_n - 1) // cfg.block_n,)](
        x1, w, b if b is not None else w, y1, n, k, w.stride(0),
        HAS_BIAS=b is not None, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )


def _linear_impl(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if not kernel_applies(x, w):
        return F.linear(x, w, b)
    x1 = x.reshape(-1).contiguous()
    y1 = torch.empty(w.shape[0], dtype=x.dtype, device=x.device)
    launch(x1, w, b, y1)
    return y1.reshape(*x.shape[:-1], w.shape[0])


_REGISTERED = [False]  # a plain flag, not a cached call: kernel_applies runs while dynamo traces


def register() -> bool:
    """Define the op ``torch.ops.hsd_bench.skinny_linear`` (once, before anything is compiled:
    dynamo does not trace the definition). ``torch.compile`` keeps it as one opaque call in the
    compiled step -- it is a whole matrix's work, nothing around it would fuse into it -- and the
    step's CUDA graph captures its launch like any other kernel. Returns whether the kernel is
    available (Triton imports)."""
    if _REGISTERED[0] or not triton_available():
        return _REGISTERED[0]

    @torch.library.custom_op("hsd_bench::skinny_linear", mutates_args=())
    def skinny_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return _linear_impl(x, w, b)

    @skinny_linear.register_fake
    def _(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return x.new_empty((*x.shape[:-1], w.shape[0]))

    _REGISTERED[0] = True
    return True


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, w, b)``, through the GEMV kernel where it applies (:func:`kernel_applies`:
    after :func:`register`, which ``NativeLlama(matmul="gemv")`` calls)."""
    if not kernel_applies(x, w):
        return F.linear(x, w, b)
    return torch.ops.hsd_bench.skinny_linear(x, w, b)
