"""Load a model by Hub id, local directory, or ``random:<arch>`` spec.

The same path serves a Hub id on a cluster and a checkpoint shipped in the
repository, so the code users run on real models is the code the tests run.
``random:llama`` / ``random:qwen2`` / ``random:mistral`` build tiny randomly
initialised models from configs (tests, and examples that need no weights).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from hsd_bench.models.hf_backend import SUPPORTED_MODEL_TYPES, HFLayeredModel
from hsd_bench.models.tokenizer import TextCodec

REPO_ROOT = Path(__file__).resolve().parents[2]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
BACKENDS = ("auto", "hf", "native")
# What from_pretrained() reads weights from in a local checkpoint directory (one file, or a sharded index)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
RANDOM_VOCAB_SIZE = 258  # random:<arch> models: 256 bytes + BOS + EOS (TextCodec's byte vocabulary)

# Tiny architectures for tests: GQA Llama, Qwen2 with q/k/v bias, Mistral with
# a sliding window shorter than test sequences.
RANDOM_ARCHS = {
    "llama": dict(
        model_type="llama", hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, num_hidden_layers=4,
    ),
    "qwen2": dict(
        model_type="qwen2", hidden_size=64, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=4, num_hidden_layers=3,
    ),
    "mistral": dict(
        model_type="mistral", hidden_size=48, intermediate_size=96, num_attention_heads=4,
        num_key_value_heads=1, num_hidden_layers=5, sliding_window=12,
    ),
}


@dataclass
class ModelSpec:
    path: str
    dtype: str = "float32"
    device: str = "cpu"
    backend: str = "auto"
    num_layers: int | None = None  # random:* only
    seed: int = 0  # random:* only
    max_context: int | None = None
    prefill: str = "auto"  # native backend only (NativeLlama's prefill)
    matmul: str = "gemv"  # native backend only (NativeLlama's matmul)
    attention: str = "triton"  # native backend only (NativeLlama's attention)
    config_key: str = "model.path"  # the config key that named this path, for error messages


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def hardware_name(device: torch.device | str) -> str:
    """What results record as the hardware they ran on: the GPU's name, else the CPU's."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def resolve_local_path(path: str) -> Path | None:
    """A local checkpoint: as given, relative to the cwd, or to the repo root."""
    for candidate in (Path(path).expanduser(), REPO_ROOT / path):
        if candidate.is_dir():
            return candidate
    return None


def check_weight_files(key: str, directory: Path, shown: str | None = None) -> None:
    """A local checkpoint directory must hold its weights (:data:`WEIGHT_FILES`): one with only a
    config.json failed late, inside from_pretrained(), with a message about the config."""
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise ValueError(
            f"{key}={shown if shown is not None else str(directory)!r} has a config.json but no weight files "
            f"({' / '.join(WEIGHT_FILES)}); valid: a checkpoint directory with its weights (as save_pretrained() "
            f"writes it)"
        )


def build_random_model(arch: str, num_layers: int | None = None, seed: int = 0, vocab_size: int = RANDOM_VOCAB_SIZE):
    """A tiny randomly initialised transformers model (no files, no Hub)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in RANDOM_ARCHS:
        raise ValueError(f"unknown random architecture {arch!r}; valid: {', '.join(RANDOM_ARCHS)}")
    kwargs = dict(RANDOM_ARCHS[arch])
    model_type = kwargs.pop("model_type")
    if num_layers is not None:
        kwargs["num_hidden_layers"] = num_layers
    if model_type == "qwen2":
        kwargs["use_sliding_window"] = False
    config = AutoConfig.for_model(
        model_type, vocab_size=vocab_size, max_position_embeddings=512,
        bos_token_id=256 if vocab_size > 257 else None, eos_token_id=257 if vocab_size > 257 else None,
        tie_word_embeddings=False, attn_implementation="sdpa", **kwargs,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random init gives near-uniform logits; a larger scale makes the
    # distributions peaked enough that drafts are sometimes accepted.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(4.0)
    return model.eval()


def load_hf_model(spec: ModelSpec):
    """(transformers model, codec) for a spec; clear errors when offline."""
    dtype = DTYPES.get(spec.dtype)
    if dtype is None:
        raise ValueError(f"model.dtype={spec.dtype!r} is not one of {', '.join(DTYPES)}")
    if spec.path.startswith("random:"):
        model = build_random_model(spec.path.split(":", 1)[1], spec.num_layers, spec.seed)
        return model.to(dtype=dtype), TextCodec(vocab_size=model.config.vocab_size)

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    key = spec.config_key
    local = resolve_local_path(spec.path)
    source = str(local) if local else spec.path
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        hint = "" if local else (
            " It is not a local directory, so it was looked up on the Hugging Face Hub, which is not"
            f" reachable from this machine (or the id is wrong). Pass {key}=<local checkpoint dir>."
        )
        raise ValueError(f"cannot load {key}={spec.path!r}.{hint} ({err.__class__.__name__}: {_first_line(err)})") from None
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{key}={spec.path!r} is a {config.model_type!r} model; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if local:  # validate.py says it earlier, for a run
        check_weight_files(key, local, spec.path)
    with _quiet_transformers():
        try:
            model, info = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, attn_implementation="sdpa", output_loading_info=True
            )
        except (OSError, RuntimeError, ValueError) as err:
            cause = "tensor shapes differ from the ones it describes" if "mismatched_sizes" in str(err) else (
                f"{err.__class__.__name__}: {_first_line(err)}")
            raise ValueError(
                f"cannot load the weights of {key}={spec.path!r}: they do not fit its config.json "
                f"({cause}); valid: weights saved with that config"
            ) from None
    bad = [f"missing {k}" for k in info.get("missing_keys") or []]
    bad += [f"size mismatch {k[0] if isinstance(k, tuple) else k}" for k in info.get("mismatched_keys") or []]
    if bad:
        raise ValueError(
            f"the weights of {key}={spec.path!r} do not match its config.json: {len(bad)} tensor(s) differ "
            f"({'; '.join(bad[:3])}{'; ...' if len(bad) > 3 else ''}); valid: weights saved with that config"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load the tokenizer of {key}={spec.path!r} ({err.__class__.__name__}: {_first_line(err)})") from None
    return model.eval(), TextCodec(tokenizer)


def resolve_backend(backend: str, device: str, model_type: str) -> str:
    """``auto``: the native backend for every architecture it supports, the HF adapter otherwise.

    Measured faster on both kinds of machine (docs/performance.md, "Which
    backend runs"): on CUDA the native backend's static cache, compiled steps
    and CUDA graphs are 10-30x faster than eager transformers at batch 1; on
    CPU its eager path was 1.3x faster than the HF adapter on the shipped
    model (``scripts/compare_backends.py``: AR 51 vs 38 tok/s, layerskip 78 vs
    58). ``device`` is accepted so the rule can differ by device if a
    measurement says so.
    """
    if backend not in BACKENDS:
        raise ValueError(f"model.backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from hsd_bench.models.native import SUPPORTED_MODEL_TYPES as NATIVE_TYPES

    return "native" if model_type in NATIVE_TYPES else "hf"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _quiet_transformers:
    """transformers prints a multi-line load report for bad weights; our error says it in one line.
    Its "Loading weights" bar follows run.py's own rule (``progress.bar_enabled``: on a terminal, not in
    CI), or every model's load filled a SLURM job's log with a bar its progress setting had turned off."""

    def __enter__(self):
        from transformers.utils import logging as tf_logging

        from hsd_bench.progress import bar_enabled

        self._logging = tf_logging
        self._level = tf_logging.get_verbosity()
        tf_logging.set_verbosity_error()
        self._bars = tf_logging.is_progress_bar_enabled()
        if self._bars and not bar_enabled():
            tf_logging.disable_progress_bar()

    def __exit__(self, *exc):
        self._logging.set_verbosity(self._level)
        if self._bars:
            self._logging.enable_progress_bar()


def load_model(spec: ModelSpec, name: str = "model"):
    """A ``LayeredModel`` and its ``TextCodec``, on the requested device and backend (``auto`` resolved)."""
    if spec.backend not in BACKENDS:
        raise ValueError(f"model.backend={spec.backend!r} is not one of {', '.join(BACKENDS)}")
    device = resolve_device(spec.device)
    hf_model, codec = load_hf_model(spec)
    hf_model = hf_model.to(device)
    if resolve_backend(spec.backend, device, hf_model.config.model_type) == "native":
        from hsd_bench.models.native import from_hf_model  # the static-cache backend

        return from_hf_model(hf_model, name=name, max_context=spec.max_context, prefill=spec.prefill,
                             matmul=spec.matmul, attention=spec.attention), codec
    return HFLayeredModel(hf_model, name=name, max_context=spec.max_context), codec

