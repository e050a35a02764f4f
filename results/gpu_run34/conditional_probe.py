#!/usr/bin/env python3
"""Thirty-fourth run, call 4: can torch 2.11 (the lent image, no ``CUDAGraph.begin_capture_to_if_node``)
capture a CUDA conditional node through the CUDA runtime by hand? A probe, not project code.

Steps, each reported: where the CUDA libraries are (libcudart as torch loaded it, libnvrtc,
libcudadevrt.a); which allocator-pool bindings this torch has (a body that allocates must route its
stream's allocations into the graph's pool); a kernel that sets a conditional handle from a device
value, compiled by NVRTC and linked against libcudadevrt by the driver; then one captured graph --
x += 1, an ``if`` node whose body (captured on a second stream into the node's body graph) does
x += 10, then x += 100 -- replayed with the condition true and false. Pass: x moves by 111 and 101.
"""
import ctypes
import glob
import json
import os
import sys

import torch

out = {"torch": torch.__version__, "cuda": torch.version.cuda}
OUT = os.environ.get("OUT", ".")


def save():
    with open(os.path.join(OUT, "conditional_probe.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1), flush=True)


torch.zeros(1, device="cuda")  # context
maps = open("/proc/self/maps").read().split("\n")
libs = sorted({line.split()[-1] for line in maps if "libcudart" in line or "libnvrtc" in line or "libcuda.so" in line})
out["loaded"] = libs
site = os.path.dirname(os.path.dirname(torch.__file__))
out["found"] = sorted(glob.glob(os.path.join(site, "nvidia", "**", "libnvrtc*.so*"), recursive=True)
                      + glob.glob(os.path.join(site, "nvidia", "**", "libcudadevrt*"), recursive=True)
                      + glob.glob(os.path.join(site, "nvidia", "**", "libnvJitLink*.so*"), recursive=True))
out["pool_bindings"] = sorted(n for n in dir(torch._C) if "ToPool" in n or "AllocateCurrent" in n)
out["capture_api"] = sorted(n for n in dir(torch.cuda.CUDAGraph) if not n.startswith("__"))
save()

try:
    cudart = ctypes.CDLL(next(p for p in libs if "libcudart" in p))
    cuda = ctypes.CDLL("libcuda.so.1")
    nvrtc_path = next(p for p in out["found"] if "libnvrtc.so" in p and "builtins" not in p)
    for b in glob.glob(os.path.join(os.path.dirname(nvrtc_path), "libnvrtc-builtins.so*")):
        ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
    nvrtc = ctypes.CDLL(nvrtc_path)
    devrt = next(p for p in out["found"] if "libcudadevrt" in p)
    major, minor = torch.cuda.get_device_capability()
    src = b'''typedef unsigned long long cudaGraphConditionalHandle;
extern "C" __device__ void cudaGraphSetConditional(cudaGraphConditionalHandle handle, unsigned int value);
extern "C" __global__ void set_if_below(cudaGraphConditionalHandle handle, const long long* value, long long below) {
    cudaGraphSetConditional(handle, *value < below ? 1u : 0u);
}'''
    prog = ctypes.c_void_p()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, b"set_if.cu", 0, None, None) == 0
    opts = [f"-arch=compute_{major}{minor}".encode(), b"-rdc=true"]
    rc = nvrtc.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    n = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    out["nvrtc"] = {"rc": rc, "log": log.value.decode()[:500]}
    nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(n))
    ptx = ctypes.create_string_buffer(n.value)
    nvrtc.nvrtcGetPTX(prog, ptx)
    state = ctypes.c_void_p()
    r = [cuda.cuLinkCreate_v2(0, None, None, ctypes.byref(state))]
    r.append(cuda.cuLinkAddData_v2(state, 1, ptx, ctypes.c_size_t(len(ptx.raw)), b"set_if.ptx", 0, None, None))
    r.append(cuda.cuLinkAddFile_v2(state, 4, devrt.encode(), 0, None, None))
    cubin, size = ctypes.c_void_p(), ctypes.c_size_t()
    r.append(cuda.cuLinkComplete(state, ctypes.byref(cubin), ctypes.byref(size)))
    mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
    r.append(cuda.cuModuleLoadData(ctypes.byref(mod), cubin))
    r.append(cuda.cuModuleGetFunction(ctypes.byref(fn), mod, b"set_if_below"))
    out["link"] = {"rcs": r, "cubin_bytes": size.value}
    save()

    def check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: CUDA error {rc}")

    x = torch.zeros(4, device="cuda")
    value = torch.zeros(1, dtype=torch.int64, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        x.add_(1)
        status, cid, g = ctypes.c_int(), ctypes.c_ulonglong(), ctypes.c_void_p()
        deps, edges, ndeps = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_size_t()
        check(cudart.cudaStreamGetCaptureInfo(stream, ctypes.byref(status), ctypes.byref(cid), ctypes.byref(g),
                                              None, None, None), "capture info")
        handle = ctypes.c_ulonglong()
        check(cudart.cudaGraphConditionalHandleCreate(ctypes.byref(handle), g, 0, 0), "handle")
        ptr, below = ctypes.c_void_p(value.data_ptr()), ctypes.c_longlong(3)
        args = (ctypes.c_void_p * 3)(ctypes.cast(ctypes.byref(handle), ctypes.c_void_p),
                                     ctypes.cast(ctypes.byref(ptr), ctypes.c_void_p),
                                     ctypes.cast(ctypes.byref(below), ctypes.c_void_p))
        check(cuda.cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, stream, args, None), "set kernel")
        check(cudart.cudaStreamGetCaptureInfo(stream, ctypes.byref(status), ctypes.byref(cid), ctypes.byref(g),
                                              ctypes.byref(deps), ctypes.byref(edges), ctypes.byref(ndeps)),
              "capture info 2")
        params = (ctypes.c_ubyte * 256)()
        ctypes.c_int.from_buffer(params, 0).value = 0x0D  # cudaGraphNodeTypeConditional
        ctypes.c_ulonglong.from_buffer(params, 16).value = handle.value
        ctypes.c_uint.from_buffer(params, 24).value = 0  # cudaGraphCondTypeIf
        ctypes.c_uint.from_buffer(params, 28).value = 1
        node = ctypes.c_void_p()
        check(cudart.cudaGraphAddNode(ctypes.byref(node), g, deps, edges, ndeps, params), "add node")
        body = ctypes.c_void_p.from_address(ctypes.c_void_p.from_buffer(params, 32).value).value
        check(cudart.cudaStreamUpdateCaptureDependencies(stream, ctypes.byref(node), None, ctypes.c_size_t(1), 1),
              "update deps")
        child = ctypes.c_void_p()
        check(cudart.cudaStreamCreateWithFlags(ctypes.byref(child), 1), "child stream")
        check(cudart.cudaStreamBeginCaptureToGraph(child, ctypes.c_void_p(body), None, None, ctypes.c_size_t(0), 0),
              "begin body")
        with torch.cuda.stream(torch.cuda.ExternalStream(child.value)):
            x.add_(10)
        done = ctypes.c_void_p()
        check(cudart.cudaStreamEndCapture(child, ctypes.byref(done)), "end body")
        x.add_(100)
    seen = []
    for v in (0, 5, 2):
        value.fill_(v)
        before = x[0].item()
        graph.replay()
        torch.cuda.synchronize()
        seen.append(x[0].item() - before)
    out["replays"] = {"value 0, 5, 2 (run below 3)": seen, "passed": seen == [111.0, 101.0, 111.0]}
except Exception as err:  # noqa: BLE001 -- a probe reports what failed
    out["error"] = f"{type(err).__name__}: {err}"
save()
