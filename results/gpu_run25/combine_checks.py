"""Call 2's checks.json with call 4's run.py hierarchy job added, so scripts/measurement_checks.py
judges all four agreements on the 294 M model against call 3's benchmark (call 2's own
agree_hierarchy and agree_bench steps were skipped for time). The fields are those
scripts/gpu_headline.sh extracts. Run from the repository root:

    python3 results/gpu_run25/combine_checks.py
    python3 scripts/measurement_checks.py results/gpu_run25/checks_294m.json \
        results/gpu_run25/call3_methods_294m/m294/bench.json --out results/gpu_run25/checks_294m.md
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
doc = json.loads((HERE / "call2_checks_294m_timer/c294/checks.json").read_text())
for summary in sorted((HERE / "call4_hierarchy_gptfast/agree").glob("*/summary.json")):
    s = json.loads(summary.read_text())
    doc[f"agree/{summary.parent.name}"] = {
        "method": s.get("method"), "backend": s.get("backend"), "dtype": s.get("dtype"),
        "compile_s": s.get("compile_s"), "graph_captures_timed": s.get("graph_captures_timed"),
        "ar_chunk": s.get("ar_chunk"), "timing_repeats": s.get("timing_repeats"),
        "retimed_samples": s.get("retimed_samples"),
        "config": {k: s["config"].get(k) for k in ("method", "exit", "verifier")},
        "dataset": s["config"]["dataset"]["name"],
        "methods": {m: {k: v.get(k) for k in ("n_samples", "tokens_per_s", "decode_tokens_per_s", "speedup_vs_ar",
                                               "mean_accepted_len", "acceptance_rate", "parity_exact",
                                               "parity_near_tie", "parity_unexplained", "discarded_tokens",
                                               "tokens_per_s_passes", "host_probe_us", "host_probe_us_passes")}
                    for m, v in s["methods"].items()},
    }
(HERE / "checks_294m.json").write_text(json.dumps(doc, indent=1))
print(f"checks_294m.json: {len(doc)} runs")
