"""The training loop: early-exit loss, resume, evaluation, saving.

One run trains one model from a prepared data directory (data.py) and writes a
standard Hugging Face directory (``save_pretrained`` + tokenizer) plus its
training record (``training.json`` and ``TRAINING.md``). Resume state
(weights in float32, optimizer, step, train time used) lives apart from the
checkpoint, in ``state_dir``, so a shipped checkpoint never carries optimizer
state. Everything random is a function of ``(seed, step)``: a resumed run
draws the batches and dropout masks an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM

from hsd_bench.models.loading import hardware_name
from hsd_bench.training.config import ModelShape, TrainConfig
from hsd_bench.training.data import TokenData, load_data, sample_windows, step_generator
from hsd_bench.training.early_exit import (
    ExitRecorder,
    active_exits,
    exit_scales,
    layer_dropout_rates,
    normalized_weights,
    per_exit_losses,
)

STATE_FILE = "state.pt"
RECORD_JSON = "training.json"
RECORD_MD = "TRAINING.md"
_EVAL_SEED = 20240425  # fixed: every run of every model is evaluated on the same windows


@dataclass
class RunOptions:
    """How (not what) to train: device, precision, persistence, logging."""

    out_dir: Path
    state_dir: Path
    device: str = "auto"
    amp: str = "auto"  # auto = bf16 on CUDA, none on CPU
    save_dtype: str = "bfloat16"
    save_every: int = 250
    stop_after: int | None = None  # simulate preemption / split a run (this invocation only)
    log_every: int = 50
    resume: bool = True
    progress: bool | None = None  # None: on when stderr is a TTY and CI is not set
    command: str = ""
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        self.out_dir, self.state_dir = Path(self.out_dir), Path(self.state_dir)
        if self.amp not in ("auto", "bf16", "none"):
            raise ValueError(f"amp={self.amp!r}; choose auto, bf16 or none")
        if self.save_dtype not in ("bfloat16", "float32"):
            raise ValueError(f"save_dtype={self.save_dtype!r}; choose bfloat16 or float32")
        if self.save_every < 1 or self.log_every < 1:
            raise ValueError(f"save_every={self.save_every} and log_every={self.log_every} must be >= 1")
        if self.stop_after is not None and self.stop_after < 1:
            raise ValueError(f"stop_after={self.stop_after} must be >= 1 or None")


@dataclass
class TrainResult:
    steps_done: int
    stopped_by: str
    record: dict = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return dev


def progress_enabled(flag: bool | None) -> bool:
    """tqdm only on an interactive terminal, never under CI."""
    if flag is not None:
        return flag
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``min_lr_frac·lr`` over ``progress`` in [0, 1]."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_frac
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_model(shape: ModelShape, tokenizer, seed: int) -> LlamaForCausalLM:
    """A freshly initialised Llama for ``shape``; the init depends only on ``seed``."""
    if shape.vocab_size != len(tokenizer):
        raise ValueError(f"model vocab_size={shape.vocab_size} != tokenizer size {len(tokenizer)}")
    config = shape.llama_config(tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; matrices (embedding included) decay, norms do not (nanoGPT's split)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda"
    )


@torch.no_grad()
def evaluate_exits(model, recorder: ExitRecorder, data: TokenData, cfg: TrainConfig, autocast) -> dict[int, float]:
    """Mean validation cross-entropy at every exit, keyed by exit layer (1..L)."""
    was_training = model.training
    model.eval()
    recorder.set_dropout(None, 0, None, None)
    L = len(recorder.layers)
    g = torch.Generator()
    g.manual_seed(_EVAL_SEED)
    sums = [0.0] * L
    for _ in range(cfg.eval_batches):
        win = sample_windows(data.val, cfg.batch_size, cfg.seq_len, g)
        with autocast():
            losses = per_exit_losses(model, recorder, win[:, :-1], win[:, 1:], list(range(L)))
        for l in range(L):
            sums[l] += float(losses[l])
    model.train(was_training)
    return {l + 1: sums[l] / cfg.eval_batches for l in range(L)}


def _save_state(path: Path, model, opt, step: int, train_seconds: float, history: list, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
         "train_seconds": train_seconds, "history": history, "meta": meta},
        tmp,
    )
    os.replace(tmp, path)


def train(
    shape: ModelShape,
    cfg: TrainConfig,
    data_dir: Path | str,
    opts: RunOptions,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) one early-exit model and save it; returns the record."""
    device = resolve_device(opts.device)
    use_bf16 = opts.amp == "bf16" or (opts.amp == "auto" and device.type == "cuda")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()

    if not progress_enabled(opts.progress):
        transformers.utils.logging.disable_progress_bar()
    data = load_data(data_dir, device)
    tokenizer = AutoTokenizer.from_pretrained(str(data.tokenizer_dir))
    model = build_model(shape, tokenizer, cfg.seed).to(device)
    model.train()
    opt = make_optimizer(model, cfg, device)
    L = shape.num_layers
    recorder = ExitRecorder(model.model.layers)
    scales = exit_scales(L, cfg.exit_weighting, cfg.e_scale)
    n_params = sum(p.numel() for p in model.parameters())

    run_meta = {"shape": asdict(shape), "train": cfg.to_dict()}
    state_path = opts.state_dir / STATE_FILE
    start_step, train_seconds, history = 0, 0.0, []
    if opts.resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        if state["meta"] != run_meta:
            raise ValueError(
                f"resume state {state_path} was written by a different configuration; "
                f"delete it or pass --no-resume.\n saved: {state['meta']}\n now:   {run_meta}"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, train_seconds, history = state["step"], state["train_seconds"], state["history"]
        log(f"resumed from {state_path} at step {start_step} ({train_seconds:.1f}s of training done)")

    log(f"model: {L} layers x {shape.hidden_size} wide, {n_params / 1e6:.2f}M params, device {device}, "
        f"bf16 autocast {use_bf16}; train tokens {data.train.numel():,}")
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not progress_enabled(opts.progress),
               desc=opts.name or "train", dynamic_ncols=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    stopped_by = "steps"
    step = start_step
    steps_this_run = 0
    sync()
    t_run = time.perf_counter()
    last_losses: dict[int, torch.Tensor] = {}
    while step < cfg.steps:
        elapsed = train_seconds + (time.perf_counter() - t_run)
        if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
            stopped_by = "time_budget"
            break
        if opts.stop_after is not None and steps_this_run >= opts.stop_after:
            stopped_by = "stop_after"
            break
        progress = step / cfg.steps
        if cfg.time_budget_s is not None:  # anneal on time too, so a cut-short run still ends cooled down
            progress = max(progress, elapsed / cfg.time_budget_s)
        lr = lr_at(cfg, step, progress)
        for group in opt.param_groups:
            group["lr"] = lr
        win = sample_windows(data.train, cfg.batch_size, cfg.seq_len, step_generator(cfg.seed, step))
        exits = active_exits(L, step, cfg.curriculum, cfg.rotation, progress, cfg.gradual_frac)
        weights = normalized_weights(scales, exits)
        rates = layer_dropout_rates(L, cfg.layer_dropout_max, progress, cfg.layer_dropout_curriculum)
        recorder.set_dropout(rates, cfg.batch_size, step_generator(cfg.seed + 7919, step), device)
        with autocast():
            losses = per_exit_losses(model, recorder, win[:, :-1], win[:, 1:], sorted(weights))
            loss = sum(w * losses[l] for l, w in weights.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        steps_this_run += 1
        bar.update(1)
        last_losses = losses
        if step % opts.log_every == 0 or step == cfg.steps:
            entry = {"step": step, "lr": lr, "loss": float(loss.detach()),
                     "final_exit_loss": float(losses[L - 1].detach()),
                     "elapsed_s": round(train_seconds + time.perf_counter() - t_run, 2)}
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", last=f"{entry['final_exit_loss']:.3f}")
            if bar.disable:
                log(f"step {step}/{cfg.steps} loss {entry['loss']:.4f} last-exit {entry['final_exit_loss']:.4f} "
                    f"lr {lr:.2e} {entry['elapsed_s']:.0f}s")
        if step % opts.save_every == 0 and step < cfg.steps:
            sync()
            _save_state(state_path, model, opt, step, train_seconds + time.perf_counter() - t_run, history, run_meta)
    sync()
    run_seconds = time.perf_counter() - t_run
    train_seconds += run_seconds
    bar.close()
    _save_state(state_path, model, opt, step, train_seconds, history, run_meta)
    tokens_per_s = steps_this_run * cfg.batch_size * cfg.seq_len / run_seconds if steps_this_run else 0.0
    if stopped_by == "stop_after":
        log(f"stopped after {steps_this_run} steps at step {step} ({run_seconds:.1f}s, "
            f"{tokens_per_s:,.0f} train tokens/s); resume state in {state_path}")
        recorder.remove()
        return TrainResult(step, stopped_by, {"step": step, "tokens_per_s": tokens_per_s})

    val = evaluate_exits(model, recorder, data, cfg, autocast)
    recorder.remove()
    record = {
        "name": opts.name,
        "description": opts.description,
        "command": opts.command,
        "seed": cfg.seed,
        "steps_planned": cfg.steps,
        "steps_done": step,
        "stopped_by": stopped_by,
        "resumed_from_step": start_step,
        "train_seconds": round(train_seconds, 2),
        "train_tokens_seen": step * cfg.batch_size * cfg.seq_len,
        "tokens_per_s_this_run": round(tokens_per_s, 1),
        "parameters": n_params,
        "shape": asdict(shape),
        "train_config": cfg.to_dict(),
        "exit_weights_all_active": {l + 1: round(w, 5) for l, w in normalized_weights(scales, range(L)).items()},
        "final_train_loss_per_exit": {l + 1: round(float(v.detach()), 4) for l, v in sorted(last_losses.items())},
        "val_loss_per_exit": {k: round(v, 4) for k, v in val.items()},
        "history": history,
        "data": data.meta,
        "device": hardware_name(device),
        "bf16_autocast": use_bf16,
        "peak_gpu_memory_gb": (round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                               if device.type == "cuda" else None),
        "save_dtype": opts.save_dtype,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
    save_checkpoint(model, tokenizer, opts.out_dir, opts.save_dtype)
    record["checkpoint_bytes"] = sum(f.stat().st_size for f in opts.out_dir.iterdir() if f.is_file())
    record["weights_bytes"] = (opts.out_dir / "model.safetensors").stat().st_size
    write_record(opts.out_dir, record)
    log(f"done: {step} steps in {train_seconds:.1f}s, {tokens_per_s:,.0f} train tokens/s; "
        f"val loss per exit: " + " ".join(f"{k}:{v:.3f}" for k, v in val.items()))
    return TrainResult(step, stopped_by, record)


def save_checkpoint(model: LlamaForCausalLM, tokenizer, out_dir: Path, save_dtype: str) -> None:
    """``save_pretrained`` (safetensors) in ``save_dtype`` + tokenizer + generation config."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[save_dtype]
    model = model.to(dtype=dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def write_record(out_dir: Path, record: dict) -> None:
    """``training.json`` (everything) and ``TRAINING.md`` (the human summary)."""
    (out_dir / RECORD_JSON).write_text(json.dumps(record, indent=2) + "\n")
    shape, tc, corpus = record["shape"], record["train_config"], record["data"]["corpus"]
    lines = [
        f"# {record['name'] or out_dir.name}",
        "",
        record["description"],
        "",
        "Rebuild (from the repository root):",
        "",
        "```",
        record["command"],
        "```",
        "",
        f"* shape: {shape['num_layers']} layers x {shape['hidden_size']} wide, MLP {shape['intermediate_size']}, "
        f"{shape['num_heads']} heads, vocab {shape['vocab_size']}, tied embeddings; "
        f"{record['parameters'] / 1e6:.2f}M parameters, saved as {record['save_dtype']} "
        f"({record['weights_bytes'] / 1e6:.2f} MB of weights)",
        f"* seed {record['seed']}; {record['steps_done']} of {record['steps_planned']} steps "
        f"(stopped by {record['stopped_by']}), batch {tc['batch_size']} x {tc['seq_len']} tokens, "
        f"AdamW lr {tc['lr']} cosine to {tc['min_lr_frac']}x, warm-up {tc['warmup_steps']}",
        f"* early exit: curriculum `{tc['curriculum']}`, weighting `{tc['exit_weighting']}` "
        f"(e_scale {tc['e_scale']}), layer dropout p_max {tc['layer_dropout_max']} "
        f"({tc['layer_dropout_curriculum']})",
        f"* corpus: {corpus['files_kept']} Python files, {corpus['bytes_kept'] / 1e6:.1f} MB, Python "
        f"{corpus['python']} stdlib + site-packages (dedup by content hash, HumanEval excluded), content "
        f"sha256 {corpus['content_sha256'][:16]}...; {record['data']['train_tokens']:,} train / "
        f"{record['data']['val_tokens']:,} val tokens",
        f"* trained on {record['device']} in {record['train_seconds']:.0f} s "
        f"({record['tokens_per_s_this_run']:,.0f} tokens/s); bf16 autocast {record['bf16_autocast']}",
        "",
        "| exit layer | val loss | last train loss |",
        "| --- | --- | --- |",
    ]
    train_l = record["final_train_loss_per_exit"]
    for k, v in record["val_loss_per_exit"].items():
        lines.append(f"| {k} | {v:.4f} | {train_l.get(k, float('nan')):.4f} |")
    (out_dir / RECORD_MD).write_text("\n".join(lines) + "\n")
