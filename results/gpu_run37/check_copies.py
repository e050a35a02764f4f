"""On a GPU: device_copy's driver copies do what the torch ops they replace do, and cost the host less.

    python results/gpu_run37/check_copies.py OUT

Checks, against the torch op on the same inputs: ``copy_span`` device to device and device to
pinned host over random spans, ``pack`` against ``torch.cat``, ``IntWriter`` over several laps of
its ring with every value read back (a stale slot would show as a wrong value), each on the
current stream with the device busy before it (a long matmul queued first, so a copy that did not
wait its turn would read or write too early). Then the host µs per call, 100 calls between syncs
(the host's issue time, the device idle), median of 20 batches: each function against its torch op.
"""
import json, statistics, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from hsd_bench import device_copy  # noqa: E402
from hsd_bench.device_copy import IntWriter, copy_span, pack  # noqa: E402

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
dev = torch.device("cuda")
assert device_copy._cuda_driver(), "no CUDA driver library"
g = torch.Generator().manual_seed(0)
big = torch.randn(4096, 4096, device=dev)


def busy():  # queue ~ms of device work first: a copy out of stream order would race it
    for _ in range(4):
        big @ big


checks = {}
# device to device, and device to pinned host
for trial in range(200):
    n = int(torch.randint(1, 40, (1,), generator=g))
    src = torch.randint(0, 50000, (64,), generator=g).to(dev)
    dst, want = torch.full((128,), -1, device=dev), torch.full((128,), -1, device=dev)
    ds, ss = int(torch.randint(0, 128 - n, (1,), generator=g)), int(torch.randint(0, 64 - n, (1,), generator=g))
    busy()
    src2 = src * 1  # written by the device right before the copy: the copy must see it
    copy_span(dst, ds, src2, ss, n)
    want[ds : ds + n] = src2[ss : ss + n]
    host = torch.full((128,), -1, dtype=torch.long, pin_memory=True)
    ev = torch.cuda.Event()
    busy()
    copy_span(host, ds, src2 + 1, ss, n, non_blocking=True)
    ev.record(); ev.synchronize()
    assert torch.equal(dst, want), trial
    assert host[ds : ds + n].tolist() == (src2[ss : ss + n] + 1).tolist(), trial
checks["copy_span"] = "200 random spans, device to device and device to pinned host: equal to the torch op"
# pack
for trial in range(100):
    a = torch.randint(0, 9, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g).to(dev)
    b = torch.randint(0, 9, (a.shape[0] + 1,), generator=g).to(dev)
    o = torch.empty(2 * a.shape[0] + 1, dtype=torch.long, device=dev)
    busy()
    assert torch.equal(pack((a * 1, b * 1), o), torch.cat((a, b))), trial
checks["pack"] = "100 verdict shapes: equal to torch.cat"
# the ring over several laps, values read back
w = IntWriter(64)
buf = torch.zeros(1000, dtype=torch.long, device=dev)
want = [0] * 1000
for i in range(64 * 6 + 5):
    if i % 50 == 0:
        busy()
    p = (i * 37) % 1000
    w.write(buf, p, i * 7 + 1)
    want[p] = i * 7 + 1
assert buf.tolist() == want
assert w.waits > 0
scalar = torch.zeros((), dtype=torch.long, device=dev)
w.write(scalar, 0, 5)
assert scalar.item() == 5
checks["int_writer"] = f"{64 * 6 + 5} writes over six laps of a 64-slot ring ({w.waits} quarter waits): every value read back"


def host_us(fn, calls=100, batches=20):
    per = []
    for _ in range(batches):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        per.append(1e6 * (time.perf_counter() - t0) / calls)
    torch.cuda.synchronize()
    return statistics.median(per)


tokens = torch.zeros(1, 4096, dtype=torch.long, device=dev)
row = tokens[0]
src = torch.arange(8, device=dev)
packed = torch.zeros(9, dtype=torch.long, device=dev)
pinned = torch.zeros(9, dtype=torch.long, pin_memory=True)
scal = torch.zeros(1, dtype=torch.long, device=dev)
a4, b5 = src[:4], src[:5]
w2 = IntWriter()
timing = {
    "row[p:p+4].copy_(src[:4])": host_us(lambda: row[100:104].copy_(a4)),
    "copy_span(row, p, src, 0, 4)": host_us(lambda: copy_span(row, 100, src, 0, 4)),
    "torch.cat((a, b), out=packed)": host_us(lambda: torch.cat((a4, b5), out=packed)),
    "pack((a, b), packed)": host_us(lambda: pack((a4, b5), packed)),
    "pinned.copy_(packed, non_blocking=True)": host_us(lambda: pinned.copy_(packed, non_blocking=True)),
    "copy_span(pinned, 0, packed, 0, 9, non_blocking=True)": host_us(lambda: copy_span(pinned, 0, packed, 0, 9, non_blocking=True)),
    "row[p].fill_(v)": host_us(lambda: row[100].fill_(7)),
    "IntWriter.write(row, p, v)": host_us(lambda: w2.write(row, 100, 7)),
    "scalar.fill_(v)": host_us(lambda: scal.fill_(7)),
    "IntWriter.write(scalar, 0, v)": host_us(lambda: w2.write(scal, 0, 7)),
}
for k, v in timing.items():
    print(f"{v:7.2f} µs  {k}")
(out / "check_copies.json").write_text(json.dumps({"checks": checks, "host_us_per_call": timing}, indent=1))
print(json.dumps(checks, indent=1))
