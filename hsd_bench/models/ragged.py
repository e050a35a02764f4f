"""Ragged batches: several sequences' positions in one forward.

The engine hands a backend the positions of several rows *packed* one after
another along dim 1 of a ``[1, N, D]`` tensor (row ``i`` contributes
``lengths[i]`` positions from ``first[i]`` on), because everything outside
attention is position-wise: embedding, head and argmax take the packed tensor
as it is. Attention needs each row's own cache, so a backend lays the rows
out as a padded ``[b, T, D]`` batch for its layers and packs the result
again. :class:`RaggedLayout` is that mapping, shared by both backends.

Padding entries (position ``t >= lengths[i]`` of row ``i``) sit at the
positions right after the row's real ones: causally they cannot affect a
real entry, and the keys they write land in cache slots past the row's new
frontier -- stale slots that real tokens overwrite before anyone attends to
them. Their outputs are dropped.
"""

from __future__ import annotations

from typing import Sequence

import torch


class RaggedLayout:
    """``b`` sequences packed along dim 1 of ``[1, N, D]``, as a padded ``[b, T, D]`` batch."""

    def __init__(self, rows: Sequence[int], first: Sequence[int], lengths: Sequence[int]):
        self.rows, self.first, self.lengths = list(rows), list(first), list(lengths)
        if not (len(self.rows) == len(self.first) == len(self.lengths)) or not self.rows:
            raise ValueError(
                f"a ragged batch needs one first position and one length per row, got rows={self.rows}, "
                f"first={self.first}, lengths={self.lengths}"
            )
        if min(self.lengths) < 1 or min(self.first) < 0:
            raise ValueError(f"every row needs >= 1 position at a position >= 0, got first={self.first}, "
                             f"lengths={self.lengths}")
        if len(set(self.rows)) != len(self.rows):
            raise ValueError(f"a row may appear once per forward, got rows={self.rows}")
        self.b = len(self.rows)
        self.T = max(self.lengths)
        self.N = sum(self.lengths)
        self.uniform = all(n == self.T for n in self.lengths)  # packed == padded: views only
        self._index: dict[int, torch.Tensor] = {}

    @property
    def ends(self) -> list[int]:
        """Each row's frontier after the forward."""
        return [f + n for f, n in zip(self.first, self.lengths)]

    def flat_index(self, device, span: int | None = None) -> torch.Tensor:
        """``LongTensor[N]``: where each packed entry sits in the flattened padded batch
        ``[b' * span]`` (``span`` >= ``T``, default ``T``; any ``b' >= b``)."""
        span = self.T if span is None else span
        if span not in self._index:
            idx = [i * span + t for i, n in enumerate(self.lengths) for t in range(n)]
            self._index[span] = device_index(idx, device)
        return self._index[span]

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """``[1, N, D]`` -> ``[b, T, D]`` with zero padding (finite, so padded rows stay finite)."""
        if packed.shape[:2] != (1, self.N):
            raise ValueError(f"packed hidden states must be [1, {self.N}, D] for lengths {self.lengths}, "
                             f"got {tuple(packed.shape)}")
        d = packed.shape[-1]
        if self.uniform:
            return packed.view(self.b, self.T, d)
        out = packed.new_zeros(self.b * self.T, d)
        out.index_copy_(0, self.flat_index(packed.device), packed[0])
        return out.view(self.b, self.T, d)

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """``[b', span, D]`` (``b' >= b``, ``span >= T``) -> ``[1, N, D]``: the real entries, packed in row order."""
        span, d = padded.shape[1], padded.shape[-1]
        flat = padded.reshape(-1, d)
        if self.uniform and span == self.T:
            return flat[: self.N][None]
        return flat.index_select(0, self.flat_index(padded.device, span))[None]

    def positions(self, device, span: int | None = None, limit: int | None = None) -> torch.Tensor:
        """``LongTensor[b, span]`` (default ``T``): row ``i``'s positions ``first[i] + t``, padding
        included, capped at ``limit - 1`` (a slot no real position uses) when given."""
        span = self.T if span is None else span
        pos = torch.tensor(self.first, dtype=torch.long)[:, None] + torch.arange(span)[None, :]
        if limit is not None:
            pos.clamp_(max=limit - 1)
        return to_device(pos, device)


def device_index(values: list[int], device) -> torch.Tensor:
    """``LongTensor`` of host ints on ``device``, copied without waiting for the device."""
    return to_device(torch.tensor(values, dtype=torch.long), device)


def to_device(host: torch.Tensor, device) -> torch.Tensor:
    """A small host tensor on ``device``, copied without waiting for the device.

    A plain ``tensor.to("cuda")`` copies from pageable memory and blocks until
    the copy is done; from pinned memory the copy is queued like a kernel, so
    the host keeps running ahead of the device.
    """
    if torch.device(device).type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def token_spans(tokens: torch.Tensor, rows: list[int], firsts: list[int], ends: list[int]) -> torch.Tensor:
    """``tokens[rows[i], firsts[i]:ends[i]]`` of every row of a ``[R, L]`` buffer, concatenated, in one device op."""
    width = tokens.shape[1]
    index = [r * width + p for r, f, u in zip(rows, firsts, ends) for p in range(f, u)]
    return tokens.view(-1).index_select(0, device_index(index, tokens.device))
