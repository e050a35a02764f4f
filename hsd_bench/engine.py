"""The one engine every method runs on: a recursive stack of levels.

Level 0 drafts; each level above verifies a batch from the level below in one
forward pass; the top level is the target (DESIGN.md §2). A method is only a
list of :class:`Level` objects (see ``methods.py``), so autoregressive
decoding, vanilla SD, LayerSkip, HiSpec and Mohri-style hierarchies share this
code, its caches and its counters.

All levels write into one token buffer: a lower level's context always extends
the context of the level above it, so position ``t`` means the same thing for
every level, and a rejection at ``t`` is a truncation of every model state to
``t``.

Several sequences can decode together (``generate_many(..., batch_size=B)``):
each *row* of the buffer is one sequence in one cache row of every model, with
its own committed length, its own accepted length per round (ragged), its own
rollback, generator and stop. The recursion runs over a set of rows at once,
so every forward serves every row that needs it; a row whose level already
holds enough tokens waits for its batch-mates instead of running ahead. A
finished row leaves and the next prompt takes its cache row. One row is the
special case ``B = 1``, driven through the same code (``generate``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch

from hsd_bench.draft_stop import HostValue, first_stop, stops_after, top_probability
from hsd_bench.models.base import LayeredModel
from hsd_bench.models.ragged import device_index, token_spans
from hsd_bench.sampling import DecodingConfig, sample, warp
from hsd_bench.verify import VerificationRule, greedy_accept_rows, greedy_accept_values, greedy_verdict_inputs
from hsd_bench.views import PrefixViews, RowViews

__all__ = ["DecodingConfig", "Engine", "Generation", "GenerationStats", "Level", "ModelState"]

# A hand-up verified ahead (Engine._hand_up_plan) that may outgrow its step saves the host's turn
# between the middle level's verdict and the level above's launch (~0.1 ms on an H200) where it
# fits, and costs a step of the level above where it does not (~0.9 ms for a 294 M target): so it is
# planned only while at most this share of the generation's hand-ups so far outgrew their step --
# counted as if HAND_UP_PRIOR_FITS hand-ups that fit came first, so that a generation plans from
# its first hand-up and one early overflow does not close the plan for the rest of it. The
# generation's own, so that what it plans does not depend on what the engine decoded before it
# (Engine._new_row).
HAND_UP_OVERFLOW_MAX = 0.1
HAND_UP_PRIOR_FITS = 8


class _Pending:
    """Hidden states at one boundary depth, per row, for positions the next segment has not processed.

    A row's states are *pieces* ``(source, offset, length)``: positions ``offset ..
    offset + length`` of a ``[1, N, D]`` forward output that served several rows
    at once (kept as returned: an ``out[0]`` here and a ``[None]`` in :func:`gather`
    were two views, each a dispatcher call on the path the device waits on).
    Appending, consuming and rolling back are list operations on the host, and
    :func:`gather` turns the pieces a forward needs into one packed input with
    at most one device op -- none when they are exactly one earlier output --
    so bookkeeping costs no device work per row.
    """

    def __init__(self, rows: int):
        self.start = [0] * rows
        self.length = [0] * rows
        self.pieces: list[list[tuple[torch.Tensor, int, int]]] = [[] for _ in range(rows)]

    def append(self, r: int, first: int, source: torch.Tensor, offset: int, n: int) -> None:
        if not self.length[r]:
            self.start[r], self.pieces[r] = first, [(source, offset, n)]
        else:
            if self.start[r] + self.length[r] != first:
                raise RuntimeError(f"pending hidden states end at {self.start[r] + self.length[r]}, appended at {first}")
            self.pieces[r].append((source, offset, n))
        self.length[r] += n

    def covers(self, r: int, a: int, b: int) -> bool:
        return self.start[r] <= a and b <= self.start[r] + self.length[r] and (self.length[r] > 0 or a == b)

    def take(self, r: int, a: int, b: int, out: list) -> None:
        """Append the pieces covering positions ``[a, b)`` of row ``r`` to ``out``."""
        pos = self.start[r]
        for source, off, n in self.pieces[r]:
            end = pos + n
            if end > a and pos < b:
                lo, hi = max(a, pos), min(b, end)
                out.append((source, off + lo - pos, hi - lo))
            pos = end

    def drop_before(self, r: int, p: int) -> None:
        """Forget positions ``< p`` (consumed, or never needed again)."""
        cut = p - self.start[r]
        if cut <= 0:
            return
        if cut >= self.length[r]:
            self.start[r], self.length[r], self.pieces[r] = p, 0, []
            return
        pieces = self.pieces[r]
        while cut >= pieces[0][2]:
            cut -= pieces.pop(0)[2]
        if cut:
            source, off, n = pieces[0]
            pieces[0] = (source, off + cut, n - cut)
        self.length[r] -= p - self.start[r]
        self.start[r] = p

    def truncate(self, r: int, length: int) -> None:
        """Forget positions ``>= length`` (a rejection)."""
        keep = length - self.start[r]
        if keep >= self.length[r]:
            return
        if keep <= 0:
            self.start[r], self.length[r], self.pieces[r] = min(self.start[r], length), 0, []
            return
        pieces, pos = [], 0
        for source, off, n in self.pieces[r]:
            if pos >= keep:
                break
            pieces.append((source, off, min(n, keep - pos)))
            pos += n
        self.pieces[r], self.length[r] = pieces, keep

    def reset(self, r: int) -> None:
        self.start[r], self.length[r], self.pieces[r] = 0, 0, []


def gather(pieces: list[tuple[torch.Tensor, int, int]]) -> torch.Tensor:
    """Pieces ``(source [1, N, D], offset, length)`` packed in order into ``[1, sum(length), D]``.

    A view when the pieces are consecutive positions of one memory -- of one source, or of
    views of one storage that lie end to end (a backend that keeps hidden states by position
    returns such views from separate steps); otherwise one ``torch.cat`` of the pieces'
    slices -- one device op whatever the number of sources, and no index list to copy to
    the device (an ``index_select`` needs one per call).
    """
    first, offset, n = pieces[0]
    if len(pieces) == 1:  # the common case (a verification of one round's states): one view, no test
        return first.narrow(1, offset, n)
    if all(source is first for source, _, _ in pieces) and all(
            a[1] + a[2] == b[1] for a, b in zip(pieces, pieces[1:])):
        return first.narrow(1, offset, pieces[-1][1] + pieces[-1][2] - offset)
    if _end_to_end(pieces):
        rows = sum(n for _, _, n in pieces)
        step = first.stride(1)
        return first.as_strided((1, rows, first.shape[2]), (rows * step, step, first.stride(2)),
                                first.storage_offset() + offset * step)
    return torch.cat([source.narrow(1, off, n) for source, off, n in pieces], dim=1)


def _end_to_end(pieces: list[tuple[torch.Tensor, int, int]]) -> bool:
    """Whether the pieces' positions lie end to end in one storage, each position laid out as the first's."""
    first = pieces[0][0]
    storage, layout = first.untyped_storage().data_ptr(), (first.stride()[1:], first.dtype)
    for (a, a_off, a_n), (b, b_off, _) in zip(pieces, pieces[1:]):
        if (b.untyped_storage().data_ptr() != storage or (b.stride()[1:], b.dtype) != layout
                or a.storage_offset() + (a_off + a_n) * a.stride(1) != b.storage_offset() + b_off * b.stride(1)):
            return False
    return True


class ModelState:
    """Frontiers, caches and boundary hidden states of one model shared by its views.

    The model's layers are cut into segments at the exit layers its views
    use. Each segment has a *frontier* per row (how many positions of that
    row it has processed); shallower frontiers are at or ahead of deeper
    ones. ``pending[b]`` holds the hidden states at depth ``b`` for positions
    the segment starting at ``b`` has not processed yet, so a deeper view
    continues from them instead of re-running the shallow layers (LayerSkip's
    exit query cache, HiSpec's hidden-state reuse).

    The ``*_rows`` methods serve several rows in one forward per segment
    (the model's ragged ``run_layers``): ``tokens`` is then the engine's
    ``[rows, L]`` buffer and ``upto``/``need_from`` are per row. The
    single-sequence methods (``hidden``, ``logits``, ...) are row 0 of a
    one-row state.
    """

    def __init__(self, model: LayeredModel, exits: list[int]):
        self.model = model
        self.bounds = sorted(set(exits))
        if self.bounds[-1] > model.num_layers or self.bounds[0] < 1:
            raise ValueError(f"{model.name}: exits {self.bounds} outside 1..{model.num_layers}")
        self.starts = [0] + self.bounds[:-1]
        self.rows = 1
        self._rows_of = RowViews()  # the rows of the engine's token buffer
        self.reset()

    def reset(self, rows: int | None = None) -> None:
        """Forget every position of every row; ``rows`` sets how many rows the state holds from now on.

        More than one row needs a backend with batched caches
        (``reserve_rows``); one row drives the model exactly as a
        single-sequence backend expects (no row arguments).
        """
        if rows is not None and rows != self.rows:
            if rows < 1:
                raise ValueError(f"batch_size={rows} must be >= 1")
            if rows > 1:
                reserve = getattr(self.model, "reserve_rows", None)
                if reserve is None:
                    raise ValueError(
                        f"batch_size={rows}: model {self.model.name!r} ({type(self.model).__name__}) decodes one "
                        "sequence at a time; batches need a backend with batched caches "
                        "(model.backend=native or hf)"
                    )
                reserve(rows)
            self.rows = rows
        self.model.reset()
        n = self.rows
        self.frontier = [[0] * n for _ in self.bounds]
        self.pending = {b: _Pending(n) for b in self.bounds}
        self.layer_evals = [0] * n
        self.head_evals = [0] * n

    def reset_row(self, r: int) -> None:
        """Forget every position of row ``r`` (a new sequence takes it)."""
        if self.frontier[0][r]:
            self._truncate_model(0, self.bounds[-1], 0, r)
        for j in range(len(self.bounds)):
            self.frontier[j][r] = 0
        for pend in self.pending.values():
            pend.reset(r)
        self.layer_evals[r] = self.head_evals[r] = 0

    # -- model calls ------------------------------------------------------------
    def _run_layers(self, x, start, end, firsts, rows, lengths) -> torch.Tensor:
        if self.rows == 1:  # the single-sequence protocol, unchanged
            return self.model.run_layers(x, start, end, firsts[0])
        return self.model.run_layers(x, start, end, firsts, rows=rows, lengths=lengths)

    def _truncate_model(self, start: int, end: int, length: int, r: int) -> None:
        if self.rows == 1:
            self.model.truncate(start, end, length)
        else:
            self.model.truncate(start, end, length, rows=[r])

    def _ids(self, tokens: torch.Tensor, rows: list[int], firsts: list[int], ends: list[int]) -> torch.Tensor:
        if len(rows) == 1:
            return self._rows_of(tokens)[rows[0]][firsts[0] : ends[0]]
        return token_spans(tokens, rows, firsts, ends)

    # -- views --------------------------------------------------------------------
    def hidden_rows(self, rows: list[int], tokens: torch.Tensor, exit_layer: int, upto: list[int],
                    need_from: list[int], argmax_out: list | None = None) -> torch.Tensor | None:
        """Hidden states at depth ``exit_layer`` for positions ``[need_from[i], upto[i])`` of each row
        ``rows[i]``, packed in row order: ``[1, sum(upto - need_from), D]``. Runs only the layer
        segments that have not seen those positions, one ragged forward per segment.

        ``argmax_out``, a list: where the last segment's run is exactly those positions of one row
        and the backend fuses a segment with the greedy head (``model.run_layers_greedy``), that
        run does both and appends the argmax tokens to it (:meth:`greedy_tokens_rows`); where that
        segment is the model's first it gets the token ids, not their embedding; where it is the
        model's last, no copy of its states is kept and this returns None. Where that run
        happened the caller reads only the argmax, so this returns None then too: gathering
        states nobody reads cost host time on the path the device waits on."""
        last = self.bounds.index(exit_layer)
        fused = (getattr(self.model, "run_layers_greedy", None)
                 if argmax_out is not None and self.rows == 1 and self.frontier[last][rows[0]] == need_from[0] < upto[0]
                 else None)
        top = self.bounds[-1]
        for j in range(last + 1):
            start, end, front = self.starts[j], self.bounds[j], self.frontier[j]
            work, firsts, ends, needs = [], [], [], []
            for r, u, a in zip(rows, upto, need_from):
                if front[r] < u:
                    work.append(r)
                    firsts.append(front[r])
                    ends.append(u)
                    needs.append(a)
            if not work:
                continue
            lengths = [u - f for f, u in zip(firsts, ends)]
            if j == 0:
                if tokens.shape[1] < max(ends):
                    raise ValueError(f"{self.model.name}: asked for position {max(ends) - 1} of a "
                                     f"{tokens.shape[1]}-token sequence")
                ids = self._ids(tokens, work, firsts, ends)
                # A fused verification from layer 0 embeds its ids itself (one launch fewer).
                inp = ids if j == last and fused is not None else self.model.embed(ids)
            else:
                pend, pieces = self.pending[start], []
                for r, f, u in zip(work, firsts, ends):
                    assert pend.start[r] == f and pend.covers(r, f, u), "pending hidden states out of step"
                    pend.take(r, f, u, pieces)
                    pend.drop_before(r, u)
                inp = gather(pieces)
            if j == last and fused is not None:
                out, argmax = fused(inp, start, end, firsts[0], keep_hidden=end != top)
                argmax_out.append(argmax)
                if out is None:
                    # The model's last layer: nothing but the head (just run) reads these states,
                    # and a later view of them starts at this frontier (the fused condition).
                    r, f, n = work[0], firsts[0], lengths[0]
                    self.layer_evals[r] += (end - start) * n
                    front[r] = f + n
                    self.pending[end].drop_before(r, f + n)
                    return None
            else:
                out = self._run_layers(inp, start, end, firsts, work, lengths)
            pend, off = self.pending[end], 0
            for r, f, n, a in zip(work, firsts, lengths, needs):
                self.layer_evals[r] += (end - start) * n
                front[r] = f + n
                if end == top:
                    # Nothing deeper consumes the top boundary: keep only what is still needed.
                    pend.drop_before(r, a)
                pend.append(r, f, out, off, n)
                off += n
        if argmax_out:
            return None  # the fused run's states are booked above; its caller reads only the argmax
        pend, pieces = self.pending[exit_layer], []
        for r, a, u in zip(rows, need_from, upto):
            if not pend.covers(r, a, u):
                raise RuntimeError(
                    f"{self.model.name}: no hidden state at depth {exit_layer} for positions [{a}, {u}) of row {r} "
                    f"(pending from {pend.start[r]}); frontier bookkeeping is broken"
                )
            pend.take(r, a, u, pieces)
            if exit_layer == top:
                pend.drop_before(r, a)
        return gather(pieces)

    def _count_heads(self, rows: list[int], upto: list[int], need_from: list[int]) -> None:
        for r, u, a in zip(rows, upto, need_from):
            self.head_evals[r] += u - a

    def logits_rows(self, rows: list[int], tokens: torch.Tensor, exit_layer: int, upto: list[int],
                    need_from: list[int]) -> torch.Tensor:
        """``[sum(upto - need_from), V]`` logits of the view exiting at ``exit_layer``, rows packed in order."""
        h = self.hidden_rows(rows, tokens, exit_layer, upto, need_from)
        self._count_heads(rows, upto, need_from)
        return self.model.logits(h)

    def greedy_tokens_rows(self, rows: list[int], tokens: torch.Tensor, exit_layer: int, upto: list[int],
                           need_from: list[int]) -> torch.Tensor:
        """``LongTensor[sum(upto - need_from)]``: the argmax token of the view at each position.

        A backend may fuse head and argmax (``model.greedy_tokens``), which
        skips materialising ``[T, V]`` float32 logits; otherwise argmax of
        the logits. Where the view's last segment runs exactly these positions
        (a verification of new drafts), a backend may fuse that segment with
        the head too (``model.run_layers_greedy``, see :meth:`hidden_rows`).
        """
        run_with_head: list[torch.Tensor] = []
        h = self.hidden_rows(rows, tokens, exit_layer, upto, need_from, argmax_out=run_with_head)
        self._count_heads(rows, upto, need_from)
        if run_with_head:
            return run_with_head[0]
        fused = getattr(self.model, "greedy_tokens", None)
        return fused(h) if fused is not None else self.model.logits(h).argmax(dim=-1)

    def greedy_draft_rows(self, rows: list[int], tokens: torch.Tensor, exit_layer: int, n: list[int],
                          count: list[int], stop_below: float | None = None, launched: bool = False) -> list[int]:
        """Write up to ``count[i]`` greedy tokens of the view exiting at ``exit_layer`` at
        ``tokens[rows[i], n[i]:]``; return how many each row drafted.

        Each token is the argmax at the previous position, so a round is a
        chain of single-position steps; the rows take each step together. A
        backend that implements ``model.greedy_draft`` (one sequence) or
        ``model.greedy_draft_rows`` (rows drafting the same count) runs the
        chain without returning to Python between steps (the native backend
        replays the round as one CUDA graph, the tokens never leave the device);
        that needs the view to be the model's first segment, which every
        drafting level is. Otherwise the steps go through
        :meth:`greedy_tokens_rows`. Both leave the same frontiers, pending
        hidden states and counters.

        ``stop_below`` (``draft_stop``): a row's round ends after its first
        token whose top probability (softmax at temperature 1) is below it.
        Then every drafted token is also run through the layers as soon as it
        is drafted -- the last one too -- because that work is what the device
        does while the host reads the token's confidence (docs/engine.md).

        ``launched``: the engine queued this round's device work ahead, before
        the verdict that decided ``n`` came back (``Engine._launch_ahead``); the
        model only finishes it (one row, the fused path).
        """
        if exit_layer == self.bounds[0]:
            firsts = [self.frontier[0][r] for r in rows]
            c = count[0]
            if all(f < nn for f, nn in zip(firsts, n)):
                fused = getattr(self.model, "greedy_draft", None)
                if self.rows == 1 and fused is not None:
                    if stop_below is None:
                        opts = {"launched": True} if launched else {}  # a backend without look-ahead never sees it
                        if self._draft_states_unread:
                            opts["keep_hidden"] = False
                        out = fused(self._rows_of(tokens)[0], firsts[0], n[0], exit_layer, c, self._process_last,
                                    **opts)
                        self._book_draft(out, rows, exit_layer, firsts, n, c, self._process_last)
                        return [c]
                    out = fused(self._rows_of(tokens)[0], firsts[0], n[0], exit_layer, c, True, stop_below=stop_below)
                    drafted = out.shape[1] - (n[0] - firsts[0])  # with a stopping rule every drafted token is processed
                    self._book_draft(out, rows, exit_layer, firsts, n, drafted, True)
                    return [drafted]
                if (stop_below is None and self.rows > 1 and len(set(count)) == 1
                        and getattr(self.model, "greedy_draft_rows", None)):
                    out = self.model.greedy_draft_rows(tokens, rows, firsts, n, exit_layer, c, self._process_last)
                    self._book_draft(out, rows, exit_layer, firsts, n, c, self._process_last)
                    return list(count)
        if launched:
            raise RuntimeError(f"{self.model.name}: a draft round was launched ahead for rows {rows} at {n}, "
                               "but this round cannot take it (not one row on the fused path)")
        drafted = list(count)
        for s in range(max(count)):
            step = [i for i, c in enumerate(count) if s < c and drafted[i] == c]
            if not step:
                break
            rs = [rows[i] for i in step]
            pos = [n[i] + s for i in step]
            if stop_below is None:
                new = self.greedy_tokens_rows(rs, tokens, exit_layer, pos, [p - 1 for p in pos])
                write_tokens(tokens, rs, pos, new)
                continue
            logits = self.logits_rows(rs, tokens, exit_layer, pos, [p - 1 for p in pos])
            write_tokens(tokens, rs, pos, logits.argmax(dim=-1))
            stops = self.layers_then_stop_rows(rs, tokens, exit_layer, pos, top_probability(logits, logits=True),
                                               stop_below)
            for i, stop in zip(step, stops):
                if stop:
                    drafted[i] = s + 1
        return drafted

    def layers_then_stop_rows(self, rows: list[int], tokens: torch.Tensor, exit_layer: int, pos: list[int],
                              confidence: torch.Tensor, stop_below: float) -> list[bool]:
        """Run the layers on the tokens just drafted at ``pos`` while their ``confidence`` comes to
        the host; per row, True when its draft stops there (:func:`~hsd_bench.draft_stop.stops_after`)."""
        pending = HostValue(confidence)
        self.hidden_rows(rows, tokens, exit_layer, [p + 1 for p in pos], list(pos))
        return [stops_after(value, stop_below) for value in pending.get()]

    def _book_draft(self, out: torch.Tensor | None, rows: list[int], exit_layer: int, firsts: list[int],
                    n: list[int], count: int, process_last: bool) -> None:
        """Frontiers, pending states and counters after a fused draft round whose packed
        hidden states of every processed position, row by row, are ``out`` (None: none kept)."""
        pend, off = self.pending[exit_layer], 0
        for r, first, nn in zip(rows, firsts, n):
            upto = nn + count - (0 if process_last else 1)
            processed = upto - first
            self.layer_evals[r] += exit_layer * processed
            self.head_evals[r] += count
            self.frontier[0][r] = upto
            if out is None:  # a round of the model's only view: no state kept (_draft_states_unread)
                pend.drop_before(r, upto)
            elif exit_layer == self.bounds[-1]:
                pend.drop_before(r, upto - 1)  # nothing deeper consumes it: keep only the last position
                pend.append(r, upto - 1, out, off + processed - 1, 1)
            else:
                pend.append(r, first, out, off, processed)
            off += processed

    @property
    def _draft_states_unread(self) -> bool:
        """Whether a fused greedy draft round (one row, no draft_stop) may keep no hidden states.

        Why it may: a model with one view that drafts (vanilla_sd's and the hierarchy's draft,
        AR's target) has no deeper segment to read them, and the next greedy round starts past
        its frontier (a verdict commits at least one token the draft has not processed), so its
        first step processes its own positions from their ids. The copy kept for nothing was a
        host launch per round (docs/gpu-runs.md, "Eighteenth run"); where a later call does
        ask for those states, :meth:`hidden_rows` says so loudly."""
        return len(self.bounds) == 1

    @property
    def _process_last(self) -> bool:
        # A deeper view of this model verifies next and needs the last drafted token's
        # hidden state too: the chain processes it (layers only) instead of the verifier's
        # first segment. A model with one view leaves it to the next round, which may reject it.
        return len(self.bounds) > 1

    def book_catch_up(self, r: int, pos: int, exit_layer: int, hidden: torch.Tensor) -> None:
        """Frontiers, pending states and counters after the segments up to ``exit_layer`` ran
        position ``pos`` of row ``r`` outside :meth:`hidden_rows` (``model.queue_catch_up``), its
        hidden state at that depth ``hidden`` ``[1, 1, D]``: what :meth:`hidden_rows` leaves."""
        last = self.bounds.index(exit_layer)
        for j in range(last + 1):
            if self.frontier[j][r] != pos:
                raise RuntimeError(f"{self.model.name}: a catch-up at position {pos} of row {r}, but layers "
                                   f"[{self.starts[j]}, {self.bounds[j]}) hold {self.frontier[j][r]} positions")
            self.frontier[j][r] = pos + 1
            self.layer_evals[r] += self.bounds[j] - self.starts[j]
            if j:
                self.pending[self.starts[j]].drop_before(r, pos + 1)
        self.pending[exit_layer].append(r, pos, hidden, 0, 1)

    def truncate_rows(self, rows: list[int], lengths: list[int]) -> None:
        """Forget every position ``>= lengths[i]`` of row ``rows[i]`` (a rejection there)."""
        for r, length in zip(rows, lengths):
            for j, front in enumerate(self.frontier):
                if front[r] > length:
                    self._truncate_model(self.starts[j], self.bounds[j], length, r)
                    front[r] = length
            for pend in self.pending.values():
                pend.truncate(r, length)

    # -- one sequence (row 0) ------------------------------------------------------
    def hidden(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        """Hidden states ``[1, upto - need_from, D]`` at depth ``exit_layer`` of a one-row state."""
        return self.hidden_rows([0], tokens.view(1, -1), exit_layer, [upto], [need_from])

    def logits(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        """``[upto - need_from, V]`` logits of the view exiting at ``exit_layer`` (one row)."""
        return self.logits_rows([0], tokens.view(1, -1), exit_layer, [upto], [need_from])

    def greedy_tokens(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        return self.greedy_tokens_rows([0], tokens.view(1, -1), exit_layer, [upto], [need_from])

    def greedy_draft(self, tokens: torch.Tensor, exit_layer: int, n: int, count: int,
                     stop_below: float | None = None) -> int:
        """Up to ``count`` greedy tokens at ``tokens[n:]`` (one row); returns how many were drafted."""
        return self.greedy_draft_rows([0], tokens.view(1, -1), exit_layer, [n], [count], stop_below)[0]

    def truncate(self, length: int) -> None:
        """Forget every position ``>= length`` of row 0 (a rejection at ``length``)."""
        self.truncate_rows([0], [length])


def write_tokens(tokens: torch.Tensor, rows: list[int], pos: list[int], values,
                 row: torch.Tensor | None = None) -> None:
    """``tokens[rows[i], pos[i]] = values[i]`` in one device op (``values``: a tensor or host ints).
    ``row``: the view ``tokens[rows[0]]`` where the caller keeps one (one row: a view fewer to make)."""
    if len(rows) == 1:
        value = values[0]
        if torch.is_tensor(value):
            if row is None:
                tokens[rows[0], pos[0]] = value
            else:
                row[pos[0]] = value
        else:
            # A fill takes the int as a kernel argument. Item assignment of a host int copies it
            # from pageable memory, which waits for the device to finish everything queued -- on
            # an H200 trace, one such wait per verification, and with the look-ahead draft queued
            # behind the verdict it waited for that whole round (docs/gpu-runs.md, "Ninth run").
            (tokens[rows[0], pos[0]] if row is None else row[pos[0]]).fill_(int(value))
        return
    width = tokens.shape[1]
    index = device_index([r * width + p for r, p in zip(rows, pos)], tokens.device)
    if not torch.is_tensor(values):
        values = device_index(values, tokens.device)
    tokens.view(-1).index_copy_(0, index, values.to(tokens.dtype))


@dataclass
class Level:
    """One rung of the stack: a view ``(model state, exit layer)`` and its batch.

    ``batch`` is the draft length for level 0 and, for a middle level, how
    many tokens it must hold before handing them up (HiSpec's N_i, a
    Mohri-style T_i). The top level's batch is one round.

    ``draft_stop`` (a threshold in (0, 1), or None) makes ``batch`` a
    maximum: the level's output ends after its first token whose top
    probability is below the threshold (``hsd_bench/draft_stop.py``).
    """

    state: ModelState
    exit_layer: int
    batch: int = 1
    rule: VerificationRule | None = None
    name: str = ""
    # HiSpec's "flush on mismatch": hand tokens up as soon as a round rejects.
    flush_on_reject: bool = False
    draft_stop: float | None = None


@dataclass
class GenerationStats:
    n_prompt: int = 0
    n_generated: int = 0
    # This sequence's share of the elapsed time (prefill + decode): at batch 1 its wall
    # time; at batch B every interval is split among the rows it served, so the shares
    # of all rows sum to the elapsed time and sum(tokens) / sum(wall_s) is the
    # aggregate throughput.
    wall_s: float = 0.0
    # None where the decoder cannot tell its prefill apart (transformers' generate(), whose
    # assisted modes verify the prompt and the first drafts in one forward): its decode time and
    # decode rate are then None too, not the whole wall time under another name.
    prefill_s: float | None = 0.0
    latency_s: float | None = None  # admission to finish (None: = wall_s, batch 1)
    batch_size: int = 1
    drafted: list[int] = field(default_factory=list)  # per verifying level
    accepted: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # forwards of each level (level 0: drafted tokens)
    draft_calls: int = 0  # level-0 draft rounds: rounds[0] / draft_calls is the mean draft length
    # Of those, the rounds queued before the verdict (AR: the chunk) before them was read
    # (Engine.lookahead).
    draft_calls_ahead: int = 0
    # Verifications a middle level's hand-up queued before its verdict was read (Engine._hand_up_plan),
    # and the positions they verified past what was handed up (padding: real work, in layer_evals).
    hand_ups_ahead: int = 0
    hand_up_padding: int = 0
    hand_ups_continued: int = 0  # of those, hand-ups longer than the queued step, finished by a second
    # Level-0 rounds launched guarded inside a CUDA conditional node (the device evaluates the guard):
    # a kernel trace stretches the gaps inside such launches, so its between-launch split is not
    # comparable for a run that has them (bench/trace.py, at_timed_rate).
    guarded_rounds_on_device: int = 0
    position_reached: list[int] = field(default_factory=list)  # top level, per draft position
    position_accepted: list[int] = field(default_factory=list)
    # Seconds in each level (LevelClock); None where the split was not recorded (Engine.level_split).
    level_time_s: list[float] | None = field(default_factory=list)
    layer_evals: dict[str, int] = field(default_factory=dict)
    head_evals: dict[str, int] = field(default_factory=dict)
    level_names: list[str] = field(default_factory=list)
    # Tokens the top level committed in a round past where generation stopped (EOS, a stop
    # sequence): computed and timed, then dropped. Bounded by a round's length (ar_chunk - 1
    # for autoregressive decoding, methods.py).
    discarded: int = 0
    # Tokens of the level-0 round queued before the read that ended the row (Engine.lookahead:
    # AR's next chunk, _launch_next_chunk, or a draft round launched ahead of the top verdict):
    # the device computed them and the row's time includes them, but no counter above does, as
    # they depend on when the host looked, not on the method. At most one round per sequence.
    dropped_in_flight: int = 0

    @property
    def decode_s(self) -> float | None:
        return None if self.prefill_s is None else self.wall_s - self.prefill_s

    @property
    def target_forwards(self) -> int:
        return self.rounds[-1] if self.rounds else 0

    def as_row(self) -> dict:
        """Flat per-sample metrics (DESIGN.md §5)."""
        top = len(self.rounds) - 1
        drafted = self.drafted[top] if top > 0 else 0
        accepted = self.accepted[top] if top > 0 else 0
        n = max(self.n_generated, 1)
        return {
            "n_prompt": self.n_prompt,
            "n_generated": self.n_generated,
            "wall_s": self.wall_s,
            "prefill_s": self.prefill_s,
            "decode_s": self.decode_s,
            "latency_s": self.wall_s if self.latency_s is None else self.latency_s,
            "batch_size": self.batch_size,
            "tokens_per_s": self.n_generated / self.wall_s if self.wall_s > 0 else 0.0,
            "decode_tokens_per_s": None if self.decode_s is None else (
                self.n_generated / self.decode_s if self.decode_s > 0 else 0.0),
            "target_forwards": self.target_forwards,
            "target_forwards_per_token": self.target_forwards / n,
            "mean_accepted_len": self.n_generated / max(self.target_forwards, 1),
            "drafted": drafted,
            "accepted": accepted,
            "acceptance_rate": accepted / drafted if drafted else None,
            "acceptance_per_level": {
                self.level_names[i]: (self.accepted[i] / self.drafted[i] if self.drafted[i] else None)
                for i in range(1, len(self.rounds))
            },
            "drafted_per_level": dict(zip(self.level_names[1:], self.drafted[1:])),
            "accepted_per_level": dict(zip(self.level_names[1:], self.accepted[1:])),
            "position_reached": list(self.position_reached),
            "position_accepted": list(self.position_accepted),
            "draft_tokens": self.rounds[0] if top > 0 else 0,
            "draft_rounds": self.draft_calls if top > 0 else 0,
            "draft_rounds_ahead": self.draft_calls_ahead if top > 0 else 0,
            "hand_ups_ahead": self.hand_ups_ahead,
            "hand_up_padding": self.hand_up_padding,
            "hand_ups_continued": self.hand_ups_continued,
            "guarded_rounds_on_device": self.guarded_rounds_on_device,
            "mean_draft_len": self.rounds[0] / self.draft_calls if top > 0 and self.draft_calls else None,
            "layer_evals": dict(self.layer_evals),
            "layer_evals_per_token": sum(self.layer_evals.values()) / n if self.layer_evals else None,
            "layer_evals_per_token_by_model": {k: v / n for k, v in self.layer_evals.items()},
            "head_evals_per_token": sum(self.head_evals.values()) / n,
            "discarded_tokens": self.discarded,
            "dropped_in_flight_tokens": self.dropped_in_flight,
            "time_split_s": {} if self.level_time_s is None else {
                **{f"level:{name}": t for name, t in zip(self.level_names, self.level_time_s)},
                "other": max(0.0, self.decode_s - sum(self.level_time_s)),
            },
        }


@dataclass
class Generation:
    output_ids: list[int]
    stats: GenerationStats
    stop_reason: str = ""


@dataclass
class _Row:
    """One sequence being decoded in a row of the batch."""

    index: int  # position in the caller's stream of prompts
    prompt: list[int]
    limit: int  # last position + 1 this row may fill
    max_new: int
    stats: GenerationStats
    generator: torch.Generator | None
    admitted: float  # engine clock at admission
    committed: int = 0
    generated: list[int] = field(default_factory=list)  # committed ids past the prompt, on the host


@dataclass
class _HandUp:
    """A verification queued by a middle level's hand-up before its verdict was read: level
    ``level`` (its ``state``) verified row ``row`` from position ``start``, the first ``covered``
    handed-up tokens, its argmax ``tokens`` for positions ``[start - 1, start + covered)``."""

    level: int
    state: "ModelState"
    row: int
    start: int
    covered: int
    tokens: torch.Tensor


class LevelClock:
    """Each level's share of decode time, without making the device wait.

    Decoding on a GPU is asynchronous: the host queues a level's work and
    moves on. Synchronising around every level to read a host clock would
    serialise host and device and slow the very run being measured (one
    wait per level per round). So on CUDA each interval is a pair of CUDA
    events recorded on the current stream and read at the engine's next sync
    (:meth:`flush`); an interval is the device-stream time from where the
    level's work starts to where it ends (stalls waiting for the host
    included), split equally among the rows the level's forward served. On
    CPU, and with ``synchronous=True`` (host-serial profiling), it is the host
    clock, synchronised on CUDA.

    ``enabled=False`` records nothing (``start`` returns None, ``stop`` of None does nothing): the
    split's CUDA events are two host calls of about 2 µs per interval, four intervals per token
    for HiSpec and the hierarchy against one per chunk for AR, so recording them slows exactly the
    host-bound methods being compared (``Engine.level_split``, docs/performance.md).
    """

    def __init__(self, device: torch.device, synchronous: bool = False, enabled: bool = True):
        self.device = device
        self.enabled = enabled
        self.events = enabled and device.type == "cuda" and not synchronous
        self.synchronous = synchronous and device.type == "cuda"
        self._pool: list[tuple] = []  # event pairs, reused after each flush
        self._open: list[tuple[int, tuple, list]] = []  # (level, pair, the served rows' stats)
        # The stream the events go on, looked up once per generation (begin): Event.record()
        # without one looks up the current stream each time, which cost more host time than
        # the record itself (an H200 host profile, docs/gpu-runs.md "Eighth run").
        self._stream = None

    def begin(self) -> None:
        """A new generation: forget intervals not yet flushed, and take the stream it runs on."""
        self.discard()
        if self.events:
            self._stream = torch.cuda.current_stream(self.device)

    def start(self):
        if not self.enabled:
            return None
        if self.events:
            if len(self._open) == len(self._pool):
                self._pool.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            pair = self._pool[len(self._open)]
            pair[0].record(self._stream)
            return pair
        if self.synchronous:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def stop(self, level: int, mark, served: list[GenerationStats]) -> None:
        if mark is None:  # a clock that records nothing
            return
        if self.events:
            mark[1].record(self._stream)
            self._open.append((level, mark, served))
            return
        if self.synchronous:
            torch.cuda.synchronize(self.device)
        self._share(level, time.perf_counter() - mark, served)

    def discard(self) -> None:
        """Forget intervals not yet flushed (a stream abandoned before its end)."""
        self._open.clear()

    def flush(self) -> None:
        """Add the recorded intervals to their rows; call only after a device sync."""
        for level, (start, end), served in self._open:
            self._share(level, start.elapsed_time(end) / 1e3, served)
        self._open.clear()

    @staticmethod
    def _share(level: int, dt: float, served: list[GenerationStats]) -> None:
        """Split an interval equally among the rows it served, as the engine splits elapsed time
        into rows' ``wall_s``: a row's level times are then shares of its decode time, and summed over
        a batch's rows they are the batch's time in each level, not B times it."""
        for stats in served:
            stats.level_time_s[level] += dt / len(served)


def stop_cut(before: list[int], new: list[int], eos_token_ids, stop_sequences=(), tokenizer=None) -> int | None:
    """How many of ``new`` (generated after ``before``) to keep when generation stops in them:
    through the first EOS, or through the first token whose text so far holds a stop sequence;
    ``None`` when nothing in ``new`` stops it. The engine cuts every round's committed tokens
    with it, and ``hf_reference`` cuts transformers' output with it (assisted generation commits
    several tokens per round and checks its stopping criteria only after the round), so both
    end a sample at the same token."""
    for j, tok in enumerate(new):
        if tok in eos_token_ids:
            return j + 1
    if stop_sequences:
        # One decode per text, whatever the number of stop sequences: the engine runs this after
        # every verification, while the device waits for the next round (a host profile on an
        # H200 found a decode per stop sequence to be the largest host cost of vanilla_sd there).
        generated = list(before) + list(new)
        if _holds_stop(tokenizer.decode(generated), stop_sequences):
            for j in range(len(new)):  # the first new token whose prefix text holds a stop sequence
                if _holds_stop(tokenizer.decode(generated[: len(before) + j + 1]), stop_sequences):
                    return j + 1
    return None


def _holds_stop(text: str, stop_sequences) -> bool:
    return any(s in text for s in stop_sequences)


def level_split_for(value, device: torch.device | str, synchronous: bool = False) -> bool:
    """``level_split`` resolved: the configured bool, else (None) the split wherever it costs the
    decode nothing -- a host clock off CUDA, or CUDA decoding made host-serial on purpose
    (``sync_timing``) -- and not on asynchronous CUDA, where its events would slow the host-bound
    methods (``LevelClock``)."""
    if value is None:
        return torch.device(device).type != "cuda" or synchronous
    if not isinstance(value, bool):
        raise ValueError(f"level_split={value!r} must be true, false or null (null: the per-level time split "
                         "where it costs nothing -- off CUDA -- and not on asynchronous CUDA decoding)")
    return value


class Engine:
    """Runs a stack of levels (bottom -> top) to generate from prompts, one or a batch at a time."""

    def __init__(self, levels: list[Level], eos_token_ids: list[int] | tuple[int, ...] = (), sync_timing: bool = False,
                 level_split: bool | None = None):
        if not levels:
            raise ValueError("a method needs at least one level")
        self.levels = levels
        self.eos_token_ids = set(int(t) for t in eos_token_ids if t is not None)
        # True only to profile host-serially (the device waits around every level).
        self.sync_timing = sync_timing
        # Record each level's share of decode time (time_split_s): True, False, or None for
        # level_split_for's default -- on where it is free, off on asynchronous CUDA.
        self.level_split = level_split
        level_split_for(level_split, "cpu")  # a bad value fails here, not at the first generation
        # Queue the next draft round before a greedy verdict is read, where that round is
        # certain (one row, fused drafts: _ahead_plan), and AR's next chunk before a chunk is read
        # (_launch_next_chunk); False runs every round after the read that decides it.
        self.lookahead = True
        self._ahead: tuple[int, int, int] | None = None  # (row, first, upto) of the round launched ahead
        self._handed_up: _HandUp | None = None  # the verification a hand-up queued ahead (_hand_up_plan)
        # A hand-up verified ahead that may outgrow its step is planned only while at most this share
        # of the generation's hand-ups so far outgrew such a step (1: always; 0: never).
        self.hand_up_overflow_max = HAND_UP_OVERFLOW_MAX
        # middle level -> [fit, overflowed]: this generation's hand-ups whose plan could overflow its
        # step, by whether the verdict did (_hand_up_plan, _count_hand_up)
        self._hand_ups_seen: dict[int, list[int]] = {}
        self._verdict_read: tuple | None = None  # pinned buffer, event, stream, its prefixes (_verdict_host)
        self._rows_of = RowViews()  # the rows of the token buffer self._tokens
        # Optional observer told "prefill", "decode" and "done" as generation moves
        # between phases, so a profiler can attribute model calls to the decode
        # phase without synchronising the device (hsd_bench/bench/instrument.py).
        self.on_phase: Callable[[str], None] | None = None
        self.states: list[ModelState] = list({id(lv.state): lv.state for lv in levels}.values())
        self.top = levels[-1]
        self.max_context = min(s.model.max_context for s in self.states)
        self.device = self.top.state.model.device
        for i, level in enumerate(levels):
            level.name = level.name or f"L{i}"
        self._level_clock: LevelClock | None = None

    @property
    def models(self) -> list[LayeredModel]:
        return [s.model for s in self.states]

    def prepare(self, max_len: int, greedy: bool) -> None:
        """Compile and capture every fixed shape this method can reach in sequences of up to
        ``max_len`` positions, for backends that have such shapes (``model.prepare``).

        The plan comes from the stack: each model state's layer segments, the
        head each decoding mode calls, and level 0's greedy draft chain. The
        runner calls this before the first timed sample, so that no timed
        generation compiles or captures anything (docs/performance.md). It
        plans one-row decoding; batched steps (``decoding.batch_size > 1``)
        are compiled by the untimed full-batch warm-up instead.
        """
        for state in self.states:
            prepare = getattr(state.model, "prepare", None)
            if prepare is None:
                continue
            chains = []
            bottom = self.levels[0]
            if greedy and bottom.state is state:
                chains.append((bottom.exit_layer, bottom.batch, len(state.bounds) > 1, bottom.draft_stop is not None))
            heads = ("greedy-head",) if greedy else ("head",)
            if greedy and any(lv.draft_stop is not None for lv in self.levels[1:]):
                heads += ("head",)  # a verifying level that also drafts reads its confidences from logits
            sizes = self._guarded_sizes() if greedy and bottom.state is state else ()
            extra = {"guarded": sizes} if sizes else {}
            rounds = self._round_verdict_sizes() if greedy and bottom.state is state else ()
            if rounds and hasattr(state.model, "launch_draft_after_verdict"):
                extra["verdict_rounds"] = rounds
            if greedy and hasattr(state.model, "run_layers_greedy"):
                # the segment each greedy verifying level ends with, fused with its head (hidden_rows)
                ends = {lv.exit_layer for lv in self.levels[1:] if lv.state is state and lv.draft_stop is None}
                extra["verifying"] = [(a, b) for a, b in zip(state.starts, state.bounds) if b in ends]
            catch_ups = self._catch_up_depths(state) if greedy else ()
            if catch_ups and hasattr(state.model, "queue_catch_up"):
                extra["catch_ups"] = catch_ups
            hand_ups = self._hand_up_shapes(state) if greedy else ()
            if hand_ups and hasattr(state.model, "arm_hand_up"):
                extra["hand_ups"] = hand_ups
            prepare(min(max_len, state.model.max_context), list(zip(state.starts, state.bounds)),
                    heads=heads, chains=chains, **extra)

    def _catch_up_depths(self, state: ModelState) -> tuple[int, ...]:
        """The exits of the middle levels of ``state`` that hand up to a deeper view of the same
        model -- where a certain hand-up's catch-up may run ahead (``_catch_up_plan``)."""
        if not self.lookahead:
            return ()
        return tuple(sorted({self.levels[i].exit_layer for i in range(1, len(self.levels) - 1)
                             if self.levels[i].state is state and self._hands_up_within_its_model(i)}))

    def _hands_up_within_its_model(self, i: int) -> bool:
        """Whether middle level ``i``'s certain hand-ups can start the level above's catch-up ahead
        at all (``_catch_up_plan`` adds what depends on the round): the level above is a deeper view
        of the same model (HiSpec) and level ``i`` does not stop its drafts early (draft_stop)."""
        level, above = self.levels[i], self.levels[i + 1]
        return above.state is level.state and level.draft_stop is None

    def _hand_up_shapes(self, state: ModelState) -> tuple[tuple[int, int, int], ...]:
        """``(end, k, at)`` of each verification of ``state`` that a certain hand-up may queue ahead
        (``_hand_up_plan``): the level above a middle level of another model, its exit ``end``;
        every verdict size ``k`` the middle level can see (``_verdict_sizes``); ``at = batch``,
        the middle's batch, the row of its first draft among the ids (a certain hand-up has
        ``out = batch - 1``)."""
        if not self.lookahead:
            return ()
        shapes = set()
        for i in range(1, len(self.levels) - 1):
            level, above = self.levels[i], self.levels[i + 1]
            if above.state is state and self._hands_up_to_another_model(i):
                shapes.update((above.exit_layer, k, level.batch) for k in self._verdict_sizes(i))
        return tuple(sorted(shapes))

    def _hands_up_to_another_model(self, i: int) -> bool:
        """Whether middle level ``i``'s certain hand-ups can be verified ahead at all (``_hand_up_plan``
        adds what depends on the round): neither it nor the level above stops its drafts early
        (draft_stop), the level above verifies greedily without a fixed-length rule, and its model
        is one no level up to ``i`` views (a Mohri-style hierarchy: draft -> mid -> target)."""
        level, above = self.levels[i], self.levels[i + 1]
        return (level.draft_stop is None and above.draft_stop is None
                and not (above.rule is not None and above.rule.fixed_length)
                and not any(lv.state is above.state for lv in self.levels[: i + 1]))

    def _verdict_sizes(self, i: int) -> range:
        """How many drafts middle level ``i`` can verify at once: level 0's batch for level 1; for a
        level above it as many as the one below hands up, at most the sum of the batches below (each
        level overshoots its batch by at most the last round it took from the level below)."""
        if i == 1:
            return range(self.levels[0].batch, self.levels[0].batch + 1)
        return range(1, sum(lv.batch for lv in self.levels[:i]) + 1)

    def _round_verdict_sizes(self) -> tuple[int, ...]:
        """The verdict sizes after which level 0's next round may be launched ahead unguarded
        (``_ahead_plan``): every verifying level's (``_verdict_sizes``)."""
        if not self.lookahead or self.levels[0].draft_stop is not None:
            return ()
        return tuple(sorted({k for i in range(1, len(self.levels)) for k in self._verdict_sizes(i)}))

    def _guarded_sizes(self) -> tuple[int, ...]:
        """The verdict sizes after which a middle level may launch a guarded round (``_ahead_plan``):
        level 1 verifies level 0's full rounds; a level above it as many tokens as the one below
        hands up, which is at most the sum of the batches below (each level overshoots its batch by
        at most the last round it took from the level below)."""
        if not self.lookahead or self.levels[0].draft_stop is not None:
            return ()
        sizes: set[int] = set()
        for i in range(1, len(self.levels) - 1):
            level = self.levels[i]
            if level.flush_on_reject or level.draft_stop is not None:
                continue
            sizes.update(self._verdict_sizes(i))
        return tuple(sorted(sizes))

    # -- public -----------------------------------------------------------
    def generate(
        self,
        prompt_ids: list[int],
        max_new_tokens: int,
        decoding: DecodingConfig | None = None,
        stop_sequences: list[str] | tuple[str, ...] = (),
        tokenizer=None,
    ) -> Generation:
        """Decode one prompt (a batch of one)."""
        for _, gen in self.generate_many([prompt_ids], max_new_tokens, decoding, stop_sequences, tokenizer, 1):
            return gen
        raise AssertionError("generate_many yielded nothing for one prompt")

    @torch.inference_mode()  # the backends' buffers are inference tensors (models/native/inference.py)
    def generate_many(
        self,
        prompts: Iterable[list[int]],
        max_new_tokens: int,
        decoding: DecodingConfig | None = None,
        stop_sequences: list[str] | tuple[str, ...] = (),
        tokenizer=None,
        batch_size: int | None = None,
        seeds: Iterable[int] | None = None,
    ) -> Iterator[tuple[int, Generation]]:
        """Decode a stream of prompts, ``batch_size`` at a time (default ``decoding.batch_size``);
        yields ``(index, Generation)`` as rows finish.

        A finished row leaves the batch at once and the next prompt takes its
        cache row, so a long stream decodes at ``batch_size`` throughout.
        Every row samples from its own generator, seeded with its entry of
        ``seeds`` (default: ``decoding.seed`` for every prompt, as one-by-one
        decoding does), so a row's output does not depend on its batch-mates:
        decoding at batch B gives what decoding the prompts one by one gives.
        Time spent by the caller between yields is not counted. An engine
        decodes one stream at a time (starting another abandons the first).
        """
        decoding = decoding or DecodingConfig()
        batch_size = decoding.batch_size if batch_size is None else batch_size
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
        if stop_sequences and tokenizer is None:
            raise ValueError("stop sequences need a tokenizer to decode the output")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
        self._decoding = decoding
        self._stop = (tuple(stop_sequences), tokenizer)
        split = level_split_for(self.level_split, self.device, self.sync_timing)
        if (self._level_clock is None or self._level_clock.enabled != split
                or self._level_clock.synchronous != (self.sync_timing and self.device.type == "cuda")):
            self._level_clock = LevelClock(self.device, synchronous=self.sync_timing, enabled=split)
        self._level_clock.begin()
        stream = iter(enumerate(prompts))
        seed_iter = iter(seeds) if seeds is not None else None
        for state in self.states:
            state.reset(batch_size)
        self._slots: list[_Row | None] = [None] * batch_size
        self._tokens = self._token_buffer(batch_size)
        self._paused, self._mark, self._phase_now = 0.0, 0.0, None
        self._ahead = None
        self._handed_up = None
        self._verdict_read = None  # the stream is taken per generation, as the level clock's
        depth = len(self.levels)
        exhausted = False
        while True:
            if not exhausted:
                exhausted = self._admit(stream, seed_iter, max_new_tokens)
            rows = [r for r, row in enumerate(self._slots) if row is not None]
            if not rows:
                break
            self._phase("decode")
            counts, _, known = self._produce(depth - 1, rows, [self._slots[r].committed for r in rows])
            if known is None:
                # The top level's verification already brought its tokens to the host;
                # only an unverified level (autoregressive) needs them read back here.
                known = self._read_back(rows, counts)
            finished = []
            for r, count, new in zip(rows, counts, known):
                row = self._slots[r]
                cut = self._stop_index(row, new)
                if cut is not None:
                    row.stats.discarded += count - cut
                    row.committed += cut
                    row.generated += new[:cut]
                    finished.append((r, "stop"))
                    continue
                row.committed += count
                row.generated += new
                if row.committed >= row.limit:
                    full = row.limit < len(row.prompt) + row.max_new
                    finished.append((r, "context" if full else "max_new_tokens"))
            done = {r for r, _ in finished}
            going = [r for r in rows if r not in done]
            if going:
                for state in self.states:
                    state.truncate_rows(going, [self._slots[r].committed - 1 for r in going])
            if finished:
                if self._ahead is not None:
                    # a stopped row's next round, queued before this one was read, is not taken
                    self._slots[self._ahead[0]].stats.dropped_in_flight += self.levels[0].batch
                    self._drop_ahead()
                self._sync()
                self._level_clock.flush()  # the finished rows' level times are complete now
            self._charge(rows, decode=True)
            for r, reason in finished:
                gen = self._finish(r, reason)
                index = self._slots[r].index
                self._slots[r] = None
                if not any(self._slots):
                    self._phase("done")
                paused = time.perf_counter()
                yield index, gen
                self._paused += time.perf_counter() - paused

    # -- rows ---------------------------------------------------------------
    def _token_buffer(self, batch_size: int) -> torch.Tensor:
        """The ``[batch_size, L]`` token buffer a stream starts with (rows grow it as needed, ``_new_row``).

        One row decodes in the device's token row where its models share one
        (``models/native/token_row.py``): their draft chains and verdict steps write drafted and
        verifier's tokens into it on the device, and the host's writes of those tokens drop out
        (``model.writes_into``). The row most of the engine's models write into is taken, the top
        level's on a tie; several rows, or models without a token row, get a buffer of their own."""
        if batch_size == 1:
            shared = [getattr(state.model, "token_row", None) for state in reversed(self.states)]
            shared = [t for t in shared if t is not None and t.device == self.device]
            if shared:
                users = Counter(t.data_ptr() for t in shared)
                return max(shared, key=lambda t: users[t.data_ptr()]).view(1, -1)
        return torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)

    def _admit(self, stream, seeds, max_new: int) -> bool:
        """Fill free rows from the stream and prefill them together; True once the stream is exhausted."""
        free = [r for r, row in enumerate(self._slots) if row is None]
        if not free:
            return False
        idle = len(free) == len(self._slots)  # nothing decoding: setting up is nobody's time
        new, exhausted = [], False
        for r in free:
            item = next(stream, None)
            if item is None:
                exhausted = True
                break
            index, prompt = item
            seed = next(seeds) if seeds is not None else self._decoding.seed
            new.append(r)
            self._slots[r] = self._new_row(r, index, list(prompt), max_new, seed)
        if not new:
            return exhausted
        if idle:
            self._sync()
            self._mark = self._now()
        self._phase("prefill")
        # Prefill: every view's layers see the prompt except its last token,
        # which each level processes in its first round.
        long = [r for r in new if len(self._slots[r].prompt) > 1]
        if long:
            n = [len(self._slots[r].prompt) for r in long]
            for state in self.states:
                state.hidden_rows(long, self._tokens, state.bounds[-1], [k - 1 for k in n], [k - 2 for k in n])
        # Costs are reported for decoding only: the prefill is the same for every method.
        for state in self.states:
            for r in new:
                state.layer_evals[r] = state.head_evals[r] = 0
        self._sync()
        self._charge(new, decode=False)
        return exhausted

    def _new_row(self, r: int, index: int, prompt: list[int], max_new: int, seed: int) -> _Row:
        n = len(prompt)
        if n == 0:
            raise ValueError("empty prompt: at least one token (e.g. BOS) is needed")
        if n >= self.max_context:
            raise ValueError(
                f"prompt of {n} tokens does not fit the context: it must be shorter than {self.max_context} tokens"
            )
        limit = min(n + max_new, self.max_context)
        if self._tokens.shape[1] < limit + 1:
            grown = torch.zeros(self._tokens.shape[0], limit + 1, dtype=torch.long, device=self.device)
            grown[:, : self._tokens.shape[1]] = self._tokens
            self._tokens = grown
        self._tokens[r, :n] = torch.as_tensor(prompt, dtype=torch.long)
        for state in self.states:
            state.reset_row(r)
        # The hand-up plan's statistics start with each generation. Kept across generations, they
        # made a generation's plan depend on what the engine decoded before it: on the shipped
        # 5.6 M workload a fresh engine -- each of the benchmark's instrumented and traced passes
        # builds one -- planned 178 hand-ups per pass where the timed passes' engine, after its
        # warm-up, planned 204 for the same tokens (docs/gpu-runs.md, "Forty-first run"). A plan needs
        # only one row, so clearing them as any row is admitted loses nothing.
        self._hand_ups_seen.clear()
        generator = None
        if not self._decoding.greedy:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
        depth = len(self.levels)
        stats = GenerationStats(
            n_prompt=n, drafted=[0] * depth, accepted=[0] * depth, rounds=[0] * depth,
            level_time_s=[0.0] * depth if self._level_clock.enabled else None,
            level_names=[lv.name for lv in self.levels], batch_size=len(self._slots),
        )
        return _Row(index, prompt, limit, max_new, stats, generator, self._now(), committed=n)

    def _finish(self, r: int, reason: str) -> Generation:
        row = self._slots[r]
        stats = row.stats
        n = len(row.prompt)
        stats.n_generated = row.committed - n
        if len(self._slots) > 1:
            stats.latency_s = self._now() - row.admitted
        for state in self.states:
            stats.layer_evals[state.model.name] = state.layer_evals[r]
            stats.head_evals[state.model.name] = state.head_evals[r]
        return Generation(list(row.generated), stats, reason)

    def _read_back(self, rows: list[int], counts: list[int]) -> list[list[int]]:
        """The tokens each row just committed, as host values, in one transfer."""
        starts = [self._slots[r].committed for r in rows]
        if len(rows) == 1:
            return [self._rows_of(self._tokens)[rows[0]][starts[0] : starts[0] + counts[0]].tolist()]
        flat = token_spans(self._tokens, rows, starts, [s + c for s, c in zip(starts, counts)]).tolist()
        out, off = [], 0
        for c in counts:
            out.append(flat[off : off + c])
            off += c
        return out

    # -- the recursion ------------------------------------------------------
    def _produce(self, i: int, rows: list[int], n: list[int]) -> tuple[list[int], list | None, list | None]:
        """Write level ``i``'s next tokens at ``tokens[rows[j], n[j]:]`` for every row and return how
        many per row, with level i's probabilities for each (``None`` when greedy) and the tokens
        as host values where verification already read them (else ``None``)."""
        level = self.levels[i]
        if i == 0:
            return self._draft(level, rows, n)
        rule = level.rule
        lower = self.levels[i - 1]
        greedy = self._decoding.greedy
        limit = [self._slots[r].limit for r in rows]
        out = [0] * len(rows)
        probs: list[list[torch.Tensor]] = [[] for _ in rows]
        known: list[list[int]] | None = [[] for _ in rows] if greedy else None
        active = [j for j in range(len(rows)) if n[j] < limit[j]]
        while active:
            sub = [rows[j] for j in active]
            m = [n[j] + out[j] for j in active]
            k, q, _ = self._produce(i - 1, sub, m)
            if rule is not None and rule.fixed_length:
                # joint rules are proven for a draft of exactly the batch length
                for jj, kk in enumerate(k):
                    if kk > lower.batch:
                        k[jj] = lower.batch
                        if q is not None:
                            q[jj] = q[jj][: lower.batch]
                        for state in self.states:
                            state.truncate_rows([sub[jj]], [m[jj] + lower.batch])
            mark = self._level_clock.start()
            upto = [mm + kk for mm, kk in zip(m, k)]
            need = [mm - 1 for mm in m]
            confidence = None  # this level's top probability at each position, for its draft_stop
            caught_up = False
            token_written = False  # a verdict step wrote the verifier's token into self._tokens
            if greedy:
                if level.draft_stop is None:
                    target = self._take_hand_up(i, sub, m, k)
                    if target is None:
                        target = level.state.greedy_tokens_rows(sub, self._tokens, level.exit_layer, upto, need)
                else:
                    logits = level.state.logits_rows(sub, self._tokens, level.exit_layer, upto, need)
                    target, confidence = logits.argmax(dim=-1), top_probability(logits, logits=True)
                drafts = (self._rows_of(self._tokens)[sub[0]][m[0] : upto[0]] if len(sub) == 1
                          else token_spans(self._tokens, sub, m, upto))
                if confidence is None:
                    verdicts, caught_up, mark, token_written = self._greedy_verdicts(
                        i, sub, m, k, [out[j] for j in active], drafts, target, mark)
                else:
                    verdicts = greedy_accept_rows(drafts, k, target)
                accepted = [a for a, _ in verdicts]
                tokens = [c[-1] for _, c in verdicts]
                p_rows = None
                note = getattr(level.state.model, "note_verdict", None)
                if note is not None and len(sub) == 1:
                    note(accepted[0])  # where its verification moved its next position on the device
            else:
                logits = level.state.logits_rows(sub, self._tokens, level.exit_layer, upto, need)
                p = warp(logits, self._decoding)
                p_rows = p.split([kk + 1 for kk in k])
                if level.draft_stop is not None:
                    confidence = top_probability(p, logits=False)
                accepted, tokens = [], []
                for jj, r in enumerate(sub):
                    draft = self._tokens[r, m[jj] : upto[jj]]
                    verdict = level.rule(draft, q[jj], p_rows[jj], self._slots[r].generator)
                    accepted.append(verdict.accepted)
                    tokens.append(verdict.token)
            # A drafting middle level with draft_stop hands up a row's round only through its
            # first unconfident token, and that row stops there.
            cuts = [None] * len(sub)
            if confidence is not None:
                conf, off = confidence.tolist(), 0
                for jj, kk in enumerate(k):
                    cuts[jj] = first_stop(conf[off : off + accepted[jj] + 1], level.draft_stop)
                    off += kk + 1
            handed = self._handed_up if self._handed_up is not None and self._handed_up.level == i + 1 else None
            if not token_written:
                write_tokens(self._tokens, sub, [mm + a for mm, a in zip(m, accepted)], tokens,
                             row=self._rows_of(self._tokens)[sub[0]] if len(sub) == 1 else None)
            still = []
            for jj, j in enumerate(active):
                a = accepted[jj]
                kept = a + 1 if cuts[jj] is None else cuts[jj] + 1
                self._account(self._slots[sub[jj]].stats, i, k[jj], a)
                if p_rows is not None:
                    probs[j].append(p_rows[jj][:kept])
                if greedy:
                    known[j].extend(verdicts[jj][1][:kept])
                out[j] += kept
                if (out[j] < level.batch and n[j] + out[j] < limit[j] and not (level.flush_on_reject and a < k[jj])
                        and cuts[jj] is None):
                    still.append(j)
            ends = [n[j] + out[j] - 1 for j in active]
            for state in self.states:
                # The level above, where it verified ahead, holds the handed-up tokens through the last
                # (the verifier's token): everything past it is padding.
                held = ends if handed is None or state is not handed.state else [e + 1 for e in ends]
                state.truncate_rows(sub, held)
            if caught_up:
                pos = m[0] + accepted[0]
                level.state.book_catch_up(sub[0], pos, level.exit_layer, level.state.model.finish_catch_up(pos))
            if mark is not None:
                self._level_clock.stop(i, mark, [self._slots[r].stats for r in sub])
            active = still
        counts = [min(o, lim - nn) for o, lim, nn in zip(out, limit, n)]
        merged = [torch.cat(p)[:c] for p, c in zip(probs, counts)] if not greedy else None
        return counts, merged, ([kn[:c] for kn, c in zip(known, counts)] if known is not None else None)

    def _draft(self, level: Level, rows: list[int], n: list[int]) -> tuple[list[int], list | None, list | None]:
        """Level 0: sample up to ``batch`` tokens autoregressively from its view, every row in step
        (a row drafts fewer when its ``draft_stop`` rule ends its draft). Returns the counts, the
        probabilities (None when greedy) and, where the next round was queued before this one's
        tokens were read (:meth:`_launch_next_chunk`), those tokens as host values (else None)."""
        counts = [min(level.batch, self._slots[r].limit - nn) for r, nn in zip(rows, n)]
        mark = self._level_clock.start()
        probs = known = None
        if self._decoding.greedy:
            ahead = self._take_ahead(level, rows, n, counts)
            counts = level.state.greedy_draft_rows(rows, self._tokens, level.exit_layer, n, counts, level.draft_stop,
                                                   launched=ahead)
            if ahead:
                self._slots[rows[0]].stats.draft_calls_ahead += 1
            known = self._launch_next_chunk(level, rows, n, counts)
        else:
            probs = [[] for _ in rows]
            going = list(range(len(rows)))
            for s in range(max(counts)):
                step = [j for j in going if s < counts[j]]
                if not step:
                    break
                rs = [rows[j] for j in step]
                pos = [n[j] + s for j in step]
                logits = level.state.logits_rows(rs, self._tokens, level.exit_layer, pos, [p - 1 for p in pos])
                p = warp(logits, self._decoding)
                drawn = [sample(p[jj], self._slots[r].generator) for jj, r in enumerate(rs)]
                write_tokens(self._tokens, rs, pos, torch.stack(drawn))
                for jj, j in enumerate(step):
                    probs[j].append(p[jj : jj + 1])
                if level.draft_stop is not None:
                    stops = level.state.layers_then_stop_rows(
                        rs, self._tokens, level.exit_layer, pos, top_probability(p, logits=False), level.draft_stop)
                    going = [j for j in going if not (j in step and stops[step.index(j)])]
                    for jj, j in enumerate(step):
                        if stops[jj]:
                            counts[j] = s + 1
            probs = [torch.cat(p) for p in probs]
        for r, c in zip(rows, counts):
            self._slots[r].stats.rounds[0] += c
            self._slots[r].stats.draft_calls += 1
        self._level_clock.stop(0, mark, [self._slots[r].stats for r in rows])
        return counts, probs, known

    def _launch_next_chunk(self, level: Level, rows: list[int], n: list[int], counts: list[int]) -> list | None:
        """Autoregressive decoding's next chunk, queued before this one is read: this chunk's
        tokens as host values where it was (read behind an event recorded before the launch), else
        None (the caller reads them back).

        Why: between two chunks the host reads the tokens, checks them for a stop and launches the
        next chunk, and the device waits for all of it (on an H200 with the 294 M model about 390 µs
        per chunk of eight tokens, 8 % of AR's decode time: docs/gpu-runs.md, "Thirty-first
        run"). The next chunk's inputs are tokens already on the device and its length is known, so
        it can be queued first; the host's turn then overlaps it. Where the row stops in this chunk
        the queued one was computed for nothing: it is dropped and reported
        (``GenerationStats.dropped_in_flight``, one chunk at most per sequence). Only where level 0
        is the top level (nothing verifies it), one row decodes, greedily, on the fused path, and
        the next chunk is a full one within the row's limit (a row that runs to its limit drops
        nothing).
        """
        if not self.lookahead or len(self.levels) != 1 or len(self._slots) != 1 or level.draft_stop is not None:
            return None
        state, r = level.state, rows[0]
        nxt = n[0] + counts[0]
        if (counts[0] != level.batch or nxt + level.batch > self._slots[r].limit or state.rows != 1
                or level.exit_layer != state.bounds[0]):
            return None
        launch = getattr(state.model, "launch_next_round", None)
        if launch is None or getattr(state.model, "greedy_draft", None) is None:
            return None  # the next round would not take the fused path that finishes a launched round
        row = self._rows_of(self._tokens)[r]
        chunk = row[n[0] : nxt]
        read = HostValue(chunk, *self._verdict_host(chunk))
        first = state.frontier[0][r]
        if launch(row, first, nxt, level.exit_layer, level.batch, state._process_last):
            self._ahead = (r, first, nxt)
        return [read.get()]

    # -- the look-ahead draft -------------------------------------------------
    def _greedy_verdicts(self, i: int, sub: list[int], m: list[int], k: list[int], out: list[int],
                         drafts: torch.Tensor, target: torch.Tensor, mark) -> tuple[list, bool, object, bool]:
        """Level ``i``'s greedy verdicts on ``drafts`` (``target``: its argmax tokens) as host values,
        with the device work that follows whatever they say queued before they are read.

        Reading a verdict waits for the device; whatever the host queues only after it, the device
        waits for. So where the next work is known before the verdict -- level 0's next round
        (``_ahead_plan``: launched, guarded on the device, or with its guard read on the host and
        only its inputs queued), the level above's catch-up (``_catch_up_plan``), or the level
        above's verification of a certain hand-up (``_hand_up_plan``) -- it is queued first.
        Returns ``(verdicts, caught_up, mark, token_written)``: whether a catch-up awaits booking
        (``finish_catch_up``), level ``i``'s clock mark, None once stopped here (work for
        another level was queued behind its own), and whether the verifier's token is in the
        engine's buffer already -- written at ``m + a`` by the verdict step queued here, on the
        device, into the token row that is the engine's buffer (``model.writes_into``).
        """
        plan = self._ahead_plan(i, sub, m, k, out)
        catch_up = self._catch_up_plan(i, sub, m, k, out) if plan is None else None
        if plan is None and catch_up is None:
            covered, bound = self._hand_up_plan(i, sub, m, k, out)
            if covered is None:
                verdicts = greedy_accept_rows(drafts, k, target)
                self._count_hand_up(i, bound, verdicts)
                return verdicts, False, mark, False
            above = self.levels[i + 1].state.model
            packed = greedy_verdict_inputs(drafts, k, target, out=above.hand_up_input(k[0]))
            verdict = HostValue(packed, *self._verdict_host(packed))
            self._level_clock.stop(i, mark, [self._slots[r].stats for r in sub])
            self._queue_hand_up(i, sub[0], m[0], k[0], out[0], covered)
            verdicts = greedy_accept_values(verdict.get(), k)
            self._count_hand_up(i, bound, verdicts)
            return verdicts, False, None, False
        packed = catch_up if plan is None else plan[1]
        verdict = HostValue(greedy_verdict_inputs(drafts, k, target, out=packed), *self._verdict_host(packed))
        self._level_clock.stop(i, mark, [self._slots[r].stats for r in sub])
        if catch_up is not None:
            # The level hands up whatever the verdict: the level above's first work, the
            # verifier's token through this level's layers, is queued before the read.
            caught_up = self._queue_catch_up(i, sub[0], m[0], k[0])
            written = caught_up and self.levels[i].state.model.writes_into(self._tokens)
            return greedy_accept_values(verdict.get(), k), caught_up, None, written
        front, _, below, on_device = plan
        if on_device:
            launched = self._launch_ahead(front, sub[0], m[0], k[0], below)
            stepped = launched  # the verdict step, with or without its round
            verdicts = greedy_accept_values(verdict.get(), k)
        else:
            # No guarded graph: the host reads the guard, with the round's inputs queued,
            # and launches the round the moment it knows the level continues.
            queued = self._queue_ahead_inputs(front, m[0], k[0])
            stepped = queued  # the verdict step ran, whether the round is launched after it or not
            verdicts = greedy_accept_values(verdict.get(), k)
            launched = (queued and verdicts[0][0] < below
                        and self._launch_ahead(front, sub[0], m[0], k[0], None, inputs_queued=True))
        if launched:
            a = verdicts[0][0]
            if below is None or a < below:
                self._ahead = (sub[0], min(front, m[0] + a), m[0] + a + 1)
            else:  # the level hands up: the device skipped the guarded round
                self.levels[0].state.model.discard_launched()
        return verdicts, False, None, stepped and self.levels[0].state.model.writes_into(self._tokens)

    def _ahead_plan(self, i: int, sub: list[int], m: list[int], k: list[int],
                    out: list[int]) -> tuple[int, torch.Tensor, int | None, bool] | None:
        """Whether level ``i``'s greedy verification can queue the next level-0 draft round before
        its verdict is read: ``(F0, packed, below, on_device)`` when it can -- the drafting model's
        frontier, the static buffer its backend reads the verdict from, the guard, and whether the
        device evaluates it -- else None.

        It can when that round is the next device work whatever the verdict, or whenever the
        verdict accepts fewer than ``below`` drafts (a guard the device evaluates): one row;
        level ``i`` is the top (the next round follows unless the row stops), or a middle level
        without flush on rejection, which continues where ``out + a + 1`` stays short of its
        batch -- certainly (``below`` None) when ``out + k + 1`` does, else only where ``a <
        below = batch - out - 1``, and where it hands up instead the device skips the round;
        the round's length is level 0's full batch for every verdict; level 0 drafts on the
        fused path; and the round starts at most ``model.max_verdict_back`` positions before
        ``m + k`` (``F0 >= m + k - back``: a separate draft's frontier stops one short, a
        hierarchy's draft two short after its middle level accepted every draft and handed up),
        the first-step shapes the device can choose between by itself.

        A guard the backend cannot evaluate on the device (no guarded graph: torch without CUDA
        conditional nodes) is evaluated on the host (``on_device`` False): only the round's inputs
        are queued before the verdict is read, and the round is launched right after the read
        where the level continues.
        """
        if not self.lookahead or i == 0 or len(sub) != 1 or len(self._slots) != 1:
            return None
        level, bottom = self.levels[i], self.levels[0]
        r, mm, kk = sub[0], m[0], k[0]
        if level.draft_stop is not None or bottom.draft_stop is not None:
            return None
        below = None
        if i < len(self.levels) - 1:
            if level.flush_on_reject:
                return None
            if out[0] + kk + 1 >= level.batch:
                below = level.batch - out[0] - 1
                if below < 1:
                    return None  # it hands up whatever the verdict
        if mm + kk + 1 + bottom.batch > self._slots[r].limit:
            return None
        state = bottom.state
        if state.rows != 1 or bottom.exit_layer != state.bounds[0]:
            return None
        model = state.model
        if getattr(model, "greedy_draft", None) is None or getattr(model, "verdict_input", None) is None:
            return None  # the round would not take the fused path that finishes a launched round
        front = state.frontier[0][r]
        back = max(0, mm + kk - front)
        if back > min(kk, getattr(model, "max_verdict_back", 1)):
            return None
        on_device = below is None or model.launches_guarded(mm, kk, back, bottom.exit_layer, bottom.batch,
                                                            state._process_last)
        if not on_device and getattr(model, "queue_draft_inputs", None) is None:
            return None  # the guard is read on the host, and the backend cannot queue the inputs before
        packed = model.verdict_input(kk)
        return None if packed is None else (front, packed, below, on_device)

    def _catch_up_plan(self, i: int, sub: list[int], m: list[int], k: list[int], out: list[int]) -> torch.Tensor | None:
        """Whether middle level ``i``'s greedy verification can queue, before its verdict is read,
        the catch-up the level above starts with: the static buffer the model reads the packed
        verdict from when it can, else None.

        It can when the level hands up whatever the verdict (``out + 1`` reaches its batch), the
        level above is a deeper view of the same model (HiSpec), the verdict leaves the hand-up
        within the row's limit, one row, and every segment up to this level's exit has run every
        draft -- so the level above's first work is exactly the verifier's token at ``m + a``
        through those segments, which the device can place by itself.
        """
        if not self.lookahead or i == 0 or i == len(self.levels) - 1 or len(sub) != 1 or len(self._slots) != 1:
            return None
        level = self.levels[i]
        state = level.state
        if not self._hands_up_within_its_model(i) or state.rows != 1:
            return None
        r, mm, kk = sub[0], m[0], k[0]
        if out[0] + 1 < level.batch or mm + kk + 1 > self._slots[r].limit:
            return None  # the level may continue (a round, or the guarded look-ahead), or the limit cuts it
        last = state.bounds.index(level.exit_layer)
        if any(state.frontier[j][r] < mm + kk for j in range(last + 1)):
            return None
        if getattr(state.model, "queue_catch_up", None) is None or getattr(state.model, "verdict_input", None) is None:
            return None
        return state.model.verdict_input(kk)

    def _queue_catch_up(self, i: int, r: int, m: int, k: int) -> bool:
        """Queue the catch-up ``_catch_up_plan`` allowed, timed as the level above's work."""
        level = self.levels[i]
        mark = self._level_clock.start()
        queued = level.state.model.queue_catch_up(m, k, level.exit_layer)
        self._level_clock.stop(i + 1, mark, [self._slots[r].stats])
        return queued

    def _count_hand_up(self, i: int, bound: int | None, verdicts: list) -> None:
        """Whether middle level ``i``'s hand-up whose plan ``_hand_up_plan`` weighed (planned or
        not) outgrew its step -- accepted more than ``bound`` drafts -- for the plans after it;
        nothing where none was weighed (``bound`` None)."""
        if bound is not None:
            self._hand_ups_seen.setdefault(i, [0, 0])[verdicts[0][0] > bound] += 1

    def _hand_up_plan(self, i: int, sub: list[int], m: list[int], k: list[int],
                      out: list[int]) -> tuple[int | None, int | None]:
        """``(covered, bound)``: how many handed-up tokens middle level ``i``'s greedy verification
        can have the level above, a separate model, verify before its verdict is read (None where
        it cannot), and -- where the plan weighed whether this hand-up may outgrow its step -- the
        most drafts the step covers, for ``_count_hand_up`` once the verdict is read (else None).

        It can when the level hands up whatever the verdict (``out + 1`` reaches its batch, no
        draft_stop) and the level above verifies greedily from token ids a model no lower level
        views (a Mohri-style hierarchy: draft -> mid -> target) with no fixed-length rule; one row,
        and the longest hand-up within the row's limit. The hand-up's length, ``out + a + 1``, is
        known only with the verdict, so the level above verifies the tokens a step of the shortest
        hand-up's padded size holds (``step_rows``: a fixed-shape model pads a step of 5 positions
        to 8), up to the longest hand-up, in one step that places the verifier's token at ``m + a``
        among its ids on the device (``model.arm_hand_up``; only where the model has that step,
        ``hand_up_ready``): its tokens up to there are exactly those of the unpadded verification
        (attention is causal), and the positions past it -- stale drafts -- are computed and
        dropped (``hand_up_padding``; counted in layer_evals). Such padding costs nothing the
        unpadded step would not have cost. As one step the plan costs the host about what the
        plain launch after the read costs; the placement as separate launches cost more than the
        wait it removed (docs/gpu-runs.md, "Twenty-first run" and "Twenty-second run").

        A hand-up longer than that step (``a`` past what it covers) is finished by a second step
        of the level above on the rest (``_take_hand_up``) -- a forward the unpadded order did not
        need. So where that can happen the plan is made only while this generation's hand-ups so
        far outgrew such a step rarely: at most ``hand_up_overflow_max`` of them, counted after
        ``HAND_UP_PRIOR_FITS`` that fit (each hand-up weighed here is counted once its verdict is
        read, planned or not: ``bound``). Counted are the hand-ups themselves, not every
        verdict of the level: a verdict accepting many drafts where the level does not hand up
        costs nothing, and on the shipped 5.6 M workload such verdicts made up 14-20 % of some
        generations whose hand-ups never overflowed. The wait a plan removes is the host's whole
        turn between the middle's verdict and the verifier's launch (docs/engine.md).
        """
        if not self.lookahead or i == 0 or i == len(self.levels) - 1 or len(sub) != 1 or len(self._slots) != 1:
            return None, None
        level, above = self.levels[i], self.levels[i + 1]
        if out[0] + 1 < level.batch or above.state.rows != 1 or not self._hands_up_to_another_model(i):
            return None, None
        if m[0] + k[0] + 1 > self._slots[sub[0]].limit:
            return None, None
        model = above.state.model
        if getattr(model, "hand_up_ready", None) is None:
            return None, None
        shortest, longest = out[0] + 1, out[0] + k[0] + 1
        covered = min(longest, model.step_rows(shortest + 1) - 1)
        if not model.hand_up_ready(above.exit_layer, k[0], out[0] + 1, covered + 1, m[0] - out[0] - 1):
            return None, None
        if covered < longest and self.hand_up_overflow_max < 1:
            bound = covered - out[0] - 1  # a verdict accepting more drafts overflows the step
            fit, over = self._hand_ups_seen.get(i, (0, 0))
            if self.hand_up_overflow_max <= 0 or over > self.hand_up_overflow_max * (HAND_UP_PRIOR_FITS + fit + over):
                return None, bound
            return covered, bound
        return covered, None

    def _queue_hand_up(self, i: int, r: int, m: int, k: int, out: int, covered: int) -> None:
        """Queue what ``_hand_up_plan`` allowed: the level above's verification of positions
        ``[n - 1, n + covered)`` as one step that first places the verifier's token at ``m + a``
        among its ids (both chosen on the device from the verdict packed in
        ``model.hand_up_input``), timed as the level above's work. The token reaches the
        engine's own buffer once the verdict is read (``_produce``)."""
        above, n = self.levels[i + 1], m - out
        mark = self._level_clock.start()
        above.state.model.arm_hand_up(k, out + 1)
        tokens = above.state.greedy_tokens_rows([r], self._tokens, above.exit_layer, [n + covered], [n - 1])
        self._level_clock.stop(i + 1, mark, [self._slots[r].stats])
        self._handed_up = _HandUp(i + 1, above.state, r, n, covered, tokens)

    def _take_hand_up(self, i: int, sub: list[int], m: list[int], k: list[int]) -> torch.Tensor | None:
        """Level ``i``'s argmax tokens for the ``k`` drafts at ``m`` where the level below queued
        their verification (``_queue_hand_up``), else None. A hand-up longer than the queued step
        covered is finished here by a step on the rest."""
        handed = self._handed_up
        if handed is None or handed.level != i:
            return None
        self._handed_up = None
        if sub != [handed.row] or m != [handed.start] or k[0] < 1:
            raise RuntimeError(f"level {i}: a verification was queued for row {handed.row} at {handed.start} "
                               f"({handed.covered} tokens), but the level verifies rows {sub} at {m}, {k} tokens")
        stats = self._slots[handed.row].stats
        stats.hand_ups_ahead += 1
        if k[0] <= handed.covered:
            stats.hand_up_padding += handed.covered - k[0]
            return handed.tokens[: k[0] + 1]
        stats.hand_ups_continued += 1
        level, start = self.levels[i], m[0] + handed.covered
        # a copy first: the step on the rest may replay the graph whose output the queued tokens are
        queued = handed.tokens[: handed.covered + 1].clone()
        rest = level.state.greedy_tokens_rows(sub, self._tokens, level.exit_layer, [m[0] + k[0]], [start])
        return torch.cat([queued, rest])

    def _verdict_host(self, packed: torch.Tensor) -> tuple:
        """A pinned buffer of ``packed``'s size, an event and the stream for reading a packed verdict,
        made once per generation (the buffer's view once per size: a view is a dispatcher call on the
        host, and a verdict is read once per round)."""
        if packed.device.type != "cuda":
            return ()
        n = packed.numel()
        if self._verdict_read is None or self._verdict_read[0].numel() < n:
            self._verdict_read = (torch.empty(max(n, 64), dtype=packed.dtype, pin_memory=True),
                                  torch.cuda.Event(), torch.cuda.current_stream(packed.device), PrefixViews())
        buffer, event, stream, prefix = self._verdict_read
        return prefix(buffer, n), event, stream

    def _queue_ahead_inputs(self, front: int, m: int, k: int) -> bool:
        """Queue the inputs of level 0's next round from the packed verdict (the first part of
        :meth:`_launch_ahead`), for a round whose guard the host reads."""
        bottom = self.levels[0]
        return bottom.state.model.queue_draft_inputs(m, k, max(0, m + k - front), bottom.batch)

    def _launch_ahead(self, front: int, r: int, m: int, k: int, below: int | None, inputs_queued: bool = False) -> bool:
        """Queue level 0's next round from the packed verdict, on the device (docs/engine.md).

        With ``a`` accepted the committed length becomes ``m + a + 1`` and the drafting model's
        frontier ``min(front, m + a)``: the round processes the positions from there -- one, the
        verifier's token, or, where the verdict accepted past a frontier that stops short of
        ``m + k``, the accepted drafts from it too; the backend chooses on the device, and
        with a guard ``below`` it runs the round only where ``a < below``. ``inputs_queued``: the
        round's inputs are queued already (:meth:`_queue_ahead_inputs`), only its chain is left.
        """
        bottom = self.levels[0]
        mark = self._level_clock.start()
        guard = {} if below is None else {"accepted_below": below}
        if inputs_queued:
            guard["inputs_queued"] = True
        model = bottom.state.model
        launched = model.launch_draft_after_verdict(
            m, k, max(0, m + k - front), bottom.exit_layer, bottom.batch, bottom.state._process_last, **guard)
        self._level_clock.stop(0, mark, [self._slots[r].stats])
        if launched and below is not None and getattr(model, "guards_on_device", False):
            self._slots[r].stats.guarded_rounds_on_device += 1
        return launched

    def _take_ahead(self, level: Level, rows: list[int], n: list[int], counts: list[int]) -> bool:
        """True when this level-0 round is the one launched ahead (same row, start and length);
        a launched round this one is not is forgotten."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return False
        r, first, upto = ahead
        if rows == [r] and n == [upto] and counts == [level.batch] and level.state.frontier[0][r] == first:
            return True
        self._drop_ahead()
        return False

    def _drop_ahead(self) -> None:
        """Forget the round launched ahead (its cache writes lie past the frontier)."""
        self._ahead = None
        self.levels[0].state.model.discard_launched()  # only a backend that launched one gets here

    # -- bookkeeping ----------------------------------------------------------
    @staticmethod
    def _account(s: GenerationStats, i: int, drafted: int, accepted: int) -> None:
        s.drafted[i] += drafted
        s.accepted[i] += accepted
        s.rounds[i] += 1
        if i == len(s.rounds) - 1:
            reached = min(accepted + 1, drafted)
            while len(s.position_reached) < drafted:
                s.position_reached.append(0)
                s.position_accepted.append(0)
            for j in range(reached):
                s.position_reached[j] += 1
            for j in range(accepted):
                s.position_accepted[j] += 1

    def _charge(self, rows: list[int], decode: bool) -> None:
        """Split the time since the last charge equally among ``rows`` (the rows it served)."""
        now = self._now()
        share = (now - self._mark) / len(rows)
        self._mark = now
        for r in rows:
            stats = self._slots[r].stats
            stats.wall_s += share
            if not decode:
                stats.prefill_s += share

    def _stop_index(self, row: _Row, new: list[int]) -> int | None:
        """How many of the newly committed tokens to keep if generation stops in them."""
        return stop_cut(row.generated, new, self.eos_token_ids, *self._stop)

    def _phase(self, name: str) -> None:
        if self.on_phase is not None and name != self._phase_now:
            self.on_phase(name)
        self._phase_now = name

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _now(self) -> float:
        """The engine's clock: wall time minus the time the caller held a yielded row."""
        return time.perf_counter() - self._paused
