"""Verification rules: how a level decides which drafted tokens to keep.

A rule is a small pure function over probability tensors, testable without a
model (DESIGN.md §4). Every rule sees the same inputs:

* ``draft``  -- ``LongTensor[k]``, the tokens proposed by the level below;
* ``q``      -- ``FloatTensor[k, V]``, the distribution each draft token was
  drawn from (the lower level's, after temperature/top-k/top-p);
* ``p``      -- ``FloatTensor[k + 1, V]``, this level's distribution at each
  draft position plus the bonus position;

and returns a :class:`Verdict`: how many draft tokens are kept, and the one
token that follows them (a correction drawn from a residual, or the bonus).

Rules register themselves by name (``@register_rule("tokenwise")``) so a
config says ``verifier=block`` and nothing else changes. A rule draws its
randomness only as float64 uniforms (``sampling.uniforms``; tokens through
``sampling.draw``), so the exhaustive fidelity test (:mod:`hsd_bench.fidelity`)
can integrate the law of ``__call__`` itself exactly. Each rule also exposes
``outcome_distribution``, the probability of every ``(accepted, token)``
outcome by formula, which the tests cross-check against that law.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch


@dataclass(frozen=True)
class Verdict:
    accepted: int
    token: int


class VerificationRule(Protocol):
    name: str
    # Declared losslessness; the exact fidelity test checks the claim and
    # every run records it in its metadata.
    lossless: bool
    # True for a rule that is lossless only on a draft of exactly the
    # requested length; the engine then trims a lower level's surplus
    # output. No built-in rule needs it: all are lossless when the draft's
    # length is decided by a stopping rule on its prefix (docs/methods.md).
    fixed_length: bool

    def __call__(
        self, draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor, generator: torch.Generator | None
    ) -> Verdict: ...

    def outcome_distribution(
        self, draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor
    ) -> dict[tuple[int, int], float]: ...


_RULES: dict[str, Callable[[], VerificationRule]] = {}


def register_rule(name: str):
    """Class decorator: make a rule constructible by name from configs."""

    def wrap(cls):
        cls.name = name
        _RULES[name] = cls
        return cls

    return wrap


def available_rules() -> list[str]:
    _load_builtin_rules()
    return sorted(_RULES)


def get_rule(name: str) -> VerificationRule:
    _load_builtin_rules()
    if name not in _RULES:
        raise ValueError(f"unknown verifier {name!r}; valid verifiers: {', '.join(sorted(_RULES))}")
    return _RULES[name]()


def _load_builtin_rules() -> None:
    # Imported lazily so that a rule module may import this one.
    from hsd_bench.verify import tokenwise  # noqa: F401

    for optional in ("block", "hsd"):
        try:
            __import__(f"hsd_bench.verify.{optional}")
        except ModuleNotFoundError as err:  # a rule still being written
            if err.name != f"hsd_bench.verify.{optional}":
                raise


def greedy_accept(draft: torch.Tensor, p_argmax: torch.Tensor) -> tuple[int, list[int]]:
    """Greedy decoding: keep the longest prefix of ``draft`` equal to the argmax,
    then the argmax; returns ``(accepted, committed tokens)`` as host values.

    ``p_argmax`` is ``LongTensor[k + 1]``. Every lossless rule reduces to this
    when p and q are one-hot, and it is what makes greedy output equal to
    autoregressive greedy output token for token. Both tensors come back to
    the host in one copy (the round's one host sync) and are compared there:
    a handful of integers, cheaper than the five small device kernels a
    device-side prefix match launches, and the engine gets the committed
    tokens for its stop checks without a second sync.
    """
    return greedy_accept_rows(draft, [draft.shape[0]], p_argmax)[0]


def greedy_accept_rows(drafts: torch.Tensor, lengths: list[int], p_argmax: torch.Tensor) -> list[tuple[int, list[int]]]:
    """:func:`greedy_accept` for several sequences at once, in one host copy.

    ``drafts`` packs the sequences' drafts of ``lengths[i]`` tokens in order;
    ``p_argmax`` packs the target's ``lengths[i] + 1`` argmax tokens of every
    sequence in order.
    """
    return greedy_accept_values(greedy_verdict_inputs(drafts, lengths, p_argmax).tolist(), lengths)


def greedy_verdict_inputs(drafts: torch.Tensor, lengths: list[int], p_argmax: torch.Tensor,
                          out: torch.Tensor | None = None) -> torch.Tensor:
    """Drafts and target argmaxes packed into one tensor, so that one copy brings a verdict to the host.

    Split from :func:`greedy_accept_values` so the engine can queue that copy
    behind the verification and read it later (``draft_stop.HostValue``)
    while the device goes on with work queued after it (the look-ahead draft);
    ``out``, a buffer of that size, receives them (a backend's static verdict input).
    """
    total = sum(lengths)
    if drafts.shape[0] != total or p_argmax.shape[0] != total + len(lengths):
        raise ValueError(
            f"greedy verification of drafts of {list(lengths)} tokens needs {total} draft and "
            f"{total + len(lengths)} target tokens, got {drafts.shape[0]} and {p_argmax.shape[0]}"
        )
    if not total:
        return p_argmax.view(-1) if out is None else out.copy_(p_argmax.view(-1))
    # Reshaped or converted only where needed: each view is a dispatcher call on the host, and a
    # verdict is packed on the path the device waits on (one-dimensional, of one dtype, as a rule).
    if p_argmax.dtype != drafts.dtype:
        p_argmax = p_argmax.to(drafts.dtype)
    parts = (drafts if drafts.dim() == 1 else drafts.view(-1), p_argmax if p_argmax.dim() == 1 else p_argmax.view(-1))
    return torch.cat(parts) if out is None else torch.cat(parts, out=out)


def greedy_accept_values(values: list[int], lengths: list[int]) -> list[tuple[int, list[int]]]:
    """Per sequence ``(accepted, committed tokens)`` from :func:`greedy_verdict_inputs` as host values."""
    ks = list(lengths)
    out, d_off, t_off = [], 0, sum(ks)
    for k in ks:
        drafted, target = values[d_off : d_off + k], values[t_off : t_off + k + 1]
        accepted = 0
        while accepted < k and drafted[accepted] == target[accepted]:
            accepted += 1
        out.append((accepted, drafted[:accepted] + [target[accepted]]))
        d_off, t_off = d_off + k, t_off + k + 1
    return out


def greedy_accepted_on_device(draft: torch.Tensor, p_argmax: torch.Tensor,
                              limit: torch.Tensor | None = None) -> torch.Tensor:
    """How many of ``draft`` (``LongTensor[k]``) greedy verification keeps, as a one-element
    device tensor: the count :func:`greedy_accept_values` computes on the host, for device
    work queued before the host has the verdict (the engine's look-ahead draft). With ``limit``
    (a one-element device tensor), only the first ``limit`` of ``draft`` are drafts: the count
    stops there.

    Why the first stop rather than a running product of matches: it is one reduction, which
    ``torch.compile`` fuses with the work around it into a single kernel inside a captured step
    (``models/native/verdicts.py``), where a scan and a sum were two."""
    k = draft.shape[0]
    if k == 0:
        return torch.zeros(1, dtype=torch.long, device=draft.device)
    rows = torch.arange(k, device=draft.device)
    stop = draft != p_argmax[:k]
    if limit is not None:
        stop = stop | (rows >= limit)
    return torch.where(stop, rows, k).amin().view(1)


def greedy_verify(draft: torch.Tensor, p_argmax: torch.Tensor) -> Verdict:
    """:func:`greedy_accept` as a :class:`Verdict` (accepted count, next token)."""
    accepted, committed = greedy_accept(draft, p_argmax)
    return Verdict(accepted, committed[-1])
