"""Certified oracle (python-flint balls): enclosures contain independent values.

References are computed here, independently of the code under test: exact
closed forms (softmax, inclusion-exclusion, n = 2 difference distributions,
uniform rationals) evaluated with mpmath at ``dps + 20`` digits, or
``mpmath.quad`` of (eq:pi) with the family's CDF/density written directly in
mpmath.  Every test also checks the contract on the radius:
``rad < 10^-(dps-5) |p|``.
"""

from __future__ import annotations

import random
from itertools import combinations

import pytest

flint = pytest.importorskip("flint")

import mpmath  # noqa: E402
import sympy as sp  # noqa: E402
from mpmath import mp, mpf  # noqa: E402

import derive  # noqa: E402
from derive.oracle.certified import CERTIFIED_FAMILIES, probs_certified  # noqa: E402
from derive.oracle.errors import OracleError  # noqa: E402


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _mu(values, digits=60):
    """Score vector as mpf; strings are rounded at ``digits`` digits."""
    with mp.workdps(digits):
        return [mpf(v) for v in values]


def _arb(x):
    """An mpf as an exact arb."""
    sign, man, exp, _ = x._mpf_  # (mpf(x) would round x to mp.prec)
    b = flint.arb((int(man), int(exp)))
    return -b if sign else b


def cert(mu, name, dps=30, **params):
    return probs_certified(_mu(mu), derive.family(name, **params), dps)


def check(balls, ref, dps):
    """Each ball contains its reference value and is as narrow as promised."""
    assert len(balls) == len(ref)
    for k, (b, v) in enumerate(zip(balls, ref)):
        assert b.contains(_arb(v)), f"entry {k}: {b} does not contain {mpmath.nstr(v, dps + 5)}"
        if v == 0:
            assert b.is_exact() and b.is_zero(), f"entry {k}: p = 0 exactly but got {b}"
        else:
            bound = _arb(abs(v)) * flint.arb(10) ** (-(dps - 5))
            assert b.rad() < bound, f"entry {k}: radius {b.rad()} too large for |p| = {mpmath.nstr(v, 5)}"


def _mp_family(name, nu=None):
    """(cdf, pdf, kinks) of the standard family, written directly in mpmath."""
    if name == "gumbel":
        return (lambda x: mp.exp(-mp.exp(-x))), (lambda x: mp.exp(-x - mp.exp(-x))), []
    if name == "gumbel_min":
        return (lambda x: -mp.expm1(-mp.exp(x))), (lambda x: mp.exp(x - mp.exp(x))), []
    if name == "normal":
        return mp.ncdf, mp.npdf, []
    if name == "logistic":
        return (lambda x: 1 / (1 + mp.exp(-x))), (lambda x: mp.exp(-x) / (1 + mp.exp(-x)) ** 2), []
    if name == "cauchy":
        return (lambda x: mpf(1) / 2 + mp.atan(x) / mp.pi), (lambda x: 1 / (mp.pi * (1 + x * x))), []
    if name == "student_t":
        v = mpf(nu)
        c = mp.gamma((v + 1) / 2) / (mp.sqrt(v * mp.pi) * mp.gamma(v / 2))

        def cdf(x):
            # P(T <= -|x|) = I_{v/(v+x^2)}(v/2, 1/2) / 2
            tail = mp.betainc(v / 2, mpf(1) / 2, 0, v / (v + x * x), regularized=True) / 2
            return 1 - tail if x >= 0 else tail

        return cdf, (lambda x: c * (1 + x * x / v) ** (-(v + 1) / 2)), []
    if name == "laplace":
        return (lambda x: mp.exp(x) / 2 if x < 0 else 1 - mp.exp(-x) / 2), (lambda x: mp.exp(-abs(x)) / 2), [0]
    if name == "exponential":
        return (lambda x: -mp.expm1(-x) if x > 0 else mpf(0)), (lambda x: mp.exp(-x) if x >= 0 else mpf(0)), [0]
    if name == "uniform":
        return (lambda x: min(max(x, mpf(0)), mpf(1))), (lambda x: mpf(1) if 0 <= x <= 1 else mpf(0)), [0, 1]
    raise KeyError(name)


def quad_reference(mu, name, dps, nu=None, step=1):
    """p_i = int phi(e) prod Phi(d_j + e) de by mpmath.quad at dps + 20 digits.

    The range is split at every kink, at 0, at -d_j and on a unit grid
    between them (so that a narrow peak far from 0 -- the tiny entries -- is
    resolved), then geometrically outwards; light tails are cut at 300
    beyond the outermost point (the integrand is below e^-300 there for every
    light-tailed registry family), heavy tails (cauchy, student_t) are
    integrated to infinity in ``t = asinh(e)``.  mpmath's own error estimate must be small
    relative to the value, otherwise the reference itself is rejected.
    """
    with mp.workdps(dps + 20):
        cdf, pdf, kinks = _mp_family(name, nu)
        m = [mpf(x) for x in mu]
        out = []
        for i in range(len(m)):
            d = [m[i] - m[j] for j in range(len(m)) if j != i]
            pts = {mpf(0)} | {-x for x in d} | {k - x for k in kinks for x in d} | {mpf(k) for k in kinks}
            lo, hi = min(pts), max(pts)
            grid = {lo - 10 + step * k for k in range(int((hi - lo + 20) / step) + 1)}
            pts = sorted(pts | grid)
            far = [mpf(20), mpf(40), mpf(80), mpf(160)]
            inner = [lo - x for x in reversed(far)] + pts + [hi + x for x in far]
            ends = [lo - 300] + inner + [hi + 300]
            f = lambda e: pdf(e) * mp.fprod(cdf(x + e) for x in d)  # noqa: E731
            # mpmath's stopping rule is absolute: divide by the peak value so
            # that tiny entries (1e-400) get the same relative accuracy
            top = max(f(e) for e in pts + [(a + b) / 2 for a, b in zip(pts, pts[1:])])
            if top == 0:
                out.append(mpf(0))
                continue
            if name in ("cauchy", "student_t"):
                # algebraic tails: integrate in t with e = sinh(t) (exponential decay in t)
                ends = [-mp.inf] + [mp.asinh(x) for x in inner] + [mp.inf]
                v, err = mp.quad(lambda t: f(mp.sinh(t)) * mp.cosh(t) / top, ends, error=True)
            else:
                v, err = mp.quad(lambda e: f(e) / top, ends, error=True)
            assert err <= abs(v) * mpf(10) ** (-(dps + 8)), f"reference quadrature failed: {v} +- {err}"
            out.append(v * top)
        return out


def _family_kw(name):
    return {"nu": 3} if name == "student_t" else {}


# ---------------------------------------------------------------------------
# exact facts from outside the code
# ---------------------------------------------------------------------------

SPREAD_VECTORS = [
    [0.3, -0.1],
    [0.05, 0.0, -0.05],
    [2.0, -1.0, 0.5, 0.0],
    [20.0, 0.0, 7.25, -3.5, 11.0],
    [0.0, -60.0, -59.5],  # entries near 1e-26 (gumbel) and smaller
]


@pytest.mark.parametrize("mu", SPREAD_VECTORS)
def test_gumbel_is_softmax(mu):
    dps = 30
    with mp.workdps(dps + 20):
        e = [mp.exp(mpf(x)) for x in mu]
        ref = [x / mp.fsum(e) for x in e]
    check(cert(mu, "gumbel", dps), ref, dps)


def test_gumbel_softmax_with_scale_high_dps():
    mu, s, dps = [1.5, 0.25, -2.0], sp.Rational(1, 3), 50
    with mp.workdps(dps + 20):
        e = [mp.exp(mpf(x) * 3) for x in mu]
        ref = [x / mp.fsum(e) for x in e]
    check(probs_certified(_mu(mu), derive.family("gumbel", scale=s), dps), ref, dps)


@pytest.mark.parametrize("mu", SPREAD_VECTORS[:4])
def test_gumbel_min_inclusion_exclusion(mu):
    # p_i = sum_{S subset of others} (-1)^|S| / (1 + sum_{j in S} exp(mu_i - mu_j))
    dps = 30
    with mp.workdps(dps + 40):
        m = [mpf(x) for x in mu]
        ref = []
        for i in range(len(m)):
            others = [j for j in range(len(m)) if j != i]
            tot = mpf(0)
            for r in range(len(others) + 1):
                for S in combinations(others, r):
                    tot += (-1) ** r / (1 + mp.fsum(mp.exp(m[i] - m[j]) for j in S))
            ref.append(tot)
    check(cert(mu, "gumbel_min", dps), ref, dps)


@pytest.mark.parametrize("D,scale", [(0.1, 1), (1, 1), (7.5, 1), (60, 1), (3, 2), (1, sp.Rational(1, 3))])
def test_normal_two_points(D, scale):
    # eps_2 - eps_1 ~ N(0, 2 s^2): p_1 = Phi(D / (s sqrt 2)); D = 60 gives p_2 ~ 1e-393
    dps = 30
    with mp.workdps(dps + 20):
        s = mpf(sp.Rational(scale).p) / sp.Rational(scale).q
        p1 = mp.ncdf(mpf(D) / (s * mp.sqrt(2)))
        p2 = mp.ncdf(-mpf(D) / (s * mp.sqrt(2)))
    check(cert([D, 0], "normal", dps, scale=scale), [p1, p2], dps)


def test_normal_irrational_scale():
    # scale sqrt(2): eps_2 - eps_1 ~ N(0, 4), p_1 = Phi(D / 2)
    dps = 30
    with mp.workdps(dps + 20):
        ref = [mp.ncdf(mpf("1.5") / 2), mp.ncdf(-mpf("1.5") / 2)]
    check(cert([1.5, 0], "normal", dps, scale=sp.sqrt(2)), ref, dps)


@pytest.mark.parametrize("name", CERTIFIED_FAMILIES)
def test_ties_give_one_over_n(name):
    # exchangeability: equal scores give p_i = 1/n exactly, for every noise
    dps = 20
    with mp.workdps(dps + 20):
        ref = [mpf(1) / 3] * 3
    check(cert([0.5, 0.5, 0.5], name, dps, **_family_kw(name)), ref, dps)


def test_normal_issue_value():
    # p_1 for mu = (1, 0, 0) quoted in issue 4
    b = cert([1, 0, 0], "normal", 30)[0]
    with mp.workdps(40):
        ref = mpf("0.633702045778079731188")
        assert abs(mpf(b.mid().str(35, radius=False)) - ref) < mpf("1e-21")


@pytest.mark.parametrize("D,scale", [(0.1, 1), (3, 1), (20, 1), (60, 3)])
@pytest.mark.parametrize("name", ["cauchy", "student_t"])
def test_cauchy_two_points(name, D, scale):
    # eps_2 - eps_1 ~ Cauchy(0, 2 s): p_1 = 1/2 + atan(D / (2 s)) / pi; student_t with nu = 1 is cauchy
    dps = 30
    kw = {"nu": 1} if name == "student_t" else {}
    with mp.workdps(dps + 20):
        p1 = mpf(1) / 2 + mp.atan(mpf(D) / (2 * scale)) / mp.pi
        ref = [p1, 1 - p1]
    check(cert([D, 0], name, dps, scale=scale, **kw), ref, dps)


def test_uniform_issue_rationals_40_digits():
    dps = 40
    balls = cert(["0.3", "0.1", "0"], "uniform", dps)
    with mp.workdps(dps + 20):
        ref = [mpf(3443) / 6000, mpf(1577) / 6000, mpf(980) / 6000]
    check(balls, ref, dps)


def test_uniform_exact_zero_and_rational_scale():
    # D = 0.25 / (1/3) = 0.75 on uniform: p_1 = 1 - (1 - D)^2 / 2 = 31/32 exactly
    check(cert([0.25, 0], "uniform", 30, scale=sp.Rational(1, 3)), [mpf(31) / 32, mpf(1) / 32], 30)
    # mu_2 more than one scale below the top: exactly zero
    balls = cert([0, -1.5, -0.5], "uniform", 30)
    check(balls, [mpf(7) / 8, mpf(0), mpf(1) / 8], 30)


@pytest.mark.parametrize("D", [0.1, 2.0, 60.0])
def test_exponential_and_laplace_two_points(D):
    # exponential: eps_2 - eps_1 ~ Laplace(0, 1): p_2 = exp(-D) / 2
    # laplace: eps_2 - eps_1 has density (1 + |z|) e^{-|z|} / 4: p_2 = (2 + D) exp(-D) / 4
    dps = 30
    with mp.workdps(dps + 20):
        q_exp = mp.exp(-mpf(D)) / 2
        q_lap = (2 + mpf(D)) * mp.exp(-mpf(D)) / 4
        ref_exp, ref_lap = [1 - q_exp, q_exp], [1 - q_lap, q_lap]
    check(cert([D, 0], "exponential", dps), ref_exp, dps)
    check(cert([D, 0], "laplace", dps), ref_lap, dps)


# ---------------------------------------------------------------------------
# general n against an independent quadrature
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", CERTIFIED_FAMILIES)
def test_against_mpmath_quad(name):
    mu = [1.25, 0.0, -0.75]
    dps = 12
    kw = _family_kw(name)
    ref = quad_reference(mu, name, dps, nu=kw.get("nu"), step=4)
    check(cert(mu, name, dps, **kw), ref, dps)


@pytest.mark.parametrize("nu", [2, pytest.param(4, marks=pytest.mark.slow), 5])
def test_student_t_integer_nu(nu):
    mu = [0.5, 0.0, -2.0]
    dps = 12
    check(cert(mu, "student_t", dps, nu=nu), quad_reference(mu, "student_t", dps, nu=nu, step=4), dps)


def test_student_t_general_nu():
    # non-integer nu goes through the 2F1 kernel
    mu, nu, dps = [0.75, 0.0], sp.Rational(5, 2), 12
    check(cert(mu, "student_t", dps, nu=nu), quad_reference(mu, "student_t", dps, nu=nu, step=4), dps)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [sp.Rational(1, 2), sp.Float(3.7), sp.Rational(31, 3)])
def test_student_t_general_nu_more(nu):
    mu, dps = [0.5, 0.0, -2.0], 20
    check(cert(mu, "student_t", dps, nu=nu), quad_reference(mu, "student_t", dps, nu=nu), dps)


# ---------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------


def test_not_certified_raises():
    x = sp.Symbol("x", real=True)
    custom = derive.family_from_cdf(1 / (1 + sp.exp(-x)), x, name="mylogistic")
    with pytest.raises(OracleError, match="custom"):
        probs_certified(_mu([1, 0]), custom, 20)
    with pytest.raises(OracleError, match="numeric nu"):
        cert([1, 0], "student_t", 20, nu=sp.Symbol("nu", positive=True))
    with pytest.raises(OracleError, match="scale"):
        cert([1, 0], "uniform", 20, scale=sp.sqrt(2))


# ---------------------------------------------------------------------------
# heavier sweeps
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", CERTIFIED_FAMILIES)
def test_random_vectors_dps30(name):
    rng = random.Random(20261126)
    kw = _family_kw(name)
    for n, spread in [(2, 0.1), (4, 3.0), (5, 20.0)]:
        mu = [round(rng.uniform(-spread, spread), 6) for _ in range(n)]
        check(cert(mu, name, 30, **kw), quad_reference(mu, name, 30, nu=kw.get("nu")), 30)


@pytest.mark.slow
@pytest.mark.parametrize("name", CERTIFIED_FAMILIES)
def test_spread_60_tiny_entries(name):
    mu = [0.0, -60.0, -1.0, -59.5]
    kw = _family_kw(name)
    check(cert(mu, name, 20, **kw), quad_reference(mu, name, 20, nu=kw.get("nu")), 20)


# ---------------------------------------------------------------------------
# plain inputs far from the unit scale: a ball containing the checked value, or
# OracleError -- never another exception
# ---------------------------------------------------------------------------


def _certified_or_refused(mu, name, dps=20, **kw):
    """Certified balls for ``mu`` via the public API, or None after an OracleError
    whose message says what could not be certified."""
    from derive import oracle

    try:
        return oracle.probs(mu, name, dps=dps, certified=True, **kw)
    except OracleError as e:
        assert str(e).startswith("certified oracle:") and name in str(e), str(e)
        return None


def _contains_checked_value(balls, mu, name, **kw):
    from derive import oracle

    ref = oracle.probs(mu, name, dps=30, **kw)
    for k, (b, v) in enumerate(zip(balls, ref)):
        assert b.contains(_arb(v)), f"entry {k}: {b} does not contain the oracle's {mpmath.nstr(v, 25)}"


def test_issue_18_certified_inputs_raise_oracle_error_or_answer():
    # these raised OverflowError and ValueError ("NaN to integer")
    assert _certified_or_refused([0, -1e10], "normal") is None  # beyond the certified spread
    assert _certified_or_refused([1e17, 0, 0.5], "normal") is None
    mu = [1e17, 0, 0.5]
    balls = _certified_or_refused(mu, "exponential")
    assert balls is not None
    _contains_checked_value(balls, mu, "exponential")
    # the cluster keeps its own spread: p_2 / p_1 = e^0.5 for exponential noise
    assert abs(float((balls[2] / balls[1]).mid()) - float(mpmath.exp(0.5))) < 1e-12


_SWEEP_VECTORS = [[0, -1e-3], [0.5, 0, -2], [0, -1e2], [0, -1e4], [0, -1e10], [1e10, 0, 0.5, -1], [1e17, 0, 0.5]]


@pytest.mark.slow
@pytest.mark.parametrize("name", CERTIFIED_FAMILIES)
def test_certified_sweep_plain_inputs(name):
    kw = _family_kw(name)
    for mu in _SWEEP_VECTORS:
        balls = _certified_or_refused(mu, name, **kw)
        if balls is not None:
            _contains_checked_value(balls, mu, name, **kw)
