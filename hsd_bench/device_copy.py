"""Small copies on the one-row decode path, issued to the CUDA driver directly.

Why: on the path the device waits on, the host moves a few int64 values per verification -- the
drafted tokens into the engine's buffer, a verdict's drafts and verifier tokens into the buffer
its read comes from, that buffer to the host, the verifier's token and a step's start position
onto the device. As torch ops (``copy_``, ``cat``, ``fill_``) each costs the lent H200 host 11-20
µs (argument parsing, dispatch, a TensorIterator, the launch) where the driver's asynchronous copy
costs 3-4 µs -- a graph replay about as much (``results/gpu_run37/host_ops.py``). HiSpec makes
about six such ops per token, about a fifth of its host work per token (a sampled profile of the
H200 host, docs/performance.md, "Thirty-seventh run").

A copy goes to the driver only where that is plainly the same operation: both tensors contiguous
of one dtype, the device one of this process's current CUDA device, within bounds, on the current
stream (stream order, hence every ordering the torch op had, is kept). Anything else -- a CPU
tensor, another device, a strided view, no CUDA driver -- takes the torch op it replaces, so the
functions are exact stand-ins everywhere, and on a CPU they are the torch ops.
"""

from __future__ import annotations

import ctypes

import torch

_driver = None  # the CUDA driver library, loaded at first use; False where there is none


def _cuda_driver():
    global _driver
    if _driver is None:
        try:
            lib = ctypes.CDLL("libcuda.so.1")
            lib.cuMemcpyDtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p]
            lib.cuMemcpyDtoHAsync_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p]
            lib.cuMemcpyHtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
            for fn in (lib.cuMemcpyDtoDAsync_v2, lib.cuMemcpyDtoHAsync_v2, lib.cuMemcpyHtoDAsync_v2):
                fn.restype = ctypes.c_int
            _driver = lib
        except (OSError, AttributeError):
            _driver = False
    return _driver


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"{what} failed: CUDA driver error {status}")


def _direct(t: torch.Tensor, start: int, n: int) -> bool:
    """Whether ``t[start:start + n]`` is a plain span the driver can copy: a contiguous
    one-dimensional tensor (of any device), the span within it."""
    return t.dim() == 1 and t.is_contiguous() and 0 <= start and start + n <= t.shape[0]


def _current_index(t: torch.Tensor) -> int | None:
    """``t``'s device index where it is this thread's current CUDA device (whose context the driver
    calls run in), else None."""
    index = t.get_device()
    return index if index >= 0 and index == torch.cuda.current_device() else None


def _raw_stream(index: int) -> int:
    """The current stream's handle on device ``index``: torch's own lookup of a raw stream
    (inductor's launchers use it), a fraction of the host time of ``current_stream().cuda_stream``."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream


def copy_span(dst: torch.Tensor, dst_start: int, src: torch.Tensor, src_start: int, n: int,
              non_blocking: bool = False) -> None:
    """``dst[dst_start : dst_start + n].copy_(src[src_start : src_start + n], non_blocking)``.

    Device to device (asynchronous either way, as the torch op is), or device to a pinned host
    tensor with ``non_blocking`` (read after an event on the stream, as such copies are): one
    driver call on the current stream where both are plain spans of one dtype (:func:`_direct`);
    else the torch op. ``n == 0`` copies nothing."""
    if n <= 0:
        if n < 0:
            raise ValueError(f"copy_span of n={n} values: n must be >= 0")
        return
    if src.is_cuda and src.dtype == dst.dtype and _direct(dst, dst_start, n) and _direct(src, src_start, n):
        lib = _cuda_driver()
        index = _current_index(src) if lib else None
        if index is not None:
            size = src.element_size()
            if dst.is_cuda and dst.get_device() == index:
                _check(lib.cuMemcpyDtoDAsync_v2(dst.data_ptr() + dst_start * size, src.data_ptr() + src_start * size,
                                                n * size, _raw_stream(index)), "cuMemcpyDtoDAsync")
                return
            if non_blocking and not dst.is_cuda and dst.is_pinned():
                _check(lib.cuMemcpyDtoHAsync_v2(dst.data_ptr() + dst_start * size, src.data_ptr() + src_start * size,
                                                n * size, _raw_stream(index)), "cuMemcpyDtoHAsync")
                return
    # no view of a whole tensor: each is a dispatcher call
    (dst if dst_start == 0 and n == dst.shape[0] else dst[dst_start : dst_start + n]).copy_(
        src if src_start == 0 and n == src.shape[0] else src[src_start : src_start + n], non_blocking=non_blocking)


def _raw_copies(out: torch.Tensor, parts) -> bool:
    """Whether :func:`copy_span` copies each of ``parts`` into ``out`` with one driver call."""
    if not out.is_cuda or not _cuda_driver() or _current_index(out) is None or out.dim() != 1 or not out.is_contiguous():
        return False
    return all(p.is_cuda and p.dtype == out.dtype and p.dim() == 1 and p.is_contiguous() for p in parts)


def pack(parts: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
    """``torch.cat(parts, out=out)`` of one-dimensional tensors: one driver copy per part where
    :func:`copy_span` makes them (a cat costs the lent host five such copies), else the cat."""
    if sum(p.shape[0] for p in parts) != out.shape[0]:
        raise ValueError(f"pack: the parts hold {[p.shape[0] for p in parts]} values, out {out.shape[0]}")
    if not _raw_copies(out, parts):
        return torch.cat(parts, out=out)
    at = 0
    for p in parts:
        copy_span(out, at, p, 0, p.shape[0])
        at += p.shape[0]
    return out


class IntWriter:
    """``buf[pos] = value`` for host ints: one driver copy from a pinned ring of slots.

    Why a ring: an asynchronous copy reads its pinned source when the device reaches it, so a
    slot may be written again only once the copy from it has run. The ring's slots form four
    quarters; leaving a quarter records an event, and entering one waits for the event recorded
    when the host last left it, three quarters of a lap before -- long past on a decode that reads
    a verdict every few writes, and still correct on one that does not. The events order copies
    on one stream, so a writer serves the first CUDA stream it writes on; a write on another
    stream, or during graph capture (where a copy node would read the slot at every replay), takes
    ``fill_``.
    """

    QUARTERS = 4

    def __init__(self, slots: int = 1024, event=None):
        """``event``: makes the quarters' events (``torch.cuda.Event``; a test passes a stand-in)."""
        if slots < self.QUARTERS or slots % self.QUARTERS:
            raise ValueError(f"IntWriter(slots={slots}): a positive multiple of {self.QUARTERS} (the ring's quarters)")
        self.slots = slots
        self._event = event or torch.cuda.Event
        self._quarter = slots // self.QUARTERS
        self._ring = None  # (pinned int64 tensor, a ctypes array over it), made at the first CUDA write
        self._stream: tuple[int, int] | None = None  # (device index, raw stream) the ring serves
        self._next = 0
        self._written = False
        self._left: list = [None] * self.QUARTERS  # per quarter: the event recorded when the host last left it
        self.waits = 0  # quarters entered with an event to wait for (tests read it)

    def write(self, buf: torch.Tensor, pos: int, value: int) -> None:
        """``buf[pos] = value`` (``buf`` one-dimensional, or 0-d with ``pos`` 0), queued on the current
        stream like ``fill_``: a driver copy where ``buf`` is a plain int64 span on the current CUDA
        device, else ``fill_``."""
        stream = self._serves(buf, pos)
        if stream is None:
            (buf if buf.dim() == 0 or buf.shape[0] == 1 and pos == 0 else buf[pos]).fill_(int(value))
            return
        slot = self._take_slot()
        ring, values = self._ring
        values[slot] = int(value)
        _check(_cuda_driver().cuMemcpyHtoDAsync_v2(buf.data_ptr() + pos * 8, ring.data_ptr() + slot * 8, 8, stream),
               "cuMemcpyHtoDAsync")

    def _serves(self, buf: torch.Tensor, pos: int) -> int | None:
        """The raw stream to copy on where this writer takes ``buf[pos]``, else None."""
        if not buf.is_cuda or buf.dtype != torch.int64 or buf.dim() > 1 or not buf.is_contiguous():
            return None
        if not (0 <= pos < (buf.shape[0] if buf.dim() else 1)) or not _cuda_driver():
            return None
        index = _current_index(buf)
        if index is None or torch.cuda.is_current_stream_capturing():
            return None
        key = (index, _raw_stream(index))
        if self._stream is None:
            self._stream = key
        return key[1] if key == self._stream else None

    def _take_slot(self) -> int:
        """The next slot to write, once every copy from it before has run."""
        if self._ring is None:
            ring = torch.zeros(self.slots, dtype=torch.int64, pin_memory=True)
            self._ring = (ring, (ctypes.c_int64 * self.slots).from_address(ring.data_ptr()))
        return self._advance()

    def _advance(self) -> int:
        slot = self._next
        if slot % self._quarter == 0:
            q = slot // self._quarter
            if self._written:
                left = (q - 1) % self.QUARTERS
                if self._left[left] is None:
                    self._left[left] = self._event()
                self._left[left].record()
            if self._left[q] is not None:
                self.waits += 1
                self._left[q].synchronize()  # every copy from this quarter's slots has run
        self._next = (slot + 1) % self.slots
        self._written = True
        return slot


int_writer = IntWriter()  # one per process: its slots serve every buffer it writes on its stream
