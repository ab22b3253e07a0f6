"""Closed-form routes chosen by the CDF's structure (derive.routes) against independent facts.

* max-stable disguises of the Gumbel CDF: softmax(mu/s) (numpy), at n = 2, 3 and symbolic n;
* piecewise polynomial CDFs (x^2 on [0, 1], uniform on [2, 5], triangular): exact rationals
  from sympy integrating the defining integral with concrete rational scores (sympy's own
  Piecewise integration, not the route's Max/Min formula), ties included;
* reparameterised registry families (exponential of rate 3, uniform on [2, 5]): the registry's
  closed forms at the rescaled scores;
* everything else: the oracle at 30 digits.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp

import derive
from derive.closed import derive as derive_closed
from derive.routes import NotApplicable, location_scale, max_stable, piecewise, run

from _user_family_refs import exact_probs as _exact_probs

x = sp.Symbol("x", real=True)
R = sp.Rational


def _softmax(v):
    v = np.asarray(v, dtype=float)
    e = np.exp(v - v.max())
    return e / e.sum()


def _at(forms, syms, mu):
    env = dict(zip(syms, mu))
    return [sp.nsimplify(e.subs(env)) if all(isinstance(m, sp.Rational) for m in mu) else e.subs(env)
            for e in forms]


# -- (b) max-stable -------------------------------------------------------------------


@pytest.mark.parametrize("expr, s", [
    (sp.exp(-sp.exp(-x / 2)), 2),
    (1 / sp.exp(3 * sp.exp(-x / 2)), 2),
    (sp.exp(-sp.exp(-x)) ** 3, 1),
    (sp.exp(-sp.exp(1 - 4 * x)), R(1, 4)),
    (sp.exp(-2 * sp.exp(-x) * sp.exp(-x / 3)), R(3, 4)),
])
def test_max_stable_detected(expr, s):
    fam = derive.family_from_cdf(expr, x)
    got = max_stable.detect(fam)
    assert not isinstance(got, str), got
    assert sp.simplify(got[0] - s) == 0


@pytest.mark.parametrize("expr", [1 / (1 + sp.exp(-x)), (1 + sp.erf(x)) / 2, 1 - sp.exp(-sp.exp(x))])
def test_max_stable_rejects_other_shapes(expr):
    assert isinstance(max_stable.detect(derive.family_from_cdf(expr, x)), str)


@pytest.mark.slow
def test_gumbel_scale_two_is_softmax_half():
    fam = derive.family_from_cdf(sp.exp(-sp.exp(-x / 2)), x)
    d = derive.derive(fam, 2)
    assert d.status == "closed" and d.extra["route"] == "max_stable"
    mu = [0.7, -1.3]
    got = [float(e.subs(dict(zip(d.symbols, mu)))) for e in d.closed_form]
    assert np.allclose(got, _softmax(np.array(mu) / 2), rtol=1e-14, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("expr, s", [(1 / sp.exp(3 * sp.exp(-x / 2)), 2), (sp.exp(-sp.exp(1 - 4 * x)), R(1, 4))])
def test_max_stable_softmax_every_n(expr, s):
    fam = derive.family_from_cdf(expr, x)
    for n in (3, 4):
        d = derive.derive(fam, n)
        assert d.status == "closed"
        syms = d.symbols
        soft = [sp.exp(m / s) / sp.Add(*[sp.exp(k / s) for k in syms]) for m in syms]
        assert all(sp.simplify(a - b) == 0 for a, b in zip(d.closed_form, soft))
    g = derive.derive(fam, "general")
    assert g.status == "closed"
    from derive import softmax as sm
    want = sp.exp(sm.mu[sm.i] / s) / sp.Sum(sp.exp(sm.mu[sm.j] / s), (sm.j, 1, sm.n))
    assert sp.simplify(g.result - want) == 0


# -- (a) location-scale -----------------------------------------------------------------


def test_location_scale_match_finds_exponential_rate_3():
    fam = derive.family_from_cdf(1 - sp.exp(-3 * x), x, sp.Interval(0, sp.oo))
    assert location_scale.match(fam)[:2] == ("exponential", 3)


def test_location_scale_match_uniform_any_interval():
    fam = derive.family_from_cdf((x - 2) / 3, x, sp.Interval(2, 5))
    name, a, b = location_scale.match(fam)
    assert (name, a, b) == ("uniform", R(1, 3), R(-2, 3))


def test_location_scale_no_match_is_a_reason():
    fam = derive.family_from_cdf(1 - sp.exp(-x**2), x, sp.Interval(0, sp.oo))
    assert isinstance(location_scale.match(fam), str)


@pytest.mark.slow
def test_exponential_rate_3_matches_registry_at_3mu():
    fam = derive.family_from_cdf(1 - sp.exp(-3 * x), x, sp.Interval(0, sp.oo))
    for n in (2, 3):
        d = derive.derive(fam, n)
        assert d.status == "closed"
        reg = derive_closed("exponential", n)
        mu = [R(1, 3), R(-2, 7), R(5, 4)][:n]
        want = _at(reg.closed_form, reg.symbols, [3 * m for m in mu])
        got = _at(d.closed_form, d.symbols, mu)
        assert all(sp.simplify(a - b) == 0 for a, b in zip(got, want))


# -- (c) piecewise exponential-polynomial ------------------------------------------------


def test_power_function_n2_exact():
    fam = derive.family_from_cdf(x**2, x, sp.Interval(0, 1))
    d = piecewise.attempt(fam, 2)
    for mu in ([R(1, 2), 0], [R(1, 5), R(1, 5)], [0, R(3, 2)]):
        assert _at(d.closed_form, d.symbols, mu) == _exact_probs(fam, mu)


@pytest.mark.slow
def test_power_function_and_exponential_3_no_longer_none_at_n2():
    for expr, sup in ((x**2, sp.Interval(0, 1)), (1 - sp.exp(-3 * x), sp.Interval(0, sp.oo))):
        d, _ = run(derive.family_from_cdf(expr, x, sup), 2)
        assert d.status == "closed"


@pytest.mark.slow
@pytest.mark.parametrize("expr, sup", [
    (x**2, sp.Interval(0, 1)),
    ((x - 2) / 3, sp.Interval(2, 5)),
    (sp.Piecewise((x**2 / 2, x <= 1), (1 - (2 - x) ** 2 / 2, True)), sp.Interval(0, 2)),
])
def test_piecewise_n3_exact_rationals(expr, sup):
    fam = derive.family_from_cdf(expr, x, sup)
    d = piecewise.attempt(fam, 3)
    assert d.status == "closed"
    for mu in ([R(1, 2), 0, R(-1, 3)], [R(1, 4), R(1, 4), 0], [R(2, 3), R(2, 3), R(2, 3)], [0, R(5, 2), R(1, 7)]):
        got = _at(d.closed_form, d.symbols, mu)
        assert got == _exact_probs(fam, mu), mu
        assert sum(got) == 1


def test_piecewise_not_applicable_reason():
    out = piecewise.attempt(derive.family_from_cdf(1 - sp.exp(-x**2), x, sp.Interval(0, sp.oo)), 2)
    assert isinstance(out, NotApplicable) and "not a finite sum" in out.reason


@pytest.mark.slow
def test_asymmetric_laplace_n3_vs_oracle():
    cdf = sp.Piecewise((sp.exp(2 * x) / 3, x < 0), (1 - 2 * sp.exp(-x) / 3, True))
    fam = derive.family_from_cdf(cdf, x, name="asym_laplace")
    d = piecewise.attempt(fam, 3)
    for mu in (["0.5", "0", "-0.25"], ["1", "1", "0"], ["30", "0", "-2"]):
        got = [sp.N(e.subs(dict(zip(d.symbols, [sp.Rational(m) for m in mu]))), 40) for e in d.closed_form]
        ref = derive.oracle.probs(mu, fam, dps=30)
        with mpmath.workdps(40):    # the comparison itself at 40 digits, not mpmath's default 15
            for g, r in zip(got, ref):
                assert abs(mpmath.mpf(str(g)) - r) <= mpmath.mpf(10) ** -28 * abs(r)


# -- (d) rational after u = e^{-lambda x} ---------------------------------------------------


def test_rational_detects_generalised_logistic():
    from derive.routes import rational

    lam, R = rational.detect(derive.family_from_cdf((1 + sp.exp(-x / 2)) ** -3, x))
    assert lam == sp.Rational(1, 2)
    assert isinstance(rational.detect(derive.family_from_cdf((1 + sp.erf(x)) / 2, x)), str)


@pytest.mark.slow
def test_rational_generalised_logistic_vs_oracle_with_ties():
    from derive.routes import rational

    fam = derive.family_from_cdf((1 + sp.exp(-x)) ** -2, x, name="glogistic2")
    d = rational.attempt(fam, 2)
    assert d.status == "closed"
    for mu in (["0.5", "-1"], ["1", "1"], ["30", "0"]):
        got = d.evaluate(mu, dps=30).p
        ref = derive.oracle.probs(mu, fam, dps=30)
        for g, r in zip(got, ref):
            assert abs(g - r) <= mpmath.mpf(10) ** -28 * abs(r)


@pytest.mark.slow
@pytest.mark.parametrize("name, n", [("uniform", 3), ("laplace", 2), ("exponential", 3)])
def test_registry_families_through_the_piecewise_route(name, n):
    """The structural route reproduces the registry's hand-route closed forms (exactly, at rational mu)."""
    fam = derive.family(name)
    d = piecewise.attempt(fam, n)
    reg = derive_closed(name, n)
    for mu in ([R(1, 2), 0, R(-1, 3)][:n], [R(1, 4), R(1, 4), 0][:n], [R(5, 3), 0, R(7, 5)][:n]):
        got = [sp.simplify(v) for v in _at(d.closed_form, d.symbols, mu)]
        want = [sp.simplify(v) for v in _at(reg.closed_form, reg.symbols, mu)]
        assert all(sp.simplify(a - b) == 0 for a, b in zip(got, want)), (name, mu)


def test_registry_logistic_goes_through_the_rational_route_with_tie_limits():
    """The registry logistic has no hand route: the rational route derives it, ties included
    (p = 1/2 at a tie of two: the exact value, from the symmetry of iid noise)."""
    import mpmath

    d = derive.derive("logistic", 2)
    assert d.extra["route"] == "rational" and d.extra["tie_limits"]
    m1, m2 = d.symbols
    assert d.closed_form[0].subs({m1: sp.Rational(3, 7), m2: sp.Rational(3, 7)}) == sp.Rational(1, 2)
    want = derive.oracle.probs([0.75, -0.5], "logistic", dps=30)
    got = d.evaluate([0.75, -0.5], dps=30).p
    assert all(abs(g - w) <= mpmath.mpf(10) ** -29 * w for g, w in zip(got, want))


# -- (f) exponential-polynomial in u = e^{b x} (Gompertz type) -------------------------


def _gompertz_quad(mu, i, eta=sp.Rational(1, 2)):
    """p_i for Gompertz noise ``F(y) = 1 - e^{eta (1 - e^y)}`` on y >= 0, by mpmath quadrature.

    The family's own f and F, integrated over x >= M = max mu (below, a factor vanishes) in the
    variable ``u = e^x`` (``dx = du/u``), where the integrand decays like ``e^{-eta e^{-mu_i} u}``:
    the nodes are placed geometrically from ``u_0 = e^M`` on the scale ``e^{min mu}`` up to where
    that factor has fallen by e^-1500 from its value at u_0.
    """
    eta = mpmath.mpf(eta.p) / eta.q
    mu = [mpmath.mpf(m) for m in mu]

    def F(y):
        return 1 - mpmath.exp(eta - eta * mpmath.exp(y)) if y > 0 else mpmath.mpf(0)

    def f(y):
        return eta * mpmath.exp(y + eta - eta * mpmath.exp(y)) if y > 0 else mpmath.mpf(0)

    # quad's tolerance is absolute: the integrand is scaled to O(1) at u_0 by S = e^{eta e^{M - mu_i}}
    M = max(mu)
    S = mpmath.exp(eta * mpmath.exp(M - mu[i]))

    def g(u):
        t = mpmath.log(u)
        return S * f(t - mu[i]) * mpmath.fprod(F(t - m) for j, m in enumerate(mu) if j != i) / u

    u0 = mpmath.exp(M)
    h, end = mpmath.exp(min(mu)) / 4, 3000 * mpmath.exp(mu[i]) / eta
    pts = [u0]
    while pts[-1] < u0 + end:
        pts.append(u0 + h)
        h *= 2
    return mpmath.quad(g, pts) / S


def _exact_form_values(d, mu):
    """The closed forms at ``mu`` at 300 digits: an exact form evaluated past its cancellation
    (inclusion-exclusion terms near e^{-e^{spread}} cancel to the much smaller p of a low score)."""
    from derive.conditions import evaluate_dag

    with mpmath.workdps(300):
        return [+evaluate_dag(e, {s: mpmath.mpf(m) for s, m in zip(d.symbols, mu)}) for e in d.closed_form]


GOMPERTZ_VECTORS = (["0.3", "-0.7", "1.1", "0", "-0.2"], ["6.6", "0", "1.5", "3", "0"], ["0", "0", "0", "0", "0"],
                    ["0.5", "0.5", "-1", "2", "-0.25"])


@pytest.mark.slow
def test_gompertz_double_exponential_route_vs_quadrature(n=3):
    """Gompertz(b = 1, eta = 1/2), given by its CDF, through the public path: the double-exponential
    route's closed form against mpmath quadrature of the defining integral at 40 digits (ties and a
    spread of 15 w included)."""
    from derive.derivation import checks_at_level

    fam = derive.family_from_cdf(1 - sp.exp(R(1, 2) - sp.exp(x) / 2), x, sp.Interval(0, sp.oo), name="gompertz")
    with checks_at_level("light"):
        d = derive.derive(fam, n)
    assert d.status == "closed" and d.extra["route"] == "double_exponential"
    with mpmath.workdps(40):
        for mu in GOMPERTZ_VECTORS:
            mu = mu[:n]
            got = _exact_form_values(d, mu)
            for i, g in enumerate(got):
                want = _gompertz_quad(mu, i)
                assert abs(g - want) <= mpmath.mpf(10) ** -30 * abs(want), (mu, i, g, want)


@pytest.mark.slow
def test_gompertz_n5_full_verification_vs_quadrature():
    fam = derive.family_from_cdf(1 - sp.exp(R(1, 2) - sp.exp(x) / 2), x, sp.Interval(0, sp.oo), name="gompertz")
    d = derive.derive(fam, 5)
    assert d.status == "closed" and d.extra["route"] == "double_exponential"
    with mpmath.workdps(40):
        for mu in GOMPERTZ_VECTORS:
            got = _exact_form_values(d, mu)
            assert abs(mpmath.fsum(got) - 1) <= mpmath.mpf(10) ** -35
            for i, g in enumerate(got):
                want = _gompertz_quad(mu, i)
                assert abs(g - want) <= mpmath.mpf(10) ** -30 * abs(want), (mu, i, g, want)


def test_double_exponential_not_applicable_reasons():
    from derive.routes import double_exponential

    assert "bounded above" in double_exponential.detect(derive.family_from_cdf(x**2, x, sp.Interval(0, 1)))
    weibull = derive.family_from_cdf(1 - sp.exp(-x**2), x, sp.Interval(0, sp.oo))
    assert "no $e^{-c" in double_exponential.detect(weibull)
