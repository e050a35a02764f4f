"""Where a latency prediction and a measured hierarchy part ways, term by term.

The latency model predicts a stack's time per committed token as
``L_p = sum_i f_i * c_i``: level ``i`` makes ``f_i`` forwards per token (from the
acceptance model) at ``c_i`` seconds each (from the profiled cost table), and
nothing else costs time. The engine measures the same quantities (forwards per
level, seconds inside each level, decode seconds), so the gap between
measured and predicted speedup splits exactly into:

* ``forwards``: ``sum_i (f_i^m - f_i^p) c_i^p / L_p`` -- the acceptance side:
  levels call more (or fewer) forwards than the acceptance model said;
* ``cost``: ``sum_i f_i^m (c_i^m - c_i^p) / L_p`` -- the cost side: a level's
  time per forward inside the engine against the profiled forward alone. The
  engine's level clock spans the forward *and* that level's own host work
  (acceptance, cache rollback, bookkeeping), so a per-round host cost the
  model lacks shows up here, largest where forwards are small and many;
* ``other``: decode time inside no level's clock (the loop between levels),
  ``/ L_p``;

with ``L_m / L_p = 1 + forwards + cost + other``, and the AR side, ``ar_ratio =
AR_m / AR_p`` (measured over profiled seconds per AR token). Then
``measured speedup / predicted speedup = ar_ratio / (L_m / L_p)``. Without this
split, a wrong prediction says only *that* the model is off, not *which* of its
inputs to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsd_bench.hierarchy.latency import LatencyBreakdown


@dataclass(frozen=True)
class MeasuredStack:
    """The engine's counters for one stack over a set of prompts (sums over prompts)."""

    n_generated: int
    decode_s: float
    forwards: list[int]  # per level, bottom -> top (level 0: drafted tokens), as GenerationStats.rounds
    level_s: list[float]  # seconds inside each level, as GenerationStats.level_time_s
    ar_n_generated: int
    ar_decode_s: float


@dataclass(frozen=True)
class PredictionGap:
    predicted_tau: float
    measured_tau: float
    forwards: float  # share of the predicted latency, see the module docstring
    cost: float
    other: float
    ar_ratio: float
    latency_ratio: float  # L_m / L_p = 1 + forwards + cost + other
    per_level: list[dict]

    @property
    def speedup_ratio(self) -> float:
        """Measured over predicted speedup."""
        return self.ar_ratio / self.latency_ratio


def prediction_gap(predicted: LatencyBreakdown, measured: MeasuredStack) -> PredictionGap:
    levels = len(predicted.forwards_per_token)
    if len(measured.forwards) != levels or len(measured.level_s) != levels:
        raise ValueError(f"the prediction has {levels} levels, the measurement {len(measured.forwards)} "
                         f"forward counts and {len(measured.level_s)} level times")
    if measured.n_generated <= 0 or measured.ar_n_generated <= 0:
        raise ValueError("no tokens measured: nothing to compare")
    n = measured.n_generated
    lat_p = predicted.latency_per_token
    forwards_term = cost_term = 0.0
    per_level = []
    for i in range(levels):
        f_p = predicted.forwards_per_token[i]
        c_p = predicted.cost_per_token_by_level[i] / f_p if f_p > 0 else 0.0
        f_m = measured.forwards[i] / n
        c_m = measured.level_s[i] / measured.forwards[i] if measured.forwards[i] else 0.0
        forwards_term += (f_m - f_p) * c_p / lat_p
        cost_term += f_m * (c_m - c_p) / lat_p
        per_level.append({"level": predicted.names[i] if i < len(predicted.names) else str(i),
                          "forwards_per_token": (f_p, f_m), "seconds_per_forward": (c_p, c_m)})
    other = max(0.0, measured.decode_s - sum(measured.level_s)) / n / lat_p
    lat_m = measured.decode_s / n
    # ``other`` is clipped at 0 (level intervals may overlap the decode clock by rounding), so the
    # identity holds up to that clip; report the ratio from the measured clock itself.
    return PredictionGap(
        predicted_tau=predicted.tokens_per_cycle,
        measured_tau=n / measured.forwards[-1] if measured.forwards[-1] else float("nan"),
        forwards=forwards_term, cost=cost_term, other=other,
        ar_ratio=(measured.ar_decode_s / measured.ar_n_generated) / predicted.ar_latency_per_token,
        latency_ratio=lat_m / lat_p, per_level=per_level,
    )
