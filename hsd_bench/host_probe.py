"""How fast the host issues device work right now: a probe taken before every timed pass.

Why: on a small model a speculative method is host-bound -- each round is a handful of
graph replays, a verdict read back, some bookkeeping -- so its tokens/s measures the host as
much as the method. On the lent H200 VM the host's speed moves between states over tens of
seconds: one launch + event-sync round trip took 16-17 µs in some fresh processes and
24-28 µs in others, and vanilla_sd on the shipped 5.6 M model followed it (1512-1885 tok/s
across processes, AR 2390-2644; docs/gpu-runs.md, "Fourteenth run"). Pinning the process
to a core did not remove it. The probe cannot make a slow host fast; it makes the host state a
number beside the tokens/s, so two runs that disagree can be told apart from a regression.

The probe is the host's part of one verification round, reduced to its core: launch one tiny
kernel, record an event, wait for it. On CPU (no asynchronous device) it times the same
sequence on a CPU tensor: the dispatcher and interpreter overhead that the engine's host work
is made of. It runs between timed passes, never inside one (``measure.timed_passes``), and
costs about ``ROUNDS`` round trips (~2 ms on a GPU).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Iterable

try:
    import resource  # Unix only: on Windows there is no per-thread count and preemptions() says None
except ImportError:
    resource = None

if TYPE_CHECKING:
    import torch

ROUNDS = 64
WARMUP = 16
_SCRATCH: dict[str, "torch.Tensor"] = {}  # one tensor per device, so a probe allocates nothing after its first


def round_trip_us(device: torch.device | str = "cpu") -> float:
    """Median microseconds of one (tiny kernel launch, event record, event wait) round trip on ``device``."""
    import torch  # here, so that judging saved probes (scripts/measurement_checks.py) needs no torch

    device = torch.device(device)
    key = str(device)
    if key not in _SCRATCH:
        # A normal tensor whatever mode the first probe runs in: made under inference mode (the
        # engine's), it would be an inference tensor, which a later probe outside the mode may not
        # update in place -- the probe failed so whenever its first call came from such code.
        with torch.inference_mode(False):
            _SCRATCH[key] = torch.zeros(1, device=device)
    x = _SCRATCH[key]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        event, stream = torch.cuda.Event(), torch.cuda.current_stream(device)  # the stream x's kernel runs on
    times = []
    for i in range(WARMUP + ROUNDS):
        t0 = time.perf_counter()
        x.add_(1.0)
        if cuda:
            event.record(stream)
            event.synchronize()
        dt = time.perf_counter() - t0
        if i >= WARMUP:
            times.append(dt)
    return statistics.median(times) * 1e6


def preemptions() -> int | None:
    """How often the calling thread has been preempted so far: its involuntary context switches
    (``getrusage(RUSAGE_THREAD).ru_nivcsw``), None where the platform does not count them per
    thread (not Linux).

    Why, beside the probe: the probe says how fast the host issues work, not why. On a small model
    a speculative method's host is the bound, and the fifty-fifth GPU run found its overhead share
    doubling beside 16 memory copiers free to run on the benchmark's cores and not beside the same
    copiers pinned away from them (docs/gpu-runs.md): other processes taking the run's time slices.
    The difference of two readings around a timed generation counts the slices it lost
    (``measure.timed_passes``) to any other thread: another process's, or one of the run's own
    where its threads outnumber its cores. On the 2-core CPU VM, run.py's HiSpec job (4 samples,
    32 tokens) was preempted 25 times a pass with both cores, 294 with a spinning process pinned
    to its one core, and 308 pinned alone to that core, where torch's own threads shared it (and
    decoded at a third of the rate); a run with its cores to itself loses few. On a GPU the
    count stays low even on a loaded host: CUDA's default wait spins, so the thread keeps its core
    (HiSpec's timed passes 0-4 times a pass beside 16 memory copiers, 0-2 unloaded, while the
    copiers still doubled its overhead share; 56-78 with a blocking wait, which halved its rate:
    the fifty-sixth GPU run). A high count says the run lost its core; a low one does not say the
    host was unloaded."""
    if resource is None or not hasattr(resource, "RUSAGE_THREAD"):
        return None
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def cpu_wait_s() -> float | None:
    """Seconds the calling thread has so far spent runnable but waiting for a CPU: the scheduler's
    run delay (the second field of ``/proc/thread-self/schedstat``), None where the kernel does not
    say (not Linux).

    Why, beside :func:`preemptions`: the count says how often another thread took the core, not for
    how long, and on a GPU it stays low where the host is loaded (0-4 a pass beside copiers that
    doubled HiSpec's overhead share, above). The time the thread waited is what such a slice costs
    a host-bound rate: a pass that waited a tenth of its wall for a CPU decoded up to a tenth
    slower for it. Where the rate falls further than its wait, the loss is elsewhere (a thread that
    ran, but slower). On the 2-core CPU VM a thread spinning 2 s beside a spinner pinned to its core
    waited 1.0 s (preempted 251 times); alone, 0.000 s."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def migrations() -> int | None:
    """How often the scheduler has so far moved the calling thread to another CPU (``se.nr_migrations``
    in ``/proc/thread-self/sched``, listed by kernels built with scheduler debugging, as the CPU VM's
    and the lent GPU hosts' are), None where it is not listed.

    Why: a thread that waits for no CPU can still run slower after a move, its caches cold on the
    new core; with the wait and the preemptions it separates a neighbour's slices from that."""
    try:
        with open("/proc/thread-self/sched") as f:
            for line in f:
                if line.startswith("se.nr_migrations"):
                    return int(line.split(":")[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Contention:
    """What other threads took from the calling thread so far (or between two readings, from
    :func:`contention_since`): its preemptions, seconds waiting for a CPU and moves between CPUs.
    A field is None where the platform does not say."""

    preemptions: int | None = None
    cpu_wait_s: float | None = None
    migrations: int | None = None


def contention() -> Contention:
    """The calling thread's :class:`Contention` so far (three cheap reads of the kernel's counters)."""
    return Contention(preemptions(), cpu_wait_s(), migrations())


def contention_total(readings: Iterable[Contention]) -> Contention:
    """Several readings' sum, field by field (a pass's generations), each field None where a
    reading lacks it."""
    readings = list(readings)
    return Contention(*(None if None in values else sum(values)
                        for values in zip(*(astuple(r) for r in readings)))) if readings else Contention()


def contention_since(before: Contention) -> Contention:
    """The calling thread's contention since ``before`` (a :func:`contention` reading), each field
    None where either reading lacks it: the one way contention around some work is taken (the
    timed passes' generations, the benchmark's measuring passes)."""
    after = contention()
    return Contention(*(None if a is None or b is None else a - b
                        for a, b in zip(astuple(after), astuple(before))))


# What a row keeps of its passes' contention, by Contention field: a key only where every pass has it.
CONTENTION_KEYS = {"preemptions": "preemptions_passes", "cpu_wait_s": "cpu_wait_s_passes",
                   "migrations": "migrations_passes"}


def contention_passes(readings: list[Contention] | None) -> dict[str, list]:
    """A row's per-pass contention (one reading per pass) under its row keys (:data:`CONTENTION_KEYS`),
    each only where every pass has the field."""
    out = {}
    for name, key in CONTENTION_KEYS.items():
        values = [getattr(r, name) for r in readings or ()]
        if values and None not in values:
            out[key] = values
    return out


# Probes this far apart are two host states: the lent H200's measured ~1.5x apart (16-17 against
# 24-28 µs), while one state's probes stayed within ~10 % of each other.
STATE_RATIO = 1.25


def different_states(a: float, b: float) -> bool:
    """Whether two probes (µs) are more than :data:`STATE_RATIO` apart: two host states, not one."""
    return max(a, b) > STATE_RATIO * min(a, b)


# A method's timed passes whose rates are further apart than this moved with the host even where
# its probes read one state. In the benchmark's 26 unloaded processes of the fifty-third to
# fifty-seventh GPU runs (5.6 M model, H100) a row's passes lay a median 0.7-1.6 % apart by method
# and past 10 % in 1 row of 104; beside other load HiSpec's lay past it in 17 of 46, 13 of them with
# the probes in one state (results/gpu_run57/pass_spread.py). run.py's HiSpec beside 16 memory
# copiers read 1747-2322 tok/s (33 % apart) with no probe warning (the fifty-seventh run): the tiny
# probe loop does not see every state that slows a method.
RATE_SPREAD = 1.10

# A timed pass whose timing thread waited for a CPU more than this share of its wall lost time to
# other threads on the run's cores. On two H100 hosts (the fifty-eighth GPU run, results/gpu_run58/)
# no unloaded pass waited more than 0.01 %; beside 16 unpinned memory copiers HiSpec's and the
# hierarchy's loaded passes decoded at their unloaded rate times (1 - that share), within 3.5 % in
# all 27 that waited 0.7-46 %, and AR's lost less than its wait (its next chunk runs while it waits):
# each wait lasted ~4 ms, of which AR hid 48-70 % with 8-token chunks (2.8 ms of device work queued),
# 58-91 % with 16 and 77-91 % with 32 or 64 (the fifty-ninth run), HiSpec and the hierarchy none. One
# machine of five also slowed 3 of its 20 loaded AR passes by 25-29 % where the wait saw little or
# nothing: RATE_SPREAD's warning is the one that catches such a state.
CPU_WAIT_SHARE = 0.02


def cpu_wait_past(shares: Iterable[float | None]) -> float | None:
    """The largest of ``shares`` (waits for a CPU, each a share of a pass) where it is more than
    :data:`CPU_WAIT_SHARE`, else None: the one test run.py's warnings, the benchmark's table and
    ``scripts/measurement_checks.py`` apply to a wait."""
    known = [w for w in shares if w is not None]
    return max(known) if known and max(known) > CPU_WAIT_SHARE else None


def method_warnings(methods: dict[str, dict], baseline: str) -> list[tuple[str, str]]:
    """What a job's probes and passes say about its rates, each warning with the method it concerns:
    a method whose timed passes straddle host states (its median-pass rate mixes them), one whose
    timing thread waited for a CPU more than :data:`CPU_WAIT_SHARE` of a pass (other threads took
    its cores: the cause, measured), one whose passes' rates spread further than
    :data:`RATE_SPREAD` where neither says why (the host moved where the probe did not look), and a
    method timed in another state than ``baseline`` (its speedup compares two hosts) or beside a
    wait for a CPU in its passes or the baseline's (its speedup compares unequal losses: a wait
    costs a pass what its device has not queued, and on CUDA AR keeps its next chunk queued where a
    speculative method's host reads every verdict before it queues more:
    results/gpu_run58/hidden_wait.py, results/gpu_run59/queued_work.py). ``methods``: the
    summary's per-method entries. The method named lets run.py count each method's warnings in its
    summary, so a sweep's tables flag a rate the host moved (``timing_warning_count``)."""
    out = []
    # each method's largest wait past CPU_WAIT_SHARE (None: none), read by both loops below
    waited_by = {name: cpu_wait_past(s.get("cpu_wait_share_passes") or []) for name, s in methods.items()}
    for name, s in methods.items():
        passes = [p for p in s.get("host_probe_us_passes") or [] if p]
        rates = [r for r in s.get("tokens_per_s_passes") or [] if r]
        waited = waited_by[name]
        spread = (f"{min(rates):.1f}-{max(rates):.1f} tok/s, {100 * (max(rates) / min(rates) - 1):.0f} % apart"
                  if len(rates) > 1 else None)
        if len(passes) > 1 and different_states(min(passes), max(passes)):
            # the rates beside the probes: a probe can spike where the passes' rates agree (an unloaded
            # run.py job's probes read 12.1-23.7 µs, its passes 3.5 % apart: the fifty-seventh GPU run)
            text = (f"{name}'s timed passes ran in different host states (host probe {min(passes):.1f}-"
                    f"{max(passes):.1f} µs{f'; passes {spread}' if spread else ''}): its tokens/s mixes them")
        elif waited is not None:
            # the cause named where it was measured, whether or not the rates spread past RATE_SPREAD
            text = (f"{name}'s timing thread waited for a CPU up to {100 * waited:.1f} % of a timed pass"
                    f"{f' (passes {spread})' if spread else ''}: other threads ran on the run's cores, and a "
                    f"host-bound method's pass loses that share of its rate; its tokens/s keeps each sample's "
                    f"median pass")
        elif spread and max(rates) > RATE_SPREAD * min(rates):
            unseen = ", where its host probes read one state" if len(passes) > 1 else ""
            text = (f"{name}'s timed passes decoded {spread}: the host's speed moved within the "
                    f"job{unseen}; its tokens/s keeps each sample's median pass")
        else:
            continue
        out.append((name, text))
    base = (methods.get(baseline) or {}).get("host_probe_us")
    for name, s in methods.items():
        if name == baseline:
            continue
        mine = s.get("host_probe_us")
        if base and mine and different_states(base, mine):
            out.append((name, f"{name} and {baseline} were timed in different host states (host probe {mine:.1f} vs "
                              f"{base:.1f} µs): its speedup compares two hosts, not two methods alone"))
        elif baseline in methods and (waited_by[baseline] is not None or waited_by[name] is not None):
            out.append((name, f"{name}'s speedup against {baseline} compares passes that waited for a CPU: a pass "
                              f"loses its wait less the device work it has queued, which differs between methods (on "
                              f"CUDA the native AR's next chunk stays queued, a speculative method's host reads each "
                              f"verdict before it queues more), so the speedup moves with the load"))
    return out


def state_warnings(methods: dict[str, dict], baseline: str) -> list[str]:
    """:func:`method_warnings`' texts, in order: what run.py's log and ``bench.md`` print."""
    return [text for _, text in method_warnings(methods, baseline)]
