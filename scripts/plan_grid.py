#!/usr/bin/env python
"""Plan the GPU grid sweeps of issue 13: predict, prune, print the commands and the device calls.

    python scripts/plan_grid.py                         # plan from results/grid_plan/*.csv
    python scripts/plan_grid.py --total-min 20 --datasets humaneval,gsm8k,spec_bench

Reads the search spaces (conf/experiment/grid_*.yaml) and the acceptance
measured by scripts/measure_acceptance.py, predicts every job with the
latency model and a GPU cost model, prunes each sweep to its promising
region within its share of the time budget, and prints what was kept, what
was pruned and why, and the run.py commands packed into device calls of at
most --call-s seconds. Writes plan.md, plan.csv and calls/call_<i>.sh under
--out (run a call with scripts/gpu_grid_session.sh). Logic:
hsd_bench/hierarchy/plan.py.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = {
    "humaneval": ["dataset=humaneval", "dataset.limit=${SAMPLES}"],
    "gsm8k": ["dataset=gsm8k", "dataset.path=${DATA}/gsm8k/test.jsonl", "dataset.limit=${SAMPLES}"],
    "spec_bench": ["dataset=spec_bench", "dataset.path=${DATA}/spec_bench/question.jsonl", "dataset.per_category=1"],
}
GPU = ["model.path=${MODEL}", "model.backend=native", "model.device=cuda", "model.dtype=bfloat16",
       "max_new_tokens=${MAX_NEW}", "progress=false", "cpu_threads=null"]
SAMPLES = {"spec_bench": 13}  # per_category=1 of 13 categories; the others take --samples
# Each sweep's share of the device time left after training (grid_draft_stop: two methods, half each).
SHARES = {"grid_layerskip": 0.21, "grid_hispec": 0.25, "grid_vanilla_sd": 0.12, "grid_rules": 0.18,
          "grid_draft_stop": 0.24}


def main(argv: list[str] | None = None) -> int:
    from hsd_bench.hierarchy.acceptance import AcceptanceTables
    from hsd_bench.hierarchy.plan import GPU_MODEL, SMALL_MODEL, CostModel, ModelCost, TimeModel

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=Path, default=Path("results/grid_plan"), help="acceptance.csv, draft_stop.csv")
    p.add_argument("--out", type=Path, default=Path("results/grid_plan"))
    p.add_argument("--datasets", default="humaneval,gsm8k", help=f"comma list of {', '.join(DATASETS)}")
    p.add_argument("--total-min", type=float, default=25.0,
                   help="device minutes for the sweeps, training included (default 25 of a 30-minute session)")
    p.add_argument("--call-s", type=float, default=540.0, help="seconds per device call (limit 600, minus margin)")
    p.add_argument("--train-s", type=float, default=270.0,
                   help="first call: data + training of the GPU model (GPU_BUDGET 180 s + prepare)")
    p.add_argument("--keep-frac", type=float, default=0.85, help="prune below this fraction of a sweep's best")
    p.add_argument("--samples", type=int, default=8, help="samples per job and dataset")
    p.add_argument("--max-new", type=int, default=128)
    p.add_argument("--job-s", type=float, default=10.0,
                   help="fixed seconds per job (weights, CUDA graphs, warm-up): a guess; calibrate from call 1's log")
    p.add_argument("--command-s", type=float, default=25.0, help="fixed seconds per run.py command")
    p.add_argument("--target-cost-us", type=float, nargs=2, default=[GPU_MODEL.fixed_s * 1e6, GPU_MODEL.layer_s * 1e6],
                   metavar=("FIXED", "LAYER"), help="target: µs per forward and per layer")
    p.add_argument("--draft-cost-us", type=float, nargs=2,
                   default=[SMALL_MODEL.fixed_s * 1e6, SMALL_MODEL.layer_s * 1e6], metavar=("FIXED", "LAYER"),
                   help="separate drafts: µs per forward and per layer")
    p.add_argument("--depth", type=int, default=24, help="layers of the GPU target")
    args = p.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown or not datasets:
        p.error(f"--datasets: unknown {unknown}; valid: {', '.join(DATASETS)}")
    if not 0 < args.keep_frac <= 1:
        p.error(f"--keep-frac={args.keep_frac} must be in (0, 1]")

    table = AcceptanceTables.load(args.tables)
    draft_cost = ModelCost(args.draft_cost_us[0] * 1e-6, args.draft_cost_us[1] * 1e-6)
    costs = CostModel(target=ModelCost(args.target_cost_us[0] * 1e-6, args.target_cost_us[1] * 1e-6),
                      drafts={"checkpoints/family-2x128": draft_cost, "checkpoints/family-6x128": draft_cost},
                      depth=args.depth)
    time = TimeModel(job_s=args.job_s, command_s=args.command_s, samples=args.samples, max_new_tokens=args.max_new)
    sweep_s = args.total_min * 60 - args.train_s
    plan = build_plan(table, costs, time, datasets, sweep_s, args.keep_frac)
    text = render(plan, args, datasets, costs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan.md").write_text(text)
    write_csv(plan, args.out / "plan.csv")
    write_calls(plan, args, args.out / "calls")
    print(text)
    return 0


def build_plan(table, costs, time, datasets, sweep_s, keep_frac) -> dict:
    from hsd_bench.hierarchy.plan import Job, expand, plan_commands, predict, prune

    ar = costs.target(costs.depth)
    plan: dict = {"sweeps": {}, "commands": [], "best": {}}

    def run_sweep(name: str, overrides: list[str] = (), label: str | None = None) -> list[Job]:
        jobs = [Job(name, job, cfg, predict(cfg, table, costs)) for job, cfg in expand(name, list(overrides))]
        for j in jobs:
            j.est_by_dataset = {ds: time.job(j.prediction, ar, SAMPLES.get(ds)) for ds in datasets}
        budget = SHARES[name] * sweep_s / (2 if name == "grid_draft_stop" else 1)
        # the rules are compared, not searched: every non-duplicate job is kept
        box, dropped = prune(jobs, 0.0 if name == "grid_rules" else keep_frac, budget,
                             len(datasets) * time.command_s)
        plan["sweeps"][label or name] = (list(overrides), jobs, box, dropped)
        return jobs

    def best(jobs, min_gamma: int = 1):
        return max((j for j in jobs if j.prediction.speedup is not None
                    and int(j.key().get("method.draft_len", 1)) >= min_gamma), key=lambda j: j.prediction.speedup)

    layerskip = run_sweep("grid_layerskip")
    ls = best(layerskip)
    run_sweep("grid_hispec")
    sd = best(run_sweep("grid_vanilla_sd"))
    # The rules differ only on drafts of several tokens (at γ = 1 block and hsd are token-wise):
    # the rules sweep takes the best LayerSkip configuration with γ >= 3.
    ls3 = best(layerskip, 3)
    ls_key, sd_key, ls3_key = ls.key(), sd.key(), ls3.key()
    plan["best"] = {"layerskip": ls, "vanilla_sd": sd, "layerskip_multi": ls3}
    run_sweep("grid_rules", [f"exit={ls3_key['exit']}", f"method.draft_len={ls3_key['method.draft_len']}"])
    run_sweep("grid_draft_stop", [f"exit={ls_key['exit']}"], "grid_draft_stop (layerskip)")
    run_sweep("grid_draft_stop", ["method=vanilla_sd", f"method.draft.path={sd_key['method.draft.path']}"],
              "grid_draft_stop (vanilla_sd)")
    commands = []
    for label, (overrides, jobs, _, _) in plan["sweeps"].items():
        for ds in datasets:
            base = ["${GPU}", *overrides, *DATASETS[ds]]
            commands += plan_commands(jobs, base, time, ds)
    plan["commands"] = commands
    return plan


def render(plan: dict, args, datasets, costs) -> str:
    from hsd_bench.hierarchy.plan import pack

    calls = pack(plan["commands"], args.call_s, args.train_s)
    plan["calls"] = calls
    ls, sd, ls3 = plan["best"]["layerskip"], plan["best"]["vanilla_sd"], plan["best"]["layerskip_multi"]
    out = ["# GPU grid plan (issue 13)", "",
           f"Made by `python scripts/plan_grid.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}` from "
           f"`{args.tables}/acceptance.csv` (CPU, ee-24x128) and the cost model: target "
           f"{costs.target.fixed_s * 1e6:.0f} µs + {costs.target.layer_s * 1e6:.0f} µs/layer, drafts "
           f"{args.draft_cost_us[0]:.0f} µs + {args.draft_cost_us[1]:.0f} µs/layer (H100 fits, "
           "hsd_bench/hierarchy/plan.py). Predictions are greedy unless T > 0; speedups are over AR.", "",
           f"Datasets: {', '.join(datasets)}; {args.samples} samples x {args.max_new} new tokens per job and dataset; "
           f"budget {args.total_min:g} device minutes ({args.train_s:.0f} s of them data + training); keep >= "
           f"{args.keep_frac:g} x each sweep's best predicted speedup.", "",
           f"Best predicted: LayerSkip {' '.join(ls.overrides)} {ls.prediction.speedup:.2f}x; vanilla SD "
           f"{' '.join(sd.overrides)} {sd.prediction.speedup:.2f}x; LayerSkip with γ >= 3 "
           f"{' '.join(ls3.overrides)} {ls3.prediction.speedup:.2f}x. grid_rules runs the last (block and hsd "
           "equal token-wise at γ = 1), grid_draft_stop the best exit and the best draft.", ""]
    for label, (overrides, jobs, box, dropped) in plan["sweeps"].items():
        kept = [j for j in jobs if j.status == "kept"]
        out += [f"## {label}" + (f" ({' '.join(overrides)})" if overrides else ""), "",
                f"{len(kept)} of {len(jobs)} jobs kept: the box " +
                " x ".join(f"{k} {{{', '.join(v)}}}" for k, v in box.items()) + ".", "",
                "| kept | predicted speedup | τ | est. s | note |", "| --- | --- | --- | --- | --- |"]
        for j in sorted(kept, key=lambda j: -(j.prediction.speedup or 0)):
            sp = f"{j.prediction.speedup:.2f}x" if j.prediction.speedup else "–"
            tau = f"{j.prediction.tau:.2f}" if j.prediction.tau else "–"
            out.append(f"| `{' '.join(j.overrides)}` | {sp} | {tau} | {j.est_s:.0f} | {j.prediction.note} |")
        pruned: dict[str, list] = {}
        for j in jobs:
            if j.status == "pruned":
                pruned.setdefault(j.why, []).append(j)
        if pruned:
            out += ["", "Pruned:", ""]
        for why, js in pruned.items():
            spread = [j.prediction.speedup for j in js if j.prediction.speedup]
            rng = f", predicted {min(spread):.2f}-{max(spread):.2f}x" if spread else ""
            text = {"duplicate": "duplicates, e.g. " + js[0].reason,
                    "unpromising": "predicted below the keep fraction, e.g. " + js[0].reason,
                    "budget": "promising but outside the box that fits the sweep's budget; values dropped from "
                              "the box, least promising first: " +
                              ", ".join(f"{k}={v} (best {top:.2f}x)" for k, v, top in dropped)}[why]
            out.append(f"* {len(js)} jobs{rng}: {text}")
        out.append("")
    total = sum(c[1] for c in plan["commands"]) + args.train_s
    out += ["## Device calls", "",
            f"{len(plan['commands'])} commands, {sum(c[2] for c in plan['commands'])} jobs, estimated "
            f"{total / 60:.1f} min with training, in {len(calls)} calls of <= {args.call_s:.0f} s. Each call: "
            "`bash scripts/gpu_grid_session.sh results/grid_plan/calls/call_<i>.sh` (trains the model first when "
            "runs/gpu-24x1024 is missing; collects every table into $OUT).", ""]
    for i, call in enumerate(calls, start=1):
        secs = sum(c[1] for c in call) + (args.train_s if i == 1 else 0)
        out += [f"### call {i}: ~{secs / 60:.1f} min", "", "```bash"]
        out += [f"{c[0]}   # {c[2]} jobs, ~{c[1]:.0f} s" for c in call]
        out += ["```", ""]
    return "\n".join(out)


def write_csv(plan: dict, path: Path) -> None:
    from hsd_bench.collect import config_key

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sweep", "overrides", "predicted_speedup", "predicted_tau", "predicted_latency_us",
                    "est_s", "status", "reason", "note", "config_key"])
        for label, (overrides, jobs, _, _) in plan["sweeps"].items():
            for j in jobs:
                pr = j.prediction
                w.writerow([label, " ".join([*overrides, *j.overrides]),
                            f"{pr.speedup:.4f}" if pr.speedup else "", f"{pr.tau:.4f}" if pr.tau else "",
                            f"{pr.latency_s * 1e6:.1f}" if pr.latency_s else "", f"{j.est_s:.0f}", j.status,
                            j.reason, pr.note, config_key(j.cfg)])


def write_calls(plan: dict, args, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("call_*.sh"):
        stale.unlink()
    for i, call in enumerate(plan["calls"], start=1):
        lines = ["# One device call of the grid plan (results/grid_plan/plan.md), sourced by",
                 "# scripts/gpu_grid_session.sh, which sets GPU, MODEL, DATA, SAMPLES, MAX_NEW.",
                 f"# {sum(c[2] for c in call)} jobs, ~{sum(c[1] for c in call) / 60:.1f} min"]
        for cmd, secs, n in call:
            lines.append(f"run_step {secs:.0f} {cmd}")
        (folder / f"call_{i}.sh").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
