"""Block verification (Sun, Mendlovic, Leviathan, Aharoni, Ro, Beirami, Suresh;
"Block Verification Accelerates Speculative Decoding", arXiv 2403.10444, ICLR 2025).

Sun et al.'s algorithm, written with their quantities (1-based i, prefix X^i
of the draft, M_b the target, M_s the drafter):

    p_0 = 1,   p_i = min(1, p_{i-1} * M_b(X_i | X^{i-1}) / M_s(X_i | X^{i-1}))
    h_i = sum_x max(p_i M_b(x | X^i) - M_s(x | X^i), 0)
          / (sum_x max(p_i M_b(x | X^i) - M_s(x | X^i), 0) + 1 - p_i)     for i < gamma
    h_gamma = p_gamma
    tau = the largest i with eta_i <= h_i (eta_i ~ U(0, 1) independent), tau = 0 if none
    token: from M_b(. | X^gamma) if tau = gamma, else from
           normalize(max(p_tau M_b(. | X^tau) - M_s(. | X^tau), 0))

Sun et al. prove it lossless for a draft of exactly gamma tokens drawn
autoregressively from M_s, and optimal in expected accepted tokens among
lossless rules that see only the on-path conditionals. It stays lossless when
the draft's length is a stopping time of the drafter (stop after a prefix
with a probability that may depend on the prefix, never on later draft
tokens) -- the situation of a draft produced by a lower level of a hierarchy.
The proof is a short backward induction (docs/methods.md, "Block verification
with variable-length drafts"); tests/test_fidelity.py checks it exactly. Hence
``fixed_length = False``: the engine need not trim a lower level's output.

Why p_i is written as a loop over gamma here: the ``hsd`` rule computes the
same weight in closed form (a running maximum of joint ratios); keeping the
two derivations separate makes their agreement in the tests a real check.
"""

from __future__ import annotations

import torch

from hsd_bench.verify import Verdict, register_rule
from hsd_bench.verify.backscan import (
    backscan_outcomes,
    check_inputs,
    check_values,
    draft_ratios,
    safe_ratio,
    sample_backscan,
)


def block_tables(draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sun et al.'s tests and residual rows: ``(h [k + 1], rows [k + 1, V])``.

    ``h[i]`` for 0 < i < k is their h_i, ``h[k] = p_k``; ``rows[i]`` is
    max(p_i M_b(. | X^i) - M_s(. | X^i), 0) and ``rows[k]`` the bonus row.
    """
    k = draft.shape[0]
    p, q, ratio = draft_ratios(draft, q, p)
    if k == 0:  # nothing to verify: the bonus token
        return torch.ones(1, dtype=p.dtype, device=p.device), p.clone()
    weights = [torch.ones((), dtype=p.dtype, device=p.device)]
    for i in range(k):  # p_i = min(1, p_{i-1} * M_b(X_i | X^{i-1}) / M_s(X_i | X^{i-1}))
        weights.append((weights[-1] * ratio[i]).clamp_max(1))
    w = torch.stack(weights)  # [k + 1]
    residual = (w[:k, None] * p[:k] - q).clamp_min(0)  # [k, V]
    mass = residual.sum(-1)
    h = safe_ratio(mass, mass + (1 - w[:k]))  # h[0] is never read (tau = 0 is the default)
    return torch.cat([h, w[k:]]), torch.cat([residual, p[k:]])


@register_rule("block")
class BlockRule:
    lossless = True
    fixed_length = False  # proven: docs/methods.md

    def __call__(self, draft, q, p, generator=None) -> Verdict:
        check_inputs(draft, q, p)
        h, rows = block_tables(draft, q, p)
        return sample_backscan(h, rows, p, generator)

    def outcome_distribution(self, draft, q, p) -> dict[tuple[int, int], float]:
        check_inputs(draft, q, p)
        check_values(draft, q, p)
        draft, q, p = draft.cpu(), q.double().cpu(), p.double().cpu()
        h, rows = block_tables(draft, q, p)
        return backscan_outcomes(h, rows, p)
