"""hsd_bench/metrics.py on hand-made rows, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from hsd_bench.metrics import format_table, summarize


def row(method: str, n_generated: int, wall_s: float, decode_s: float, drafted: int = 0, accepted: int = 0,
        forwards: int = 0, **extra) -> dict:
    """One per-sample row with the keys summarize reads (engine.GenerationStats.as_row names)."""
    levels = {"L1": drafted} if drafted else {}
    return {
        "sample_id": extra.pop("sample_id", f"s{n_generated}"),  # AR and method rows of a sample pair up by id
        "method": method,
        "n_generated": n_generated,
        "wall_s": wall_s,
        "decode_s": decode_s,
        "drafted": drafted,
        "accepted": accepted,
        "target_forwards": forwards or n_generated,
        "drafted_per_level": levels,
        "accepted_per_level": {"L1": accepted} if drafted else {},
        "layer_evals": {"target": 4 * n_generated},
        "time_split_s": {"other": decode_s},
        "position_reached": [],
        "position_accepted": [],
        **extra,
    }


ROWS = [
    # autoregressive: 30 tokens in 3 s (10 tok/s), decode 2.5 s (12 tok/s)
    row("autoregressive", 10, 1.0, 0.5),
    row("autoregressive", 20, 2.0, 2.0),
    # layerskip: 30 tokens in 1.2 s (25 tok/s), decode 1.0 s (30 tok/s); 24 drafted, 18 accepted, 12 forwards
    row("layerskip", 10, 0.2, 0.2, drafted=8, accepted=6, forwards=4),
    row("layerskip", 20, 1.0, 0.8, drafted=16, accepted=12, forwards=8),
    row("layerskip", 5, 9.0, 9.0, skipped=True),  # a skipped prompt counts for nothing
]


def test_speedup_is_over_the_autoregressive_baseline():
    s = summarize(ROWS)
    assert s["autoregressive"]["tokens_per_s"] == pytest.approx(10.0)
    assert s["layerskip"]["tokens_per_s"] == pytest.approx(25.0)
    assert s["layerskip"]["speedup_vs_ar"] == pytest.approx(2.5)
    assert s["layerskip"]["decode_speedup_vs_ar"] == pytest.approx(30.0 / 12.0)
    assert s["autoregressive"]["speedup_vs_ar"] == pytest.approx(1.0)


def test_throughput_is_token_weighted():
    """sum(tokens) / sum(time), not the mean of per-sample rates (which would be (10 + 50) / 2 = 30)."""
    s = summarize(ROWS)["layerskip"]
    assert s["n_samples"] == 2 and s["n_generated"] == 30
    assert s["acceptance_rate"] == pytest.approx(18 / 24)
    assert s["mean_accepted_len"] == pytest.approx(30 / 12)
    assert s["target_forwards_per_token"] == pytest.approx(12 / 30)
    assert s["acceptance_per_level"] == {"L1": pytest.approx(18 / 24)}


def test_no_baseline_no_speedup():
    s = summarize([r for r in ROWS if r["method"] != "autoregressive"])
    assert s["layerskip"]["speedup_vs_ar"] is None


def test_table_shows_the_speedup():
    table = format_table(summarize(ROWS))
    line = next(ln for ln in table.splitlines() if ln.startswith("layerskip"))
    assert "2.50x" in line


@pytest.mark.parametrize("split", ["recorded", "not recorded"])
def test_acceptance_per_position_pools_every_row(split):
    """Worked by hand: position 0 reached 4 + 3 times and accepted 3 + 1, position 1 reached 3 + 1
    and accepted 1 + 0, position 2 reached only in the first row. Whether the level split was
    recorded (``time_split_s`` is ``{}`` on asynchronous CUDA by default) changes nothing here."""
    extra = {} if split == "recorded" else {"time_split_s": {}}
    rows = [
        row("layerskip", 10, 1.0, 0.9, drafted=8, accepted=4, forwards=4, sample_id="a",
            position_reached=[4, 3, 1], position_accepted=[3, 1, 0], **extra),
        row("layerskip", 10, 1.0, 0.9, drafted=4, accepted=1, forwards=6, sample_id="b",
            position_reached=[3, 1], position_accepted=[1, 0], **extra),
    ]
    s = summarize(rows)["layerskip"]
    assert s["acceptance_per_position"] == [pytest.approx(4 / 7), pytest.approx(1 / 4), pytest.approx(0.0)]


def test_a_warning_about_the_baseline_counts_for_every_method_whose_speedup_divides_by_it():
    from hsd_bench.metrics import warning_counts

    flagged = [("autoregressive", "autoregressive's timed passes decoded 100-140 tok/s, 40 % apart"),
               ("hispec", "hispec's timing thread waited for a CPU"), ("hispec", "hispec's speedup ...")]
    methods = {"autoregressive": {}, "hispec": {}, "layerskip": {}}
    assert warning_counts(flagged, methods) == {"autoregressive": 1, "hispec": 3, "layerskip": 1}
    assert warning_counts([], methods) == dict.fromkeys(methods, 0)
