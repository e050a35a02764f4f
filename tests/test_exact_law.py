"""The exact integrator (hsd_bench/exact_law.py) and the sampler it integrates.

The fidelity tests trust two things checked here: that CPU ``torch.rand``
really is the grid k * 2^-b the integrator enumerates, and that the integrator
returns exact laws -- including a mass of one grid point, which is how a
zero-mass leak looks.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from hsd_bench.exact_law import IntegrationError, execution_law, uniform_bits
from hsd_bench.sampling import draw, sample, uniforms


@pytest.mark.parametrize("dtype, bits", [(torch.float64, 53), (torch.float32, 24)])
def test_cpu_uniforms_lie_on_the_grid(dtype, bits):
    """What the integrator assumes about the generator: k * 2^-b with k in [0, 2^b)."""
    assert uniform_bits(dtype) == bits
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=dtype).double()
    k = u * 2.0**bits
    assert bool((k == k.floor()).all()) and bool((k >= 0).all()) and bool((k < 2.0**bits).all())
    assert len(set((k % 256).tolist())) == 256  # the lowest bits are used: not a coarser grid


def test_uniforms_are_float64_on_the_requested_device():
    u = uniforms(5, torch.Generator().manual_seed(0), "cpu")
    assert u.dtype == torch.float64 and u.shape == (5,) and bool(((u >= 0) & (u < 1)).all())


def _first(dtype=torch.float64):
    return torch.rand(1, dtype=dtype)[0]


def test_a_threshold_is_integrated_on_the_grid():
    law = execution_law(lambda g: bool(_first() < 0.3))
    exact = Fraction(math.ceil(Fraction(0.3) * 2**53), 2**53)  # grid points k with k * 2^-53 < 0.3
    assert law[True] == float(exact) and law[False] == float(1 - exact)


def test_a_single_grid_point_has_its_mass():
    """u <= 0 with a float32 uniform: the old token-wise leak, 2^-24 exactly; strict < 0 never."""
    assert execution_law(lambda g: bool(_first(torch.float32) <= 0)) == {True: 2.0**-24, False: 1 - 2.0**-24}
    assert execution_law(lambda g: bool(_first() < 0)) == {False: 1.0}


def test_coordinates_that_interact_are_split():
    """(u1 < 1/2) or (u2 < 1/2): from the lower corner neither coordinate alone changes the
    outcome; the check at the opposite corner makes the integrator split the box."""
    law = execution_law(lambda g: bool((torch.rand(2, dtype=torch.float64) < 0.5).any()))
    assert law == {True: 0.75, False: 0.25}


def test_draws_of_several_calls_and_dtypes():
    def fn(g):
        a = torch.rand(1, dtype=torch.float64)[0] < 0.5
        b = torch.rand((1, 1), dtype=torch.float32)[0, 0] < 0.25
        return bool(a), bool(b)

    law = execution_law(fn)
    assert law == {(True, True): 0.125, (True, False): 0.375, (False, True): 0.125, (False, False): 0.375}


def test_a_path_that_draws_more_uniforms_is_integrated():
    def fn(g):
        if torch.rand(1, dtype=torch.float64)[0] < 0.5:
            return "short"
        return "long-" + str(bool(torch.rand(1, dtype=torch.float64)[0] < 0.5))

    assert execution_law(fn) == {"short": 0.5, "long-True": 0.25, "long-False": 0.25}


def test_other_randomness_is_refused():
    w = torch.tensor([0.5, 0.5])
    with pytest.raises(IntegrationError, match="other than torch.rand"):
        execution_law(lambda g: int(torch.multinomial(w, 1, generator=g)))
    with pytest.raises(IntegrationError, match="other than torch.rand"):
        execution_law(lambda g: float(torch.empty(1).uniform_(generator=g)))


@pytest.mark.parametrize(
    "weights",
    [[0.0, 0.2, 0.0, 0.8], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.1, 0.2, 0.3, 0.4], [1e-30, 1.0, 0.0]],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sample_follows_its_weights_and_never_a_zero(weights, dtype):
    """The inverse-CDF sampler, through its real code: each index with its weight's share to the
    grid's resolution, and an index of weight 0 never -- not even on one grid point."""
    w = torch.tensor(weights, dtype=dtype)
    law = execution_law(lambda g: int(sample(w, g)))
    share = (w.double() / w.double().sum()).tolist()
    assert set(law) <= {i for i, s in enumerate(share) if s > 0}
    for i, s in enumerate(share):
        assert law.get(i, 0.0) == pytest.approx(s, abs=4 * 2.0**-53)


def test_draw_at_the_ends_of_the_unit_interval():
    w = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0])
    lowest, highest = torch.tensor([0.0], dtype=torch.float64), torch.tensor([1 - 2.0**-53], dtype=torch.float64)
    assert int(draw(w, lowest)) == 1 and int(draw(w, highest)) == 3
