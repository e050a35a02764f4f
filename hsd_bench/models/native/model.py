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

import warnings

import torch
import torch.nn.functional as F

from hsd_bench.draft_stop import HostValue, stops_after, top_probability
from hsd_bench.models.native import add_norm, decode_attention, gemv, verdicts
from hsd_bench.models.native.args import NativeArgs, rope_tables
from hsd_bench.models.native.batched import RaggedSteps
from hsd_bench.models.native.cache import StaticKVCache
from hsd_bench.models.native.graphs import (MAX_GRAPH_TOKENS, GraphCache, RecordingGraphs, compile_fn,
                                             conditional_graphs_available, next_pow2)
from hsd_bench.models.native.inference import inference_only
from hsd_bench.models.native.layers import (
    Dims,
    LayerWeights,
    greedy_head_confidence,
    greedy_head_forward,
    head_forward,
    layer_forward,
    step_inputs,
)
from hsd_bench.models.native.token_row import shared_token_row
from hsd_bench.models.native.verdicts import compile_verdict_fn
from hsd_bench.views import PrefixViews

MIN_KV_BUCKET = 128
# Longest draft round greedy_draft chains on the device; longer ones go step by step.
MAX_FUSED_DRAFT = 64
# How far behind ``m + k`` a round launched after a verdict of ``k`` drafts at ``m`` may start (the
# drafting model's frontier): its first step then runs up to ``back + 1`` positions, padded to 4.
MAX_VERDICT_BACK = 3


PREFILL_MODES = ("auto", "eager", "chunked")
MATMUL_KERNELS = ("cublas", "gemv")  # layers.layer_forward's matmul
ATTENTION_KERNELS = ("sdpa", "math", "triton")  # layers.layer_forward's attn_impl of fixed-shape steps
# prefill="auto"'s cost model, measured on an H200 in bf16 (scripts/bench_prefill.py,
# docs/performance.md "Prefill"): an eager prefill costs about 0.6 ms of host time per layer
# whatever the model's size (5.6 M to 8B parameters, prompts of 32-1024 positions); a chunk of
# fixed-shape steps about 25 us of replay per layer plus one read of every weight at ~3.6 TB/s.
EAGER_PREFILL_S_PER_LAYER = 0.6e-3
CHUNK_S_PER_LAYER = 25e-6
CHUNK_WEIGHT_BYTES_PER_S = 3.6e12


def auto_prefill_chunk_limit(num_layers: int, weight_bytes: int) -> int:
    """How many fixed-shape chunks a prompt may take under ``prefill="auto"``: as many as the
    cost model fits in one eager pass (23 on the shipped 5.6 M model, 18 on the 294 M GPU
    model, 8 on the Llama-3.2-1B shape, 3 on the Llama-3.1-8B shape; measured crossovers about
    24, 15, 11 and 4).

    A rule, not a measurement at run time: a timed calibration chose differently from process to
    process, and since the two ways round differently in bf16, the same config then decoded
    different tokens (acceptance moved by up to 10 % between two runs of one config).
    """
    chunk_s = CHUNK_S_PER_LAYER * num_layers + weight_bytes / CHUNK_WEIGHT_BYTES_PER_S
    return int(EAGER_PREFILL_S_PER_LAYER * num_layers // chunk_s)


class NativeLlama(RaggedSteps):
    """A Llama / Qwen2 / Qwen3 / Mistral decoder with static KV caches (one or more cache rows)."""

    backend = "native"
    max_verdict_back = MAX_VERDICT_BACK  # what launch_draft_after_verdict's ``back`` may be (the engine asks)

    @inference_only  # its buffers are inference tensors: the per-round fills and copies skip two dispatch layers
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
        max_graph_tokens: int = MAX_GRAPH_TOKENS,
        min_kv_bucket: int = MIN_KV_BUCKET,
        attention: str = "triton",
        prefill: str = "auto",
        matmul: str = "gemv",
    ):
        if len(layers) != args.num_layers:
            raise ValueError(f"got {len(layers)} layer weights for a {args.num_layers}-layer config")
        if max_context < 2:
            raise ValueError(f"max_context={max_context} must be >= 2")
        if max_graph_tokens < 1 or max_graph_tokens & (max_graph_tokens - 1):
            raise ValueError(f"max_graph_tokens={max_graph_tokens} must be a power of two >= 1")
        if attention not in ATTENTION_KERNELS:
            raise ValueError(f"attention={attention!r} must be one of {', '.join(ATTENTION_KERNELS)}")
        if matmul not in MATMUL_KERNELS:
            raise ValueError(f"matmul={matmul!r} must be one of {', '.join(MATMUL_KERNELS)}")
        if prefill not in PREFILL_MODES:
            raise ValueError(f"prefill={prefill!r} must be one of {', '.join(PREFILL_MODES)}")
        # How a step longer than max_graph_tokens (a prompt) runs: "eager", one exact-shape pass
        # launched kernel by kernel; "chunked", the fixed-shape steps in chunks of
        # max_graph_tokens (CUDA-graph replays where there are graphs); "auto", chunked for a
        # prompt of at most prefill_chunk_limit chunks where there are graphs, eager beyond. On
        # an H200 eager costs about 0.6 ms of host time per layer whatever the model's size, and
        # its time moved most between processes; a chunk re-reads every weight, so the crossover
        # depends on the model (auto_prefill_chunk_limit, set below once the weights are
        # known); a limit of None: every long prompt runs eagerly.
        self.prefill = prefill
        # Attention kernel of the fixed-shape (decode/verify) steps. "math" lets inductor fuse
        # mask + softmax and was faster than "sdpa" on an H100 (Llama-1B shape: 695 vs 656 tok/s,
        # see docs/performance.md); long eager steps (prefill) always use SDPA's fused kernels.
        # "triton" (the default): a one-row step's RoPE, cache write and attention as one kernel
        # (decode_attention.py; steps of up to decode_attention.MAX_ROWS positions, 16 by default),
        # "math" for other steps and where the kernel does not apply: Llama-1B shape AR loop 1.09x
        # math, 8B 1.03x (H200, docs/gpu-runs.md "Twelfth run").
        self.attention = attention
        if attention == "triton" and decode_attention.register():
            decode_attention.counters(embed.device)  # before any capture: replays read this buffer
        # Projection kernel of the fixed-shape steps: "gemv", the one-pass Triton GEMV for one-row
        # steps (gemv.py; F.linear for more rows, float32, or where Triton is missing), measured 1.116x
        # cuBLAS on the Llama-1B shape's AR loop and 1.068x on the 8B's (H200, docs/gpu-runs.md
        # "Eleventh run"), with each residual add + RMSNorm as one kernel on rows up to
        # add_norm.MAX_HIDDEN wide; or "cublas" (F.linear). Long eager steps (prefill) always use F.linear.
        self.matmul = matmul
        if matmul == "gemv" and gemv.register():
            add_norm.register()
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
        # auto's cost model is of graph replays: without graphs it has nothing to choose
        self.prefill_chunk_limit: int | None = (
            auto_prefill_chunk_limit(args.num_layers, self.weight_bytes()) if prefill == "auto" and self.use_graphs
            else None)
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
        self._greedy_conf_fn = compile_fn(greedy_head_confidence) if self.compiled else greedy_head_confidence
        self._prep_fn = compile_fn(step_inputs) if self.compiled else step_inputs
        fused = compile_verdict_fn if self.compiled else (lambda fn: fn)
        self._advance_fn = fused(verdicts.advance_past_verdict)
        self._round_inputs_fn = fused(verdicts.round_inputs_from_verdict)
        self._place_token_fn = fused(verdicts.place_verifier_token)
        self._place_drafted_fn = fused(verdicts.place_drafted_token)
        self._pos_base = torch.zeros(1, dtype=torch.long, device=self.device)
        # Row of the last position a draft chain's first step processes (t0 - 1), on the
        # device, so a chain step's graph does not depend on how many positions came first.
        self._draft_last = torch.zeros(1, dtype=torch.long, device=self.device)
        # What the host last queued into each one-value input (_stage_scalar), where it knows it.
        self._staged: dict[str, int] = {}
        # After a verification from ids, the first position it leaves on the device for its verdict of
        # no accepted draft (its own first + 1), until the host learns the verdict (note_verdict).
        self._pos_after: int | None = None
        # One attention span for every fixed-shape step, set by prepare() for a run's longest
        # sequence: the whole shape set is then known, small, and captured before timing.
        self.fixed_span: int | None = None
        self._arange = torch.arange(self.max_graph_tokens or 1, dtype=torch.long, device=self.device)
        # Head steps pack the positions of every row of a batch: fixed-shape up to this many.
        self.max_head_tokens = self.max_graph_tokens
        # Static token ids of a verification that starts at layer 0 (run_layers_greedy from ids); past
        # max_graph_tokens, room for a hand-up's token placed beyond the rows a step reads (arm_hand_up).
        self._verify_ids = torch.zeros(2 * max(self.max_graph_tokens, 1) + 1, dtype=torch.long, device=self.device)
        # How many of those ids are drafts (t - 1): the step counts its verdict's accepted drafts among them.
        self._verify_k = torch.zeros(1, dtype=torch.long, device=self.device)
        self._h_in: dict[int, torch.Tensor] = {}  # padded T -> static head input
        self._graphs = GraphCache(self.device) if self.use_graphs else None
        # Static buffers of a fused greedy draft round (greedy_draft): the first step's
        # token ids, every step's argmax (and its top probability, for a stopping rule);
        # every processed position's hidden state goes to the store (_state_store).
        self._draft_ids = torch.zeros(max(self.max_graph_tokens, 1), dtype=torch.long, device=self.device)
        self._draft_tok = torch.zeros(MAX_FUSED_DRAFT, dtype=torch.long, device=self.device)
        self._draft_conf = torch.zeros(MAX_FUSED_DRAFT, dtype=torch.float32, device=self.device)
        # A round queued ahead by launch_draft_after_verdict, not yet taken: (end, count, process_last, tb),
        # and the static verdict it starts from (drafts then verifier tokens; the drafts' first position).
        self._launched: tuple[int, int, bool, int] | None = None
        # A round's inputs queued by queue_draft_inputs, not yet launched: (m, k, tb).
        self._inputs_queued: tuple[int, int, int] | None = None
        # A verifier's token run through layers [0, end) by queue_catch_up, not yet booked:
        # (end, m, k); its hidden state is in the store at depth end.
        self._caught_up: tuple[int, int, int] | None = None
        self._verdict_in = torch.zeros(2 * max(self.max_graph_tokens, 1) + 1, dtype=torch.long, device=self.device)
        self._prefix = PrefixViews()  # buf[:n] of the static buffers above and below, made once per n
        # The verdict of the level below a hand-up verified ahead (hand_up_input), and the next
        # verification's (k, at) once armed (arm_hand_up).
        self._hand_up_in = torch.zeros(2 * max(self.max_graph_tokens, 1) + 1, dtype=torch.long, device=self.device)
        self._hand_up_armed: tuple[int, int] | None = None
        self._verdict_m = torch.zeros(1, dtype=torch.long, device=self.device)
        # The device's token row (token_row.py): a draft chain writes its drafted tokens into it and a
        # verdict step its verifier's token, at their positions; long enough for the furthest a
        # padded step or a chain reaches past the context.
        self.token_row = shared_token_row(self.device, self.max_context + 2 * max(self.max_graph_tokens, 1)
                                          + MAX_FUSED_DRAFT + 1)
        # A guarded round (launch_draft_after_verdict's accepted_below) runs only where the verdict
        # accepts fewer drafts than this; the graphs of such rounds prepare() captured, by key.
        self._verdict_cap = torch.zeros(1, dtype=torch.long, device=self.device)
        self._guarded_keys: set[tuple] = set()
        # Hidden states by depth and position (_state_store): what the fused greedy steps read and write.
        self._states: dict[int, torch.Tensor] = {}

    def matmul_kernel(self) -> str:
        """What runs the projections of this model's one-row fixed-shape steps: ``gemv`` where the
        option asks for it and the kernel applies (CUDA, Triton, bfloat16/float16), else ``cublas``."""
        probe = torch.empty(1, 1, self.args.hidden_size, dtype=self.dtype, device=self.device)
        applies = self.fixed_shapes and gemv.kernel_applies(probe, self.layers[0].wqkv)
        return "gemv" if self.matmul == "gemv" and applies else "cublas"

    def attention_kernel(self) -> str:
        """What runs the attention of this model's one-row fixed-shape steps: ``triton`` where the
        option asks for it and the kernel applies (CUDA, Triton, bfloat16/float16, one sequence),
        else the ``math`` or ``sdpa`` attention of every other fixed-shape step."""
        probe = torch.empty(1, 1, self.args.num_heads, self.args.head_dim, dtype=self.dtype, device=self.device)
        applies = self.fixed_shapes and decode_attention.kernel_applies(probe, self.cache.k[0], None)
        if self.attention == "triton":
            return "triton" if applies else "math"
        return self.attention

    # -- LayeredModel ---------------------------------------------------------
    def reset(self) -> None:
        self.cache.reset()
        self._staged.clear()
        self._launched = self._inputs_queued = self._caught_up = self._hand_up_armed = self._pos_after = None

    def cache_len(self, layer: int, row: int = 0) -> int:
        return self.cache.row_lengths[row][layer]

    def truncate(self, start: int, end: int, length: int, rows: list[int] | None = None) -> None:
        self._check_range(start, end)
        for row in rows if rows is not None else (0,):
            self.cache.truncate(start, end, length, row)

    @inference_only
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(self.device, non_blocking=True).view(-1)
        return F.embedding(ids, self.embed_weight)[None]

    @inference_only
    def run_layers(self, hidden: torch.Tensor, start: int, end: int, first_pos, rows=None, lengths=None) -> torch.Tensor:
        self._pos_after = None  # a step since a verification from ids: its verdict's position is not the one noted
        if rows is not None:
            return self._run_rows(hidden, start, end, first_pos, rows, lengths)
        t = self._check_step(hidden, start, end, first_pos)
        if t <= self.max_graph_tokens:
            out = self._run_fixed(hidden, start, end, first_pos)
        elif self.fixed_shapes and self._prefills_in_chunks(t):
            c = self.max_graph_tokens
            out = torch.cat([self._run_fixed(hidden[:, i : i + c], start, end, first_pos + i) for i in range(0, t, c)],
                            dim=1)
        else:
            out = self._run_eager(hidden, start, end, first_pos)
        self.cache.advance(start, end, first_pos + t)
        return out

    def _check_step(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> int:
        """Validate a one-sequence step of layers ``[start, end)`` from ``first_pos``; its token count."""
        self._check_range(start, end)
        if hidden.dim() != 3 or hidden.shape[0] != 1 or hidden.shape[2] != self.args.hidden_size:
            raise ValueError(f"hidden must be [1, T, {self.args.hidden_size}], got {tuple(hidden.shape)}")
        return self._check_span(hidden.shape[1], start, end, first_pos)

    def _check_span(self, t: int, start: int, end: int, first_pos: int) -> int:
        """Validate ``t`` positions from ``first_pos`` for layers ``[start, end)``; returns ``t``."""
        if t < 1 or first_pos < 0 or first_pos + t > self.max_context:
            raise ValueError(
                f"positions [{first_pos}, {first_pos + t}) must lie in [0, max_context={self.max_context})"
            )
        self.cache.check_frontier(start, end, first_pos)
        return t

    @inference_only
    def run_layers_greedy(self, hidden: torch.Tensor, start: int, end: int, first_pos: int,
                          keep_hidden: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``run_layers`` and then ``greedy_tokens`` of its whole output, as one fixed-shape step.

        Why: a greedy verification is exactly this pair -- the verifying view's last segment on
        the new positions, then head and argmax on what it returned -- and as two steps it cost
        the host two replays and a copy of the hidden states into the head's input, and the
        device a graph boundary, per verification (docs/gpu-runs.md, "Sixteenth run"). One
        graph runs both on the same kernels (the head reads the layers' output where it read a
        copy of it), so the results are the pair's bit for bit. With graphs it runs where
        :meth:`prepare` captured that step (``verifying``), so a timed call never captures one;
        other steps run the pair.

        ``hidden``: the ``[1, T, D]`` states entering layer ``start``, or -- where ``start`` is 0 --
        the ``LongTensor[T]`` token ids themselves. From ids the embedding is part of the step: a
        verification by a model that does not draft (vanilla_sd's target, every model of the
        hierarchy above its draft) then costs the host one copy of its ids instead of an embed
        launch and a copy of its states (docs/gpu-runs.md, "Eighteenth run").

        On that step the tokens are the graph's own output, not a copy: read them before this
        model's next step (the engine packs them into the verdict at once). The step reads its
        input states from the store at depth ``start`` (:meth:`_state_store`; ``hidden`` is staged
        there by one copy unless it is that very slice, as the views this model returns are) and,
        below the last layer, writes its output to the store at depth ``end`` and returns a view of
        it. ``keep_hidden=False`` (a caller that has no use for the hidden states: nothing reads
        the last layer's output but the head) returns None for them instead of the last layer's
        copy. Each copy is a host launch per verification, on the path the device waits on.
        """
        self._pos_after = None  # only this call's own step may leave a verdict's position (note_verdict)
        from_ids = hidden.dim() == 1
        if from_ids:
            self._check_range(start, end)
            if start != 0 or hidden.dtype != torch.long:
                raise ValueError(f"run_layers_greedy from token ids needs start=0 and a LongTensor[T], got "
                                 f"start={start} and {hidden.dtype} of shape {tuple(hidden.shape)}")
        t = hidden.shape[0] if from_ids else hidden.shape[1]
        if self._greedy_step_fixed(t):
            if from_ids:
                self._check_span(t, start, end, first_pos)
            else:
                self._check_step(hidden, start, end, first_pos)
            tb = next_pow2(t)
            kv_len = self._kv_bucket(first_pos + t)
            armed, self._hand_up_armed = self._hand_up_armed, None
            if armed is not None:
                if not from_ids:
                    raise RuntimeError("a hand-up verification (arm_hand_up) runs from token ids")
                key = self._hand_up_key(end, tb, kv_len, *armed)
                build = lambda: self._hand_up_step(end, tb, kv_len, *armed)[1]  # noqa: E731
            else:
                key = self._layers_greedy_key(start, end, tb, kv_len, from_ids)
                build = lambda: self._layers_greedy_step(start, end, tb, kv_len, from_ids)[1]  # noqa: E731
            if self._graphs is None or key in self._graphs:
                if from_ids:
                    self._verify_ids[:t].copy_(hidden)
                    if armed is None:
                        self._stage_scalar("verify_k", self._verify_k, t - 1)
                else:
                    self._stage_states(start, first_pos, hidden)
                self._stage_position(first_pos)
                if self._graphs is None:
                    out, tokens = build()()
                else:
                    out, tokens = self._graphs.run(key, None)
                if from_ids and armed is None:
                    # the step moved its position on by its verdict (_layers_greedy_step)
                    self._staged.pop("pos", None)
                    self._pos_after = first_pos + 1
                self.cache.advance(start, end, first_pos + t)
                if not keep_hidden:
                    return None, tokens[:t]
                if self._stores_output(end):
                    return self._state_store(end)[:, first_pos : first_pos + t], tokens[:t]
                return out[:, :t].clone(), tokens[:t]
            if armed is not None:
                raise RuntimeError(f"a hand-up verification of {t} positions at {first_pos} on layers [0, {end}) "
                                   f"has no captured step (hand_up_ready said so)")
        if from_ids:
            hidden = self.embed(hidden)
        out = self.run_layers(hidden, start, end, first_pos)
        return (out if keep_hidden else None), self.greedy_tokens(out)

    def note_verdict(self, accepted: int) -> None:
        """The verdict of this model's last greedy verification from ids: ``accepted`` drafts.

        Why: that step moved its position on the device to where this model's next verification
        starts (its first position + ``accepted`` + 1, :meth:`_layers_greedy_step`); told the
        verdict, the host knows that value is staged and skips the fill (:meth:`_stage_scalar`) --
        one host launch per verification of vanilla_sd's target and of every level of a hierarchy
        above its draft. A no-op unless that verification is the last thing to have set the position."""
        if self._pos_after is not None:
            self._staged["pos"] = min(self._pos_after + accepted, self.max_context - 1)
            self._pos_after = None

    def hand_up_input(self, k: int) -> torch.Tensor:
        """The static ``LongTensor[2k + 1]`` the verdict of the level below is packed into (its ``k``
        drafts, then its ``k + 1`` argmax tokens) for a hand-up verified ahead (:meth:`arm_hand_up`)."""
        return self._prefix(self._hand_up_in, 2 * k + 1)

    def hand_up_ready(self, end: int, k: int, at: int, t: int, first_pos: int) -> bool:
        """Whether :meth:`arm_hand_up` ``(k, at)`` followed by a verification of ``t`` positions from
        ``first_pos`` on layers ``[0, end)`` (from ids) runs as one step -- with graphs, one that
        :meth:`prepare` captured (``hand_ups``), so a timed call never captures."""
        if not (self._greedy_step_fixed(t) and self._hand_up_fits(k, at) and next_pow2(t) > at
                and first_pos + t <= self.max_context):
            return False
        if self._graphs is None:
            return True
        return self._hand_up_key(end, next_pow2(t), self._kv_bucket(first_pos + t), k, at) in self._graphs

    def arm_hand_up(self, k: int, at: int) -> None:
        """Have the next verification from ids (:meth:`run_layers_greedy`) first place the verifier's
        token of the verdict in :meth:`hand_up_input` -- ``k`` drafts, ``a`` of them accepted, counted
        on the device -- at row ``at + a`` of its ids, in the same step.

        Why: a middle level of a hierarchy that hands up whatever its verdict says to this model
        knows every id of the hand-up before its verdict but the one at ``m + a``. Queued before the
        host reads that verdict, this verification costs the host one replay and the copies it
        always costs; the token's placement as separate launches cost more host time than reading
        the verdict first saved (docs/gpu-runs.md, "Twenty-first run"; as one step, 1.015x on a
        294 M target, "Twenty-second run")."""
        self._hand_up_armed = (k, at)

    def _hand_up_fits(self, k: int, at: int) -> bool:
        """A verdict of ``k`` drafts fits :meth:`hand_up_input`, and its token's row ``at + a`` the ids."""
        return 1 <= k and 2 * k + 1 <= self._hand_up_in.numel() and at + k < self._verify_ids.numel()

    @staticmethod
    def _hand_up_key(end: int, tb: int, kv_len: int, k: int, at: int) -> tuple:
        return ("hand-up", end, tb, kv_len, k, at)

    def _hand_up_step(self, end: int, tb: int, kv_len: int, k: int, at: int):
        """:meth:`_layers_greedy_step` from ids, after the verifier's token of the packed verdict is
        placed among them (:meth:`arm_hand_up`); idempotent, as a captured step must be."""
        _, verify = self._layers_greedy_step(0, end, tb, kv_len, True, advance=False)
        buf = self._hand_up_in

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            self._place_token_fn(buf, k, at, self._verify_ids)
            return verify()

        return self._hand_up_key(end, tb, kv_len, k, at), step

    def step_rows(self, t: int) -> int:
        """The rows a step of ``t`` positions runs at: a fixed-shape step pads them to a power of
        two (:meth:`run_layers_greedy`), so up to that many cost what ``t`` do. The engine sizes
        work it queues before knowing its exact length by it (``Engine._hand_up_plan``)."""
        return next_pow2(t) if self._greedy_step_fixed(t) else t

    def _greedy_step_fixed(self, t: int) -> bool:
        """Whether :meth:`run_layers_greedy` runs ``t`` positions as one fixed-shape step."""
        return self.fixed_shapes and 1 <= t <= min(self.max_graph_tokens, self.max_head_tokens)

    @inference_only
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.shape[1] > self.max_head_tokens:
            return head_forward(hidden, self.norm_weight, self.lm_head, self.args.rms_eps)
        return self._run_head("head", hidden)

    @inference_only
    def greedy_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """``argmax(logits(hidden))`` as ``LongTensor[T]``, head and argmax in one step."""
        if hidden.shape[1] > self.max_head_tokens:
            return self.logits(hidden).argmax(dim=-1)
        return self._run_head("greedy-head", hidden)

    def _run_head(self, kind: str, hidden: torch.Tensor) -> torch.Tensor:
        """A fixed-shape head step over padded rows, replayed as a graph where there are graphs."""
        t = hidden.shape[1]
        tb = next_pow2(t)
        self._static(self._h_in, tb)[:, :t].copy_(hidden)
        return self._replay(*self._head_step(kind, tb))[:t].clone()

    def _head_step(self, kind: str, tb: int):
        """``kind``: "head" (float32 logits) or "greedy-head" (head + argmax fused)."""
        h_in = self._static(self._h_in, tb)
        head_fn = self._head_fn if kind == "head" else self._greedy_head_fn

        def step() -> torch.Tensor:
            return head_fn(h_in, self.norm_weight, self.lm_head, self.args.rms_eps)

        return (kind, tb), step

    @inference_only
    def greedy_draft(
        self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int, process_last: bool = False,
        stop_below: float | None = None, launched: bool = False, keep_hidden: bool = True,
    ) -> torch.Tensor | None:
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

        With CUDA graphs every step reads its input token from the previous
        step's output on the device, so the host neither waits nor copies
        between steps: a round whose graph :meth:`prepare` captured (every
        step of it in one graph, :meth:`_chain`) costs one replay plus three
        small copies, any other ``count`` replays, where the step-by-step
        protocol (embed, run_layers, head, argmax, token write) costs about a
        dozen launches per token.

        ``stop_below`` (a draft_stop threshold): the round ends after the
        first token whose top probability (softmax at temperature 1) is below
        it, and every drafted token is processed (the last one too), so the
        returned hidden states cover ``[first, upto + drafted)`` and the
        number drafted is ``returned.shape[1] - (upto - first)``. Each step is
        then two replays, the head (token s and its top probability) and the
        layers on token s: the host reads token s's probability while the
        device runs those layers, so the device never waits for the decision
        and no step past the stop is computed (docs/engine.md).

        ``launched``: the round's replays were queued earlier by
        :meth:`launch_draft_after_verdict` (the engine's look-ahead, started before
        the verdict that fixes ``first`` reached the host); only the host's
        part is left -- the drafted tokens' copy into ``tokens``, the cache
        frontier, the hidden states.

        On the fused path the returned states are a view of the store at depth ``end``
        (:meth:`_state_store`), not a copy: valid until those positions are drafted again.
        ``keep_hidden=False`` (a fixed-count round of a model whose only view drafts: nothing
        reads its hidden states) returns None instead.
        """
        self._check_range(0, end)
        if not keep_hidden and stop_below is not None:
            raise ValueError("greedy_draft: a stopping round (stop_below) returns its hidden states, whose "
                             "count says how many tokens it drafted; keep_hidden=False needs stop_below=None")
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
        ahead, self._launched = self._launched, None
        if launched:
            if ahead is None or ahead[:3] != (end, count, process_last) or stop_below is not None or t0 > ahead[3]:
                raise RuntimeError(f"greedy_draft(launched=True) of {count} tokens on layers [0, {end}) "
                                   f"(process_last={process_last}, {t0} positions first) does not match the "
                                   f"round launched ahead: {ahead}")
            # The verdict step chose the round's start on the device; the host now knows it.
            self._staged.update(pos=first, draft_last=t0 - 1)
            self._pos_after = None
        elif not self._fuses_round(t0, count):
            out = self._greedy_draft_stepwise(tokens, first, upto, end, count, process_last, stop_below)
            return out if keep_hidden else None
        elif stop_below is not None:
            self._stage_round_inputs(tokens, first, upto)
            self._replay(*self._draft_first_step(end, next_pow2(t0), self._kv_bucket(upto), True))
            count = self._chain_until_unconfident(end, upto, count, stop_below)
            last = upto + count
        else:
            self._queue_round(tokens, first, upto, end, count, process_last)
        self._staged["verdict_m"] = upto  # the round's first step wrote it
        if not self.writes_into(tokens):  # else the chain wrote them there itself (_draft_head)
            tokens[upto : upto + count].copy_(self._prefix(self._draft_tok, count))
        self.cache.advance(0, end, last)
        return self._state_store(end)[:, first:last] if keep_hidden else None

    def writes_into(self, tokens: torch.Tensor) -> bool:
        """Whether ``tokens`` (a one-row token buffer, ``[L]`` or ``[1, L]``) is this model's token row,
        which its draft chains and verdict steps write into on the device (``token_row.py``): where
        it is, the host's copy of those tokens into ``tokens`` is left out."""
        return tokens.data_ptr() == self.token_row.data_ptr()

    def _fuses_round(self, t0: int, count: int) -> bool:
        """Whether a greedy round whose first step runs ``t0`` positions and drafts ``count`` tokens
        takes the fused path (fixed-shape steps chained on the device), not the stepwise one."""
        return self.fixed_shapes and t0 <= self.max_graph_tokens and count <= MAX_FUSED_DRAFT

    def _stage_round_inputs(self, tokens: torch.Tensor, first: int, upto: int) -> None:
        """A fused round's inputs: the ids of positions ``[first, upto)``, its first position and
        the row its head reads -- all device work, stream-ordered behind whatever wrote ``tokens``."""
        self._draft_ids[: upto - first].copy_(tokens[first:upto])
        self._stage_position(first)
        self._stage_scalar("draft_last", self._draft_last, upto - first - 1)

    def _queue_round(self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int,
                     process_last: bool) -> None:
        """A fixed-count fused round's device work: its inputs, then its chain."""
        self._stage_round_inputs(tokens, first, upto)
        self._chain(end, next_pow2(upto - first), upto, count, process_last)
        self._staged["verdict_m"] = upto  # the round's first step wrote it

    @inference_only
    def launch_next_round(self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int,
                          process_last: bool = False) -> bool:
        """Queue the greedy round :meth:`greedy_draft` would run next -- positions ``[first, upto)``
        first, ``count`` tokens -- before the host has read the tokens it starts from; True if
        queued. The caller finishes it with ``greedy_draft(..., launched=True)`` or forgets it
        (:meth:`discard_launched`): its cache writes lie past the frontier, where stale slots are
        masked and rewritten.

        Why: autoregressive decoding drafts its chunks with no verdict between them, so the next
        chunk's inputs are exactly the tokens the previous chunk wrote, already on the device (its
        copy into ``tokens`` is queued before this). Queued before the host reads that chunk and
        checks it for a stop, the device runs it while the host does, instead of waiting for the
        host's read, stop check and launch at every chunk boundary (docs/engine.md, "The next chunk
        in flight"). Only a round that takes the fused path, whose positions the cache holds up to
        ``first``."""
        t0 = upto - first
        last = upto + count - (0 if process_last else 1)
        if (self._launched is not None or t0 < 1 or count < 1 or not self._fuses_round(t0, count)
                or last > self.max_context or tokens.shape[0] < upto + count):
            return False
        self._check_range(0, end)
        self.cache.check_frontier(0, end, first)
        self._queue_round(tokens, first, upto, end, count, process_last)
        self._launched = (end, count, process_last, next_pow2(t0))
        return True

    def verdict_input(self, k: int) -> torch.Tensor | None:
        """The static ``LongTensor[2k + 1]`` a greedy verdict of ``k`` drafts is packed into (drafts,
        then the verifier's ``k + 1`` tokens) for :meth:`launch_draft_after_verdict`; None when
        ``k`` is past what a fixed-shape verification covers (``k + 1 > max_graph_tokens``)."""
        if not self.fixed_shapes or not 1 <= k < self.max_graph_tokens:
            return None
        return self._prefix(self._verdict_in, 2 * k + 1)

    @inference_only
    def queue_catch_up(self, m: int, k: int, end: int) -> bool:
        """Run the verifier's token of a packed verdict (:meth:`verdict_input`: ``k`` drafts at
        ``m``) through layers ``[0, end)`` at its position ``m + a``, both chosen on the device,
        before the host reads the verdict; True if queued. :meth:`finish_catch_up` books it.

        Why: a middle level of a self-speculative hierarchy (HiSpec) that hands up whatever its
        verdict says is verified next by a deeper view of this model, which needs that token's
        hidden state at the middle's exit first -- an embed and a replay per lower segment that
        the host used to issue only after reading the verdict, while the device waited
        (docs/engine.md, "The look-ahead draft"). Queued here, the device runs them while the host
        reads. One captured step after the verdict step, only where :meth:`prepare` captured it
        (``catch_ups``), so no timed call captures.
        """
        if not self._verdict_round_fits(m, k, 0):  # the verdict step alone: no drafted tokens
            return False
        self._check_range(0, end)
        key, step = self._catch_up_step(end, self._kv_bucket(m + k + 1))
        if self._graphs is not None and key not in self._graphs:
            return False
        self._queue_verdict_step(m, k, 0)
        self._replay(key, step)  # its hidden state goes to the store (_catch_up_step)
        self._caught_up = (end, m, k)
        return True

    def finish_catch_up(self, pos: int) -> torch.Tensor:
        """Book the token :meth:`queue_catch_up` ran, now that the host knows its position ``pos``
        (``m + a``): layers ``[0, end)`` hold ``pos + 1`` positions. Returns its hidden state at
        depth ``end``, ``[1, 1, D]``; the caller has rolled the range back to ``pos`` first."""
        queued, self._caught_up = self._caught_up, None
        if queued is None or not queued[1] <= pos <= queued[1] + queued[2]:
            raise RuntimeError(f"finish_catch_up at position {pos}: no catch-up queued for a verdict covering it "
                               f"(queued: {queued} as (end, m, k))")
        end = queued[0]
        self._staged.update(pos=pos, draft_last=0)  # what its verdict step chose on the device
        self._pos_after = None
        self.cache.check_frontier(0, end, pos)
        self.cache.advance(0, end, pos + 1)
        return self._state_store(end)[:, pos : pos + 1]

    def _catch_up_step(self, end: int, kv_len: int):
        """Layers ``[0, end)`` on the one token the verdict step put in ``_draft_ids`` at ``_pos_base``;
        its hidden state goes to the store at depth ``end``."""
        states = self._state_store(end)

        def step() -> torch.Tensor:
            x = F.embedding(self._draft_ids[:1], self.embed_weight)[None]
            pos = self._pos_base + self._arange[:1]
            out = self._layers(x, pos, 0, end, kv_len, self._layer_fn, self._prep_fn, self.attention,
                               matmul=self.matmul)
            states.index_copy_(1, pos, out)
            return out

        return ("catch-up", end, kv_len), step

    @inference_only
    def queue_draft_inputs(self, m: int, k: int, back: int, count: int) -> bool:
        """Queue only the first part of :meth:`launch_draft_after_verdict`: the step that turns the
        packed verdict into the next round's inputs, on the device; True if queued. The round itself
        is launched later with ``inputs_queued=True``, or never.

        Why: a middle level whose round is guarded (it continues only where ``a`` is below a bound)
        but has no guarded graph -- torch without CUDA conditional nodes -- must read its verdict
        before it launches the round. Queued before that read, this step runs while the host waits,
        so once the host knows the level continues the round is one replay away, instead of the
        round's bookkeeping and staging (docs/engine.md, "The look-ahead draft"). Where the level
        hands up instead, the inputs are left unused: every later step stages its own.
        """
        if not self._verdict_round_fits(m, k, count, back):
            return False
        self._queue_verdict_step(m, k, back)
        self._inputs_queued = (m, k, back)
        return True

    def _queue_verdict_step(self, m: int, k: int, back: int) -> None:
        """The verdict step of ``k`` drafts at ``m`` (:meth:`_verdict_step`) alone."""
        self._replay_after_verdict(m, *self._verdict_step(k, back))

    def _replay_after_verdict(self, m: int, key: tuple, step) -> None:
        """Replay a step that begins with the verdict step of drafts at ``m`` (``step`` None: one
        :meth:`prepare` captured). The verdict step rewrites the chain's inputs on the device: the
        host no longer knows the chain's start (:meth:`_stage_scalar`), and inputs queued for another
        round are gone."""
        self._stage_scalar("verdict_m", self._verdict_m, m)
        self._replay(key, step)
        self._staged.pop("pos", None)
        self._staged.pop("draft_last", None)
        self._inputs_queued = self._pos_after = None

    @inference_only
    def launch_draft_after_verdict(self, m: int, k: int, back: int, end: int, count: int,
                                   process_last: bool, accepted_below: int | None = None,
                                   inputs_queued: bool = False) -> bool:
        """Queue the greedy draft round that follows a verdict the host has not read; True if queued.

        The verdict -- ``k`` drafts at positions ``m ..`` and the verifier's ``k + 1`` tokens,
        packed in :meth:`verdict_input` -- accepts ``a`` drafts (counted on the device), so the
        next round starts at ``m + a`` with the verifier's token there; or, where this model's
        frontier stops ``back`` positions short of ``m + k`` (a separate draft: 1; a hierarchy's
        draft after its middle level accepted every draft and handed up: 2) and the verdict
        accepts past it, at that frontier, with the accepted drafts it has not run. One captured
        step turns the verdict into the chain's inputs (``_draft_ids``, ``_pos_base``,
        ``_draft_last``), then the chain's own steps run (the first over ``back + 1`` positions
        padded to a power of two -- the round the host would run after the verdict pads them
        alike; the span of ``m + k + 1``, an upper bound of the round's ``upto``): about as many
        launches as the round run after the verdict, so the host pays nothing for queueing it
        early. Once it has the verdict the caller finishes the round with
        ``greedy_draft(..., launched=True)`` or forgets it
        (:meth:`discard_launched`): its cache writes lie past the frontier, where stale slots are
        masked and rewritten (docs/engine.md, "The look-ahead draft").

        ``accepted_below`` guards the round: the device runs it only where ``a < accepted_below``
        (a middle level of a hierarchy that continues below its batch; where it hands up
        instead, the level above verifies next and a round drafted anyway would delay it). On
        CUDA graphs the whole round is one captured graph whose chain sits in a conditional node
        that the device evaluates; such a round is launched only where :meth:`prepare` captured
        its graph (``guarded``), so no timed call captures one. The caller takes the round only
        where ``a < accepted_below`` and discards it otherwise.

        ``inputs_queued``: :meth:`queue_draft_inputs` queued the verdict step of this verdict
        already (the host has read the verdict since and knows the round is needed): only the
        chain is left to launch.
        """
        queued, self._inputs_queued = self._inputs_queued, None
        if not self._verdict_round_fits(m, k, count, back):
            return False
        self._check_range(0, end)
        tb = next_pow2(back + 1)
        if inputs_queued:
            if queued != (m, k, back) or accepted_below is not None:
                raise RuntimeError(f"launch_draft_after_verdict(inputs_queued=True) at m={m} with k={k} "
                                   f"(back={back}, accepted_below={accepted_below}) does not match the "
                                   f"inputs queued: {queued} (m, k, back), unguarded")
            self._chain(end, tb, m + k + 1, count, process_last)
        elif accepted_below is not None:
            key = self._guarded_key(m + k + 1, k, back, end, count, process_last)
            if self._graphs is not None and key not in self._guarded_keys:
                return False
            self._stage_scalar("verdict_cap", self._verdict_cap, accepted_below)
            # with graphs captured by prepare(): a replay, no step to build
            step = None if self._graphs is not None else self._guarded_round_step(k, back, end, m + k + 1, count,
                                                                                   process_last)
            self._replay_after_verdict(m, key, step)
        else:
            key = self._verdict_round_key(m + k + 1, k, back, end, count, process_last)
            if self._graphs is not None and key in self._graphs:  # captured by prepare(): one replay
                self._replay_after_verdict(m, key, None)
            else:
                self._queue_verdict_step(m, k, back)
                self._chain(end, tb, m + k + 1, count, process_last)
        self._staged.pop("verdict_m", None)  # the round's first step writes its own start, chosen on the device
        self._launched = (end, count, process_last, tb)
        return True

    @property
    def guards_on_device(self) -> bool:
        """Whether a guarded round launched here is a CUDA conditional node, its guard evaluated by
        the device -- on captured CUDA graphs -- rather than read by the host inside the round
        (without graphs, or on the CPU stand-in). The engine counts such rounds
        (``guarded_rounds_on_device``) since a kernel trace reads launches holding them differently."""
        return isinstance(self._graphs, GraphCache)

    def launches_guarded(self, m: int, k: int, back: int, end: int, count: int, process_last: bool) -> bool:
        """Whether :meth:`launch_draft_after_verdict` with a guard would queue this round: on CUDA
        graphs only where :meth:`prepare` captured (and checked) its graph. The engine asks first,
        so that where it would not, the verdict is read the ordinary way at no extra cost."""
        if not self._verdict_round_fits(m, k, count, back):
            return False
        if self._graphs is None:
            return True
        return self._guarded_key(m + k + 1, k, back, end, count, process_last) in self._guarded_keys

    def _verdict_round_fits(self, m: int, k: int, count: int, back: int = 0) -> bool:
        """A round after a verdict of ``k`` drafts at ``m`` can be queued: its verdict fits a fixed-shape
        verification, its ``count`` tokens a fused chain, the context what it writes, and its first
        step the ``back`` positions it may start short of ``m + k``."""
        return (self.verdict_input(k) is not None and count <= MAX_FUSED_DRAFT and m + k + 1 + count <= self.max_context
                and 0 <= back <= min(k, self.max_verdict_back))  # k < max_graph_tokens: tb fits a graph

    def _guarded_key(self, upto: int, k: int, back: int, end: int, count: int, process_last: bool) -> tuple:
        """A guarded round's graph key: its shape and the one attention span of all its steps (a round
        whose steps would span two buckets gets a key no prepare() captures)."""
        first, last = self._kv_bucket(upto), self._kv_bucket(upto + count)
        return ("guarded", k, back, end, count, process_last, first if first == last else (first, last))

    def _verdict_round_key(self, upto: int, k: int, back: int, end: int, count: int, process_last: bool) -> tuple:
        """The graph key of an unguarded round launched after a verdict (:meth:`_verdict_round_step`)."""
        return ("verdict-round", *self._guarded_key(upto, k, back, end, count, process_last)[1:])

    def _verdict_round_step(self, k: int, back: int, end: int, upto: int, count: int, process_last: bool):
        """The verdict step and the fixed-count round it starts, as one step.

        Why: launched after a verdict that does not decide whether it runs (a top level's, or a
        middle level's that stays short of its batch whatever it accepts), the round was two
        replays, the verdict step's and the round's; as one graph it is one host launch fewer
        per round, on the path the device waits on. The same kernels in the same order, so the
        same results as the two."""
        _, verdict = self._verdict_step(k, back)
        _, chain = self._round_step(end, next_pow2(back + 1), upto, count, process_last)

        def step() -> torch.Tensor:
            accepted = verdict()
            chain()
            return accepted

        return self._verdict_round_key(upto, k, back, end, count, process_last), step

    def _guarded_round_step(self, k: int, back: int, end: int, upto: int, count: int, process_last: bool):
        """A round launched after a verdict, run only where the verdict accepts fewer than
        ``_verdict_cap`` drafts: the verdict step, then the chain inside a conditional node of the
        graphs (``if_node``: CUDA's, captured; the CPU stand-in reads the condition on the host);
        without graphs the host reads the condition and runs or skips it."""
        _, verdict = self._verdict_step(k, back)
        _, chain = self._round_step(end, next_pow2(back + 1), upto, count, process_last)

        def step() -> torch.Tensor:
            accepted = verdict()
            run = (accepted < self._verdict_cap)[0]
            if self._graphs is not None:
                self._graphs.if_node(run, chain)
            elif bool(run):
                chain()
            return accepted

        return step

    def _verdict_step(self, k: int, back: int):
        """The chain's inputs from a packed verdict, on the device (idempotent, as a captured step must
        be): the round starts at ``min(m + k - back, m + a)`` -- this model's frontier, or the
        verifier's token -- with the accepted drafts between them, then that token."""
        buf = self._verdict_in
        tb = next_pow2(back + 1)
        rows = self._prefix(self._arange, tb)

        def step() -> torch.Tensor:
            return self._round_inputs_fn(buf, k, back, rows, self._draft_ids, self._draft_last, self._pos_base,
                                         self._verdict_m, self.token_row)

        return ("verdict", k, back), step

    def discard_launched(self) -> None:
        """Forget a round queued by :meth:`launch_draft_after_verdict` that the engine will not use."""
        self._launched = None

    def _chain(self, end: int, tb: int, upto: int, count: int, process_last: bool) -> None:
        """A fixed-count greedy round (:meth:`_chain_steps`): one replay of the whole round's graph
        where :meth:`prepare` captured it, else one replay per step.

        Why one graph: every step of such a round reads its inputs from the step before it on the
        device, so nothing the host does between them changes what they compute. Replayed step by
        step, each costs the host a replay and building its step, which on the small models, where
        the host is what a round waits for, is time the round waits (hispec 1.02x as one graph,
        docs/gpu-runs.md "Fifteenth run"). The round's graph records the same kernels in the
        same order, so its results are the steps' bit for bit."""
        if self._graphs is not None:
            key = self._round_key(end, tb, upto, count, process_last)
            if key in self._graphs:
                self._graphs.run(key, None)
                return
        for key, step in self._chain_steps(end, tb, upto, count, process_last):
            self._replay(key, step)

    def _round_key(self, end: int, tb: int, upto: int, count: int, process_last: bool) -> tuple:
        """A fixed-count round's graph key: its shape and the one attention span of all its steps
        (a round whose steps would span two buckets gets a key no prepare() captures)."""
        first = self._kv_bucket(upto)
        last = self._kv_bucket(upto + count - (0 if process_last else 1))  # the span of its last step
        return ("draft-round", end, tb, count, process_last, first if first == last else (first, last))

    def _round_step(self, end: int, tb: int, upto: int, count: int, process_last: bool):
        """The steps of a fixed-count round as one step, for capture: the round's own graph
        (:meth:`_chain`), or inside a guarded round's conditional node (:meth:`_guarded_round_step`)."""
        chain = self._chain_steps(end, tb, upto, count, process_last)

        def step() -> torch.Tensor:
            for _, fn in chain:
                out = fn()
            return out

        return self._round_key(end, tb, upto, count, process_last), step

    def _chain_steps(self, end: int, tb: int, upto: int, count: int, process_last: bool) -> list:
        """The steps of a fixed-count greedy round: the first over ``tb`` padded positions, then one
        per further token (and the layers-only tail step with ``process_last``)."""
        steps = [self._draft_first_step(end, tb, self._kv_bucket(upto), False)]
        for i in range(1, count + (1 if process_last else 0)):
            head = i < count  # the tail step (process_last) only runs the layers
            steps.append(self._draft_next_step(end, i, head, self._kv_bucket(upto + i)))
        return steps

    def _chain_until_unconfident(self, end: int, upto: int, count: int, stop_below: float) -> int:
        """Steps 1.. of a stopping round (token 0 is drafted): per token s, the layers on it,
        then -- unless s ends the draft -- the head that drafts token s + 1. Returns how many."""
        for s in range(count):
            confidence = HostValue(self._draft_conf[s : s + 1]) if s + 1 < count else None
            self._replay(*self._draft_next_step(end, s + 1, False, self._kv_bucket(upto + s + 1)))
            if confidence is None or stops_after(confidence.get()[0], stop_below):
                return s + 1
            self._replay(*self._draft_head_step(end, s + 1))
        return count

    def _draft_first_step(self, end: int, tb: int, kv_len: int, confidence: bool = False):
        """The first step of a chain over ``tb`` (padded) positions from ``_pos_base``; its head
        reads row ``_draft_last``, so one graph serves every real count up to ``tb``."""
        states = self._state_store(end)

        def step() -> torch.Tensor:
            x = F.embedding(self._draft_ids[:tb], self.embed_weight)[None]
            pos = self._pos_base + self._arange[:tb]
            out = self._layers(x, pos, 0, end, kv_len, self._layer_fn, self._prep_fn, self.attention,
                               matmul=self.matmul)
            # rows past the real ones lie past the frontier: later steps overwrite them or nothing reads them
            states.index_copy_(1, pos, out)
            # The round's first drafted position: where the verdict on its drafts starts (_stage_scalar).
            torch.add(pos.index_select(0, self._draft_last), 1, out=self._verdict_m)
            return self._draft_head(out.index_select(1, self._draft_last), 0, confidence)

        return ("draft-first", end, tb, kv_len, confidence), step

    def _draft_next_step(self, end: int, i: int, head: bool, kv_len: int):
        """Step ``i`` of a chain: the token drafted by step ``i - 1`` through the layers, then
        (``head``) the argmax that becomes drafted token ``i``. Its row is ``_draft_last + i``
        and its position ``_pos_base`` + that row, both read on the device."""
        states = self._state_store(end)

        def step() -> torch.Tensor:
            x = F.embedding(self._draft_tok[i - 1 : i], self.embed_weight)[None]
            pos = self._pos_base + self._draft_last + i
            out = self._layers(x, pos, 0, end, kv_len, self._layer_fn, self._prep_fn, self.attention,
                               matmul=self.matmul)
            states.index_copy_(1, pos, out)
            return self._draft_head(out, i, False) if head else out

        return ("draft-next", end, i, head, kv_len), step

    def _draft_head_step(self, end: int, i: int):
        """The head alone on the hidden state of chain step ``i - 1`` (row ``_draft_last + i``) at
        depth ``end``: drafted token ``i`` and its top probability."""
        states = self._state_store(end)

        def step() -> torch.Tensor:
            return self._draft_head(states.index_select(1, self._pos_base + self._draft_last + i), i, True)

        return ("draft-head", end, i), step

    def _draft_head(self, hidden: torch.Tensor, i: int, confidence: bool) -> torch.Tensor:
        """Drafted token ``i`` from one hidden state (and, with ``confidence``, its top probability)."""
        if confidence:
            tok, conf = self._greedy_conf_fn(hidden, self.norm_weight, self.lm_head, self.args.rms_eps)
            self._draft_conf[i : i + 1].copy_(conf)
        else:
            tok = self._greedy_head_fn(hidden, self.norm_weight, self.lm_head, self.args.rms_eps)
        # and into the token row at its position (_verdict_m: the round's first drafted one, which the
        # chain's first step wrote)
        self._place_drafted_fn(tok, i, self._draft_tok, self.token_row, self._verdict_m)
        return tok

    def _greedy_draft_stepwise(
        self, tokens: torch.Tensor, first: int, upto: int, end: int, count: int, process_last: bool,
        stop_below: float | None = None,
    ) -> torch.Tensor:
        """The same round through run_layers / logits (exact shapes on the eager path)."""
        outs = [self.run_layers(self.embed(tokens[first:upto]), 0, end, first)]
        for t in range(upto, upto + count):
            head_in = outs[-1][:, -1:]
            confidence = None
            if stop_below is None:
                tokens[t] = self.greedy_tokens(head_in)[0]
            else:
                logits = self.logits(head_in)
                tokens[t] = logits[0].argmax()
                confidence = HostValue(top_probability(logits[0], logits=True))
            done = t + 1 == upto + count
            if not done or process_last or confidence is not None:
                outs.append(self.run_layers(self.embed(tokens[t : t + 1]), 0, end, t))
            if done or (confidence is not None and stops_after(confidence.get()[0], stop_below)):
                break
        return torch.cat(outs, dim=1)

    # -- the two paths ----------------------------------------------------------
    def _run_eager(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> torch.Tensor:
        t = hidden.shape[1]
        pos = torch.arange(first_pos, first_pos + t, device=self.device)
        return self._layers(hidden, pos, start, end, first_pos + t, layer_forward, step_inputs, "sdpa")

    def _layers(self, x, pos, start: int, end: int, kv_len: int, layer_fn, prep_fn, attention: str,
                rows: torch.Tensor | None = None, matmul: str = "cublas") -> torch.Tensor:
        """Layers ``[start, end)``; RoPE rows and masks computed once per step (per window size).

        ``pos`` is ``[T]`` for one sequence (cache row 0) or ``[b, T]``, sequence ``i``
        in cache row ``rows[i]`` (``rows=None``: row ``i``).
        """
        if pos.dim() == 1:
            pos = pos[None]
        shared: dict[int, tuple] = {}
        # Each layer hands on its output as (x, delta) and the next adds them inside its first
        # norm's kernel (layer_forward); the range's last sum is the one add taken here.
        delta = torch.zeros_like(x)
        for layer in range(start, end):
            window = self.windows[layer]
            if window not in shared:
                shared[window] = prep_fn(pos, self.cos, self.sin, kv_len, window, self.args.groups)
            cos, sin, mask = shared[window]
            x, delta = layer_fn(
                x, delta, pos, self.layers[layer], self.cache.k[layer], self.cache.v[layer], cos, sin, mask,
                self.dims, attention, rows, matmul, window,
            )
        return x + delta

    def _run_fixed(self, hidden: torch.Tensor, start: int, end: int, first_pos: int) -> torch.Tensor:
        """Layers ``[start, end)`` on ``hidden`` as one fixed-shape step, by way of the hidden-state
        store as the fused greedy steps: the input is staged into the store at depth ``start``
        (nothing to do where it is already that slice, as a view this model returned is), and below
        the last layer the output stays in the store at depth ``end`` and a view of it is returned.

        Why: a HiSpec verification whose lower segments have not seen the verifier's token yet
        runs them here first, one position each, and a copy in and a clone out per segment were
        three of the host's launches per such catch-up (docs/gpu-runs.md, "Twenty-eighth
        run"). The views stay valid as long as the store's (:meth:`_state_store`)."""
        t = hidden.shape[1]
        tb = next_pow2(t)
        self._stage_states(start, first_pos, hidden)
        self._stage_position(first_pos)
        out = self._replay(*self._layers_step(start, end, tb, self._kv_bucket(first_pos + t)))
        if self._stores_output(end):
            return self._state_store(end)[:, first_pos : first_pos + t]
        return out[:, :t].clone()

    def _layers_step(self, start: int, end: int, tb: int, kv_len: int):
        """Layers ``[start, end)`` on the stored states at depth ``start`` of the step's positions
        (:meth:`run_layers`); below the model's last layer the output goes to the store at depth
        ``end`` too."""
        return ("layers", start, end, tb, kv_len), self._stored_layers(start, end, tb, kv_len, False)

    def _stored_layers(self, start: int, end: int, tb: int, kv_len: int, from_ids: bool):
        """The part of every layer step by way of the store (:meth:`_layers_step`,
        :meth:`_layers_greedy_step`): layers ``[start, end)`` at the step's positions on the stored
        states at depth ``start``, or (``from_ids``) on the embedding of the static verification ids,
        and below the model's last layer their output written to the store at depth ``end``."""
        ids = self._verify_ids[:tb] if from_ids else None
        states_in = None if from_ids else self._state_store(start)
        states_out = self._state_store(end) if self._stores_output(end) else None
        rows = self._arange[:tb]

        def layers() -> torch.Tensor:
            pos = self._pos_base + rows
            x = F.embedding(ids, self.embed_weight)[None] if from_ids else states_in.index_select(1, pos)
            out = self._layers(x, pos, start, end, kv_len, self._layer_fn, self._prep_fn, self.attention,
                               matmul=self.matmul)
            if states_out is not None:
                states_out.index_copy_(1, pos, out)
            return out

        return layers

    @staticmethod
    def _layers_greedy_key(start: int, end: int, tb: int, kv_len: int, from_ids: bool) -> tuple:
        """The graph key of :meth:`_layers_greedy_step`, which :meth:`run_layers_greedy` looks up
        without building the step."""
        return ("ids-greedy" if from_ids else "layers-greedy", start, end, tb, kv_len)

    def _layers_greedy_step(self, start: int, end: int, tb: int, kv_len: int, from_ids: bool,
                            advance: bool | None = None):
        """Layers ``[start, end)`` on the stored states at depth ``start`` of the step's positions, or
        (``from_ids``, ``start`` 0) on the embedding of the static verification ids, then the greedy
        head on their output (:meth:`run_layers_greedy`); below the model's last layer the output
        goes to the store at depth ``end`` too. From ids it then moves the position on by its
        verdict (:meth:`note_verdict`), unless ``advance`` is False (a hand-up's step, whose drafts
        are not counted by ``_verify_k``)."""
        advance = from_ids if advance is None else advance
        layers = self._stored_layers(start, end, tb, kv_len, from_ids)
        ids = self._verify_ids[:tb]
        last = self.max_context - 1

        def step() -> tuple[torch.Tensor, torch.Tensor]:
            out = layers()
            tokens = self._greedy_head_fn(out, self.norm_weight, self.lm_head, self.args.rms_eps)
            if advance:
                # The next verification of this model starts at the verifier's token: this one's
                # first position + its accepted drafts + 1 (note_verdict). Moved here, on the device,
                # that position costs the host no fill when the verdict confirms it. Clamped into
                # the context, so that steps replayed before any real one stay in range.
                # Its drafts are the first _verify_k of ids[1:]: the leading matches, capped there.
                self._advance_fn(self._pos_base, ids, tokens, self._verify_k, last)
            return out, tokens

        return self._layers_greedy_key(start, end, tb, kv_len, from_ids), step

    # -- helpers ----------------------------------------------------------------
    def _replay(self, key: tuple, step) -> torch.Tensor:
        """Run a fixed-shape step: as its captured CUDA graph where there are graphs, else directly."""
        return self._graphs.run(key, step) if self._graphs is not None else step()

    def _state_store(self, depth: int) -> torch.Tensor:
        """The hidden states at depth ``depth`` by position, ``[1, slots, D]``: the store the fused
        greedy steps (draft rounds, verifications, catch-ups) write their output to, and a
        verification from hidden states reads its input from.

        Why: a step's static output is rewritten by its graph's next replay, so it cost a clone per
        step to keep, then a copy into the next step's static input -- and, where the engine's
        pending states came from several steps, a ``torch.cat`` first: about four host launches
        per HiSpec token, on the path the device waits on (docs/gpu-runs.md, "Twenty-seventh
        run"). Written by position, a state stays where it is until that position is run again at
        that depth, which the engine does only after forgetting it (a rejection truncates both). So
        the steps return views of the store, the engine's pending states of consecutive positions
        are one view (``engine.gather``), and a verification whose input is that view reads it in
        its graph, at no host cost. Rows a padded step writes past its real ones lie past that
        depth's frontier, where no pending state is. Allocated when a step is first built, which
        is before its capture (zeros: a padded row never reads uninitialised memory)."""
        states = self._states.get(depth)
        if states is None:
            if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                raise RuntimeError(f"the hidden-state store at depth {depth} must exist before a capture uses it")
            states = torch.zeros(1, self.cache.slots, self.args.hidden_size, dtype=self.dtype, device=self.device)
            self._states[depth] = states
        return states

    def _stores_output(self, end: int) -> bool:
        """Whether a verification of layers ``[.., end)`` keeps its output in the store: below the last
        layer, where a deeper segment may read it; the last layer's states only a caller that asks
        for them gets (a copy)."""
        return end < self.num_layers

    def _stage_states(self, depth: int, first_pos: int, hidden: torch.Tensor) -> None:
        """Make the store at ``depth`` hold ``hidden`` (``[1, T, D]``) at positions ``first_pos ..``:
        nothing to do where ``hidden`` is that very slice (a view the steps returned), else one copy."""
        states = self._state_store(depth)
        row = states.stride(1)
        if hidden.data_ptr() != states.data_ptr() + first_pos * row * states.element_size() or hidden.stride(1) != row:
            states[:, first_pos : first_pos + hidden.shape[1]].copy_(hidden)

    def _stage_position(self, first_pos: int) -> None:
        """A step's first position, staged by the host: it overwrites what a verdict step wrote,
        so a round's inputs queued by :meth:`queue_draft_inputs` are no longer there to launch."""
        self._stage_scalar("pos", self._pos_base, first_pos)
        self._inputs_queued = self._pos_after = None

    def _stage_scalar(self, name: str, buf: torch.Tensor, value: int) -> None:
        """``buf.fill_(value)``, unless the host knows the device holds ``value`` there already.

        Why: each fill is a host launch, and a step's first position is most often where the step
        before it left it -- a middle level's verification starts where the round launched ahead
        of its verdict started, a position the verdict step wrote on the device and the host learns
        with the verdict (:meth:`greedy_draft`, :meth:`finish_catch_up`). Every write the host
        cannot see forgets the value (:meth:`_replay_after_verdict`; :meth:`reset`, which
        :meth:`prepare` ends with), so a skipped fill is always one whose value is already queued."""
        if self._staged.get(name) != value:
            buf.fill_(value)
            self._staged[name] = value

    def _kv_bucket(self, kv_len: int) -> int:
        """The attention span a step covering positions ``[0, kv_len)`` reads."""
        if self.fixed_span is not None and kv_len <= self.fixed_span:
            return self.fixed_span
        return min(self.cache.slots, max(self.min_kv_bucket, next_pow2(kv_len)))

    # -- before timing --------------------------------------------------------------
    @inference_only
    def prepare(
        self,
        max_len: int,
        ranges: list[tuple[int, int]],
        heads: tuple[str, ...] = ("head", "greedy-head"),
        chains: list[tuple[int, int, bool, bool]] = (),
        guarded: tuple[int, ...] = (),
        verifying: list[tuple[int, int]] = (),
        catch_ups: tuple[int, ...] = (),
        hand_ups: tuple[tuple[int, int, int], ...] = (),
        verdict_rounds: tuple[int, ...] = (),
    ) -> int:
        """Compile and capture every fixed-shape step a run can reach, before it is timed.

        A run whose sequences never exceed ``max_len`` positions gets one
        attention span (``max_len`` rounded up to 64 slots) for every step, so
        its whole shape set is: each layer range in ``ranges`` (``(start, end)``,
        the engine's segments) and each head ``kind`` at every padded token
        count, each range in ``verifying`` followed by the greedy head at every padded token
        count (:meth:`run_layers_greedy`; a range from layer 0 from token ids), plus the steps
        of greedy draft chains ``(end, count, process_last, stopping)`` (``greedy_draft``;
        ``stopping``: a draft_stop round, whose steps split into layers and a confidence head)
        and, with graphs, each fixed-count chain's whole round as one graph (:meth:`_chain`), and for each verdict size
        ``k`` in ``guarded`` the guarded rounds of those chains (``launch_draft_after_verdict``'s
        ``accepted_below``: one graph each, where CUDA conditional nodes are available -- a round
        whose graph is not captured here is never launched guarded), for each verdict size ``k`` in
        ``verdict_rounds`` the unguarded rounds of those chains after such a verdict, with its verdict
        step, as one graph each (:meth:`_verdict_round_step`), and for each depth in
        ``catch_ups`` the one-token run of layers ``[0, depth)`` from a verdict
        (:meth:`queue_catch_up`), and for each ``(end, k, at)`` in ``hand_ups`` the verification of
        layers ``[0, end)`` that places a packed verdict's token first (:meth:`arm_hand_up`) at every
        padded token count past ``at``. Each is compiled and captured here
        (inputs are zeros at position 0: every slot a capture writes is
        rewritten by its real token before any query reads it). Returns how
        many graphs this captured; :attr:`graph_captures` counts all of them,
        so a caller can check that none happens while it times.
        """
        if not self.fixed_shapes:
            return 0
        if max_len < 1:
            raise ValueError(f"prepare: max_len={max_len} must be >= 1")
        self.fixed_span = min(self.cache.slots, -(-max_len // 64) * 64)
        before = self.graph_captures
        self._pos_base.zero_()
        self._draft_last.zero_()
        self._draft_ids.zero_()
        self._draft_tok.zero_()
        span = self.fixed_span
        sizes = [1 << k for k in range(self.max_graph_tokens.bit_length())]
        steps = [self._layers_step(a, b, tb, span) for a, b in sorted(set(ranges)) for tb in sizes]
        steps += [self._head_step(kind, tb) for kind in heads for tb in sizes]
        steps += [self._layers_greedy_step(a, b, tb, span, a == 0) for a, b in sorted(set(verifying)) for tb in sizes]
        for end, count, process_last, stopping in sorted(set(chains)):
            if count > MAX_FUSED_DRAFT:
                continue  # such rounds go step by step (the layer and head steps above)
            steps += [self._draft_first_step(end, tb, span, stopping) for tb in sizes]
            if stopping:  # per token: the layers on it, then the confidence head for the next
                steps += [self._draft_next_step(end, i, False, span) for i in range(1, count + 1)]
                steps += [self._draft_head_step(end, i) for i in range(1, count)]
                continue
            steps += [self._draft_next_step(end, i, True, span) for i in range(1, count)]
            if process_last:
                steps += [self._draft_next_step(end, i, False, span) for i in range(1, count + 1)]
            if self._graphs is not None:  # the whole round as one graph (_chain); a span of 1 is the fixed one
                steps += [self._round_step(end, tb, 1, count, process_last) for tb in sizes]
                steps += [self._verdict_round_step(k, back, end, 1, count, process_last)
                          for k in sorted({k for k in verdict_rounds if 1 <= k < self.max_graph_tokens})
                          for back in range(min(k, self.max_verdict_back) + 1)]
        if catch_ups or any(count <= MAX_FUSED_DRAFT and not stopping for _, count, _, stopping in chains):
            # a round launched after a verdict of k drafts (the engine's look-ahead), or a catch-up: its inputs' step
            steps += [self._verdict_step(k, back) for k in range(1, self.max_graph_tokens)
                      for back in range(min(k, self.max_verdict_back) + 1)]
        steps += [self._catch_up_step(end, span) for end in sorted(set(catch_ups))]
        steps += [self._hand_up_step(end, tb, span, k, at) for end, k, at in sorted(set(hand_ups))
                  if self._hand_up_fits(k, at) for tb in sizes if tb > at]
        for key, step in steps:
            self._zero_step_inputs()
            self._replay(key, step)
        self._prepare_guarded(chains, guarded)
        self._zero_step_inputs()  # a run starts from the same zeros every time
        self.reset()
        return self.graph_captures - before

    def _zero_step_inputs(self) -> None:
        """Every static input a step reads, zeroed: before each step :meth:`prepare` runs, so that
        each runs from position 0, as its docstring promises.

        Why before each: a verdict step starts its round at the verdict's position plus the drafts
        it accepts (all of them, on zeros), and the round's first step writes the next verdict's
        position past its own -- run one after another, the prepared steps' positions crept up by
        about ``k + 1`` per verdict round and, with many of them (the guarded rounds of a torch
        with CUDA conditional nodes), past the model's context: positions beyond its RoPE table
        and state store, an index error on a CPU and an out-of-bounds access on a GPU. A capture
        runs its step twice (warm-up, then a replay), so each stays within two rounds of 0."""
        for buf in (self._pos_base, self._draft_last, self._draft_ids, self._draft_tok, self._verdict_in,
                    self._verdict_m, self._verdict_cap, self._hand_up_in, self._verify_ids):
            buf.zero_()

    def _prepare_guarded(self, chains, guarded: tuple[int, ...]) -> None:
        """Capture the guarded rounds (see :meth:`prepare`) and check that the device both runs and
        skips one; where it does not, or the capture fails, no round is launched guarded (a
        warning says why). Without conditional nodes (torch before 2.12) there are none."""
        if self._graphs is not None and not self._graphs_hold_conditional_nodes():
            return
        keys = []
        try:
            for end, count, process_last, stopping in sorted(set(chains)):
                if stopping or count > MAX_FUSED_DRAFT:
                    continue
                for k in sorted({k for k in guarded if 1 <= k < self.max_graph_tokens}):
                    for back in (0, 1):  # a separate draft's frontier: where a middle level's round starts
                        key = self._guarded_key(1, k, back, end, count, process_last)
                        self._zero_step_inputs()
                        self._replay(key, self._guarded_round_step(k, back, end, 1, count, process_last))
                        keys.append(key)
                        self._guarded_keys.add(key)
            verdict = self._guard_check(keys[0]) if keys and self._graphs is not None else "runs and skips"
        except RuntimeError as err:
            verdict = f"their capture failed: {err}"
        if verdict != "runs and skips":
            self._guarded_keys.difference_update(keys)
            warnings.warn(f"{self.name}: guarded look-ahead rounds are off ({verdict}); such rounds wait for "
                          "their verdict", RuntimeWarning, stacklevel=3)

    def _graphs_hold_conditional_nodes(self) -> bool:
        """Whether this model's graphs can hold a guarded round's conditional node: CUDA graphs where
        this torch captures one, the CPU stand-in where it stands in for such graphs. The CUDA case
        asks this module's ``conditional_graphs_available``, the one name the device A/B scripts
        replace to turn the guarded rounds off (``results/gpu_run34/guarded_off.py``)."""
        if isinstance(self._graphs, RecordingGraphs):
            return self._graphs.conditional_nodes
        return conditional_graphs_available()

    def _guard_check(self, key: tuple) -> str:
        """"runs and skips" where a captured guarded round (``key``, :meth:`_guarded_key`) drafts
        under its bound and leaves its outputs untouched at it -- else what it did."""
        k = key[1]
        seen = []
        for below in (k + 1, k):
            self._zero_step_inputs()  # k drafts equal to the verifier's tokens (every one accepted), at 0
            self._draft_tok.fill_(-1)
            self._verdict_cap.fill_(below)
            self._graphs.run(key, None)
            seen.append(self._draft_tok[0].item() >= 0)  # the chain's first step drafts token 0
        return {(True, False): "runs and skips", (True, True): "a conditional CUDA graph never skips"}.get(
            tuple(seen), "a conditional CUDA graph never runs")

    @property
    def graph_captures(self) -> int:
        """CUDA graphs captured so far (0 without graphs)."""
        return self._graphs.captures if self._graphs is not None else 0

    def _static(self, buffers: dict[int, torch.Tensor], tb: int) -> torch.Tensor:
        buf = buffers.get(tb)
        if buf is None:
            buf = torch.zeros(1, tb, self.args.hidden_size, dtype=self.dtype, device=self.device)
            buffers[tb] = buf
        return buf

    def _prefills_in_chunks(self, t: int) -> bool:
        """Whether a ``t``-position step runs as fixed-shape chunks (see ``prefill``)."""
        if self.prefill == "chunked":
            return True
        limit = self.prefill_chunk_limit
        return self.prefill == "auto" and limit is not None and -(-t // self.max_graph_tokens) <= limit

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
