"""Numeric-engine regressions of issue 18, each against an independent reference.

* student_t with large nu: the tails below 1e-280 (stdtr subnormal or 0) and the right
  tail through ``log(-expm1(log Phi))`` lost the mass of one of the two regions of a
  two-point row; references: mpmath (incomplete beta, quadrature split at both scores,
  50 digits), the Cauchy difference law (nu = 1), the tail expansion for d >> nu.
* gumbel_min O(n) engine, ties off its lattice: the exact softmax-like closed form of
  gumbel_min with ties is not available, so the reference is mpmath.
* uniform with a large tied cluster: the exact piecewise-polynomial value.
"""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from numeric.families import get_family

NUS = (0.5, 1, 2, 3, 5, 10, 30, 100, 300, 1000)


def _mp_t(nu):
    nu = mp.mpf(nu)
    lc = mp.loggamma((nu + 1) / 2) - mp.loggamma(nu / 2) - mp.log(nu * mp.pi) / 2

    def pdf(x):
        return mp.exp(lc - (nu + 1) / 2 * mp.log1p(x * x / nu))

    def sf(x):
        if x < 0:
            return 1 - sf(-x)
        return mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + x * x), regularized=True) / 2
    return pdf, sf


def _mp_log_p_low(nu, d, dps=50):
    """log P[eps_2 - d > eps_1] = log int f(x) sf(x + d) dx for the row (0, -d): unit
    pieces within 40 of both peaks (x = 0 and x = -d); beyond, x = c +- e^s in pieces
    min(1, 8 / nu) wide in s (the integrand falls like e^(-nu s) there), the outer tails
    until a piece adds less than 1e-40 of the total."""
    with mp.workdps(dps):
        pdf, sf = _mp_t(nu)
        d = mp.mpf(d)
        w = min(mp.mpf(1), mp.mpf(8) / nu)

        def f(x):
            return pdf(x) * sf(x + d)
        tot = mp.mpf(0)
        for c in (mp.mpf(0), -d):
            reach = min(mp.mpf(40), d / 2)
            tot += mp.quad(f, [c - reach + k for k in range(int(2 * reach) + 1)] + [c + reach])
        for c, inner in ((mp.mpf(0), -1), (-d, 1)):
            reach = min(mp.mpf(40), d / 2)
            for side in (-1, 1):
                def g(s):
                    return f(c + side * mp.exp(s)) * mp.exp(s)
                lo = mp.log(reach)
                if side == inner:
                    hi = mp.log(d / 2)
                    n = int(mp.ceil((hi - lo) / w))
                    if n > 0:
                        tot += mp.quad(g, [lo + (hi - lo) * k / n for k in range(n + 1)])
                    continue
                while True:
                    piece = mp.quad(g, [lo, lo + w])
                    tot += piece
                    lo += w
                    if piece < mp.mpf(10) ** -40 * tot:
                        break
        return float(mp.log(tot))


def _asymptotic_log_p_low(nu, d):
    """``p = 2 sf(d) - sigma^2 f'(d) + O(d^-4 sf)`` for nu > 2 (sigma^2 = nu / (nu - 2)): both
    regions, x ~ 0 (eps_2 > d) and x ~ -d (eps_1 < -d), to second order."""
    with mp.workdps(30):
        nu_ = mp.mpf(nu)
        pdf, sf = _mp_t(nu)
        d = mp.mpf(d)
        fprime = -pdf(d) * (nu_ + 1) * d / (nu_ + d * d)
        return float(mp.log(2 * sf(d) - nu_ / (nu_ - 2) * fprime))


@pytest.mark.parametrize("nu, d", [(1000, 1e8), (100, 1e6), (30, 1e8), (300, 1e7)])
def test_student_t_far_pairs_asymptotic(nu, d):
    # relative size of the dropped O(d^-4) term: (nu^2 / d^2)^2 <= 1e-16 here
    ref = _asymptotic_log_p_low(nu, d)
    for method in ("auto", "quadrature"):
        got = numeric.log_probs([0.0, -d], "student_t", nu=nu, method=method)[1]
        assert abs(got - ref) <= 1e-13 * abs(ref), (method, got, ref)


def test_student_t_issue_cases():
    # issue 18: -736.991... (nu = 300, [0, -200]); -14970.48 (nu = 1000, [0, -1e8])
    assert abs(numeric.log_probs([0.0, -200.0], "student_t", nu=300)[1] - (-736.991)) < 1e-3
    assert abs(numeric.log_probs([0.0, -1e8], "student_t", nu=1000)[1] - (-14970.48)) < 1e-2
    # nu = 100 at 3e4 and 1e6 (off by 3.65 and 7.1 before): to 1e-12 in the slow sweep


@pytest.mark.parametrize("d", [10.0, 200.0, 3e4, 1e8])
def test_cauchy_difference_law(d):
    # nu = 1: eps_2 - eps_1 is Cauchy with scale 2, p_low = 1/2 - atan(d / 2) / pi
    with mp.workdps(30):
        ref = float(mp.log(mp.mpf(1) / 2 - mp.atan(mp.mpf(d) / 2) / mp.pi))
    got = numeric.log_probs([0.0, -d], "student_t", nu=1)[1]
    assert abs(got - ref) <= 1e-13 * max(1.0, abs(ref))


def test_student_t_logcdf_deep_tail():
    # log P[T < -a] against mpmath's regularized incomplete beta, where stdtr is
    # subnormal or 0 (nu = 300, a = 200: e^-737) and far beyond
    with mp.workdps(40):
        for nu in NUS:
            fam = get_family("student_t", nu=nu)
            for a in (5.0, 40.0, 200.0, 3e4, 1e8, 1e150, 1e300):
                x = mp.mpf(nu) / (nu + mp.mpf(a) ** 2)
                ref = float(mp.log(mp.betainc(mp.mpf(nu) / 2, mp.mpf(1) / 2, 0, x, regularized=True) / 2))
                got = float(fam.logcdf(np.array([-a]))[0])
                assert abs(got - ref) <= 1e-14 * max(1.0, abs(ref)), (nu, a, got, ref)
                # the right tail: log sf(a) is the same number, however deep
                assert float(fam.logsf(np.array([a]))[0]) == got


def _check_pair(nu, d, ref):
    got = numeric.log_probs([0.0, -d], "student_t", nu=nu)[1]
    assert abs(got - ref) <= 1e-12 * max(1.0, abs(ref)), (nu, d, got, ref)
    p = numeric.probs([0.0, -d], "student_t", nu=nu)[1]
    if ref > math.log(1e-300):
        assert abs(p / math.exp(ref) - 1.0) <= 1e-12, (nu, d, p, math.exp(ref))


@pytest.mark.slow
@pytest.mark.parametrize("nu", NUS)
def test_student_t_sweep(nu):
    # two-point rows at spreads 200 and 1e8 (50-digit mpmath; the second-order tail
    # expansion at 1e8 where its O((nu / d)^4) remainder is below 1e-16)
    _check_pair(nu, 200.0, _mp_log_p_low(nu, 200.0))
    d = 1e8
    _check_pair(nu, d, _asymptotic_log_p_low(nu, d) if nu > 2 else _mp_log_p_low(nu, d))


@pytest.mark.slow
@pytest.mark.parametrize("d", [3e4, 1e6])
def test_student_t_issue_spreads(d):
    # issue 18: nu = 100 at [0, -3e4] and [0, -1e6] were off by 3.65 and 7.1
    _check_pair(100, d, _mp_log_p_low(100, d))


# --- gumbel_min: tied blocks off the O(n) engine's lattice --------------------

def test_gumbel_min_tied_blocks_issue_value():
    # issue 18: exact 9.336743350904245e-166 (was 9.336743350819286e-166, 9.1e-12 off)
    mu = np.repeat([0.37, 3.37, 6.37], 200)
    p = numeric.probs(mu, "gumbel_min")
    assert abs(p[0] / 9.336743350904245e-166 - 1.0) <= 1e-13
    from numeric._fast import fast_log_probs
    lp = fast_log_probs(mu[None], get_family("gumbel_min"))[0]
    assert abs(math.exp(lp[0]) / 9.336743350904245e-166 - 1.0) <= 1e-13


@pytest.mark.parametrize("name", ["gumbel_min", "normal"])
def test_tied_blocks_any_offset(name):
    # blocks of 200 ties at offsets off the 1/32 lattice, against the adaptive
    # quadrature (a separate algorithm: no grids, no interpolation)
    rng = np.random.default_rng(18)
    for _ in range(3):
        c = rng.uniform(0.0, 1.0)
        mu = np.repeat(np.array([0.0, 3.0, 6.0]) + c, 200)
        a = numeric.log_probs(mu, name)
        q = numeric.log_probs(mu, name, method="quadrature")
        assert np.all(np.abs(a - q) <= 2e-13 * np.maximum(1.0, np.abs(q))), (c, np.abs(a - q).max())


# --- uniform: a large tied cluster --------------------------------------------

@pytest.mark.parametrize("n, g", [(10_000, 0.01), (3_000, 0.3), (1_000, 0.01)])
@pytest.mark.parametrize("method", ["auto", "quadrature"])
def test_uniform_tied_cluster_exact(n, g, method):
    # n - 1 scores at 0, one at g < 1: p_top = int_0^1 P[max of n - 1 uniforms < u + g] du
    # = g + (1 - g^n) / n exactly; the cluster shares the rest
    mu = np.r_[np.zeros(n - 1), g]
    p = numeric.probs(mu, "uniform", method=method)
    top = g + (1.0 - g ** n) / n
    assert abs(p[-1] / top - 1.0) <= 1e-13, p[-1] / top - 1.0
    assert np.all(np.abs(p[:-1] / ((1.0 - top) / (n - 1)) - 1.0) <= 1e-13)
