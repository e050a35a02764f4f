"""Check a resolved run config without loading any weights.

Used by the runner before it loads models or writes anything, and by the
sweeper on every job of a sweep before the first one is submitted -- so a bad
exit list fails in seconds on the login node, not hours later on a GPU.
Every error is a ``ValueError`` whose message names the key, the value and
what is valid; the run command turns it into one line and exit code 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hsd_bench.config import NATIVE_MODEL_OPTIONS, ModelConf
from hsd_bench.engine import level_split_for
from hsd_bench.measure import timing_repeats_for
from hsd_bench.hf_reference import REFERENCE_METHODS
from hsd_bench.methods import (
    SEPARATE_DRAFT_METHODS, TARGET, UNKNOWN_DEPTH, ar_chunk_for, method_views, vocabulary_mismatch,
)
from hsd_bench.models.loading import (
    BACKENDS, DTYPES, RANDOM_ARCHS, RANDOM_VOCAB_SIZE, REPO_ROOT, check_weight_files, resolve_local_path,
)
from hsd_bench.models.native.model import ATTENTION_KERNELS, MATMUL_KERNELS, PREFILL_MODES
from hsd_bench.results import check_results_dir_named
from hsd_bench.sampling import DecodingConfig
from hsd_bench.tasks.base import available_tasks
from hsd_bench.tasks.jsonl import path_from_cfg
from hsd_bench.wandb_logging import wandb_mode

DEVICE_FORMS = "cpu, cuda, cuda:<index>, mps, auto"
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def model_paths(cfg: dict) -> dict[str, str]:
    """``{config key: path}`` of every model a run loads (the target, a draft, hierarchy levels)."""
    paths = {"model.path": cfg["model"]["path"]}
    method = cfg["method"]
    if method.get("name") in SEPARATE_DRAFT_METHODS and (method.get("draft") or {}).get("path"):
        paths["method.draft.path"] = method["draft"]["path"]
    if method.get("name") == "hierarchy":
        for i, level in enumerate(method.get("levels") or []):
            path = level.get("path") if isinstance(level, dict) else None
            if path and path != TARGET:
                paths[f"method.levels[{i}].path"] = path
    return paths


def read_model_config(key: str, directory: Path) -> dict:
    """A checkpoint's ``config.json``, or a ValueError naming the key and the file."""
    path = directory / "config.json"
    if not path.is_file():
        raise ValueError(f"{key}={str(directory)!r} has no config.json; valid: a Hugging Face checkpoint directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{key}: {path} is not valid JSON ({err}); valid: a Hugging Face config.json") from None
    if not isinstance(config, dict):
        raise ValueError(f"{key}: {path} holds a JSON {type(config).__name__}, not an object")
    check_weight_files(key, directory)
    return config


def _looks_local(path: str) -> bool:
    """A path no Hub id can be: absolute, ./ ../ ~, or under a directory that exists here (checkpoints/...)."""
    if path.startswith(("/", "./", "../", "~")) or path.count("/") > 1:
        return True
    first = path.split("/", 1)[0]
    return "/" in path and any((base / first).is_dir() for base in (Path.cwd(), REPO_ROOT))


def check_model_path(key: str, path: Any) -> dict | None:
    """Check one model path; the checkpoint's config if it is local, None for random:* and Hub ids."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{key}={path!r} is not a model; valid: a local checkpoint directory, a Hub id or random:<arch>")
    if path.startswith("random:"):
        arch = path.split(":", 1)[1]
        if arch not in RANDOM_ARCHS:
            raise ValueError(f"{key}={path!r}: unknown random architecture {arch!r}; valid: {', '.join(RANDOM_ARCHS)}")
        return None
    local = resolve_local_path(path)
    if local is not None:
        return read_model_config(key, local)
    if Path(path).expanduser().exists():
        raise ValueError(f"{key}={path!r} is a file; valid: a checkpoint directory, a Hub id or random:<arch>")
    if _looks_local(path):
        raise ValueError(
            f"{key}={path!r}: no such checkpoint directory; valid: a local checkpoint directory "
            f"(e.g. checkpoints/family-2x128), a Hub id (org/name) or random:<arch>"
        )
    return None  # a Hub id: checked when the model loads


def model_depth(model_cfg: dict, key: str = "model.path") -> int | None:
    """Number of decoder layers, from the config alone; None if unknown offline."""
    path = model_cfg["path"]
    config = check_model_path(key, path)
    if path.startswith("random:"):
        return model_cfg.get("num_layers") or RANDOM_ARCHS[path.split(":", 1)[1]]["num_hidden_layers"]
    return _depth(config)


def _vocab_size(path: str, config: dict | None) -> int | None:
    """A model's vocabulary size from its config alone; None if unknown offline (a Hub id)."""
    if path.startswith("random:"):
        return RANDOM_VOCAB_SIZE
    size = (config or {}).get("vocab_size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def check_device(device: Any) -> None:
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ValueError(f"model.device={device!r} is not a device; valid: {DEVICE_FORMS}")


def check_device_available(device: str) -> None:
    """The device exists on this machine (run where the job runs, not on a SLURM login node)."""
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if count == 0:
            raise ValueError(
                f"model.device={device!r}, but this torch ({torch.__version__}) sees no CUDA device; "
                f"valid here: cpu, auto"
            )
        if index >= count:
            raise ValueError(f"model.device={device!r}, but only {count} CUDA device(s) exist; valid: cuda:0..cuda:{count - 1}")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"model.device='mps', but MPS is not available here; valid here: cpu, auto")


def _int_at_least(key: str, value: Any, low: int, null: str | None = None) -> None:
    if value is None and null is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = f" (or null for {null})" if null else ""
        raise ValueError(f"{key}={value!r} must be an integer >= {low}{extra}")


def validate_run_config(cfg: dict, hardware: bool = True) -> None:
    """Raise ValueError naming the bad value and the valid range.

    ``hardware``: also check that ``model.device`` exists on this machine
    (False in a sweep submitted elsewhere, e.g. to SLURM GPU nodes).
    """
    from hsd_bench.runner import method_spec  # the one place that reads method keys

    model = cfg["model"]
    if model.get("dtype") not in DTYPES:
        raise ValueError(f"model.dtype={model.get('dtype')!r} is not one of {', '.join(DTYPES)}")
    if model.get("backend", "hf") not in BACKENDS:
        raise ValueError(f"model.backend={model.get('backend')!r} is not one of {', '.join(BACKENDS)}")
    choices = {"prefill": PREFILL_MODES, "matmul": MATMUL_KERNELS, "attention": ATTENTION_KERNELS}
    for key in NATIVE_MODEL_OPTIONS:
        valid = choices[key]
        if model.get(key, getattr(ModelConf, key)) not in valid:
            raise ValueError(f"model.{key}={model.get(key)!r} is not one of {', '.join(valid)}")
    check_device(model.get("device", "cpu"))
    if hardware:
        check_device_available(model.get("device", "cpu"))
    _int_at_least("model.num_layers", model.get("num_layers"), 1, "the architecture's default")
    _int_at_least("model.max_context", model.get("max_context"), 2, "the model's own")
    check_results_dir_named(cfg.get("results_dir"))
    decoding = DecodingConfig(**cfg["decoding"])
    if decoding.batch_size > 1 and cfg["method"].get("name") in REFERENCE_METHODS:
        raise ValueError(f"decoding.batch_size={decoding.batch_size}: method={cfg['method']['name']} (transformers' "
                         "own generate()) decodes one sequence at a time here; valid: decoding.batch_size=1")
    wandb_mode(cfg.get("wandb") or {})
    _int_at_least("cpu_threads", cfg.get("cpu_threads"), 1, "torch's default")
    _int_at_least("warmup_tokens", cfg.get("warmup_tokens"), 0, "max_new_tokens")
    ar_chunk_for(cfg.get("ar_chunk"), "cpu")
    timing_repeats_for(cfg.get("timing_repeats"), "cpu")
    level_split_for(cfg.get("level_split"), "cpu")
    dataset = cfg["dataset"]["name"]
    if dataset not in available_tasks():
        raise ValueError(f"dataset.name: unknown dataset {dataset!r}; valid datasets: {', '.join(available_tasks())}")
    _int_at_least("dataset.limit", cfg["dataset"].get("limit"), 1, "all samples")
    _check_dataset_paths(cfg["dataset"])
    _int_at_least("max_new_tokens", cfg.get("max_new_tokens"), 1, "the dataset's default")
    others = {key: (path, check_model_path(key, path)) for key, path in model_paths(cfg).items() if key != "model.path"}
    depths = {path: _depth(config) for path, config in others.values()}
    depth = model_depth(model)
    spec = method_spec(cfg)
    # without a known depth, check everything but the exit range
    views = method_views(spec, depth if depth is not None else UNKNOWN_DEPTH)
    if spec.name == "hierarchy":
        depths[TARGET] = depth
        for i, view in enumerate(views[:-1]):
            level_depth = depths.get(view.model)
            if view.exit is not None and level_depth is not None and (
                isinstance(view.exit, bool) or not isinstance(view.exit, int) or not 1 <= view.exit <= level_depth
            ):
                raise ValueError(
                    f"method.levels[{i}].exit={view.exit!r} is outside 1..{level_depth}, the depth of {view.model!r} "
                    f"(null = its last layer)"
                )
    # a draft of another vocabulary, known from the configs (the tokenizers are compared when they load)
    target_vocab = _vocab_size(model["path"], check_model_path("model.path", model["path"]))
    for key, (path, config) in others.items():
        vocab = _vocab_size(path, config)
        if vocab is not None and target_vocab is not None and vocab != target_vocab:
            raise vocabulary_mismatch(path, vocab, target_vocab, key)


def _check_dataset_paths(dataset: dict) -> None:
    """An empty dataset path (an unset shell variable) is refused: null means the default source."""
    for key in ("path", "fewshot_path"):
        path_from_cfg(dataset, key)
    ids = dataset.get("ids")
    if ids is not None and len(ids) == 0:
        raise ValueError("dataset.ids=[] selects no samples; valid: a non-empty list of sample ids, "
                         "or null to select by dataset.limit and dataset.seed")


def _depth(config: dict | None) -> int | None:
    return config.get("num_hidden_layers") if config is not None else None


def validate_any(cfg: Any, hardware: bool = True) -> None:
    from omegaconf import OmegaConf

    validate_run_config(OmegaConf.to_container(cfg, resolve=True), hardware=hardware)
