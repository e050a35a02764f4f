"""Static per-layer KV caches: preallocated once, written by position.

Each layer owns ``[1, KV, slots, head_dim]`` key and value buffers and a
length (its frontier). Rollback is setting the length: stale slots beyond it
are masked out by position and overwritten when those positions are
recomputed, as in gpt-fast. Fixed buffers are also what lets a captured CUDA
graph read and write the cache by address.
"""

from __future__ import annotations

import torch


class StaticKVCache:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, slots: int, dtype: torch.dtype, device):
        if slots < 1:
            raise ValueError(f"a KV cache needs at least one slot, got slots={slots}")
        shape = (1, num_kv_heads, slots, head_dim)
        # Zeros, not empty: a masked-out slot still enters softmax(...) @ V as
        # 0 * value, and 0 * NaN from uninitialised memory would be NaN.
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.lengths = [0] * num_layers
        self.slots = slots

    def reset(self) -> None:
        self.lengths = [0] * len(self.lengths)

    def check_frontier(self, start: int, end: int, first_pos: int) -> None:
        """The protocol's precondition: every layer of the range holds exactly ``first_pos`` positions."""
        for layer in range(start, end):
            if self.lengths[layer] != first_pos:
                raise ValueError(
                    f"layer {layer} holds {self.lengths[layer]} cached positions but run_layers was asked to "
                    f"continue at first_pos={first_pos}; every layer of [{start}, {end}) must hold exactly first_pos"
                )

    def advance(self, start: int, end: int, length: int) -> None:
        for layer in range(start, end):
            self.lengths[layer] = length

    def truncate(self, start: int, end: int, length: int) -> None:
        if length < 0:
            raise ValueError(f"truncate length={length} must be >= 0")
        for layer in range(start, end):
            if self.lengths[layer] > length:
                self.lengths[layer] = length

    def nbytes_per_position(self) -> int:
        """Bytes of K and V one position occupies across all layers (for bandwidth accounting)."""
        k = self.k[0]
        return 2 * len(self.k) * k.shape[1] * k.shape[3] * k.element_size()
