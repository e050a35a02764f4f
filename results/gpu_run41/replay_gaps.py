"""The host's time between two model calls, and inside each before its graph is launched, on the
benchmark's engines: where the hierarchy's 294 M hand-up waits come from (a diagnostic; owed to a
session with a machine, ``call41_2.sh``).

    python3 results/gpu_run41/replay_gaps.py OUT runs/gpu-24x1024 checkpoints/ee-24x128   # on a GPU
    DEV=cpu python3 results/gpu_run41/replay_gaps.py /tmp/rg checkpoints/ee-24x128       # a dry run
    DEV=cpu FRESH=1 TREE=tree_889edc9 python3 results/gpu_run41/replay_gaps.py ...      # see below

``FRESH=1`` decodes each pass in a fresh engine over the same (prepared) models, as the benchmark's
instrumented, host-serial and traced passes do; by default one engine, prepared and warmed up,
decodes every pass, as its timed passes do. ``TREE``: the folder whose ``hsd_bench`` and
``scripts/bench_gpu.py`` are imported (default: this checkout; ``make_old_tree.sh`` makes one of
another commit), run from the repository root. The hand-ups planned per pass are printed either way.

Why: ``transitions.py`` shows the forty-first run's 294 M hierarchy spending 60-90 µs per hand-up
between the middle level's verification and the target's (events: 15-32 µs in every earlier 294 M
reading and every 5.6 M one), while its trace shows the device no longer waiting inside the
target's call before the hand-up step's first kernel (25 waits or none, against 169-215). The
events see the device; this sees the host, with nothing but ``perf_counter`` stamps (no sync, no
event): for each decode-phase model call its entry and exit, and for each graph replay its entry
and exit (CUDA graphs on a GPU; the CPU stand-in off one, ``bench/launches.py``). Per pair of
consecutive calls it reports the host's µs from the first call's exit to the second's entry (what
the events' gap between the two is made of, where the device has caught up), and per call the µs
from its entry to its replay and of the replay itself (``cudaGraphLaunch``'s host cost: a graph of
hundreds of nodes may cost more than the copies around it). Every target is measured in this one
process, one after another, so a difference between them is not the host's state.

Models as ``bench_gpu.py``'s methods part (``M``): HumanEval, 8 prompts x 128 new tokens, bf16,
one attention span, the draft and middle model sharing the target's attention and prefill.
Writes ``replay_gaps.json`` and ``replay_gaps.md`` to OUT.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(os.environ.get("TREE") or Path(__file__).resolve().parents[2]).resolve()
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "scripts"))
import torch  # noqa: E402

import bench_gpu  # noqa: E402
from hsd_bench import measure  # noqa: E402
from hsd_bench.bench.instrument import FORWARD_METHODS, OPTIONAL_FORWARD_METHODS  # noqa: E402
from hsd_bench.bench.launches import stand_in_graphs  # noqa: E402
from hsd_bench.bench.models import load_hf  # noqa: E402
from hsd_bench.engine import DecodingConfig  # noqa: E402

DRAFT, MID = "checkpoints/family-2x128", "checkpoints/family-6x128"
METHODS = os.environ.get("METHODS", "hierarchy").split(",")
PROMPTS, NEW, PASSES = int(os.environ.get("PROMPTS", 8)), int(os.environ.get("NEW", 128)), int(os.environ.get("PASSES", 3))
FRESH = os.environ.get("FRESH", "0") == "1"
TOP = 12
dev = torch.device(os.environ.get("DEV", "cuda"))
dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32


class Stamps:
    """Host clock readings of the decode phase's model calls and graph replays, in host order."""

    def __init__(self):
        self.decoding = False
        self.events: list[tuple[str, str, float, float]] = []  # (kind, label, entry, exit)
        self.wrapped: list[tuple[object, str]] = []  # (model, method) given an instance wrapper
        self.depth = 0  # model calls open on the stack

    def phase(self, name: str) -> None:
        if self.decoding and name != "decode":  # a generation's decode phase ends: no pair across it
            self.events.append(("end", "", 0.0, 0.0))
        self.decoding = name == "decode"

    def wrap_call(self, model, method: str) -> None:
        fn = getattr(model, method)

        def call(*args, **kwargs):
            if not self.decoding or self.depth:  # a call inside a call (a fallback path) is the outer's
                return fn(*args, **kwargs)
            self.depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                self.depth -= 1
                label = f"{model.name}.{method}"
                if method.startswith("run_layers") and len(args) >= 3:
                    label += f"[{args[1]}:{args[2]}]"
                self.events.append(("call", label, t0, t1))

        setattr(model, method, call)  # an instance attribute: the engine's lookups find it first
        self.wrapped.append((model, method))

    def wrap_replays(self, model) -> None:
        graphs = model._graphs
        run = graphs.run

        def replay(key, fn):
            if not self.decoding:
                return run(key, fn)
            t0 = time.perf_counter()
            try:
                return run(key, fn)
            finally:
                self.events.append(("replay", f"{model.name}.{key[0]}", t0, time.perf_counter()))

        graphs.run = replay


def summarize(events: list[tuple[str, str, float, float]], tokens: int) -> dict:
    """Per pair of consecutive calls, the host's µs between them; per call, from its entry to its
    first replay and that replay's own µs -- each as count per token, median and mean µs, µs per token."""
    between, before_launch, launch = defaultdict(list), defaultdict(list), defaultdict(list)
    last_call = None
    calls = [e for e in events if e[0] in ("call", "end")]
    replays = [e for e in events if e[0] == "replay"]
    ri = 0
    for kind, label, t0, t1 in calls:
        if kind == "end":
            last_call = None
            continue
        if last_call is not None:
            between[(last_call[1], label)].append(t0 - last_call[3])
        while ri < len(replays) and replays[ri][2] < t0:
            ri += 1
        if ri < len(replays) and replays[ri][3] <= t1:  # this call's first replay
            r = replays[ri]
            before_launch[(label, r[1])].append(r[2] - t0)
            launch[(label, r[1])].append(r[3] - r[2])
        last_call = (kind, label, t0, t1)

    def table(d):
        rows = [{"pair": list(k), "per_token": len(v) / tokens, "median_us": 1e6 * statistics.median(v),
                 "mean_us": 1e6 * statistics.fmean(v), "us_per_token": 1e6 * sum(v) / tokens} for k, v in d.items()]
        return sorted(rows, key=lambda r: -r["us_per_token"])[:TOP]

    return {"between_calls": table(between), "call_to_replay": table(before_launch), "replay": table(launch)}


def measure_target(target_path: str) -> dict:
    hf_t, tok = load_hf(target_path, dev, dtype)
    prompts, stop, codec = bench_gpu.dataset_workload("humaneval", PROMPTS, tok)
    ctx = bench_gpu.context_for(max(map(len, prompts)), NEW)
    hf_d, hf_m = load_hf(DRAFT, dev, dtype)[0], load_hf(MID, dev, dtype)[0]
    if dev.type == "cuda":  # as bench_gpu.py's methods part builds them
        target = bench_gpu.make_native(hf_t, "target", ctx, bench_gpu.BACKEND_OPTIONS["variant"])
        others = {"draft": bench_gpu.draft_native(hf_d, "draft", ctx, target),
                  "mid": bench_gpu.draft_native(hf_m, "mid", ctx, target)}
    else:  # the fixed-shape steps a GPU runs, with the graph stand-in (as scripts/count_launches.py)
        def native(hf, name):
            return bench_gpu.from_hf_model(hf, name=name, max_context=ctx, min_kv_bucket=bench_gpu.ONE_SPAN,
                                           fixed_shapes=True)

        target, others = native(hf_t, "target"), {"draft": native(hf_d, "draft"), "mid": native(hf_m, "mid")}
    models = [target, *others.values()]
    if dev.type != "cuda":
        stand_in_graphs(models)
    specs = bench_gpu.engine_specs(hf_t.config.num_hidden_layers, 6, 3, 6, 4, 2, 4, draft=True, mid=True)
    build = bench_gpu.engine_builder(specs, target, others, codec)
    out = {"target": target_path, "methods": {}}
    for name in METHODS:
        engine = build(name)
        measure.prepare([engine], prompts, NEW, DecodingConfig(), 1, stop_sequences=stop, tokenizer=codec)
        stamps = Stamps()
        for m in models:
            for method in FORWARD_METHODS + OPTIONAL_FORWARD_METHODS:
                if callable(getattr(m, method, None)) and method not in m.__dict__:
                    stamps.wrap_call(m, method)
            if getattr(m, "_graphs", None) is not None and "run" not in m._graphs.__dict__:
                stamps.wrap_replays(m)
        engine.on_phase = stamps.phase
        passes = []
        for _ in range(PASSES):
            if FRESH:  # as the benchmark's measuring passes: a new engine, never prepared or warmed up
                engine.on_phase = None
                engine = build(name)
                engine.on_phase = stamps.phase
            stamps.events.clear()
            tokens, decode_s, ahead, continued = 0, 0.0, 0, 0
            for p in prompts:
                g = engine.generate(p, NEW, DecodingConfig(), stop_sequences=stop, tokenizer=codec)
                tokens += g.stats.n_generated
                decode_s += g.stats.decode_s
                ahead += g.stats.hand_ups_ahead
                continued += g.stats.hand_ups_continued
            # the hand-ups verified ahead, and what Engine._hand_up_plan decided them by at the pass's
            # end: today the last generation's hand-ups as [fit, overflowed]; before the forty-second
            # session (an old tree) every middle verdict since the engine was built, by drafts accepted
            gate = getattr(engine, "_hand_ups_seen", None)
            if gate is None:
                gate = getattr(engine, "_verdicts_seen", {})
            passes.append({"tokens": tokens, "decode_tokens_per_s": tokens / decode_s, "hand_ups_ahead": ahead,
                           "hand_ups_continued": continued, "hand_up_gate": {str(i): list(v) for i, v in gate.items()},
                           **summarize(stamps.events, tokens)})
        engine.on_phase = None
        for m, method in stamps.wrapped:  # the next method's engine is built over the same models
            delattr(m, method)
        for m in models:
            if getattr(m, "_graphs", None) is not None:
                m._graphs.__dict__.pop("run", None)
        mid = sorted(passes, key=lambda p: p["decode_tokens_per_s"])[len(passes) // 2]
        out["methods"][name] = {"median_pass": mid, "rates": [p["decode_tokens_per_s"] for p in passes]}
        out["methods"][name]["hand_ups_ahead"] = [p["hand_ups_ahead"] for p in passes]
        print(f"[replay_gaps] {target_path} {name}: {mid['tokens']} tokens, "
              f"{', '.join(f'{r:.0f}' for r in out['methods'][name]['rates'])} tok/s, hand-ups ahead per pass "
              f"{out['methods'][name]['hand_ups_ahead']}, hand-up gate {passes[-1]['hand_up_gate']}", flush=True)
    return out


def markdown(doc: dict) -> str:
    lines = [f"# Host µs between model calls and before their graph launches ({doc['device']}, {doc['dtype']})", "",
             f"HumanEval, {PROMPTS} prompts × {NEW} new tokens, the median pass of {PASSES} by decode rate; "
             "host `perf_counter` stamps only (no sync).", ""]
    for res in doc["targets"]:
        for name, r in res["methods"].items():
            p = r["median_pass"]
            lines += [f"## {res['target']}: {name} ({p['decode_tokens_per_s']:.0f} tok/s with the stamps)", "",
                      f"Hand-ups verified ahead per pass: {r['hand_ups_ahead']}; this pass "
                      f"{p['hand_ups_ahead']} ({p['hand_ups_continued']} continued); the hand-up gate's counts at "
                      f"its end: {p['hand_up_gate']}.", ""]
            for key, title in (("between_calls", "from a call's exit to the next call's entry"),
                               ("call_to_replay", "from a call's entry to its graph replay"),
                               ("replay", "the replay call itself")):
                lines += [f"**{title}**", "", "| pair | per token | median µs | mean µs | µs per token |",
                          "| --- | --- | --- | --- | --- |"]
                lines += [f"| {' → '.join(row['pair'])} | {row['per_token']:.2f} | {row['median_us']:.1f} "
                          f"| {row['mean_us']:.1f} | {row['us_per_token']:.1f} |" for row in p[key]]
                lines.append("")
    return "\n".join(lines)


def main() -> None:
    out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    targets = sys.argv[2:] or ["checkpoints/ee-24x128"]
    doc = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "dtype": str(dtype),
           "torch": torch.__version__, "tree": str(ROOT), "fresh_engine_per_pass": FRESH, "targets": []}
    for t in targets:
        doc["targets"].append(measure_target(t))
        (out / "replay_gaps.json").write_text(json.dumps(doc, indent=1))
        (out / "replay_gaps.md").write_text(markdown(doc))
    print(f"[replay_gaps] wrote {out / 'replay_gaps.md'}", flush=True)


if __name__ == "__main__":
    main()
