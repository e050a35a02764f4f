"""One job: a method and the autoregressive baseline on the same samples.

Everything is validated (models, exits, draft lengths, dataset, the results
directory) before a run directory is created or a token generated; rows are
written as generations finish (AR's pass over the samples, then the method's;
scores and divergences are completed after the last timed generation,
``hsd_bench/deferred.py``), so a killed job resumes where it stopped, and a
finished job is skipped outright. A run is identified by its config *and*
the content of its local input files (see ``hsd_bench.fingerprint``), and
every row records the code version that wrote it: a resume never mixes two
versions unless ``resume_across_code_change=true``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hsd_bench import hf_reference, host_probe, measure
from hsd_bench.api import ModelPool, truncate_at_stop
from hsd_bench.config import NATIVE_MODEL_OPTIONS, NON_IDENTITY_KEYS, ModelConf
from hsd_bench.deferred import complete_pending, is_pending
from hsd_bench.engine import level_split_for
from hsd_bench.fingerprint import code_version, describe, input_hashes
from hsd_bench.hf_reference import REFERENCE_METHODS
from hsd_bench.methods import MethodSpec, ar_chunk_for, build_engine
from hsd_bench.metrics import format_table, launch_warnings, summarize, warning_counts
from hsd_bench.models.loading import ModelSpec, hardware_name, resolve_local_path
from hsd_bench.progress import RunProgress, summary_line
from hsd_bench.results import CORRUPT_NAME, RunDir, check_results_dir
from hsd_bench.sampling import DecodingConfig
from hsd_bench.tasks.base import get_task
from hsd_bench.validate import model_paths, validate_run_config
from hsd_bench.verify import get_rule

BASELINE = "autoregressive"

# How many generations this process ran (tests assert a relaunch runs none).
GENERATIONS_RUN = 0


@dataclass
class JobResult:
    run_dir: Path
    summary: dict
    skipped: bool  # the run was already finished


def _as_container(cfg: Any) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg


def method_spec(cfg: dict) -> MethodSpec:
    m = cfg["method"]
    exit_ = m.get("exit")
    return MethodSpec(
        name=m["name"],
        exit=list(exit_) if isinstance(exit_, (list, tuple)) else exit_,
        draft_len=m.get("draft_len", 4),
        period=m.get("period", 4),
        flush_on_mismatch=bool(m.get("flush_on_mismatch", False)),
        draft_path=(m.get("draft") or {}).get("path"),
        levels=list(m.get("levels") or []),
        verifier=cfg.get("verifier", "tokenwise"),
        draft_stop=m.get("draft_stop"),
        ar_chunk=cfg.get("ar_chunk"),
        lookahead=m.get("lookahead", True),
        level_split=cfg.get("level_split"),
    )


def model_spec(cfg: dict) -> ModelSpec:
    return ModelSpec(**cfg["model"])


def identity(cfg: dict) -> dict:
    """What decides the results: the resolved config, and the content of its local input files.

    ``input_hashes`` holds a SHA-256 of each local dataset file and model
    checkpoint the config names, so editing one gives a new run directory
    instead of the old run's rows.
    """
    ident = {k: v for k, v in cfg.items() if k not in NON_IDENTITY_KEYS}
    if ident["method"]["name"] not in ("vanilla_sd", "hf_assisted"):  # the only methods with a separate draft
        ident["method"] = {k: v for k, v in ident["method"].items() if k != "draft"}
    if ident["method"].get("lookahead", True) is True:  # the default (same outputs either way) names nothing
        ident["method"] = {k: v for k, v in ident["method"].items() if k != "lookahead"}
    if (ident.get("decoding") or {}).get("batch_size", 1) == 1:
        # batch 1 is what every run before batches did: it names no batch in the hash
        ident["decoding"] = {k: v for k, v in ident["decoding"].items() if k != "batch_size"}
    if ident.get("ar_chunk") is None:  # the default names no chunk in the hash, as batch 1 names no batch
        ident.pop("ar_chunk", None)
    if ident.get("timing_repeats") is None:  # nor the default number of timed passes
        ident.pop("timing_repeats", None)
    if ident.get("level_split") is None:  # nor the default level split
        ident.pop("level_split", None)
    # nor do the native backend's default prefill and kernels (ModelConf's defaults)
    ident["model"] = {k: v for k, v in ident["model"].items()
                      if not (k in NATIVE_MODEL_OPTIONS and v == getattr(ModelConf, k))}
    ident["input_hashes"] = input_hashes(input_paths(cfg))
    return ident


def input_paths(cfg: dict) -> dict[str, Path | None]:
    """``{config key: local path}`` of every file or checkpoint the run reads (None: not local)."""
    paths: dict[str, Path | None] = {
        key: (None if path.startswith("random:") else resolve_local_path(path))
        for key, path in model_paths(cfg).items()
    }
    for key in ("path", "fewshot_path"):
        value = cfg["dataset"].get(key)
        if value:
            paths[f"dataset.{key}"] = Path(value).expanduser()
    return paths


def run_job(cfg: Any, log=print) -> JobResult:
    cfg = _as_container(cfg)
    # -- validate and build everything before writing or generating ---------
    validate_run_config(cfg)
    run_dir = RunDir(Path(cfg["results_dir"]), identity(cfg))
    if run_dir.done:
        return _already_finished(run_dir, log)
    task = get_task(cfg["dataset"]["name"])
    samples = task.load(_Attr(cfg["dataset"]))
    if not samples:  # dataset.ids=[] and dataset.limit=0 are refused earlier (validate.py)
        chosen_by = ("ids", "limit") if cfg["dataset"].get("ids") is not None else ("limit", "seed")
        raise ValueError(f"dataset {cfg['dataset']['name']!r} selected no samples ("
                         + ", ".join(f"dataset.{k}={cfg['dataset'].get(k)!r}" for k in chosen_by) + ")")
    blank = [s.sample_id for s in samples if not s.prompt.strip()]
    if blank:
        raise ValueError(f"dataset.name={cfg['dataset']['name']!r}: sample(s) {', '.join(blank[:5])} have an empty "
                         f"prompt; valid: a non-empty prompt text (fix or drop them: dataset.ids=[...])")
    decoding = DecodingConfig(**cfg["decoding"])
    max_new = cfg.get("max_new_tokens") or cfg["dataset"].get("max_new_tokens") or task.max_new_tokens
    if max_new < 1:
        raise ValueError(f"max_new_tokens={max_new} must be >= 1")
    check_results_dir(cfg["results_dir"])
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg["cpu_threads"])
    # Take the run before loading any weights: a job that finds it held
    # by another (an overlapping relaunch) leaves at once.
    if not run_dir.try_lock():
        log(f"[hsd-bench] another job is writing this run, leaving it to that job: {run_dir.path}")
        return JobResult(run_dir.path, {}, skipped=True)
    try:
        if run_dir.done:  # the other job finished it between our first look and the lock
            return _already_finished(run_dir, log)
        existing = run_dir.open()
        _report_repairs(run_dir, existing, log)
        version = code_version()
        check_code_version(existing, version, run_dir.path, cfg.get("resume_across_code_change", False))
        # which process timed a row: a resumed run's rows come from more than one, and a speedup over
        # them is no ratio from one job (metrics.launch_warnings); the random tail tells apart two
        # jobs of one process started within a second (run.py as a library)
        launch = f"{platform.node()}/{os.getpid()}/{time.strftime('%Y-%m-%dT%H:%M:%S')}/{uuid.uuid4().hex[:8]}"

        spec = method_spec(cfg)
        pool = ModelPool(model_spec(cfg))
        target, codec = pool.get(cfg["model"]["path"])
        load_other = other_model_loader(cfg, pool)
        decoders = {spec.name: build_decoder(spec, cfg, target, load_other, codec)}
        if cfg.get("baseline", True) and spec.name != BASELINE:
            decoders[BASELINE] = build_engine(MethodSpec(BASELINE, verifier=spec.verifier, ar_chunk=spec.ar_chunk,
                                                         level_split=spec.level_split),
                                              target, load_other, codec)
        rule = get_rule(spec.verifier)
        if not rule.lossless and spec.name != BASELINE:  # reported, never hidden: not only in summary.json
            log(f"[hsd-bench] note: verifier={spec.verifier} is not lossless: under sampling its tokens do not "
                f"follow the target's distribution (docs/methods.md, \"Verification rules\"); summary.json records "
                f"lossless: false")

        finished = {(r["sample_id"], r["method"]) for r in existing}
        rows = list(existing)
        stop = list(task.stop_sequences)
        prompt_ids = {s.sample_id: codec.encode(s.prompt) for s in samples}
        fitting = [ids for ids in prompt_ids.values() if len(ids) < target.max_context]
        backend = getattr(target, "backend", "hf")
        # transformers' own generate() runs eagerly whatever model.backend says (hf_reference.py); the
        # AR baseline beside it runs on `backend`
        method_backend = "transformers" if spec.name in REFERENCE_METHODS else backend
        backends = (f"{backend} backend" if method_backend == backend
                    else f"{backend} backend for AR, {method_backend} for {spec.name}")
        dtype = str(target.dtype).replace("torch.", "")
        log(
            f"[hsd-bench] {spec.name} on {cfg['model']['path']} ({target.num_layers} layers, {backends}, "
            f"{dtype}, {target.device}), {len(samples)} {cfg['dataset']['name']} samples, "
            f"max_new_tokens={max_new} -> {run_dir.path}"
            + (f" (resuming: {len(existing)} rows already written)" if existing else "")
        )
        batch_size = decoding.batch_size  # > 1 with an hf_* method is refused by validate.py
        # Compilation, graph capture and first-touch allocation happen here, untimed (measure.py).
        # A resumed run warms up only the decoders it still times: one with every row written (killed
        # while scoring, say) would compile and capture for nothing.
        warm_new = cfg.get("warmup_tokens") or max_new
        timing = [name for name in decoders
                  if any((s.sample_id, name) not in finished for s in samples
                         if len(prompt_ids[s.sample_id]) < target.max_context)]
        compile_s = measure.prepare([decoders[name] for name in timing], fitting, warm_new, decoding, batch_size,
                                    stop_sequences=stop, tokenizer=codec)
        if timing:
            log(f"[hsd-bench] compiled, captured and warmed up in {compile_s:.1f} s (compile_s; not in any timing)")
        else:
            log("[hsd-bench] every row was already generated: nothing to warm up or time")
        prefill = prefill_modes(m for d in decoders.values() for m in d.models)
        for model_name, how in prefill.items():
            if how.get("chunk_limit") is not None:
                log(f"[hsd-bench] {model_name}: prompts of up to {how['chunk_limit']} chunks of {how['chunk_tokens']} "
                    "tokens prefill as graph replays, longer ones eagerly (model.prefill=auto)")
        captures_at_start = measure.graph_captures(m for d in decoders.values() for m in d.models)
        repeats = measure.timing_repeats_for(cfg.get("timing_repeats"), target.device)
        if repeats > 1:
            log(f"[hsd-bench] timing: {repeats} passes over the samples per decoder, each sample's median pass kept "
                "(timing_repeats); rows are written after a decoder's last pass")

        # one unit per timed generation: samples x decoders x passes
        progress = RunProgress(total=len(samples) * len(decoders) * repeats,
                               desc=f"{spec.name} {cfg['dataset']['name']}",
                               enabled=cfg.get("progress", True), done_rows=existing, unit="generation")
        todo = []
        for sample in samples:
            ids = prompt_ids[sample.sample_id]
            if len(ids) < target.max_context:
                todo.append((sample, ids))
                continue
            new_rows = []
            if (sample.sample_id, "*") not in finished:
                reason = f"prompt of {len(ids)} tokens does not fit the context of {target.max_context}"
                log(f"[hsd-bench] skipping sample {sample.sample_id}: {reason} (model.max_context); recorded in rows.jsonl")
                row = {"sample_id": sample.sample_id, "method": "*", "skipped": True, "reason": reason,
                       "code_version": version}
                run_dir.append(row)
                rows.append(row)
                new_rows.append(row)
            progress.update(new_rows, steps=len(decoders) * repeats)
        progress.update([], steps=repeats * sum((s.sample_id, n) in finished for s, _ in todo for n in decoders))
        ar_rows = {r["sample_id"]: r for r in rows if r.get("method") == BASELINE}

        # Each decoder decodes every sample back to back, AR first -- at batch 1 one timed
        # generation after another, at batch B one refilled stream -- as the benchmark does.
        # Between two timed generations the host only writes the row; scores and divergences
        # from AR are completed after the last one (deferred.py: on a GPU, host work between
        # or beside timed generations made them measurably slower; docs/performance.md).
        generated = lambda: progress.update(steps=1)  # noqa: E731 -- every timed generation, every pass
        for name, decoder in sorted(decoders.items(), key=lambda kv: kv[0] != BASELINE):
            batch = [(s, ids) for s, ids in todo if (s.sample_id, name) not in finished]
            for sample, row in _generate_rows(decoder, codec, batch, max_new, decoding, stop, name, repeats,
                                              generated):
                ar_row = ar_rows.get(sample.sample_id)
                if name == BASELINE:
                    ar_rows[sample.sample_id] = row
                elif ar_row is not None and decoding.greedy:
                    row["parity_exact"] = row["output_ids"] == ar_row["output_ids"]
                    row["divergence"] = None  # explained after the last timed generation, where it differs
                row["code_version"] = version
                row["launch"] = launch
                run_dir.append(row)
                rows.append(row)
                progress.update([row], steps=0)  # its generations were counted as they finished
        progress.close()
        unsteady = [f"{r['sample_id']} ({r['method']})" for r in rows[len(existing):] if r.get("pass_outputs_differ")]
        if unsteady:
            log(f"[hsd-bench] warning: {len(unsteady)} row(s) decoded different tokens in different timed passes: "
                f"{', '.join(unsteady[:5])}{' ...' if len(unsteady) > 5 else ''}; each keeps its median pass's "
                "output (pass_outputs_differ in rows.jsonl): the decoder is not deterministic")
        pending = sum(map(is_pending, rows))
        if pending:
            log(f"[hsd-bench] scoring {pending} row(s) (and explaining their divergences from AR), "
                "after the timed generations")
            complete_pending(task, target, rows, ar_rows, {s.sample_id: s for s in samples}, prompt_ids)
            run_dir.rewrite(rows)

        summary = {
            "config": cfg,
            "run_hash": run_dir.hash,
            "method": spec.name,
            "lossless": bool(rule.lossless) if spec.name != BASELINE else True,
            "verifier": spec.verifier,
            "backend": backend,
            "method_backend": method_backend,  # "transformers" for the hf_* references, else backend
            "dtype": dtype,
            "batch_size": batch_size,
            "ar_chunk": ar_chunk_for(spec.ar_chunk, target.device),
            "timing_repeats": repeats,
            # whether time_split_s was recorded (engine.level_split_for: off on asynchronous CUDA by default)
            "level_split": level_split_for(spec.level_split, target.device),
            "compile_s": compile_s,
            "prefill": prefill,
            "matmul": native_kernels((m for d in decoders.values() for m in d.models), "matmul"),
            "attention": native_kernels((m for d in decoders.values() for m in d.models), "attention"),
            # measured around every kept timing (measure.timed_generate), of every process that wrote a
            # row of this run (a resumed run's too): must be 0
            "graph_captures_timed": sum(r.get("graph_captures", 0) for r in rows if not r.get("skipped")),
            "graph_captures_total": measure.graph_captures(m for d in decoders.values() for m in d.models),
            "graph_captures_before_timing": captures_at_start,
            "retimed_samples": sum(bool(r.get("retimed")) for r in rows if not r.get("skipped")),
            # rows whose timed passes decoded different tokens (timing_repeats > 1): must be 0
            "pass_outputs_differ": sum(bool(r.get("pass_outputs_differ")) for r in rows if not r.get("skipped")),
            "provenance": provenance(cfg),
            "code_versions": code_versions(rows),
            "peak_memory_mb": _peak_memory_mb(target.device),
            "skipped_samples": [r["sample_id"] for r in rows if r.get("skipped")],
            "methods": summarize(rows, BASELINE),
        }
        # what the host did to the rates, kept in the record beside them: the log's warnings, and
        # per method their count, a scalar that W&B and the sweep's tables carry (collect.py)
        host_flags, launch_flags = host_probe.method_warnings(summary["methods"], BASELINE), launch_warnings(rows, BASELINE)
        flagged = host_flags + launch_flags
        for name, count in warning_counts(flagged, summary["methods"], BASELINE).items():
            summary["methods"][name]["timing_warning_count"] = count
        summary["timing_warnings"] = [text for _, text in flagged]
        run_dir.finish(summary)
        _log_wandb(cfg, summary, rows, run_dir.path)
        log(format_table(summary["methods"]))
        for (_, warning), where in [*((w, "docs/performance.md, rule 6") for w in host_flags),
                                    *((w, "docs/sweeps.md, resuming") for w in launch_flags)]:
            log(f"[hsd-bench] warning: {warning} ({where})")
        log(summary_line(summary, run_dir.path))
        log(f"run directory: {run_dir.path}")
        return JobResult(run_dir.path, summary, skipped=False)
    finally:
        run_dir.unlock()


def other_model_loader(cfg: dict, pool: ModelPool):
    """``path -> (model, codec)`` for a method's other models (a draft, hierarchy levels).

    Each is loaded under the config key that names it, so a draft whose path is the target's
    is a second instance with its own KV cache, not the target itself."""
    keys = {path: key for key, path in model_paths(cfg).items()}
    return lambda path: pool.get(path, config_key=keys.get(path, "model.path"))


def build_decoder(spec: MethodSpec, cfg: dict, target, load_other, codec):
    """The method's decoder: an engine stack, or transformers' own generate() (``hf_reference.py``)."""
    if spec.name in REFERENCE_METHODS:
        return hf_reference.build(spec, model_spec(cfg), target, codec)
    return build_engine(spec, target, load_other, codec)


def _already_finished(run_dir: RunDir, log) -> JobResult:
    log(f"[hsd-bench] already finished, nothing to do: {run_dir.path}")
    return JobResult(run_dir.path, json.loads(run_dir.summary_path.read_text()), skipped=True)


def _report_repairs(run_dir: RunDir, rows: list[dict], log) -> None:
    """Say what reopening rows.jsonl set aside: nothing is dropped silently."""
    if run_dir.set_aside:
        lines = ", ".join(map(str, run_dir.set_aside[:10])) + (", ..." if len(run_dir.set_aside) > 10 else "")
        log(f"[hsd-bench] {run_dir.rows_path}: line(s) {lines} are not valid rows; moved them to "
            f"{CORRUPT_NAME} and kept the {len(rows)} valid row(s); their samples run again")
    if run_dir.dropped_torn_tail:
        log(f"[hsd-bench] {run_dir.rows_path}: dropped a torn last line (a write cut short); its sample runs again")


def check_code_version(rows: list[dict], version: dict, path: Path, allow: bool) -> None:
    """Refuse to append to rows that another version of the code wrote, unless ``allow``."""
    others = [r.get("code_version") for r in rows if (r.get("code_version") or {}).get("source") != version["source"]]
    if not others or allow:
        return
    labels = sorted({describe(v) for v in others})
    raise ValueError(
        f"resume_across_code_change=false: {path} holds {len(others)} row(s) written by code "
        f"{'; '.join(labels)}, but this is code {describe(version)}; resuming would mix two code versions "
        f"in one run. Valid: resume with the code that wrote them, start afresh (another results_dir=<dir>, "
        f"or delete that run directory), or pass resume_across_code_change=true to append anyway "
        f"(every row records its code version)"
    )


def code_versions(rows: list[dict]) -> list[dict]:
    """Each distinct code version among the rows, with how many rows it wrote (more than one only when asked)."""
    counts: dict[str, dict] = {}
    for r in rows:
        v = r.get("code_version") or {}
        entry = counts.setdefault(json.dumps(v, sort_keys=True), {**v, "rows": 0})
        entry["rows"] += 1
    return list(counts.values())


def _generate_rows(decoder, codec, batch, max_new, decoding, stop, name, repeats: int = 1, on_generation=None):
    """``(sample, row)`` for every ``(sample, prompt_ids)`` of ``batch``, decoded at
    ``decoding.batch_size`` in ``repeats`` timed passes (``measure.timed_passes``): with one pass
    in the order they finish, with several after the last pass, each row timed by its median pass.
    ``on_generation()`` is called after every timed generation of every pass (the progress bar)."""

    def counted() -> None:
        global GENERATIONS_RUN
        GENERATIONS_RUN += 1
        if on_generation is not None:
            on_generation()

    passes = measure.timed_passes(decoder, [ids for _, ids in batch], max_new, decoding, repeats,
                                  decoding.batch_size, stop_sequences=stop, tokenizer=codec, on_generation=counted)
    for index, timed in passes:
        yield batch[index][0], _row(timed, codec, batch[index][0], stop, name)


def _row(timed, codec, sample, stop, name) -> dict:
    """The row of ``rows.jsonl`` for one finished, timed generation (scored by the caller)."""
    gen = timed.generation
    text = truncate_at_stop(codec.decode(gen.output_ids), stop)
    row = {"sample_id": sample.sample_id, "method": name,
           **({"category": sample.meta["category"]} if "category" in sample.meta else {}),  # per-category summaries
           "output_ids": gen.output_ids, "output_text": text,
           "stop_reason": gen.stop_reason, **gen.stats.as_row(),
           "graph_captures": timed.graph_captures, "retimed": timed.retimed}
    if timed.host_probe_us is not None:  # the host's speed before each pass (host_probe.py)
        row["host_probe_us_passes"] = timed.host_probe_us
    # what other threads took from each pass's generation: preemptions, seconds waiting for a CPU, moves
    row.update(host_probe.contention_passes(timed.contention))
    if timed.pass_wall_s is not None:  # several timed passes: this row's timing is its median pass's
        row["wall_s_passes"] = timed.pass_wall_s
        if not timed.outputs_agree:
            row["pass_outputs_differ"] = True
    row["parity_exact"] = True if name == BASELINE else None
    row["scores"] = None  # pending: scored after the last timed generation (deferred.py)
    return row


def native_kernels(models, option: str) -> dict[str, str]:
    """Which kernel each native model's one-row steps ran for ``model.matmul`` or ``model.attention``
    (``option``): ``gemv`` and ``triton`` ask for Triton kernels, which need CUDA, Triton and a
    half-precision dtype -- the summary says what ran."""
    method = f"{option}_kernel"
    return {m.name: getattr(m, method)() for m in {id(m): m for m in models}.values() if hasattr(m, method)}


def prefill_modes(models) -> dict[str, dict]:
    """How each native model of the run prefills a prompt (``model.prefill``): the mode, and
    under ``auto`` the chunk limit of its cost model -- the summary says what ran."""
    out = {}
    for m in {id(m): m for m in models}.values():
        if getattr(m, "prefill", None) is None:
            continue
        how = {"mode": m.prefill, "chunk_tokens": m.max_graph_tokens or None}
        if m.prefill == "auto":
            how["chunk_limit"] = m.prefill_chunk_limit  # None: no graphs, every long prompt runs eagerly
        out[m.name] = how
    return out


class _Attr(dict):
    """A dict whose keys are also attributes, like the OmegaConf node tasks expect."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _peak_memory_mb(device) -> float:
    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def provenance(cfg: dict) -> dict:
    import transformers

    version = code_version()
    return {
        "git_commit": version.get("commit", ""),
        "code_version": version,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "host": platform.node(),
        "device": hardware_name("cuda" if torch.cuda.is_available() else "cpu"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def _log_wandb(cfg: dict, summary: dict, rows: list[dict], run_dir: Path) -> None:
    if (cfg.get("wandb") or {}).get("mode", "disabled") == "disabled":
        return
    from hsd_bench import wandb_logging

    wandb_logging.log_run(cfg, summary, rows, run_dir)
