"""What the joint rules (``block``, ``hsd``, ``hsd_official``) have in common.

All three decide a verdict the same way once two tables are known:

* ``h``    -- ``[k + 1]``: ``h[i]`` is the probability that the test "keep
  the prefix of length i" passes (``h[k]`` keeps the whole draft; ``h[0]`` is
  never read: the empty prefix is what remains when every test fails);
* ``rows`` -- ``[k + 1, V]``, unnormalised: the distribution of the token that
  follows a kept prefix of length i (``rows[k] = p[k]``, the bonus).

The tests are independent; the verdict keeps the *longest* prefix whose test
passed (a backward scan from the end of the draft, which is how both Sun et
al. and Zhou et al. write it) and draws one token from that prefix's row.
Keeping this in one place means the rules differ only in how they compute
``h`` and ``rows``, which is exactly where the papers differ.

``sample_backscan`` runs on the tensors' device with one host sync (the
returned ints); ``backscan_outcomes`` gives the exact law in float64.
"""

from __future__ import annotations

import torch

from hsd_bench.sampling import draw, uniforms
from hsd_bench.verify import Verdict


def check_inputs(draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> None:
    """Shape and dtype checks (no device sync): clear errors instead of index errors."""
    if not isinstance(draft, torch.Tensor) or draft.dim() != 1:
        raise ValueError(f"draft must be a 1-D LongTensor [k]; got {_describe(draft)}")
    if draft.dtype.is_floating_point or draft.dtype == torch.bool:
        raise ValueError(f"draft must hold integer token ids; got dtype {draft.dtype}")
    k = draft.shape[0]
    if not isinstance(q, torch.Tensor) or q.dim() != 2:
        raise ValueError(f"q must be a 2-D tensor [k, V] = [{k}, V]; got {_describe(q)}")
    if not isinstance(p, torch.Tensor) or p.dim() != 2:
        raise ValueError(f"p must be a 2-D tensor [k + 1, V] = [{k + 1}, V]; got {_describe(p)}")
    if q.shape[0] != k:
        raise ValueError(f"q has {q.shape[0]} rows but the draft has k={k} tokens; q must be [k, V]")
    if p.shape[0] != k + 1:
        raise ValueError(
            f"p has {p.shape[0]} rows but the draft has k={k} tokens; p must be [k + 1, V] "
            "(one row per draft position plus the bonus position)"
        )
    if p.shape[1] < 1 or q.shape[1] != p.shape[1]:
        raise ValueError(f"q and p must share a vocabulary size V >= 1; got q {tuple(q.shape)}, p {tuple(p.shape)}")
    if not (q.dtype.is_floating_point and p.dtype.is_floating_point):
        raise ValueError(f"q and p must be floating-point probabilities; got {q.dtype}, {p.dtype}")


def check_values(draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor, atol: float = 1e-4) -> None:
    """Value checks for the exact path (syncs; not used on the hot path).

    A draft token with q(x) = 0 cannot have been drawn from q, and every
    rule's guarantee is conditional on the draft being drawn from q.
    """
    vocab = p.shape[1]
    if draft.numel() and (int(draft.min()) < 0 or int(draft.max()) >= vocab):
        raise ValueError(f"draft token ids must be in [0, {vocab - 1}]; got {draft.tolist()}")
    for name, t in (("q", q), ("p", p)):
        if t.numel() == 0:
            continue
        if bool((t < 0).any()) or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must hold finite non-negative probabilities")
        sums = t.double().sum(-1)
        if bool(((sums - 1).abs() > atol).any()):
            raise ValueError(f"every row of {name} must sum to 1 (within {atol}); row sums {sums.tolist()}")
    if draft.numel():
        q_x = q[torch.arange(draft.shape[0]), draft]
        if bool((q_x <= 0).any()):
            raise ValueError(
                f"draft tokens must have q > 0 (a draft is a sample from q); q(draft) = {q_x.tolist()}"
            )


def work_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64; half/bfloat16 are lifted to float32 for the ratios."""
    return torch.promote_types(t.dtype, torch.float32)


def draft_ratios(draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``p`` and ``q`` in the working dtype, and ``p_i(X_i) / q_i(X_i)`` at every draft
    position (``[k]``, empty for an empty draft): the per-token likelihood ratio the
    joint rules build their tests from.

    ``q > 0`` on a draft sampled from ``q``; a draft token with q(x) = 0 (sent by a
    broken lower level) gets ``p(x) / tiny``: 0 where p(x) = 0, so a prefix holding a
    token the verifier forbids has weight 0 and is never kept, and a huge finite
    ratio (the +infinity of ``tokenwise``'s ``u * q < p``) where p(x) > 0. Finite on
    purpose: 0 * inf and inf - inf would make NaN tests downstream.
    """
    dtype = work_dtype(p)
    p, q = p.to(dtype), q.to(dtype)
    col = draft[:, None]
    q_x = q.gather(1, col)[:, 0].clamp_min(torch.finfo(dtype).tiny)
    return p, q, p[: draft.shape[0]].gather(1, col)[:, 0] / q_x


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """min(1, num / den), and 0 where den == 0 (then num == 0 too).

    A zero denominator means the prefix's weight is 1 and the next position's
    p equals q: nothing is left to resample there, and (docs/methods.md) a
    later test then passes with probability 1, so the value chosen here never
    changes the law; 0 keeps the sampler away from an empty residual.
    """
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).clamp(0, 1)


def sample_backscan(
    h: torch.Tensor, rows: torch.Tensor, p: torch.Tensor, generator: torch.Generator | None
) -> Verdict:
    """Draw a verdict from the tables: independent tests, longest kept prefix, one token.

    Every step stays on the tensors' device; the only host sync is reading
    the two ints of the verdict. ``h[0]`` is never read: the empty prefix is
    the default when every other test fails.
    """
    k1 = h.shape[0]
    u = uniforms(k1 + 1, generator, h.device)  # k1 tests (u[0] unused), then the token draw
    passed = u[:k1] < h  # strict: a test with h = 0 never passes
    tau = (passed * torch.arange(k1, device=h.device)).max()
    row = rows[tau]
    # A row that rounded to all zeros (a degenerate branch reached through
    # rounding) falls back to the target's row, as tokenwise.residual does.
    row = torch.where(row.sum() > 0, row, p[tau].to(row.dtype))
    token = draw(row, u[k1:])[0]
    accepted, tok = torch.stack([tau, token]).tolist()
    return Verdict(accepted, tok)


def stop_probabilities(h: torch.Tensor) -> list[float]:
    """P(longest kept prefix = i) = h[i] * prod_{j > i} (1 - h[j]), exactly in float64."""
    hs = [float(x) for x in h.double().cpu().tolist()]
    hs[0] = 1.0
    out = [0.0] * len(hs)
    survive = 1.0  # P(every test after i failed)
    for i in range(len(hs) - 1, -1, -1):
        out[i] = survive * hs[i]
        survive *= 1.0 - hs[i]
    return out


def backscan_outcomes(h: torch.Tensor, rows: torch.Tensor, p: torch.Tensor) -> dict[tuple[int, int], float]:
    """Exact probability of every ``(accepted, token)`` outcome of :func:`sample_backscan`."""
    rows = rows.double().cpu()
    p = p.double().cpu()
    out: dict[tuple[int, int], float] = {}
    for i, stop in enumerate(stop_probabilities(h)):
        if stop <= 0:
            continue
        row = rows[i] if float(rows[i].sum()) > 0 else p[i]
        row = row / row.sum()
        for y, prob in enumerate(row.tolist()):
            if prob > 0:
                out[(i, y)] = out.get((i, y), 0.0) + stop * prob
    return out


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__
