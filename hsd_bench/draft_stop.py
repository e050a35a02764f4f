"""Adaptive draft length: a drafting level stops at its first unconfident token.

The rule (HF's ``assistant_confidence_threshold``, SpecDec++ and DEL stop on
the same signal): a level with threshold ``t`` in (0, 1) hands up its tokens
one by one and ends its output right *after* the first token whose
distribution has a top probability below ``t`` -- that token is still sent
(it may be accepted; verifying one more position is nearly free), nothing
after it is. ``draft_len`` (γ) stays the maximum.

*Confidence* of a token is the top probability of the distribution it was
drawn from: under sampling the level's warped distribution (temperature,
top-k, top-p: what it samples from and hands up as q); under greedy
decoding, the softmax of its logits at temperature 1 (greedy has no warped
distribution, and top-k/top-p do not apply). :func:`top_probability` is the
one place that computes it.

Why this is lossless for every rule: the confidence of token j depends only
on the tokens before it, so "stop after token j" is a deterministic function
of the draft prefix -- a prefix-stopping rule, under which token-wise,
block and hsd verification stay exact (docs/methods.md;
``tests/test_draft_stop.py`` checks it exactly and by Monte Carlo).

Config: ``method.draft_stop={threshold: 0.6}`` (or the shorthand
``method.draft_stop=0.6``; ``null`` = off) for level 0 of any method, and a
``draft_stop`` key per entry of ``method.levels`` for any drafting level of a
hierarchy (level 0's falls back to ``method.draft_stop``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["DraftStopError", "HostValue", "first_stop", "parse_draft_stop", "stops_after", "top_probability"]


class DraftStopError(ValueError):
    """A ``draft_stop`` value that is not a threshold in (0, 1); the message names the key."""


def parse_draft_stop(value: Any, key: str = "method.draft_stop") -> float | None:
    """The threshold of a ``draft_stop`` config value, or None when it is off.

    Accepts ``null``, a number, or ``{threshold: number}``; anything else,
    or a threshold outside (0, 1), is an error naming ``key``. (0 would never
    stop and 1 would stop after every token: both are fixed-γ runs in
    disguise, so they are refused rather than silently allowed.)
    """
    if value is None:
        return None
    if isinstance(value, dict) or hasattr(value, "keys"):
        unknown = sorted(set(value.keys()) - {"threshold"})
        if unknown:
            raise DraftStopError(f"{key} has unknown keys {unknown}; valid: threshold (e.g. {key}={{threshold: 0.6}})")
        if value.get("threshold") is None:
            raise DraftStopError(f"{key} needs a threshold in (0, 1), e.g. {key}={{threshold: 0.6}} (null = off)")
        value, key = value["threshold"], f"{key}.threshold"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DraftStopError(f"{key}={value!r} must be a number in (0, 1), e.g. 0.6 (or null to draft a fixed γ)")
    if not 0.0 < float(value) < 1.0:
        raise DraftStopError(
            f"{key}={value!r} is outside (0, 1): the draft stops after the first token whose top probability "
            "is below the threshold, so it must lie strictly between 0 and 1"
        )
    return float(value)


def top_probability(scores: torch.Tensor, logits: bool) -> torch.Tensor:
    """Top probability of each row ``[..., V] -> [...]``, float32.

    ``logits=True``: rows are raw logits and the softmax is taken at
    temperature 1 (the greedy definition); ``False``: rows are already the
    warped probabilities a level samples from.
    """
    scores = scores.float()
    if not logits:
        return scores.max(dim=-1).values
    return torch.exp(scores.max(dim=-1).values - torch.logsumexp(scores, dim=-1))


def stops_after(confidence: float, threshold: float | None) -> bool:
    """True when a token of this confidence ends the draft (the rule, in one place)."""
    return threshold is not None and confidence < threshold


def first_stop(confidences: list[float], threshold: float | None) -> int | None:
    """Index of the first of these consecutive tokens after which the level stops, or None."""
    for j, c in enumerate(confidences):
        if stops_after(c, threshold):
            return j
    return None


class HostValue:
    """A small device tensor on its way to the host, read later without draining the stream.

    A draft chain asks for token s's confidence, then queues more device work
    (the layers on token s), then reads: the copy and an event are queued
    behind the step that computed the value, so the host waits for that step
    only while the device keeps running what was queued after it. On a CPU
    tensor it is a plain read.
    """

    def __init__(self, value: torch.Tensor, host: torch.Tensor | None = None, event=None, stream=None):
        """``host`` (pinned, at least ``value.numel()`` elements of its dtype), ``event`` and
        ``stream``: reused instead of made per read, for a caller that reads once per round --
        a pinned allocation, an event and a stream lookup cost more host time than the copy."""
        if value.device.type == "cuda":
            n = value.numel()
            if host is None:
                host = torch.empty(n, dtype=value.dtype, pin_memory=True)
            # no view where none is needed: each is a dispatcher call, and a verdict is read once per round
            self._host = host if host.numel() == n else host[:n]
            self._host.copy_(value if value.dim() == 1 else value.reshape(-1), non_blocking=True)
            self._event = event if event is not None else torch.cuda.Event()
            self._event.record(stream if stream is not None else torch.cuda.current_stream(value.device))
        else:
            self._host, self._event = value, None

    def get(self) -> list[float]:
        if self._event is not None:
            self._event.synchronize()
        return (self._host if self._host.dim() == 1 else self._host.reshape(-1)).tolist()
