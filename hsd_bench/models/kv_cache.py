"""A per-layer KV cache with O(1) rollback, owned by the harness.

Transformers' attention modules only call ``cache.update(k, v, layer_idx)``
and use what it returns; that single call is stable across 4.4x/4.5x/5.x,
whereas ``DynamicCache``'s internals are not. Owning the buffers also gives
per-layer lengths -- each layer range has its own frontier -- and rollback by
setting a length, as gpt-fast does: stale slots are simply overwritten.

The buffers hold ``rows`` sequences (``reserve_rows``), each with its own
length per layer. A one-sequence forward writes row 0 after its current
length; a ragged forward over several rows first states where each row's
keys go (``begin_rows``), because ``update`` only sees a ``[b, KV, T, hd]``
tensor.
"""

from __future__ import annotations

import torch

from hsd_bench.models.ragged import device_index


class LayerKVCache:
    def __init__(self, num_layers: int, initial_capacity: int = 256):
        self.num_layers = num_layers
        self.rows = 1
        self.row_lengths = [[0] * num_layers]  # [row][layer]
        self._k: list[torch.Tensor | None] = [None] * num_layers
        self._v: list[torch.Tensor | None] = [None] * num_layers
        self._initial_capacity = initial_capacity
        self._plan: tuple | None = None  # a ragged forward's (rows, positions, kv_len, ends)

    @property
    def lengths(self) -> list[int]:
        """Row 0's length per layer (the one-sequence view)."""
        return self.row_lengths[0]

    def reserve_rows(self, rows: int) -> None:
        """Hold at least ``rows`` sequences (buffers grow on their next write)."""
        if rows > self.rows:
            self.row_lengths += [[0] * self.num_layers for _ in range(rows - self.rows)]
            self.rows = rows

    def reset(self) -> None:
        self.row_lengths = [[0] * self.num_layers for _ in range(self.rows)]

    def reserve(self, positions: int) -> None:
        """Allocate at least ``positions`` slots per layer at the next write (grown buffers are kept)."""
        self._initial_capacity = max(self._initial_capacity, int(positions))

    def _ensure(self, layer: int, like: torch.Tensor, needed: int) -> None:
        buf = self._k[layer]
        if (buf is not None and buf.shape[2] >= needed and buf.shape[0] >= self.rows and buf.dtype == like.dtype
                and buf.device == like.device):
            return
        capacity = max(needed, self._initial_capacity, 2 * (buf.shape[2] if buf is not None else 0))
        shape = (self.rows, like.shape[1], capacity, like.shape[3])
        new_k = like.new_zeros(shape)
        new_v = like.new_zeros(shape)
        if buf is not None:
            rows, n = buf.shape[0], max(lengths[layer] for lengths in self.row_lengths[: buf.shape[0]])
            new_k[:rows, :, :n] = buf[:, :, :n]
            new_v[:rows, :, :n] = self._v[layer][:, :, :n]
        self._k[layer], self._v[layer] = new_k, new_v

    def begin_rows(self, rows: list[int], positions: torch.Tensor, ends: list[int], kv_len: int) -> None:
        """The next updates come from a ragged forward: row ``rows[i]`` writes its keys at
        ``positions[i]`` (``[b, T]``, all below ``kv_len``) and then holds ``ends[i]`` positions."""
        self._plan = (rows, device_index(rows, positions.device), positions, kv_len, ends)

    def end_rows(self) -> None:
        self._plan = None

    # The one method transformers' attention calls.
    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *_args, **_kwargs):
        if self._plan is not None:
            return self._update_rows(key, value, layer_idx)
        n = self.lengths[layer_idx]
        t = key.shape[2]
        self._ensure(layer_idx, key, n + t)
        self._k[layer_idx][:1, :, n : n + t] = key
        self._v[layer_idx][:1, :, n : n + t] = value
        self.lengths[layer_idx] = n + t
        return self._k[layer_idx][:1, :, : n + t], self._v[layer_idx][:1, :, : n + t]

    def _update_rows(self, key: torch.Tensor, value: torch.Tensor, layer: int):
        rows, index, positions, kv_len, ends = self._plan
        self._ensure(layer, key, kv_len)
        k, v = self._k[layer], self._v[layer]
        k[index[:, None], :, positions] = key.transpose(1, 2)
        v[index[:, None], :, positions] = value.transpose(1, 2)
        for r, end in zip(rows, ends):
            self.row_lengths[r][layer] = end
        if rows == list(range(len(rows))):
            return k[: len(rows), :, :kv_len], v[: len(rows), :, :kv_len]
        return k[:, :, :kv_len].index_select(0, index), v[:, :, :kv_len].index_select(0, index)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.lengths[layer_idx]

    def truncate(self, start: int, end: int, length: int, rows: list[int] | None = None) -> None:
        for r in rows if rows is not None else (0,):
            lengths = self.row_lengths[r]
            for layer in range(start, end):
                if lengths[layer] > length:
                    lengths[layer] = length
