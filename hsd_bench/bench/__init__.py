"""Side-by-side speed measurements (``scripts/bench_gpu.py``).

Kept apart from the code it measures (STYLE.md, nanoGPT's ``bench.py``), and
importing only torch / transformers / tokenizers so it runs on the GPU
machines, which have no Hydra, W&B or datasets.
"""
