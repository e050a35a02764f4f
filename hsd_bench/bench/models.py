"""The models a benchmark part runs on: random shapes or trained checkpoints.

Decode cost at batch 1 does not depend on the weight values, so a random
model of a real shape gives real speed numbers (not acceptance rates):
``random:llama-1b`` is Llama-3.2-1B's shape (DESIGN.md §8).
"""

from __future__ import annotations

from pathlib import Path

import torch

def _llama3(factor: float, **shape) -> dict:
    """A Llama-3 family shape: what the 1B, 3B and 8B share (128k vocabulary, llama3 RoPE scaled
    by ``factor`` from 8192 positions) plus the size-specific ``shape``."""
    return dict(vocab_size=128256, rms_norm_eps=1e-5, max_position_embeddings=131072, rope_theta=500000.0,
                rope_scaling=dict(rope_type="llama3", factor=factor, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position_embeddings=8192),
                **shape)


SHAPES: dict[str, dict] = {
    # Llama-3.2-1B: 16 x 2048, GQA 32/8, tied embeddings.
    "llama-1b": _llama3(32.0, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                        num_key_value_heads=8, head_dim=64, tie_word_embeddings=True),
    # Llama-3.2-3B: 28 x 3072, GQA 24/8, tied embeddings.
    "llama-3b": _llama3(32.0, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                        num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    # Llama-3.1-8B: 32 x 4096, GQA 32/8, untied embeddings.
    "llama-8b": _llama3(8.0, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8, head_dim=128, tie_word_embeddings=False),
    # CPU smoke tests of the script itself.
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=8,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
    "tiny-draft": dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024),
}


def quiet_generation_config(model) -> None:
    """No EOS, so every method generates exactly the same number of tokens."""
    gc = model.generation_config
    gc.eos_token_id = None
    gc.pad_token_id = 0
    gc.bos_token_id = None


def random_config(shape: str):
    """The transformers config of a named shape: a real model's (SHAPES) or a training preset's.

    Presets (``hsd_bench.training.config.PRESETS``) give the shapes of the models the project
    trains -- ``random:gpu-24x1024`` times the GPU benchmark model without training it first.
    """
    from transformers import AutoConfig

    from hsd_bench.training.config import PRESETS

    if shape in SHAPES:
        return AutoConfig.for_model("llama", attn_implementation="sdpa", **SHAPES[shape])
    if shape in PRESETS:
        return PRESETS[shape].shape.llama_config(bos_token_id=1, eos_token_id=2)
    raise ValueError(f"unknown random shape {shape!r}; valid: {', '.join(SHAPES)} or a training preset "
                     f"({', '.join(PRESETS)})")


def spec_problem(spec: str) -> str | None:
    """Why :func:`load_hf` cannot load ``spec`` (``None`` when it can, as far as can be told without
    loading): an unknown random shape or a checkpoint directory that is not there. For a command
    line's early check, before minutes of other work."""
    if spec.startswith("random:"):
        try:
            random_config(spec.split(":", 1)[1])
        except ValueError as err:
            return str(err)
        return None
    if not Path(spec).is_dir():
        return f"checkpoint directory {spec!r} does not exist; valid: a checkpoint directory or random:<shape>"
    return None


def load_hf(spec: str, device: str, dtype: torch.dtype, seed: int = 0, layers: int | None = None):
    """``random:<shape>`` or a checkpoint directory -> (transformers model, tokenizer or None).

    ``layers`` gives a random shape that many layers instead of its own (the same width and
    vocabulary: a draft of the shape's family for the overhead part's vanilla_sd and hierarchy
    rows); a checkpoint keeps its own."""
    from transformers import AutoModelForCausalLM

    if layers is not None and (not spec.startswith("random:") or layers < 1):
        raise ValueError(f"layers={layers!r}: only a random shape takes a layer count, and it must be >= 1 "
                         f"(spec {spec!r})")
    if spec.startswith("random:"):
        config = random_config(spec.split(":", 1)[1])
        if layers is not None:
            config.num_hidden_layers = layers
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        tokenizer = None
    else:
        problem = spec_problem(spec)
        if problem:
            raise ValueError(problem)
        path = Path(spec)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa").to(device)
        tokenizer = load_tokenizer(path)
    model.eval()
    quiet_generation_config(model)
    return model, tokenizer


def float32_reference(model, limit_bytes: int = 8 << 30):
    """``ids -> [V]`` float32 logits of ``model`` (a transformers causal LM) after ``ids``, from a
    float32 copy made at the first call -- the float32 second opinion on a divergence the run
    dtype's near-tie rule does not explain (``parity.explain``). None where that copy would exceed
    ``limit_bytes``: the benchmark's small models get it, an 8B shape does not."""
    import copy

    if sum(p.numel() for p in model.parameters()) * 4 > limit_bytes:
        return None
    held = []

    @torch.no_grad()
    def logits(ids: list[int]) -> torch.Tensor:
        if not held:
            held.append(copy.deepcopy(model).float().eval())
        return held[0](torch.tensor([ids], device=model.device)).logits[0, -1]  # a float32 copy's: float32

    return logits


def load_tokenizer(path: Path):
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001 -- fall back to the raw tokenizers file
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path / "tokenizer.json"))


def same_vocabulary(a, b) -> bool | None:
    """Whether two tokenizers map the same token strings to the same ids (``None``: one is missing).

    A separate draft must share the target's ids; the engine's own check
    (``methods.check_draft_compatible``) only sees vocabulary *sizes* here because
    the benchmark passes no codecs (a codec would switch EOS back on).
    """
    if a is None or b is None:
        return None
    return a.get_vocab() == b.get_vocab()


def encode(tokenizer, text: str) -> list[int]:
    if hasattr(tokenizer, "encode") and not hasattr(tokenizer, "get_vocab_size"):
        return list(tokenizer(text)["input_ids"])
    return tokenizer.encode(text).ids


# Code-completion prompts written for this benchmark (HumanEval-style, not
# HumanEval problems: the shipped models never saw the benchmark).
CODE_PROMPTS = [
    'def moving_average(values: list[float], window: int) -> list[float]:\n    """Return the averages of every run of `window` consecutive values."""\n',
    'import os\n\n\ndef find_files(root: str, suffix: str) -> list[str]:\n    """Walk `root` and return the paths of files ending in `suffix`, sorted."""\n',
    'class Stack:\n    """A last-in, first-out container."""\n\n    def __init__(self):\n        self._items = []\n\n    def push(self, item):\n',
    'def parse_key_values(text: str) -> dict[str, str]:\n    """Parse lines of the form `key = value` into a dict, skipping comments."""\n    result = {}\n    for line in text.splitlines():\n',
    'def is_prime(n: int) -> bool:\n    """Return True if n is a prime number."""\n    if n < 2:\n        return False\n',
    'def merge_sorted(a: list[int], b: list[int]) -> list[int]:\n    """Merge two sorted lists into one sorted list."""\n    i = j = 0\n',
    'import json\n\n\ndef load_config(path):\n    """Read a JSON file and return its contents, or an empty dict if missing."""\n',
    'def word_counts(text: str) -> dict[str, int]:\n    """Count how often each lower-cased word occurs in text."""\n',
]


def prompts_for(tokenizer, vocab_size: int, n: int, length: int, seed: int = 0) -> list[list[int]]:
    """Token prompts: the code prompts through the tokenizer, or random ids of ``length``."""
    if tokenizer is not None:
        return [encode(tokenizer, CODE_PROMPTS[i % len(CODE_PROMPTS)]) for i in range(n)]
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (length,), generator=g).tolist() for _ in range(n)]
