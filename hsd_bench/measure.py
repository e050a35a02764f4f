"""How a generation is timed -- the one implementation ``run.py`` and the benchmark share.

A tokens/s figure means something only if it measures steady-state decoding.
The rules (docs/performance.md, "How a run is timed"):

1. **Nothing is compiled, captured or first allocated inside a timed
   generation.** :func:`prepare` runs before the first timed sample: every
   engine captures the fixed shapes its method can reach up to the run's
   longest sequence (``Engine.prepare``; the native backend then has one
   attention span and a small, known shape set), then generates once, untimed,
   at full length, which touches the caches, allocator pools and library
   handles the timed samples will use, and prefills once at every other
   prompt length of the run (exact-shape steps pay a first-touch cost per
   shape: :func:`prefill_warmups`). Its wall time is ``compile_s``,
   reported apart and never mixed into tokens/s.
2. **Clocks are read with the device synchronised** (``Engine.generate``
   synchronises before the prefill, after it, and at the end) **and nothing
   else waits or adds host work**: no per-level syncs, and on asynchronous CUDA
   no per-level events either unless ``level_split=true`` asks for the split
   (``engine.level_split_for``: its events slowed the host-bound methods).
3. **Zero captures in a kept timing.** :func:`timed_generate` counts graph
   captures and ``torch.compile`` graphs around each generation; one that
   captured or compiled a shape ``prepare`` did not foresee is generated
   again (the same shapes, replays only) and only the
   second timing is kept, flagged ``retimed``. Kept timings therefore contain
   no capture, and the count in them is reported (``graph_captures_timed``,
   always 0 by this rule and measured, not assumed). At ``batch_size`` > 1 a
   stream of samples is one timing that cannot be repeated sample by sample:
   its captures are counted and reported, not re-timed -- which is why
   :func:`prepare` decodes the whole stream once before it is timed.
4. **Generations back to back**, nothing but writing the row between them
   (``runner.run_job``; scores come after the last timed generation).
5. **Several passes, each sample's median kept** (:func:`timed_passes`,
   ``timing_repeats``; 3 on CUDA by default). On a GPU a host-bound method's
   speed moves from pass to pass with the host: on an H200 VM, one process,
   the same 8 prompts decoded back to back five times, HiSpec's decode rate
   ranged 984-1260 tok/s while AR's moved at most 6 % -- with the SM clock
   fixed, no steal time and no migrations (docs/gpu-runs.md, "Sixth run"). A
   single pass is one draw from that; the passes run over all prompts in
   turn (a slow second of the host lands in one pass, not in every repeat of
   one sample), and each sample keeps its median pass's timing, so a run's
   tokens/s is robust to one slow pass. The benchmark times with the same
   function.
6. **The host's speed is probed before every pass** (:mod:`hsd_bench.host_probe`:
   one tiny kernel launch and event wait, median of 64) and reported beside the
   tokens/s (``host_probe_us_passes`` per row, ``host_probe_us`` in the summary).
   On the lent H200 VM that round trip took 16-17 µs in some processes and
   24-28 µs in others, and host-bound methods followed it (vanilla_sd on the
   5.6 M model 1512-1885 tok/s across fresh processes): two runs that disagree
   by that much measured two hosts, and the probe says so (``run_job`` warns
   where one job's passes straddle states: ``host_probe.state_warnings``).
   Beside it, each generation reads what other threads took from the timing
   thread (:func:`hsd_bench.host_probe.contention`): how often it was preempted
   (``preemptions_passes``), how long it waited for a CPU (``cpu_wait_s_passes``;
   the summary's ``cpu_wait_share_passes`` as a share of each pass) and how often
   it moved between CPUs (``migrations_passes``), per row and per pass in the
   summary: other processes taking the run's time slices (which doubled HiSpec's
   overhead share on a loaded GPU host; docs/gpu-runs.md, "Fifty-fifth run") or
   the run's own threads, squeezed onto too few cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

import torch

from hsd_bench import host_probe
from hsd_bench.engine import Generation
from hsd_bench.sampling import DecodingConfig


class Decoder(Protocol):
    """What is timed: an ``Engine`` or a reference decoder (``hf_reference.py``)."""

    models: list
    max_context: int

    def generate(self, prompt_ids, max_new_tokens, decoding=None, stop_sequences=(), tokenizer=None) -> Generation: ...


@dataclass
class Timed:
    """A generation and how its timing was obtained."""

    generation: Generation
    graph_captures: int  # captures inside the kept timing(s) (0 unless capture could not be avoided)
    retimed: bool  # the first attempt captured a new shape and was discarded
    # timed_passes with repeats > 1: the sample's wall time in each pass, in pass order
    # (``generation`` is the median pass's), and whether every pass decoded the same tokens
    pass_wall_s: list[float] | None = None
    # ... and its decode time (prefill excluded) in each pass, in pass order
    pass_decode_s: list[float] | None = None
    outputs_agree: bool = True
    # the host probe (host_probe.round_trip_us, µs) taken before each pass of this timing
    host_probe_us: list[float] | None = None
    # what other threads took from the timing thread during this sample's generation in each pass
    # (host_probe.contention: preemptions, seconds waiting for a CPU, moves between CPUs)
    contention: list[host_probe.Contention] | None = None


def graph_captures(models: Iterable) -> int:
    """Graphs captured so far by these models (backends without graphs count 0)."""
    return sum(int(getattr(m, "graph_captures", 0) or 0) for m in {id(m): m for m in models}.values())


def torch_compiles() -> int:
    """Graphs ``torch.compile`` has produced in this process (0 where dynamo never ran).

    Counted with the graph captures around a timing: a shape that recompiles a step is a
    shape ``prepare`` did not foresee, whether or not a CUDA graph is captured for it."""
    dynamo = getattr(torch, "_dynamo", None)
    counters = getattr(getattr(dynamo, "utils", None), "counters", None)
    return int(counters["stats"]["unique_graphs"]) if counters is not None else 0


def shape_events(models: Iterable) -> int:
    """Graph captures plus ``torch.compile`` graphs so far: what must not grow inside a timing."""
    return graph_captures(models) + torch_compiles()


def sync_all(models: Iterable) -> None:
    for device in {str(m.device) for m in models}:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)


# Tokens generated after each per-length prefill warm-up: the prefill, then the first steps
# that follow it (whose shapes prepare() has already captured).
PREFILL_WARMUP_TOKENS = 2


def prefill_warmups(prompts: list[list[int]], max_context: int) -> list[list[int]]:
    """One prompt per distinct length (the first of each), as the decoder will see it.

    A prefill runs on the exact-shape path (the native backend's eager steps, every
    transformers forward), whose libraries pay a first-touch cost per new shape -- cuDNN
    attention plans, cuBLAS heuristics, lazily loaded kernels: measured on an H200 at
    0.07-0.65 s for each prompt length first seen, against 0.02 s for the prefill itself.
    Timed, it lands on whichever method meets a length first (AR, which runs first on every
    sample), which made AR look 1.5x slower than it is and every speedup that much larger.
    """
    seen: dict[int, list[int]] = {}
    for p in prompts:
        p = _fitting_prompt(p, max_context)
        seen.setdefault(len(p), p)
    return [seen[n] for n in sorted(seen)]


def _fitting_prompt(prompt: list[int], max_context: int) -> list[int]:
    """The prompt cut to leave room for at least one new token (the untimed warm-ups only)."""
    return prompt[: max(1, max_context - 2)]


def _fitting_new(prompt: list[int], max_new: int, max_context: int) -> int:
    """How many of ``max_new`` tokens fit after ``prompt`` (at least one)."""
    return max(1, min(max_new, max_context - len(prompt) - 1))


def prepare(decoders: Iterable[Decoder], prompts: list[list[int]], max_new: int, decoding: DecodingConfig,
            batch_size: int = 1, stop_sequences=(), tokenizer=None) -> float:
    """Rule 1: capture every reachable shape, then one untimed full-length generation per
    decoder on the longest prompt, then a short untimed generation at every other prompt
    length (the prefill's shapes, :func:`prefill_warmups`). At ``batch_size`` > 1: a full
    batch of the longest prompt, then the whole stream of ``prompts`` once, untimed -- which
    rows share a step (and so every ragged shape) is decided by the prompts themselves, and a
    shape first met inside the timed stream cannot be re-timed (on an H200, 13 such captures
    made one batched run 100x slower). Returns the seconds this took (``compile_s``)."""
    decoders = list(decoders)
    if not decoders or not prompts:
        return 0.0
    models = [m for d in decoders for m in d.models]
    sync_all(models)
    t0 = time.perf_counter()
    longest = max(prompts, key=len)
    for d in decoders:
        max_len = min(d.max_context, max(len(p) for p in prompts) + max_new)
        if hasattr(d, "prepare"):
            d.prepare(max_len, decoding.greedy)
        prompt = _fitting_prompt(longest, d.max_context)
        new = _fitting_new(prompt, max_new, d.max_context)
        if batch_size > 1:
            for _ in d.generate_many([prompt] * batch_size, new, decoding, batch_size=batch_size):
                pass
            # The stream's shapes depend on which rows share a step, which only the run's own
            # prompts decide: decode them all once, untimed, as the timed stream will.
            fitting = [p for p in prompts if len(p) < d.max_context]
            for _ in d.generate_many(fitting, max_new, decoding, stop_sequences=stop_sequences, tokenizer=tokenizer,
                                     batch_size=batch_size):  # rows stop where the timed ones will
                pass
            continue
        d.generate(prompt, new, decoding)
        for p in prefill_warmups(prompts, d.max_context):
            if len(p) != len(prompt):
                d.generate(p, _fitting_new(p, PREFILL_WARMUP_TOKENS, d.max_context), decoding)
    sync_all(models)
    return time.perf_counter() - t0


def timed_generate(decoder: Decoder, prompt_ids: list[int], max_new: int, decoding: DecodingConfig,
                   stop_sequences=(), tokenizer=None) -> Timed:
    """Rules 2 and 3: one generation whose timing contains no graph capture."""
    models = decoder.models
    before = shape_events(models)
    gen = decoder.generate(prompt_ids, max_new, decoding, stop_sequences=stop_sequences, tokenizer=tokenizer)
    captured = shape_events(models) - before
    if not captured:
        return Timed(gen, 0, False)
    before = shape_events(models)
    gen = decoder.generate(prompt_ids, max_new, decoding, stop_sequences=stop_sequences, tokenizer=tokenizer)
    return Timed(gen, shape_events(models) - before, True)


def timed_stream(decoder, prompts: list[list[int]], max_new: int, decoding: DecodingConfig, batch_size: int,
                 stop_sequences=(), tokenizer=None) -> Iterator[tuple[int, Timed]]:
    """Rule 2 at ``batch_size`` > 1: the prompts decoded as one refilled stream
    (``Engine.generate_many``), each finished row yielded as ``(index, Timed)`` with the graph
    captures since the previous one (counted, not re-timed: see rule 3)."""
    models = decoder.models
    before = shape_events(models)
    for index, gen in decoder.generate_many(prompts, max_new, decoding, stop_sequences=stop_sequences,
                                            tokenizer=tokenizer, batch_size=batch_size):
        captured = shape_events(models) - before
        before += captured
        yield index, Timed(gen, captured, False)


DEFAULT_CUDA_REPEATS = 3


def timing_repeats_for(value, device: torch.device | str) -> int:
    """``timing_repeats`` resolved: the configured value, else 3 passes on CUDA and 1 elsewhere
    (a CPU run is an offline example and its tests must stay fast; a GPU figure is a headline)."""
    if value is None:
        return DEFAULT_CUDA_REPEATS if torch.device(device).type == "cuda" else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"timing_repeats={value!r} must be an integer >= 1 (timed passes over the samples, each "
                         f"sample's median pass kept), or null for {DEFAULT_CUDA_REPEATS} on CUDA and 1 elsewhere")
    return value


def timed_passes(decoder, prompts: list[list[int]], max_new: int, decoding: DecodingConfig, repeats: int = 1,
                 batch_size: int = 1, stop_sequences=(), tokenizer=None,
                 on_generation: Callable[[], None] | None = None,
                 after_pass: Callable[[int], None] | None = None) -> Iterator[tuple[int, Timed]]:
    """Rule 5: ``repeats`` timed passes over all ``prompts``, back to back; yields ``(index, Timed)``
    for every prompt -- with one pass as each generation finishes, with several after the last
    pass, each carrying its median pass's generation (by wall time; the lower middle for an even
    count) and every pass's wall time. A pass is one generation per prompt at batch 1
    (:func:`timed_generate`) or one refilled stream at ``batch_size`` > 1 (:func:`timed_stream`).
    ``on_generation()``, if given, is called after every timed generation of every pass (progress:
    with several passes the results come only at the end). Before each pass the host's speed is
    probed (:func:`hsd_bench.host_probe.round_trip_us`, rule 6) and every ``Timed`` carries the
    probes of the passes it was timed in, and what other threads took from the timing thread
    during its generation in each pass (:func:`hsd_bench.host_probe.contention`: preemptions,
    seconds waiting for a CPU, moves; at ``batch_size`` > 1, since the stream's previous finished
    row).

    ``after_pass(k)``, if given, runs after pass ``k``'s last generation (0-based), before the next
    pass's probe. Why: the benchmark's measuring passes (an outside share read with CUDA events)
    describe the timed passes only if they meet the same host state; run back to back after all
    timed passes, on a loaded host they ran 16-54 % slower than the timed passes in five of seven
    processes (docs/gpu-runs.md, "Fifty-fourth run"). Interleaved, each one is paired with the
    timed pass just before it. ``run.py`` passes none: its passes stay back to back (rule 4)."""
    repeats = timing_repeats_for(repeats, "cpu")
    device = decoder_device(decoder)
    probes: list[float] = []

    def one_pass() -> Iterator[tuple[int, Timed]]:
        probes.append(host_probe.round_trip_us(device))
        if batch_size == 1:
            timed = ((i, timed_generate(decoder, p, max_new, decoding, stop_sequences, tokenizer))
                     for i, p in enumerate(prompts))
        else:
            timed = timed_stream(decoder, prompts, max_new, decoding, batch_size, stop_sequences, tokenizer)
        while True:
            before = host_probe.contention()  # taken while the generation runs, not while its row is written
            item = next(timed, None)
            if item is None:
                break
            item[1].contention = [host_probe.contention_since(before)]
            if on_generation is not None:
                on_generation()
            yield item
        if after_pass is not None:
            after_pass(len(probes) - 1)

    if repeats == 1:
        for index, timed in one_pass():
            timed.host_probe_us = list(probes)
            yield index, timed
        return
    passes = [dict(one_pass()) for _ in range(repeats)]
    for i in range(len(prompts)):
        runs = [p[i] for p in passes]
        walls = [t.generation.stats.wall_s for t in runs]
        kept = runs[sorted(range(repeats), key=walls.__getitem__)[(repeats - 1) // 2]]
        first = runs[0].generation.output_ids
        yield i, Timed(kept.generation, sum(t.graph_captures for t in runs), any(t.retimed for t in runs),
                       pass_wall_s=walls, pass_decode_s=[t.generation.stats.decode_s for t in runs],
                       outputs_agree=all(t.generation.output_ids == first for t in runs),
                       host_probe_us=list(probes),
                       contention=[t.contention[0] for t in runs])


def decoder_device(decoder) -> torch.device:
    """The device a decoder's models run on (its first model's; CPU for one without models)."""
    for model in getattr(decoder, "models", ()):
        device = getattr(model, "device", None)
        if device is not None:
            return torch.device(device)
    return torch.device("cpu")
