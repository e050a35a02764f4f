"""Per-run aggregates from per-sample rows (DESIGN.md §5).

Throughput is token-weighted (sum of tokens / sum of time), and a method's
speedup is its throughput over the autoregressive baseline's on the same
samples, both measured in the same process. At batch B a row's ``wall_s`` is
its share of the elapsed time (the engine splits every interval among the
rows it served), so the same sums give the aggregate throughput of the
batch; ``latency_s`` is a row's own admission-to-finish time.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import numpy as np

from hsd_bench import host_probe

BOOTSTRAP_RESAMPLES = 2000


def _ratio(num: float, den: float):
    return num / den if den else None


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _by_pass(rows: list[dict], key: str) -> list[list[float]] | None:
    """Every row's per-pass values under ``key``, grouped by pass, when every row was timed in the
    same number of passes (else None: a row lacks them, or rows from runs with other counts)."""
    values = [r.get(key) for r in rows]
    if not values or any(v is None for v in values) or len({len(v) for v in values}) != 1:
        return None
    return [[v[k] for v in values] for k in range(len(values[0]))]


def _pass_rates(rows: list[dict], tokens: int) -> list[float] | None:
    """All rows' tokens over each pass's wall time, when every row was timed in the same passes."""
    passes = _by_pass(rows, "wall_s_passes")
    return None if passes is None else [_ratio(tokens, sum(walls)) for walls in passes]


def _host_probes(rows: list[dict]) -> list[float] | None:
    """Each pass's host probe (µs, ``host_probe.py``), the median over rows, when every row has as many."""
    passes = _by_pass(rows, "host_probe_us_passes")
    return None if passes is None else [statistics.median(probes) for probes in passes]


def contention_by_pass(rows: list[dict]) -> dict:
    """What other threads took from the timing thread in each pass, summed over rows (their
    ``preemptions_passes``, ``cpu_wait_s_passes`` and ``migrations_passes``: ``host_probe.contention``)
    where every row has as many passes, and ``cpu_wait_share_passes``: each pass's wait for a CPU
    over that pass's wall time (``wall_s_passes``, or ``wall_s`` for one pass) -- the share of the
    pass a host-bound rate may have lost to it. run.py's summary and the benchmark's rows
    (``bench.runs.decoder_run``) both take theirs here. A key is None where a row lacks it."""
    out = {}
    for key in host_probe.CONTENTION_KEYS.values():
        passes = _by_pass(rows, key)
        out[key] = None if passes is None else [sum(values) for values in passes]
    waits = out["cpu_wait_s_passes"]
    walls = _by_pass([r if "wall_s_passes" in r else {"wall_s_passes": [r.get("wall_s")]} for r in rows],
                     "wall_s_passes")
    known = (waits is not None and walls is not None and len(walls) == len(waits)
             and all(w is not None for wall in walls for w in wall))
    out["cpu_wait_share_passes"] = [_ratio(w, sum(wall)) for w, wall in zip(waits, walls)] if known else None
    return out


def summarize_method(rows: list[dict]) -> dict:
    tokens = sum(r["n_generated"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    # None where a decoder cannot tell its prefill apart (hf_reference.py): no decode rate then
    decode = None if any(r["decode_s"] is None for r in rows) else sum(r["decode_s"] for r in rows)
    drafted = sum(r["drafted"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    forwards = sum(r["target_forwards"] for r in rows)
    draft_tokens = sum(r.get("draft_tokens", 0) for r in rows)
    draft_rounds = sum(r.get("draft_rounds", 0) for r in rows)
    per_level_d, per_level_a = defaultdict(int), defaultdict(int)
    layer_evals, time_split = defaultdict(float), defaultdict(float)
    reached, acc_pos = [], []
    for r in rows:
        for k, v in r["drafted_per_level"].items():
            per_level_d[k] += v
        for k, v in r["accepted_per_level"].items():
            per_level_a[k] += v
        for k, v in r["layer_evals"].items():
            layer_evals[k] += v
        for k, v in r["time_split_s"].items():
            time_split[k] += v
        for j, (n, a) in enumerate(zip(r["position_reached"], r["position_accepted"])):
            if j >= len(reached):
                reached.append(0)
                acc_pos.append(0)
            reached[j] += n
            acc_pos[j] += a
    if "other" in time_split and decode is not None:
        # the rest of the decode time as a whole: a row's own "other" is clamped at 0 where a
        # batch's level intervals served it more than the elapsed intervals charged it
        time_split["other"] = max(0.0, decode - sum(v for k, v in time_split.items() if k != "other"))
    scores = defaultdict(list)
    for r in rows:
        for k, v in (r.get("scores") or {}).items():
            if v is not None:
                scores[k].append(v)
    parity = [r["parity_exact"] for r in rows if r.get("parity_exact") is not None]
    diverged = [r["divergence"]["class"] for r in rows if r.get("parity_exact") is False and r.get("divergence")]
    latency = [r.get("latency_s", r["wall_s"]) for r in rows]
    taus = [r["mean_accepted_len"] for r in rows if r.get("mean_accepted_len") is not None]
    probes = _host_probes(rows)
    return {
        "n_samples": len(rows),
        "batch_size": max((r.get("batch_size", 1) for r in rows), default=1),
        "n_generated": tokens,
        "tokens_per_s": _ratio(tokens, wall),
        "decode_tokens_per_s": None if decode is None else _ratio(tokens, decode),
        # timing_repeats > 1: tokens/s of each timed pass (the spread the median-pass timing hides)
        "tokens_per_s_passes": _pass_rates(rows, tokens),
        # the host's speed before each pass (µs per launch + sync round trip; lower is faster) and its
        # median: host-bound methods follow it, so two runs' tokens/s compare only at similar probes
        "host_probe_us_passes": probes,
        "host_probe_us": statistics.median(probes) if probes else None,
        # what other threads took from the timing thread, per pass: how often, how long it waited for
        # a CPU (and that as a share of the pass), its moves between CPUs; a run with its cores to
        # itself loses little (docs/performance.md, "Settings worth knowing")
        **contention_by_pass(rows),
        "acceptance_rate": _ratio(accepted, drafted),
        "acceptance_per_level": {k: _ratio(per_level_a[k], d) for k, d in per_level_d.items()},
        "acceptance_per_position": [_ratio(a, n) for a, n in zip(acc_pos, reached)],
        "mean_accepted_len": _ratio(tokens, forwards),
        # tokens level 0 drafted per draft round: draft_len, or less under method.draft_stop
        "mean_draft_len": _ratio(draft_tokens, draft_rounds),
        # share of draft rounds queued before the verdict that started them came back (Engine.lookahead)
        "draft_rounds_ahead": _ratio(sum(r.get("draft_rounds_ahead", 0) for r in rows), draft_rounds),
        # hand-ups whose verification was queued before the middle level's verdict came back, and the
        # positions those verified past the hand-up (computed and dropped; in layer_evals_per_token)
        "hand_ups_ahead": sum(r.get("hand_ups_ahead", 0) for r in rows),
        "hand_up_padding": sum(r.get("hand_up_padding", 0) for r in rows),
        # of those, hand-ups longer than the queued step: finished by a second step of the level above
        "hand_ups_continued": sum(r.get("hand_ups_continued", 0) for r in rows),
        # level-0 rounds run guarded inside CUDA conditional nodes (torch >= 2.12 on CUDA graphs)
        "guarded_rounds_on_device": sum(r.get("guarded_rounds_on_device", 0) for r in rows),
        # per-row spread: a batch's rows accept differently
        "mean_accepted_len_per_row": {"p10": quantile(taus, 0.1), "p50": quantile(taus, 0.5),
                                      "p90": quantile(taus, 0.9)},
        "latency_s": {"mean": sum(latency) / len(latency) if latency else None, "p50": quantile(latency, 0.5),
                      "p90": quantile(latency, 0.9), "max": max(latency, default=None)},
        "target_forwards_per_token": _ratio(forwards, tokens),
        # None where a decoder cannot count them (transformers' own generate(), hf_reference.py)
        "layer_evals_per_token": _ratio(sum(layer_evals.values()), tokens) if layer_evals else None,
        "layer_evals_per_token_by_model": {k: _ratio(v, tokens) for k, v in layer_evals.items()},
        "time_split_s": dict(time_split),
        "parity_exact": (sum(parity) / len(parity)) if parity else None,
        # divergences from AR explained by a near-tie of the target's logits, and the rest (parity.py);
        # a lossless method must have parity_unexplained == 0
        "parity_near_tie": diverged.count("near_tie") if parity else None,
        "parity_unexplained": (len([p for p in parity if not p]) - diverged.count("near_tie")) if parity else None,
        # tokens computed past a stop and dropped (a round's tail; ar_chunk - 1 at most for AR)
        "discarded_tokens": sum(r.get("discarded_tokens", 0) for r in rows),
        # a round queued before the read that ended its sequence, computed and dropped (AR: one chunk)
        "dropped_in_flight_tokens": sum(r.get("dropped_in_flight_tokens", 0) for r in rows),
        # run.py processes that timed these rows: more than one where a resumed run decoded the rest
        "launches": len({r.get("launch") for r in rows}),
        "graph_captures_timed": sum(r.get("graph_captures", 0) for r in rows),
        "retimed_samples": sum(bool(r.get("retimed")) for r in rows),
        "scores": {k: sum(v) / len(v) for k, v in scores.items()},
    }


def launch_warnings(rows: list[dict], baseline: str = "autoregressive") -> list[tuple[str, str]]:
    """A warning, with the method it concerns, for each method whose rows or whose baseline's were
    timed by more than one run.py process.

    Why: a run interrupted and run again keeps its finished rows and decodes only the rest, so no
    result is lost; but its speedup then divides rates from different processes -- other host
    states, another warm-up -- where run.py's promise is a ratio from one job. Flagged, it is
    counted in ``timing_warning_count`` like the host's warnings, and a sweep's tables show it."""
    launches: dict[str, set] = defaultdict(set)
    for r in rows:
        if not r.get("skipped"):
            launches[r["method"]].add(r.get("launch"))
    base = launches.get(baseline)
    out = []
    for name, mine in launches.items():
        if name == baseline or base is None or len(mine | base) < 2:
            continue
        out.append((name, f"{name}'s rows and {baseline}'s were timed by {len(mine | base)} run.py processes "
                          f"(a resumed run decodes only the rows it lacks): its speedup divides rates from different "
                          f"processes, not one job's; for a ratio from one job, run it into a new results_dir"))
    return out


def warning_counts(flagged: list[tuple[str, str]], methods, baseline: str = "autoregressive") -> dict[str, int]:
    """Per method, how many of the job's timing warnings (``(method, text)`` pairs) concern its
    numbers: its own, and for a method beside the baseline the baseline's too -- its speedup divides
    by the baseline's rate, so a baseline whose passes spread or changed host state moves every
    method's speedup, and a sweep's table (``timing_warnings``) must not show 0 beside it."""
    own = Counter(name for name, _ in flagged)
    return {name: own[name] + (own[baseline] if name != baseline else 0) for name in methods}


def summarize(rows: list[dict], baseline: str = "autoregressive") -> dict[str, dict]:
    """Per method: the aggregates of :func:`summarize_method`, the speedup over ``baseline`` on
    the same samples and, when rows carry a ``category`` (Spec-Bench), the same per category
    under ``by_category`` (each against the baseline's rows of that category)."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if not r.get("skipped"):
            by_method[r["method"]].append(r)
    out = {m: summarize_method(rs) for m, rs in by_method.items()}
    base = out.get(baseline)
    for m, s in out.items():
        _compare(s, base)
        s.update(bootstrap_intervals(by_method[m], by_method.get(baseline, [])))
    categories = sorted({r["category"] for rs in by_method.values() for r in rs if r.get("category") is not None})
    for m, rs in by_method.items():
        if not categories:
            break
        per = {}
        for c in categories:
            mine = [r for r in rs if r.get("category") == c]
            if mine:
                ref = [r for r in by_method.get(baseline, []) if r.get("category") == c]
                per[c] = _compare(summarize_method(mine), summarize_method(ref) if ref else None)
        out[m]["by_category"] = per
    return out


def bootstrap_intervals(rows: list[dict], base_rows: list[dict], level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals over samples: ``speedup_vs_ar_lo/_hi`` (paired: each
    resample draws the same samples for the method and the baseline) and
    ``mean_accepted_len_lo/_hi``. Empty with fewer than two samples.

    Why over samples: a run's samples are its unit of replication (prompts differ in
    how predictable they are), so a method comparison needs this spread, not only the mean.
    """
    base = {r["sample_id"]: r for r in base_rows}
    paired = [(r, base[r["sample_id"]]) for r in rows if r["sample_id"] in base]
    if len(rows) < 2:
        return {}
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    out = {}
    tok = np.array([r["n_generated"] for r in rows], dtype=float)
    fwd = np.array([r["target_forwards"] for r in rows], dtype=float)
    idx = rng.integers(0, len(rows), size=(BOOTSTRAP_RESAMPLES, len(rows)))
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = tok[idx].sum(1) / fwd[idx].sum(1)
    out["mean_accepted_len_lo"], out["mean_accepted_len_hi"] = _quantiles(tau, alpha)
    if len(paired) >= 2:
        m = np.array([[r["n_generated"], r["wall_s"], b["n_generated"], b["wall_s"]] for r, b in paired], dtype=float)
        idx = rng.integers(0, len(paired), size=(BOOTSTRAP_RESAMPLES, len(paired)))
        t = m[idx].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            speedup = (t[:, 0] / t[:, 1]) / (t[:, 2] / t[:, 3])
        out["speedup_vs_ar_lo"], out["speedup_vs_ar_hi"] = _quantiles(speedup, alpha)
    return out


def _quantiles(values: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _compare(s: dict, base: dict | None) -> dict:
    """Add the speedup and score difference of summary ``s`` over the baseline summary ``base``."""
    if base and base["tokens_per_s"] and s["tokens_per_s"]:
        s["speedup_vs_ar"] = s["tokens_per_s"] / base["tokens_per_s"]
        decode, base_decode = s["decode_tokens_per_s"], base["decode_tokens_per_s"]
        s["decode_speedup_vs_ar"] = None if decode is None else _ratio(decode, base_decode)
        s["score_delta_vs_ar"] = {k: v - base["scores"][k] for k, v in s["scores"].items() if k in base["scores"]}
    else:
        s["speedup_vs_ar"] = None
    return s


def format_table(summary: dict[str, dict]) -> str:
    """The summary table printed at the end of a run."""
    header = ["method", "samples", "B", "tok/s", "speedup", "latency", "accept", "tau", "layer-evals/tok", "parity",
              "unexplained", "score", "d-score"]
    lines = []
    for m, s in summary.items():
        score_key = next(iter(s["scores"]), None)
        delta = (s.get("score_delta_vs_ar") or {}).get(score_key) if score_key else None
        lines.append([
            m,
            str(s["n_samples"]),
            str(s.get("batch_size", 1)),
            _fmt(s["tokens_per_s"], ".1f"),
            _fmt(s.get("speedup_vs_ar"), ".2f", "x"),
            _fmt((s.get("latency_s") or {}).get("mean"), ".2f", "s"),
            _fmt(s["acceptance_rate"], ".2f"),
            _fmt(s["mean_accepted_len"], ".2f"),
            _fmt(s["layer_evals_per_token"], ".1f"),
            _fmt(s["parity_exact"], ".2f"),
            _fmt(s.get("parity_unexplained"), "d"),
            f"{score_key}={s['scores'][score_key]:.3f}" if score_key else "-",
            _fmt(delta, "+.3f"),
        ])
    if not lines:
        return "(no sample was generated: every prompt was skipped, see rows.jsonl)"
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(header)]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"
