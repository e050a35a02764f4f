"""The model interface the engine talks to.

The engine never calls a whole model: it runs *ranges* of decoder layers over
chosen positions, so that an early-exit view (the first ``e`` layers + final
norm + LM head) and the full model can share one KV cache and hand hidden
states to each other (DESIGN.md §2). Every backend (the Hugging Face adapter,
the native static-cache backend) implements this small protocol, so the
engine is written once.

Positions are absolute token indices in the sequence; each layer's KV cache
holds positions ``[0, cache_len(layer))`` and rollback is ``truncate``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class LayeredModel(Protocol):
    """A decoder-only LM exposed layer range by layer range (batch size 1)."""

    name: str
    num_layers: int
    vocab_size: int
    max_context: int
    device: torch.device
    dtype: torch.dtype

    def reset(self) -> None:
        """Drop every cached position (start of a new prompt)."""

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[T]`` -> input hidden states ``[1, T, D]``."""

    def run_layers(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> torch.Tensor:
        """Run decoder layers ``[start, end)`` on ``hidden`` ``[1, T, D]`` for
        positions ``[first_pos, first_pos + T)``.

        Every layer in the range must hold exactly ``first_pos`` cached
        positions; afterwards it holds ``first_pos + T``.
        """

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head on hidden states at any exit: ``[1,T,D] -> [T,V]`` (float32)."""

    def cache_len(self, layer: int) -> int:
        """How many positions layer ``layer`` has in its KV cache."""

    def truncate(self, start: int, end: int, length: int) -> None:
        """Drop cached positions ``>= length`` in layers ``[start, end)``."""


# Optional, for speed; the engine uses them where a backend defines them and
# falls back to the protocol above otherwise (ModelState.greedy_tokens /
# greedy_draft in engine.py), with the same results and counters:
#
#   greedy_tokens(hidden [1, T, D]) -> LongTensor[T]
#       argmax of logits(hidden), head and argmax fused.
#   greedy_draft(tokens LongTensor[N], first, upto, end, count, process_last=False)
#       -> [1, upto + count - 1 - first (+1 with process_last), D]
#       a greedy draft round on layers [0, end): process positions [first, upto)
#       (ids tokens[first:upto]), then `count` times take the head's argmax at the
#       last processed position, write it at the next position of `tokens` and
#       (except the last, unless process_last) process it; returns the hidden
#       states at depth `end` of every processed position. Layers [0, end) must
#       hold `first` positions.
#       With `stop_below=t` (a draft_stop threshold; passed only when set) the round
#       ends after the first token whose top probability (softmax at temperature 1)
#       is below t, and every drafted token is processed, the last one too: the
#       returned states cover [first, upto + drafted).
#
# The native backend implements both (hsd_bench/models/native/model.py).

