"""Ragged forwards of the native backend: several cache rows in one step.

The engine packs the positions of several sequences along dim 1 of
``[1, N, D]`` (``models/ragged.py``); a step lays them out as a padded
``[b, T, D]`` batch, runs the layers with each sequence at its own positions
over its own cache row, and packs the result again.

* **eager** (any ``T`` without fixed shapes, and ``T > max_graph_tokens``):
  exactly ``b`` rows and ``T`` positions; attention over the slots in use.
* **fixed-shape** (``T <= max_graph_tokens``): the step's shape is
  ``(b_bucket, T_bucket, kv_bucket)``, each a power of two, so a handful of
  compiled graphs / captured CUDA graphs serve every batch. Padding entries
  of a real row sit at the positions after its real ones (as at batch 1);
  padding *rows* (``b < b_bucket``) write only the cache's last slot, which
  no real position uses and no mask lets a real query see. When the rows are
  exactly ``0 .. b-1`` and fill the bucket, attention reads the cache rows as
  views; otherwise it gathers the rows the step serves.

Positions, rows and the packing index reach the device as small copies made
before the step, so a replay reads everything from static buffers.
"""

from __future__ import annotations

import torch

from hsd_bench.models.native.cache import StaticKVCache
from hsd_bench.models.native.graphs import GraphCache, next_pow2
from hsd_bench.models.native.layers import layer_forward, step_inputs
from hsd_bench.models.ragged import RaggedLayout


class RaggedSteps:
    """The batch half of :class:`~hsd_bench.models.native.model.NativeLlama` (a mixin: it uses the
    model's cache, layers and graph cache)."""

    def reserve_rows(self, rows: int) -> None:
        """Hold ``rows`` sequences: a KV cache of that many rows (kept when already as large).

        Growing reallocates the cache, which every captured CUDA graph reads
        by address, so the captured graphs are dropped and recaptured on use.
        """
        if rows <= self.cache.rows:
            return
        a = self.args
        self.cache = StaticKVCache(a.num_layers, a.num_kv_heads, a.head_dim, self.cache.slots, self.dtype, self.device,
                                   rows=rows)
        if self._graphs is not None:
            self._graphs = GraphCache(self.device)

    def _run_rows(self, hidden: torch.Tensor, start: int, end: int, first, rows, lengths) -> torch.Tensor:
        self._check_range(start, end)
        layout = RaggedLayout(rows, first, lengths)
        if hidden.dim() != 3 or hidden.shape[0] != 1 or hidden.shape[1] != layout.N \
                or hidden.shape[2] != self.args.hidden_size:
            raise ValueError(f"hidden must be [1, {layout.N}, {self.args.hidden_size}] (lengths {layout.lengths}), "
                             f"got {tuple(hidden.shape)}")
        if max(layout.rows) >= self.cache.rows or min(layout.rows) < 0:
            raise ValueError(f"rows {layout.rows} outside the {self.cache.rows} reserved cache rows (reserve_rows)")
        if max(layout.ends) > self.max_context:
            raise ValueError(f"positions up to {max(layout.ends) - 1} must lie in [0, max_context={self.max_context})")
        for r, f in zip(layout.rows, layout.first):
            self.cache.check_frontier(start, end, f, r)
        if layout.T <= self.max_graph_tokens:
            out = self._run_fixed_rows(hidden, start, end, layout)
        else:
            x = layout.pad(hidden)
            pos = layout.positions(self.device, limit=self.cache.slots)
            rows_t = None if layout.rows == list(range(layout.b)) else torch.tensor(layout.rows, device=self.device)
            out = layout.unpad(self._layers(x, pos, start, end, max(layout.ends), layer_forward, step_inputs, "sdpa",
                                            rows_t))
        for r, e in zip(layout.rows, layout.ends):
            self.cache.advance(start, end, e, r)
        return out

    def _run_fixed_rows(self, hidden: torch.Tensor, start: int, end: int, layout: RaggedLayout) -> torch.Tensor:
        bb, tb = next_pow2(layout.b), next_pow2(layout.T)
        kv_len = self._kv_bucket(max(layout.ends))
        x_in, pos_in, rows_in = self._rows_static(bb, tb)
        full = layout.b == bb and layout.rows == list(range(bb))
        trash = self.cache.slots - 1
        pos = torch.full((bb, tb), trash, dtype=torch.long)
        pos[: layout.b] = layout.positions("cpu", span=tb, limit=self.cache.slots)
        rows = torch.tensor(layout.rows + [0] * (bb - layout.b), dtype=torch.long)
        index = layout.flat_index(self.device, tb)
        x_in.view(-1, x_in.shape[-1]).index_copy_(0, index, hidden[0])
        _upload(pos, pos_in)
        _upload(rows, rows_in)

        def step() -> torch.Tensor:
            return self._layers(x_in, pos_in, start, end, kv_len, self._layer_fn, self._prep_fn, self.attention,
                                None if full else rows_in)

        out = self._replay(("rows", start, end, bb, tb, kv_len, full), step)
        return out.view(-1, out.shape[-1]).index_select(0, index)[None]

    def _rows_static(self, bb: int, tb: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The static inputs of a ``(bb, tb)`` step: hidden states, positions, cache rows."""
        store = self.__dict__.setdefault("_rows_in", {})
        bufs = store.get((bb, tb))
        if bufs is None:
            bufs = (torch.zeros(bb, tb, self.args.hidden_size, dtype=self.dtype, device=self.device),
                    torch.zeros(bb, tb, dtype=torch.long, device=self.device),
                    torch.zeros(bb, dtype=torch.long, device=self.device))
            store[(bb, tb)] = bufs
        return bufs


def _upload(host: torch.Tensor, static: torch.Tensor) -> None:
    """Copy a small host tensor into a static device buffer without waiting for the device."""
    if static.device.type == "cuda":
        host = host.pin_memory()
    static.copy_(host, non_blocking=True)
