"""``NativeLlama``: the static-cache backend behind the ``LayeredModel`` protocol.

Two paths compute the same function:

* **eager** (CPU default, and any step with more than ``max_graph_tokens``
  positions, e.g. a prefill): exact shapes, attention over exactly the
  cached positions.
* **fixed-shape** (CUDA default): padded token counts and bucketed attention
  spans (``graphs.py``), compiled with ``torch.compile`` and replayed as
  CUDA graphs. On CPU it can be switched on with ``compile=True`` (no graphs).

Both write the KV cache by position, so rollback is a length change.
Several sequences (cache rows) decode together through ragged forwards
(``batched.py``); without row arguments every method is row 0.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from hsd_bench.models.native.args import NativeArgs, rope_tables
from hsd_bench.models.native.batched import RaggedSteps
from hsd_bench.models.native.cache import StaticKVCache
from hsd_bench.models.native.graphs import GraphCache, compile_fn, next_pow2
from hsd_bench.models.native.layers import (
    Dims,
    LayerWeights,
    greedy_head_forward,
    head_forward,
    layer_forward,
    step_inputs,
)

MIN_KV_BUCKET = 128
# Longest draft round greedy_draft chains on the device; longer ones go step by step.
MAX_FUSED_DRAFT = 64


def _no_grad(fn):
    """``torch.no_grad()`` that costs one check when grad is already off.

    The decorator form enters and leaves a context manager on every call,
    several microseconds of host time per call; a draft round makes a few
    such calls per token, and the engine already runs with grad off.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.is_grad_enabled():
            with torch.no_grad():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


class NativeLlama(RaggedSteps):
    """A Llama / Qwen2 / Qwen3 / Mistral decoder with static KV caches (one or more cache rows)."""

    def __init__(
        self,
        args: NativeArgs,
        layers: list[LayerWeights],
        embed: torch.Tensor,
        norm: torch.Tensor,
        lm_head: torch.Tensor,
        *,
        name: str = "model",
        max_context: int = 2048,
        compile: bool | None = None,
        cuda_graphs: bool | None = None,
        fixed_shapes: bool | None = None,
        max_graph_tokens: int = 16,
        min_kv_bucket: int = MIN_KV_BUCKET,
        attention: str = "math",
    ):
        if len(layers) != args.num_layers:
            raise ValueError(f"got {len(layers)} layer weights for a {args.num_layers}-layer config")
        if max_context < 2:
            raise ValueError(f"max_context={max_context} must be >= 2")
        if max_graph_tokens < 1 or max_graph_tokens & (max_graph_tokens - 1):
            raise ValueError(f"max_graph_tokens={max_graph_tokens} must be a power of two >= 1")
        if attention not in ("sdpa", "math"):
            raise ValueError(f"attention={attention!r} must be 'sdpa' or 'math'")
        # Attention kernel of the fixed-shape (decode/verify) steps. "math" lets inductor fuse
        # mask + softmax and was faster on an H100 (Llama-1B shape: 695 vs 656 tok/s, see
        # docs/performance.md); long eager steps (prefill) always use SDPA's fused kernels.
        self.attention = attention
        self.args = args
        self.name = name
        self.num_layers = args.num_layers
        self.vocab_size = lm_head.shape[0]
        self.max_context = int(max_context)
        self.device = embed.device
        self.dtype = embed.dtype
        on_cuda = self.device.type == "cuda"
        self.compiled = on_cuda if compile is None else bool(compile)
        self.use_graphs = on_cuda if cuda_graphs is None else bool(cuda_graphs)
        if self.use_graphs and not on_cuda:
            raise ValueError(f"cuda_graphs=True needs a CUDA device, the model is on {self.device}")
        # Padded, bucketed steps; implied by compile or graphs, and testable on CPU without either.
        self.fixed_shapes = self.compiled or self.use_graphs or bool(fixed_shapes)
        self.max_graph_tokens = max_graph_tokens if self.fixed_shapes else 0
        # Attention spans are powers of two >= min_kv_bucket (capped at the cache size): fewer
        # buckets = fewer compiled shapes; a span past the occupied slots costs bandwidth.
        self.min_kv_bucket = int(min_kv_bucket)

        self.layers = layers
        self.embed_weight, self.norm_weight, self.lm_head = embed, norm, lm_head
        self.dims = Dims(args.num_heads, args.num_kv_heads, args.head_dim, args.rms_eps)
        self.windows = [w if w < self.max_context else 0 for w in args.sliding_windows] or [0] * args.num_layers
        # Padding rows of a fixed-shape step write up to max_graph_tokens - 1 slots past the context;
        # the last slot is never a real position (padding of ragged steps is capped there).
        slots = self.max_context + max(self.max_graph_tokens, 1)
        self.cache = StaticKVCache(args.num_layers, args.num_kv_heads, args.head_dim, slots, self.dtype, self.device)
        self.cos, self.sin = rope_tables(args, slots, self.dtype, self.device)

        self._layer_fn = compile_fn(layer_forward) if self.compiled else layer_forward
        self._head_fn = compile_fn(head_forward) if self.compiled else head_forward
        self._greedy_head_fn = compile_fn(greedy_head_forward) if self.compiled else greedy_head_forward
        self._prep_fn = compile_fn(step_inputs) if self.compiled else step_inputs
        self._pos_base = torch.zeros(1, dtype=torch.long, device=self.device)
        self._arange = torch.arange(self.max_graph_tokens or 1, dtype=torch.long, device=self.device)
        # Head steps pack the positions of every row of a batch: fixed-shape up to this many.
        self.max_head_tokens = self.max_graph_tokens
        self._x_in: dict[int, torch.Tensor] = {}  # padded T -> static hidden-state input
        self._h_in: dict[int, torch.Tensor] = {}  # padded T -> static head input
        self._graphs = GraphCache(self.device) if self.use_graphs else None
        # Static buffers of a fused greedy draft round (greedy_draft): the first step's
        # token ids, every step's argmax, every processed position's hidden state.
        self._draft_ids = torch.zeros(max(self.max_graph_tokens, 1), dtype=torch.long, device=self.device)
        self._draft_tok = torch.zeros(MAX_FUSED_DRAFT, dtype=torch.long, device=self.device)
        self._draft_hidden = torch.zeros(
            1, max(self.max_graph_tokens, 1) + MAX_FUSED_DRAFT, args.hidden_size, dtype=self.dtype, device=self.device
        )

    # -- LayeredModel ---------------------------------------------------------
    def reset(self) -> None:
        self.cache.reset()

    def cache_len(self, layer: int, row: int = 0) -> int:
        return self.cache.row_lengths[row][layer]

    def truncate(self, start: int, end: int, length: int, rows: list[int] | None = None) -> None:
        self._check_range(start, end)
        for row in rows if rows is not None else (0,):
            self.cache.truncate(start, end, length, row)

    @_no_grad
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(self.device, non_blocking=True).view(-1)
        return F.embedding(ids, self.embed_weight)[None]

    @_no_grad
    def run_layers(self, hidden: torch.Tensor, start: int, end: int, first_pos, rows=None, lengths=None) -> torch.Tensor:
        if rows is not None:
            return self._run_rows(hidden, start, end, first_pos, rows, lengths)
        self._check_range(start, end)
        if hidden.dim() != 3 or hidden.shape[0] != 1 or hidden.shape[2] != self.args.hidden_size:
            raise ValueError(f"hidden must be [1, T, {self.args.hidden_size}], got {tuple(hidden.shape)}")
        t = hidden.shape[1]
        if t < 1 or first_pos < 0 or first_pos + t > self.max_context:
            raise ValueError(
                f"positions [{first_pos}, {first_pos + t}) must lie in [0, max_context={self.max_context})"
            )
        self.cache.check_frontier(start, end, first_pos)
        if t <= self.max_graph_tokens:
            out = self._run_fixed(hidden, start, end, first_pos)
        else:
            out = self._run_eager(hidden, start, end, first_pos)
        self.cache.advance(start, end, first_pos + t)
        return out

    @_no_grad
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[1] > self.max_head_tokens:
            return head_forward(hidden, self.norm_weight, self.lm_head, self.args.rms_eps)
        return self._run_head("head", self._head_fn, hidden)

    @_no_grad
    def greedy_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """``argmax(logits(hidden))`` as ``LongTensor[T]``, head and argmax in one step."""
        if hidden.shape[1] > self.max_head_tokens:
            return self.logits(hidden).argmax(dim=-1)
        return self._run_head("greedy-head", self._greedy_head_fn, hidden)

    def _run_head(self, kind: str, head_fn, hidden: torch.Tensor) -> torch.Tensor:
        """A fixed-shape head step (``head_fn`` over padded rows), replayed as a graph where there are graphs."""
        t = hidden.shape[1]
        tb = next_pow2(t)
        h_in = self._static(self._h_in, tb)
        h_in[:, :t].copy_(hidden)

        def step() -> torch.Tensor:
            return head_fn(h_in, self.norm_weight, self.lm_head, self.args.rms_eps)

        return self._replay((kind, tb), step)[:t].clone()

    @_no_grad
    def greedy_draft(
        self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int, process_last: bool = False
    ) -> torch.Tensor:
        """A greedy draft round on layers ``[0, end)``, chained on the device.

        Processes positions ``[first, upto)`` (ids ``tokens[first:upto]``),
        then ``count`` times: argmax of the head on the last processed
        position, written at the next position and, except for the last,
        processed in turn. Writes ``tokens[upto : upto + count]`` and returns
        the hidden states at depth ``end`` of the processed positions
        ``[first, upto + count - 1)``, ``[1, upto + count - 1 - first, D]``.
        ``process_last`` also runs the layers (not the head) on the last
        drafted token, position ``upto + count - 1``: a deeper view of the
        same model needs it next, and inside the chain it costs one more
        replay instead of a separate embed + run_layers call.

        With CUDA graphs every step is one replay that reads its input token
        from the previous step's output on the device, so the host neither
        waits nor copies between steps: a round costs ``count`` replays plus
        three small copies, where the step-by-step protocol (embed,
        run_layers, head, argmax, token write) costs about a dozen launches
        per token.
        """
        self._check_range(0, end)
        t0 = upto - first
        last = upto + count - (0 if process_last else 1)
        if t0 < 1 or count < 1:
            raise ValueError(f"greedy_draft needs first < upto and count >= 1, got first={first} upto={upto} count={count}")
        if first < 0 or last > self.max_context or tokens.shape[0] < upto + count:
            raise ValueError(
                f"greedy_draft of positions [{first}, {last}) with {count} tokens: positions must lie in "
                f"[0, max_context={self.max_context}) and the {tokens.shape[0]}-token buffer must reach {upto + count}"
            )
        self.cache.check_frontier(0, end, first)
        if not self.fixed_shapes or t0 > self.max_graph_tokens or count > MAX_FUSED_DRAFT:
            return self._greedy_draft_stepwise(tokens, first, upto, end, count, process_last)
        self._draft_ids[:t0].copy_(tokens[first:upto])
        self._pos_base.fill_(first)
        kv_len = self._kv_bucket(upto)
        self._replay(("draft-first", end, t0, kv_len), self._draft_first_step(end, t0, kv_len))
        for i in range(1, count + (1 if process_last else 0)):
            head = i < count  # the tail step (process_last) only runs the layers
            kv_len = self._kv_bucket(upto + i)
            self._replay(("draft-next", end, t0, i, head, kv_len), self._draft_next_step(end, t0, i, head, kv_len))
        tokens[upto : upto + count].copy_(self._draft_tok[:count])
        self.cache.advance(0, end, last)
        return self._draft_hidden[:, : last - first].clone()

    def _draft_first_step(self, end: int, t0: int, kv_len: int):
        tb = next_pow2(t0)

        def step() -> torch.Tensor:
            x = F.embedding(self._draft_ids[:tb], self.embed_weight)[None]
            pos = self._pos_base + self._arange[:tb]
            out = self._layers(x, pos, 0, end, kv_len, self._layer_fn, self._prep_fn, self.attention)
            self._draft_hidden[:, :t0].copy_(out[:, :t0])
            tok = self._greedy_head_fn(out[:, t0 - 1 : t0], self.norm_weight, self.lm_head, self.args.rms_eps)
            self._draft_tok[:1].copy_(tok)
            return tok

        return step

    def _draft_next_step(self, end: int, t0: int, i: int, head: bool, kv_len: int):
        """Step ``i`` of a chain: the token drafted by step ``i - 1`` through the layers, then
        (``head``) the argmax that becomes drafted token ``i``."""
        row = t0 + i - 1  # this step's position is first + row

        def step() -> torch.Tensor:
            x = F.embedding(self._draft_tok[i - 1 : i], self.embed_weight)[None]
            pos = self._pos_base + row
            out = self._layers(x, pos, 0, end, kv_len, self._layer_fn, self._prep_fn, self.attention)
            self._draft_hidden[:, row : row + 1].copy_(out)
            if not head:
                return out
            tok = self._greedy_head_fn(out, self.norm_weight, self.lm_head, self.args.rms_eps)
            self._draft_tok[i : i + 1].copy_(tok)
            return tok

        return step

    def _greedy_draft_stepwise(
        self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int, process_last: bool
    ) -> torch.Tensor:
        """The same round through run_layers / greedy_tokens (exact shapes on the eager path)."""
        outs, pos = [], first
        for t in range(upto, upto + count):
            h = self.run_layers(self.embed(tokens[pos:t]), 0, end, pos)
            outs.append(h)
            tokens[t] = self.greedy_tokens(h[:, -1:])[0]
            pos = t
        if process_last:
            outs.append(self.run_layers(self.embed(tokens[pos : pos + 1]), 0, end, pos))
        return torch.cat(outs, dim=1)

    # -- the two paths ----------------------------------------------------------
    def _run_eager(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> torch.Tensor:
        t = hidden.shape[1]
        pos = torch.arange(first_pos, first_pos + t, device=self.device)
        return self._layers(hidden, pos, start, end, first_pos + t, layer_forward, step_inputs, "sdpa")

    def _layers(self, x, pos, start: int, end: int, kv_len: int, layer_fn, prep_fn, attention: str,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """Layers ``[start, end)``; RoPE rows and masks computed once per step (per window size).

        ``pos`` is ``[T]`` for one sequence (cache row 0) or ``[b, T]``, sequence ``i``
        in cache row ``rows[i]`` (``rows=None``: row ``i``).
        """
        if pos.dim() == 1:
            pos = pos[None]
        shared: dict[int, tuple] = {}
        for layer in range(start, end):
            window = self.windows[layer]
            if window not in shared:
                shared[window] = prep_fn(pos, self.cos, self.sin, kv_len, window, self.args.groups)
            cos, sin, mask = shared[window]
            x = layer_fn(
                x, pos, self.layers[layer], self.cache.k[layer], self.cache.v[layer], cos, sin, mask,
                self.dims, attention, rows,
            )
        return x

    def _run_fixed(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> torch.Tensor:
        t = hidden.shape[1]
        tb = next_pow2(t)
        kv_len = self._kv_bucket(first_pos + t)
        x_in = self._static(self._x_in, tb)
        x_in[:, :t].copy_(hidden)
        self._pos_base.fill_(first_pos)

        def step() -> torch.Tensor:
            pos = self._pos_base + self._arange[:tb]
            return self._layers(x_in, pos, start, end, kv_len, self._layer_fn, self._prep_fn, self.attention)

        out = self._replay(("layers", start, end, tb, kv_len), step)
        return out[:, :t].clone()

    # -- helpers ----------------------------------------------------------------
    def _replay(self, key: tuple, step) -> torch.Tensor:
        """Run a fixed-shape step: as its captured CUDA graph where there are graphs, else directly."""
        return self._graphs.run(key, step) if self._graphs is not None else step()

    def _kv_bucket(self, kv_len: int) -> int:
        """The attention span a step covering positions ``[0, kv_len)`` reads."""
        return min(self.cache.slots, max(self.min_kv_bucket, next_pow2(kv_len)))

    def _static(self, buffers: dict[int, torch.Tensor], tb: int) -> torch.Tensor:
        buf = buffers.get(tb)
        if buf is None:
            buf = torch.zeros(1, tb, self.args.hidden_size, dtype=self.dtype, device=self.device)
            buffers[tb] = buf
        return buf

    def _check_range(self, start: int, end: int) -> None:
        if not 0 <= start < end <= self.num_layers:
            raise ValueError(f"layer range [{start}, {end}) must satisfy 0 <= start < end <= {self.num_layers}")

    def weight_bytes(self) -> int:
        """Bytes of weights one full forward reads (embedding row excluded, LM head included)."""
        total = sum(t.numel() * t.element_size() for lw in self.layers for t in lw if t is not None)
        head = [self.norm_weight, self.lm_head]
        return total + sum(t.numel() * t.element_size() for t in head)

    def num_graphs(self) -> int:
        return len(self._graphs) if self._graphs is not None else 0
