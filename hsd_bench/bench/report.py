"""Tables: one markdown table and one JSON document per benchmark part."""

from __future__ import annotations

from hsd_bench import host_probe
from hsd_bench.bench.runs import RunResult
from hsd_bench.parity import classify


def parity(a: list[list[int]], b: list[list[int]]) -> float | None:
    if not a or not b:
        return None
    return sum(x == y for x, y in zip(a, b)) / len(a)


def explain_parity(results: list[RunResult], ar: RunResult, model, prompts: list[list[int]],
                   reference_logits=None) -> None:
    """For every run of ``model``'s backend that is not ``ar`` itself: why its outputs differ from
    ``ar``'s (``parity.classify``: near ties of the dtype's arithmetic, or unexplained), kept in
    ``r.extra["parity_explained"]`` (once per run). In bf16 the benchmark's "= AR" share alone
    cannot tell a rounding tie from a bug; run.py's rows are classified by the same function.
    ``reference_logits``: the target's float32 logits after given ids, for the float32 second
    opinion on every unexplained divergence (``parity.explain``)."""
    for r in results:
        if r is ar or r.backend != ar.backend or not r.outputs or "parity_explained" in r.extra:
            continue
        r.extra["parity_explained"] = classify(model, prompts, ar.outputs, r.outputs, reference_logits)


def summarize(results: list[RunResult], ar: dict[str, RunResult], hf_ar: RunResult | None,
              bytes_per_token: dict[str, float] | None = None, copy_bw: float | None = None) -> list[dict]:
    rows = []
    for r in results:
        base = ar.get(r.backend)
        row = {
            "name": r.name,
            "backend": r.backend,
            "method": r.method,
            "tokens_per_rep": r.tokens,
            "reps": len(r.wall_s),
            "wall_s": r.wall_s,
            "decode_s": r.decode_s,  # per pass, where the decoder reports decode time (engines)
            "tokens_per_s": r.tokens_per_s,
            "decode_tokens_per_s": r.decode_tokens_per_s,
            # each timed pass's rate, as run.py's summary keeps it (metrics.summarize_method)
            "tokens_per_s_passes": [r.tokens / w if w else None for w in r.wall_s],
            "speedup_vs_same_backend_ar": (r.tokens_per_s / base.tokens_per_s) if base else None,
            "same_backend_ar": base.name if base else None,
            "mean_accepted_len": r.mean_accepted_len,
            "parity_vs_same_backend_ar": parity(r.outputs, base.outputs) if base else None,
            "parity_vs_hf_ar": parity(r.outputs, hf_ar.outputs) if hf_ar else None,
            **r.extra,
        }
        if bytes_per_token and r.name in bytes_per_token and copy_bw:
            rate = r.decode_tokens_per_s or r.tokens_per_s
            row["bytes_per_token"] = bytes_per_token[r.name]
            row["achieved_bw_GBps"] = bytes_per_token[r.name] * rate / 1e9
            row["bw_fraction"] = bytes_per_token[r.name] * rate / copy_bw
        rows.append(row)
    return rows


def state_warnings(rows: list[dict]) -> list[str]:
    """run.py's warnings about the host's state (``host_probe.state_warnings``) for a table's rows:
    a row whose timed passes straddle host states or whose passes' rates spread, and a row timed in
    another state than its backend's AR. Why: the benchmark times exactly as run.py does, so a
    rate run.py would flag is flagged here by the same rule, not left for a reader to find in
    ``bench.json``."""
    out = []
    for ar_name in dict.fromkeys(r.get("same_backend_ar") for r in rows):
        out += host_probe.state_warnings({r["name"]: r for r in rows if r.get("same_backend_ar") == ar_name}, ar_name)
    return out


def _fmt(v, spec: str = ".1f") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def pct(v) -> str:
    """A share as a percentage with one decimal, "–" where there is none."""
    return "–" if v is None else f"{100 * v:.1f}%"


SLOW_PASS_SHOWN = 0.05
"""How far the reported instrumented pass's decode time may lie from the timed passes' before the
table says so beside its outside share. Why: on a host-bound row the share follows that distance,
not the timed run -- the hierarchy on the 294 M model read 4.69 % + 0.29 × it, pass by pass, over
four processes whose timed passes ran alike (docs/gpu-runs.md, "Forty-third run"), so a pass
13 % slower read 8.5 % where the passes at the timed rate read 4.2-4.9 %."""


def _spread(span, slowdown: float | None = None, pass_record: dict | None = None) -> str:
    """What follows a median outside share taken over several passes: their range, how much
    slower or faster the reported pass decoded than the timed passes where that is at least
    ``SLOW_PASS_SHOWN``, and how long the reported pass's thread waited for a CPU where that was
    more than ``host_probe.CPU_WAIT_SHARE`` of its decode time -- time the device idles for a
    host-bound row, which the share then counts (the fifty-eighth GPU run's 12.6 and 30.3 % rows
    on the 5.6 M model) -- e.g. " (5.7-18.0%; pass 13% slower; pass waited 156 ms for a CPU)"."""
    parts = []
    if span and span[0] != span[1]:
        parts.append(f"{100 * span[0]:.1f}-{100 * span[1]:.1f}%")
    if slowdown is not None and abs(slowdown) >= SLOW_PASS_SHOWN:
        parts.append(f"pass {100 * abs(slowdown):.0f}% {'slower' if slowdown > 0 else 'faster'}")
    waited, decode = (pass_record or {}).get("cpu_wait_s"), (pass_record or {}).get("decode_s")
    if waited is not None and decode and host_probe.cpu_wait_past([waited / decode]) is not None:
        parts.append(f"pass waited {1e3 * waited:.0f} ms for a CPU")
    return f" ({'; '.join(parts)})" if parts else ""


def _why(explained: dict | None) -> str:
    """What follows a parity share below 1, e.g. " (2 near ties, 0 unexplained)"; nothing when all are exact."""
    if not explained or not (explained["near_tie"] or explained["unexplained"]):
        return ""
    ties = explained["near_tie"]
    return f" ({ties} near tie{'' if ties == 1 else 's'}, {explained['unexplained']} unexplained)"


def markdown(rows: list[dict]) -> str:
    """One row per run. The two overhead columns (engine methods only; instrument.py):

    * *outside forwards (async)* -- share of decode wall time the device spends
      outside model calls with asynchronous dispatch (CUDA events, no added
      syncs): the engine overhead as decoding really runs; the median of the row's
      instrumented passes, their range in brackets when there were several, and how much
      slower (or faster) that pass decoded than the timed passes where it is 5 % or more --
      on a host-bound row the share grows with it (``SLOW_PASS_SHOWN``) -- and how long that
      pass's thread waited for a CPU where it was more than 2 % of the pass;
    * *host-serial overhead* -- the same share with the device synchronised
      around every call: all of the engine's host time, an upper bound;
    * *device idle (trace)* (``bench_gpu.py --device-trace``) -- the device's own idle share
      in the timed passes: a kernel trace's busy time against their decode time, and in
      brackets the part between launches, the device waiting for the host
      (``trace.at_timed_rate``). Unlike the outside share it does not count the device waiting
      inside a call for the host as busy, which on host-bound methods is most of the gap. A row
      whose rounds ran guarded inside CUDA conditional nodes says instead why it has no split
      (``split_left_out``): the tracer stretches the gaps inside such launches, which the split
      assumes it does not (below zero in every such row of the thirty-fifth GPU run).

    *host probe* (runs timed by ``measure.timed_passes``): the host's speed before the passes,
    µs per tiny launch + event wait (``host_probe.py``, median over passes) -- host-bound rows
    follow it, so a table's rates compare with another table's only at similar probes.
    """
    head = ("| run | backend | tok/s | decode tok/s | speedup vs same-backend AR | τ (tokens/target fwd) "
            "| acceptance | = AR | outside forwards (async) | host-serial overhead | device idle (trace) | BW fraction "
            "| host probe |")
    lines = [head, "|" + " --- |" * 13]
    for r in rows:
        acc = r.get("acceptance_per_level") or {}
        acc_s = ", ".join(f"{k}: {v:.2f}" for k, v in acc.items() if v is not None) or "–"
        outside = r.get("outside_forwards_async") or {}
        idle, spread = outside.get("gpu_idle_frac"), outside.get("gpu_idle_frac_range")
        serial = (r.get("host_serial") or {}).get("overhead_frac")
        traced = r.get("device_trace") or {}
        between = traced.get("between_launches_at_timed_rate")
        split = (f" (no split: {traced['split_left_out']})" if traced.get("split_left_out")
                 else "" if between is None else f" ({pct(between)})")
        lines.append(
            f"| {r['name']} | {r['backend']} | {_fmt(r['tokens_per_s'])} | {_fmt(r['decode_tokens_per_s'])} "
            f"| {_fmt(r['speedup_vs_same_backend_ar'], '.2f')}× | {_fmt(r['mean_accepted_len'], '.2f')} | {acc_s} "
            f"| {_fmt(r['parity_vs_same_backend_ar'], '.2f')}{_why(r.get('parity_explained'))} | {pct(idle)}{_spread(spread, outside.get('instrumented_slowdown'), outside)} "
            f"| {pct(serial)} | {pct(traced.get('idle_at_timed_rate'))}{split} "
            f"| {pct(r.get('bw_fraction'))} | {_fmt(r.get('host_probe_us'))}{'' if r.get('host_probe_us') is None else ' µs'} |"
        )
    return "\n".join(lines)
