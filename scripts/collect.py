#!/usr/bin/env python
"""Gather run directories into one table; with --figure NAME write results/NAME/table.csv.

    python scripts/collect.py runs/exit_layer --figure exit_layer
    python scripts/collect.py runs/ --rows --out rows.parquet

Thin entry point: the logic lives in ``hsd_bench.collect``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.collect import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
