"""Gather run directories into pandas frames, and reduce them to figure tables.

Why: a sweep leaves hundreds of run directories (``<results_dir>/<hash>/``
with ``rows.jsonl``, ``summary.json``, ``DONE``, ``config.json``), often
still being written by running jobs. Analysis wants one frame. Reading
thousands of JSON lines each time a notebook cell runs is slow, so each frame
is cached as parquet under a key made of the run directories' paths and their
files' mtimes and sizes: a run that appends a row, or finishes, changes the
key and the frame is rebuilt; otherwise the cache is read.

Frames:
* ``collect_rows`` — one row per (sample, method) of every run: the row's own
  fields (nested dicts flattened to ``a.b``), ``run_hash``, ``run_dir``,
  ``done``, and the run config as ``cfg.<key>`` columns.
* ``collect_summaries`` — one row per (run, method) from ``summary.json``
  (finished runs): the method's metrics, the run-level fields, ``cfg.<key>``.
* ``summary_table`` — the small table a figure reads (``results/<figure>/table.csv``):
  fixed columns, one row per run, the evaluated method only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from hsd_bench.results import scan_rows

RUN_FILES = ("rows.jsonl", "summary.json", "DONE", "config.json")
BASELINE = "autoregressive"

PathLike = str | os.PathLike


# -- finding run directories -------------------------------------------------


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("rows.jsonl", "summary.json"))


def find_run_dirs(paths: Iterable[PathLike]) -> list[Path]:
    """Run directories at or below each path (a run dir holds rows.jsonl or summary.json), sorted, unique."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such results path: {p}")
        if is_run_dir(p):
            found.add(p.resolve())
            continue
        for name in ("rows.jsonl", "summary.json"):
            for f in p.rglob(name):
                if f.parent.name != "wandb" and is_run_dir(f.parent):
                    found.add(f.parent.resolve())
    return sorted(found)


def fingerprint(run_dirs: Iterable[Path]) -> str:
    """A key that changes when any run file is written, added or removed."""
    h = hashlib.sha256()
    for d in sorted(map(Path, run_dirs)):
        h.update(str(d).encode())
        for name in RUN_FILES:
            f = d / name
            if f.exists():
                st = f.stat()
                h.update(f"{name}:{st.st_mtime_ns}:{st.st_size};".encode())
    return h.hexdigest()[:16]


# -- reading ----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _read_rows(path: Path) -> list[dict]:
    """The valid rows of rows.jsonl, read as the runner reads them (a torn last line and corrupt lines skipped)."""
    return scan_rows(path).rows


def run_config(run_dir: Path) -> dict:
    """The run's full config: summary.json's (finished runs), else config.json (or config.yaml)."""
    summary = _read_json(run_dir / "summary.json")
    if summary and isinstance(summary.get("config"), dict):
        return summary["config"]
    cfg = _read_json(run_dir / "config.json")
    if cfg is None and (run_dir / "config.yaml").exists():
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=False)
    return cfg or {}


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are kept as values; empty dicts vanish."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Make every column storable in parquet, identically for fresh and cached frames.

    A column mixing kinds (``method.exit`` is 4 in one run and [8, 16] in
    another) becomes text: strings stay, other values become JSON.
    """
    for col in df.columns:
        if df[col].dtype != object:
            continue
        kinds = {_kind(v) for v in df[col] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1:
            df[col] = [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in df[col]]
    return df


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list:" + ",".join(sorted({_kind(x) for x in v}))
    return type(v).__name__


def _frame(records: list[dict], first: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=first)
    cols = [c for c in first if c in df.columns] + [c for c in df.columns if c not in first]
    return _normalize(df[cols])


def load_rows(run_dirs: Iterable[Path]) -> pd.DataFrame:
    records = []
    for d in run_dirs:
        cfg = {f"cfg.{k}": v for k, v in flatten(run_config(d)).items()}
        done = (d / "DONE").exists()
        for r in _read_rows(d / "rows.jsonl"):
            records.append({"run_hash": d.name, "run_dir": str(d), "done": done, **flatten(r), **cfg})
    return _frame(records, ["run_hash", "run_dir", "done", "sample_id", "method"])


def config_key(cfg: Mapping) -> str:
    """What a run's method does, as text: the key that joins predicted speedups
    (``scripts/plan_grid.py``'s plan.csv) to measured runs. Model and dataset are left out."""
    m = cfg.get("method") or {}
    stop = m.get("draft_stop")
    stop = stop.get("threshold") if isinstance(stop, Mapping) else stop
    exit_ = m.get("exit")
    key = {"name": m.get("name"), "exit": list(exit_) if isinstance(exit_, (list, tuple)) else exit_,
           "draft_len": m.get("draft_len"), "period": m.get("period"), "flush": bool(m.get("flush_on_mismatch")),
           "draft": (m.get("draft") or {}).get("path") if m.get("name") == "vanilla_sd" else None,
           "levels": list(m.get("levels") or []), "draft_stop": None if stop is None else float(stop),
           "verifier": cfg.get("verifier"), "temperature": float((cfg.get("decoding") or {}).get("temperature", 0.0))}
    return json.dumps(key, sort_keys=True, default=str)


def load_summaries(run_dirs: Iterable[Path]) -> pd.DataFrame:
    records = []
    for d in run_dirs:
        summary = _read_json(d / "summary.json")
        if not summary:
            continue
        config = summary.get("config") or run_config(d)
        cfg = {f"cfg.{k}": v for k, v in flatten(config).items()}
        cfg["config_key"] = config_key(config)
        run_level = {k: v for k, v in summary.items()
                     if k not in ("config", "methods", "provenance", "method") and not isinstance(v, (dict, list))}
        prov = {f"provenance.{k}": v for k, v in flatten(summary.get("provenance") or {}).items()
                if not isinstance(v, list)}
        for method, metrics in (summary.get("methods") or {}).items():
            records.append({"run_hash": d.name, "run_dir": str(d), "done": (d / "DONE").exists(),
                            "method": method, **flatten(metrics), **run_level, **prov, **cfg})
    return _frame(records, ["run_hash", "run_dir", "done", "method"])


# -- caching ------------------------------------------------------------------


def _cached(kind: str, loader, paths: Iterable[PathLike], cache_dir: PathLike | None) -> pd.DataFrame:
    run_dirs = find_run_dirs(paths)
    if cache_dir is None:
        return loader(run_dirs)
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{kind}-{fingerprint(run_dirs)}.parquet"
    if path.exists():
        df = pd.read_parquet(path)
        for col in df.columns:  # parquet lists come back as numpy arrays
            if df[col].dtype == object:
                df[col] = [v.tolist() if hasattr(v, "tolist") and not isinstance(v, (str, bytes)) else v
                           for v in df[col]]
        return df
    df = loader(run_dirs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f"{kind}-*.parquet"):
        stale.unlink()
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return df


def collect_rows(paths: Iterable[PathLike], cache_dir: PathLike | None = None) -> pd.DataFrame:
    """Every row of every run at or below ``paths`` (unfinished runs included: see ``done``)."""
    return _cached("rows", load_rows, paths, cache_dir)


def collect_summaries(paths: Iterable[PathLike], cache_dir: PathLike | None = None) -> pd.DataFrame:
    """One row per (run, method) of every finished run's summary.json at or below ``paths``."""
    return _cached("summaries", load_summaries, paths, cache_dir)


# -- figure tables ------------------------------------------------------------

# table column -> summaries-frame column
TABLE_SOURCES = {
    "run_hash": "run_hash",
    "model": "cfg.model.path",
    "dataset": "cfg.dataset.name",
    "method": "method",
    "exit": "cfg.method.exit",
    "draft_len": "cfg.method.draft_len",
    "period": "cfg.method.period",
    "flush_on_mismatch": "cfg.method.flush_on_mismatch",
    "levels": "cfg.method.levels",
    "verifier": "cfg.verifier",
    "temperature": "cfg.decoding.temperature",
    "n_samples": "n_samples",
    "n_generated": "n_generated",
    "tokens_per_s": "tokens_per_s",
    "speedup_vs_ar": "speedup_vs_ar",
    "acceptance_rate": "acceptance_rate",
    "mean_accepted_len": "mean_accepted_len",
    "target_forwards_per_token": "target_forwards_per_token",
    "layer_evals_per_token": "layer_evals_per_token",
    "parity_exact": "parity_exact",
    "lossless": "lossless",
    "predicted_speedup": "predicted_speedup",
    "mean_draft_len": "mean_draft_len",
    "speedup_lo": "speedup_vs_ar_lo",  # 95% bootstrap interval over samples (metrics.bootstrap_intervals)
    "speedup_hi": "speedup_vs_ar_hi",
    "tau_lo": "mean_accepted_len_lo",
    "tau_hi": "mean_accepted_len_hi",
    "hardware": "provenance.device",
    # run.py's warnings about this method's rates (host states, waits for a CPU, its speedup's
    # footing: host_probe.method_warnings); 0 where none was raised, empty for runs made before
    "timing_warnings": "timing_warning_count",
}
# draft_stop is {threshold: t} or the shorthand t in a config: one column either way
TABLE_COLUMNS = [*TABLE_SOURCES, "draft_stop", "ar_tokens_per_s"]
# Appended after the columns above (whose names and order older committed tables keep), so a
# figure reads a table with or without them:
# * decode_speedup_vs_ar: decode tokens/s over AR's, prefill left out: what the latency model
#   (hsd_bench/hierarchy) predicts; speedup_vs_ar is end to end;
# * what else decides a measurement: the separate draft model (vanilla_sd, hf_assisted; empty
#   for the others), AR's tokens per host round trip, the generation budget (empty: the
#   dataset's default), the batch size, and the sweep (the run directory's parent folder: one
#   configuration can be measured in two sweeps).
EXTRA_COLUMNS = ["decode_speedup_vs_ar", "draft", "ar_chunk", "max_new_tokens", "batch_size", "sweep"]
TABLE_COLUMNS += EXTRA_COLUMNS


def _compact(v: Any) -> Any:
    """Lists as short text for a CSV cell: exits ``8,16``; hierarchy levels ``a:4>b:4``."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return v
    if isinstance(v, (list, tuple)):
        parts = []
        for x in v:
            if isinstance(x, Mapping):
                name = Path(str(x.get("path", "?"))).name
                extra = x.get("exit")
                parts.append(f"{name}{'@' + str(extra) if extra is not None else ''}:{x.get('batch', '?')}")
            else:
                parts.append(str(x))
        return (">" if any(isinstance(x, Mapping) for x in v) else ",").join(parts)
    return v


def summary_table(summaries: pd.DataFrame, predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """The figure table: one row per run (its evaluated method), fixed columns ``TABLE_COLUMNS``.

    ``ar_tokens_per_s`` is the baseline's throughput in the same run, so
    speedups can be recomputed from the table alone; ``decode_speedup_vs_ar``
    is the decode phase's speedup (``speedup_vs_ar`` is end to end), the one a
    latency-model prediction is compared with. ``predictions`` (a frame
    with ``config_key`` and ``predicted_speedup``, e.g. plan_grid.py's plan.csv)
    fills ``predicted_speedup`` of the runs that did not record one.
    """
    if summaries.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    df = summaries
    # Keyed by run_dir: run_hash names a configuration, and two sweeps that both hold one
    # (grid_layerskip's exit=12 γ=4 is also grid_draft_stop's draft_stop=null) are two measurements.
    key = "run_dir" if "run_dir" in df else "run_hash"
    ar = df[df["method"] == BASELINE].set_index(key)["tokens_per_s"] if "tokens_per_s" in df else pd.Series()
    if "cfg.method.name" in df:
        df = df[df["method"] == df["cfg.method.name"]]
    out = pd.DataFrame({col: (df[src].map(_compact) if src in df else None) for col, src in TABLE_SOURCES.items()})
    out["draft_stop"] = _draft_stop_column(df)
    if predictions is not None and "config_key" in df:
        predicted = predictions.dropna(subset=["predicted_speedup"]).drop_duplicates("config_key")
        joined = df["config_key"].map(predicted.set_index("config_key")["predicted_speedup"])
        out["predicted_speedup"] = pd.to_numeric(out["predicted_speedup"], errors="coerce").fillna(joined)
    out["ar_tokens_per_s"] = df[key].map(ar).to_numpy() if len(ar) else None
    out["decode_speedup_vs_ar"] = df["decode_speedup_vs_ar"] if "decode_speedup_vs_ar" in df else None
    out["draft"] = _draft_column(df)
    out["ar_chunk"] = _first_of(df, "ar_chunk", "cfg.ar_chunk")  # the run's resolved value, else the config's
    out["max_new_tokens"] = _first_of(df, "cfg.max_new_tokens", "cfg.dataset.max_new_tokens")
    out["batch_size"] = _first_of(df, "batch_size", "cfg.decoding.batch_size")
    out["sweep"] = df["run_dir"].map(lambda d: Path(str(d)).parent.name if isinstance(d, str) and d else None) \
        if "run_dir" in df else None
    for col in ("exit", "draft_len", "period", "n_samples", "n_generated", "timing_warnings", "ar_chunk",
                "max_new_tokens", "batch_size"):
        out[col] = _as_int_if_integral(out[col])
    out = out[TABLE_COLUMNS]
    sort = [c for c in ("dataset", "method", "exit", "draft_len", "period", "verifier") if out[c].notna().any()]
    return out.sort_values(sort, kind="stable").reset_index(drop=True) if sort else out.reset_index(drop=True)


def _first_of(df: pd.DataFrame, *cols: str) -> pd.Series:
    """Per row, the first of ``cols`` (summaries-frame columns) that has a value; missing columns skipped."""
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in reversed(cols):
        if col in df:
            out = df[col].astype(object).where(df[col].notna(), out)
    return out


def _draft_column(df: pd.DataFrame) -> pd.Series:
    """The separate draft model's path (``method.draft.path``) of the methods that have one, as the
    run identity counts it (runner.identity): vanilla_sd and hf_assisted (methods.SEPARATE_DRAFT_METHODS,
    not imported: this module stays free of torch); None for every other."""
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    if "cfg.method.draft.path" not in df:
        return out
    name = df["cfg.method.name"] if "cfg.method.name" in df else df["method"]
    return df["cfg.method.draft.path"].astype(object).where(name.isin(["vanilla_sd", "hf_assisted"]), out)


def _draft_stop_column(df: pd.DataFrame) -> pd.Series:
    """Level 0's draft_stop threshold per row (``method.draft_stop`` as ``{threshold: t}`` or ``t``)."""
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    for col in ("cfg.method.draft_stop", "cfg.method.draft_stop.threshold"):
        if col in df:
            vals = pd.to_numeric(df[col], errors="coerce")
            out = out.where(vals.isna(), vals)
    return out


CATEGORY_METRICS = ("n_samples", "n_generated", "tokens_per_s", "speedup_vs_ar", "acceptance_rate",
                    "mean_accepted_len", "mean_draft_len", "parity_exact")


def category_table(summaries: pd.DataFrame) -> pd.DataFrame:
    """Spec-Bench's report: one row per (run, method, category) from summary.json's ``by_category``.

    Columns: the run's config columns of :func:`summary_table` that say what ran, ``category``,
    and ``CATEGORY_METRICS``. Empty when no run has categories.
    """
    ident = ["run_hash", "model", "dataset", "method", "exit", "draft_len", "draft_stop", "verifier", "temperature",
             "hardware"]
    records = []
    for _, row in summaries.iterrows():
        per: dict[str, dict] = {}
        for key, value in row.items():
            if not key.startswith("by_category.") or value is None or (isinstance(value, float) and value != value):
                continue
            category, metric = key[len("by_category."):].rsplit(".", 1)
            if metric in CATEGORY_METRICS:
                per.setdefault(category, {})[metric] = value
        if not per:
            continue
        one = summaries.loc[[row.name]]
        base = {c: summary_table_row(one, c) for c in ident}
        for category, metrics in sorted(per.items()):
            records.append({**base, "category": category, **{m: metrics.get(m) for m in CATEGORY_METRICS}})
    return pd.DataFrame.from_records(records, columns=[*ident, "category", *CATEGORY_METRICS])


def summary_table_row(one: pd.DataFrame, column: str):
    """One config column of :func:`summary_table` for a one-row summaries frame (any method)."""
    if column == "draft_stop":
        return _draft_stop_column(one).iloc[0]
    src = TABLE_SOURCES[column]
    return _compact(one[src].iloc[0]) if src in one else None


def _as_int_if_integral(col: pd.Series) -> pd.Series:
    """4.0 -> 4 (a column of ints with a missing value is float in pandas); anything else unchanged."""
    vals = pd.to_numeric(col, errors="coerce")
    if col.notna().any() and vals.notna().sum() == col.notna().sum() and (vals.dropna() % 1 == 0).all():
        return vals.astype("Int64")
    return col


# -- command line (scripts/collect.py) ------------------------------------------


def default_cache_dir(paths: Iterable[PathLike]) -> Path:
    """One cache folder per set of input paths, outside the repo: ``$XDG_CACHE_HOME/hsd-bench/collect/<key>``."""
    key = hashlib.sha256("\0".join(sorted(str(Path(p).resolve()) for p in paths)).encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hsd-bench" / "collect" / key


def main(argv: list[str] | None = None) -> int:
    import argparse

    from hsd_bench.figures import FIGURES, table_path

    ap = argparse.ArgumentParser(
        prog="scripts/collect.py",
        description="Gather run directories into one table. With --figure NAME, write the figure's "
                    "table results/NAME/table.csv (what scripts/make_figures.py reads).")
    ap.add_argument("paths", nargs="+", help="run directories, or folders searched recursively for them")
    ap.add_argument("--figure", choices=sorted(FIGURES), help="write results/<figure>/table.csv")
    ap.add_argument("--results", default="results", help="where figure tables go (default: results)")
    ap.add_argument("--rows", action="store_true", help="per-sample rows instead of per-run summaries")
    ap.add_argument("--predictions", help="a CSV with config_key and predicted_speedup (plan_grid.py's plan.csv) "
                                          "to fill the table's predicted_speedup")
    ap.add_argument("--by-category", action="store_true",
                    help="one row per run, method and category (Spec-Bench's per-category report)")
    ap.add_argument("--out", help="write the frame here (.csv or .parquet) instead of printing it")
    ap.add_argument("--cache-dir", help="parquet cache folder (default: ~/.cache/hsd-bench/collect/<key>)")
    ap.add_argument("--no-cache", action="store_true", help="read every run file, write no cache")
    args = ap.parse_args(argv)

    cache = None if args.no_cache else (args.cache_dir or default_cache_dir(args.paths))
    try:
        if args.rows:
            df = collect_rows(args.paths, cache)
        else:
            summaries = collect_summaries(args.paths, cache)
            if args.by_category:
                df = category_table(summaries)
            else:
                predictions = pd.read_csv(args.predictions) if args.predictions else None
                df = summary_table(summaries, predictions) if args.figure else summaries
    except FileNotFoundError as err:
        ap.error(str(err))
    n_runs = df["run_hash"].nunique() if "run_hash" in df else 0
    out = args.out or (table_path(args.results, args.figure) if args.figure else None)
    if out is None:
        with pd.option_context("display.max_columns", 12, "display.width", 160):
            print(df)
        print(f"{len(df)} rows from {n_runs} runs")
        return 0
    out = Path(out)
    if df.empty:
        print(f"no finished runs under {' '.join(args.paths)}: nothing written to {out}")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    else:
        df.to_csv(out, index=False, float_format="%.6g")
    print(f"wrote {out}: {len(df)} rows from {n_runs} runs")
    return 0
