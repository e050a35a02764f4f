"""Diagnosis (not part of the project): could a GEMV of 2-8 rows read the weights once, at the
one-row kernel's rate, where cuBLAS reads them at about a third of the copy bandwidth?

Why: a verification step's cuBLAS projections take longer than a whole one-row decode step on the
294 M shape (``diag_step_kernels.py``, this run). This times, per projection matrix of the 294 M
and Llama-3.2-1B shapes and per row count M in {1, 2, 4, 8}: ``F.linear`` (cuBLAS), the project's
one-row GEMV (M = 1, ``hsd_bench/models/native/gemv.py``) and a prototype kernel defined here
that multiplies each weight tile by all M rows (broadcast-multiply-sum, a few tile shapes; and a
``tl.dot`` form with the rows padded to 16), each also launched early as the project's kernel is
(the first weight slice requested before waiting for the kernel ahead). Timed as ``scripts/bench_gemv.py`` times: a CUDA graph
of back-to-back calls over copies of the matrix larger than L2, each call after the elementwise
kernel that writes its input, compiled and warmed up before capture.

    python3 results/gpu_run49/diag_rows_gemv.py OUT.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SHAPES = {  # name -> {matrix: (N, K)}, as the native backend stacks them
    "294M": {"qkv": (3072, 1024), "o": (1024, 1024), "gate_up": (5120, 1024), "down": (1024, 2560)},
    "llama-1b": {"qkv": (3072, 2048), "o": (2048, 2048), "gate_up": (16384, 2048), "down": (2048, 8192)},
}
ROWS = (1, 2, 4, 8)
TILES = [(1, 1024, 4), (2, 512, 4), (2, 1024, 4), (4, 256, 4), (4, 512, 8), (8, 256, 8)]  # (BN, BK, warps)


def kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def rows_gemv(x_ptr, w_ptr, y_ptr, N, K, M: tl.constexpr, MP: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        rm = tl.arange(0, MP)
        n_ok = rn < N
        m_ok = rm < M
        acc = tl.zeros((BLOCK_N, MP), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w = tl.load(w_ptr + rn[:, None] * K + (k0 + rk)[None, :], mask=n_ok[:, None] & k_ok[None, :], other=0.0)
            x = tl.load(x_ptr + rm[:, None] * K + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            acc += tl.sum(w.to(tl.float32)[:, None, :] * x.to(tl.float32)[None, :, :], axis=2)
        tl.store(y_ptr + rm[None, :] * N + rn[:, None], acc.to(y_ptr.dtype.element_ty),
                 mask=n_ok[:, None] & m_ok[None, :])

    @triton.jit
    def dot_gemv(x_ptr, w_ptr, y_ptr, N, K, M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        rm = tl.arange(0, 16)
        n_ok = rn < N
        m_ok = rm < M
        acc = tl.zeros((BLOCK_N, 16), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w = tl.load(w_ptr + rn[:, None] * K + (k0 + rk)[None, :], mask=n_ok[:, None] & k_ok[None, :], other=0.0)
            xt = tl.load(x_ptr + rm[None, :] * K + (k0 + rk)[:, None], mask=m_ok[None, :] & k_ok[:, None], other=0.0)
            acc += tl.dot(w, xt)
        tl.store(y_ptr + rm[None, :] * N + rn[:, None], acc.to(y_ptr.dtype.element_ty),
                 mask=n_ok[:, None] & m_ok[None, :])

    @triton.jit
    def rows_gemv_early(x_ptr, w_ptr, y_ptr, N, K, M: tl.constexpr, MP: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr, DOT: tl.constexpr, PDL: tl.constexpr):
        # as the project's one-row kernel: the first weight slice requested before waiting for the
        # kernel ahead (programmatic launch), each next slice requested before the current one is used
        pid = tl.program_id(0)
        rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        rm = tl.arange(0, MP)
        n_ok = rn < N
        m_ok = rm < M
        w_ptrs = w_ptr + rn[:, None] * K + rk[None, :]
        if PDL:
            tl.extra.cuda.gdc_launch_dependents()
        w = tl.load(w_ptrs, mask=n_ok[:, None] & (rk < K)[None, :], other=0.0)
        if PDL:
            tl.extra.cuda.gdc_wait()
        acc = tl.zeros((BLOCK_N, MP), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w_next = tl.load(w_ptrs + BLOCK_K, mask=n_ok[:, None] & ((k0 + BLOCK_K + rk) < K)[None, :], other=0.0)
            if DOT:
                xt = tl.load(x_ptr + rm[None, :] * K + (k0 + rk)[:, None], mask=m_ok[None, :] & k_ok[:, None],
                             other=0.0)
                acc += tl.dot(w, xt)
            else:
                x = tl.load(x_ptr + rm[:, None] * K + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :],
                            other=0.0)
                acc += tl.sum(w.to(tl.float32)[:, None, :] * x.to(tl.float32)[None, :, :], axis=2)
            w = w_next
            w_ptrs += BLOCK_K
        tl.store(y_ptr + rm[None, :] * N + rn[:, None], acc.to(y_ptr.dtype.element_ty),
                 mask=n_ok[:, None] & m_ok[None, :])

    return rows_gemv, dot_gemv, rows_gemv_early


def launch_rows(kernel, x, w, y, bn, bk, warps):
    m, k = x.shape
    n = w.shape[0]
    kernel[(triton_cdiv(n, bn),)](x, w, y, n, k, M=m, MP=1 << (m - 1).bit_length(), BLOCK_N=bn, BLOCK_K=bk,
                                  num_warps=warps, num_stages=3)


def launch_dot(kernel, x, w, y, bn, bk, warps):
    m, k = x.shape
    n = w.shape[0]
    kernel[(triton_cdiv(n, bn),)](x, w, y, n, k, M=m, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=3)


def launch_early(kernel, x, w, y, bn, bk, warps, dot):
    from hsd_bench.models.native import gemv

    m, k = x.shape
    n = w.shape[0]
    kernel[(triton_cdiv(n, bn),)](x, w, y, n, k, M=m, MP=16 if dot else 1 << (m - 1).bit_length(), BLOCK_N=bn,
                                  BLOCK_K=bk, DOT=dot, num_warps=warps, num_stages=1, **gemv.launch_options(x.device))


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def main() -> None:
    from bench_gemv import STREAMED_BYTES, time_graph

    from hsd_bench.bench.timing import copy_bandwidth
    from hsd_bench.models.native import gemv

    out_path = Path(sys.argv[1])
    dev = torch.device("cuda")
    gemv.register()
    rows_gemv, dot_gemv, rows_gemv_early = kernels()
    copy_bw = copy_bandwidth("cuda")
    doc = {"device": torch.cuda.get_device_name(), "copy_bw_Bps": copy_bw, "results": []}
    print(f"{doc['device']}, copy {copy_bw / 1e12:.2f} TB/s", flush=True)
    for shape, mats in SHAPES.items():
        for name, (n, k) in mats.items():
            nbytes = n * k * 2
            copies = max(2, math.ceil(STREAMED_BYTES / nbytes))
            ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * k**-0.5 for _ in range(copies)]
            for m in ROWS:
                x_src = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
                x = torch.empty_like(x_src)
                y = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
                ref = x_src.float() @ ws[0].float().t()

                def produce() -> None:
                    torch.mul(x_src, 1.0, out=x)

                row = {"shape": shape, "matrix": name, "n": n, "k": k, "rows": m, "weight_bytes": nbytes}
                cands = {"cublas": lambda i: (produce(), torch.mm(x, ws[i].t(), out=y))}
                if m == 1:
                    cands["gemv (project, one row)"] = lambda i: (produce(), gemv.launch(x.view(-1), ws[i], None, y.view(-1)))
                for bn, bk, wp in TILES:
                    cands[f"rows bn{bn} bk{bk} w{wp}"] = (
                        lambda i, c=(bn, bk, wp): (produce(), launch_rows(rows_gemv, x, ws[i], y, *c)))
                for bn, bk, wp in ((16, 128, 4), (16, 256, 4), (32, 128, 4)):
                    cands[f"dot bn{bn} bk{bk} w{wp}"] = (
                        lambda i, c=(bn, bk, wp): (produce(), launch_dot(dot_gemv, x, ws[i], y, *c)))
                for bn, bk, wp in ((1, 1024, 4), (2, 1024, 4), (2, 512, 4), (4, 512, 8)):
                    cands[f"early rows bn{bn} bk{bk} w{wp}"] = (
                        lambda i, c=(bn, bk, wp): (produce(), launch_early(rows_gemv_early, x, ws[i], y, *c, False)))
                for bn, bk, wp in ((16, 128, 4), (16, 256, 4), (32, 128, 4), (16, 512, 8)):
                    cands[f"early dot bn{bn} bk{bk} w{wp}"] = (
                        lambda i, c=(bn, bk, wp): (produce(), launch_early(rows_gemv_early, x, ws[i], y, *c, True)))
                for label, fn in cands.items():
                    try:
                        fn(0)
                        torch.cuda.synchronize()
                        err = ((y.float() - ref).abs().max() / ref.abs().max()).item()
                        r = time_graph(fn, copies, max(32, copies), 10)
                        row[label] = {"us": r["us"], "bw": nbytes / (r["us"] * 1e-6) / copy_bw, "rel_err": err}
                    except Exception as e:  # noqa: BLE001 -- a tile Triton cannot build
                        row[label] = {"error": f"{type(e).__name__}: {str(e)[:160]}"}
                ok = {k_: v for k_, v in row.items() if isinstance(v, dict) and "us" in v and v["rel_err"] < 1e-2}
                best = min((k_ for k_ in ok if k_ != "cublas"), key=lambda k_: ok[k_]["us"], default=None)
                row["best"] = best
                doc["results"].append(row)
                cb = row["cublas"].get("us")
                print(f"{shape:8} {name:8} M={m}: cublas {cb:7.2f} us" if cb else f"{shape} {name} M={m}: cublas error",
                      f"| best {best}: {ok[best]['us']:7.2f} us ({100 * ok[best]['bw']:.0f}% BW)" if best else "| none",
                      flush=True)
                out_path.write_text(json.dumps(doc, indent=1))
            del ws
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
