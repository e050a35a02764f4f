"""Paper figures, each rebuilt from one small committed table under ``results/<figure>/``.

Why tables, not run directories: run directories are large, machine-local and
not committed; ``results/<figure>/table.csv`` (made by
``scripts/collect.py --figure <figure>``) is small, reviewed in the diff, and
enough to redraw the figure anywhere. Every figure uses one style (``STYLE``)
and is written as PNG (for the README and notebooks) and PDF (for the paper).
Figures are drawn on ``matplotlib.figure.Figure`` objects without pyplot, so
building them needs no display and leaves the caller's backend alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STYLE = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    # Okabe-Ito: distinguishable in colour-blind vision and in greyscale print.
    "axes.prop_cycle": matplotlib.cycler(color=["#0072B2", "#E69F00", "#009E73", "#D55E00",
                                                "#CC79A7", "#56B4E9", "#F0E442", "#000000"]),
    "pdf.fonttype": 42,  # TrueType in PDFs, so text stays editable / searchable
}
SINGLE = (4.2, 3.0)
DOUBLE = (7.6, 3.0)
AR_LINE = {"color": "0.4", "linestyle": "--", "linewidth": 1.0}


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    draw: Callable[[pd.DataFrame], Figure]
    produced_by: str  # shell command(s) that make results/<name>/table.csv
    needs: tuple[str, ...]  # table columns the figure reads (scripts/collect.py writes them all)
    # the sweeps whose runs the table collects (conf/experiment/<name>.yaml, runs/<name>/);
    # empty = the figure's own name
    experiments: tuple[str, ...] = ()
    # brings a table written before a column was renamed up to date (None: nothing to do)
    upgrade: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return self.experiments or (self.name,)


def _numeric_exit(v) -> float | None:
    """``4`` -> 4; HiSpec's ``8,16`` -> 8 (the draft exit); missing -> None."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    head = str(v).strip("[]() ").split(",")[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


_BARE = ("method", "rule", "policy", "dataset", "model")  # legend shows these as the value alone


def _series_label(keys: tuple, names: list[str]) -> str:
    """``("hispec", "3,6")`` over ``["method", "exit"]`` -> ``hispec, exit=3,6``."""
    return ", ".join(str(k) if n in _BARE else f"{n}={k}"
                     for k, n in zip(keys, names, strict=True) if k is not None and str(k) != "nan")


def _varying(df: pd.DataFrame, cols: list[str]) -> list[str]:
    """The columns among ``cols`` that take more than one value (the ones worth a legend entry)."""
    return [c for c in cols if c in df and df[c].astype(str).nunique() > 1]


# The table columns that say what was measured (collect.TABLE_COLUMNS; a table written before the
# later ones were added lacks them): two rows equal in every one present are repeats of one
# configuration.
CONFIG_COLUMNS = ("hardware", "model", "dataset", "method", "exit", "draft_len", "period", "flush_on_mismatch",
                  "levels", "verifier", "temperature", "draft_stop", "draft", "ar_chunk", "max_new_tokens",
                  "batch_size")


def _separate(t: pd.DataFrame, x: str | None, by: list[str]) -> list[str]:
    """``by``, extended by the configuration columns that tell apart rows which would otherwise be
    one plotted point (one series at one ``x``), so each configuration is its own series: a point
    is one row, never a mean of several (a mean of speedups of different configurations measures
    none of them, and a mean of interval bounds is no interval).

    Rows that share a point and differ in no ``CONFIG_COLUMNS`` are repeats of one configuration
    (the same run collected from two sweeps, or measured twice): a ValueError names them, since
    which one the figure should show is the caller's choice.
    """
    by = list(by)
    rows = t.dropna(subset=[x]) if x else t
    while True:
        keys = [*by, x] if x else list(by)
        point = (rows[keys].astype(str).apply(tuple, axis=1) if keys
                 else pd.Series([()] * len(rows), index=rows.index, dtype=object))
        shared = rows[point.duplicated(keep=False)]
        if shared.empty:
            return by
        of = point[shared.index]
        differ = [c for c in CONFIG_COLUMNS if c in rows and c not in keys
                  and shared[c].astype(str).groupby(of).nunique().gt(1).any()]
        if differ:
            by.append(differ[0])
            continue
        first = of.iloc[0]
        same = shared[of == first]
        names = [f"row {i}" + "".join(f" {c}={same.at[i, c]}" for c in ("run_hash", "sweep") if c in same)
                 for i in same.index]
        where = ", ".join(f"{k}={v}" for k, v in zip(keys, first, strict=True))
        raise ValueError(f"{len(same)} table rows are one configuration ({where}; equal in every configuration "
                         f"column present: {', '.join(c for c in CONFIG_COLUMNS if c in rows)}): "
                         f"{'; '.join(names)}. A figure point is one measurement: drop the repeats from the "
                         "table (or tell them apart by a column) instead of averaging them")


# a metric's bootstrap interval over samples, where collect.py's table has it
INTERVALS = {"speedup_vs_ar": ("speedup_lo", "speedup_hi"), "mean_accepted_len": ("tau_lo", "tau_hi")}


def _has_interval(df: pd.DataFrame, y: str) -> bool:
    lo, hi = INTERVALS.get(y, (None, None))
    return lo in df and hi in df and df[lo].notna().any()


def _lines(ax, df: pd.DataFrame, x: str, y: str, by: list[str]) -> bool:
    """One line per series (group of ``by``, extended by ``_separate`` where two configurations
    would share a point), one marker per table row, and the metric's bootstrap interval as error
    bars where the table has it. A series keeps its colour (its place among all the table's
    series) in every panel, also where it has no value of ``y``. Returns whether it drew intervals."""
    cols = [y, *INTERVALS[y]] if _has_interval(df, y) else [y]
    by = _separate(df, x, by)
    df = df.dropna(subset=[x])
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(by, dropna=False, sort=True)] \
        if by else [((), df)]
    color = _palette([k for k, _ in groups], ordered=True)  # groupby's order: the first panel's colours as before
    for keys, g in groups:
        pts = g.set_index(x).sort_index()[cols].dropna(subset=[y])
        if pts.empty:
            continue
        lo, hi = (pts[cols[1]], pts[cols[2]]) if len(cols) == 3 else (None, None)
        _with_ci(ax, pts.index.to_series(), pts[y], lo, hi, label=_series_label(keys, by) or None,
                 color=color[keys])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, lengths, periods are whole numbers
    return len(cols) == 3


def _finish(fig: Figure, axes, legend: bool, t: pd.DataFrame, intervals: bool = False) -> Figure:
    """Legend beside the last axes (never over data) and the caption saying what ran where."""
    if legend:
        _legend_outside(list(axes))
    fig.tight_layout()
    _caption(fig, t, CI_NOTE if intervals else "")
    return fig


def _later_exits(v) -> str | None:
    """HiSpec's ``3,12`` -> ``12`` (the exits after the draft's); one exit or none -> None."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    rest = [p.strip() for p in str(v).strip("[]() ").split(",")[1:]]
    return ",".join(rest) or None


def draw_exit_layer(t: pd.DataFrame) -> Figure:
    # x is the draft's exit; a HiSpec stack's later exits (E_v) name its series, so (3,6) and
    # (3,12) are two points, not their mean
    t = t.assign(exit_num=t["exit"].map(_numeric_exit), E_v=t["exit"].map(_later_exits)).dropna(subset=["exit_num"])
    by = _separate(t, "exit_num", _varying(t, ["model", "dataset", "method", "E_v", "draft_len"]))
    fig = Figure(figsize=DOUBLE)
    a1, a2 = fig.subplots(1, 2)
    intervals = _lines(a1, t, "exit_num", "speedup_vs_ar", by)
    a1.axhline(1.0, **AR_LINE)
    a1.set(xlabel="exit layer E (draft = first E layers)", ylabel="speedup over AR", title="Speedup vs exit layer")
    _lines(a2, t, "exit_num", "acceptance_rate", by)
    a2.set(xlabel="exit layer E", ylabel="acceptance rate", title="Acceptance vs exit layer", ylim=(0, 1.02))
    return _finish(fig, [a1, a2], bool(by), t, intervals)


def draw_draft_length(t: pd.DataFrame) -> Figure:
    by = _varying(t, ["model", "dataset", "method", "exit"]) or ["method"]
    fig = Figure(figsize=DOUBLE)
    a1, a2 = fig.subplots(1, 2)
    intervals = _lines(a1, t, "draft_len", "speedup_vs_ar", by)
    a1.axhline(1.0, **AR_LINE)
    a1.set(xlabel=r"draft length $\gamma$ / $N_d$", ylabel="speedup over AR", title="Speedup vs draft length")
    _lines(a2, t, "draft_len", "acceptance_rate", by)
    a2.set(xlabel=r"draft length $\gamma$ / $N_d$", ylabel="acceptance rate", title="Acceptance vs draft length",
           ylim=(0, 1.02))
    return _finish(fig, [a1, a2], True, t, intervals)


def draw_verification_period(t: pd.DataFrame) -> Figure:
    t = t.assign(policy=t["flush_on_mismatch"].map(
        lambda v: "flush on mismatch" if str(v).lower() in ("true", "1") else "wait for $N_i$"))
    by = _varying(t, ["model", "dataset", "exit", "draft_len"]) + ["policy"]
    fig = Figure(figsize=SINGLE)
    ax = fig.subplots()
    # speedup over each job's own AR, not tokens/s: jobs run in different host states (the CPU
    # sweep's AR spans 36-54 tok/s), so raw rates of two jobs do not compare, nor one mean AR line
    intervals = _lines(ax, t, "period", "speedup_vs_ar", by)
    ax.axhline(1.0, label="autoregressive", **AR_LINE)
    ax.set(xlabel=r"verification period $N_i$ (tokens before full verification)",
           ylabel="speedup over AR (same job)", title="HiSpec speedup vs verification period")
    ax.set_ylim(bottom=0)
    return _finish(fig, [ax], True, t, intervals)


def draw_method_comparison(t: pd.DataFrame) -> Figure:
    t = t[t["method"] != "autoregressive"].dropna(subset=["dataset"])
    # one bar per table row: a method run in two configurations is two bars, named by what differs
    by = _separate(t, "dataset", ["method"])
    t = t.assign(series=[_series_label(k, by) for k in zip(*(t[c] for c in by), strict=True)])
    rows = t.set_index(["dataset", "series"])
    pivot = rows["speedup_vs_ar"].unstack("series")
    fig = Figure(figsize=(max(4.2, 1.6 + 1.3 * len(pivot)), 3.0))
    ax = fig.subplots()
    n = max(len(pivot.columns), 1)
    width = 0.8 / n
    ci = None
    if {"speedup_lo", "speedup_hi"} <= set(t.columns) and t["speedup_lo"].notna().any():  # bootstrap intervals
        ci = rows[["speedup_lo", "speedup_hi"]]  # each bar's own interval
    for i, method in enumerate(pivot.columns):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(pivot))]
        yerr = None
        if ci is not None:
            lo = [ci["speedup_lo"].get((d, method), float("nan")) for d in pivot.index]
            hi = [ci["speedup_hi"].get((d, method), float("nan")) for d in pivot.index]
            vals = pivot[method].values
            yerr = [[max(0.0, v - x) if x == x else 0.0 for v, x in zip(vals, lo)],
                    [max(0.0, x - v) if x == x else 0.0 for v, x in zip(vals, hi)]]
        bars = ax.bar(xs, pivot[method].values, width=width * 0.95, label=method, yerr=yerr, capsize=2,
                      error_kw={"elinewidth": 0.8})
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.axhline(1.0, label="autoregressive", **AR_LINE)
    ax.set_xticks(range(len(pivot)), list(pivot.index))
    top = float(pivot.max().max()) if pivot.size else 1.0
    ax.set(ylabel="speedup over AR (same samples)", title="Methods across datasets", ylim=(0, 1.3 * max(top, 1.0)))
    ax.grid(axis="x", visible=False)
    return _finish(fig, [ax], True, t, ci is not None)


def draw_verifier_rules(t: pd.DataFrame) -> Figure:
    t = t.assign(rule=[f"{v}{'' if str(l).lower() not in ('false', '0') else ' (lossy)'}"
                       for v, l in zip(t["verifier"], t["lossless"], strict=True)])
    fig = Figure(figsize=DOUBLE)
    a1, a2 = fig.subplots(1, 2)
    extra = _varying(t, ["model", "dataset", "method", "temperature"])
    intervals = False
    if t["draft_len"].nunique() > 1:
        intervals = _lines(a1, t, "draft_len", "mean_accepted_len", ["rule", *extra])
        intervals = _lines(a2, t, "draft_len", "speedup_vs_ar", ["rule", *extra]) or intervals
        a1.set(xlabel=r"draft length $\gamma$")
        a2.set(xlabel=r"draft length $\gamma$")
    else:
        # one bar per table row (rows that would share a bar are told apart by what differs)
        by = _separate(t, None, ["rule", *extra])
        means = t.assign(series=[_series_label(k, by) for k in zip(*(t[c] for c in by), strict=True)]) \
            .set_index("series").sort_index()[["mean_accepted_len", "speedup_vs_ar"]]
        for ax, col in ((a1, "mean_accepted_len"), (a2, "speedup_vs_ar")):
            colors = [STYLE["axes.prop_cycle"].by_key()["color"][i % 8] for i in range(len(means))]
            bars = ax.bar(means.index, means[col], color=colors)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
            ax.grid(axis="x", visible=False)
    a1.set(ylabel=r"accepted length $\tau$ (tokens / target forward)", title="Verification rules (sampling)")
    a2.axhline(1.0, **AR_LINE)
    a2.set(ylabel="speedup over AR", title="Speedup by rule")
    return _finish(fig, [a1, a2], t["draft_len"].nunique() > 1, t, intervals)


def _hierarchy_table_upgrade(t: pd.DataFrame) -> pd.DataFrame:
    """A table of scripts/profile_hierarchy.py written before its measured column was renamed:
    that script's ``speedup_vs_ar`` was always the decode phase's (profile.measure_stack). Its
    tables have no ``run_hash``; collect.py's always do, and their ``speedup_vs_ar`` is end to end,
    so those are left alone (and lack ``decode_speedup_vs_ar`` only if made before it existed)."""
    if "decode_speedup_vs_ar" in t or "speedup_vs_ar" not in t or "run_hash" in t:
        return t
    return t.rename(columns={"speedup_vs_ar": "decode_speedup_vs_ar"})


def draw_hierarchy_prediction(t: pd.DataFrame) -> Figure:
    """Each stack a numbered point, its name in a key beside the axes: stack names are long and
    the points cluster, so names written at the points cover each other. Both axes are the decode
    phase's speedup: the latency model predicts decode time, prefill is outside it."""
    y = "decode_speedup_vs_ar"
    t = t.dropna(subset=["predicted_speedup", y]).reset_index(drop=True)
    fig = Figure(figsize=(7.0, 3.4))
    ax = fig.subplots()
    key = []
    for name, g in t.groupby(t["method"]):
        ax.scatter(g["predicted_speedup"], g[y], label=name, zorder=3)
        for i, r in g.iterrows():
            stack = r["levels"] if isinstance(r.get("levels"), str) else "?"
            key.append(f"{i + 1}: {stack.replace('checkpoints/', '')}")
            ax.annotate(str(i + 1), (r["predicted_speedup"], r[y]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
    lo = min(1.0, float(t[["predicted_speedup", y]].min().min()) * 0.95) if len(t) else 0.5
    hi = max(1.5, float(t[["predicted_speedup", y]].max().max()) * 1.05) if len(t) else 2.0
    ax.plot([lo, hi], [lo, hi], label="measured = predicted", **AR_LINE)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted decode speedup (latency model)",
           ylabel="measured decode speedup over AR", title="Hierarchies: predicted vs measured, decode phase")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.04, 1.0), borderaxespad=0.0)
    ax.text(1.04, 0.62, "\n".join(sorted(key, key=lambda k: int(k.split(":")[0]))), transform=ax.transAxes,
            fontsize=6, va="top", ha="left", family="monospace")
    fig.tight_layout()
    _caption(fig, t)
    return fig


# -- the GPU grid (issue 13): every figure says what ran where, with intervals over samples ------------

CI_NOTE = "error bars: 95% bootstrap interval over samples"


def _values(t: pd.DataFrame, col: str) -> list[str]:
    if col not in t:
        return []
    vals = [v for v in t[col].dropna().astype(str).unique() if v]
    return sorted(Path(v).name if col == "model" else v for v in vals)


def _caption(fig: Figure, t: pd.DataFrame, extra: str = "") -> None:
    """Hardware, model, dataset and sample count, under the axes (every grid figure carries them)."""
    n = pd.to_numeric(t["n_samples"], errors="coerce").dropna() if "n_samples" in t else pd.Series(dtype=float)
    samples = "?" if n.empty else (f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())}-{int(n.max())}")
    parts = [f"hardware: {', '.join(_values(t, 'hardware')) or 'not recorded'}",
             f"model: {', '.join(_values(t, 'model')) or '?'}",
             f"dataset: {', '.join(_values(t, 'dataset')) or '?'}",
             f"{samples} samples per configuration"] + ([extra] if extra else [])
    fig.text(0.01, -0.02, " | ".join(parts), fontsize=6.5, color="0.3", ha="left", va="top", wrap=True)


def _legend_outside(axes, title: str | None = None) -> None:
    """One legend for every series of ``axes`` (an Axes or several), to the right of the last one:
    it never covers data, and a series drawn only in an earlier panel still has its entry."""
    axes = list(axes.flat) if hasattr(axes, "flat") else (list(axes) if isinstance(axes, (list, tuple)) else [axes])
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        axes[-1].legend(list(entries.values()), list(entries), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        borderaxespad=0.0, title=title, title_fontsize=7.5)


def _palette(values, ordered: bool = False) -> dict:
    """One colour per value, the same in every panel of a figure, whichever values a panel draws (so
    a shared legend's colours hold everywhere): values in sorted order, or as given (``ordered``)."""
    colors = STYLE["axes.prop_cycle"].by_key()["color"]
    values = list(dict.fromkeys(values)) if ordered else sorted(set(values), key=str)
    return {v: colors[i % len(colors)] for i, v in enumerate(values)}


def _with_ci(ax, x, y, lo=None, hi=None, **kw) -> None:
    """A line with markers and, where the table has them, bootstrap interval error bars."""
    x, y = pd.Series(x).reset_index(drop=True), pd.Series(y).reset_index(drop=True)
    err = None
    if lo is not None and hi is not None:
        lo, hi = pd.Series(lo).reset_index(drop=True), pd.Series(hi).reset_index(drop=True)
        if lo.notna().any():
            err = [(y - lo.fillna(y)).clip(lower=0).values, (hi.fillna(y) - y).clip(lower=0).values]
    ax.errorbar(x.values, y.values, yerr=err, marker="o", capsize=2, elinewidth=0.8, **kw)


def _per_dataset(t: pd.DataFrame, ncols_extra: float = 0, height: float = 3.0, layout: str | None = None):
    datasets = _values(t, "dataset") or ["?"]
    fig = Figure(figsize=(0.6 + 3.4 * len(datasets) + ncols_extra, height), layout=layout)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    groups = [(d, t[t["dataset"].astype(str) == d] if "dataset" in t else t) for d in datasets]
    return fig, axes, groups


def _ci_cols(t: pd.DataFrame, lo: str, hi: str):
    return (t[lo] if lo in t else None), (t[hi] if hi in t else None)


def draw_grid_layerskip(t: pd.DataFrame) -> Figure:
    t = t.assign(exit_num=t["exit"].map(_numeric_exit)).dropna(subset=["exit_num", "speedup_vs_ar"])
    fig, axes, groups = _per_dataset(t, 1.2)
    color = _palette(t["draft_len"])
    for ax, (dataset, g) in zip(axes, groups):
        for gamma, gg in g.groupby("draft_len", sort=True):
            gg = gg.sort_values("exit_num")
            _with_ci(ax, gg["exit_num"], gg["speedup_vs_ar"], *_ci_cols(gg, "speedup_lo", "speedup_hi"),
                     label=f"γ={gamma}", color=color[gamma])
        ax.axhline(1.0, **AR_LINE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="draft exit layer E", ylabel="speedup over AR", title=f"LayerSkip, {dataset}")
    _legend_outside(axes, "draft length")
    fig.tight_layout()
    _caption(fig, t, CI_NOTE)
    return fig


def _hispec_cells(g: pd.DataFrame) -> pd.DataFrame:
    """Best run per (E_d, E_v), with its N_d, N_i and flush policy."""
    pairs = g["exit"].astype(str).str.strip("[]() ").str.split(",")
    g = g.assign(e_d=pairs.str[0].astype(float).astype(int), e_v=pairs.str[1].astype(float).astype(int))
    best = g.loc[g.groupby(["e_d", "e_v"])["speedup_vs_ar"].idxmax()]
    return best


def draw_grid_hispec(t: pd.DataFrame) -> Figure:
    t = t.dropna(subset=["speedup_vs_ar"])
    fig, axes, groups = _per_dataset(t, 1.0, 3.4, layout="constrained")
    vmin, vmax = float(t["speedup_vs_ar"].min()), float(t["speedup_vs_ar"].max())
    image = None
    for ax, (dataset, g) in zip(axes, groups):
        best = _hispec_cells(g)
        e_ds, e_vs = sorted(best["e_d"].unique()), sorted(best["e_v"].unique())
        grid = pd.DataFrame(float("nan"), index=e_ds, columns=e_vs)
        for _, r in best.iterrows():
            grid.loc[r["e_d"], r["e_v"]] = r["speedup_vs_ar"]
        image = ax.imshow(grid.values, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        for _, r in best.iterrows():
            i, j = e_ds.index(r["e_d"]), e_vs.index(r["e_v"])
            flush = "f" if str(r["flush_on_mismatch"]).lower() in ("true", "1") else ""
            ax.text(j, i, f"{r['speedup_vs_ar']:.2f}\n{r['draft_len']},{r['period']}{flush}", ha="center",
                    va="center", fontsize=5.5, color="white" if r["speedup_vs_ar"] < (vmin + vmax) / 2 else "black")
        ax.set_xticks(range(len(e_vs)), [str(e) for e in e_vs])
        ax.set_yticks(range(len(e_ds)), [str(e) for e in e_ds])
        ax.grid(False)
        ax.set(xlabel="intermediate verifier exit $E_v$", ylabel="draft exit $E_d$", title=f"HiSpec, {dataset}")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="speedup over AR (best cell config)", shrink=0.9)
    _caption(fig, t, "cell: best speedup, and its N_d,N_i (f = flush on mismatch)")
    return fig


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both axes (lower ``x``, higher ``y``), by ``x``."""
    pts = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    front, best = [], float("-inf")
    for idx, r in pts.iterrows():
        if r[y] > best:
            front.append(idx)
            best = r[y]
    return pts.loc[front]


def draw_grid_pareto(t: pd.DataFrame) -> Figure:
    t = t.dropna(subset=["speedup_vs_ar", "layer_evals_per_token"])
    t = t[t["method"] != "autoregressive"]
    fig, axes, groups = _per_dataset(t, 1.4)
    color = _palette(t["method"])
    for ax, (dataset, g) in zip(axes, groups):
        for method, gm in g.groupby("method", sort=True):
            lo, hi = _ci_cols(gm, "speedup_lo", "speedup_hi")
            _with_ci(ax, gm["layer_evals_per_token"], gm["speedup_vs_ar"], lo, hi, label=method, linestyle="none",
                     alpha=0.8, color=color[method])
        front = pareto_front(g, "layer_evals_per_token", "speedup_vs_ar")
        ax.step(front["layer_evals_per_token"], front["speedup_vs_ar"], where="post", color="0.2",
                linewidth=1.0, label="Pareto front")
        ax.axhline(1.0, **AR_LINE)
        ax.set(xlabel="decoder-layer evaluations per token", ylabel="speedup over AR", title=f"All configurations, {dataset}")
    _legend_outside(axes)
    fig.tight_layout()
    _caption(fig, t, CI_NOTE + "; AR costs one target depth per token")
    return fig


def draw_grid_prediction(t: pd.DataFrame) -> Figure:
    """The latency model (hsd_bench/hierarchy) predicts decode time, so the measurement it is set
    against is the decode phase's speedup (``decode_speedup_vs_ar``), not the end-to-end one:
    prefill, the same for a method and AR, pulls that towards 1 (by 1-15 % on the GPU grid)."""
    y = "decode_speedup_vs_ar"
    t = t.dropna(subset=["predicted_speedup", y])
    fig, axes, groups = _per_dataset(t, 1.4, 3.4)
    lo = min(1.0, float(t[["predicted_speedup", y]].min().min()) * 0.95) if len(t) else 0.5
    hi = max(1.5, float(t[["predicted_speedup", y]].max().max()) * 1.05) if len(t) else 2.0
    color = _palette(t["method"])
    for ax, (dataset, g) in zip(axes, groups):
        for method, gm in g.groupby("method", sort=True):
            gm = gm.sort_values("predicted_speedup")
            # no error bars: the table's bootstrap interval is the end-to-end speedup's
            _with_ci(ax, gm["predicted_speedup"], gm[y], label=method, linestyle="none", color=color[method])
        ax.plot([lo, hi], [lo, hi], label="measured = predicted", **AR_LINE)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="predicted decode speedup (latency model)",
               ylabel="measured decode speedup over AR", title=f"Predicted vs measured, {dataset}")
        ax.set_aspect("equal")
    _legend_outside(axes)
    fig.tight_layout()
    _caption(fig, t, "decode phase on both axes (prefill excluded, as in the latency model)")
    return fig


def draw_grid_rules(t: pd.DataFrame) -> Figure:
    t = t.dropna(subset=["mean_accepted_len"]).assign(temperature=lambda d: d["temperature"].astype(float))
    # Greedy verification ignores the rule, so the plan runs T = 0 once (tokenwise): draw it for every rule.
    greedy = t[(t["temperature"] == 0) & (t["verifier"] == "tokenwise")]
    t = pd.concat([t] + [greedy.assign(verifier=r) for r in t["verifier"].unique()
                         if r != "tokenwise" and not ((t["verifier"] == r) & (t["temperature"] == 0)).any()])
    extra = _varying(t, ["method", "exit", "draft_len"])
    fig, axes, groups = _per_dataset(t, 1.2)
    series = [k if isinstance(k, tuple) else (k,) for k, _ in t.groupby(["verifier", *extra], sort=True)]
    color = _palette(series)
    # rules with one outcome law (block, hsd) draw the same line: a dash per rule keeps each visible
    dash = {k: ("-", "--", ":", "-.")[i % 4] for i, k in enumerate(sorted(set(series), key=str))}
    for ax, (dataset, g) in zip(axes, groups):
        for keys, gr in g.groupby(["verifier", *extra], sort=True):
            keys = keys if isinstance(keys, tuple) else (keys,)
            gr = gr.sort_values("temperature")
            _with_ci(ax, gr["temperature"], gr["mean_accepted_len"], *_ci_cols(gr, "tau_lo", "tau_hi"),
                     label=_series_label(keys, ["rule", *extra]), color=color[keys], linestyle=dash[keys])
        ax.set(xlabel="temperature T", ylabel=r"accepted length $\tau$ (tokens / target forward)",
               title=f"Verification rules, {dataset}")
    _legend_outside(axes, "rule")
    fig.tight_layout()
    _caption(fig, t, CI_NOTE + "; at T = 0 every rule is greedy prefix matching (one run, drawn for each rule)")
    return fig


def draw_grid_draft_stop(t: pd.DataFrame) -> Figure:
    t = t.dropna(subset=["speedup_vs_ar"])
    t = t.assign(policy=t["draft_stop"].map(lambda v: "fixed γ" if pd.isna(v) else f"stop < {float(v):g}"))
    panels = [(m, d) for m in _values(t, "method") for d in _values(t, "dataset")]
    fig = Figure(figsize=(1.6 + 3.3 * len(panels), 5.4))
    axes = fig.subplots(2, len(panels), squeeze=False)
    color = _palette(p for p in t["policy"] if p != "fixed γ")
    for col, (method, dataset) in enumerate(panels):
        g = t[(t["method"] == method) & (t["dataset"].astype(str) == dataset)]
        for policy, gp in sorted(g.groupby("policy"), key=lambda kv: (kv[0] != "fixed γ", kv[0])):
            gp = gp.sort_values("draft_len")
            style = {"color": "0.2", "linestyle": "--"} if policy == "fixed γ" else {"color": color[policy]}
            _with_ci(axes[0, col], gp["draft_len"], gp["speedup_vs_ar"],
                     *_ci_cols(gp, "speedup_lo", "speedup_hi"), label=policy, **style)
            axes[1, col].plot(gp["draft_len"], gp["mean_draft_len"], marker="o", label=policy, **style)
        axes[0, col].axhline(1.0, **AR_LINE)
        axes[0, col].set(ylabel="speedup over AR", title=f"{method}, {dataset}")
        axes[1, col].set(xlabel=r"draft length $\gamma$ (the maximum when adaptive)",
                         ylabel="mean tokens drafted per round")
        for ax in axes[:, col]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_outside(axes[0], "draft length")
    fig.tight_layout()
    _caption(fig, t, CI_NOTE)
    return fig


def _produced_by(name: str, experiments: tuple[str, ...] = (), extra: str = "") -> str:
    runs = experiments or (name,)
    sweeps = " && ".join(f"python run.py -m +experiment={e}" for e in runs)
    return f"{sweeps} && python scripts/collect.py {' '.join(f'runs/{e}' for e in runs)} --figure {name}{extra}"


_LINE = ("model", "dataset", "method", "exit", "draft_len", "speedup_vs_ar", "acceptance_rate")
_GRID = ("hardware", "model", "dataset", "n_samples", "speedup_vs_ar", "speedup_lo", "speedup_hi")
GRID_SWEEPS = ("grid_layerskip", "grid_hispec", "grid_vanilla_sd", "grid_draft_stop")

FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in [
        FigureSpec("exit_layer", "Speedup and acceptance vs exit layer (LayerSkip)", draw_exit_layer,
                   _produced_by("exit_layer"), _LINE),
        FigureSpec("draft_length", "Speedup and acceptance vs draft length", draw_draft_length,
                   _produced_by("draft_length"), _LINE),
        FigureSpec("verification_period", "HiSpec speedup vs verification period", draw_verification_period,
                   _produced_by("verification_period"),
                   ("model", "dataset", "exit", "draft_len", "period", "flush_on_mismatch", "speedup_vs_ar")),
        FigureSpec("method_comparison", "AR-normalized speedup per method and dataset", draw_method_comparison,
                   _produced_by("method_comparison"), ("dataset", "method", "speedup_vs_ar")),
        FigureSpec("verifier_rules", "Accepted length per verification rule under sampling", draw_verifier_rules,
                   _produced_by("verifier_rules"),
                   ("model", "dataset", "method", "verifier", "lossless", "temperature", "draft_len",
                    "mean_accepted_len", "speedup_vs_ar")),
        FigureSpec("hierarchy_prediction", "Predicted vs measured decode-phase speedup of hierarchies",
                   draw_hierarchy_prediction,
                   _produced_by("hierarchy_prediction") + " (needs predicted_speedup in the runs' summary.json)",
                   ("method", "levels", "predicted_speedup", "decode_speedup_vs_ar"),
                   upgrade=_hierarchy_table_upgrade),
        FigureSpec("grid_layerskip", "LayerSkip speedup vs exit layer for each draft length (GPU grid)",
                   draw_grid_layerskip, _produced_by("grid_layerskip"), _GRID + ("exit", "draft_len")),
        FigureSpec("grid_hispec", "HiSpec speedup over (E_d, E_v), best N_d, N_i, flush per cell (GPU grid)",
                   draw_grid_hispec, _produced_by("grid_hispec"),
                   _GRID + ("exit", "draft_len", "period", "flush_on_mismatch")),
        FigureSpec("grid_pareto", "Speedup vs layer evaluations per token, every configuration, Pareto front",
                   draw_grid_pareto, _produced_by("grid_pareto", GRID_SWEEPS),
                   _GRID + ("method", "layer_evals_per_token"), GRID_SWEEPS),
        FigureSpec("grid_prediction", "Predicted (latency model) vs measured decode-phase speedup of every grid stack",
                   draw_grid_prediction,
                   _produced_by("grid_prediction", GRID_SWEEPS, " --predictions results/grid_plan/plan.csv"),
                   _GRID + ("method", "predicted_speedup", "decode_speedup_vs_ar"), GRID_SWEEPS),
        FigureSpec("grid_rules", "Accepted length vs temperature for each verification rule (GPU grid)",
                   draw_grid_rules, _produced_by("grid_rules"),
                   _GRID + ("verifier", "temperature", "mean_accepted_len", "tau_lo", "tau_hi")),
        FigureSpec("grid_draft_stop", "Speedup with and without adaptive draft length (GPU grid)",
                   draw_grid_draft_stop, _produced_by("grid_draft_stop"),
                   _GRID + ("method", "draft_len", "draft_stop", "mean_draft_len")),
    ]
}


# the committed sets make_figures.py rebuilds by default: the CPU example, the GPU headline set, the
# GPU calls measured against chunked AR (ar_chunk=8, results/gpu_ar_chunk/README.md), and the eighth
# run's named sweeps with three timed passes (results/gpu_run8/README.md)
RESULT_SETS = ("results", "results/gpu", "results/gpu_ar_chunk", "results/gpu_run8")


def table_path(results_dir: Path | str, name: str) -> Path:
    return Path(results_dir) / name / "table.csv"


def build_figure(name: str, results_dir: Path | str = "results", out_dir: Path | str | None = None) -> list[Path] | None:
    """Draw one figure from ``results/<name>/table.csv`` into ``out_dir`` (default: beside the table).

    Returns the PNG and PDF paths, or None when the table does not exist yet.
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; figures: {', '.join(FIGURES)}")
    table = table_path(results_dir, name)
    if not table.exists():
        return None
    df = pd.read_csv(table)
    if FIGURES[name].upgrade is not None:
        df = FIGURES[name].upgrade(df)
    missing = [c for c in FIGURES[name].needs if c not in df.columns]
    if df.empty or missing:
        problem = "has no rows" if df.empty else f"lacks column(s) {', '.join(missing)}"
        raise ValueError(f"{table} {problem}; rebuild it with: {FIGURES[name].produced_by}")
    out = Path(out_dir) if out_dir is not None else table.parent
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig = FIGURES[name].draw(df)
        paths = [out / f"{name}.png", out / f"{name}.pdf"]
        for p in paths:
            # no creation date in the PDF: rebuilding an unchanged figure rewrites the same bytes,
            # so a rebuild's diff shows only the figures that changed
            fig.savefig(p, metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    return paths


def build_all(results_dir: Path | str = "results", out_dir: Path | str | None = None,
              only: list[str] | None = None, log: Callable[[str], None] = print) -> dict[str, list[Path] | None]:
    """Every figure (or ``only`` these); one printed line per figure: written, or skipped and why."""
    built: dict[str, list[Path] | None] = {}
    for name in only or list(FIGURES):
        target = None if out_dir is None else Path(out_dir) / name
        paths = build_figure(name, results_dir, target)
        built[name] = paths
        if paths is None:
            log(f"skip {name}: {table_path(results_dir, name)} does not exist yet; "
                f"produce it with: {FIGURES[name].produced_by}")
        else:
            log(f"wrote {name}: " + ", ".join(str(p) for p in paths))
    return built


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="scripts/make_figures.py",
                                 description="Rebuild every paper figure (PNG + PDF) from results/<figure>/table.csv.")
    ap.add_argument("names", nargs="*",
                    help=f"figures to build (default: all): {', '.join(FIGURES)}")
    ap.add_argument("--results", nargs="+", default=list(RESULT_SETS),
                    help="folders holding <figure>/table.csv (default: the offline CPU example results/, "
                         "the GPU headline set results/gpu/, results/gpu_ar_chunk/ and results/gpu_run8/)")
    ap.add_argument("--out", help="write figures to OUT/<figure>/ instead of beside their tables")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; figures: {', '.join(FIGURES)}")
    if args.out and len(args.results) > 1:
        ap.error("--out takes one --results folder (figures of two sets would overwrite each other)")
    for results in args.results:
        build_all(results, args.out, args.names or None)
    return 0
