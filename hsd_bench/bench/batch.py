"""Speedup over AR against batch size: measurement, roofline, table and figure.

``scripts/bench_batch.py`` runs it on a GPU; everything here also runs on
CPU (tests) and the figure is rebuilt from the JSON anywhere.

* :func:`engine_batch_run` -- one method at batch B over a stream of prompts
  (finished rows refilled), greedy, EOS off, warm-up pass first, median over
  repetitions of (all tokens / elapsed wall time): the aggregate throughput a
  server at batch B would see.
* :func:`native_batch_loop` -- AR at batch B straight on the native backend,
  no engine: the backend's own ceiling, for the roofline.
* :func:`ar_roofline` -- the time an AR step at batch B cannot beat: every
  weight byte and every row's KV read once from memory, or the step's
  FLOPs at the measured matmul rate, whichever is longer.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from hsd_bench.bench.report import pct
from hsd_bench.bench.runs import RunResult, _repeat
from hsd_bench.bench.timing import sync
from hsd_bench.metrics import quantile, summarize_method


def engine_batch_run(name: str, engine, method: str, prompts: list[list[int]], max_new: int, batch: int,
                     reps: int) -> RunResult:
    """The engine on ``prompts`` at ``batch`` rows (refilled as rows finish), timed as ``run.py``
    times a batched run (``measure.prepare`` at this batch, then ``measure.timed_stream``): the
    wall time of a pass is the sum of its rows' shares, i.e. the stream's elapsed time."""
    from hsd_bench import measure
    from hsd_bench.engine import DecodingConfig

    backend = getattr(engine.top.state.model, "backend", "hf")
    decoding = DecodingConfig()
    compile_s = measure.prepare([engine], prompts, max_new, decoding, batch)
    box: dict = {"captures": 0}

    def run_all():
        timed = dict(measure.timed_stream(engine, prompts, max_new, decoding, batch))
        ordered = [timed[i].generation for i in range(len(prompts))]
        box["gens"] = ordered
        box["captures"] += sum(t.graph_captures for t in timed.values())
        wall = sum(g.stats.wall_s for g in ordered)
        decode = sum(g.stats.decode_s for g in ordered)  # row shares: the elapsed time less the prefills'
        return [g.output_ids for g in ordered], wall, decode, sum(g.stats.target_forwards for g in ordered)

    result = _repeat(run_all, reps, RunResult(name, backend, method), warm_up=False)
    result.extra.update(compile_s=compile_s, graph_captures_timed=box["captures"])
    rows = [g.stats.as_row() for g in box["gens"]]
    latency = [r["latency_s"] for r in rows]
    taus = [r["mean_accepted_len"] for r in rows]
    result.extra.update(
        batch=batch,
        prompts=len(prompts),
        acceptance_per_level=summarize_method(rows)["acceptance_per_level"],
        latency_s={"p50": quantile(latency, 0.5), "p90": quantile(latency, 0.9), "max": max(latency)},
        tau_per_row={"min": min(taus), "p50": quantile(taus, 0.5), "max": max(taus)},
    )
    return result


def native_batch_loop(name: str, native, prompts: list[list[int]], max_new: int, batch: int, reps: int) -> RunResult:
    """AR greedy at ``batch`` rows straight on the backend (ragged forwards, no engine, no host
    sync per step), ``batch`` prompts at a time: the backend's own speed at that batch."""
    device, depth = native.device, native.num_layers
    native.reserve_rows(batch)

    def chunk(ps: list[list[int]]) -> tuple[list[list[int]], float, float]:
        sync(device)
        t0 = time.perf_counter()
        native.reset()
        rows = list(range(len(ps)))
        ids = torch.tensor([t for p in ps for t in p], device=device)
        h = native.run_layers(native.embed(ids), 0, depth, [0] * len(ps), rows=rows, lengths=[len(p) for p in ps])
        last = torch.tensor([sum(len(q) for q in ps[: i + 1]) - 1 for i in rows], device=device)
        tok = native.greedy_tokens(h[:, last])
        sync(device)
        t1 = time.perf_counter()
        toks, pos = [tok], [len(p) for p in ps]
        for _ in range(max_new - 1):
            h = native.run_layers(native.embed(tok), 0, depth, pos, rows=rows, lengths=[1] * len(ps))
            tok = native.greedy_tokens(h)
            toks.append(tok)
            pos = [p + 1 for p in pos]
        out = torch.stack(toks, dim=1).tolist()  # the one sync
        t2 = time.perf_counter()
        return out, t2 - t0, t2 - t1

    def run_all():
        outs, wall, dec = [], 0.0, 0.0
        for i in range(0, len(prompts), batch):
            o, w, d = chunk(prompts[i : i + batch])
            outs += o
            wall += w
            dec += d
        return outs, wall, dec, sum(len(o) for o in outs)

    result = _repeat(run_all, reps, RunResult(name, "native", "autoregressive(loop)"))
    result.extra.update(batch=batch, prompts=len(prompts))
    return result


def ar_roofline(native, batch: int, avg_context: float, step_s: float, copy_bw: float | None,
                matmul_flops: float | None) -> dict:
    """How close one AR step at ``batch`` rows (measured: ``step_s``) comes to the memory and
    compute roofline, and which one binds.

    Bytes: every weight once (LM head included; the embedding rows read are
    negligible) plus every row's KV at the average context. FLOPs: 2 per
    weight per row, plus attention's two products over the context.
    Bandwidth is the measured device copy bandwidth (read + write, as in
    ``bench_gpu``'s roofline), compute the measured dense matmul rate.
    """
    a = native.args
    weight_bytes = native.weight_bytes()
    kv_bytes = native.cache.nbytes_per_position() * avg_context * batch
    params = weight_bytes / native.lm_head.element_size()
    flops = 2 * params * batch + 4 * a.num_layers * a.num_heads * a.head_dim * avg_context * batch
    out = {"batch": batch, "step_s": step_s, "bytes_per_step": weight_bytes + kv_bytes, "kv_bytes_per_step": kv_bytes,
           "flops_per_step": flops, "copy_bw_Bps": copy_bw, "matmul_flops_per_s": matmul_flops}
    t_mem = (weight_bytes + kv_bytes) / copy_bw if copy_bw else None
    t_flop = flops / matmul_flops if matmul_flops else None
    out.update(memory_bound_s=t_mem, compute_bound_s=t_flop)
    known = [t for t in (t_mem, t_flop) if t is not None]
    if known:
        bound = max(known)
        out.update(binds="memory" if bound == t_mem else "compute", roofline_s=bound, fraction=bound / step_s,
                   memory_fraction=t_mem / step_s if t_mem else None,
                   compute_fraction=t_flop / step_s if t_flop else None)
    return out


def speedup_table(rows: list[dict]) -> dict[str, dict[int, float | None]]:
    """``{method: {batch: speedup over AR at that batch}}`` from the rows of one model."""
    ar = {r["batch"]: r["tokens_per_s"] for r in rows if r["method"] == "autoregressive"}
    table: dict[str, dict[int, float | None]] = {}
    for r in rows:
        if r["method"].startswith("autoregressive("):
            continue
        base = ar.get(r["batch"])
        table.setdefault(r["method"], {})[r["batch"]] = r["tokens_per_s"] / base if base else None
    return table


def stops_paying(speedups: dict[int, float | None]) -> int | None | str:
    """The smallest batch from which the method is no faster than AR at every larger batch measured;
    ``None`` when it pays at every batch, ``"never"`` when it pays at none."""
    points = sorted((b, s) for b, s in speedups.items() if s is not None)
    if not points:
        return None
    if all(s <= 1.0 for _, s in points):
        return "never"
    first = None
    for b, s in points:
        if s <= 1.0:
            first = b if first is None else first
        else:
            first = None
    return first


def paying_label(speedups: dict[int, float | None]) -> str:
    """The table's last column: where the method stops paying, said only of batches measured."""
    measured = sorted(b for b, s in speedups.items() if s is not None)
    if not measured:
        return "not measured"
    if len(measured) == 1:
        return f"only B={measured[0]} measured"
    stop = stops_paying(speedups)
    return f"pays up to B={measured[-1]} (largest measured)" if stop is None else str(stop)


def markdown(doc: dict) -> str:
    """Per model: speedup over AR at each batch (AR's tokens/s in the first row), the batch at
    which each method stops paying, and the AR roofline."""
    out = []
    for model, m in doc.get("models", {}).items():
        out += ["", f"## {model}", ""]
        if "error" in m:
            out += [f"error: {m['error']}"]
        if not m.get("rows"):
            continue
        rows = m.get("rows", [])
        batches = sorted({r["batch"] for r in rows})
        table = speedup_table(rows)
        ar = {r["batch"]: r["tokens_per_s"] for r in rows if r["method"] == "autoregressive"}
        out.append("| method | " + " | ".join(f"B={b}" for b in batches) + " | stops paying at |")
        out.append("|" + " --- |" * (len(batches) + 2))
        out.append("| AR tok/s | " + " | ".join(f"{ar[b]:.0f}" if b in ar else "–" for b in batches) + " | |")
        for method, sp in table.items():
            if method == "autoregressive":
                continue
            captured = {r["batch"] for r in rows if r["method"] == method and r.get("graph_captures_timed")}
            cells = [(f"{sp[b]:.2f}×" + (" †" if b in captured else "")) if sp.get(b) is not None else "–"
                     for b in batches]
            clean = {b: v for b, v in sp.items() if b not in captured}  # a † cell decides nothing
            out.append(f"| {method} | " + " | ".join(cells) + f" | {paying_label(clean)} |")
        taus = {r["method"]: r.get("mean_accepted_len") for r in rows if r["batch"] == batches[0]} if batches else {}
        if taus:
            out += ["", "τ (tokens per target forward) at B=" + str(batches[0]) + ": "
                    + ", ".join(f"{k} {v:.2f}" for k, v in taus.items() if v is not None)]
        if any(r.get("graph_captures_timed") for r in rows):
            out += ["", "† graphs were captured or compiled inside this timing (graph_captures_timed > 0): "
                        "the number is not steady-state decoding and says nothing about the method."]
        if m.get("not_run"):
            out += ["", "not run: " + "; ".join(m["not_run"])]
        roof = {k: r for k, r in (m.get("roofline") or {}).items() if r.get("fraction") is not None}
        if roof:
            out += ["", "AR roofline at the largest batch:", ""]
            for label, r in roof.items():
                out.append(
                    f"* {label}: B={r['batch']}, {1e3 * r['step_s']:.3f} ms per step; {r['binds']} binds "
                    f"({1e3 * r['roofline_s']:.3f} ms): **{100 * r['fraction']:.1f}% of the roofline** "
                    f"(memory {pct(r.get('memory_fraction'))}, compute {pct(r.get('compute_fraction'))}; "
                    f"{r['bytes_per_step'] / 1e9:.2f} GB, {r['flops_per_step'] / 1e12:.2f} TFLOP per step)"
                )
    return "\n".join(out)


def workload_label(doc: dict, model: str, m: dict) -> str:
    """Hardware, dtype and what was decoded, for a figure's title: a figure read alone says it."""
    info = doc.get("info", {})
    reps = max((r.get("reps", 1) for r in m.get("rows", [])), default=1)
    prompts = "random-id prompts" if model.startswith("random:") else "code prompts"
    return (f"{info.get('device', '?')}, {info.get('dtype', '?')}; {m.get('rows_per_batch', '?')}×B {prompts} "
            f"× {m.get('max_new', '?')} tokens, {reps} rep{'s' if reps != 1 else ''}")


def plot(doc: dict, path: Path) -> list[Path]:
    """Speedup over AR against batch size, one panel per model (PNG and PDF)."""
    import matplotlib
    from matplotlib.figure import Figure

    from hsd_bench.figures import AR_LINE, STYLE

    models = [(k, m) for k, m in doc.get("models", {}).items() if m.get("rows")]
    if not models:
        raise ValueError("no model in the document has rows to plot")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.8 * len(models), 3.0))
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        for ax, (model, m) in zip(axes, models):
            for method, sp in speedup_table(m["rows"]).items():
                if method == "autoregressive":
                    continue
                points = sorted((b, s) for b, s in sp.items() if s is not None)
                ax.plot([b for b, _ in points], [s for _, s in points], marker="o", label=method)
            ax.axhline(1.0, **AR_LINE)
            ax.set_xscale("log", base=2)
            batches = sorted({r["batch"] for r in m["rows"]})
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel("batch size")
            ax.set_ylabel("speedup over AR at the same batch")
            ax.set_title(f"{model}\n{workload_label(doc, model, m)}", fontsize="small")
            ax.legend()
        written = []
        for suffix in (".png", ".pdf"):
            target = path.with_suffix(suffix)
            fig.savefig(target)
            written.append(target)
    return written
