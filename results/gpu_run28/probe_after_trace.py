#!/usr/bin/env python3
"""The host probe of the rows a benchmark process timed after a kernel trace, against its first row.

    python results/gpu_run28/probe_after_trace.py      # from the repository root

Why: bench_gpu.py --device-trace traced every method right after timing it (the twenty-sixth to
twenty-eighth runs), and a torch.profiler trace leaves CUPTI attached to the process
(pytorch/pytorch#144455). Each `bench.md` under results/ lists a host probe per engine row; the
first row (AR) was timed before any trace. This compares the later rows' probes with it, for
the processes that traced and those that did not.
"""

import glob
import re
import statistics as st

rows = {True: [], False: []}
for path in sorted(glob.glob("results/gpu_run*/**/bench.md", recursive=True)):
    text = open(path).read()
    if "host probe" not in text:
        continue
    traced = "--device-trace" in text
    probes = [float(m.group(1)) for line in text.splitlines() if line.startswith("| ours")
              for m in [re.search(r"\| ([0-9.]+) µs \|\s*$", line)] if m]
    if len(probes) >= 3:
        rows[traced].append((path, probes[0], probes[1:]))
for traced in (False, True):
    files = rows[traced]
    later = [p for _, _, ps in files for p in ps]
    ratios = [st.median(ps) / first for _, first, ps in files]
    print(f"{'traced' if traced else 'not traced'}: {len(files)} processes; first row's probe median "
          f"{st.median(f for _, f, _ in files):.1f} µs, later rows' {st.median(later):.1f} µs; per process "
          f"median(later) / first: median {st.median(ratios):.2f}, mean {st.mean(ratios):.2f}; later probes "
          f">= 17 µs: {sum(p >= 17 for p in later)} of {len(later)}")
