"""Token-wise speculative sampling (Leviathan et al. 2023; Chen et al. 2023).

Accept draft token x_j with probability min(1, p_j(x_j) / q_j(x_j)); at the
first rejection draw from normalize(max(p_j - q_j, 0)); if all pass, draw the
bonus token from p_k. Lossless for any draft drawn autoregressively from q,
whatever its length -- including a length chosen by a stopping rule, which is
what a hierarchical level produces.

The test is ``u * q < p`` with a float64 uniform ``u`` in [0, 1): strict, so
a token the verifier gives zero mass (p(x) = 0, e.g. cut by top-k/top-p) is
never accepted, whatever q(x) is; and q(x) = 0 < p(x) -- a draft token its
own distribution ruled out, which a correct lower level never sends -- counts
as a ratio of +infinity (accepted), the convention every rule shares
(``backscan.draft_ratios``).
"""

from __future__ import annotations

import torch

from hsd_bench.sampling import draw, uniforms
from hsd_bench.verify import Verdict, register_rule
from hsd_bench.verify.backscan import check_inputs, check_values


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """max(p - q, 0), unnormalised; p itself where that is all zeros (p == q numerically).

    Positive only where p > q >= 0, so a residual token is always in p's support.
    """
    r = (p - q).clamp_min(0)
    return torch.where(r.sum() > 0, r, p)


@register_rule("tokenwise")
class TokenwiseRule:
    lossless = True
    fixed_length = False

    def __call__(self, draft, q, p, generator=None) -> Verdict:
        check_inputs(draft, q, p)
        k = draft.shape[0]
        u = uniforms(k + 1, generator, p.device)  # k tests, then the token draw
        if k:
            idx = torch.arange(k, device=draft.device)
            p_x = p[idx, draft]
            q_x = q[idx, draft]
            # accept iff u * q < p  (u < p / q without dividing by zero)
            rejected = (u[:k] * q_x >= p_x).nonzero()
            if rejected.numel():
                j = int(rejected[0, 0])
                return Verdict(j, int(draw(residual(p[j], q[j]), u[k:])))
        return Verdict(k, int(draw(p[k], u[k:])))

    def outcome_distribution(self, draft, q, p) -> dict[tuple[int, int], float]:
        check_inputs(draft, q, p)
        check_values(draft, q, p)
        p, q = p.double().cpu(), q.double().cpu()
        out: dict[tuple[int, int], float] = {}
        reach = 1.0  # probability that positions < j were all accepted
        for j in range(draft.shape[0]):
            x = int(draft[j])
            a = min(1.0, float(p[j, x]) / float(q[j, x]))
            res = residual(p[j], q[j])
            res = res / res.sum()
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
