"""Counting and timing model calls, to split wall time into model vs engine.

``CallTimer`` wraps a ``LayeredModel`` and synchronises around every call,
so the time *outside* calls is host work the device waits for: the engine's
own overhead. The synchronisation adds a little latency to every call, so
this split is for attribution only; throughput is measured without it.
"""

from __future__ import annotations

import time

import torch

from hsd_bench.bench.timing import sync


class CallTimer:
    def __init__(self, model):
        self._model = model
        self.seconds = 0.0
        self.calls = 0

    def __getattr__(self, name):  # everything else: the wrapped model's attributes
        return getattr(self._model, name)

    def _timed(self, fn, *args):
        sync(self._model.device)
        t0 = time.perf_counter()
        out = fn(*args)
        sync(self._model.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._timed(self._model.embed, ids)

    def run_layers(self, hidden, start, end, first_pos):
        return self._timed(self._model.run_layers, hidden, start, end, first_pos)

    def logits(self, hidden):
        return self._timed(self._model.logits, hidden)

    def reset(self):  # the engine resets per prompt; the counters keep running
        return self._model.reset()

    def cache_len(self, layer):
        return self._model.cache_len(layer)

    def truncate(self, start, end, length):
        return self._model.truncate(start, end, length)


class ForwardCounter:
    """Counts full-depth forwards of a transformers model (a hook on its last decoder layer).

    An early-exit draft never reaches the last layer, so the count is the
    number of target forwards (prefill included): HF's mean accepted length
    is ``generated / count``.
    """

    def __init__(self, hf_model):
        layers = hf_model.get_decoder().layers
        self.count = 0
        self._handle = layers[-1].register_forward_hook(self._hook)

    def _hook(self, *_):
        self.count += 1

    def close(self) -> None:
        self._handle.remove()
