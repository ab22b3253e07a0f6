"""Fail-fast reasons of the closed-form routes, n = 2 in the erf class, and the oracle's log-space user kernels.

References: softmax(mu / s) for Gumbel noise of scale s (exact), the oracle
at 30 digits for the n = 2 forms, and the integrand classes for the "none"
answers (asserted through status and reason; the calls are kept small).
"""

from __future__ import annotations

import signal
import time

import mpmath
import pytest
import sympy as sp
from sympy import stats

import derive
from derive import oracle
from derive.routes._common import TimeLimit, integrand_class, limit_at_infinity, time_limit


def _stats(ctor, *args):
    return derive.family_from_sympy_stats(getattr(stats, ctor)("X", *args))


@pytest.mark.parametrize("ctor,args,what", [
    ("Frechet", (2, 1, 0), "e^{- \\frac{1}{\\varepsilon^{2}}}"),
    pytest.param("GammaInverse", (2, 1), "e^{- \\frac{1}{\\varepsilon}}", marks=pytest.mark.slow),
    ("Arcsin", (0, 1), "\\operatorname{asin}"),
])
def test_n2_outside_the_classes_is_none_with_the_integrands_named(ctor, args, what):
    d = derive.derive(_stats(ctor, *args), 2)
    assert d.status == "none" and d.closed_form is None
    assert "neither integrand is rational" in d.reason and "unevaluated" in d.reason
    assert what in d.reason  # the density / CDF the decision was made on
    assert "derive.oracle.probs" in d.reason


def test_n3_user_family_outside_the_classes_is_decided_without_integrating():
    d = derive.derive(_stats("Frechet", 2, 1, 0), 3)
    assert d.status == "none"
    assert "no route's structure fits" in d.reason and "no antiderivative is attempted" in d.reason
    assert any(t.startswith("piecewise:") for t in d.extra["routes_tried"])


def test_integrand_classes():
    x, t = sp.symbols("x t", real=True)
    assert integrand_class(1 / (1 + x**2) / (1 + (x + t) ** 2), x) == "rational"
    assert integrand_class(x * sp.exp(-x**2 - 2 * t * x), x) == "gaussian"
    assert integrand_class((1 + sp.cos(sp.pi * x)) * x, x) == "gaussian"  # trig as complex exponentials
    for h in (sp.exp(-1 / x), sp.exp(-sp.exp(x)), 1 / sp.sqrt(x * (1 - x)), sp.erf(x) * sp.exp(-x**2), sp.exp(-x**3)):
        assert integrand_class(h, x) is None, h


def test_limit_at_infinity_term_by_term():
    x = sp.Symbol("x", real=True)
    a = sp.Symbol("a", positive=True)
    # antiderivative of 1/((x+1)(x+a+1)) (a > 0): (log(x+1) - log(x+a+1))/a, 0 at oo
    F = (sp.log(x + 1) - sp.log(x + a + 1)) / a + sp.atan(x)
    assert sp.simplify(limit_at_infinity(F, x) - sp.pi / 2) == 0
    with pytest.raises(ValueError):
        limit_at_infinity(sp.log(x + 1), x)


def test_time_limit_raises_and_rearms_the_outer_timer():
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 50)  # an outer limit (the atlas's per-cell alarm)
    try:
        with pytest.raises(TimeLimit, match="within 0.1 s"):
            with time_limit(0.1, "a loop"):
                while True:
                    time.sleep(0.01)
        assert 45 < signal.getitimer(signal.ITIMER_REAL)[0] <= 50
        with time_limit(60, "a short call"):  # the outer alarm comes first: left alone
            pass
        assert 45 < signal.getitimer(signal.ITIMER_REAL)[0] <= 50
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.slow
@pytest.mark.parametrize("ctor,args,status", [("Weibull", (1, 2), "special"), ("Lomax", (2, 1), "closed"),
                                              ("LogLogistic", (1, 3), "closed"), ("RaisedCosine", (0, 1), "closed")])
def test_n2_direct_integral_against_the_oracle(ctor, args, status):
    fam = _stats(ctor, *args)
    d = derive.derive(fam, 2)
    assert d.status == status, d.reason
    for mu in (["0.3", "0"], ["0", "0.7"], ["5", "0"], ["0", "0"], ["-1/3", "2"]):
        got = d.evaluate(mu, dps=30).p
        ref = oracle.probs(mu, fam, dps=30)
        for g, r in zip(got, ref):
            # a bounded support gives exact zeros (RaisedCosine at mu = (5, 0)): absolute 1e-40 there
            assert abs(g - r) <= max(mpmath.mpf(10) ** -25 * abs(r), mpmath.mpf(10) ** -40), (mu, g, r)


@pytest.mark.parametrize("mu", [["471/10", "0"], pytest.param(["0", "-60"], marks=pytest.mark.slow),
                                pytest.param(["-200", "3", "0"], marks=pytest.mark.slow)])
def test_oracle_gumbel_scale_2_user_cdf_far_apart_is_softmax(mu):
    x = sp.Symbol("x", real=True)
    fam = derive.family_from_cdf(sp.exp(-sp.exp(-x / 2)), x)
    with mpmath.workdps(40):
        m = [mpmath.mpf(sp.Rational(v).p) / sp.Rational(v).q / 2 for v in mu]
        top = max(m)
        z = mpmath.fsum(mpmath.exp(v - top) for v in m)
        ref = [mpmath.exp(v - top) / z for v in m]
    got = oracle.probs(mu, fam, dps=30)
    for g, r in zip(got, ref):
        assert abs(g - r) <= mpmath.mpf(10) ** -28 * r, (mu, g, r)


@pytest.mark.slow
def test_generalised_logistic_n4_against_the_oracle():
    x = sp.Symbol("x", real=True)
    fam = derive.family_from_cdf((1 + sp.exp(-x)) ** -2, x)
    d = derive.derive(fam, 4)
    assert d.status == "closed" and d.extra["route"] == "rational", d.reason
    for mu in (["0.3", "-1.1", "0.7", "0"], ["0", "0", "-1/2", "2"], ["25", "0", "1/4", "1/2"]):
        got = d.evaluate(mu, dps=30).p
        ref = oracle.probs(mu, fam, dps=30)
        for g, r in zip(got, ref):
            assert abs(g - r) <= mpmath.mpf(10) ** -25 * abs(r), (mu, g, r)
