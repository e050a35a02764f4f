"""LayerSkip's training recipe: early-exit loss, its curriculum, layer dropout.

Elhoushi et al. 2024 (arXiv 2404.16710), §4.1-4.2:

* early-exit loss  J = Σ_l ẽ(t,l) · CE(head(norm(x_{l+1})), y), every exit
  through the *shared* final norm and LM head, so any prefix of the layers is
  a usable draft model at inference;
* ẽ(t,l) = C(t,l)·e(l) / Σ_i C(t,i)·e(i), with the scale e(l) growing with
  depth and a binary curriculum C (rotational or gradual);
* layer dropout p(l,t) = S(t)·D(l)·p_max, D(l) = e^{l·ln2/(L-1)} − 1 rising
  with depth, S(t) = e^{t·ln2/T} − 1 (pre-training) or 1. Train only.

The model is driven through forward hooks on its decoder layers instead of a
re-implemented forward, so the only contact with ``transformers`` internals is
``model.model.layers`` / ``model.model.norm`` / ``model.lm_head`` (STYLE.md:
keep that contact small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def exit_scales(num_layers: int, weighting: str = "layerskip", e_scale: float = 1.0) -> list[float]:
    """Unnormalised per-exit scale e(l), l = 0..L-1 (exit l = output of layer l+1)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    L = num_layers
    if weighting == "layerskip":
        scales = [e_scale * sum(range(l + 1)) for l in range(L - 1)]
        scales.append((L - 1) + e_scale * sum(range(L - 1)))
        if L == 1:
            scales = [1.0]
        return scales
    if weighting == "linear":
        return [float(l + 1) for l in range(L)]
    if weighting == "uniform":
        return [1.0] * L
    if weighting == "last":  # plain LM loss: for separate draft models, whose exits are never used
        return [0.0] * (L - 1) + [1.0]
    raise ValueError(f"unknown exit weighting {weighting!r}; choose layerskip, linear, uniform or last")


def active_exits(
    num_layers: int, step: int, curriculum: str, rotation: int = 4, progress: float = 0.0, gradual_frac: float = 0.5
) -> list[int]:
    """Exits (0-based layer indices) with a loss at this step; the last is always active.

    ``rotational``: C_rot,R(t,l) = [l mod R == t mod R]. ``gradual``: exits
    switch on from the deepest to the shallowest, all on once ``progress`` (in
    [0, 1]) reaches ``gradual_frac``.
    """
    L = num_layers
    if curriculum == "all":
        exits = list(range(L))
    elif curriculum == "rotational":
        if rotation < 1:
            raise ValueError(f"rotation must be >= 1, got {rotation}")
        exits = [l for l in range(L) if l % rotation == step % rotation]
    elif curriculum == "gradual":
        frac = min(1.0, progress / gradual_frac)
        lowest = math.ceil((L - 1) * (1.0 - frac))
        exits = list(range(lowest, L))
    else:
        raise ValueError(f"unknown curriculum {curriculum!r}; choose all, rotational or gradual")
    if L - 1 not in exits:
        exits.append(L - 1)
    return exits


def normalized_weights(scales: Sequence[float], exits: Sequence[int]) -> dict[int, float]:
    """ẽ(t,l) over the active exits; exits with zero scale are dropped."""
    total = sum(scales[l] for l in exits)
    if total <= 0:
        raise ValueError(f"exit scales {list(scales)} sum to zero over active exits {list(exits)}")
    return {l: scales[l] / total for l in exits if scales[l] > 0}


def layer_dropout_rates(num_layers: int, p_max: float, progress: float, curriculum: str = "exponential") -> list[float]:
    """p(l,t) for every layer; ``progress`` = t/T in [0, 1]."""
    if not 0.0 <= p_max < 1.0:
        raise ValueError(f"p_max must be in [0, 1), got {p_max}")
    if curriculum == "exponential":
        s = math.exp(progress * math.log(2)) - 1.0
    elif curriculum == "constant":
        s = 1.0
    else:
        raise ValueError(f"unknown layer-dropout curriculum {curriculum!r}; choose exponential or constant")
    L = num_layers
    if L == 1:
        return [0.0]
    return [s * (math.exp(l * math.log(2) / (L - 1)) - 1.0) * p_max for l in range(L)]


class ExitRecorder:
    """Forward hooks that apply per-sample layer dropout and record each layer's output.

    Dropout is per sample (a dropped layer passes its input through for that
    row of the batch), as in LayerSkip. The layer is still computed, which
    costs time but keeps every shape static.
    """

    def __init__(self, layers: nn.ModuleList) -> None:
        self.layers = layers
        self.outputs: list[torch.Tensor | None] = [None] * len(layers)
        self.keep: list[torch.Tensor | None] = [None] * len(layers)
        self.record: set[int] = set()
        self._handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, i: int):
        def hook(module: nn.Module, args: tuple, output):
            hidden = output[0] if isinstance(output, tuple) else output
            keep = self.keep[i]
            if keep is not None:
                hidden = torch.where(keep[:, None, None], hidden, args[0])
            if i in self.record:
                self.outputs[i] = hidden
            if keep is None:
                return None
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    def set_dropout(self, rates: Sequence[float] | None, batch_size: int, generator: torch.Generator, device) -> None:
        """Draw keep masks for this step (``None`` rates: no dropout)."""
        if rates is None:
            self.keep = [None] * len(self.layers)
            return
        keep = torch.rand(len(self.layers), batch_size, generator=generator) >= torch.tensor(rates)[:, None]
        keep = keep.to(device)
        self.keep = [None if rates[i] <= 0 else keep[i] for i in range(len(self.layers))]

    def reset(self, record: Sequence[int]) -> None:
        self.record = set(record)
        self.outputs = [None] * len(self.layers)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def exit_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Shared final norm + LM head applied at any exit."""
    return model.lm_head(model.model.norm(hidden))


def per_exit_losses(
    model: nn.Module, recorder: ExitRecorder, input_ids: torch.Tensor, targets: torch.Tensor, exits: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Mean cross-entropy at each exit in ``exits`` for one batch (float32 losses).

    All exits go through the norm, the LM head and the cross-entropy as one
    stacked batch: a handful of large kernels instead of a few per exit,
    which is what makes the every-layer loss cheap on a GPU.
    """
    exits = list(exits)
    recorder.reset(exits)
    model.model(input_ids=input_ids, use_cache=False)
    missing = [l for l in exits if recorder.outputs[l] is None]
    if missing:
        raise RuntimeError(f"layer outputs {missing} were not recorded; are the hooks on model.model.layers?")
    hidden = torch.stack([recorder.outputs[l] for l in exits])  # [E, B, T, D]
    recorder.reset(())
    logits = exit_logits(model, hidden)
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1).repeat(len(exits)), reduction="none"
    ).view(len(exits), -1).mean(dim=1)
    return {l: ce[i] for i, l in enumerate(exits)}
