#!/usr/bin/env python3
"""The host probe of the rows a benchmark process timed after a kernel trace, against its first row.

    python results/gpu_run28/probe_after_trace.py      # from the repository root

Why: bench_gpu.py --device-trace traced every method right after timing it (the twenty-sixth to
twenty-eighth runs), and a torch.profiler trace leaves CUPTI attached to the process
(pytorch/pytorch#144455). Each `bench.md` under results/ lists a host probe per engine row; the
first row (AR) was timed before any trace. This compares the later rows' probes with it, for
the processes that did not trace, those that traced each row right after timing it, and (since
the twenty-ninth run, 4d5ed6a) those that ran every trace after every timed pass.
"""

import glob
import re
import statistics as st

KINDS = ("not traced", "traced after each row", "traced after every timed pass")
rows = {kind: [] for kind in KINDS}
for path in sorted(glob.glob("results/gpu_run*/**/bench.md", recursive=True)):
    text = open(path).read()
    if "host probe" not in text:
        continue
    traced = KINDS[0] if "--device-trace" not in text else KINDS[2] if "after every timed pass" in text else KINDS[1]
    probes = [float(m.group(1)) for line in text.splitlines() if line.startswith("| ours")
              for m in [re.search(r"\| ([0-9.]+) µs \|\s*$", line)] if m]
    if len(probes) >= 3:
        rows[traced].append((path, probes[0], probes[1:]))
for traced in KINDS:
    files = rows[traced]
    if not files:
        continue
    later = [p for _, _, ps in files for p in ps]
    ratios = [st.median(ps) / first for _, first, ps in files]
    print(f"{traced}: {len(files)} processes; first row's probe median "
          f"{st.median(f for _, f, _ in files):.1f} µs, later rows' {st.median(later):.1f} µs; per process "
          f"median(later) / first: median {st.median(ratios):.2f}, mean {st.mean(ratios):.2f}; later probes "
          f">= 17 µs: {sum(p >= 17 for p in later)} of {len(later)}")
