"""The shape of a Llama-family model, read once from a transformers config.

The native backend never looks at a transformers config again after this: a
version bump of transformers that renames config fields is a change here and
nowhere else (STYLE.md). Anything the backend cannot reproduce exactly --
another activation, a RoPE variant it does not implement -- is refused here
with a message naming the value, instead of decoding something subtly
different from the Hugging Face model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class NativeArgs:
    model_type: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_eps: float
    rope_theta: float
    rope_type: str = "default"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_positions: int = 8192
    # Per layer: attend only to keys with position > query position - window (0 = full causal).
    sliding_windows: tuple[int, ...] = ()

    @property
    def groups(self) -> int:
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_hf_config(cls, config) -> "NativeArgs":
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"native backend: model_type {model_type!r} is not supported; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        act = getattr(config, "hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"native backend: hidden_act={act!r} is not supported; only 'silu' (SwiGLU MLP)")
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        if heads % kv_heads:
            raise ValueError(f"num_attention_heads={heads} must be a multiple of num_key_value_heads={kv_heads}")
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        rope = _rope_params(config)
        rope_type = rope.get("rope_type", rope.get("type", "default")) or "default"
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"native backend: rope type {rope_type!r} is not supported; "
                f"supported: {', '.join(SUPPORTED_ROPE_TYPES)} "
                "(use model.backend=hf for this checkpoint)"
            )
        partial = float(rope.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0)) or 1.0)
        if partial != 1.0:
            raise ValueError(f"native backend: partial_rotary_factor={partial} is not supported (only 1.0)")
        num_layers = int(config.num_hidden_layers)
        return cls(
            model_type=model_type,
            num_layers=num_layers,
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            vocab_size=int(config.vocab_size),
            rms_eps=float(config.rms_norm_eps),
            rope_theta=float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))),
            rope_type=rope_type,
            rope_factor=float(rope.get("factor", 1.0) or 1.0),
            rope_low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
            rope_high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
            rope_original_max_positions=int(
                rope.get("original_max_position_embeddings", getattr(config, "max_position_embeddings", 8192))
            ),
            sliding_windows=_sliding_windows(config, model_type, num_layers),
        )


def _rope_params(config) -> dict:
    """RoPE settings from either the 5.x ``rope_parameters`` or the 4.x ``rope_scaling`` field."""
    params: dict = {}
    for field_name in ("rope_scaling", "rope_parameters"):
        value = getattr(config, field_name, None)
        if isinstance(value, dict):
            if value and all(isinstance(v, dict) for v in value.values()):
                raise ValueError(f"native backend: per-layer-type RoPE ({field_name}={value}) is not supported")
            params.update(value)
    return params


def _sliding_windows(config, model_type: str, num_layers: int) -> tuple[int, ...]:
    """Which layers use a sliding window, exactly as transformers decides it."""
    window = getattr(config, "sliding_window", None)
    if model_type == "mistral":  # every layer, when set
        return tuple([int(window) if window else 0] * num_layers)
    layer_types = getattr(config, "layer_types", None)
    if not layer_types:
        return tuple([0] * num_layers)
    return tuple(int(window) if t == "sliding_attention" and window else 0 for t in layer_types)


def rope_inv_freq(args: NativeArgs) -> torch.Tensor:
    """Inverse frequencies ``[head_dim / 2]`` (float32), as transformers computes them."""
    dim = args.head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if args.rope_type == "linear":
        return inv_freq / args.rope_factor
    if args.rope_type == "llama3":
        factor, low, high = args.rope_factor, args.rope_low_freq_factor, args.rope_high_freq_factor
        old_len = args.rope_original_max_positions
        low_wavelen, high_wavelen = old_len / low, old_len / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    return inv_freq


def rope_tables(args: NativeArgs, length: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` of shape ``[length, head_dim]`` in the model dtype.

    Computed in float32 and then cast, like transformers' rotary embedding,
    so the values a position looks up are bit-identical to the HF model's.
    """
    inv_freq = rope_inv_freq(args)
    freqs = torch.arange(length, dtype=torch.int64).float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(device=device, dtype=dtype), emb.sin().to(device=device, dtype=dtype)
