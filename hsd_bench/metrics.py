"""Per-run aggregates from per-sample rows (DESIGN.md §5).

Throughput is token-weighted (sum of tokens / sum of time), and a method's
speedup is its throughput over the autoregressive baseline's on the same
samples, both measured in the same process. At batch B a row's ``wall_s`` is
its share of the elapsed time (the engine splits every interval among the
rows it served), so the same sums give the aggregate throughput of the
batch; ``latency_s`` is a row's own admission-to-finish time.
"""

from __future__ import annotations

from collections import defaultdict


def _ratio(num: float, den: float):
    return num / den if den else None


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize_method(rows: list[dict]) -> dict:
    tokens = sum(r["n_generated"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    decode = sum(r["decode_s"] for r in rows)
    drafted = sum(r["drafted"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    forwards = sum(r["target_forwards"] for r in rows)
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
    scores = defaultdict(list)
    for r in rows:
        for k, v in (r.get("scores") or {}).items():
            if v is not None:
                scores[k].append(v)
    parity = [r["parity_exact"] for r in rows if r.get("parity_exact") is not None]
    latency = [r.get("latency_s", r["wall_s"]) for r in rows]
    taus = [r["mean_accepted_len"] for r in rows if r.get("mean_accepted_len") is not None]
    return {
        "n_samples": len(rows),
        "batch_size": max((r.get("batch_size", 1) for r in rows), default=1),
        "n_generated": tokens,
        "tokens_per_s": _ratio(tokens, wall),
        "decode_tokens_per_s": _ratio(tokens, decode),
        "acceptance_rate": _ratio(accepted, drafted),
        "acceptance_per_level": {k: _ratio(per_level_a[k], d) for k, d in per_level_d.items()},
        "acceptance_per_position": [_ratio(a, n) for a, n in zip(acc_pos, reached)],
        "mean_accepted_len": _ratio(tokens, forwards),
        # per-row spread: a batch's rows accept differently
        "mean_accepted_len_per_row": {"p10": quantile(taus, 0.1), "p50": quantile(taus, 0.5),
                                      "p90": quantile(taus, 0.9)},
        "latency_s": {"mean": sum(latency) / len(latency) if latency else None, "p50": quantile(latency, 0.5),
                      "p90": quantile(latency, 0.9), "max": max(latency, default=None)},
        "target_forwards_per_token": _ratio(forwards, tokens),
        "layer_evals_per_token": _ratio(sum(layer_evals.values()), tokens),
        "layer_evals_per_token_by_model": {k: _ratio(v, tokens) for k, v in layer_evals.items()},
        "time_split_s": dict(time_split),
        "parity_exact": (sum(parity) / len(parity)) if parity else None,
        "scores": {k: sum(v) / len(v) for k, v in scores.items()},
    }


def summarize(rows: list[dict], baseline: str = "autoregressive") -> dict[str, dict]:
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if not r.get("skipped"):
            by_method[r["method"]].append(r)
    out = {m: summarize_method(rs) for m, rs in by_method.items()}
    base = out.get(baseline)
    for m, s in out.items():
        if base and base["tokens_per_s"] and s["tokens_per_s"]:
            s["speedup_vs_ar"] = s["tokens_per_s"] / base["tokens_per_s"]
            s["decode_speedup_vs_ar"] = _ratio(s["decode_tokens_per_s"], base["decode_tokens_per_s"])
            s["score_delta_vs_ar"] = {
                k: v - base["scores"][k] for k, v in s["scores"].items() if k in base["scores"]
            }
        else:
            s["speedup_vs_ar"] = None
    return out


def format_table(summary: dict[str, dict]) -> str:
    """The summary table printed at the end of a run."""
    header = ["method", "samples", "B", "tok/s", "speedup", "latency", "accept", "tau", "layer-evals/tok", "parity",
              "score", "d-score"]
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
