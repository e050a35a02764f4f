#!/usr/bin/env python
"""hsd-bench: run one method (and the autoregressive baseline) on one dataset.

    python run.py                                   # offline default: layerskip on HumanEval
    python run.py method=hispec exit=8,16           # exit=8,16 is HiSpec's E_d,E_v
    python run.py -m method=layerskip,hispec ...    # a sweep (hydra/launcher=slurm on a cluster)

See README.md and docs/ for every option.
"""

from __future__ import annotations

from hsd_bench.cli import main

if __name__ == "__main__":
    main()
