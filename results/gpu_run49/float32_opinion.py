"""Forty-ninth run: the benchmark's float32 second opinion, run on a GPU for the first time.

Why: on every bf16 divergence the near-tie rule does not explain, ``scripts/bench_gpu.py --parts
methods`` asks a float32 copy of the target for the two tokens' float32 gap and the run dtype's
own error there (``parity.explain`` with ``bench.models.float32_reference``; docs/performance.md,
"Parity in bfloat16 that explains itself"). No GPU run has had an unexplained divergence since it
was built, so that path had only run on a CPU. Here the bf16 tie tolerance is forced below
bf16's rounding (2^-12 of the top logit instead of 2^-5) so that every divergence is a
``mismatch`` and asks for the opinion, as the CPU check did; everything else is the benchmark as
it ships. The forced tolerance makes the run's "unexplained" counts meaningless by design: what
is read is whether each mismatch carries a float32 record and what it says.

    python3 results/gpu_run49/float32_opinion.py OUT [bench_gpu.py options...]

writes OUT/bench.json (the benchmark's own) and OUT/opinions.md: one line per mismatch.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, as scripts/ do
import hsd_bench.parity as parity  # noqa: E402

FORCED = 2.0**-12


def opinions(bench: dict) -> list[str]:
    """One line per forced mismatch: its float32 record (the gap AR's token minus the method's, the
    float32 top token, the run dtype's own error at the two), or **none** where it has none."""
    lines = ["| row | position | AR / method token | bf16 gap | float32 gap | float32 top | bf16 error |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in bench["parts"]["methods"]["rows"]:
        for d in (row.get("parity_explained") or {}).get("divergences", []):
            if d.get("class") != "mismatch":
                continue
            head = (f"| {row['name']} | {d['position']} | {d['ar_token']} / {d['method_token']} | "
                    f"{d['ar_minus_method_logit']:.4f} |")
            f = d.get("float32")
            lines.append(head + (" **none** | | |" if f is None else
                                 f" {f['ar_minus_method_logit']:.4f} | {f['top1_token']} | {f['run_dtype_error']:.4f} |"))
    return lines


def main() -> None:
    out = Path(sys.argv[1])
    parity.TIE_TOLERANCE[torch.bfloat16] = FORCED
    sys.argv = ["scripts/bench_gpu.py", "--out", str(out), *sys.argv[2:]]
    try:
        runpy.run_path("scripts/bench_gpu.py", run_name="__main__")
    except SystemExit as done:  # the benchmark ends with SystemExit(main())
        if done.code not in (None, 0):
            raise
    bench = json.loads((out / "bench.json").read_text())
    md = "\n".join(opinions(bench)) + "\n"
    (out / "opinions.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
