"""One measured run per method: the same prompts, greedy, same token budget.

Every run generates exactly ``max_new`` tokens per prompt (EOS disabled on
both sides), is warmed up on every prompt first (compilation, CUDA graph
capture, cuBLAS handles) and is then repeated; the reported figure is the
median over repetitions of (all tokens / all wall time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Callable

import torch

from hsd_bench.bench.instrument import CallTimer, ForwardCounter
from hsd_bench.bench.timing import median, sync, timed


@dataclass
class RunResult:
    name: str
    backend: str  # "hf" or "native": speedups are over the same backend's AR
    method: str
    wall_s: list[float] = field(default_factory=list)  # per repetition, all prompts
    decode_s: list[float] = field(default_factory=list)
    tokens: int = 0  # per repetition
    outputs: list[list[int]] = field(default_factory=list)
    target_forwards: int = 0  # per repetition
    extra: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / median(self.wall_s)

    @property
    def decode_tokens_per_s(self) -> float | None:
        return self.tokens / median(self.decode_s) if self.decode_s else None

    @property
    def mean_accepted_len(self) -> float:
        return self.tokens / max(self.target_forwards, 1)


def _repeat(run_all: Callable[[], tuple[list[list[int]], float, float | None, int]], reps: int, result: RunResult):
    run_all()  # warm-up over every prompt: every shape the timed runs hit gets compiled here
    for _ in range(reps):
        outputs, wall, decode, forwards = run_all()
        result.wall_s.append(wall)
        if decode is not None:
            result.decode_s.append(decode)
        result.outputs, result.target_forwards = outputs, forwards
        result.tokens = sum(len(o) for o in outputs)
    return result


def hf_generate(name: str, model, prompts: list[list[int]], max_new: int, reps: int, **gen_kwargs) -> RunResult:
    """``model.generate`` (eager transformers, dynamic cache) with extra kwargs (assistants)."""
    device = model.device
    counter = ForwardCounter(model)

    def run_all():
        outs, total = [], 0.0
        counter.count = 0
        for p in prompts:
            ids = torch.tensor([p], device=device)
            out, dt = timed(
                lambda: model.generate(
                    ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new,
                    **gen_kwargs,
                ),
                device,
            )
            outs.append(out[0, len(p):].tolist())
            total += dt
        return outs, total, None, counter.count

    method = "autoregressive" if not gen_kwargs else ",".join(sorted(gen_kwargs))
    try:
        return _repeat(run_all, reps, RunResult(name, "hf", method))
    finally:
        counter.close()


def native_loop(name: str, native, prompts: list[list[int]], max_new: int, reps: int) -> RunResult:
    """AR greedy straight on the backend, no engine and no host sync per token:
    the backend's own speed, the number the roofline compares with."""
    device, depth = native.device, native.num_layers

    def one(p: list[int]) -> tuple[list[int], float, float]:
        sync(device)
        t0 = time.perf_counter()
        native.reset()
        h = native.run_layers(native.embed(torch.tensor(p, device=device)), 0, depth, 0)
        tok = native.logits(h[:, -1:]).argmax(-1)
        sync(device)
        t1 = time.perf_counter()
        toks = [tok]
        for pos in range(len(p), len(p) + max_new - 1):
            h = native.run_layers(native.embed(tok), 0, depth, pos)
            tok = native.logits(h).argmax(-1)
            toks.append(tok)
        out = torch.cat(toks).tolist()  # the one sync
        t2 = time.perf_counter()
        return out, t2 - t0, t2 - t1

    def run_all():
        outs, wall, dec = [], 0.0, 0.0
        for p in prompts:
            o, w, d = one(p)
            outs.append(o)
            wall += w
            dec += d
        return outs, wall, dec, sum(len(o) for o in outs)

    return _repeat(run_all, reps, RunResult(name, "native", "autoregressive(loop)"))


def engine_run(name: str, engine, method: str, prompts: list[list[int]], max_new: int, reps: int) -> RunResult:
    """The harness engine (``hsd_bench.engine``), timing syncs off."""
    from hsd_bench.engine import DecodingConfig

    engine.sync_timing = False
    backend = "native" if type(engine.top.state.model).__name__ == "NativeLlama" else "hf"
    stats_box: dict = {}

    def run_all():
        outs, wall, dec, fwd = [], 0.0, 0.0, 0
        rows = []
        for p in prompts:
            g = engine.generate(p, max_new, DecodingConfig())
            outs.append(g.output_ids)
            wall += g.stats.wall_s
            dec += g.stats.decode_s
            fwd += g.stats.target_forwards
            rows.append(g.stats.as_row())
        stats_box["rows"] = rows
        return outs, wall, dec, fwd

    result = _repeat(run_all, reps, RunResult(name, backend, method))
    rows = stats_box["rows"]
    result.extra["acceptance_per_level"] = _merge_acceptance(rows)
    result.extra["layer_evals_per_token"] = sum(r["layer_evals_per_token"] * r["n_generated"] for r in rows) / max(
        sum(r["n_generated"] for r in rows), 1
    )
    return result


def _merge_acceptance(rows: list[dict]) -> dict:
    drafted: dict[str, int] = {}
    accepted: dict[str, int] = {}
    for r in rows:
        for k, v in r["drafted_per_level"].items():
            drafted[k] = drafted.get(k, 0) + v
        for k, v in r["accepted_per_level"].items():
            accepted[k] = accepted.get(k, 0) + v
    return {k: (accepted.get(k, 0) / d if d else None) for k, d in drafted.items()}


def engine_time_split(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int) -> dict:
    """Where the decode time of an engine method goes (one instrumented pass).

    ``build(wrap)`` builds the engine with every model wrapped by ``wrap``.
    Returns the engine's per-level split (synchronised) and the fraction of
    decode wall time spent outside model calls: the engine's own overhead.
    """
    from hsd_bench.engine import DecodingConfig

    timers: list[CallTimer] = []

    def wrap(model):
        t = CallTimer(model)
        timers.append(t)
        return t

    engine = build(wrap)
    engine.sync_timing = True
    decode = prefill = calls = 0.0
    split: dict[str, float] = {}
    for p in prompts:
        before = sum(t.seconds for t in timers)
        g = engine.generate(p, max_new, DecodingConfig())
        calls += sum(t.seconds for t in timers) - before
        decode += g.stats.decode_s
        prefill += g.stats.prefill_s
        for k, v in g.stats.as_row()["time_split_s"].items():
            split[k] = split.get(k, 0.0) + v
    decode_calls = max(calls - prefill, 0.0)  # the prefill is model calls only
    return {
        "decode_s": decode,
        "model_call_s": decode_calls,
        "overhead_s": max(decode - decode_calls, 0.0),
        "overhead_frac": max(decode - decode_calls, 0.0) / decode if decode > 0 else None,
        "level_split_s": split,
    }
