"""The model interface the engine talks to.

The engine never calls a whole model: it runs *ranges* of decoder layers over
chosen positions, so that an early-exit view (the first ``e`` layers + final
norm + LM head) and the full model can share one KV cache and hand hidden
states to each other (DESIGN.md §2). Every backend (the Hugging Face adapter,
the native static-cache backend) implements this small protocol, so the
engine is written once.

Positions are absolute token indices in the sequence; each layer's KV cache
holds positions ``[0, cache_len(layer))`` and rollback is ``truncate``.

Batches: a backend that implements ``reserve_rows(n)`` holds ``n`` sequences
(cache *rows*), each with its own lengths, and takes ragged forwards:
``run_layers(hidden, start, end, first_pos=[...], rows=[...], lengths=[...])``
with the rows' positions packed one after another along dim 1 of ``hidden``
(``ragged.py``). Called without ``rows``, every method is the one-sequence
protocol on row 0 -- what the engine uses at batch size 1, so a backend
without batches needs nothing more.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class LayeredModel(Protocol):
    """A decoder-only LM exposed layer range by layer range (one sequence; see above for batches)."""

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
        positions; afterwards it holds ``first_pos + T``. The result may be a
        view of the backend's own memory, valid as greedy_draft's states are
        (below): until those positions run again at depth ``end``.
        """

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm + LM head on hidden states at any exit: ``[1,T,D] -> [T,V]`` (float32)."""

    def cache_len(self, layer: int) -> int:
        """How many positions layer ``layer`` has in its KV cache."""

    def truncate(self, start: int, end: int, length: int) -> None:
        """Drop cached positions ``>= length`` in layers ``[start, end)``."""


# Optional, for batches (both built-in backends implement them):
#
#   reserve_rows(n)
#       hold n sequences from now on (cache row r = the engine's batch row r).
#   run_layers(hidden [1, N, D], start, end, first_pos: list[int], rows: list[int], lengths: list[int])
#       -> [1, N, D]: row rows[i] runs positions [first_pos[i], first_pos[i] + lengths[i]), its hidden
#       states packed after those of rows[:i] (N = sum(lengths)). Each row's layers must hold exactly
#       first_pos[i] positions; no row sees another's keys, nor any padding the backend adds.
#   cache_len(layer, row=0), truncate(start, end, length, rows=None)
#       the same per row (rows=None: row 0).
#
# Embedding and the head are position-wise, so embed / logits / greedy_tokens take packed
# positions of several rows as they are.
#
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
#       With `keep_hidden=False` (passed only when set; never with stop_below) it returns
#       None instead: a model's only view drafting greedily, whose states nothing reads.
#       With `stop_below=t` (a draft_stop threshold; passed only when set) the round
#       ends after the first token whose top probability (softmax at temperature 1)
#       is below t, and every drafted token is processed, the last one too: the
#       returned states cover [first, upto + drafted).
#       The states may be a view of the backend's own memory that stays valid until those
#       positions are run again at that depth (the engine forgets them first: a rejection
#       truncates both); states of consecutive positions may then lie end to end in one
#       storage, which the engine packs as one view (engine.gather).
#
#   greedy_draft_rows(tokens LongTensor[R, L], rows, first: list, upto: list, end, count, process_last=False)
#       -> [1, N, D]: greedy_draft for several rows of a batch at once (the same count each), the
#       hidden states of every processed position packed row by row.
#
#   run_layers_greedy(hidden [1, T, D], start, end, first_pos, keep_hidden=True)
#       -> ([1, T, D] or None, LongTensor[T])
#       run_layers and then greedy_tokens of its whole output, as one step: a greedy
#       verification whose last segment runs exactly the positions it checks. Where start
#       is 0 the engine passes the token ids (LongTensor[T]) instead of their embedding:
#       the step embeds them. The tokens may be the step's own buffer (read them before
#       the model's next step); the hidden states may be a view valid as greedy_draft's are;
#       keep_hidden=False returns None for them.
#
# The native backend implements all four (hsd_bench/models/native/model.py, batched.py). A
# wrapper that times model calls must time every one of them (bench/instrument.py).

