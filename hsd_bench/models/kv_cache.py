"""A per-layer KV cache with O(1) rollback, owned by the harness.

Transformers' attention modules only call ``cache.update(k, v, layer_idx)``
and use what it returns; that single call is stable across 4.4x/4.5x/5.x,
whereas ``DynamicCache``'s internals are not. Owning the buffers also gives
per-layer lengths -- each layer range has its own frontier -- and rollback by
setting a length, as gpt-fast does: stale slots are simply overwritten.
"""

from __future__ import annotations

import torch


class LayerKVCache:
    def __init__(self, num_layers: int, initial_capacity: int = 256):
        self.num_layers = num_layers
        self.lengths = [0] * num_layers
        self._k: list[torch.Tensor | None] = [None] * num_layers
        self._v: list[torch.Tensor | None] = [None] * num_layers
        self._initial_capacity = initial_capacity

    def reset(self) -> None:
        self.lengths = [0] * self.num_layers

    def reserve(self, positions: int) -> None:
        """Allocate at least ``positions`` slots per layer at the next write (grown buffers are kept)."""
        self._initial_capacity = max(self._initial_capacity, int(positions))

    def _ensure(self, layer: int, like: torch.Tensor, needed: int) -> None:
        buf = self._k[layer]
        if buf is not None and buf.shape[2] >= needed and buf.dtype == like.dtype and buf.device == like.device:
            return
        capacity = max(needed, self._initial_capacity, 2 * (buf.shape[2] if buf is not None else 0))
        shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
        new_k = like.new_empty(shape)
        new_v = like.new_empty(shape)
        n = self.lengths[layer]
        if buf is not None and n:
            new_k[:, :, :n] = buf[:, :, :n]
            new_v[:, :, :n] = self._v[layer][:, :, :n]
        self._k[layer], self._v[layer] = new_k, new_v

    # The one method transformers' attention calls.
    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *_args, **_kwargs):
        n = self.lengths[layer_idx]
        t = key.shape[2]
        self._ensure(layer_idx, key, n + t)
        self._k[layer_idx][:, :, n : n + t] = key
        self._v[layer_idx][:, :, n : n + t] = value
        self.lengths[layer_idx] = n + t
        return self._k[layer_idx][:, :, : n + t], self._v[layer_idx][:, :, : n + t]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.lengths[layer_idx]

    def truncate(self, start: int, end: int, length: int) -> None:
        for layer in range(start, end):
            if self.lengths[layer] > length:
                self.lengths[layer] = length
