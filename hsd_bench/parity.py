"""Parity with autoregressive decoding that explains itself.

Every method is lossless, so under greedy decoding its output must equal
AR's token for token. In float32 it does. In bfloat16/float16 it may not: a
verifier scoring k+1 positions at once runs other kernels than AR's one
position at a time, the logits are rounded to the dtype, and where the
target's top two tokens are (nearly) tied, the two paths can pick different
ones. That is a property of the arithmetic, not of the method; a reader must
be able to tell it from a bug.

So for every sample whose output differs from AR's, :func:`explain` finds
the first differing position ``j``, recomputes the target's logits there
(the full model, in the dtype the run uses, on the prompt plus AR's first
``j`` tokens) and classifies the divergence:

* ``near_tie`` -- both tokens, AR's and the method's, are within
  :func:`tie_tolerance` of the target's top logit at ``j`` (so its top-1/top-2
  margin is too): a few units in the last place of the top logit, the logits
  themselves being rounded to the dtype;
* ``mismatch`` -- anything else: the target clearly preferred one token, and
  the method committed another. For a lossless method this is a bug.

The tolerance is a few units in the last place of the logits, not of everything
that led to them: a deep model's hidden states carry their own rounding over
many layers and positions, and two bf16 computations of the same token (AR as
one step at a time and AR in rounds, say) can part by more. So where the caller
can afford a float32 copy of the target (the benchmark, on models that fit), a
``mismatch`` also carries a float32 second opinion (``reference_logits``): the
two tokens' float32 gap, and how far the run dtype's own logits of those two
tokens are from float32 there. A gap within that error is the arithmetic's; a
gap far beyond it is a preference the method overrode. It is evidence beside the
class, which it does not change: ``parity_unexplained`` counts by the rule above.

A run reports ``parity_exact`` (share of samples equal to AR), and
``parity_near_tie`` / ``parity_unexplained`` (counts), and
``parity_unexplained`` must be 0 for a lossless method.
"""

from __future__ import annotations

from typing import Callable

import torch

# Margins within this many parts of max(1, |top-1 logit|) are ties of the arithmetic: 4 units in the
# last place for bfloat16 (2^-7 spacing) and float16 (2^-10); float32 differs by reordered sums, not by
# the rounding of the logits, so its tolerance is far below any real preference.
TIE_TOLERANCE = {torch.bfloat16: 2.0**-5, torch.float16: 2.0**-8, torch.float32: 2.0**-16}


def tie_tolerance(dtype: torch.dtype, top1: float) -> float:
    return TIE_TOLERANCE.get(dtype, 2.0**-5) * max(1.0, abs(top1))


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first position where two outputs differ (``None`` if equal)."""
    for j, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return j
    return None if len(a) == len(b) else min(len(a), len(b))


@torch.no_grad()
def target_logits(model, ids: list[int]) -> torch.Tensor:
    """The full target's float32 logits ``[V]`` after ``ids`` (one pass, caches reset before and after)."""
    model.reset()
    try:
        h = model.run_layers(model.embed(torch.tensor(ids, device=model.device)), 0, model.num_layers, 0)
        return model.logits(h[:, -1:])[-1].float()
    finally:
        model.reset()


def explain(model, prompt_ids: list[int], ar_ids: list[int], method_ids: list[int],
            reference_logits: Callable[[list[int]], torch.Tensor] | None = None) -> dict | None:
    """Why ``method_ids`` differs from ``ar_ids`` (``None`` when equal); see the module doc.
    ``reference_logits(ids)``: the same target's float32 logits ``[V]`` after ``ids``, asked for
    a ``mismatch`` only (the float32 second opinion)."""
    j = first_difference(ar_ids, method_ids)
    if j is None:
        return None
    prefix = list(prompt_ids) + list(ar_ids[:j])  # the target's context at the first differing position
    logits = target_logits(model, prefix)
    top = torch.topk(logits, 2)
    top1, top2 = float(top.values[0]), float(top.values[1])
    margin = top1 - top2
    tol = tie_tolerance(model.dtype, top1)
    ar_tok = ar_ids[j] if j < len(ar_ids) else None
    method_tok = method_ids[j] if j < len(method_ids) else None
    both = ar_tok is not None and method_tok is not None
    gap = float(logits[ar_tok]) - float(logits[method_tok]) if both else None
    # how far the worse of the two tokens is below the target's best
    behind = top1 - min(float(logits[ar_tok]), float(logits[method_tok])) if both else float("inf")
    out = {
        "position": j,
        "ar_token": ar_tok,
        "method_token": method_tok,
        "top1_logit": top1,
        "margin": margin,  # target's top-1 minus top-2 logit at the first differing position
        "ar_minus_method_logit": gap,
        "tolerance": tol,
        "dtype": str(model.dtype).replace("torch.", ""),
        "class": "near_tie" if behind <= tol else "mismatch",
    }
    if out["class"] == "mismatch" and both and reference_logits is not None:
        ref = reference_logits(prefix).float()
        out["float32"] = {
            "ar_minus_method_logit": float(ref[ar_tok]) - float(ref[method_tok]),
            "top1_token": int(ref.argmax()),
            # the run dtype's own error at the two tokens: |its logit - float32's|, the larger
            "run_dtype_error": max(abs(float(logits[t]) - float(ref[t])) for t in (ar_tok, method_tok)),
        }
    return out


def classify(model, prompts: list[list[int]], ar_outputs: list[list[int]], outputs: list[list[int]],
             reference_logits: Callable[[list[int]], torch.Tensor] | None = None) -> dict:
    """:func:`explain` over paired outputs (the benchmark's rows): how many samples equal AR,
    part from it at a near tie, or are unexplained, and each divergence. Runs the model (one
    pass per differing sample) and resets its caches: call it between decodes, not inside one."""
    exact, divergences = 0, []
    for prompt, ar_ids, ids in zip(prompts, ar_outputs, outputs):
        why = explain(model, prompt, ar_ids, ids, reference_logits)
        if why is None:
            exact += 1
        else:
            divergences.append(why)
    near = sum(d["class"] == "near_tie" for d in divergences)
    return {"exact": exact, "near_tie": near, "unexplained": len(divergences) - near, "divergences": divergences}
