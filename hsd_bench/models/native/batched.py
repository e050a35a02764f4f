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
  views; otherwise it gathers the rows the step serves. Compiled, these steps
  use dynamic shapes (``torch.compile(dynamic=None)``: the second shape makes
  the sizes symbolic), so a sweep over batch sizes compiles a few graphs, not
  one per ``(b, T, kv)`` bucket; each bucket is still its own CUDA graph.

Positions, rows and the packing index reach the device as small copies made
before the step, so a replay reads everything from static buffers.

A greedy draft round of several rows (``greedy_draft_rows``) is chained on
the device as at batch 1: after a ragged first step, every step embeds the
previous step's argmax of every row from a static buffer, so the host queues
one replay per drafted token and never waits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsd_bench.models.native.cache import StaticKVCache
from hsd_bench.models.native.graphs import GraphCache, configure_compile, next_pow2
from hsd_bench.models.native.inference import inference_only
from hsd_bench.models.native.layers import layer_forward, step_inputs
from hsd_bench.models.ragged import RaggedLayout, device_index, token_spans

# Longest draft round chained on the device (model.MAX_FUSED_DRAFT at batch 1).
MAX_CHAIN = 64


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
        self.max_head_tokens = self.max_graph_tokens * next_pow2(rows)
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
        dense = layout.uniform and layout.b == bb and layout.T == tb  # packed == the step's layout
        trash = self.cache.slots - 1
        pos = torch.full((bb, tb), trash, dtype=torch.long)
        pos[: layout.b] = layout.positions("cpu", span=tb, limit=self.cache.slots)
        _upload(pos, pos_in)
        if not full:
            _upload(torch.tensor(layout.rows + [0] * (bb - layout.b), dtype=torch.long), rows_in)
        if dense:
            x_in.copy_(hidden.view(x_in.shape))
        else:
            index = layout.flat_index(self.device, tb)
            x_in.view(-1, x_in.shape[-1]).index_copy_(0, index, hidden[0])

        layer_fn, prep_fn = self._rows_fns()

        def step() -> torch.Tensor:
            return self._layers(x_in, pos_in, start, end, kv_len, layer_fn, prep_fn, self.attention,
                                None if full else rows_in, self.matmul)

        out = self._replay(("rows", start, end, bb, tb, kv_len, full), step)
        if dense:
            return out.reshape(1, bb * tb, out.shape[-1]).clone()  # a replay overwrites its output
        return out.view(-1, out.shape[-1]).index_select(0, index)[None]

    @inference_only
    def greedy_draft_rows(self, tokens: torch.Tensor, rows: list[int], first: list[int], upto: list[int], end: int,
                          count: int, process_last: bool = False) -> torch.Tensor:
        """``greedy_draft`` for several rows of the engine's ``[R, L]`` token buffer, chained on the device.

        Row ``rows[i]`` processes positions ``[first[i], upto[i])`` on layers
        ``[0, end)``, then ``count`` times takes the head's argmax at its last
        processed position, writes it at ``tokens[rows[i], upto[i] + j]`` and
        (except the last, unless ``process_last``) processes it. Returns the
        hidden states at depth ``end`` of every processed position, packed
        row by row (``[1, sum(upto - first) + rows * (count - 1 + process_last), D]``).
        Without fixed shapes (or past ``MAX_CHAIN``) the steps run one by one.
        """
        self._check_range(0, end)
        if count < 1 or any(f >= u for f, u in zip(first, upto)):
            raise ValueError(f"greedy_draft_rows needs first < upto and count >= 1, got first={first} upto={upto} "
                             f"count={count}")
        if max(upto) + count - 1 + process_last > self.max_context or tokens.shape[1] < max(upto) + count:
            raise ValueError(f"greedy_draft_rows of {count} tokens from {max(upto)}: positions must lie in "
                             f"[0, max_context={self.max_context}) and the buffer of {tokens.shape[1]} must reach them")
        b = len(rows)
        lengths = [u - f for f, u in zip(first, upto)]
        h0 = self.run_layers(self.embed(token_spans(tokens, rows, first, upto)), 0, end, first, rows=rows,
                             lengths=lengths)
        if max(lengths) == 1:  # one position per row (the usual round): each row's last is its only one
            tok0 = self.greedy_tokens(h0)
        else:
            last = [sum(lengths[: i + 1]) - 1 for i in range(b)]
            tok0 = self.greedy_tokens(h0[:, device_index(last, self.device)])
        chain = count - 1 + int(process_last)
        width = tokens.shape[1]
        if chain == 0:
            tokens.view(-1).index_copy_(0, device_index([r * width + u for r, u in zip(rows, upto)], self.device), tok0)
            return h0
        if not self.fixed_shapes or chain > MAX_CHAIN:
            return _pack_draft(h0, lengths, self._draft_rows_stepwise(tokens, rows, upto, end, count, process_last,
                                                                      tok0))
        bb = next_pow2(b)
        tok_buf, pos0, rows_in, hid = self._chain_static(bb)
        full = b == bb and rows == list(range(bb))
        tok_buf[0, :b].copy_(tok0)
        _upload(torch.tensor(upto + [self.cache.slots - 1] * (bb - b), dtype=torch.long), pos0)
        if not full:
            _upload(torch.tensor(rows + [0] * (bb - b), dtype=torch.long), rows_in)
        for i in range(1, chain + 1):
            head = i < count  # the tail step (process_last) only runs the layers
            kv_len = self._kv_bucket(max(upto) + i)
            self._replay(("rows-draft", end, bb, i, head, kv_len, full),
                         self._chain_step(end, bb, i, head, kv_len, None if full else rows_in))
        index = [r * width + u + j for r, u in zip(rows, upto) for j in range(count)]
        tokens.view(-1).index_copy_(0, device_index(index, self.device), tok_buf[:count, :b].t().reshape(-1))
        for r, u in zip(rows, upto):
            self.cache.advance(0, end, u + chain, r)
        return _pack_draft(h0, lengths, hid[:b, :chain])

    def _chain_step(self, end: int, bb: int, i: int, head: bool, kv_len: int, rows_in):
        """Step ``i`` of a batched chain: every row's token from step ``i - 1`` through the layers at
        its next position, then (``head``) the argmax that becomes drafted token ``i``."""
        tok_buf, pos0, _, hid = self._chain_static(bb)
        layer_fn, prep_fn = self._rows_fns()
        trash = self.cache.slots - 1

        def step() -> torch.Tensor:
            x = F.embedding(tok_buf[i - 1], self.embed_weight)[:, None]
            pos = (pos0 + (i - 1)).clamp(max=trash)[:, None]
            out = self._layers(x, pos, 0, end, kv_len, layer_fn, prep_fn, self.attention, rows_in, self.matmul)
            hid[:, i - 1].copy_(out[:, 0])
            if not head:
                return out
            tok = self._greedy_head_fn(out.view(1, bb, -1), self.norm_weight, self.lm_head, self.args.rms_eps)
            tok_buf[i].copy_(tok)
            return tok

        return step

    def _draft_rows_stepwise(self, tokens, rows, upto, end, count, process_last, tok0) -> torch.Tensor:
        """The chained steps through run_layers / greedy_tokens one at a time: ``[b, chain, D]``."""
        width, b = tokens.shape[1], len(rows)
        tok, pos, steps = tok0, list(upto), []
        for j in range(count):
            tokens.view(-1).index_copy_(0, device_index([r * width + p for r, p in zip(rows, pos)], self.device), tok)
            if j == count - 1 and not process_last:
                break
            h = self.run_layers(self.embed(tok), 0, end, pos, rows=rows, lengths=[1] * b)
            steps.append(h[0])
            if j < count - 1:
                tok = self.greedy_tokens(h)
            pos = [p + 1 for p in pos]
        return torch.stack(steps, dim=1)

    def _chain_static(self, bb: int):
        """Static buffers of a ``bb``-row chain: drafted ids per step, first positions, cache rows, hidden states."""
        store = self.__dict__.setdefault("_chain_in", {})
        bufs = store.get(bb)
        if bufs is None:
            bufs = (torch.zeros(MAX_CHAIN + 1, bb, dtype=torch.long, device=self.device),
                    torch.zeros(bb, dtype=torch.long, device=self.device),
                    torch.zeros(bb, dtype=torch.long, device=self.device),
                    torch.zeros(bb, MAX_CHAIN + 1, self.args.hidden_size, dtype=self.dtype, device=self.device))
            store[bb] = bufs
        return bufs

    def _rows_fns(self):
        """The layer and step-input functions of fixed-shape ragged steps (compiled with dynamic shapes)."""
        fns = self.__dict__.get("_rows_compiled")
        if fns is None:
            if self.compiled:
                configure_compile()
                fns = (torch.compile(layer_forward, dynamic=None, fullgraph=True),
                       torch.compile(step_inputs, dynamic=None, fullgraph=True))
            else:
                fns = (layer_forward, step_inputs)
            self.__dict__["_rows_compiled"] = fns
        return fns

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


def _pack_draft(h0: torch.Tensor, lengths: list[int], steps: torch.Tensor) -> torch.Tensor:
    """A draft round's hidden states packed row by row: row ``i``'s ``lengths[i]`` first-step
    positions (packed in ``h0``), then its chained steps ``steps[i]`` (``[b, chain, D]``)."""
    b, chain = steps.shape[0], steps.shape[1]
    flat = torch.cat([h0[0], steps.reshape(b * chain, -1)])
    base, pick, off = h0.shape[1], [], 0
    for i, n in enumerate(lengths):
        pick += list(range(off, off + n)) + list(range(base + i * chain, base + (i + 1) * chain))
        off += n
    return flat.index_select(0, device_index(pick, flat.device))[None]
