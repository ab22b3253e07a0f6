"""The adaptive quadrature on panels far narrower than 1e-13: an entry whose whole
support is such a panel keeps its probability (uniform noise, scores just inside one
unit below the top).  References are exact rational integrals."""

from fractions import Fraction
import math

import numpy as np
import pytest

import numeric


def _exact_log_p2(delta):
    # mu = (0, -(1 - d), -(1 - d)), uniform[0, 1] noise: entry 2 can only win on
    # x in [0, d], where F_1(x) = x and F_3(x) = x + 1 - d:
    # p_2 = int_0^d x (x + 1 - d) dx = d^3 / 3 + (1 - d) d^2 / 2
    d = Fraction(delta)
    p = d**3 / 3 + (1 - d) * d**2 / 2
    return math.log(p.numerator) - math.log(p.denominator)


@pytest.mark.parametrize("k", [40, 50, 52])
@pytest.mark.parametrize("method", ["quadrature", "auto"])
def test_uniform_entry_supported_on_a_sub_ulp_panel(k, method):
    delta = 2.0**-k
    mu = np.array([0.0, -(1.0 - delta), -(1.0 - delta)])
    lp = numeric.log_probs(mu, "uniform", method=method)
    want = _exact_log_p2(delta)
    assert abs(lp[1] - want) <= 1e-12 * abs(want), (lp, want)
    assert lp[2] == lp[1]
    assert abs(math.expm1(lp[0]) + 2 * math.exp(want)) <= 1e-15
