#!/usr/bin/env python
"""Train an early-exit Llama with LayerSkip's recipe (see docs/models.md).

Thin entry point: the logic lives in ``hsd_bench.training``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsd_bench.training.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
