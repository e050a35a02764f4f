"""Decoding settings and the logits -> distribution warp shared by every level.

Every level warps its logits with the same temperature / top-k / top-p, so
"lossless" means: the committed tokens are distributed exactly as the
target's *warped* distribution, i.e. as autoregressive sampling with the
same settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DecodingConfig:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    seed: int = 0
    # Sequences decoded together (Engine.generate_many); every row samples from its own
    # generator, so the batch size does not change what a row decodes.
    batch_size: int = 1

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"decoding.temperature={self.temperature} must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            raise ValueError(f"decoding.top_k={self.top_k} must be >= 0 (0 = off)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"decoding.top_p={self.top_p} must be in (0, 1]")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ValueError(f"decoding.batch_size={self.batch_size!r} must be an integer >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def warp(logits: torch.Tensor, decoding: DecodingConfig) -> torch.Tensor:
    """``[T, V]`` logits -> ``[T, V]`` probabilities after temperature, top-k, top-p."""
    logits = logits.float() / decoding.temperature
    if decoding.top_k and decoding.top_k < logits.shape[-1]:
        kth = torch.topk(logits, decoding.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if decoding.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p
        drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= decoding.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.softmax(dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token id from a ``[V]`` distribution."""
    return torch.multinomial(probs, 1, generator=generator)[0]
