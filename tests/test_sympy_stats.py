"""derive.family_from_sympy_stats: CDFs checked against scipy.stats (an independent implementation)."""

import math

import pytest
import sympy as sp
from scipy import stats as st
from sympy import stats as S

import derive

R = sp.Rational

CASES = [
    (lambda: S.Weibull("X", 1, 2), st.weibull_min(2)),
    (lambda: S.Frechet("X", 2, 1, 0), st.invweibull(2)),
    (lambda: S.Rayleigh("X", 1), st.rayleigh()),
    (lambda: S.Gompertz("X", 1, R(1, 2)), st.gompertz(0.5)),
    (lambda: S.Triangular("X", 0, 2, 1), st.triang(0.5, loc=0, scale=2)),
    (lambda: S.Trapezoidal("X", 0, 1, 2, 3), st.trapezoid(1 / 3, 2 / 3, loc=0, scale=3)),
    (lambda: S.PowerFunction("X", 2, 0, 1), st.powerlaw(2)),
    (lambda: S.Kumaraswamy("X", 2, 3), None),
    (lambda: S.LogLogistic("X", 1, 3), st.fisk(3)),
    (lambda: S.Maxwell("X", 1), st.maxwell()),
    (lambda: S.Exponential("X", 3), st.expon(scale=1 / 3)),
    (lambda: S.Laplace("X", 0, 1), st.laplace()),
    (lambda: S.Logistic("X", 0, 2), st.logistic(scale=2)),
    (lambda: S.Gumbel("X", 2, 0), st.gumbel_r(scale=2)),
    (lambda: S.Uniform("X", 2, 5), st.uniform(2, 3)),
    (lambda: S.Arcsin("X", 0, 1), st.arcsine()),
    (lambda: S.Beta("X", 2, 3), st.beta(2, 3)),
    (lambda: S.Erlang("X", 3, 1), st.gamma(3)),
]


_FAST = ("Weibull", "Frechet", "Exponential", "Laplace", "Uniform", "Beta")
CASES = [pytest.param(m, r, id=m().pspace.distribution.__class__.__name__.replace("Distribution", ""),
                      marks=() if m().pspace.distribution.__class__.__name__.replace("Distribution", "") in _FAST
                      else pytest.mark.slow) for m, r in CASES]


@pytest.mark.parametrize("make, ref", CASES)
def test_cdf_matches_scipy(make, ref):
    X = make()
    fam = derive.family_from_sympy_stats(X)
    # the support is where 0 < F < 1 (sympy.stats' set can be wider: Kumaraswamy says
    # [0, oo)), independently scipy's support of the same distribution
    want_lo, want_hi = ref.support() if ref is not None else (0.0, 1.0)
    assert fam.custom and fam.support.is_subset(X.pspace.distribution.set)
    assert (float(fam.support.start), float(fam.support.end)) == (want_lo, want_hi)
    lo, hi = fam.support.start, fam.support.end
    pts = [R(k, 7) for k in range(1, 14)] if lo.is_finite else [R(k - 7, 3) for k in range(15)]
    if hi.is_finite:
        pts = [lo + (hi - lo) * R(k, 11) for k in range(1, 11)]
    for p in pts:
        got = float(fam.cdf(p))
        if ref is None:  # Kumaraswamy: 1 - (1 - x^a)^b on [0, 1]
            want = 1 - (1 - min(float(p), 1.0) ** 2) ** 3
        else:
            want = ref.cdf(float(p))
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15), (p, got, want)


def test_erlang_and_beta_are_elementary():
    for X in (S.Erlang("X", 3, 1), S.Beta("X", 2, 3)):
        f = derive.family_from_sympy_stats(X)
        assert not f.cdf(f.symbol).has(sp.lowergamma, sp.uppergamma, sp.betainc, sp.betainc_regularized)


def test_distribution_object_and_name():
    X = S.Exponential("X", 3)
    a = derive.family_from_sympy_stats(X.pspace.distribution)
    assert a.name == "Exponential(3)"
    assert derive.family_from_sympy_stats(X, name="exp3").name == "exp3"


@pytest.mark.parametrize("bad, match", [
    (lambda: S.Poisson("P", 2), "discrete"),
    (lambda: S.Die("D", 6), "discrete"),
    (lambda: S.Normal("Y", sp.Symbol("m"), 1), "must be numbers.*m"),
    (lambda: S.MultivariateNormal("M", [0, 0], [[1, 0], [0, 1]]), "univariate"),
    (lambda: 2 * S.Normal("Z", 0, 1), "expression"),
])
def test_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        derive.family_from_sympy_stats(bad())


def test_not_a_random_variable():
    with pytest.raises(TypeError, match="X must be"):
        derive.family_from_sympy_stats(3)
