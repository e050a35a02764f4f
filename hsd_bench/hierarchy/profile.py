"""Measure a pool of candidate drafters on real prompts, for the selector.

For every member (a separate model, or an early exit of one) this measures
the wall time of one forward from layer 0 over 1..16 new positions, and for
every pair the greedy agreement rate of their argmaxes along the target's own
greedy continuations -- the token-wise rule's acceptance under greedy
decoding. It writes :class:`PoolProfile` (``profile_format.py``), which
``select.py`` turns into the latency-optimal stack; ``compare_prediction``
then runs that stack through the engine and reports predicted vs measured
speedup.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from hsd_bench import measure
from hsd_bench.api import ModelPool
from hsd_bench.engine import DecodingConfig, ModelState
from hsd_bench.hierarchy.gap import MeasuredStack
from hsd_bench.hierarchy.profile_format import MemberProfile, PoolProfile, fit_cost
from hsd_bench.methods import MethodSpec, ar_chunk_for, build_engine

COST_POSITIONS = (1, 2, 4, 8, 16)
TARGET = "target"


@dataclass
class Member:
    name: str
    path: str  # "target" or a model path
    exit: int | None = None


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_cost(state: ModelState, exit_layer: int, tokens: torch.Tensor, prompt_len: int, repeats: int) -> list:
    """(positions, seconds) samples of one forward of the view from layer 0."""
    samples = []
    state.reset()
    state.logits(tokens, exit_layer, prompt_len, prompt_len - 1)  # prefill
    for n in COST_POSITIONS:
        for _ in range(repeats):
            _sync(state.model.device)
            t0 = time.perf_counter()
            state.logits(tokens, exit_layer, prompt_len + n, prompt_len)
            _sync(state.model.device)
            samples.append((n, time.perf_counter() - t0))
            state.truncate(prompt_len)
    return samples


def profile_pool(
    pool: ModelPool, target_path: str, members: list[Member], prompts: list[list[int]], new_tokens: int = 64,
    repeats: int = 5,
) -> PoolProfile:
    target, codec = pool.get(target_path)
    members = [Member(TARGET, TARGET, None), *members]
    models = {m.name: (target if m.path == TARGET else pool.get(m.path)[0]) for m in members}
    # One round per token: its excess over the forward is one verification round's host work.
    ar = build_engine(MethodSpec("autoregressive", ar_chunk=1), target, pool.get, codec)
    agree = {(a.name, b.name): [] for a in members for b in members if a.name != b.name}
    costs: dict[str, list] = {m.name: [] for m in members}
    # Every fixed shape the cost probes reach is captured first, so no probe times a compilation.
    longest = max(len(p) for p in prompts) + new_tokens + max(COST_POSITIONS)
    for m in members:
        prepare = getattr(models[m.name], "prepare", None)
        if prepare is not None:
            prepare(longest, [(0, m.exit or models[m.name].num_layers)], heads=("head",))
    for ids in prompts:
        continuation = ar.generate(ids, new_tokens).output_ids
        seq = torch.tensor(ids + continuation, device=target.device)
        argmax = {}
        for m in members:
            model = models[m.name]
            exit_layer = m.exit or model.num_layers
            state = ModelState(model, [exit_layer])
            state.reset()
            argmax[m.name] = state.logits(seq, exit_layer, len(seq) - 1, len(ids) - 1).argmax(-1)
            # cost does not depend on token values: pad a continuation that stopped early (EOS)
            filler = torch.zeros(max(0, len(ids) + max(COST_POSITIONS) - len(seq)), dtype=seq.dtype, device=seq.device)
            costs[m.name] += _forward_cost(state, exit_layer, torch.cat([seq, filler]), len(ids), repeats)
        for a, b in agree:
            agree[(a, b)].append(float((argmax[a] == argmax[b]).float().mean()))
    profiles = {
        m.name: MemberProfile(
            name=m.name, path=m.path, exit=m.exit, num_layers=models[m.name].num_layers,
            cost=fit_cost([(n, statistics.median(s for k, s in costs[m.name] if k == n)) for n in COST_POSITIONS]),
        )
        for m in members
    }
    acceptance: dict[str, dict[str, float]] = {}
    for (a, b), rates in agree.items():
        acceptance.setdefault(a, {})[b] = statistics.fmean(rates)
    round_step_s = _engine_ar_step(ar, prompts, new_tokens)
    # AR as the runs decode it (ar_chunk's default for this device), the baseline of every speedup
    chunk = ar_chunk_for(None, target.device)
    ar_step_s = round_step_s if chunk == 1 else _engine_ar_step(
        build_engine(MethodSpec("autoregressive", ar_chunk=chunk), target, pool.get, codec), prompts, new_tokens)
    return PoolProfile(
        target=TARGET, members=profiles, acceptance=acceptance,
        provenance={"target_path": target_path, "device": str(target.device), "dtype": str(target.dtype),
                    "decoding": {"temperature": 0.0}, "n_prompts": len(prompts), "new_tokens": new_tokens,
                    "acceptance_estimator": "greedy argmax agreement along target continuations",
                    "engine_round_step_s": round_step_s, "ar_chunk": chunk,
                    "round_overhead_estimator": "engine AR decode seconds per forward at ar_chunk=1 "
                                                "- target forward cost(1)"},
        round_overhead_s=max(0.0, round_step_s - profiles[TARGET].cost(1)),
        ar_step_s=ar_step_s,
    )


def _engine_ar_step(ar, prompts: list[list[int]], new_tokens: int) -> float:
    """The engine's AR decode seconds per generated token, timed as run.py times it (``measure.py``).

    At ``ar_chunk=1`` (one forward per token, nothing discarded) its excess over the target's
    isolated forward is the host work of one engine round, which every verification round pays
    too and the cost table does not see: on the shipped model the chosen 3-level stack's levels
    cost 40 % of the prediction more than their forwards."""
    decoding = DecodingConfig()
    measure.prepare([ar], prompts, new_tokens, decoding)
    tokens = seconds = 0.0
    for ids in prompts:
        stats = measure.timed_generate(ar, ids, new_tokens, decoding).generation.stats
        tokens += stats.n_generated
        seconds += stats.decode_s
    return seconds / tokens if tokens else 0.0


def measure_stack(pool: ModelPool, target_path: str, levels: list[dict], prompts: list[list[int]], new_tokens: int):
    """Measured decode tokens/s of AR and of the hierarchy on the same prompts, interleaved, timed
    as run.py times them (``measure.py``: shapes captured and warmed up first, no capture timed)."""
    target, codec = pool.get(target_path)
    engines = {
        "autoregressive": build_engine(MethodSpec("autoregressive"), target, pool.get, codec),
        # the gap analysis reads each level's time (level_s): recorded even on CUDA, at its cost
        "hierarchy": build_engine(MethodSpec("hierarchy", levels=levels, level_split=True), target, pool.get, codec),
    }
    totals = {k: [0, 0.0] for k in engines}
    depth = len(levels) + 1
    forwards, level_s = [0] * depth, [0.0] * depth
    outputs = {}
    decoding = DecodingConfig()
    measure.prepare(engines.values(), prompts, new_tokens, decoding)
    for ids in prompts:
        for name, engine in engines.items():
            gen = measure.timed_generate(engine, ids, new_tokens, decoding).generation
            totals[name][0] += gen.stats.n_generated
            totals[name][1] += gen.stats.decode_s
            outputs.setdefault(name, []).append(gen.output_ids)
            if name == "hierarchy":
                forwards = [a + b for a, b in zip(forwards, gen.stats.rounds, strict=True)]
                level_s = [a + b for a, b in zip(level_s, gen.stats.level_time_s, strict=True)]
    tps = {k: n / s for k, (n, s) in totals.items()}
    return {
        "ar_decode_tokens_per_s": tps["autoregressive"],
        "hierarchy_decode_tokens_per_s": tps["hierarchy"],
        "measured_speedup": tps["hierarchy"] / tps["autoregressive"],
        "parity_exact": outputs["hierarchy"] == outputs["autoregressive"],
        # the engine's counters, for hierarchy.gap.prediction_gap (which term of a prediction is off)
        "stack": MeasuredStack(n_generated=totals["hierarchy"][0], decode_s=totals["hierarchy"][1],
                               forwards=forwards, level_s=level_s, ar_n_generated=totals["autoregressive"][0],
                               ar_decode_s=totals["autoregressive"][1]),
    }
