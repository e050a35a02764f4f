"""Host µs per call of the small device operations on the one-row path, on the lent host.

    python results/gpu_run37/host_ops.py [OUT]

Why: the sampled host profile (spy_host.py, call 1) puts about ten µs of host time on each eager
fill, copy and cat of a few int64 values, against about 1.5 for a graph replay and 1 for an event
record. This times each candidate the same way: N calls in a loop, the device synchronised
before and after, the host clock around the loop only (the device work is a few µs per call at
most and runs behind the host's launches, so the loop measures the host's issue rate).
"""
import ctypes, json, sys, time
import torch

N = 20000
dev = torch.device("cuda")
tokens = torch.zeros(1, 4096, dtype=torch.long, device=dev)
row = tokens[0]
src = torch.arange(8, dtype=torch.long, device=dev)
packed = torch.zeros(64, dtype=torch.long, device=dev)
pinned = torch.zeros(64, dtype=torch.long, pin_memory=True)
stream = torch.cuda.current_stream()
cuda = ctypes.CDLL("libcuda.so.1")
for name in ("cuMemcpyDtoDAsync_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2"):
    getattr(cuda, name).restype = ctypes.c_int
cuda.cuMemcpyDtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p]
cuda.cuMemcpyHtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
cuda.cuMemcpyDtoHAsync_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p]
s_handle = stream.cuda_stream
base = tokens.data_ptr()
g = torch.cuda.CUDAGraph()
s2 = torch.cuda.Stream()
with torch.cuda.stream(s2):
    row[10:14].copy_(src[:4])
    torch.cuda.synchronize()
    with torch.cuda.graph(g):
        row[10:14].copy_(src[:4])
torch.cuda.synchronize()
ev = torch.cuda.Event()


def t(label, fn):
    for _ in range(200):
        fn(5)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(N):
        fn(i & 1023)
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return label, 1e6 * (t1 - t0) / N


rows = [
    t("row[p].fill_(int)", lambda p: row[p].fill_(p)),
    t("view row[p] only", lambda p: row[p]),
    t("row[p:p+4].copy_(src[:4])", lambda p: row[p : p + 4].copy_(src[:4])),
    t("torch.cat([a, b], out=packed[:9])", lambda p: torch.cat((src[:4], src[:5]), out=packed[:9])),
    t("pinned[:9].copy_(packed[:9], non_blocking)", lambda p: pinned[:9].copy_(packed[:9], non_blocking=True)),
    t("event.record(stream)", lambda p: ev.record(stream)),
    t("graph.replay (one copy)", lambda p: g.replay()),
    t("cuMemcpyDtoDAsync 4 x int64", lambda p: cuda.cuMemcpyDtoDAsync_v2(base + 8 * p, src.data_ptr(), 32, s_handle)),
    t("cuMemcpyHtoDAsync 1 x int64 (pinned)", lambda p: cuda.cuMemcpyHtoDAsync_v2(base + 8 * p, pinned.data_ptr(), 8, s_handle)),
    t("cuMemcpyDtoHAsync 9 x int64 (pinned)", lambda p: cuda.cuMemcpyDtoHAsync_v2(pinned.data_ptr(), packed.data_ptr(), 72, s_handle)),
    t("tensor.data_ptr()", lambda p: tokens.data_ptr()),
]
torch.cuda.synchronize()
# the raw copies did what they say
tokens.zero_(); torch.cuda.synchronize()
assert cuda.cuMemcpyDtoDAsync_v2(base + 8 * 3, src.data_ptr(), 32, s_handle) == 0
pinned[0] = 77
assert cuda.cuMemcpyHtoDAsync_v2(base + 8 * 9, pinned.data_ptr(), 8, s_handle) == 0
torch.cuda.synchronize()
assert tokens[0, 3:7].tolist() == [0, 1, 2, 3] and tokens[0, 9].item() == 77, tokens[0, :12].tolist()
for label, us in rows:
    print(f"{us:7.2f} µs  {label}")
if len(sys.argv) > 1:
    json.dump(dict(rows), open(sys.argv[1] + "/host_ops.json", "w"), indent=1)
