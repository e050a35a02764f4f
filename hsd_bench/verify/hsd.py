"""Hierarchical Speculative Decoding verification (Zhou et al., "Overcoming Joint
Intractability with Lossless Hierarchical Speculative Decoding", arXiv 2601.05724,
ICLR 2026; code: github.com/ZhouYuxuanYX/Hierarchical-Speculative-Decoding).

Two rules, because the paper and its code differ in one line that decides
losslessness (details and references: docs/methods.md, "Verification rules"):

``hsd`` -- the paper's Algorithm 2 ("HSD", capped branch resampling), with
its Definitions 4-6 and Eqs. (16)-(20). With r(X_{1:t}) = p(X_{1:t}) / q(X_{1:t})
the joint ratio of the first t draft tokens:

    m(X_{1:t})  = argmax_{1 <= i < t} r(X_{1:i})   (0 if that max is <= 1)
    r*(X_{1:t}) = r(X_{1:t}) / max(1, max_{i < t} r(X_{1:i}))          (Def. 5)
    D*(p, q | X_{1:t}) = sum_x max(q(X_{1:t}, x) (r*(X_{1:t}, x) - 1), 0)  (Def. 6)
    D*(q, p | X_{1:t}) = sum_x max(q(X_{1:t}, x) (1 - r*(X_{1:t}, x)), 0)
    h_t = D*(p, q | X_{1:t}) / D*(q, p | X_{1:t})  for t < gamma,
    h_gamma = min(1, r*(X_{1:gamma}))                                   (Eq. 19)
    scan t = gamma .. 1, keep the first X_{1:t} whose test passes (tau = 0 if none),
    then one token from P*_res(. | X_{1:tau}) (Eq. 20), or the bonus from p if tau = gamma.

``hsd_official`` -- what the official code runs for the paper's experiments
(``transformers/generation/utils.py::_speculative_sampling``, ``backward=True``):
everything above, except the whole-draft test uses the *uncapped* joint ratio,
``h_gamma = min(1, r(X_{1:gamma}))``. That accepts the full draft more often and
is lossy: the exact fidelity test finds it on Sun et al.'s two-token toy case
(``lossless = False``; a documented finding, not a bug of this port).

Finding, checked exactly by tests/test_fidelity.py: q(X_{1:t}) factors out of
D*, and r(X_{1:t}) / max(1, max_{i <= t} r(X_{1:i})) obeys Sun et al.'s recursion
p_t = min(1, p_{t-1} p(x_t) / q(x_t)); so ``hsd`` has the same outcome law as
``block``, draft by draft. The paper's Theorem 7 (strictly more accepted
tokens than block verification for gamma > 1) does not hold for Algorithm 2.

Computation is in log space (joint probabilities of long drafts underflow);
q(X_{1:t}) is divided out of D*(p, q) and D*(q, p), which leaves h_t and P*_res
unchanged, and D* is summed in its difference form (q(X_{1:t}, x) r* - q(X_{1:t}, x))_+,
which stays defined where q_t(x) = 0 < p_t(x) (r* = infinity). The paper proves ``hsd`` for a fixed gamma; as it equals block
verification it inherits block's proof for variable-length drafts
(``fixed_length = False``). ``hsd_official`` is lossy either way; it keeps the
same flag because the official code, too, verifies whatever length the drafter
returned (e.g. a draft cut short by EOS).
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


def hsd_tables(
    draft: torch.Tensor, q: torch.Tensor, p: torch.Tensor, cap_final: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The branch tests and capped residual rows: ``(h [k + 1], rows [k + 1, V])``.

    ``h[t]`` for 0 < t < k is Eq. (19)'s h_t, ``h[k]`` the whole-draft test;
    ``rows[t]`` is Eq. (20)'s P*_res(. | X_{1:t}) unnormalised (divided by
    q(X_{1:t})) and ``rows[k]`` the bonus row. ``cap_final=True`` is the
    paper (h_gamma uses r*); ``False`` is the official code (raw r).
    """
    k = draft.shape[0]
    p, q, token_ratio = draft_ratios(draft, q, p)
    if k == 0:  # nothing to verify: the bonus token
        return torch.ones(1, dtype=p.dtype, device=p.device), p.clone()
    # log r(X_{1:t}) for t = 0..k; the empty prefix has r = 1.
    log_r = torch.nn.functional.pad(token_ratio.log().cumsum(0), (1, 0))
    # log max(1, max_{i <= t} r(X_{1:i})); the empty prefix supplies the 1.
    log_cap = log_r.cummax(0).values
    # r*(X_{1:t}, x) = cap_weight[t] * p_t(x) / q_t(x)  (Def. 5, branch after X_{1:t})
    cap_weight = (log_r[:k] - log_cap[:k]).exp()
    diff = cap_weight[:, None] * p[:k] - q  # q(X_{1:t}) (r*(X_{1:t}, x) - 1) q_t(x) / q(X_{1:t})
    excess = diff.clamp_min(0)  # Def. 6, D*(p, q | X_{1:t}) per token
    excess_mass = excess.sum(-1)
    deficit_mass = excess_mass - diff.sum(-1)  # D*(q, p | X_{1:t}) = sum of (-diff)_+
    h_branch = safe_ratio(excess_mass, deficit_mass)  # Eq. (19), t < gamma; h_branch[0] unused
    if cap_final:
        log_last = log_r[k] - log_cap[k - 1]  # log r*(X_{1:gamma}): cap over i < gamma (Def. 4)
    else:
        log_last = log_r[k]  # log r(X_{1:gamma}): the official code's uncapped ratio
    h_last = log_last.exp().clamp_max(1).reshape(1)
    return torch.cat([h_branch, h_last]), torch.cat([excess, p[k:]])


class _HSDBase:
    fixed_length = False
    cap_final = True

    def __call__(self, draft, q, p, generator=None) -> Verdict:
        check_inputs(draft, q, p)
        h, rows = hsd_tables(draft, q, p, cap_final=self.cap_final)
        return sample_backscan(h, rows, p, generator)

    def outcome_distribution(self, draft, q, p) -> dict[tuple[int, int], float]:
        check_inputs(draft, q, p)
        check_values(draft, q, p)
        draft, q, p = draft.cpu(), q.double().cpu(), p.double().cpu()
        h, rows = hsd_tables(draft, q, p, cap_final=self.cap_final)
        return backscan_outcomes(h, rows, p)


@register_rule("hsd")
class HSDRule(_HSDBase):
    """The paper's Algorithm 2 (capped branch resampling). Lossless."""

    lossless = True
    cap_final = True


@register_rule("hsd_official")
class HSDOfficialRule(_HSDBase):
    """The official code's variant: uncapped whole-draft acceptance. Lossy (see module doc)."""

    lossless = False
    cap_final = False
