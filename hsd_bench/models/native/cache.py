"""Static per-layer KV caches: preallocated once, written by position.

Each layer owns ``[rows, KV, slots, head_dim]`` key and value buffers and,
per row, a length (its frontier); a one-sequence forward uses row 0. Rollback is setting the length: stale slots beyond it
are masked out by position and overwritten when those positions are
recomputed, as in gpt-fast. Fixed buffers are also what lets a captured CUDA
graph read and write the cache by address.
"""

from __future__ import annotations

import torch


class StaticKVCache:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, slots: int, dtype: torch.dtype, device,
                 rows: int = 1):
        if slots < 1 or rows < 1:
            raise ValueError(f"a KV cache needs at least one slot and one row, got slots={slots}, rows={rows}")
        shape = (rows, num_kv_heads, slots, head_dim)
        # Zeros, not empty: a masked-out slot still enters softmax(...) @ V as
        # 0 * value, and 0 * NaN from uninitialised memory would be NaN.
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.row_lengths = [[0] * num_layers for _ in range(rows)]  # [row][layer]
        self.slots = slots
        self.rows = rows

    @property
    def lengths(self) -> list[int]:
        """Row 0's length per layer (the one-sequence view)."""
        return self.row_lengths[0]

    def reset(self) -> None:
        self.row_lengths = [[0] * len(self.k) for _ in range(self.rows)]

    def check_frontier(self, start: int, end: int, first_pos: int, row: int = 0) -> None:
        """The protocol's precondition: every layer of the range holds exactly ``first_pos`` positions."""
        lengths = self.row_lengths[row]
        if lengths[start:end].count(first_pos) == end - start:  # the common case, at C speed
            return
        for layer in range(start, end):
            if lengths[layer] != first_pos:
                where = f" of row {row}" if row else ""
                raise ValueError(
                    f"layer {layer} holds {lengths[layer]} cached positions{where} but run_layers was asked "
                    f"to continue at first_pos={first_pos}; every layer of [{start}, {end}) must hold exactly first_pos"
                )

    def advance(self, start: int, end: int, length: int, row: int = 0) -> None:
        self.row_lengths[row][start:end] = [length] * (end - start)

    def truncate(self, start: int, end: int, length: int, row: int = 0) -> None:
        if length < 0:
            raise ValueError(f"truncate length={length} must be >= 0")
        lengths = self.row_lengths[row]
        for layer in range(start, end):
            if lengths[layer] > length:
                lengths[layer] = length

    def nbytes_per_position(self) -> int:
        """Bytes of K and V one position occupies across all layers (for bandwidth accounting)."""
        k = self.k[0]
        return 2 * len(self.k) * k.shape[1] * k.shape[3] * k.element_size()
