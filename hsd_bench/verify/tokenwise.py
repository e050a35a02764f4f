"""Token-wise speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

Accept draft token x_j with probability min(1, p_j(x_j) / q_j(x_j)); at the
first rejection draw from normalize(max(p_j - q_j, 0)); if all pass, draw the
bonus token from p_k. Lossless for any draft drawn autoregressively from q,
whatever its length -- including a length chosen by a stopping rule, which is
what a hierarchical level produces.
"""

from __future__ import annotations

import torch

from hsd_bench.verify import Verdict, register_rule
from hsd_bench.verify.backscan import check_inputs


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """normalize(max(p - q, 0)); falls back to p when p == q numerically."""
    r = (p - q).clamp_min(0)
    total = r.sum()
    return r / total if total > 0 else p


@register_rule("tokenwise")
class TokenwiseRule:
    lossless = True
    fixed_length = False

    def __call__(self, draft, q, p, generator=None) -> Verdict:
        check_inputs(draft, q, p)
        k = draft.shape[0]
        if k:
            idx = torch.arange(k, device=draft.device)
            p_x = p[idx, draft]
            q_x = q[idx, draft]
            u = torch.rand(k, generator=generator, device=p.device)
            # accept iff u * q <= p  (== u <= p/q without dividing by zero)
            rejected = (u * q_x > p_x).nonzero()
            if rejected.numel():
                j = int(rejected[0, 0])
                token = torch.multinomial(residual(p[j], q[j]), 1, generator=generator)
                return Verdict(j, int(token))
        token = torch.multinomial(p[k], 1, generator=generator)
        return Verdict(k, int(token))

    def outcome_distribution(self, draft, q, p) -> dict[tuple[int, int], float]:
        out: dict[tuple[int, int], float] = {}
        reach = 1.0  # probability that positions < j were all accepted
        for j in range(draft.shape[0]):
            x = int(draft[j])
            a = min(1.0, float(p[j, x]) / float(q[j, x])) if float(q[j, x]) > 0 else 1.0
            res = residual(p[j].double(), q[j].double())
            for y in range(p.shape[1]):
                prob = reach * (1 - a) * float(res[y])
                if prob > 0:
                    out[(j, y)] = out.get((j, y), 0.0) + prob
            reach *= a
        k = draft.shape[0]
        for y in range(p.shape[1]):
            prob = reach * float(p[k, y])
            if prob > 0:
                out[(k, y)] = out.get((k, y), 0.0) + prob
        return out
