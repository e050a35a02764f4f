"""Model shapes and training hyper-parameters of the early-exit recipe.

Shapes are named presets so a shipped checkpoint, its training record and the
one-command rebuild of the GPU model all point at the same numbers
(docs/models.md). Every model is a plain ``transformers`` Llama with tied
embeddings: tied embeddings halve the size of a narrow model whose vocabulary
matrix dominates its parameters, and a stock architecture loads anywhere with
``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # transformers takes seconds to import; the config is built on use
    from transformers import LlamaConfig


@dataclass(frozen=True)
class ModelShape:
    """The architecture knobs we vary; everything else is Llama's default."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int | None = None
    vocab_size: int = 4096
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "intermediate_size", "num_heads", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelShape.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_heads={self.num_heads} must be divisible by num_kv_heads={kv}")

    def llama_config(self, bos_token_id: int, eos_token_id: int, pad_token_id: int | None = None) -> LlamaConfig:
        """A ``LlamaConfig`` for this shape (tied embeddings, SDPA attention)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads or self.num_heads,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
            tie_word_embeddings=True,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            attn_implementation="sdpa",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and early-exit-recipe settings for one training run.

    ``curriculum``: which exits get a loss at step t — ``all`` (every layer
    every step: affordable on a GPU), ``rotational`` (LayerSkip's C_rot,R: every
    R-th layer, rotating, plus the last layer) or ``gradual`` (C_grad: exits
    switch on from the last layer down to the first over ``gradual_frac`` of
    training). ``exit_weighting``: ``layerskip`` is the paper's scale
    e(l) = e_scale·Σ_{i≤l} i (last layer: L-1 + e_scale·Σ_{i<L-1} i), which
    weights deep layers quadratically more; ``linear`` uses e(l) = l+1, which
    still favours depth but leaves the shallow exits a usable share;
    ``uniform`` weighs all exits alike; ``last`` is the plain LM loss (for
    separate draft models, whose early exits are never used). Weights are renormalised over the
    exits active at a step (the paper's normalisation).
    """

    steps: int = 1500
    batch_size: int = 64
    seq_len: int = 256
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    curriculum: str = "all"
    rotation: int = 4
    gradual_frac: float = 0.5
    exit_weighting: str = "layerskip"
    e_scale: float = 1.0
    layer_dropout_max: float = 0.1
    layer_dropout_curriculum: str = "exponential"
    eval_batches: int = 16
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("seq_len", self.seq_len >= 2, ">= 2"),
            ("lr", self.lr > 0, "> 0"),
            ("min_lr_frac", 0.0 <= self.min_lr_frac <= 1.0, "in [0, 1]"),
            ("warmup_steps", self.warmup_steps >= 0, ">= 0"),
            ("rotation", self.rotation >= 1, ">= 1"),
            ("gradual_frac", 0.0 < self.gradual_frac <= 1.0, "in (0, 1]"),
            ("e_scale", self.e_scale >= 0, ">= 0"),
            ("layer_dropout_max", 0.0 <= self.layer_dropout_max < 1.0, "in [0, 1)"),
            ("eval_batches", self.eval_batches >= 1, ">= 1"),
        ]
        for name, ok, valid in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid: must be {valid}")
        choices = {
            "curriculum": ("all", "rotational", "gradual"),
            "exit_weighting": ("layerskip", "linear", "uniform", "last"),
            "layer_dropout_curriculum": ("exponential", "constant"),
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; choose one of {valid}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"TrainConfig.time_budget_s={self.time_budget_s!r} must be > 0 or None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> "TrainConfig":
        """Copy with the non-None overrides applied (CLI flags left unset keep the preset)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Preset:
    """A named (shape, training settings) pair; ``description`` goes into the record."""

    shape: ModelShape
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""


# 24 x 128 with a 384-wide MLP and a 4096 vocabulary is 5.6M parameters:
# 11.3 MB in bfloat16 with tied embeddings, inside the 12 MB budget.
PRESETS: dict[str, Preset] = {
    "ee-24x128": Preset(
        ModelShape(num_layers=24, hidden_size=128, intermediate_size=384, num_heads=4),
        # linear exit weighting: measured better than the paper's quadratic
        # scale at every exit, the last included (docs/models.md)
        TrainConfig(steps=3000, exit_weighting="linear"),
        "shipped default early-exit model (LayerSkip recipe, E=L/4=6 is the draft exit)",
    ),
    "family-6x128": Preset(
        ModelShape(num_layers=6, hidden_size=128, intermediate_size=384, num_heads=4),
        TrainConfig(steps=3000, exit_weighting="last", layer_dropout_max=0.0),
        "separate 6-layer draft model sharing the default's tokenizer",
    ),
    "family-2x128": Preset(
        ModelShape(num_layers=2, hidden_size=128, intermediate_size=384, num_heads=4),
        TrainConfig(steps=3000, exit_weighting="last", layer_dropout_max=0.0),
        "separate 2-layer draft model sharing the default's tokenizer",
    ),
    # ~294M parameters; rebuilt on the GPU right before the performance
    # benchmarks, never shipped (docs/models.md).
    "gpu-24x1024": Preset(
        ModelShape(num_layers=24, hidden_size=1024, intermediate_size=2560, num_heads=16),
        TrainConfig(steps=1500, lr=1e-3, warmup_steps=150, exit_weighting="linear"),
        "GPU benchmark model (too large for the repo; rebuilt by one command)",
    ),
    # Test-sized: seconds on a CPU.
    "tiny": Preset(
        ModelShape(num_layers=2, hidden_size=32, intermediate_size=64, num_heads=2, vocab_size=320,
                   max_position_embeddings=256),
        TrainConfig(steps=4, batch_size=4, seq_len=32, warmup_steps=1, eval_batches=2, lr=1e-2),
        "test-sized model",
    ),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name, failing with the list of valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
