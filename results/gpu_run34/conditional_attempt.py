"""NOT PROJECT CODE: the thirty-fourth run's attempt at conditional nodes through the CUDA runtime,
kept for the next device session (results/gpu_run34/README.md, point 5). Call 5 ran it wired into
the native backend (``conditional_graphs_available`` and ``_guarded_round_step``): its first guarded
capture failed and left the process capturing. Cause: torch's allocator refuses a second routing
filter for a pool already recorded to ("beginAllocateToPool: already recording to mempool_id");
``_cuda_beginAllocateCurrentStreamToPool`` raised after the current stream had been switched to
the body's, outside the ``try``, so torch's ``capture_end`` found another current stream ("Capture
must end on the same stream it began on") and never ended the capture. Fixed below after the call,
as torch 2.12 does it -- the capture's own filter is dropped before the body's is added, and every
step after the stream switch is undone in ``finally``. Run so in the thirty-fifth run
(results/gpu_run35/README.md): exact ("runs and skips", every method equal to HF generate), 4-15 %
fewer model calls per token, but no decode rate moved beyond the spread between processes, so it
was not moved into the project.
The mechanism itself passed on the lent H200 (``conditional_probe.py``: an ``if`` node captured by
hand under torch 2.11, replayed taken and skipped).

Wired, in call 5, as: ``model.conditional_graphs_available()`` returning ``conditional.available()``;
``_guarded_round_step`` capturing its chain in ``with conditional.capture_if(run): chain()``; and
``GraphCache._capture`` running its ``torch.cuda.graph`` inside ``conditional.capturing_into(self.pool)``.

The module's own docstring follows.
An ``if`` the device evaluates inside a captured CUDA graph, on torch with or without it built in.

Why: the engine's guarded look-ahead rounds (docs/engine.md, "The look-ahead draft") queue a
middle level's next draft round before its verdict is read and let the device skip it where the
verdict hands up instead -- one host round trip fewer per such verdict, the wait that keeps HiSpec
and the hierarchy above the 5 % overhead line on the small models (docs/performance.md). That
needs a CUDA conditional node. torch 2.12 captures one (``CUDAGraph.begin_capture_to_if_node``);
torch 2.11, the lent GPU image's, does not, though its CUDA runtime (12.4 or later) can.

How, where torch lacks it, the way torch 2.12 does it, through the CUDA runtime torch itself
loaded: a conditional handle on the graph being captured; a one-thread kernel, queued in the
capture, that sets the handle from the device predicate (compiled by NVRTC, linked with
``libcudadevrt``, which holds ``cudaGraphSetConditional``, by the driver); an ``if`` node added
behind it; then the body captured on a second stream into the node's body graph, with that
stream's allocations routed into the capture's memory pool (torch's allocator routes by stream).
:func:`available` builds all of it once and says whether it can; the native backend's ``prepare``
still checks on the device that a captured guarded round both runs and skips before one is used.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
from typing import Iterator

import torch

_ACTIVE = 1  # cudaStreamCaptureStatusActive
_NODE_CONDITIONAL = 0x0D  # cudaGraphNodeTypeConditional
_COND_IF = 0  # cudaGraphCondTypeIf
_SET_DEPENDENCIES = 1  # cudaStreamSetCaptureDependencies
_CAPTURE_GLOBAL = 0  # cudaStreamCaptureModeGlobal, torch.cuda.graph's default
_NON_BLOCKING = 1  # cudaStreamNonBlocking
_JIT_PTX, _JIT_LIBRARY = 1, 4  # CUjitInputType
_PARAMS_BYTES = 256  # sizeof(cudaGraphNodeParams); the conditional member starts at byte 16

_KERNEL = rb"""typedef unsigned long long cudaGraphConditionalHandle;
extern "C" __device__ void cudaGraphSetConditional(cudaGraphConditionalHandle handle, unsigned int value);
extern "C" __global__ void hsd_set_if(cudaGraphConditionalHandle handle, const bool* pred) {
    cudaGraphSetConditional(handle, *pred ? 1u : 0u);
}
"""

_pools: list = []  # the memory pools of the captures under way (GraphCache pushes its own)


def entry_points(cuda_version: str | None) -> dict[str, str] | None:
    """The CUDA runtime's names for the capture calls with edge data, by runtime release: CUDA 13
    gave the plain names the signatures 12.3/12.4 introduced under ``_v2``/``_v3``; before 12.4 there
    are no conditional nodes (None)."""
    try:
        major, minor = (int(x) for x in (cuda_version or "").split(".")[:2])
    except ValueError:
        return None
    if major >= 13:
        return {"capture_info": "cudaStreamGetCaptureInfo", "add_node": "cudaGraphAddNode",
                "update_dependencies": "cudaStreamUpdateCaptureDependencies"}
    if (major, minor) >= (12, 4):
        return {"capture_info": "cudaStreamGetCaptureInfo_v3", "add_node": "cudaGraphAddNode_v2",
                "update_dependencies": "cudaStreamUpdateCaptureDependencies_v2"}
    return None


def native() -> bool:
    """Whether this torch captures conditional nodes itself (torch 2.12 and later)."""
    graph = getattr(torch.cuda, "CUDAGraph", None)
    return all(hasattr(graph, name) for name in
               ("get_currently_capturing_graph", "begin_capture_to_if_node", "end_capture_to_conditional_node"))


def available() -> bool:
    """Whether a conditional node can be captured here: torch's own, else this module's (built once)."""
    return native() or unavailable_reason() is None


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why this module cannot capture a conditional node on this machine (None: it can)."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if entry_points(torch.version.cuda) is None:
        return f"CUDA runtime {torch.version.cuda} (conditional nodes need 12.4 or later)"
    missing = [n for n in ("_cuda_beginAllocateCurrentStreamToPool", "_cuda_beginAllocateToPool",
                           "_cuda_endAllocateToPool") if not hasattr(torch._C, n)]
    if missing:
        return f"torch {torch.__version__} lacks the allocator bindings {', '.join(missing)}"
    try:
        _runtime()
    except (OSError, RuntimeError, AttributeError) as err:
        return f"{type(err).__name__}: {err}"
    return None


class _Runtime:
    """The CUDA runtime torch loaded, the driver, and the kernel that sets a conditional handle."""

    def __init__(self):
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # a current context for the driver calls below
        loaded = [line.split()[-1] for line in open("/proc/self/maps") if "libcudart.so" in line]
        if not loaded:
            raise RuntimeError("torch's CUDA runtime (libcudart) is not loaded in this process")
        self.cudart = ctypes.CDLL(loaded[0])
        self.names = entry_points(torch.version.cuda)
        for name in (*self.names.values(), "cudaGraphConditionalHandleCreate", "cudaStreamBeginCaptureToGraph"):
            getattr(self.cudart, name)  # AttributeError where this runtime lacks one
        self.driver = ctypes.CDLL("libcuda.so.1")
        self.kernel = self._build_kernel(os.path.dirname(loaded[0]))
        self._child: dict[int, ctypes.c_void_p] = {}

    def _build_kernel(self, cuda_lib: str) -> ctypes.c_void_p:
        site = os.path.dirname(os.path.dirname(torch.__file__))
        dirs = [cuda_lib, *sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib"))),
                os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "lib64")]

        def found(pattern: str) -> str:
            for d in dirs:
                hits = sorted(glob.glob(os.path.join(d, pattern)))
                if hits:
                    return hits[0]
            raise RuntimeError(f"no {pattern} in {', '.join(dirs)}")

        nvrtc_path = found("libnvrtc.so*")
        for builtins in glob.glob(os.path.join(os.path.dirname(nvrtc_path), "libnvrtc-builtins.so*")):
            ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
        nvrtc = ctypes.CDLL(nvrtc_path)
        devrt = found("libcudadevrt.a")
        major, minor = torch.cuda.get_device_capability()
        prog = ctypes.c_void_p()
        _check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), _KERNEL, b"hsd_set_if.cu", 0, None, None), "nvrtcCreateProgram")
        opts = [f"-arch=compute_{major}{minor}".encode(), b"-rdc=true"]
        if nvrtc.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)) != 0:
            size = ctypes.c_size_t()
            nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(f"NVRTC could not compile the set-condition kernel: {log.value.decode()[:300]}")
        size = ctypes.c_size_t()
        _check(nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
        ptx = ctypes.create_string_buffer(size.value)
        _check(nvrtc.nvrtcGetPTX(prog, ptx), "nvrtcGetPTX")
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
        link, cubin, cubin_size = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_size_t()
        d = self.driver
        _check(d.cuLinkCreate_v2(0, None, None, ctypes.byref(link)), "cuLinkCreate")
        try:
            _check(d.cuLinkAddData_v2(link, _JIT_PTX, ptx, ctypes.c_size_t(size.value), b"hsd_set_if.ptx", 0, None,
                                      None), "cuLinkAddData")
            _check(d.cuLinkAddFile_v2(link, _JIT_LIBRARY, devrt.encode(), 0, None, None), f"cuLinkAddFile({devrt})")
            _check(d.cuLinkComplete(link, ctypes.byref(cubin), ctypes.byref(cubin_size)), "cuLinkComplete")
            module, fn = ctypes.c_void_p(), ctypes.c_void_p()
            _check(d.cuModuleLoadData(ctypes.byref(module), cubin), "cuModuleLoadData")
        finally:
            d.cuLinkDestroy(link)
        _check(d.cuModuleGetFunction(ctypes.byref(fn), module, b"hsd_set_if"), "cuModuleGetFunction")
        self._module = module  # kept loaded for the process
        return fn

    def child_stream(self, device: int) -> ctypes.c_void_p:
        """One stream per device for capturing bodies (never capturing between two bodies)."""
        if device not in self._child:
            stream = ctypes.c_void_p()
            _check(self.cudart.cudaStreamCreateWithFlags(ctypes.byref(stream), _NON_BLOCKING), "cudaStreamCreate")
            self._child[device] = stream
        return self._child[device]

    def add_if_node(self, stream: ctypes.c_void_p, pred: torch.Tensor) -> ctypes.c_void_p:
        """Queue the set-condition kernel and an ``if`` node behind it in the capture on ``stream``;
        return the node's body graph."""
        status, graph = ctypes.c_int(), ctypes.c_void_p()
        info = getattr(self.cudart, self.names["capture_info"])
        _check(info(stream, ctypes.byref(status), None, ctypes.byref(graph), None, None, None), "capture info")
        if status.value != _ACTIVE:
            raise RuntimeError("a conditional node needs a stream capture under way")
        handle = ctypes.c_ulonglong()
        _check(self.cudart.cudaGraphConditionalHandleCreate(ctypes.byref(handle), graph, 0, 0), "conditional handle")
        ptr = ctypes.c_void_p(pred.data_ptr())
        args = (ctypes.c_void_p * 2)(ctypes.cast(ctypes.byref(handle), ctypes.c_void_p),
                                     ctypes.cast(ctypes.byref(ptr), ctypes.c_void_p))
        _check(self.driver.cuLaunchKernel(self.kernel, 1, 1, 1, 1, 1, 1, 0, stream, args, None), "set-condition kernel")
        deps, edges, count = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_size_t()
        _check(info(stream, ctypes.byref(status), None, ctypes.byref(graph), ctypes.byref(deps), ctypes.byref(edges),
                    ctypes.byref(count)), "capture info")
        params = (ctypes.c_ubyte * _PARAMS_BYTES)()
        ctypes.c_int.from_buffer(params, 0).value = _NODE_CONDITIONAL
        ctypes.c_ulonglong.from_buffer(params, 16).value = handle.value
        ctypes.c_uint.from_buffer(params, 24).value = _COND_IF
        ctypes.c_uint.from_buffer(params, 28).value = 1  # one body
        node = ctypes.c_void_p()
        _check(getattr(self.cudart, self.names["add_node"])(ctypes.byref(node), graph, deps, edges, count, params),
               "add the conditional node")
        bodies = ctypes.c_void_p.from_buffer(params, 32).value
        _check(getattr(self.cudart, self.names["update_dependencies"])(stream, ctypes.byref(node), None,
                                                                       ctypes.c_size_t(1), _SET_DEPENDENCIES),
               "capture dependencies")
        return ctypes.c_void_p(ctypes.c_void_p.from_address(bodies).value)


@functools.lru_cache(maxsize=1)
def _runtime() -> _Runtime:
    return _Runtime()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise RuntimeError(f"{what} failed (CUDA error {rc})")


@contextlib.contextmanager
def capturing_into(pool) -> Iterator[None]:
    """Around a ``torch.cuda.graph(..., pool=pool)`` capture: the pool a body's allocations go to."""
    _pools.append(pool)
    try:
        yield
    finally:
        _pools.pop()


@contextlib.contextmanager
def capture_if(pred: torch.Tensor) -> Iterator[None]:
    """While capturing a CUDA graph: what runs in the block is captured into an ``if`` node that
    runs where the one-element bool ``pred`` (a device tensor) is true when the graph replays."""
    if native():
        graph = torch.cuda.CUDAGraph.get_currently_capturing_graph()
        graph.begin_capture_to_if_node(pred)
        try:
            yield
        finally:
            graph.end_capture_to_conditional_node()
        return
    with by_hand(pred):
        yield


@contextlib.contextmanager
def by_hand(pred: torch.Tensor) -> Iterator[None]:
    """:func:`capture_if` through the CUDA runtime, whatever torch has."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"no conditional CUDA graph nodes here: {reason}")
    if not _pools:
        raise RuntimeError("capture_if needs the capture's memory pool (inside GraphCache's capturing_into)")
    if pred.dtype != torch.bool or pred.numel() != 1 or not pred.is_cuda:
        raise ValueError(f"capture_if needs a one-element CUDA bool tensor, got {pred.dtype} {tuple(pred.shape)} "
                         f"on {pred.device}")
    rt, pool = _runtime(), _pools[-1]
    outer = torch.cuda.current_stream()
    device = outer.device.index
    body = rt.add_if_node(ctypes.c_void_p(outer.cuda_stream), pred)
    child = rt.child_stream(device)
    _check(rt.cudart.cudaStreamBeginCaptureToGraph(child, body, None, None, ctypes.c_size_t(0), _CAPTURE_GLOBAL),
           "capture the body")
    # torch's allocator routes a capture's allocations into its pool by one filter per pool (a
    # second is refused); the body's stream captures under another id, so the capture's filter
    # gives way to the body's for the body, and to an any-stream one after it, which torch's
    # capture_end drops in turn
    torch._C._cuda_endAllocateToPool(device, pool)
    routed = False
    torch.cuda.set_stream(torch.cuda.ExternalStream(child.value, device=outer.device))
    try:
        torch._C._cuda_beginAllocateCurrentStreamToPool(device, pool)
        routed = True
        yield
    finally:
        ended = ctypes.c_void_p()
        rc = rt.cudart.cudaStreamEndCapture(child, ctypes.byref(ended))
        torch.cuda.set_stream(outer)
        if routed:
            torch._C._cuda_endAllocateToPool(device, pool)
        torch._C._cuda_beginAllocateToPool(device, pool)
        _check(rc, "end the body's capture")
