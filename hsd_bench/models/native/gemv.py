"""The projections of a one-row decode step as one-pass GEMVs (a Triton kernel).

Why a kernel of our own: a batch-1 step multiplies one row by every weight
matrix once, so its floor is the time to read the weights. cuBLAS reads the
large ones near the copy bandwidth, but the small per-layer matrices of a 1B
model (q/k/v, o, the down projection) at about half of it (split-K kernels
plus a reduce; docs/performance.md). This kernel streams each matrix once, a
few output features per program, the reduction over ``K`` inside the program
and the next weight slice requested while the current one is multiplied -- or,
where one slice covers the row, every weight of the program requested before it
waits for the kernel ahead of it (launched early, it overlaps that kernel's end).

A gated MLP's activation is its epilogue (:func:`gate_up_silu`). The residual adds and
norms around the projections are a kernel of their own (:mod:`.add_norm`): fused into the
GEMV, every program recomputed the norm's scale, which measured slower than that kernel
launched early (docs/gpu-runs.md, "Thirteenth run").

It is the native backend's ``matmul="gemv"`` (run.py: ``model.matmul``, the
default) for one-row fixed-shape steps in bfloat16/float16 on CUDA; steps of
more rows (cuBLAS measured as fast or faster at 8 rows), float32, prefill and
machines without Triton run ``F.linear``.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F

MAX_ROWS = 1  # one-row steps only: at 8 rows cuBLAS measured as fast or faster (docs/gpu-runs.md, "Eleventh run")


class GemvConfig(NamedTuple):
    """Tile sizes and launch options of one call (a GPU run picks them, see :func:`default_config`)."""

    block_n: int = 2  # output features per program
    block_k: int = 1024  # reduction slice loaded per iteration
    num_warps: int = 4
    num_stages: int = 3


def interpreted() -> bool:
    """Triton's CPU interpreter is on (``TRITON_INTERPRET=1`` before triton was imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# Tests: run the kernel on CPU tensors through the interpreter. Off, CPU steps are F.linear even
# where the interpreter is on (it would be far slower, and no CPU run should depend on it).
CPU_INTERPRETER = [False]


# Programmatic dependent launch (Hopper and later): a kernel of ours is launched while the kernel
# before it still runs, requests its first weight slice -- which no kernel writes -- and only then
# waits (griddepcontrol.wait) for that kernel's results. The launch and the first loads overlap the
# previous kernel's tail instead of following it; everything that reads another kernel's output or
# writes memory comes after the wait, so results are bit-equal to a plain launch. A list so that a
# measurement can switch it off (before the step is captured: a captured launch keeps its mode).
PROGRAMMATIC_LAUNCH = [True]


def programmatic_launch(device: torch.device) -> bool:
    """Whether kernels launched on ``device`` now overlap their predecessor
    (:data:`PROGRAMMATIC_LAUNCH`): a CUDA device of compute capability 9.0 or later, not the
    interpreter (it has no grid dependency control), and a Triton that has it (3.3 or later;
    older ones launch plainly)."""
    return (PROGRAMMATIC_LAUNCH[0] and device.type == "cuda" and not interpreted() and _triton_launches_early()
            and _capability(device.index if device.index is not None else torch.cuda.current_device()) >= (9, 0))


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


@functools.lru_cache(maxsize=None)
def _triton_launches_early() -> bool:
    """Triton has grid dependency control in the language and the ``launch_pdl`` launch option."""
    try:
        import dataclasses

        import triton.language.extra.cuda as cuda_extra
        from triton.backends.nvidia.compiler import CUDAOptions
    except Exception:  # noqa: BLE001 -- any import failure means: no early launch
        return False
    return (hasattr(cuda_extra, "gdc_wait") and hasattr(cuda_extra, "gdc_launch_dependents")
            and "launch_pdl" in {f.name for f in dataclasses.fields(CUDAOptions)})


def launch_options(device: torch.device) -> dict:
    """The ``PDL`` constexpr and launch option of a kernel of ours on ``device``."""
    return {"PDL": True, "launch_pdl": True} if programmatic_launch(device) else {"PDL": False}


def kernel_device(t: torch.Tensor) -> bool:
    """``t`` lives where our Triton kernels run: on CUDA, or on CPU through the interpreter a test
    asked for (:data:`CPU_INTERPRETER`). Each kernel's ``kernel_applies`` starts from this."""
    return t.is_cuda or (CPU_INTERPRETER[0] and interpreted())


def triton_available() -> bool:
    """Triton imports, where a kernel could run: CUDA, or the CPU interpreter a test asked for
    (:data:`CPU_INTERPRETER`). Elsewhere triton is not even imported (a CPU run pays nothing)."""
    if not (torch.cuda.is_available() or (CPU_INTERPRETER[0] and interpreted())):
        return False
    return _triton_imports()


@functools.lru_cache(maxsize=None)
def _triton_imports() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # noqa: BLE001 -- any import failure means: no kernel
        return False
    return True


# Tiles measured fastest on an H200 for the Llama-3 shapes' projections, (N, K) -> (block_n,
# block_k, num_warps), in the model: each set's AR loop on the real shapes, graphs recaptured
# per set, alternated in one process (docs/gpu-runs.md, "Twenty-fourth run";
# results/gpu_run24/). Where one slice covers the row (block_k >= K) a program requests all of
# its weights before it waits for the previous kernel (programmatic launch): on the matrices
# that read in a few microseconds (q/k/v, o) that overlap is most of the gain -- Llama-8B's AR
# loop 85.5-86.8 -> 90.7-90.8 % of copy bandwidth, Llama-1B's 69.6-69.8 -> 71.8-72.0 %. The 1B
# down projection kept its sliced tiles (one slice of 8192 measured 0.2-0.4 % slower).
TUNED_TILES: dict[tuple[int, int], tuple[int, int, int]] = {
    (3072, 2048): (1, 2048, 4),  # Llama-3.2-1B q/k/v
    (2048, 2048): (1, 2048, 4),  # 1B o
    (16384, 2048): (2, 2048, 8),  # 1B gate/up
    (2048, 8192): (1, 1024, 4),  # 1B down
    (6144, 4096): (1, 4096, 8),  # Llama-3.1-8B q/k/v
    (4096, 4096): (1, 4096, 8),  # 8B o
    (28672, 4096): (2, 4096, 8),  # 8B gate/up
    (4096, 14336): (1, 16384, 16),  # 8B down: one slice, its last 2048 columns masked
}


def default_config(n: int, k: int) -> GemvConfig:
    """Tiles for one row times a ``[n, k]`` matrix: :data:`TUNED_TILES` where measured, else two
    output features per program and 1024-wide slices (the fastest or within a few percent of it
    for every matrix of the eleventh run's sweep; rows up to 1024 wide take one slice)."""
    block_n, block_k, num_warps = TUNED_TILES.get((n, k), (2, 1024, 4))
    return GemvConfig(block_n, block_k, num_warps)


@functools.lru_cache(maxsize=None)
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def gemv_kernel(
        x_ptr, w_ptr, b_ptr, y_ptr, N, K, stride_wn, HAS_BIAS: tl.constexpr, GATE_UP: tl.constexpr,
        BLOCK_N: tl.constexpr, ROWS: tl.constexpr, BLOCK_K: tl.constexpr, ONE_SLICE: tl.constexpr,
        PDL: tl.constexpr,
    ):
        dtype = y_ptr.dtype.element_ty  # rounding to it: to nearest-even on the GPU, as torch rounds
        pid = tl.program_id(0)
        r = tl.arange(0, ROWS)  # the tile's weight rows
        if GATE_UP:  # rows j of the gate and j of the up projection side by side: [2 N, K] stacked
            out = pid * BLOCK_N + r // 2
            w_row = out + (r % 2) * N
        else:
            out = pid * BLOCK_N + r
            w_row = out
        rk = tl.arange(0, BLOCK_K)
        n_ok = out < N
        w_ptrs = w_ptr + w_row[:, None] * stride_wn + rk[None, :]
        # Weights are loaded one slice ahead of their use (the slice a step multiplies was
        # requested a step earlier), so the next slice's read overlaps this step's arithmetic.
        if PDL:  # the next kernel may launch once every program of this one has started
            tl.extra.cuda.gdc_launch_dependents()
        w = tl.load(w_ptrs, mask=n_ok[:, None] & (rk < K)[None, :], other=0.0)
        if PDL:  # the first weight slice is requested; the inputs are the previous kernel's results
            tl.extra.cuda.gdc_wait()
        if ONE_SLICE:  # the slice is the whole row: the program's weights were all requested before
            # the wait, and no registers are held for a next slice
            xk = tl.load(x_ptr + rk, mask=rk < K, other=0.0)
            acc = tl.sum(w.to(tl.float32) * xk.to(tl.float32)[None, :], axis=1)
        else:
            acc = tl.zeros((ROWS,), dtype=tl.float32)
            for k0 in range(0, K, BLOCK_K):
                k_ok = (k0 + rk) < K
                xk = tl.load(x_ptr + k0 + rk, mask=k_ok, other=0.0)
                w_next = tl.load(w_ptrs + BLOCK_K, mask=n_ok[:, None] & ((k0 + BLOCK_K + rk) < K)[None, :], other=0.0)
                acc += tl.sum(w.to(tl.float32) * xk.to(tl.float32)[None, :], axis=1)
                w = w_next
                w_ptrs += BLOCK_K
        if HAS_BIAS:
            acc += tl.load(b_ptr + w_row, mask=n_ok, other=0.0).to(tl.float32)
        if GATE_UP:  # silu(gate) * up of the rounded projections, in float32 rounded once (as compiled)
            gate, up = tl.split(tl.reshape(acc.to(dtype).to(tl.float32), (BLOCK_N, 2)))
            rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
            tl.store(y_ptr + rn, (gate * tl.sigmoid(gate) * up).to(dtype), mask=rn < N)
        else:
            tl.store(y_ptr + out, acc.to(dtype), mask=n_ok)

    return gemv_kernel


def kernel_applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether :func:`linear` runs the kernel for these operands (else it is ``F.linear``)."""
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    return (_REGISTERED[0] and kernel_device(x) and 1 <= rows <= MAX_ROWS and x.dtype == w.dtype
            and x.dtype in (torch.bfloat16, torch.float16) and w.dim() == 2 and w.stride(-1) == 1)


def launch(x1: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y1: torch.Tensor,
           config: GemvConfig | None = None, *, gate_up: bool = False) -> None:
    """``y1 = w @ x1 (+ b)`` for the contiguous vectors ``x1`` ``[K]`` and ``y1`` ``[N]``; with
    ``gate_up``, ``w`` is a gated MLP's gate and up projections stacked, ``[2 N, K]``, and ``y1`` gets
    ``silu(gate) * up`` ``[N]``.

    Launched early (:func:`programmatic_launch`), the kernel reads the start of ``w`` before the
    kernels launched just before it have finished: ``w`` must be a weight, which no kernel of the
    step writes."""
    rows, k = w.shape
    n = rows // 2 if gate_up else rows
    if gate_up and rows % 2:
        raise ValueError(f"gemv.launch: gate_up needs an even number of rows (got {rows})")
    for name, t, size in (("x", x1, k), ("y", y1, n), ("bias", b, rows)):
        if t is not None and t.numel() != size:  # the kernel would read or write past it
            raise ValueError(f"gemv.launch: {name} has {t.numel()} elements, the matrix [{rows}, {k}] needs {size}")
    cfg = config or default_config(rows, k)
    block_n = max(1, cfg.block_n // 2) if gate_up else cfg.block_n  # the same weight rows per program
    _kernel()[((n + block_n - 1) // block_n,)](
        x1, w, w if b is None else b, y1, n, k, w.stride(0), HAS_BIAS=b is not None, GATE_UP=gate_up,
        BLOCK_N=block_n, ROWS=2 * block_n if gate_up else block_n, BLOCK_K=cfg.block_k, ONE_SLICE=cfg.block_k >= k,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages, **launch_options(x1.device),
    )


def _gemv_impl(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, gate_up: bool) -> torch.Tensor:
    x1 = x.reshape(-1).contiguous()
    n = w.shape[0] // 2 if gate_up else w.shape[0]
    y1 = torch.empty(n, dtype=x.dtype, device=x.device)
    launch(x1, w, b, y1, gate_up=gate_up)
    return y1.reshape(*x.shape[:-1], n)


_REGISTERED = [False]  # a plain flag, not a cached call: kernel_applies runs while dynamo traces


def register() -> bool:
    """Define the op ``torch.ops.hsd_bench.gemv`` (once, before anything is compiled:
    dynamo does not trace the definition). ``torch.compile`` keeps it as one opaque call in the
    compiled step -- it is a whole matrix's work, nothing around it would fuse into it -- and the
    step's CUDA graph captures its launch like any other kernel. Returns whether the kernel is
    available (Triton imports)."""
    if _REGISTERED[0] or not triton_available():
        return _REGISTERED[0]

    @torch.library.custom_op("hsd_bench::gemv", mutates_args=())
    def gemv_op(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, gate_up: bool) -> torch.Tensor:
        return _gemv_impl(x, w, b, gate_up)

    @gemv_op.register_fake
    def _(x, w, b, gate_up):
        return x.new_empty((*x.shape[:-1], w.shape[0] // 2 if gate_up else w.shape[0]))

    _REGISTERED[0] = True
    return True


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, w, b)``, through the GEMV kernel where it applies (:func:`kernel_applies`:
    after :func:`register`, which ``NativeLlama(matmul="gemv")`` calls)."""
    if not kernel_applies(x, w):
        return F.linear(x, w, b)
    return torch.ops.hsd_bench.gemv(x, w, b, False)


def gate_up_silu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``silu(gate) * up`` of ``linear(x, w, b)`` for a gated MLP's stacked ``[2 I, D]`` gate/up weights,
    the activation in the projection's epilogue instead of a kernel of its own: each program
    multiplies row ``j`` of the gate and row ``j`` of the up projection, so nothing is recomputed.
    ``F.linear`` and the activation where the kernel does not apply."""
    if not kernel_applies(x, w):
        gate, up = F.linear(x, w, b).chunk(2, dim=-1)
        return F.silu(gate) * up
    return torch.ops.hsd_bench.gemv(x, w, b, True)


def check_against_eager(n: int, k: int, device: torch.device, seed: int = 0) -> dict:
    """The kernel's forms on ``device`` against float32 arithmetic on the same bfloat16 operands at an
    ``[n, k]`` matrix (with a bias; the gate/up form at ``[2 n, k]``): each result within one bfloat16
    spacing of its largest value (``passed``; the kernel rounds once, so about half of that). What a GPU run checks before timing the kernel (``bench_gpu.py
    --parts smoke``, ``scripts/bench_gemv.py``); the CPU tests run the same forms through Triton's
    interpreter."""
    if not register():
        return {"passed": False, "error": "Triton does not import here"}
    g = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device).to(torch.bfloat16)

    x, w, b = randn(1, 1, k), randn(n, k) * k**-0.5, randn(n)
    w_gate_up = randn(2 * n, k) * k**-0.5
    # gate and up rounded to bfloat16 as the kernel rounds them before the activation
    gate, up = F.linear(x.float(), w_gate_up.float()).to(torch.bfloat16).float().chunk(2, dim=-1)

    def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
        return ((a.float() - ref).abs().max() / ref.abs().max()).item()

    out = {"n": n, "k": k, "linear_rel_err": rel(linear(x, w, b), F.linear(x.float(), w.float(), b.float())),
           "gate_up_silu_rel_err": rel(gate_up_silu(x, w_gate_up), F.silu(gate) * up)}
    out["passed"] = out["linear_rel_err"] <= 2.0**-7 and out["gate_up_silu_rel_err"] <= 2.0**-7
    return out
