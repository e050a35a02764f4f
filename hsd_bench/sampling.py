"""Decoding settings and the logits -> distribution warp shared by every level.

Every level warps its logits with the same temperature / top-k / top-p, so
"lossless" means: the committed tokens are distributed exactly as the
target's *warped* distribution, i.e. as autoregressive sampling with the
same settings.
"""

from __future__ import annotations

import math
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
        # nan fails every comparison and inf divides every logit to 0 (uniform sampling): both refused
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"decoding.temperature={t!r} must be a finite number >= 0 (0 = greedy)")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"decoding.top_k={self.top_k!r} must be an integer >= 0 (0 = off)")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
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


def uniforms(n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """``n`` float64 uniforms in [0, 1), drawn on the generator's device and moved to ``device``.

    Every random decision of decoding (acceptance tests, token draws) reads
    these and nothing else, so its law can be integrated exactly
    (hsd_bench/fidelity.py). float64, because a test ``u < a`` passes with
    probability ``a`` rounded up to the uniform's grid: CPU float32 uniforms
    are k * 2^-24 (0 with probability 2^-24), float64 ones k * 2^-53.
    """
    rand_device = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=rand_device, dtype=torch.float64).to(device)


def draw(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index ``i`` with probability ``weights[i] / weights.sum()``: inverse CDF at a uniform.

    ``weights`` is ``[V]``, non-negative with a positive sum (unnormalised is
    fine); ``u`` is a float64 uniform in [0, 1) of shape ``[1]``; returns
    ``LongTensor[1]``, without a host sync. The CDF is summed in float64 and
    the index is the first with ``cdf[i] > u * cdf[-1]``: an index of zero
    weight has ``cdf[i] == cdf[i - 1]`` and is never returned, and
    ``u * cdf[-1] < cdf[-1]`` for every float64 ``u < 1``, so the index is
    always in range. ``torch.multinomial`` gives neither guarantee (it is
    ``argmax(w / Exp(1))``; an exponential draw of 0 makes a zero weight NaN,
    which argmax picks), and its law cannot be integrated exactly.
    """
    cdf = weights.double().cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[-1:], right=True)


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token id from a ``[V]`` distribution (0-dim LongTensor)."""
    return draw(probs, uniforms(1, generator, probs.device))[0]
