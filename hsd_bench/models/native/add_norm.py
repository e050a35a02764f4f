"""A one-row step's residual add and RMSNorm as one Triton kernel, launched early.

Why a kernel of our own: a layer opens its attention and its MLP block with a residual add
and an RMSNorm. Compiled, each was a looped reduction by one program (2.45 µs on the Llama-8B
shape, docs/gpu-runs.md "Twelfth run"); fused into the GEMV that follows, every program of
it recomputed the scale. This kernel reads the row in one load and, launched while the
projection before it still runs (:data:`gemv.PROGRAMMATIC_LAUNCH`), requests the norm's weight
before waiting for that projection's output; the projection after it, launched the same way,
requests its weights meanwhile. H200, same process, AR loop: Llama-1B shape 1.045x the GEMV
with the norms fused in (both launched early), Llama-8B shape 0.98x the compiled norms
(launched early; 1.006x launched plainly) -- so it runs on rows up to :data:`MAX_HIDDEN` wide.

Rounding is eager's (HF's ``LlamaRMSNorm`` after the residual add): the sum rounded to the model's
dtype, the scale in float32, ``x * scale`` rounded, times the weight rounded. The squares are
summed in another order than inductor's, so the scale may differ from the compiled path's in
its last float32 bit.

It runs where :func:`kernel_applies` (one-row bfloat16/float16 steps on CUDA with the GEMV
kernel, run.py's default); everything else adds and normalises in plain PyTorch.
"""

from __future__ import annotations

import functools

import torch

from hsd_bench.models.native import gemv

MAX_WIDTH = 16384  # one program holds the row
# Widest row whose layers take the kernel (wider ones: the compiled norms), see the module doc.
MAX_HIDDEN = 2048


@functools.lru_cache(maxsize=None)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def add_norm_kernel(x_ptr, d_ptr, ln_ptr, y_ptr, xs_ptr, K, eps, HAS_DELTA: tl.constexpr,
                        BLOCK: tl.constexpr, PDL: tl.constexpr):
        dtype = y_ptr.dtype.element_ty
        rk = tl.arange(0, BLOCK)
        ok = rk < K
        if PDL:  # the next kernel may launch now; the weight is no kernel's output
            tl.extra.cuda.gdc_launch_dependents()
        ln = tl.load(ln_ptr + rk, mask=ok, other=0.0).to(tl.float32)
        if PDL:
            tl.extra.cuda.gdc_wait()
        x = tl.load(x_ptr + rk, mask=ok, other=0.0)
        if HAS_DELTA:  # the residual add, rounded to the model's dtype as in eager
            x = (x.to(tl.float32) + tl.load(d_ptr + rk, mask=ok, other=0.0).to(tl.float32)).to(dtype)
            tl.store(xs_ptr + rk, x, mask=ok)
        xf = x.to(tl.float32)
        rstd = tl.rsqrt(tl.sum(xf * xf, axis=0) / K + eps)
        tl.store(y_ptr + rk, (ln * (xf * rstd).to(dtype).to(tl.float32)).to(dtype), mask=ok)

    return add_norm_kernel


def kernel_applies(x: torch.Tensor) -> bool:
    """Whether a layer's add + norm of the row(s) ``x`` ``[..., D]`` runs the kernel: one row,
    bfloat16/float16, at most :data:`MAX_HIDDEN` wide, on CUDA or a test's interpreter, after
    :func:`register`."""
    return (_REGISTERED[0] and gemv.kernel_device(x) and x.numel() == x.shape[-1]
            and 1 <= x.shape[-1] <= MAX_HIDDEN and x.dtype in (torch.bfloat16, torch.float16))


def launch(x1: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float, y1: torch.Tensor,
           x_sum: torch.Tensor | None = None) -> None:
    """``y1 = rms_norm(x1 + delta) * weight`` for the contiguous rows ``[K]`` (``delta=None``: of
    ``x1``), the sum written to ``x_sum``. Launched early (:func:`gemv.programmatic_launch`), it reads
    ``weight`` before the kernels launched just before it have finished: a weight no kernel writes."""
    k = x1.numel()
    if delta is not None and x_sum is None:
        raise ValueError("add_norm.launch: the sum x1 + delta is written to x_sum, which is missing")
    for name, t in (("delta", delta), ("weight", weight), ("y", y1), ("x_sum", x_sum)):
        if t is not None and t.numel() != k:
            raise ValueError(f"add_norm.launch: {name} has {t.numel()} elements, the row has {k}")
    if not 1 <= k <= MAX_WIDTH:
        raise ValueError(f"add_norm.launch: a row of {k} elements; the kernel takes 1 to {MAX_WIDTH}")
    block = 1 << (k - 1).bit_length()
    _kernel()[(1,)](x1, x1 if delta is None else delta, weight, y1, y1 if x_sum is None else x_sum, k, float(eps),
                    HAS_DELTA=delta is not None, BLOCK=block, num_warps=min(16, max(4, block // 512)),
                    **gemv.launch_options(x1.device))


_REGISTERED = [False]  # a plain flag, not a cached call: kernel_applies runs while dynamo traces


def register() -> bool:
    """Define ``torch.ops.hsd_bench.add_rms_norm`` (once, before anything is compiled), an opaque
    call in a compiled step. Returns whether the kernel is available (Triton imports)."""
    if _REGISTERED[0] or not gemv.triton_available():
        return _REGISTERED[0]

    @torch.library.custom_op("hsd_bench::add_rms_norm", mutates_args=())
    def add_rms_norm_op(x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        x1 = x.reshape(-1).contiguous()
        y1 = torch.empty_like(x1)
        x_sum = torch.empty_like(x1) if delta is not None else None
        launch(x1, None if delta is None else delta.reshape(-1).contiguous(), weight, eps, y1, x_sum)
        return y1.view(x.shape), x1.new_empty(0) if x_sum is None else x_sum.view(x.shape)

    @add_rms_norm_op.register_fake
    def _(x, delta, weight, eps):
        return x.new_empty(x.shape), x.new_empty(x.shape if delta is not None else (0,))

    _REGISTERED[0] = True
    return True


def add_rms_norm(x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rms_norm(x + delta) * weight, x + delta)`` of one row in one kernel (``delta=None``: of
    ``x``, and ``x`` itself back). Only where :func:`kernel_applies`."""
    y, x_sum = torch.ops.hsd_bench.add_rms_norm(x, delta, weight, eps)
    return y, (x if delta is None else x_sum)


def check_against_eager(k: int, device: torch.device, seed: int = 0) -> dict:
    """The kernel on ``device`` against eager's add and RMSNorm of a bfloat16 row of ``k``: the sum
    must be equal bit for bit, the normalised row within one bfloat16 spacing of its largest value
    (``passed``; the scale's float32 sum runs in another order). What a GPU run checks before timing
    it (``bench_gpu.py --parts smoke``); the CPU tests run it through Triton's interpreter."""
    from hsd_bench.models.native.layers import rms_norm  # layers imports this module

    if not register():
        return {"passed": False, "error": "Triton does not import here"}
    g = torch.Generator(device=device).manual_seed(seed)
    x, delta = (torch.randn(1, 1, k, generator=g, device=device).to(torch.bfloat16) for _ in range(2))
    weight = (1 + 0.1 * torch.randn(k, generator=g, device=device)).to(torch.bfloat16)
    y, x_sum = add_rms_norm(x, delta, weight, 1e-5)
    ref = rms_norm(x + delta, weight, 1e-5)
    err = ((y.float() - ref.float()).abs().max() / ref.float().abs().max()).item()
    out = {"k": k, "sum_equal": bool(torch.equal(x_sum, x + delta)), "rel_err": err}
    out["passed"] = out["sum_equal"] and err <= 2.0**-7
    return out
