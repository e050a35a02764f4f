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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from hsd_bench.draft_stop import HostValue, first_stop, stops_after, top_probability
from hsd_bench.models.base import LayeredModel
from hsd_bench.sampling import DecodingConfig, sample, warp
from hsd_bench.verify import VerificationRule, greedy_accept

__all__ = ["DecodingConfig", "Engine", "Generation", "GenerationStats", "Level", "ModelState"]


class ModelState:
    """Frontiers, caches and boundary hidden states of one model shared by its views.

    The model's layers are cut into segments at the exit layers its views
    use. Each segment has a *frontier* (how many positions it has processed);
    shallower frontiers are at or ahead of deeper ones. ``pending[b]`` holds
    the hidden states at depth ``b`` for positions the segment starting at
    ``b`` has not processed yet, so a deeper view continues from them instead
    of re-running the shallow layers (LayerSkip's exit query cache, HiSpec's
    hidden-state reuse).
    """

    def __init__(self, model: LayeredModel, exits: list[int]):
        self.model = model
        self.bounds = sorted(set(exits))
        if self.bounds[-1] > model.num_layers or self.bounds[0] < 1:
            raise ValueError(f"{model.name}: exits {self.bounds} outside 1..{model.num_layers}")
        self.starts = [0] + self.bounds[:-1]
        self.reset()

    def reset(self) -> None:
        self.model.reset()
        self.frontier = [0] * len(self.bounds)
        self.pending: dict[int, tuple[int, torch.Tensor | None]] = {b: (0, None) for b in self.bounds}
        self.layer_evals = 0
        self.head_evals = 0

    def hidden(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        """Hidden states at depth ``exit_layer`` for positions ``[need_from, upto)``,
        running only the layer segments that have not seen those positions."""
        last = self.bounds.index(exit_layer)
        for j in range(last + 1):
            start, end, first = self.starts[j], self.bounds[j], self.frontier[j]
            if first >= upto:
                continue
            if j == 0:
                if tokens.shape[0] < upto:
                    raise ValueError(f"{self.model.name}: asked for position {upto - 1} of a {tokens.shape[0]}-token sequence")
                inp = self.model.embed(tokens[first:upto])
            else:
                pend_start, pend = self.pending[start]
                assert pend_start == first and pend is not None and pend.shape[1] >= upto - first
                inp = pend[:, : upto - first]
                self.pending[start] = (upto, pend[:, upto - first :])
            out = self.model.run_layers(inp, start, end, first)
            self.layer_evals += (end - start) * (upto - first)
            self.frontier[j] = upto
            self._append_pending(end, first, out)
        pend_start, pend = self.pending[exit_layer]
        if pend is None or pend_start > need_from or pend_start + pend.shape[1] < upto:
            raise RuntimeError(
                f"{self.model.name}: no hidden state at depth {exit_layer} for positions "
                f"[{need_from}, {upto}) (pending from {pend_start}); frontier bookkeeping is broken"
            )
        if exit_layer == self.bounds[-1]:
            # Nothing deeper consumes the top boundary: keep only what is still needed.
            self.pending[exit_layer] = (need_from, pend[:, need_from - pend_start :])
            pend_start, pend = self.pending[exit_layer]
        return pend[:, need_from - pend_start : upto - pend_start]

    def logits(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        """``[upto - need_from, V]`` logits of the view exiting at ``exit_layer``."""
        h = self.hidden(tokens, exit_layer, upto, need_from)
        self.head_evals += h.shape[1]
        return self.model.logits(h)

    def greedy_tokens(self, tokens: torch.Tensor, exit_layer: int, upto: int, need_from: int) -> torch.Tensor:
        """``LongTensor[upto - need_from]``: the argmax token of the view at each position.

        A backend may fuse head and argmax (``model.greedy_tokens``), which
        skips materialising ``[T, V]`` float32 logits; otherwise argmax of
        :meth:`logits`.
        """
        h = self.hidden(tokens, exit_layer, upto, need_from)
        self.head_evals += h.shape[1]
        fused = getattr(self.model, "greedy_tokens", None)
        return fused(h) if fused is not None else self.model.logits(h).argmax(dim=-1)

    def greedy_draft(
        self, tokens: torch.Tensor, exit_layer: int, n: int, count: int, stop_below: float | None = None
    ) -> int:
        """Write up to ``count`` greedy tokens of the view exiting at ``exit_layer`` at
        ``tokens[n:]``; return how many were drafted.

        Each token is the argmax at the previous position, so the round is a
        chain of single-position steps. A backend that implements
        ``model.greedy_draft`` runs the whole chain without returning to
        Python between steps (the native backend replays one CUDA graph per
        step, the tokens never leave the device); that needs the view to be
        the model's first segment, which every drafting level is. Otherwise
        the steps go through :meth:`logits` / :meth:`greedy_tokens` one by
        one. Both leave the same frontiers, pending hidden states and counters.

        ``stop_below`` (``draft_stop``): the round ends after the first token
        whose top probability (softmax at temperature 1) is below it. Then
        every drafted token is also run through the layers as soon as it is
        drafted -- the last one too -- because that work is what the device
        does while the host reads the token's confidence (docs/engine.md).
        """
        first = self.frontier[0]
        fused = getattr(self.model, "greedy_draft", None)
        if fused is None or exit_layer != self.bounds[0] or first >= n:
            return self._greedy_draft_steps(tokens, exit_layer, n, count, stop_below)
        # A deeper view of this model verifies next and needs the last drafted token's
        # hidden state too: the chain processes it (layers only) instead of the verifier's
        # first segment. A model with one view leaves it to the next round, which may reject it.
        process_last = len(self.bounds) > 1 or stop_below is not None
        if stop_below is None:
            out = fused(tokens, first, n, exit_layer, count, process_last)
        else:
            out = fused(tokens, first, n, exit_layer, count, process_last, stop_below=stop_below)
            count = out.shape[1] - (n - first)  # with a stopping rule every drafted token is processed
        upto = n + count - (0 if process_last else 1)
        self.layer_evals += exit_layer * (upto - first)
        self.head_evals += count
        self.frontier[0] = upto
        self._append_pending(exit_layer, first, out)
        if exit_layer == self.bounds[-1]:
            # Nothing deeper consumes it: keep only the last position, as hidden() would.
            start, pend = self.pending[exit_layer]
            self.pending[exit_layer] = (upto - 1, pend[:, upto - 1 - start :])
        return count

    def _greedy_draft_steps(
        self, tokens: torch.Tensor, exit_layer: int, n: int, count: int, stop_below: float | None
    ) -> int:
        """:meth:`greedy_draft` one step at a time through the protocol."""
        if stop_below is None:
            for t in range(n, n + count):
                tokens[t] = self.greedy_tokens(tokens, exit_layer, t, t - 1)[-1]
            return count
        for t in range(n, n + count):
            logits = self.logits(tokens, exit_layer, t, t - 1)[-1]
            tokens[t] = logits.argmax()
            if self.layers_then_stop(tokens, exit_layer, t, top_probability(logits, logits=True), stop_below):
                return t + 1 - n
        return count

    def layers_then_stop(
        self, tokens: torch.Tensor, exit_layer: int, t: int, confidence: torch.Tensor, stop_below: float
    ) -> bool:
        """Run the layers on the token just drafted at ``t`` while its ``confidence`` comes to the
        host; True when the draft stops after it (:func:`~hsd_bench.draft_stop.stops_after`)."""
        pending = HostValue(confidence)
        self.hidden(tokens, exit_layer, t + 1, t)
        return stops_after(pending.get()[0], stop_below)

    def _append_pending(self, bound: int, first: int, out: torch.Tensor) -> None:
        """Hidden states ``out`` at depth ``bound`` for positions from ``first`` on join what is pending there."""
        out_start, have = self.pending[bound]
        if have is None or have.shape[1] == 0:
            self.pending[bound] = (first, out)
        else:
            assert out_start + have.shape[1] == first
            self.pending[bound] = (out_start, torch.cat([have, out], dim=1))

    def truncate(self, length: int) -> None:
        """Forget every position ``>= length`` (a rejection at ``length``)."""
        for j, f in enumerate(self.frontier):
            if f > length:
                self.model.truncate(self.starts[j], self.bounds[j], length)
                self.frontier[j] = length
        for b, (start, pend) in self.pending.items():
            if pend is not None and start + pend.shape[1] > length:
                keep = max(0, length - start)
                self.pending[b] = (min(start, length), pend[:, :keep])


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
    wall_s: float = 0.0
    prefill_s: float = 0.0
    drafted: list[int] = field(default_factory=list)  # per verifying level
    accepted: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # forwards of each level (level 0: drafted tokens)
    draft_calls: int = 0  # level-0 draft rounds: rounds[0] / draft_calls is the mean draft length
    position_reached: list[int] = field(default_factory=list)  # top level, per draft position
    position_accepted: list[int] = field(default_factory=list)
    level_time_s: list[float] = field(default_factory=list)
    layer_evals: dict[str, int] = field(default_factory=dict)
    head_evals: dict[str, int] = field(default_factory=dict)
    level_names: list[str] = field(default_factory=list)

    @property
    def decode_s(self) -> float:
        return self.wall_s - self.prefill_s

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
            "tokens_per_s": self.n_generated / self.wall_s if self.wall_s > 0 else 0.0,
            "decode_tokens_per_s": self.n_generated / self.decode_s if self.decode_s > 0 else 0.0,
            "target_forwards": self.target_forwards,
            "target_forwards_per_token": self.target_forwards / n,
            "mean_accepted_len": self.n_generated / max(self.target_forwards, 1),
            "drafted": drafted,
            "accepted": accepted,
            "draft_tokens": self.rounds[0] if top > 0 else 0,
            "draft_rounds": self.draft_calls if top > 0 else 0,
            "mean_draft_len": self.rounds[0] / self.draft_calls if top > 0 and self.draft_calls else None,
            "acceptance_rate": accepted / drafted if drafted else None,
            "acceptance_per_level": {
                self.level_names[i]: (self.accepted[i] / self.drafted[i] if self.drafted[i] else None)
                for i in range(1, len(self.rounds))
            },
            "drafted_per_level": dict(zip(self.level_names[1:], self.drafted[1:])),
            "accepted_per_level": dict(zip(self.level_names[1:], self.accepted[1:])),
            "position_reached": list(self.position_reached),
            "position_accepted": list(self.position_accepted),
            "layer_evals": dict(self.layer_evals),
            "layer_evals_per_token": sum(self.layer_evals.values()) / n if self.layer_evals else None,
            "layer_evals_per_token_by_model": {k: v / n for k, v in self.layer_evals.items()},
            "head_evals_per_token": sum(self.head_evals.values()) / n,
            "time_split_s": {
                **{f"level:{name}": t for name, t in zip(self.level_names, self.level_time_s)},
                "other": max(0.0, self.decode_s - sum(self.level_time_s)),
            },
        }


@dataclass
class Generation:
    output_ids: list[int]
    stats: GenerationStats
    stop_reason: str = ""


class LevelClock:
    """Each level's share of decode time, without making the device wait.

    Decoding on a GPU is asynchronous: the host queues a level's work and
    moves on. Synchronising around every level to read a host clock would
    serialise host and device and slow the very run being measured (one
    wait per level per round). So on CUDA each interval is a pair of CUDA
    events recorded on the current stream, read once after the generation's
    final sync; an interval is the device-stream time from where the level's
    work starts to where it ends (stalls waiting for the host included). On
    CPU, and with ``synchronous=True`` (host-serial profiling), it is the
    host clock, synchronised on CUDA.
    """

    def __init__(self, device: torch.device, synchronous: bool = False):
        self.device = device
        self.events = device.type == "cuda" and not synchronous
        self.synchronous = synchronous and device.type == "cuda"
        self._pool: list[tuple] = []  # reused event pairs
        self._open: list[tuple[int, tuple]] = []
        self._host = [0.0]

    def begin(self, levels: int) -> None:
        self._open.clear()
        self._host = [0.0] * levels

    def start(self):
        if self.events:
            if len(self._open) == len(self._pool):
                self._pool.append((torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)))
            pair = self._pool[len(self._open)]
            pair[0].record()
            return pair
        if self.synchronous:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def stop(self, level: int, mark) -> None:
        if self.events:
            mark[1].record()
            self._open.append((level, mark))
            return
        if self.synchronous:
            torch.cuda.synchronize(self.device)
        self._host[level] += time.perf_counter() - mark

    def totals(self) -> list[float]:
        """Seconds per level; call after the device has finished the generation."""
        out = list(self._host)
        for level, (start, end) in self._open:
            out[level] += start.elapsed_time(end) / 1e3
        return out


class Engine:
    """Runs a stack of levels (bottom -> top) to generate from a prompt."""

    def __init__(self, levels: list[Level], eos_token_ids: list[int] | tuple[int, ...] = (), sync_timing: bool = False):
        if not levels:
            raise ValueError("a method needs at least one level")
        self.levels = levels
        self.eos_token_ids = set(int(t) for t in eos_token_ids if t is not None)
        # True only to profile host-serially (the device waits around every level).
        self.sync_timing = sync_timing
        # Optional observer told "prefill", "decode" and "done" as generate() moves
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
        generation compiles or captures anything (docs/performance.md).
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
            prepare(min(max_len, state.model.max_context), list(zip(state.starts, state.bounds)),
                    heads=heads, chains=chains)

    # -- public -----------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[int],
        max_new_tokens: int,
        decoding: DecodingConfig | None = None,
        stop_sequences: list[str] | tuple[str, ...] = (),
        tokenizer=None,
    ) -> Generation:
        decoding = decoding or DecodingConfig()
        n = len(prompt_ids)
        if n == 0:
            raise ValueError("empty prompt: at least one token (e.g. BOS) is needed")
        if n >= self.max_context:
            raise ValueError(
                f"prompt of {n} tokens does not fit the context: it must be shorter than {self.max_context} tokens"
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1")
        if stop_sequences and tokenizer is None:
            raise ValueError("stop sequences need a tokenizer to decode the output")
        limit = min(n + max_new_tokens, self.max_context)

        self._decoding = decoding
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(decoding.seed)
        self._tokens = torch.zeros(limit + 1, dtype=torch.long, device=self.device)
        self._tokens[:n] = torch.as_tensor(prompt_ids, dtype=torch.long)
        depth = len(self.levels)
        stats = GenerationStats(
            n_prompt=n, drafted=[0] * depth, accepted=[0] * depth, rounds=[0] * depth,
            level_time_s=[0.0] * depth, level_names=[lv.name for lv in self.levels],
        )
        self._stats = stats
        if self._level_clock is None or self._level_clock.synchronous != (self.sync_timing and self.device.type == "cuda"):
            self._level_clock = LevelClock(self.device, synchronous=self.sync_timing)
        self._level_clock.begin(depth)
        for state in self.states:
            state.reset()

        self._sync()
        self._phase("prefill")
        t0 = time.perf_counter()
        # Prefill: every view's layers see the prompt except its last token,
        # which each level processes in its first round.
        for state in self.states:
            if n > 1:
                state.hidden(self._tokens, state.bounds[-1], n - 1, n - 2)
        self._sync()
        stats.prefill_s = time.perf_counter() - t0
        # Costs are reported for decoding only: the prefill is the same for every method.
        prefill_evals = {id(s): (s.layer_evals, s.head_evals) for s in self.states}
        self._phase("decode")

        committed, stop_reason = n, "max_new_tokens"
        while committed < limit:
            count, _, known = self._produce(depth - 1, committed, limit)
            # The top level's verification already brought its tokens to the host;
            # only an unverified level (autoregressive) needs them read back here.
            new = known if known is not None else self._tokens[committed : committed + count].tolist()
            cut = self._stop_index(new, prompt_ids, committed, stop_sequences, tokenizer)
            if cut is not None:
                committed += cut
                stop_reason = "stop"
                break
            committed += count
            for state in self.states:
                state.truncate(committed - 1)
        if stop_reason == "max_new_tokens" and limit < n + max_new_tokens:
            stop_reason = "context"  # the context ended before max_new_tokens
        self._sync()
        stats.wall_s = time.perf_counter() - t0
        stats.level_time_s = self._level_clock.totals()
        self._phase("done")
        stats.n_generated = committed - n
        for state in self.states:
            layers, heads = prefill_evals[id(state)]
            stats.layer_evals[state.model.name] = state.layer_evals - layers
            stats.head_evals[state.model.name] = state.head_evals - heads
        return Generation(self._tokens[n:committed].tolist(), stats, stop_reason)

    # -- the recursion ------------------------------------------------------
    def _produce(self, i: int, n: int, limit: int) -> tuple[int, torch.Tensor | None, list[int] | None]:
        """Write level ``i``'s next tokens at ``tokens[n:]`` and return how many,
        with level i's probabilities for each (``None`` when greedy) and the
        tokens as host values where verification already read them (else ``None``)."""
        level = self.levels[i]
        if i == 0:
            count, q = self._draft(level, n, limit)
            return count, q, None
        rule = level.rule
        lower = self.levels[i - 1]
        greedy = self._decoding.greedy
        out, probs = 0, []
        known: list[int] | None = []
        while out < level.batch and n + out < limit:
            m = n + out
            k, q, _ = self._produce(i - 1, m, limit)
            if rule is not None and rule.fixed_length and k > lower.batch:
                k = lower.batch  # joint rules are proven for a draft of exactly the batch length
                q = q[:k] if q is not None else None
                for state in self.states:
                    state.truncate(m + k)
            mark = self._level_clock.start()
            draft = self._tokens[m : m + k]
            confidence = None  # this level's top probability at each position, for its draft_stop
            if greedy:
                if level.draft_stop is None:
                    target = level.state.greedy_tokens(self._tokens, level.exit_layer, m + k, m - 1)
                else:
                    logits = level.state.logits(self._tokens, level.exit_layer, m + k, m - 1)
                    target, confidence = logits.argmax(dim=-1), top_probability(logits, logits=True)
                a, committed = greedy_accept(draft, target)
                token, p = committed[-1], None
            else:
                logits = level.state.logits(self._tokens, level.exit_layer, m + k, m - 1)
                p = warp(logits, self._decoding)
                verdict = rule(draft, q, p, self._generator)
                a, token, known = verdict.accepted, verdict.token, None
                if level.draft_stop is not None:
                    confidence = top_probability(p, logits=False)
            # A drafting middle level with draft_stop hands up its round's tokens only
            # through the first unconfident one, and stops there.
            cut = None if confidence is None else first_stop(confidence[: a + 1].tolist(), level.draft_stop)
            kept = a + 1 if cut is None else cut + 1
            self._tokens[m + a] = token
            self._account(i, k, a)
            if p is not None:
                probs.append(p[:kept])
            if greedy:
                known.extend(committed[:kept])
            out += kept
            for state in self.states:
                state.truncate(n + out - 1)
            self._level_clock.stop(i, mark)
            if (level.flush_on_reject and a < k) or cut is not None:
                break
        out = min(out, limit - n)
        merged = torch.cat(probs)[:out] if probs else None
        return out, merged, (known[:out] if known is not None else None)

    def _draft(self, level: Level, n: int, limit: int) -> tuple[int, torch.Tensor | None]:
        """Level 0: sample up to ``batch`` tokens autoregressively from its view
        (fewer when its ``draft_stop`` rule ends the draft)."""
        count = min(level.batch, limit - n)
        probs = []
        mark = self._level_clock.start()
        if self._decoding.greedy:
            count = level.state.greedy_draft(self._tokens, level.exit_layer, n, count, level.draft_stop)
        else:
            for t in range(n, n + count):
                logits = level.state.logits(self._tokens, level.exit_layer, t, t - 1)
                p = warp(logits, self._decoding)
                self._tokens[t] = sample(p[-1], self._generator)
                probs.append(p)
                if level.draft_stop is not None and level.state.layers_then_stop(
                    self._tokens, level.exit_layer, t, top_probability(p[-1], logits=False), level.draft_stop
                ):
                    break
            count = len(probs)
        self._stats.rounds[0] += count
        self._stats.draft_calls += 1
        self._level_clock.stop(0, mark)
        return count, (torch.cat(probs) if probs else None)

    # -- bookkeeping ----------------------------------------------------------
    def _account(self, i: int, drafted: int, accepted: int) -> None:
        s = self._stats
        s.drafted[i] += drafted
        s.accepted[i] += accepted
        s.rounds[i] += 1
        if i == len(self.levels) - 1:
            reached = min(accepted + 1, drafted)
            while len(s.position_reached) < drafted:
                s.position_reached.append(0)
                s.position_accepted.append(0)
            for j in range(reached):
                s.position_reached[j] += 1
            for j in range(accepted):
                s.position_accepted[j] += 1

    def _stop_index(self, new: list[int], prompt_ids, committed, stop_sequences, tokenizer) -> int | None:
        """How many of the newly committed tokens to keep if generation stops in them."""
        for j, tok in enumerate(new):
            if tok in self.eos_token_ids:
                return j + 1
        if stop_sequences:
            n = len(prompt_ids)
            generated = self._tokens[n : committed + len(new)].tolist()
            already = committed - n
            text = tokenizer.decode(generated)
            if any(s in text for s in stop_sequences):
                # the first new token whose prefix text contains a stop sequence
                for j in range(len(new)):
                    if any(s in tokenizer.decode(generated[: already + j + 1]) for s in stop_sequences):
                        return j + 1
        return None

    def _phase(self, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(name)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
