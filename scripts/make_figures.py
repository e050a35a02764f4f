#!/usr/bin/env python
"""Rebuild every paper figure (PNG + PDF) from the committed tables in results/, results/gpu/, results/gpu_ar_chunk/
and results/gpu_run8/.

    python scripts/make_figures.py                 # all figures of every set; missing tables are skipped with a hint
    python scripts/make_figures.py --results results/gpu   # the GPU headline set only
    python scripts/make_figures.py exit_layer --out /tmp/figs

Thin entry point: the logic lives in ``hsd_bench.figures``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only; no display needed

from hsd_bench.figures import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
