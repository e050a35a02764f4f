"""Pool measurements: what the profiler writes and the hierarchy selector reads.

A *pool* is the target plus every candidate drafter (separate models or early
exits of a model). For each member the profiler measures the wall time of one
forward pass as a function of how many positions it processes, and for each
ordered pair the probability that one member accepts a token drafted by the
other. The selector (:mod:`hsd_bench.hierarchy.select`) turns these numbers
into the latency-optimal stack.

JSON layout (``version`` 1; every time in seconds)::

    {
      "format": "hsd-bench/pool-profile",
      "version": 1,
      "target": "target",
      "members": {
        "target":   {"path": "target", "exit": null, "num_layers": 24,
                     "cost": {"fixed_s": 0.0120, "per_position_s": 2.0e-5}},
        "target@6": {"path": "target", "exit": 6, "num_layers": 24,
                     "cost": {"fixed_s": 0.0031, "per_position_s": 5.0e-6,
                              "table": [[1, 0.00311], [4, 0.00313], [8, 0.00316]]}},
        "tiny":     {"path": "org/tiny-model", "exit": null, "num_layers": 4,
                     "cost": {"fixed_s": 0.0015, "per_position_s": 1.0e-6},
                     "verify_cost_after": {}}
      },
      "acceptance": {"target@6": {"target": 0.72, "tiny": 0.61},
                     "tiny": {"target": 0.55, "target@6": 0.64}},
      "provenance": {"git_commit": "...", "created": "...", "device": "...", "dtype": "...",
                     "decoding": {"temperature": 0.0}, "dataset": "...", "n_prompts": 32,
                     "n_tokens": 8192, "notes": "..."}
    }

* ``path``/``exit`` are what ``method=hierarchy`` takes per level
  (``method.levels=[{path, exit, batch}]``; ``path: target`` = the target
  model, ``exit: null`` = its last layer), so a selected stack maps to a run
  config without guessing.
* ``cost``: a fit ``fixed_s + per_position_s * positions`` of one forward of
  this view *from layer 0*, optionally with the measured ``table`` of
  ``[positions, seconds]`` it was fitted from; when a table is present it is
  used (piecewise-linear), because small-batch GPU costs are not linear.
* ``verify_cost_after`` (optional): the measured cost of this member's
  verification forward when the level below it is the named member. Views of
  one model share layers in the engine (hidden states at the lower exit are
  reused), so their verification costs less than a full forward; without a
  measured entry :meth:`PoolProfile.verify_cost` scales the cost by the
  fraction of layers actually run (an approximation).
* ``acceptance[i][j]``: probability that member ``j`` accepts a token drafted
  by member ``i``, averaged over positions of real prompts. Under greedy
  decoding measure it as the rate at which the argmaxes of ``i`` and ``j``
  agree; under sampling as the mean of ``1 - TV(p_i, p_j)`` (the token-wise
  rule's acceptance probability). Both estimators are symmetric. ``i == j``
  is 1 and need not be stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "hsd-bench/pool-profile"
VERSION = 1

__all__ = ["CostFit", "MemberProfile", "PoolProfile", "fit_cost", "FORMAT", "VERSION"]


@dataclass(frozen=True)
class CostFit:
    """Seconds for one forward over ``positions`` positions: ``fixed_s + per_position_s * positions``,
    or piecewise-linear through ``table`` when measured points are given."""

    fixed_s: float
    per_position_s: float = 0.0
    table: tuple[tuple[int, float], ...] = ()

    def __post_init__(self):
        for name, value in (("fixed_s", self.fixed_s), ("per_position_s", self.per_position_s)):
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"cost.{name}={value!r} must be a number >= 0")
        if self.fixed_s + self.per_position_s <= 0 and not self.table:
            raise ValueError("cost: fixed_s + per_position_s must be > 0 (a forward cannot be free)")
        table = tuple((int(n), float(s)) for n, s in self.table)
        object.__setattr__(self, "table", table)
        last = 0
        for n, s in table:
            if n <= last:
                raise ValueError(f"cost.table positions must be increasing integers >= 1, got {[p for p, _ in table]}")
            if not s > 0:
                raise ValueError(f"cost.table[{n}]={s!r} must be > 0 seconds")
            last = n

    def __call__(self, positions: int) -> float:
        if positions < 1:
            raise ValueError(f"a forward processes at least 1 position, got {positions}")
        if not self.table:
            return self.fixed_s + self.per_position_s * positions
        pts = self.table
        if len(pts) == 1 or positions <= pts[0][0]:
            return pts[0][1] if positions <= pts[0][0] else pts[0][1] + self.per_position_s * (positions - pts[0][0])
        for (n0, s0), (n1, s1) in zip(pts, pts[1:]):
            if positions <= n1:
                return s0 + (s1 - s0) * (positions - n0) / (n1 - n0)
        (n0, s0), (n1, s1) = pts[-2], pts[-1]
        return max(s1, s1 + (s1 - s0) * (positions - n1) / (n1 - n0))  # extrapolate the last segment

    def scaled(self, factor: float) -> "CostFit":
        """The same curve times ``factor`` (e.g. the fraction of layers a reused view runs)."""
        if not 0 < factor <= 1:
            raise ValueError(f"cost scale factor {factor} must be in (0, 1]")
        return CostFit(self.fixed_s * factor, self.per_position_s * factor,
                       tuple((n, s * factor) for n, s in self.table))

    def plus(self, seconds: float) -> "CostFit":
        """The same curve with ``seconds`` more per forward (a per-round cost outside the forward)."""
        if not seconds >= 0:
            raise ValueError(f"an added cost of {seconds!r} s must be >= 0")
        return CostFit(self.fixed_s + seconds, self.per_position_s, tuple((n, s + seconds) for n, s in self.table))

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"fixed_s": self.fixed_s, "per_position_s": self.per_position_s}
        if self.table:
            d["table"] = [[n, s] for n, s in self.table]
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "cost") -> "CostFit":
        if not isinstance(d, dict) or "fixed_s" not in d:
            raise ValueError(
                f"{where} must be an object with fixed_s (and optionally per_position_s, table), got {d!r}"
            )
        unknown = set(d) - {"fixed_s", "per_position_s", "table"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}; valid: fixed_s, per_position_s, table")
        try:
            return cls(float(d["fixed_s"]), float(d.get("per_position_s", 0.0)), tuple(map(tuple, d.get("table", ()))))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def fit_cost(samples: list[tuple[int, float]], keep_table: bool = True) -> CostFit:
    """Least-squares ``fixed + per_position * n`` through measured ``(positions, seconds)``.

    Coefficients are clamped at 0 (timing noise can make a slope slightly
    negative); the averaged points are kept as the table when ``keep_table``.
    """
    if not samples:
        raise ValueError("fit_cost needs at least one (positions, seconds) sample")
    by_n: dict[int, list[float]] = {}
    for n, s in samples:
        by_n.setdefault(int(n), []).append(float(s))
    pts = sorted((n, sum(v) / len(v)) for n, v in by_n.items())
    if len(pts) == 1:
        fixed, slope = pts[0][1], 0.0
    else:
        xs = [n for n, _ in pts]
        ys = [s for _, s in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        slope = max(slope, 0.0)
        fixed = max(my - slope * mx, 0.0)
        if fixed + slope <= 0:
            fixed = min(ys)
    return CostFit(fixed, slope, tuple(pts) if keep_table else ())


@dataclass(frozen=True)
class MemberProfile:
    name: str
    path: str  # what method.levels[i].path takes; "target" = the target model
    exit: int | None  # None = the model's last layer
    num_layers: int  # layers of the underlying model
    cost: CostFit
    verify_cost_after: dict[str, CostFit] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"member {self.name!r}: num_layers={self.num_layers!r} must be an integer >= 1")
        if self.exit is not None and not (isinstance(self.exit, int) and 1 <= self.exit <= self.num_layers):
            raise ValueError(f"member {self.name!r}: exit={self.exit!r} must be null or in 1..{self.num_layers}")

    @property
    def layers_run(self) -> int:
        return self.num_layers if self.exit is None else self.exit


@dataclass
class PoolProfile:
    target: str
    members: dict[str, MemberProfile]
    acceptance: dict[str, dict[str, float]]
    provenance: dict[str, Any] = field(default_factory=dict)
    # The engine's host work per verification round (acceptance, cache rollback, bookkeeping),
    # which an isolated forward does not pay: measured as the engine's AR seconds per forward minus
    # the target's profiled forward. Added to every verification forward, and to AR where
    # ar_step_s is absent.
    round_overhead_s: float = 0.0
    # The engine's AR seconds per token as the runs it is compared with decode (ar_chunk tokens
    # per round, methods.py): chunked AR pays round_overhead_s once per chunk, not per token.
    # None (profiles before ar_chunk): one round per token, the target's forward + round_overhead_s.
    ar_step_s: float | None = None

    def __post_init__(self):
        h = self.round_overhead_s
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 <= h < float("inf"):
            raise ValueError(f"round_overhead_s={h!r} must be a number of seconds >= 0")
        a = self.ar_step_s
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < float("inf")):
            raise ValueError(f"ar_step_s={a!r} must be a number of seconds > 0, or null")
        if self.target not in self.members:
            raise ValueError(f"target {self.target!r} is not among the members {sorted(self.members)}")
        for i, row in self.acceptance.items():
            if i not in self.members:
                raise ValueError(f"acceptance row {i!r} names no member; members: {sorted(self.members)}")
            for j, a in row.items():
                if j not in self.members:
                    raise ValueError(f"acceptance[{i!r}][{j!r}] names no member; members: {sorted(self.members)}")
                if not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0:
                    raise ValueError(f"acceptance[{i!r}][{j!r}]={a!r} must be a probability in [0, 1]")

    @property
    def drafters(self) -> list[str]:
        return [n for n in self.members if n != self.target]

    def alpha(self, drafter: str, verifier: str) -> float:
        """P(``verifier`` accepts a token drafted by ``drafter``)."""
        if drafter == verifier:
            return 1.0
        try:
            return float(self.acceptance[drafter][verifier])
        except KeyError:
            raise ValueError(
                f"the profile has no acceptance[{drafter!r}][{verifier!r}] (rate at which {verifier!r} "
                f"accepts tokens drafted by {drafter!r}); re-run the profiler over this pair"
            ) from None

    def draft_cost(self, name: str) -> CostFit:
        return self.members[name].cost

    def ar_cost(self) -> CostFit:
        """One AR token: as measured through the engine (``ar_step_s``), else the target's
        forward plus the engine's round overhead."""
        if self.ar_step_s is not None:
            return CostFit(float(self.ar_step_s), 0.0)
        return self.members[self.target].cost.plus(self.round_overhead_s)

    def verify_cost(self, lower: str, upper: str) -> CostFit:
        """Cost of ``upper``'s verification round when the level below it is ``lower``:
        the forward (below) plus ``round_overhead_s``.

        A measured ``verify_cost_after[lower]`` wins. Otherwise, if both are
        views of one model and ``lower`` exits earlier, the engine reuses the
        lower exit's hidden states, so only the layers in between run. Their
        cost comes from the line through the views' costs against layers run,
        ``a + b E`` (``a``: the LM head and per-forward work, which do not
        shrink with fewer layers): ``cost(upper) - b * E_lower``, and never less
        than the full cost scaled by the fraction of layers (a line whose
        intercept came out negative). Otherwise a full forward.
        """
        up = self.members[upper]
        if lower in up.verify_cost_after:
            return up.verify_cost_after[lower].plus(self.round_overhead_s)
        lo = self.members[lower]
        if lo.path == up.path and lo.layers_run < up.layers_run:
            return self._continuation_cost(lo, up).plus(self.round_overhead_s)
        return up.cost.plus(self.round_overhead_s)

    def _continuation_cost(self, lo: MemberProfile, up: MemberProfile) -> CostFit:
        scaled = up.cost.scaled((up.layers_run - lo.layers_run) / up.layers_run)
        views = [(m.layers_run, m.cost) for m in self.members.values() if m.path == up.path]
        layers = [e for e, _ in views]  # at least lo's and up's, which differ
        positions = sorted({n for _, c in views for n, _ in c.table} or {1, 2, 4, 8, 16})
        mean_e = sum(layers) / len(layers)
        var_e = sum((e - mean_e) ** 2 for e in layers)
        table = []
        for n in positions:
            costs = [c(n) for _, c in views]
            mean_c = sum(costs) / len(costs)
            per_layer = max(0.0, sum((e - mean_e) * (c - mean_c) for e, c in zip(layers, costs)) / var_e)
            table.append((n, max(up.cost(n) - per_layer * lo.layers_run, scaled(n))))
        return CostFit(0.0, 0.0, tuple(table))

    # -- (de)serialization -------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "target": self.target,
            "members": {
                m.name: {
                    "path": m.path,
                    "exit": m.exit,
                    "num_layers": m.num_layers,
                    "cost": m.cost.to_dict(),
                    **({"verify_cost_after": {k: c.to_dict() for k, c in m.verify_cost_after.items()}}
                       if m.verify_cost_after else {}),
                }
                for m in self.members.values()
            },
            "acceptance": {i: dict(row) for i, row in self.acceptance.items()},
            "provenance": dict(self.provenance),
            **({"round_overhead_s": self.round_overhead_s} if self.round_overhead_s else {}),
            **({"ar_step_s": self.ar_step_s} if self.ar_step_s is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PoolProfile":
        if not isinstance(d, dict):
            raise ValueError(f"a pool profile is a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ValueError(f"not a pool profile: format={d.get('format')!r}, expected {FORMAT!r}")
        if d.get("version") != VERSION:
            raise ValueError(f"pool profile version {d.get('version')!r} is not supported (this reader: {VERSION})")
        for key in ("target", "members", "acceptance"):
            if key not in d:
                raise ValueError(f"pool profile lacks {key!r}")
        members = {}
        for name, m in d["members"].items():
            unknown = set(m) - {"path", "exit", "num_layers", "cost", "verify_cost_after"}
            if unknown:
                raise ValueError(
                    f"members[{name!r}] has unknown keys {sorted(unknown)}; "
                    "valid: path, exit, num_layers, cost, verify_cost_after"
                )
            for key in ("path", "num_layers", "cost"):
                if key not in m:
                    raise ValueError(f"members[{name!r}] lacks {key!r}")
            members[name] = MemberProfile(
                name=name,
                path=str(m["path"]),
                exit=m.get("exit"),
                num_layers=m["num_layers"],
                cost=CostFit.from_dict(m["cost"], f"members[{name!r}].cost"),
                verify_cost_after={
                    k: CostFit.from_dict(c, f"members[{name!r}].verify_cost_after[{k!r}]")
                    for k, c in m.get("verify_cost_after", {}).items()
                },
            )
        acc = {i: {j: float(a) for j, a in row.items()} for i, row in d["acceptance"].items()}
        return cls(str(d["target"]), members, acc, dict(d.get("provenance", {})), d.get("round_overhead_s", 0.0),
                   d.get("ar_step_s"))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "PoolProfile":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data)
