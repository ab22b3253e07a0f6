"""The oracle against facts from outside the code.

Closed forms from the literature (softmax, Phi(D/sqrt2), the Cauchy and
Laplace difference distributions, the exponential race, gumbel_min
inclusion-exclusion, exact rational uniform values) and independent mpmath
computations written here, in the test, at higher precision.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import mpmath as mp
import pytest

from derive import family_from_cdf, oracle


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.fixture(autouse=True)
def _dps():
    with mp.workdps(60):
        yield


def test_gumbel_is_softmax_to_50_digits():
    mu = ["1.5", "0", "-2.25", "3", "0.125"]
    got = oracle.probs(mu, "gumbel", dps=50)
    with mp.workdps(70):
        e = [mp.exp(mp.mpf(m)) for m in mu]
        s = mp.fsum(e)
        want = [x / s for x in e]
    for g, w in zip(got, want):
        assert rel(g, w) < mp.mpf(10) ** -48


def test_uniform_exact_rationals_to_40_digits():
    # mu = (0.3, 0.1, 0) as exact decimals; U[0,1] noise: 3443/6000, 1577/6000, 980/6000
    got = oracle.probs(["0.3", "0.1", "0"], "uniform", dps=43)
    want = [Fraction(3443, 6000), Fraction(1577, 6000), Fraction(980, 6000)]
    with mp.workdps(60):
        for g, w in zip(got, want):
            assert rel(g, mp.mpf(w.numerator) / w.denominator) < mp.mpf(10) ** -40


@pytest.mark.parametrize("D", ["0.001", "0.7", "3", "12.5"])
def test_normal_two_scores_is_phi_of_delta_over_sqrt2(D):
    p = oracle.probs([D, 0], "normal", dps=30)
    with mp.workdps(50):
        d = mp.mpf(D)
        want = [mp.ncdf(d / mp.sqrt(2)), mp.ncdf(-d / mp.sqrt(2))]
    for g, w in zip(p, want):
        assert rel(g, w) < mp.mpf(10) ** -28


def test_normal_spread_60_tiny_entry_two_scores():
    # p_2 = Phi(-60/sqrt2) ~ 1.28e-393: far below float range, full relative precision
    p = oracle.probs([0, -60], "normal", dps=30)
    with mp.workdps(50):
        want = mp.ncdf(-60 / mp.sqrt(2))
    assert want < mp.mpf(10) ** -392
    assert rel(p[1], want) < mp.mpf(10) ** -28


def test_normal_spread_60_three_scores_vs_independent_formulas():
    mu = [0, -30, -60]
    got = oracle.probs(mu, "normal", dps=30)
    with mp.workdps(50):
        # class 1: P[e1 - e0 > 30] - delta with 0 <= delta <= P[e2 - e0 > 60] = Phi(-60/sqrt2)
        # ~ 1e-393, i.e. p_1 = Phi(-30/sqrt2) to ~290 digits.
        want1 = mp.ncdf(-30 / mp.sqrt(2))
        # class 2: P[X > 60, Y > 30] for X = e2 - e0, Y = e2 - e1 (variances 2, covariance 1):
        # int_60^inf N(x; 0, 2) P[Y > 30 | X = x] dx, Y | X = x ~ N(x/2, 3/2).  Scaled by its
        # value at 60 (mpmath's quad tests an absolute error, useless for a 1e-394 integrand).
        f = lambda x: mp.npdf(x, 0, mp.sqrt(2)) * mp.ncdf((x / 2 - 30) / mp.sqrt(mp.mpf(3) / 2))
        c = f(60)
        pts = [60 + mp.mpf(k) / 10 for k in range(21)] + [64, 70, mp.inf]
        v, err = mp.quad(lambda x: f(x) / c, pts, error=True)
        assert err < mp.mpf(10) ** -45 * v
        want2 = v * c
    assert want2 < mp.mpf(10) ** -390
    assert rel(got[1], want1) < mp.mpf(10) ** -28
    assert rel(got[2], want2) < mp.mpf(10) ** -28
    assert rel(got[0], 1 - want1 - want2) < mp.mpf(10) ** -28


@pytest.mark.parametrize("D", ["0.5", "4", "100"])
def test_cauchy_two_scores(D):
    p = oracle.probs([D, 0], "cauchy", dps=30)
    with mp.workdps(50):
        want = mp.mpf(1) / 2 + mp.atan(mp.mpf(D) / 2) / mp.pi
    assert rel(p[0], want) < mp.mpf(10) ** -28
    assert rel(p[1], 1 - want) < mp.mpf(10) ** -28


def test_student_t_with_one_degree_of_freedom_is_cauchy():
    p = oracle.probs(["1.25", 0], "student_t", dps=25, nu=1)
    with mp.workdps(50):
        want = mp.mpf(1) / 2 + mp.atan(mp.mpf("1.25") / 2) / mp.pi
    assert rel(p[0], want) < mp.mpf(10) ** -23


def test_normal_one_zero_zero_published_digits():
    p = oracle.probs([1, 0, 0], "normal", dps=30)
    assert mp.nstr(p[0], 21) == "0.633702045778079731188"
    assert rel(p[1], p[2]) == 0


@pytest.mark.parametrize("D", ["0", "0.3", "5", "40"])
def test_exponential_two_scores(D):
    # e2 - e1 ~ Laplace(0, 1): p_1 = 1 - exp(-D)/2 for D >= 0
    p = oracle.probs([D, 0], "exponential", dps=30)
    with mp.workdps(50):
        d = mp.mpf(D)
        want1 = 1 - mp.exp(-d) / 2
        want2 = mp.exp(-d) / 2
    assert rel(p[0], want1) < mp.mpf(10) ** -28
    assert rel(p[1], want2) < mp.mpf(10) ** -28


@pytest.mark.parametrize("D", ["0.25", "3", "50"])
def test_laplace_two_scores(D):
    # e1 - e2 has density (1 + |z|) e^{-|z|} / 4, so P[e2 - e1 > D] = (2 + D) e^{-D} / 4
    p = oracle.probs([D, 0], "laplace", dps=30)
    with mp.workdps(50):
        d = mp.mpf(D)
        want2 = (2 + d) * mp.exp(-d) / 4
    assert rel(p[1], want2) < mp.mpf(10) ** -28
    assert rel(p[0], 1 - want2) < mp.mpf(10) ** -28


def test_gumbel_min_inclusion_exclusion():
    mu = ["0.5", "0", "-1.5", "-3"]
    got = oracle.probs(mu, "gumbel_min", dps=30)
    with mp.workdps(60):
        m = [mp.mpf(v) for v in mu]
        for i in range(4):
            others = [j for j in range(4) if j != i]
            s = mp.mpf(0)
            for r in range(4):
                for S in itertools.combinations(others, r):
                    s += (-1) ** r / (1 + mp.fsum(mp.exp(m[i] - m[j]) for j in S))
            assert rel(got[i], s) < mp.mpf(10) ** -28


def test_scale_is_a_temperature():
    # p(mu; s) = p(mu / s; 1): normal with scale 2 at D = 2 is Phi(1/sqrt2)
    p = oracle.probs([2, 0], "normal", dps=30, scale=2)
    with mp.workdps(50):
        want = mp.ncdf(1 / mp.sqrt(2))
    assert rel(p[0], want) < mp.mpf(10) ** -28


def test_float_is_its_exact_binary_value():
    # 0.1 as a float is 0.1000000000000000055511151231257827...; gumbel n=2 is a sigmoid
    p_float = oracle.probs([0.1, 0.0], "gumbel", dps=40)
    p_dec = oracle.probs(["0.1", "0"], "gumbel", dps=40)
    with mp.workdps(60):
        d_bin = mp.mpf(Fraction(0.1).numerator) / Fraction(0.1).denominator
        want_bin = 1 / (1 + mp.exp(-d_bin))
        want_dec = 1 / (1 + mp.exp(-mp.mpf(1) / 10))
    assert rel(p_float[0], want_bin) < mp.mpf(10) ** -38
    assert rel(p_dec[0], want_dec) < mp.mpf(10) ** -38
    assert rel(p_float[0], want_dec) > mp.mpf(10) ** -20


def test_log_probs_keep_relative_precision_near_one_and_far_below():
    lp = oracle.log_probs([0, -60], "gumbel", dps=30)
    with mp.workdps(60):
        want0 = -mp.log1p(mp.exp(-60))  # ~ -8.76e-27
        want1 = -mp.log1p(mp.exp(60))
    assert rel(lp[0], want0) < mp.mpf(10) ** -27
    assert rel(lp[1], want1) < mp.mpf(10) ** -28


def test_ties_and_sum_to_one_logistic():
    p = oracle.probs([0.5, 0.5, -1, 2], "logistic", dps=30)
    assert p[0] == p[1]
    assert abs(mp.fsum(p) - 1) < mp.mpf(10) ** -29
    assert p[3] > p[0] > p[2] > 0


def test_custom_family_rayleigh_two_scores():
    import sympy as sp

    t = sp.Symbol("t", real=True)
    fam = family_from_cdf(1 - sp.exp(-t**2), t, sp.Interval(0, sp.oo), name="rayleigh")
    p = oracle.probs(["0.5", 0], fam, dps=20)
    # independent: p_2 = P[e2 - e1 > 0.5] = int_0^inf f(y) F(y - 0.5) dy over y (the noise of class 2)
    with mp.workdps(40):
        f = lambda y: 2 * y * mp.exp(-y * y)
        F = lambda y: 1 - mp.exp(-y * y) if y > 0 else mp.mpf(0)
        want2 = mp.quad(lambda y: f(y) * F(y - mp.mpf("0.5")), [0, mp.mpf("0.5"), 2, 4, 8, mp.inf])
    assert rel(p[1], want2) < mp.mpf(10) ** -18
    assert rel(p[0], 1 - want2) < mp.mpf(10) ** -18


@pytest.mark.slow
def test_normal_many_scores_sum_and_order():
    import numpy as np

    mu = np.random.default_rng(3).normal(size=200)
    p = oracle.probs(mu, "normal", dps=30)
    assert abs(mp.fsum(p) - 1) < mp.mpf(10) ** -29
    order = np.argsort(mu)
    assert all(p[order[k]] < p[order[k + 1]] for k in range(len(mu) - 1))


@pytest.mark.slow
def test_cauchy_spread_60_n3_vs_independent_quadrature():
    mu = [0, -20, -60]
    got = oracle.probs(mu, "cauchy", dps=25)
    with mp.workdps(45):
        Phi = lambda y: mp.atan(-1 / y) / mp.pi if y < 0 else 1 - mp.atan(1 / y) / mp.pi if y > 0 else mp.mpf(1) / 2
        phi = lambda y: 1 / (mp.pi * (1 + y * y))

        def f(i):
            return lambda x: phi(x - mu[i]) * mp.fprod(Phi(x - mu[j]) for j in range(3) if j != i)

        pts = [-mp.inf] + [-10.0 ** k for k in range(30, -1, -1)] + list(range(-80, 81, 4)) + [10.0 ** k for k in range(2, 31)] + [mp.inf]
        pts = sorted(set(mp.mpf(v) for v in pts))
        want = [mp.quad(f(i), pts) for i in range(3)]
    for g, w in zip(got, want):
        assert rel(g, w) < mp.mpf(10) ** -22
