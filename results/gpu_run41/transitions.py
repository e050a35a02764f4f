"""The hierarchy's time outside forwards on the 294 M model, transition by transition, in every
committed 294 M reading that has it (the thirty-fourth to thirty-sixth runs, this one, the
forty-third run's -- today's code and two older commits on one model -- the forty-fourth run's
eleven processes on a 100 s model, the forty-fifth run's seven on an H100's 100 s model, and the
forty-sixth run's four with every method on another H100's 100 s model), beside the 5.6 M
readings since inference mode (the forty-seventh run's two from gpu_headline.sh's benchmark step);
and what the device trace says waited before the hand-up step.

    python3 results/gpu_run41/transitions.py                   # the committed readings (markdown)
    python3 results/gpu_run41/transitions.py W/hnew_1/bench.json ...   # those files instead

The committed readings end with the forty-third to forty-sixth runs' fits of the outside share
against each instrumented pass's slowdown (``pass_fit``).

Why: the forty-first run's hierarchy missed the 294 M model's 5 % in all three processes. Its
outside share (the instrumented passes' events, ``outside_forwards_async``) is split by the pair
of model calls the time fell between (``idle_by_transition``, the six largest per row); read
across runs, one pair moved and the others did not -- the middle level's verification followed by
the target's (``mid.run_layers_greedy[0:6] -> target.run_layers_greedy[0:24]``), where the target's
hand-up verification is queued before the middle level's verdict is read (``Engine._hand_up_plan``).
The trace's ``waits_before`` names the device work that ended each wait between launches; the
hand-up step's first kernel is ``place_verifier_token``'s (``models/native/verdicts.py``: a
fused ``index_copy``/``index_select``/``amin``), so its row counts the hand-ups the device waited
for inside the target's call. Only bench.json files are read; nothing is measured here.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
READINGS = {  # label -> bench.json (relative to results/), the 294 M rows first
    "34/1": "gpu_run34/call1/m294_1", "34/2": "gpu_run34/call1/m294_2", "34/3": "gpu_run34/call2/checks294",
    "35/1": "gpu_run35/call1/m294_off1", "35/2": "gpu_run35/call2/m294_off2", "36": "gpu_run36/call4/m294",
    "41/1": "gpu_run41/call1/m294_1", "41/2": "gpu_run41/call1/m294_2", "41/3": "gpu_run41/call2/m294_3",
    "43/1": "gpu_run43/call2/h_today", "43/2": "gpu_run43/call3/m294_1", "43/3": "gpu_run43/call4/h_today_1",
    "43/4": "gpu_run43/call4/h_today_2", "43 889edc9/1": "gpu_run43/call2/h_889edc9",
    "43 889edc9/2": "gpu_run43/call4/h_889edc9", "43 b85df48": "gpu_run43/call2/h_b85df48",
    "44/1": "gpu_run44/call1/m294_1", "44/2": "gpu_run44/call1/m294_2", "44/3": "gpu_run44/call2/h294_1",
    "44/4": "gpu_run44/call2/h294_2", "44/5": "gpu_run44/call2/h294_3", "44/6": "gpu_run44/call2/m294_3",
    "44/7": "gpu_run44/call3/h294_4", "44/8": "gpu_run44/call4/h294_5", "44/9": "gpu_run44/call4/h294_6",
    "44/10": "gpu_run44/call4/h294_7", "44/11": "gpu_run44/call4/h294_8",
    "45/1": "gpu_run45/call1/h294_1", "45/2": "gpu_run45/call1/h294_2", "45/3": "gpu_run45/call1/h294_3",
    "45/4": "gpu_run45/call2/h294_1", "45/5": "gpu_run45/call2/h294_2", "45/6": "gpu_run45/call2/h294_3",
    "45/7": "gpu_run45/call2/h294_4",
    "46/1": "gpu_run46/call2/m294_1", "46/2": "gpu_run46/call2/m294_2", "46/3": "gpu_run46/call3/bench",
    "46/4": "gpu_run46/call4/m294_3",
    "5.6 M 38": "gpu_run38/call1/m56", "5.6 M 40/1": "gpu_run40/call1/m56_1", "5.6 M 40/2": "gpu_run40/call1/m56_2",
    "5.6 M 41": "gpu_run41/call2/m56_1", "5.6 M 44": "gpu_run44/call1/m56_1", "5.6 M 46": "gpu_run46/call2/m56",
    "5.6 M 47/1": "gpu_run47/call1/checks56", "5.6 M 47/2": "gpu_run47/call2/checks56",
}
MID_TO_TARGET = ("mid.run_layers_greedy[0:6]", "target.run_layers_greedy[0:24]")
AFTER_READ = ("draft.queue_draft_inputs", "target.run_layers_greedy[0:24]")
PLACE_TOKEN = "index_copy_index_select"  # in the fused name of place_verifier_token's kernel


def hierarchy_row(path: Path) -> dict:
    rows = json.loads(path.read_text())["parts"]["methods"]["rows"]
    return next(r for r in rows if r["method"] == "hierarchy")


def per_transition(row: dict, pair: tuple[str, str]) -> str:
    """``count × µs each`` for one pair of calls, or a dash where it is not among the row's six."""
    for t in row["outside_forwards_async"]["idle_by_transition"]:
        if (t["after"], t["before"]) == pair:
            return f"{t['count']} × {1e6 * t['s'] / t['count']:.1f}"
    return "–"


def place_token_waits(row: dict) -> str:
    """The traced pass's waits that ended at the hand-up step's first kernel: ``gaps × µs each``;
    where they are not among the six largest it lists, the smallest of those bounds their sum."""
    waits = (row.get("device_trace") or {}).get("waits_before")
    if not waits:
        return "no trace"
    for name, seconds, gaps in waits:
        if PLACE_TOKEN in name:
            return f"{gaps} × {1e6 * seconds / gaps:.0f}"
    return f"under {1e3 * min(w[1] for w in waits):.1f} ms in all"


def slowdown(row: dict) -> str:
    """How much slower the reported instrumented pass decoded than the timed passes: on a host-bound
    row its outside share grows with it (the forty-third run: 4.7 % + 0.29 × the slowdown, over the
    hierarchy's twelve passes on today's code)."""
    slow = row["outside_forwards_async"].get("instrumented_slowdown")
    return "–" if slow is None else f"{100 * slow:+.1f} %"


FIT_GROUPS = {  # hierarchy rows on one model and machine, by the run and the code that ran them
    "forty-sixth run, H100, 100 s model (cd1c069, the code of 4ca2fd8)": [f"46/{n}" for n in range(1, 5)],
    "forty-fifth run, H100, 100 s model (a37bc5f: the hand-up after the read, reverted)": [f"45/{n}" for n in range(1, 8)],
    "forty-fourth run, H200, 100 s model (6863e66)": [f"44/{n}" for n in range(1, 12)],
    "forty-third run, H100, 60 s model (0697b4a)": ["43/1", "43/2", "43/3", "43/4"],
    "forty-third run, 889edc9": ["43 889edc9/1", "43 889edc9/2"],
    "forty-third run, b85df48": ["43 b85df48"],
}


def pass_fit(paths: list[Path]) -> str:
    """Every instrumented pass of the rows in ``paths``: the outside share as a line in the pass's
    slowdown against its own row's timed passes (least squares, and r), and the shares of the
    passes that ran within ±1.5 % of the timed rate. Why: the rows' shares differ between
    processes whose timed passes ran alike; this says how much of that the passes' own host state
    accounts for (docs/gpu-runs.md, "Forty-third run")."""
    xs, ys = [], []
    for path in paths:
        for p in hierarchy_row(path)["outside_forwards_async"]["passes"]:
            xs.append(100 * p["instrumented_slowdown"])
            ys.append(100 * p["gpu_idle_frac"])
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    near = ", ".join(f"{y:.1f}" for x, y in zip(xs, ys) if abs(x) <= 1.5)
    return (f"{len(xs)} passes: {my - slope * mx:.2f} % + {slope:.2f} × slowdown (r = {sxy / (sxx * syy) ** 0.5:.2f}); "
            f"at the timed rate (±1.5 %): {f'{near} %' if near else 'none'}")


def main(paths: list[str]) -> None:
    readings = ({Path(p).parent.name: Path(p) for p in paths} if paths
                else {label: RESULTS / folder / "bench.json" for label, folder in READINGS.items()})
    print("| reading | outside forwards | hand-ups queued ahead in the timed passes (continued) | mid → target, µs each "
          "| middle's verdict read, then target | trace: waits before the hand-up step | host probe "
          "| that pass against the timed rate |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, path in readings.items():
        if not path.exists():
            print(f"| {label} | (no {path}) | | | | | | |")
            continue
        row = hierarchy_row(path)
        outside = row["outside_forwards_async"]["gpu_idle_frac"]
        print(f"| {label} | {100 * outside:.1f} % | {row.get('hand_ups_ahead')} ({row.get('hand_ups_continued')}) "
              f"| {per_transition(row, MID_TO_TARGET)} | {per_transition(row, AFTER_READ)} "
              f"| {place_token_waits(row)} | {row.get('host_probe_us', 0):.1f} µs | {slowdown(row)} |")


    if not paths:
        print("\nThe outside share against the instrumented pass's slowdown, pass by pass (forty-third to forty-sixth runs):\n")
        for code, labels in FIT_GROUPS.items():
            print(f"- {code}: {pass_fit([RESULTS / READINGS[label] / 'bench.json' for label in labels])}")


if __name__ == "__main__":
    main(sys.argv[1:])
