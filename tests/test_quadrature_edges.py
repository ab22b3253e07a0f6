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


def _gompertz_family():
    # Gompertz(1, 1/2) noise written by hand in numpy: F = 1 - exp(-(e^x - 1)/2) on x >= 0
    def logcdf(x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            v = np.log(-np.expm1(-np.expm1(np.maximum(x, 0.0)) / 2))
        return np.where(x > 0, v, -np.inf)

    def logpdf(x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            v = x - np.expm1(x) / 2 - math.log(2.0)
        return np.where(x > 0, v, -np.inf)

    return numeric.family_from_logcdf(logcdf, logpdf, (0.0, math.inf), name="gompertz_by_hand")


@pytest.mark.parametrize("mu", [(30.0, 0.0, 0.0), (30.0, 29.0, 0.0), (20.0, 0.0, -3.0)])
def test_mass_next_to_a_kink_narrower_than_the_nodes(mu):
    # the losers' integrands fall by e^(e^30 / 2) per unit of x right of the kink at 30: all
    # their mass lies within ~2e-13 of it.  Reference: the exact finite sum of exponentials
    from _user_family_refs import gompertz_exact
    import mpmath

    ref = gompertz_exact([repr(m) for m in mu], 1, "0.5", 40)
    want = [float(mpmath.log(r)) for r in ref]
    lp = numeric.log_probs(np.array(mu), _gompertz_family())
    for got, w in zip(lp, want):
        assert abs(got - w) <= 1e-12 * max(1.0, abs(w)), (mu, lp, want)
