"""A greedy verdict's consequences, computed on the device inside a captured step.

Why a module of its own: these are the few-element steps between a verification and the next
round -- count the accepted drafts, move a position past them, place the verifier's token where
the next step reads it. Run op by op they are six to nine tiny kernels each, a few µs of device
time apiece, inside graphs whose layers on a small model take about as long. Written as pure
functions of their buffers, :func:`compile_verdict_fn` fuses each into one or two kernels: the
hierarchy's device busy time on the 5.6 M model fell 4.0 % against the same steps op by op
(docs/gpu-runs.md, "Twenty-ninth run"). The same functions run uncompiled where the model is
(CPU tests), so the tests check the code the GPU captures.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from hsd_bench.models.native.graphs import configure_compile
from hsd_bench.verify import greedy_accepted_on_device


def advance_past_verdict(pos_base: torch.Tensor, ids: torch.Tensor, tokens: torch.Tensor,
                         verify_k: torch.Tensor, last: int) -> None:
    """Move ``pos_base`` to where this model's next verification starts: past the drafts
    ``ids[1:]`` that match ``tokens`` (the step's argmaxes), at most ``verify_k`` of them, and
    one more for the verifier's token; clamped to ``last``, so that steps replayed before any
    real one stay in range."""
    accepted = greedy_accepted_on_device(ids[1:], tokens, limit=verify_k)
    pos_base.copy_((pos_base + accepted + 1).clamp(max=last))


def round_inputs_from_verdict(verdict: torch.Tensor, k: int, back: int, rows: torch.Tensor,
                              draft_ids: torch.Tensor, draft_last: torch.Tensor, pos_base: torch.Tensor,
                              verdict_m: torch.Tensor, token_row: torch.Tensor) -> torch.Tensor:
    """A draft round's inputs from a packed verdict (``k`` drafts, then ``k + 1`` argmaxes):
    the round starts at ``min(m + k - back, m + a)`` -- this model's frontier, or the verifier's
    token -- with the accepted drafts between them, then that token. The token also goes into
    ``token_row`` at its position ``m + a`` (``token_row.py``: the engine's buffer, where the
    host would otherwise write it once it read the verdict). Returns ``a``."""
    drafts, target = verdict[:k], verdict[k : 2 * k + 1]
    accepted = greedy_accepted_on_device(drafts, target)
    token = target.index_select(0, accepted)
    token_row.index_copy_(0, verdict_m + accepted, token)
    if back == 0:
        draft_ids[:1].copy_(token)
        draft_last.zero_()
        pos_base.copy_(verdict_m + accepted)
    else:  # accepted past the frontier: start there, at the accepted drafts this model has not run
        behind = (accepted - (k - back)).clamp_min(0)
        source = (accepted - behind + rows).clamp(max=k - 1)
        draft_ids[: rows.shape[0]].copy_(torch.where(rows < behind, drafts.index_select(0, source), token))
        draft_last.copy_(behind)
        pos_base.copy_(verdict_m + accepted - behind)
    return accepted


def place_verifier_token(verdict: torch.Tensor, k: int, at: int, ids: torch.Tensor) -> None:
    """Write a packed verdict's verifier token into ``ids`` at ``at + a``, right after the ``a``
    drafts it accepted (a hand-up verified ahead)."""
    drafts, target = verdict[:k], verdict[k : 2 * k + 1]
    accepted = greedy_accepted_on_device(drafts, target)
    ids.index_copy_(0, accepted + at, target.index_select(0, accepted))


def place_drafted_token(tok: torch.Tensor, i: int, draft_tok: torch.Tensor, token_row: torch.Tensor,
                        start: torch.Tensor) -> None:
    """A draft chain's token ``i`` (``tok``, one element) into the chain's static output ``draft_tok``
    and into ``token_row`` at its position ``start + i`` (``start``: the round's first drafted
    position, on the device), where the engine reads it (``token_row.py``). One function, so that
    compiled it is one kernel with two stores: the chain's copy into ``draft_tok`` was a kernel
    already, and a kernel more per drafted token is device time on a model whose steps are short."""
    tok = tok.reshape(-1)
    draft_tok[i : i + 1].copy_(tok)
    token_row.index_copy_(0, start + i, tok)


@functools.cache
def compile_verdict_fn(fn: Callable) -> Callable:
    """``fn`` compiled once for every model, with dynamic sizes: a few compiled variants (dynamo
    specialises sizes 0 and 1 and a look-back of 0) serve every draft count ``k`` and look-back,
    where a static compile would build one per pair -- dozens per model, each a compile before
    the first timed pass."""
    configure_compile()
    return torch.compile(fn, dynamic=True, fullgraph=True)
