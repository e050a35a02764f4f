"""One job: a method and the autoregressive baseline on the same samples.

Everything is validated (models, exits, draft lengths, dataset) before the
first token is generated; rows are written as samples finish, so a killed
job resumes where it stopped, and a finished job is skipped outright.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hsd_bench.api import ModelPool, truncate_at_stop
from hsd_bench.config import NON_IDENTITY_KEYS
from hsd_bench.engine import Engine
from hsd_bench.methods import MethodSpec, build_engine
from hsd_bench.metrics import format_table, summarize
from hsd_bench.models.loading import REPO_ROOT, ModelSpec
from hsd_bench.progress import RunProgress, summary_line
from hsd_bench.results import RunDir
from hsd_bench.sampling import DecodingConfig
from hsd_bench.tasks.base import get_task
from hsd_bench.validate import validate_run_config
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
    )


def model_spec(cfg: dict) -> ModelSpec:
    return ModelSpec(**cfg["model"])


def identity(cfg: dict) -> dict:
    """The part of the resolved config that decides the results."""
    ident = {k: v for k, v in cfg.items() if k not in NON_IDENTITY_KEYS}
    if ident["method"]["name"] != "vanilla_sd":
        ident["method"] = {k: v for k, v in ident["method"].items() if k != "draft"}
    if (ident.get("decoding") or {}).get("batch_size", 1) == 1:
        # batch 1 is what every run before batches did: keep their run directories
        ident["decoding"] = {k: v for k, v in ident["decoding"].items() if k != "batch_size"}
    return ident


def run_job(cfg: Any, log=print) -> JobResult:
    cfg = _as_container(cfg)
    run_dir = RunDir(Path(cfg["results_dir"]), identity(cfg))
    if run_dir.done:
        log(f"[hsd-bench] already finished, nothing to do: {run_dir.path}")
        return JobResult(run_dir.path, json.loads(run_dir.summary_path.read_text()), skipped=True)

    # -- validate and build everything before generating --------------------
    validate_run_config(cfg)
    if cfg.get("cpu_threads"):
        torch.set_num_threads(cfg["cpu_threads"])
    task = get_task(cfg["dataset"]["name"])
    samples = task.load(_Attr(cfg["dataset"]))
    if not samples:
        raise ValueError(f"dataset {cfg['dataset']['name']!r} selected no samples (limit={cfg['dataset'].get('limit')})")
    decoding = DecodingConfig(**cfg["decoding"])
    max_new = cfg.get("max_new_tokens") or cfg["dataset"].get("max_new_tokens") or task.max_new_tokens
    if max_new < 1:
        raise ValueError(f"max_new_tokens={max_new} must be >= 1")
    # Take the run before loading any weights: a job that finds it held
    # by another (an overlapping relaunch) leaves at once.
    if not run_dir.try_lock():
        log(f"[hsd-bench] another job is writing this run, leaving it to that job: {run_dir.path}")
        return JobResult(run_dir.path, {}, skipped=True)
    try:
        spec = method_spec(cfg)
        pool = ModelPool(model_spec(cfg))
        target, codec = pool.get(cfg["model"]["path"])
        engines: dict[str, Engine] = {spec.name: build_engine(spec, target, pool.get, codec)}
        if cfg.get("baseline", True) and spec.name != BASELINE:
            engines[BASELINE] = build_engine(MethodSpec(BASELINE, verifier=spec.verifier), target, pool.get, codec)
        rule = get_rule(spec.verifier)

        existing = run_dir.open()
        finished = {(r["sample_id"], r["method"]) for r in existing}
        rows = list(existing)
        stop = list(task.stop_sequences)
        log(
            f"[hsd-bench] {spec.name} on {cfg['model']['path']} ({target.num_layers} layers), "
            f"{len(samples)} {cfg['dataset']['name']} samples, max_new_tokens={max_new} -> {run_dir.path}"
            + (f" (resuming: {len(existing)} rows already written)" if existing else "")
        )
        _warm_up(engines, codec.encode(samples[0].prompt), cfg.get("warmup_tokens", 16), decoding)

        progress = RunProgress(total=len(samples), desc=f"{spec.name} {cfg['dataset']['name']}",
                               enabled=cfg.get("progress", True), done_rows=existing)
        # At batch 1, AR and the method are timed back to back on each sample in this
        # job, so their ratio is not skewed by load that changes between jobs. At batch B
        # each decodes all samples as one stream (finished rows refilled), AR first.
        windows = [[s] for s in samples] if decoding.batch_size == 1 else [samples]
        for window in windows:
            todo = []
            for sample in window:
                prompt_ids = codec.encode(sample.prompt)
                if len(prompt_ids) < target.max_context:
                    todo.append((sample, prompt_ids))
                    continue
                new_rows = []
                if (sample.sample_id, "*") not in finished:
                    row = {"sample_id": sample.sample_id, "method": "*", "skipped": True,
                           "reason": f"prompt of {len(prompt_ids)} tokens does not fit the context of {target.max_context}"}
                    run_dir.append(row)
                    rows.append(row)
                    new_rows.append(row)
                progress.update(new_rows)
            ar_rows = {r["sample_id"]: r for r in rows if r.get("method") == BASELINE}
            order = sorted(engines.items(), key=lambda kv: kv[0] != BASELINE)
            left = {s.sample_id: sum((s.sample_id, n) not in finished for n in engines) for s, _ in todo}
            for sample, _ in todo:
                if not left[sample.sample_id]:
                    progress.update([])
            for name, engine in order:
                batch = [(s, ids) for s, ids in todo if (s.sample_id, name) not in finished]
                for sample, row in _generate_rows(engine, codec, batch, max_new, decoding, stop, task, name):
                    ar_row = ar_rows.get(sample.sample_id)
                    if name == BASELINE:
                        ar_rows[sample.sample_id] = row
                    elif ar_row is not None and decoding.greedy:
                        row["parity_exact"] = row["output_ids"] == ar_row["output_ids"]
                    run_dir.append(row)
                    rows.append(row)
                    left[sample.sample_id] -= 1
                    progress.update([row], samples=0 if left[sample.sample_id] else 1)
        progress.close()

        summary = {
            "config": cfg,
            "run_hash": run_dir.hash,
            "method": spec.name,
            "lossless": bool(rule.lossless) if spec.name != BASELINE else True,
            "verifier": spec.verifier,
            "provenance": provenance(cfg),
            "peak_memory_mb": _peak_memory_mb(target.device),
            "skipped_samples": [r["sample_id"] for r in rows if r.get("skipped")],
            "methods": summarize(rows, BASELINE),
        }
        run_dir.finish(summary)
        _log_wandb(cfg, summary, rows, run_dir.path)
        log(format_table(summary["methods"]))
        log(summary_line(summary, run_dir.path))
        log(f"run directory: {run_dir.path}")
        return JobResult(run_dir.path, summary, skipped=False)
    finally:
        run_dir.unlock()


def _generate_rows(engine, codec, batch, max_new, decoding, stop, task, name):
    """``(sample, row)`` for every ``(sample, prompt_ids)`` of ``batch``, decoded at ``decoding.batch_size``
    (one by one at batch 1), in the order they finish."""
    global GENERATIONS_RUN
    if decoding.batch_size == 1:
        for sample, prompt_ids in batch:
            yield sample, _generate_row(engine, codec, sample, prompt_ids, max_new, decoding, stop, task, name)
        return
    gens = engine.generate_many([ids for _, ids in batch], max_new, decoding, stop_sequences=stop, tokenizer=codec)
    for index, gen in gens:
        GENERATIONS_RUN += 1
        yield batch[index][0], _row(gen, codec, batch[index][0], stop, task, name)


def _generate_row(engine, codec, sample, prompt_ids, max_new, decoding, stop, task, name) -> dict:
    global GENERATIONS_RUN
    GENERATIONS_RUN += 1
    gen = engine.generate(prompt_ids, max_new, decoding, stop_sequences=stop, tokenizer=codec)
    return _row(gen, codec, sample, stop, task, name)


def _row(gen, codec, sample, stop, task, name) -> dict:
    """The row of ``rows.jsonl`` for one finished generation."""
    text = truncate_at_stop(codec.decode(gen.output_ids), stop)
    row = {"sample_id": sample.sample_id, "method": name, "output_ids": gen.output_ids, "output_text": text,
           "stop_reason": gen.stop_reason, **gen.stats.as_row()}
    row["parity_exact"] = True if name == BASELINE else None
    row["scores"] = task.score(sample, text)
    return row


def _warm_up(engines: dict[str, Engine], prompt_ids: list[int], tokens: int, decoding: DecodingConfig) -> None:
    """One short generation per engine (a full batch at batch B), excluded from timing (allocations, kernels, caches)."""
    if tokens > 0:
        for engine in engines.values():
            prompt = prompt_ids[: max(1, engine.max_context - tokens - 1)]
            for _ in engine.generate_many([prompt] * decoding.batch_size, tokens, decoding):
                pass


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

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "git_commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "host": platform.node(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def _log_wandb(cfg: dict, summary: dict, rows: list[dict], run_dir: Path) -> None:
    if (cfg.get("wandb") or {}).get("mode", "disabled") == "disabled":
        return
    from hsd_bench import wandb_logging

    wandb_logging.log_run(cfg, summary, rows, run_dir)
