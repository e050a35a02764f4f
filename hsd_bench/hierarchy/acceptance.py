"""Acceptance between every pair of views of a model family, measured on real prompts.

What the grid planner (``hsd_bench/hierarchy/plan.py``) needs to predict a
configuration's speedup before a GPU runs it, measured on any machine (the
CPU here): for every ordered pair (drafter, verifier) of views -- every exit
``target@E`` of the target, the target itself, and separate draft models --

* greedy: the rate at which their argmaxes agree (a greedy draft token is
  accepted iff it equals the verifier's argmax);
* at temperature T: the mean of ``sum_x min(p_d(x), p_v(x))`` = 1 - TV, the
  token-wise rule's acceptance probability (block/hsd accept at least as much);
* for the adaptive draft length, per drafter and threshold t: how often its
  top probability (temperature-1 softmax) is below t, and its greedy
  acceptance by the target on those positions and on the others.

All along the target's own greedy continuations of the prompts, position by
position (the estimator of ``hierarchy/profile.py``; a drafter's view of a
prefix the target wrote). Results are summed per dataset and written as
CSV tables with ``save``; ``load_tables`` reads them back.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hsd_bench.draft_stop import top_probability
from hsd_bench.engine import ModelState
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.sampling import DecodingConfig, warp

TARGET = "target"
ALL = "all"  # the pooled rows: every dataset's positions together
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(2, 20))  # 0.10 .. 0.95

__all__ = ["ALL", "AcceptanceTables", "THRESHOLDS", "measure", "view_name"]


def view_name(model: str, exit_layer: int | None, depth: int) -> str:
    """``target``, ``target@E`` (an early exit) or a separate model's path."""
    if model == TARGET:
        return TARGET if exit_layer in (None, depth) else f"{TARGET}@{exit_layer}"
    return model if exit_layer is None else f"{model}@{exit_layer}"


@dataclass
class AcceptanceTables:
    """Summed counts, keyed by dataset; rates via the accessors (``ALL`` pools the datasets)."""

    # (dataset, temperature, drafter, verifier) -> [accepted mass, positions]
    pairs: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0]))
    # (dataset, drafter, threshold) -> [positions below, accepted below, accepted at or above, positions]
    stops: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0, 0.0, 0]))

    def alpha(self, drafter: str, verifier: str, temperature: float = 0.0, dataset: str = ALL) -> float:
        """P(verifier accepts a token of drafter): greedy agreement, or 1 - TV at ``temperature``."""
        if drafter == verifier:
            return 1.0
        key = (dataset, float(temperature), drafter, verifier)
        if key not in self.pairs:
            raise KeyError(f"no acceptance measured for {drafter} -> {verifier} at T={temperature} on {dataset}")
        mass, n = self.pairs[key]
        return mass / n

    def stop_stats(self, drafter: str, threshold: float, dataset: str = ALL) -> tuple[float, float, float]:
        """(P(top probability < t), greedy acceptance by the target there, and elsewhere) at the
        measured threshold nearest ``threshold``."""
        ts = sorted({t for ds, dr, t in self.stops if ds == dataset and dr == drafter})
        if not ts:
            raise KeyError(f"no draft_stop statistics for {drafter} on {dataset}")
        t = min(ts, key=lambda x: abs(x - threshold))
        below, acc_below, acc_above, n = self.stops[(dataset, drafter, t)]
        return below / n, (acc_below / below if below else 0.0), (acc_above / (n - below) if n > below else 0.0)

    @property
    def temperatures(self) -> list[float]:
        return sorted({k[1] for k in self.pairs})

    def views(self) -> list[str]:
        return sorted({k[2] for k in self.pairs} | {k[3] for k in self.pairs})

    # -- files ---------------------------------------------------------------------------
    def save(self, out: Path) -> tuple[Path, Path]:
        """Write the rows a stack can use: a drafter verified by a deeper exit or the target,
        or by anything when it is a separate model; per dataset only against the target, and
        the draft_stop statistics pooled (the per-dataset rows would triple the files)."""
        out.mkdir(parents=True, exist_ok=True)
        pairs, stops = out / "acceptance.csv", out / "draft_stop.csv"
        with open(pairs, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["dataset", "temperature", "drafter", "verifier", "positions", "acceptance"])
            for (ds, temp, d, v), (mass, n) in sorted(self.pairs.items()):
                if _usable(d, v) and (ds == ALL or v == TARGET):
                    w.writerow([ds, temp, d, v, n, f"{mass / n:.6f}"])
        with open(stops, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["dataset", "drafter", "threshold", "positions", "below", "accept_below", "accept_above"])
            for (ds, d, t), (below, acc_b, acc_a, n) in sorted(self.stops.items()):
                if ds != ALL:
                    continue
                w.writerow([ds, d, t, n, int(below), f"{acc_b / below if below else 0.0:.6f}",
                            f"{acc_a / (n - below) if n > below else 0.0:.6f}"])
        return pairs, stops

    @classmethod
    def load(cls, folder: Path) -> "AcceptanceTables":
        """Read ``acceptance.csv`` and ``draft_stop.csv`` (rates and counts back to sums)."""
        tables = cls()
        with open(Path(folder) / "acceptance.csv", newline="") as f:
            for r in csv.DictReader(f):
                n = int(r["positions"])
                tables.pairs[(r["dataset"], float(r["temperature"]), r["drafter"], r["verifier"])] = \
                    [float(r["acceptance"]) * n, n]
        with open(Path(folder) / "draft_stop.csv", newline="") as f:
            for r in csv.DictReader(f):
                n, below = int(r["positions"]), int(r["below"])
                tables.stops[(r["dataset"], r["drafter"], float(r["threshold"]))] = \
                    [below, float(r["accept_below"]) * below, float(r["accept_above"]) * (n - below), n]
        return tables


def _usable(drafter: str, verifier: str) -> bool:
    """Can ``verifier`` sit above ``drafter`` in a stack? Exits only above shallower exits."""
    exits = [v.split("@")[1] for v in (drafter, verifier) if v.startswith(TARGET + "@")]
    if verifier == TARGET or not drafter.startswith(TARGET):
        return True
    return len(exits) == 2 and int(exits[0]) < int(exits[1])


@torch.no_grad()
def measure(pool, target_path: str, drafts: list[str], prompts: list[tuple[str, list[int]]], new_tokens: int,
            temperatures: tuple[float, ...] = (0.6, 1.0), thresholds: tuple[float, ...] = THRESHOLDS) -> AcceptanceTables:
    """Measure every pair of views (all exits of the target, the target, ``drafts``) on ``prompts``
    (``(dataset, token ids)``), along the target's greedy continuation of ``new_tokens``."""
    target, codec = pool.get(target_path)
    depth = target.num_layers
    ar = build_engine(MethodSpec("autoregressive"), target, pool.get, codec)
    tables = AcceptanceTables()
    for dataset, ids in prompts:
        cont = ar.generate(ids, new_tokens).output_ids
        seq = torch.tensor(ids + cont, device=target.device)
        upto, need_from = len(seq) - 1, len(ids) - 1  # the logits that predict each continuation token
        logits: dict[str, torch.Tensor] = {}
        state = ModelState(target, list(range(1, depth + 1)))
        state.reset()
        for e in range(1, depth + 1):  # increasing exits: every layer runs once
            logits[view_name(TARGET, e, depth)] = state.logits(seq, e, upto, need_from).float()
        for path in drafts:
            model = pool.get(path)[0]
            draft_state = ModelState(model, [model.num_layers])
            draft_state.reset()
            logits[path] = draft_state.logits(seq, model.num_layers, upto, need_from).float()
        for key in (dataset, ALL):
            _accumulate(tables, key, logits, temperatures, thresholds)
    return tables


def _accumulate(tables: AcceptanceTables, dataset: str, logits: dict[str, torch.Tensor],
                temperatures: tuple[float, ...], thresholds: tuple[float, ...]) -> None:
    names = list(logits)
    argmax = {v: logits[v].argmax(-1) for v in names}
    n = len(argmax[TARGET])
    for i, a in enumerate(names):
        for b in names[i + 1:]:  # both measures are symmetric
            agree = float((argmax[a] == argmax[b]).sum())
            for d, v in ((a, b), (b, a)):
                cell = tables.pairs[(dataset, 0.0, d, v)]
                cell[0] += agree
                cell[1] += n
    for temp in temperatures:
        probs = {v: warp(logits[v], DecodingConfig(temperature=temp)) for v in names}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                overlap = float(torch.minimum(probs[a], probs[b]).sum())
                for d, v in ((a, b), (b, a)):
                    cell = tables.pairs[(dataset, float(temp), d, v)]
                    cell[0] += overlap
                    cell[1] += n
    for d in names:
        if d == TARGET:
            continue
        conf = top_probability(logits[d], logits=True)
        agree = argmax[d] == argmax[TARGET]
        for t in thresholds:
            low = conf < t
            cell = tables.stops[(dataset, d, float(t))]
            cell[0] += int(low.sum())
            cell[1] += float((agree & low).sum())
            cell[2] += float((agree & ~low).sum())
            cell[3] += n
