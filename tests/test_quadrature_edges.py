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


@pytest.mark.parametrize("family", ["uniform", "exponential", "laplace"])
def test_tied_block_below_a_kink_keeps_small_entries(family):
    # 100 scores tied at -0.999 below a top at 0 (F steep: the map is recentred); the
    # entries' integrands jump at the kink -0.999 + 1, and p_2 (~5e-7 for uniform) must
    # keep 1e-13 relative accuracy against the 30-digit oracle at the same float scores
    from derive import oracle
    import mpmath

    mu = np.r_[0.0, np.full(100, -0.999)]
    lp = numeric.log_probs(mu, family, method="quadrature")
    ref = oracle.log_probs([float(mu[0]), float(mu[1])] + [float(mu[1])] * 99, family, dps=30)
    for i in (0, 1):
        assert abs(mpmath.mpf(lp[i]) - ref[i]) <= 1e-13 * max(1.0, abs(float(ref[i]))), (i, lp[i], ref[i])
    assert np.all(lp[2:] == lp[1])
