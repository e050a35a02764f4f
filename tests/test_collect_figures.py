"""Collecting run directories into frames (with the parquet cache) and building every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))

from synthetic_runs import base_config, make_all_sweeps, make_run  # noqa: E402

from hsd_bench import collect, figures  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("runs")
    return root, make_all_sweeps(root)


def test_find_run_dirs_recurses_and_dedupes(sweeps):
    root, runs = sweeps
    every = sorted(p.resolve() for ps in runs.values() for p in ps)
    assert collect.find_run_dirs([root]) == every
    one = runs["exit_layer"][0]
    assert collect.find_run_dirs([one, root / "exit_layer"]) == sorted(p.resolve() for p in runs["exit_layer"])
    with pytest.raises(FileNotFoundError, match="no such results path"):
        collect.find_run_dirs([root / "missing"])


def test_rows_frame_has_every_row_with_its_config(sweeps):
    root, runs = sweeps
    df = collect.collect_rows([root / "exit_layer"])
    n_expected = sum(len((d / "rows.jsonl").read_text().splitlines()) for d in runs["exit_layer"])
    assert len(df) == n_expected == 5 * 3 * 2
    assert {"run_hash", "run_dir", "done", "sample_id", "method", "tokens_per_s", "cfg.method.exit",
            "cfg.dataset.name", "scores.pass@1"} <= set(df.columns)
    assert set(df["method"]) == {"layerskip", "autoregressive"}
    assert sorted(df["cfg.method.exit"].unique()) == [2, 4, 6, 8, 12]
    assert df["done"].all()


def test_summaries_frame_matches_summary_json(sweeps):
    root, runs = sweeps
    df = collect.collect_summaries([root / "method_comparison"])
    assert len(df) == 9 * 2  # each run: its method and the AR baseline
    d = runs["method_comparison"][4]
    summary = json.loads((d / "summary.json").read_text())
    got = df[(df["run_hash"] == d.name) & (df["method"] == summary["method"])].iloc[0]
    want = summary["methods"][summary["method"]]
    assert got["speedup_vs_ar"] == pytest.approx(want["speedup_vs_ar"])
    assert got["acceptance_rate"] == pytest.approx(want["acceptance_rate"])
    assert got["cfg.dataset.name"] == summary["config"]["dataset"]["name"]


def test_unfinished_and_torn_runs(tmp_path):
    d = make_run(tmp_path, base_config(), finished=False)
    with open(d / "rows.jsonl", "a") as f:
        f.write('{"sample_id": "torn", "meth')  # a job killed mid-write
    rows = collect.collect_rows([tmp_path])
    assert len(rows) == 6 and not rows["done"].any() and "torn" not in set(rows["sample_id"])
    assert collect.collect_summaries([tmp_path]).empty


def test_mixed_exit_types_survive_parquet(tmp_path):
    make_run(tmp_path, base_config(**{"method.exit": 4}))
    make_run(tmp_path, base_config(**{"method.name": "hispec", "method.exit": [2, 4]}))
    cache = tmp_path / "cache"
    fresh = collect.collect_summaries([tmp_path], cache_dir=cache)
    cached = collect.collect_summaries([tmp_path], cache_dir=cache)
    pd.testing.assert_frame_equal(fresh, cached)
    assert set(fresh["cfg.method.exit"]) == {"4", "[2, 4]"}
    table = collect.summary_table(fresh)
    assert set(table["exit"]) == {"4", "2,4"}


def test_cache_is_used_until_a_run_file_changes(tmp_path, monkeypatch):
    a = make_run(tmp_path / "runs", base_config(**{"method.exit": 4}))
    cache = tmp_path / "cache"
    first = collect.collect_rows([tmp_path / "runs"], cache_dir=cache)
    (cached_file,) = cache.glob("rows-*.parquet")

    calls = []
    real = collect.load_rows
    monkeypatch.setattr(collect, "load_rows", lambda dirs: calls.append(dirs) or real(dirs))
    again = collect.collect_rows([tmp_path / "runs"], cache_dir=cache)
    assert calls == [], "an unchanged set of runs must be read from the cache"
    pd.testing.assert_frame_equal(first, again)

    # A running job appends a row: the key changes, the frame is rebuilt, the stale cache file goes.
    row = json.loads((a / "rows.jsonl").read_text().splitlines()[0])
    row["sample_id"] = "HumanEval/99"
    with open(a / "rows.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    os.utime(a / "rows.jsonl", ns=(os.stat(a / "rows.jsonl").st_atime_ns, os.stat(a / "rows.jsonl").st_mtime_ns + 10**9))
    grown = collect.collect_rows([tmp_path / "runs"], cache_dir=cache)
    assert len(calls) == 1 and len(grown) == len(first) + 1
    assert not cached_file.exists() and len(list(cache.glob("rows-*.parquet"))) == 1

    # A new run appears: rebuilt again.
    make_run(tmp_path / "runs", base_config(**{"method.exit": 8}))
    assert collect.collect_rows([tmp_path / "runs"], cache_dir=cache)["run_hash"].nunique() == 2
    assert len(calls) == 2


def test_summary_table_one_row_per_run_with_ar_throughput(sweeps):
    root, runs = sweeps
    summaries = collect.collect_summaries([root / "draft_length"])
    table = collect.summary_table(summaries)
    assert list(table.columns) == collect.TABLE_COLUMNS
    assert len(table) == len(runs["draft_length"]) == 8
    assert set(table["method"]) == {"layerskip", "hispec"}
    recomputed = table["tokens_per_s"] / table["ar_tokens_per_s"]
    assert recomputed.to_numpy() == pytest.approx(table["speedup_vs_ar"].to_numpy())
    assert str(table["draft_len"].dtype) == "Int64"


def test_summary_table_keeps_one_config_measured_in_two_sweeps(sweeps, tmp_path):
    # The same configuration in two sweep folders has one run_hash and two measurements
    # (grid_pareto collects grid_layerskip and grid_draft_stop, which share a point).
    import shutil

    root, runs = sweeps
    twin = runs["draft_length"][0]
    copy = tmp_path / "other_sweep" / twin.name
    shutil.copytree(twin, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["methods"]["autoregressive"]["tokens_per_s"] *= 2
    (copy / "summary.json").write_text(json.dumps(summary))
    table = collect.summary_table(collect.collect_summaries([twin, copy]))
    assert len(table) == 2 and table["run_hash"].nunique() == 1
    assert sorted(table["ar_tokens_per_s"]) == pytest.approx(
        sorted([summary["methods"]["autoregressive"]["tokens_per_s"] / 2,
                summary["methods"]["autoregressive"]["tokens_per_s"]]))


def _build_tables(root: Path, results: Path) -> None:
    for name, spec in figures.FIGURES.items():
        sources = [str(root / e) for e in spec.sources]
        assert collect.main([*sources, "--figure", name, "--results", str(results), "--no-cache"]) == 0
        assert (results / name / "table.csv").exists()


def test_every_figure_builds_png_and_pdf(sweeps, tmp_path):
    root, _ = sweeps
    results = tmp_path / "results"
    _build_tables(root, results)
    out = tmp_path / "figs"
    lines: list[str] = []
    built = figures.build_all(results, out, log=lines.append)
    assert set(built) == set(figures.FIGURES)
    for name, paths in built.items():
        assert paths is not None, f"{name} was skipped"
        png, pdf = paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, png
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, pdf
    assert len(lines) == len(figures.FIGURES) and all(line.startswith("wrote ") for line in lines)


def test_missing_tables_are_skipped_with_the_command_that_makes_them(tmp_path):
    lines: list[str] = []
    built = figures.build_all(tmp_path / "results", tmp_path / "figs", log=lines.append)
    assert all(v is None for v in built.values())
    for (name, spec), line in zip(figures.FIGURES.items(), lines, strict=True):
        assert line.startswith(f"skip {name}:")
        # every sweep whose runs the table collects (the figure's own name unless it combines sweeps)
        assert all(f"+experiment={e}" in line for e in spec.sources)
        runs = " ".join(f"runs/{e}" for e in spec.sources)
        assert f"scripts/collect.py {runs} --figure {name}" in line
    assert not (tmp_path / "figs").exists()


def test_scripts_collect_and_make_figures(sweeps, tmp_path):
    root, _ = sweeps
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "collect.py"), str(root / "exit_layer"),
                          "--figure", "exit_layer", "--results", str(results), "--cache-dir", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"wrote {results / 'exit_layer' / 'table.csv'}: 5 rows from 5 runs" in out.stdout
    assert list((tmp_path / "c").glob("summaries-*.parquet"))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_figures.py"), "--results", str(results)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "wrote exit_layer:" in out.stdout and "skip hierarchy_prediction:" in out.stdout
    assert (results / "exit_layer" / "exit_layer.png").stat().st_size > 10_000
    assert (results / "exit_layer" / "exit_layer.pdf").exists()
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "make_figures.py"), "no_such_fig"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown figure(s) no_such_fig" in bad.stderr


def test_committed_tables_are_drawable(tmp_path):
    """Whatever is committed under results/<figure>/table.csv and results/gpu/<figure>/table.csv
    has the figure's columns and draws; the GPU headline set holds the named sweeps."""
    for name, spec in figures.FIGURES.items():
        assert set(spec.needs) <= set(collect.TABLE_COLUMNS), f"{name} needs a column collect.py does not write"
    for results in figures.RESULT_SETS:
        for name in figures.FIGURES:
            if figures.table_path(REPO / results, name).exists():
                assert figures.build_figure(name, REPO / results, tmp_path / results / name) is not None
    for name in ("method_comparison", "exit_layer", "draft_length", "grid_layerskip", "grid_hispec"):
        assert figures.table_path(REPO / "results" / "gpu", name).exists(), name


def test_every_figure_says_what_ran_where_and_keeps_its_legend_off_the_data(sweeps, tmp_path):
    root, _ = sweeps
    results = tmp_path / "results"
    _build_tables(root, results)
    for name, spec in figures.FIGURES.items():
        with matplotlib.rc_context(figures.STYLE):
            fig = spec.draw(pd.read_csv(figures.table_path(results, name)))
        fig.canvas.draw()
        caption = " ".join(t.get_text() for t in fig.texts)
        for part in ("hardware:", "model:", "dataset:", "samples per configuration"):
            assert part in caption, f"{name}: caption lacks {part!r}: {caption!r}"
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                assert not legend.get_window_extent().overlaps(ax.get_window_extent()), f"{name}: legend over axes"


def test_a_table_without_the_needed_columns_is_a_clear_error(tmp_path):
    (tmp_path / "exit_layer").mkdir()
    pd.DataFrame({"exit": [1, 2]}).to_csv(tmp_path / "exit_layer" / "table.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) model, dataset, method.*scripts/collect.py"):
        figures.build_figure("exit_layer", tmp_path)


def test_notebook_draws_every_committed_table(sweeps, tmp_path, monkeypatch):
    """The notebook is valid JSON (nbformat 4, no outputs) and its code, run top to bottom, shows each figure."""
    import types

    nb = json.loads((REPO / "notebooks" / "results.ipynb").read_text())
    assert nb["nbformat"] == 4 and nb["cells"]
    assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code")
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert 'RESULTS = REPO / "results"' in code

    root, _ = sweeps
    results = tmp_path / "results"
    _build_tables(root, results)
    shown: list = []
    display_mod = types.ModuleType("IPython.display")
    display_mod.display = shown.append
    display_mod.Image = lambda filename: ("image", Path(filename))
    display_mod.Markdown = lambda text: ("md", text)
    fake_ipython = types.ModuleType("IPython")
    # matplotlib asks the IPython in sys.modules for its version at the process's first canvas;
    # without this the test failed whenever it ran first in its worker
    fake_ipython.version_info = (9, 0)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    monkeypatch.chdir(REPO / "notebooks")
    code = code.replace("%matplotlib inline", "").replace('RESULTS = REPO / "results"', f"RESULTS = Path({str(results)!r})")
    exec(compile(code, "results.ipynb", "exec"), {})
    images = [x[1] for x in shown if isinstance(x, tuple) and x[0] == "image"]
    assert sorted(p.stem for p in images) == sorted(figures.FIGURES)
    assert all(p.stat().st_size > 10_000 for p in images)


# -- what each figure point is (audit of the tables and figures) --------------------------------------

def _draw(name: str, t: pd.DataFrame):
    with matplotlib.rc_context(figures.STYLE):
        return figures.FIGURES[name].draw(t)


def _series(ax) -> dict[str, tuple[str, list, list]]:
    """label -> (colour, x, y) of every line a figure drew with ``_with_ci`` (an errorbar)."""
    from matplotlib.colors import to_hex
    from matplotlib.container import ErrorbarContainer

    return {c.get_label(): (to_hex(c.lines[0].get_color()), list(c.lines[0].get_xdata()), list(c.lines[0].get_ydata()))
            for c in ax.containers if isinstance(c, ErrorbarContainer)}


def _legend_colours(fig) -> dict[str, str]:
    from matplotlib.colors import to_hex

    (leg,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return {t.get_text(): to_hex(h.get_color()) for h, t in zip(leg.legend_handles, leg.get_texts(), strict=True)}


def _line_table(**cols) -> pd.DataFrame:
    n = max(len(v) for v in cols.values() if isinstance(v, list))
    base = {"model": "m", "dataset": "humaneval", "hardware": "cpu", "n_samples": 4,
            "run_hash": [f"r{i}" for i in range(n)]}
    return pd.DataFrame({**base, **cols})


def test_a_series_keeps_its_legend_colour_in_every_panel():
    # hf_generate has a speedup but no acceptance: the acceptance panel draws the other two only,
    # and each must keep the colour the shared legend gives it
    t = _line_table(method=["hf_generate", "hf_generate", "hispec", "hispec", "layerskip", "layerskip"], exit=None,
                    draft_len=[2, 4, 2, 4, 2, 4], speedup_vs_ar=[0.9, 0.95, 1.1, 1.2, 1.3, 1.4],
                    acceptance_rate=[None, None, 0.5, 0.4, 0.6, 0.5])
    fig = _draw("draft_length", t)
    legend = _legend_colours(fig)
    speed, accept = (_series(ax) for ax in fig.axes[:2])
    assert set(speed) == {"hf_generate", "hispec", "layerskip"} and set(accept) == {"hispec", "layerskip"}
    assert len(set(legend.values())) == len(legend)
    for panel in (speed, accept):
        for label, (colour, _, _) in panel.items():
            assert colour == legend[label], f"{label} drawn in {colour}, its legend entry is {legend[label]}"


def test_summary_table_has_decode_speedup_and_what_defined_each_measurement(tmp_path):
    sweep = tmp_path / "grid_vanilla_sd"
    for k, draft in enumerate(("checkpoints/family-2x128", "checkpoints/family-6x128")):
        make_run(sweep, base_config(**{"method.name": "vanilla_sd", "method.draft.path": draft}), seed=k,
                 extra_summary={"ar_chunk": 8, "batch_size": 1})
    # a draft path in a method without a separate draft decides nothing (runner.identity drops it)
    other = make_run(tmp_path / "other", base_config(**{"method.draft.path": "checkpoints/family-2x128", "ar_chunk": 4}))
    summary = json.loads((other / "summary.json").read_text())  # the budget set by the dataset, not run.py's key
    summary["config"]["max_new_tokens"], summary["config"]["dataset"]["max_new_tokens"] = None, 64
    (other / "summary.json").write_text(json.dumps(summary))
    summaries = collect.collect_summaries([tmp_path])
    table = collect.summary_table(summaries)
    old = ["run_hash", "model", "dataset", "method", "exit", "draft_len", "period", "flush_on_mismatch", "levels",
           "verifier", "temperature", "n_samples", "n_generated", "tokens_per_s", "speedup_vs_ar", "acceptance_rate",
           "mean_accepted_len", "target_forwards_per_token", "layer_evals_per_token", "parity_exact", "lossless",
           "predicted_speedup", "mean_draft_len", "speedup_lo", "speedup_hi", "tau_lo", "tau_hi", "hardware",
           "timing_warnings", "draft_stop", "ar_tokens_per_s"]
    assert list(table.columns) == old + ["decode_speedup_vs_ar", "draft", "ar_chunk", "max_new_tokens", "batch_size",
                                         "sweep"]
    by = table.set_index("run_hash")
    evaluated = summaries[summaries["method"] == summaries["cfg.method.name"]].set_index("run_hash")
    assert by["decode_speedup_vs_ar"].to_numpy() == pytest.approx(
        evaluated.loc[by.index, "decode_speedup_vs_ar"].to_numpy())
    assert (by["decode_speedup_vs_ar"] != by["speedup_vs_ar"]).all()  # prefill is in one, not the other
    sd = table[table["method"] == "vanilla_sd"]
    assert sorted(sd["draft"]) == ["checkpoints/family-2x128", "checkpoints/family-6x128"]
    assert list(sd["ar_chunk"]) == [8, 8] and list(sd["batch_size"]) == [1, 1]
    assert list(sd["max_new_tokens"]) == [96, 96] and set(sd["sweep"]) == {"grid_vanilla_sd"}
    (ls,) = table[table["method"] == "layerskip"].to_dict("records")
    assert ls["draft"] is None and ls["ar_chunk"] == 4 and ls["max_new_tokens"] == 64 and ls["sweep"] == "other"


def test_grid_prediction_sets_the_prediction_against_the_measured_decode_speedup(sweeps, tmp_path):
    root, _ = sweeps
    results = tmp_path / "results"
    spec = figures.FIGURES["grid_prediction"]
    assert collect.main([*(str(root / e) for e in spec.sources), "--figure", "grid_prediction",
                         "--results", str(results), "--no-cache"]) == 0
    t = pd.read_csv(figures.table_path(results, "grid_prediction")).dropna(subset=["predicted_speedup"])
    fig = _draw("grid_prediction", t)
    drawn = {}
    for ax in fig.axes:
        assert "decode" in ax.get_ylabel() and "decode" in ax.get_xlabel()
        for label, (_, x, y) in _series(ax).items():
            drawn.setdefault(label, []).extend(zip(x, y))
    for method, g in t.groupby("method"):
        want = sorted(zip(g["predicted_speedup"], g["decode_speedup_vs_ar"]))
        got = sorted(drawn[method])
        assert [p for p, _ in got] == pytest.approx([p for p, _ in want])
        assert [m for _, m in got] == pytest.approx([m for _, m in want])
        assert [m for _, m in got] != pytest.approx(sorted(g["speedup_vs_ar"]))
    # the committed GPU table carries the decode speedup the figure now reads
    committed = pd.read_csv(figures.table_path(REPO / "results" / "gpu", "grid_prediction"))
    assert committed.dropna(subset=["predicted_speedup"])["decode_speedup_vs_ar"].notna().all()


def _profile_hierarchy():
    import importlib.util

    spec = importlib.util.spec_from_file_location("profile_hierarchy", REPO / "scripts" / "profile_hierarchy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_hierarchy_names_its_decode_speedup_and_old_tables_still_draw(tmp_path):
    rows = [{"stack": "a(T=2) -> target", "selected": True, "predicted_speedup": 1.5, "measured_speedup": 1.4},
            {"stack": "b(T=4) -> target", "selected": "False", "predicted_speedup": 1.2, "measured_speedup": 1.6}]
    (tmp_path / "new" / "hierarchy_prediction").mkdir(parents=True)
    _profile_hierarchy().write_figure_table(tmp_path / "new" / "hierarchy_prediction" / "table.csv", rows,
                                            {"hardware": "cpu", "model": "m", "dataset": "humaneval", "n_samples": 4})
    new = pd.read_csv(tmp_path / "new" / "hierarchy_prediction" / "table.csv")
    assert "speedup_vs_ar" not in new and list(new["decode_speedup_vs_ar"]) == [1.4, 1.6]
    assert list(new["method"]) == ["selected", "hierarchy"]
    # a table the script wrote before the rename (its speedup_vs_ar was the decode phase's) still draws
    (tmp_path / "old" / "hierarchy_prediction").mkdir(parents=True)
    new.rename(columns={"decode_speedup_vs_ar": "speedup_vs_ar"}).to_csv(
        tmp_path / "old" / "hierarchy_prediction" / "table.csv", index=False)
    for where in ("new", "old"):
        assert figures.build_figure("hierarchy_prediction", tmp_path / where, tmp_path / "figs" / where) is not None
    fig = _draw("hierarchy_prediction", figures._hierarchy_table_upgrade(
        pd.read_csv(tmp_path / "old" / "hierarchy_prediction" / "table.csv")))
    (ax,) = fig.axes
    points = sorted(tuple(p) for c in ax.collections for p in c.get_offsets())
    assert points == [(1.2, 1.6), (1.5, 1.4)] and "decode" in ax.get_ylabel()
    # collect.py's tables (run_hash) have an end-to-end speedup_vs_ar: never read as the decode one
    assert "decode_speedup_vs_ar" not in figures._hierarchy_table_upgrade(new.assign(run_hash="x").rename(
        columns={"decode_speedup_vs_ar": "speedup_vs_ar"}))
    # every committed hierarchy_prediction table names its measured column for what it is
    committed = sorted(REPO.glob("results/**/hierarchy_prediction/table.csv"))
    assert len(committed) >= 4
    for table in committed:
        cols = pd.read_csv(table).columns
        assert "decode_speedup_vs_ar" in cols and "speedup_vs_ar" not in cols, table


def test_verification_period_plots_each_jobs_speedup_not_raw_rates():
    # job 0 ran on a slow host (AR 36 tok/s), job 1 on a fast one (AR 54): their raw rates order the
    # two periods one way, their speedups over their own AR the other
    t = _line_table(method="hispec", exit="3,6", draft_len=2, period=[2, 4], flush_on_mismatch=False,
                    tokens_per_s=[40.0, 45.0], ar_tokens_per_s=[36.0, 54.0], speedup_vs_ar=[40 / 36, 45 / 54])
    fig = _draw("verification_period", t)
    (ax,) = fig.axes
    ((_, x, y),) = _series(ax).values()
    assert x == [2, 4] and y == pytest.approx([40 / 36, 45 / 54])
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines())  # AR: each job's own, 1 by definition
    assert "speedup" in ax.get_ylabel()


def test_exit_layer_keeps_two_hispec_stacks_with_one_draft_exit_apart():
    t = _line_table(method=["layerskip"] * 3 + ["hispec"] * 3, exit=["3", "6", "12", "3,6", "3,12", "6,12"],
                    draft_len=4, speedup_vs_ar=[1.1, 1.2, 1.3, 1.5, 1.7, 1.9], acceptance_rate=0.5)
    fig = _draw("exit_layer", t)
    lines = _series(fig.axes[0])
    assert set(lines) == {"layerskip", "hispec, E_v=6", "hispec, E_v=12"}
    assert lines["layerskip"][1:] == ([3, 6, 12], pytest.approx([1.1, 1.2, 1.3]))
    assert lines["hispec, E_v=6"][1:] == ([3], pytest.approx([1.5]))
    assert lines["hispec, E_v=12"][1:] == ([3, 6], pytest.approx([1.7, 1.9]))  # not (1.5 + 1.7) / 2 at E = 3


def test_runs_differing_in_an_unlisted_setting_are_separate_series():
    t = _line_table(method="layerskip", exit=6, draft_len=[2, 4, 2, 4], max_new_tokens=[96, 96, 128, 128],
                    speedup_vs_ar=[1.1, 1.2, 1.5, 1.6], acceptance_rate=[0.6, 0.5, 0.6, 0.5])
    lines = _series(_draw("draft_length", t).axes[0])
    assert {k: v[2] for k, v in lines.items()} == {"layerskip, max_new_tokens=96": pytest.approx([1.1, 1.2]),
                                                    "layerskip, max_new_tokens=128": pytest.approx([1.5, 1.6])}


@pytest.mark.parametrize("name", ["exit_layer", "draft_length", "method_comparison", "verification_period"])
def test_repeats_of_one_configuration_are_refused_not_averaged(name):
    t = _line_table(method="hispec", exit="3,6", draft_len=[2, 4, 4], period=4, flush_on_mismatch=False,
                    speedup_vs_ar=[1.1, 1.2, 1.4], acceptance_rate=0.5, tokens_per_s=50.0, ar_tokens_per_s=40.0,
                    sweep=["s1", "s1", "s2"])
    if name == "verification_period":
        t = t.assign(period=[2, 4, 4], draft_len=2)
    if name in ("exit_layer", "method_comparison"):
        t = t.drop(0)
    with pytest.raises(ValueError, match=r"2 table rows are one configuration.*run_hash=r1 sweep=s1.*run_hash=r2 "
                                         r"sweep=s2.*instead of averaging"):
        _draw(name, t)


def test_method_comparison_draws_each_configuration_with_its_own_interval():
    t = _line_table(method=["vanilla_sd", "vanilla_sd", "layerskip"],
                    draft=["checkpoints/family-2x128", "checkpoints/family-6x128", None],
                    speedup_vs_ar=[2.0, 1.6, 1.8], speedup_lo=[1.7, 1.5, 1.6], speedup_hi=[2.5, 1.7, 1.9])
    (ax,) = _draw("method_comparison", t).axes
    from matplotlib.container import BarContainer

    bars = {b.get_label(): b for b in ax.containers if isinstance(b, BarContainer)}
    assert set(bars) == {"layerskip", "vanilla_sd, draft=checkpoints/family-2x128",
                         "vanilla_sd, draft=checkpoints/family-6x128"}
    for label, height, lo, hi in (("vanilla_sd, draft=checkpoints/family-2x128", 2.0, 1.7, 2.5),
                                  ("vanilla_sd, draft=checkpoints/family-6x128", 1.6, 1.5, 1.7),
                                  ("layerskip", 1.8, 1.6, 1.9)):
        (bar,) = bars[label].patches
        assert bar.get_height() == pytest.approx(height)
        (segment,) = bars[label].errorbar.lines[2][0].get_segments()
        assert sorted(segment[:, 1]) == pytest.approx([lo, hi])
