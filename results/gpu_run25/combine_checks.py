"""Call 2's run.py summaries with call 4's hierarchy job added, as one checks.json, so
scripts/measurement_checks.py judges all four agreements on the 294 M model against call 3's
benchmark (call 2's own agree_hierarchy and agree_bench steps were skipped for time). Call 2's
summaries came back only inside its headline.tar.gz, so its checks.json (written on the machine by
the same fields, scripts/measurement_checks.py's checks_entry) is taken as it is. Run from the
repository root:

    python3 results/gpu_run25/combine_checks.py
    python3 scripts/measurement_checks.py results/gpu_run25/checks_294m.json \
        results/gpu_run25/call3_methods_294m/m294/bench.json --out results/gpu_run25/checks_294m.md
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "scripts"))
from measurement_checks import collect  # noqa: E402

doc = json.loads((HERE / "call2_checks_294m_timer/c294/checks.json").read_text())
doc.update({f"agree/{key.split('/')[-1]}": entry
            for key, entry in collect(HERE / "call4_hierarchy_gptfast/agree").items()})
(HERE / "checks_294m.json").write_text(json.dumps(doc, indent=1))
print(f"checks_294m.json: {len(doc)} runs")
