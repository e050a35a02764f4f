"""sampling.warp against distributions worked out by hand (not against warp itself).

Every level warps its logits with these settings, so "lossless" means "as
autoregressive sampling from this warp": a warp that forgot top-k or top-p
would make every method agree with a wrong target.
"""

from __future__ import annotations

import math

import pytest
import torch

from hsd_bench.sampling import DecodingConfig, warp

P4 = (0.1, 0.2, 0.3, 0.4)


def _warp(probs, **settings) -> list[float]:
    """warp of log-probabilities (logits whose softmax is ``probs``), as a list."""
    logits = torch.tensor([[math.log(x) if x > 0 else -math.inf for x in probs]])
    return warp(logits, DecodingConfig(**{"temperature": 1.0, **settings}))[0].tolist()


def test_temperature_only():
    assert _warp(P4) == pytest.approx(P4, abs=1e-7)
    # T = 1/2 squares the probabilities: (1, 4, 9, 16) / 30
    assert _warp(P4, temperature=0.5) == pytest.approx([1 / 30, 4 / 30, 9 / 30, 16 / 30], abs=1e-7)
    # T = 2 takes square roots: sqrt(p) / sum sqrt(p)
    roots = [math.sqrt(x) for x in P4]
    assert _warp(P4, temperature=2.0) == pytest.approx([r / sum(roots) for r in roots], abs=1e-7)


@pytest.mark.parametrize(
    "top_k, expected",
    [
        (1, [0, 0, 0, 1]),
        (2, [0, 0, 3 / 7, 4 / 7]),
        (3, [0, 2 / 9, 3 / 9, 4 / 9]),
        (4, list(P4)),  # k = V: nothing cut
        (9, list(P4)),
        (0, list(P4)),  # 0 = off
    ],
)
def test_top_k(top_k, expected):
    assert _warp(P4, top_k=top_k) == pytest.approx(expected, abs=1e-7)


def test_top_k_keeps_ties():
    assert _warp((0.4, 0.4, 0.2), top_k=1) == pytest.approx([0.5, 0.5, 0.0], abs=1e-7)


@pytest.mark.parametrize(
    "top_p, expected",
    [
        # sorted 0.4, 0.3, 0.2, 0.1; a token is cut once the tokens above it hold >= top_p
        (0.35, [0, 0, 0, 1]),  # above 0.3: 0.4 >= 0.35
        (0.5, [0, 0, 3 / 7, 4 / 7]),  # above 0.2: 0.7 >= 0.5
        (0.75, [0, 2 / 9, 3 / 9, 4 / 9]),  # above 0.1: 0.9 >= 0.75
        (0.95, list(P4)),
        (1.0, list(P4)),  # 1 = off
    ],
)
def test_top_p(top_p, expected):
    assert _warp(P4, top_p=top_p) == pytest.approx(expected, abs=1e-7)


def test_top_k_then_top_p():
    """top-k first (0.2, 0.3, 0.4 -> 2/9, 3/9, 4/9), then top-p on what is left (0.6: above 2/9 is 7/9)."""
    assert _warp(P4, top_k=3, top_p=0.6) == pytest.approx([0, 0, 3 / 7, 4 / 7], abs=1e-7)


def test_temperature_before_the_cuts():
    """At T = 1/2 the probabilities are (1, 4, 9, 16) / 30. Top-p 0.5: above 9/30 is 16/30 >= 0.5,
    so only the last token stays (at T = 1 two would). Top-p 0.6: above 4/30 is 25/30, so
    (9, 16) / 25 -- the two tokens T = 1 keeps, renormalised at T = 1/2."""
    assert _warp(P4, temperature=0.5, top_p=0.5) == pytest.approx([0, 0, 0, 1], abs=1e-7)
    assert _warp(P4, temperature=0.5, top_p=0.6) == pytest.approx([0, 0, 9 / 25, 16 / 25], abs=1e-7)


def test_rows_are_warped_independently():
    logits = torch.tensor([[math.log(x) for x in P4], [math.log(x) for x in reversed(P4)]])
    out = warp(logits, DecodingConfig(temperature=1.0, top_k=2)).tolist()
    assert out[0] == pytest.approx([0, 0, 3 / 7, 4 / 7], abs=1e-7)
    assert out[1] == pytest.approx([4 / 7, 3 / 7, 0, 0], abs=1e-7)
