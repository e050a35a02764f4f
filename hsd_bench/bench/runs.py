"""One measured run per method: the same prompts, greedy, same token budget.

Every run generates exactly ``max_new`` tokens per prompt (EOS disabled on
both sides), is warmed up on every prompt first (compilation, CUDA graph
capture, cuBLAS handles) and is then repeated; the reported figure is the
median over repetitions of (all tokens / all wall time).

Throughput comes from clean passes (no instrumentation, engine timing syncs
off). Where an engine method's decode time goes is measured in separate
instrumented passes over the same prompts (``instrument.py``):

* :func:`engine_outside_forwards` -- *asynchronous*: CUDA events around every
  model call, no added syncs. ``gpu_idle_frac = 1 - busy_s / decode_s`` is the
  share of decode wall time in which the device is not running a model call:
  "wall time outside model forwards" as decoding really runs (the host's
  Python overlaps the queued forwards). This is the figure issue 7's target
  "engine overhead <= 10 % of decode time" refers to. Taken over several
  passes (the median pass, with every pass listed): on a host-bound model one
  pass meets one host state. :func:`outside_at_rate` recomputes it against
  the timed passes' decode time, a cross-check.
* :func:`engine_host_serial` -- *host-serial*: the device synchronised around
  every call, so none of the engine's host work can hide behind the device.
  ``overhead_frac`` is an upper bound of the async figure and the engine's
  total host time per decode, i.e. what there is to optimise.

On CPU both reduce to host clocks around calls and agree up to noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import time
from typing import Callable

import torch

from hsd_bench import host_probe
from hsd_bench.bench.instrument import CallTimer, EventTimer, PhaseGate, Timeline, event_pair_host_s
from hsd_bench.bench.timing import median, sync
from hsd_bench.metrics import contention_by_pass, summarize_method


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
    # decoder_run: the sum over prompts of each prompt's median-pass times (measure.timed_passes,
    # as run.py times a job); the figures then come from these, ``wall_s`` keeps every pass's sum
    kept_wall_s: float | None = None
    kept_decode_s: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / (self.kept_wall_s if self.kept_wall_s is not None else median(self.wall_s))

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.kept_decode_s is not None:
            return self.tokens / self.kept_decode_s
        return self.tokens / median(self.decode_s) if self.decode_s else None

    @property
    def mean_accepted_len(self) -> float:
        return self.tokens / max(self.target_forwards, 1)


def _repeat(run_all: Callable[[], tuple[list[list[int]], float, float | None, int]], reps: int, result: RunResult,
            warm_up: bool = True):
    if warm_up:
        run_all()  # every shape the timed runs hit gets compiled here
    for _ in range(reps):
        outputs, wall, decode, forwards = run_all()
        result.wall_s.append(wall)
        if decode is not None:
            result.decode_s.append(decode)
        result.outputs, result.target_forwards = outputs, forwards
        result.tokens = sum(len(o) for o in outputs)
    return result


# What the engine chose to queue ahead, per generation (GenerationStats): hand-ups verified before
# the middle level's verdict was read, those finished by a second step, and rounds run inside CUDA
# conditional nodes (the trace's split is then left out: trace.at_timed_rate). The timed passes and
# an instrumented or traced pass of the same tokens must have chosen alike, or the pass measures
# another plan (bench_gpu.measure_engine warns; docs/gpu-runs.md, "Forty-first run").
PLAN_COUNTERS = ("hand_ups_ahead", "hand_ups_continued", "guarded_rounds_on_device")


def decoder_run(name: str, decoder, backend: str, method: str, prompts: list[list[int]], max_new: int,
                reps: int, stop: tuple[str, ...] = (), codec=None,
                after_pass: Callable[[int], None] | None = None) -> RunResult:
    """A decoder (an engine, or transformers' generate() as ``HFReference``) timed exactly as
    ``run.py`` times it: ``measure.prepare`` before, ``measure.timed_passes`` with ``reps`` passes
    (``run.py``'s ``timing_repeats``) over the prompts, each prompt's median pass kept (with
    ``run.py``'s stop sequences and tokenizer where given). ``wall_s`` holds every pass's sum,
    ``decode_s`` (engines) every pass's decode time; ``extra`` gets ``compile_s``, ``retimed`` and
    ``graph_captures_timed``. ``after_pass``: ``measure.timed_passes``' hook between passes (the
    benchmark's interleaved measuring passes)."""
    from hsd_bench import measure
    from hsd_bench.engine import DecodingConfig

    decoding = DecodingConfig()
    result = RunResult(name, backend, method)
    result.extra["compile_s"] = measure.prepare([decoder], prompts, max_new, decoding)
    timed = [t for _, t in sorted(measure.timed_passes(decoder, prompts, max_new, decoding, reps,
                                                       stop_sequences=stop, tokenizer=codec,
                                                       after_pass=after_pass),
                                  key=lambda it: it[0])]
    gens = [t.generation for t in timed]
    result.extra["retimed"] = sum(t.retimed for t in timed)
    probes = timed[0].host_probe_us if timed else None  # every prompt was timed in the same passes
    result.extra["host_probe_us_passes"] = probes
    result.extra["host_probe_us"] = median(probes) if probes else None
    passes = [t.pass_wall_s or [t.generation.stats.wall_s] for t in timed]  # each prompt's wall per pass
    # what other threads took from the timing thread, per pass, as run.py's summary reads it
    result.extra.update(contention_by_pass([{**host_probe.contention_passes(t.contention), "wall_s_passes": walls}
                                            for t, walls in zip(timed, passes)]))
    result.extra["graph_captures_timed"] = sum(t.graph_captures for t in timed)
    result.outputs = [g.output_ids for g in gens]
    result.tokens = sum(len(o) for o in result.outputs)
    result.target_forwards = sum(g.stats.target_forwards for g in gens)
    result.wall_s = [sum(p[k] for p in passes) for k in range(len(passes[0]))]
    result.kept_wall_s = sum(g.stats.wall_s for g in gens)
    if backend != "hf":
        result.kept_decode_s = sum(g.stats.decode_s for g in gens)
        decodes = [t.pass_decode_s or [t.generation.stats.decode_s] for t in timed]
        result.decode_s = [sum(d[k] for d in decodes) for k in range(len(decodes[0]))]
    rows = [g.stats.as_row() for g in gens]
    if backend != "hf":
        summary = summarize_method(rows)  # run.py's aggregates of the same rows
        result.extra["acceptance_per_level"] = summary["acceptance_per_level"]
        # share of draft rounds queued before their verdict was read (Engine.lookahead): 0 means none were
        result.extra["draft_rounds_ahead"] = summary["draft_rounds_ahead"]
        for key in PLAN_COUNTERS:  # what it queued ahead, which every measuring pass must match
            result.extra[key] = summary[key]
        result.extra["layer_evals_per_token"] = sum(r["layer_evals_per_token"] * r["n_generated"] for r in rows) / max(
            sum(r["n_generated"] for r in rows), 1
        )
    return result


def hf_generate(name: str, model, prompts: list[list[int]], max_new: int, reps: int, gamma: int = 4,
                codec=None, stop: tuple[str, ...] = (), **gen_kwargs) -> RunResult:
    """transformers' ``model.generate`` (eager, dynamic cache), plain or with an assistant
    (``assistant_early_exit=E`` or ``assistant_model=draft``, drafting exactly ``gamma``
    tokens per round): the same ``HFReference`` decoder ``run.py`` runs as ``method=hf_*``."""
    from hsd_bench.hf_reference import HFReference

    if "assistant_early_exit" in gen_kwargs:
        ref = HFReference("hf_early_exit", model, codec, draft_len=gamma, exit_layer=gen_kwargs["assistant_early_exit"])
    elif "assistant_model" in gen_kwargs:
        ref = HFReference("hf_assisted", model, codec, draft_len=gamma, assistant=gen_kwargs["assistant_model"])
    else:
        ref = HFReference("hf_generate", model, codec)
    method = "autoregressive" if not gen_kwargs else ",".join(sorted(gen_kwargs))
    return decoder_run(name, ref, "hf", method, prompts, max_new, reps, stop, codec)


def native_loop(name: str, native, prompts: list[list[int]], max_new: int, reps: int,
                stop: tuple[str, ...] = (), codec=None) -> RunResult:
    """AR greedy straight on the backend, no engine and no host sync per token:
    the backend's own speed, the number the roofline compares with.

    It is timed over all ``max_new`` tokens of every prompt (a loop with no stop check);
    with the workload's ``stop`` sequences and ``codec`` (its EOS) its outputs are then cut
    where the engine's stop rule (``engine.stop_cut``) ends them, so "= AR" and the parity
    classification compare the tokens both keep -- uncut, a loop that runs past a stop
    counted as a divergence from the engine's AR (docs/gpu-runs.md, "Ninth run")."""
    device, depth = native.device, native.num_layers

    def one(p: list[int]) -> tuple[list[int], float, float]:
        sync(device)
        t0 = time.perf_counter()
        native.reset()
        h = native.run_layers(native.embed(torch.tensor(p, device=device)), 0, depth, 0)
        tok = native.greedy_tokens(h[:, -1:])  # fused head + argmax
        sync(device)
        t1 = time.perf_counter()
        toks = [tok]
        for pos in range(len(p), len(p) + max_new - 1):
            h = native.run_layers(native.embed(tok), 0, depth, pos)
            tok = native.greedy_tokens(h)
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

    result = _repeat(run_all, reps, RunResult(name, "native", "autoregressive(loop)"))
    eos = [codec.eos_token_id] if codec is not None and codec.eos_token_id is not None else []
    if stop or eos:
        from hsd_bench.engine import stop_cut

        cuts = [stop_cut([], out, eos, stop, codec) for out in result.outputs]
        result.outputs = [out if cut is None else out[:cut] for out, cut in zip(result.outputs, cuts)]
    return result


def engine_run(name: str, engine, method: str, prompts: list[list[int]], max_new: int, reps: int,
               stop: tuple[str, ...] = (), codec=None, after_pass: Callable[[int], None] | None = None) -> RunResult:
    """The harness engine (``hsd_bench.engine``), timed as ``run.py`` times it (``decoder_run``)."""
    backend = getattr(engine.top.state.model, "backend", "hf")
    return decoder_run(name, engine, backend, method, prompts, max_new, reps, stop, codec, after_pass)


def add_plan(plan: dict, stats) -> None:
    """Add one generation's plan counters (its ``GenerationStats``) to a measuring pass's ``plan``."""
    for key in PLAN_COUNTERS:
        plan[key] += getattr(stats, key)


def timed_plan(result) -> dict:
    """The plan counters of a timed run (``RunResult.extra``, summed over its kept generations)."""
    return {key: result.extra.get(key, 0) for key in PLAN_COUNTERS}


def plan_mismatch(timed: dict, measured: dict | None) -> str | None:
    """Where a measuring pass (``measured``: its ``plan``) queued other work ahead than the timed
    passes (``timed``: :func:`timed_plan`), what differs, as ``"key measured vs timed"`` joined by
    commas; else None."""
    if not measured:
        return None
    diff = [f"{key} {measured.get(key, 0)} vs {timed.get(key, 0)}" for key in PLAN_COUNTERS
            if measured.get(key, 0) != timed.get(key, 0)]
    return ", ".join(diff) or None


def _instrumented_pass(build: Callable[[Callable], object], timer_cls, prompts: list[list[int]], max_new: int,
                       sync_timing: bool, timeline: Timeline | None = None, stop: tuple[str, ...] = (),
                       codec=None) -> tuple[object, list, dict]:
    """One pass over ``prompts`` with every model wrapped in ``timer_cls`` gated to the decode phase
    (sharing ``timeline``, an ``EventTimer`` option, collected after every generation).

    ``stop``/``codec``: the timed passes' stop sequences and tokenizer (``decoder_run``), so the
    instrumented pass decodes exactly the tokens the timed ones did. Without them it decoded past
    every stop sequence to ``max_new``: text after the sample's end, where a draft accepts
    differently, so its overhead share described another workload (an H200, the hierarchy on a
    294 M model: that pass ran 41-64 % slower than the timed ones; docs/gpu-runs.md,
    "Nineteenth run")."""
    from hsd_bench.engine import DecodingConfig

    gate = PhaseGate(("decode",))
    timers: list = []

    def wrap(model):
        t = timer_cls(model, gate) if timeline is None else timer_cls(model, gate, timeline=timeline)
        timers.append(t)
        return t

    engine = build(wrap)
    engine.sync_timing = sync_timing
    engine.on_phase = gate
    # the host's state for this pass (host_probe.py): an overhead share moves with it on small models
    totals = {"decode_s": 0.0, "tokens": 0, "target_forwards": 0, "split": {},
              "host_probe_us": host_probe.round_trip_us(engine.device), "plan": dict.fromkeys(PLAN_COUNTERS, 0)}
    if timer_cls is EventTimer:  # the events' own host cost in this state (None off CUDA)
        pair = event_pair_host_s(engine.device)
        totals["event_pair_host_us"] = None if pair is None else 1e6 * pair
    taken: list[host_probe.Contention] = []
    for p in prompts:
        before = host_probe.contention()  # around the generation alone, as the timed passes take theirs
        g = engine.generate(p, max_new, DecodingConfig(), stop_sequences=stop, tokenizer=codec)
        taken.append(host_probe.contention_since(before))
        add_plan(totals["plan"], g.stats)
        if timeline is not None:
            timeline.collect()  # before the timers recycle their events
        for t in timers:
            t.collect()  # after the engine's final sync: reading the events costs no extra wait
        totals["decode_s"] += g.stats.decode_s
        totals["tokens"] += g.stats.n_generated
        totals["target_forwards"] += g.stats.target_forwards
        for k, v in g.stats.as_row()["time_split_s"].items():
            totals["split"][k] = totals["split"].get(k, 0.0) + v
    engine.on_phase = None
    totals.update(asdict(host_probe.contention_total(taken)))  # preemptions, cpu_wait_s, migrations
    return engine, timers, totals


def outside_forwards_pass(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int,
                          stop: tuple[str, ...] = (), codec=None) -> dict:
    """One instrumented pass of :func:`engine_outside_forwards` (its record, see there).

    Also returns ``event_pair_host_us``: what one CUDA event pair cost the host just before the
    pass (``instrument.event_pair_host_s``; None off CUDA). The pass records two per model call;
    on a host-bound model each is host time the device waits through, so the share carries that
    cost, and how much it is in this host state is read beside it. And ``preemptions``: the
    timing thread's preemptions while the pass's generations ran (``host_probe.preemptions``, as
    the timed passes count theirs; None where the platform does not count them), so a pass far
    from its timed pass's rate says whether it lost time slices; ``cpu_wait_s`` and ``migrations``
    beside it, as the timed passes read them (``host_probe.contention``)."""
    timeline = Timeline()
    _, timers, totals = _instrumented_pass(build, EventTimer, prompts, max_new, sync_timing=False,
                                           timeline=timeline, stop=stop, codec=codec)
    decode = totals["decode_s"]
    busy = sum(t.seconds for t in timers)
    calls = sum(t.calls for t in timers)
    return {
        "decode_s": decode,
        "model_busy_s": busy,
        "outside_s": decode - busy,
        "gpu_idle_frac": 1.0 - busy / decode if decode > 0 else None,
        "model_calls": calls,
        "model_calls_per_token": calls / max(totals["tokens"], 1),
        "tokens": totals["tokens"],  # what the timed passes decoded, when given their stop sequences
        "decode_tokens_per_s": totals["tokens"] / decode if decode > 0 else None,  # with the events' own cost
        "idle_by_transition": timeline.top(6, decode),
        "host_probe_us": totals["host_probe_us"],
        "event_pair_host_us": totals["event_pair_host_us"],
        # what other threads took from the timing thread in this pass, beside the timed passes'
        # (preemptions_passes, cpu_wait_s_passes, migrations_passes): a measuring pass far from its
        # timed pass's rate that waited much longer for a CPU lost time slices
        "preemptions": totals["preemptions"],
        "cpu_wait_s": totals["cpu_wait_s"],
        "migrations": totals["migrations"],
        "plan": totals["plan"],  # what it queued ahead: the timed passes' plan, or it measures another
    }


def outside_forwards_summary(runs: list[dict]) -> dict:
    """The outside share of several instrumented passes (:func:`outside_forwards_pass` records, in
    the order they ran): the median pass's record (the upper one of an even count: never the kinder
    half; ``median_pass`` its index), with ``passes`` listing every pass's share, times, rate, probe and event cost, and
    ``gpu_idle_frac_range``."""
    if not runs:
        raise ValueError("the outside share needs at least one instrumented pass")
    ranked = sorted(runs, key=lambda r: r["gpu_idle_frac"] if r["gpu_idle_frac"] is not None else float("inf"))
    chosen = dict(ranked[len(ranked) // 2])
    chosen["median_pass"] = next(i for i, r in enumerate(runs) if r is ranked[len(ranked) // 2])
    kept = ("gpu_idle_frac", "model_busy_s", "decode_s", "decode_tokens_per_s", "host_probe_us",
            "event_pair_host_us", "preemptions", "cpu_wait_s", "migrations", "tokens", "plan")
    chosen["passes"] = [{k: r[k] for k in kept} for r in runs]
    shares = [r["gpu_idle_frac"] for r in runs if r["gpu_idle_frac"] is not None]
    chosen["gpu_idle_frac_range"] = [min(shares), max(shares)] if shares else None
    return chosen


def engine_outside_forwards(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int,
                            stop: tuple[str, ...] = (), codec=None, passes: int = 1,
                            measured: list[dict] = ()) -> dict:
    """Device time outside model calls during decode, under asynchronous dispatch (``passes`` passes).

    ``build(wrap)`` builds the engine with every model wrapped by ``wrap``.
    Each pass returns ``decode_s`` (the engine's own decode wall time, summed
    over prompts, of that instrumented pass), ``model_busy_s`` (device time
    inside decode-phase model calls, from CUDA events; host time on CPU),
    ``gpu_idle_frac = 1 - model_busy_s / decode_s``, the number of timed
    calls, and ``idle_by_transition``: the six hand-overs between two model
    calls that hold the most of the outside time (``instrument.Timeline``), and
    ``host_probe_us``, the host's state before the pass (``host_probe.py``: on
    a small model the outside share moves with it). Engine timing syncs are
    off, as in the throughput passes, and the pass stops where they stop
    (``stop``, ``codec``).

    Why several passes: on a host-bound model one pass's share is the share of
    whichever host state it met -- HiSpec on the shipped 5.6 M model measured
    5.7 % in one call and 18.0 % in another with the same code, the slow pass
    running 32 % below its own timed passes (docs/gpu-runs.md, the twenty-third
    and twenty-fourth runs). The figures returned are those of the pass with
    the median share (:func:`outside_forwards_summary`), and ``passes`` lists
    every pass's share, busy and decode time, rate and probe in the order they
    ran, so the spread is read beside the figure. ``measured``: passes already
    run (:func:`outside_forwards_pass` records) -- the benchmark interleaves
    them with its timed passes (``bench_gpu.measure_engine``), one after each
    -- counted first; the rest of the ``passes`` run here, back to back.
    """
    if passes < 1:
        raise ValueError(f"passes={passes}: the outside share needs at least one instrumented pass")
    runs = list(measured)
    runs += [outside_forwards_pass(build, prompts, max_new, stop, codec) for _ in range(passes - len(runs))]
    return outside_forwards_summary(runs)


def outside_at_rate(outside: dict, decode_s: float | None) -> float | None:
    """The outside share the timed passes would show if their device did the instrumented passes' work:
    ``1 - median(model_busy_s) / decode_s`` (``decode_s``: the timed passes' kept decode time, as
    ``RunResult.kept_decode_s``).

    Why: the events cost host time, and a host-bound instrumented pass also meets its own host
    state, so its wall time is not the timed passes' (``instrumented_slowdown``); the device's work
    inside model calls is the same greedy graphs for the same tokens either way. This is a
    cross-check beside the measured share, not a replacement: a stall inside one call counts as
    busy in the instrumented pass. A share below zero says the instrumented passes' time inside
    calls exceeded the timed passes' whole decode time -- the calls' own host work, which the
    device waits through once it has reached the start event, counted as busy (the twenty-fifth
    GPU run: HiSpec and the hierarchy, -1.7 to -5.7 %; docs/gpu-runs.md). It is reported as it is.
    """
    busy = [p["model_busy_s"] for p in outside.get("passes") or [outside]]
    if not decode_s or not busy:
        return None
    return 1.0 - median(busy) / decode_s


def engine_host_serial(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int,
                       stop: tuple[str, ...] = (), codec=None) -> dict:
    """The engine's host time with nothing overlapped: an upper bound of its overhead (one pass).

    Every decode-phase model call is synchronised on both sides
    (``CallTimer``) and the engine's per-level clocks synchronise too, so
    ``overhead_s = decode_s - model_call_s`` is all host work outside model
    calls plus the engine's own device kernels, serialised.
    ``level_split_s`` is the engine's synchronised time per level.
    """
    _, timers, totals = _instrumented_pass(build, CallTimer, prompts, max_new, sync_timing=True, stop=stop,
                                           codec=codec)
    decode = totals["decode_s"]
    calls_s = sum(t.seconds for t in timers)
    return {
        "decode_s": decode,
        "model_call_s": calls_s,
        "overhead_s": max(decode - calls_s, 0.0),
        "overhead_frac": max(decode - calls_s, 0.0) / decode if decode > 0 else None,
        "model_calls": sum(t.calls for t in timers),
        "tokens": totals["tokens"],
        "level_split_s": totals["split"],
        "host_probe_us": totals["host_probe_us"],
        "plan": totals["plan"],
    }


def engine_overheads(build: Callable[[Callable], object], prompts: list[list[int]], max_new: int,
                     stop: tuple[str, ...] = (), codec=None, async_passes: int = 1,
                     measured: list[dict] = ()) -> dict:
    """Both measures, keyed as they appear in ``bench.json`` rows, on the timed passes' workload
    (``stop``, ``codec``: their stop sequences and tokenizer); ``async_passes`` instrumented passes
    for the outside share (:func:`engine_outside_forwards`, ``measured`` the ones already run),
    one host-serial pass."""
    return {
        "outside_forwards_async": engine_outside_forwards(build, prompts, max_new, stop, codec, async_passes,
                                                          measured),
        "host_serial": engine_host_serial(build, prompts, max_new, stop, codec),
    }
