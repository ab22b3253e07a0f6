"""Piecewise exponential-polynomial noises at n = 5 through the public path, and location-scale images
of registry families at symbolic n.

References, each independent of the route under test:

* polynomial CDFs: exact rationals at rational scores from ``tests/test_piecewise_route._exact_p1``
  (the family's own density times its CDFs, cut at every ``mu_j + b_k``, interpolated and integrated
  exactly by sympy on each segment) and from :func:`derive.atlas.exact_probs` (binomial shifts and
  exact products of the pieces), which must agree with each other too;
* CDFs with exponentials: the 30-digit oracle :func:`derive.oracle.probs`;
* location-scale images ``F(x) = G(a x + b)`` at symbolic n: the registry's own closed form of G at a
  concrete n, at the scores ``a mu``.
"""

from __future__ import annotations

import random
from fractions import Fraction

import mpmath
import pytest
import sympy as sp
from sympy import stats

import derive
from derive import atlas, oracle
from derive import softmax as sm
from derive.conditions import evaluate_dag
from derive.derivation import _expand_sums, checks_at_level
from derive.families import family_from_cdf
from derive.sympy_stats import family_from_sympy_stats
from tests.test_piecewise_route import _exact_p1

X = sp.Symbol("x", real=True)


def _stats(ctor, *args):
    return lambda: family_from_sympy_stats(getattr(stats, ctor)("X", *args))


def _asym_laplace():
    return family_from_cdf(sp.Piecewise((sp.exp(2 * X) / 3, X < 0), (1 - 2 * sp.exp(-X) / 3, True)), X,
                           name="asym_laplace")


# (maker, kinks, degree of the integrand at n) for the polynomial CDFs
POLYNOMIAL = {
    "Uniform(2,5)": (_stats("Uniform", 2, 5), (2, 5), lambda n: n - 1),
    "Triangular(0,2,1)": (_stats("Triangular", 0, 2, 1), (0, 1, 2), lambda n: 2 * n - 1),
    "Trapezoidal(0,1,2,3)": (_stats("Trapezoidal", 0, 1, 2, 3), (0, 1, 2, 3), lambda n: 2 * n - 1),
    "PowerFunction(2,0,1)": (_stats("PowerFunction", 2, 0, 1), (0, 1), lambda n: 2 * n - 1),
    "QuadraticU(0,1)": (_stats("QuadraticU", 0, 1), (0, sp.Rational(1, 2), 1), lambda n: 3 * n - 1),
    "Kumaraswamy(2,3)": (_stats("Kumaraswamy", 2, 3), (0, 1), lambda n: 6 * n - 1),
    "Beta(2,3)": (_stats("Beta", 2, 3), (0, 1), lambda n: 4 * n - 1),
}
EXPONENTIAL = {
    "Exponential(3)": _stats("Exponential", 3),
    "Laplace(0,2)": _stats("Laplace", 0, 2),
    "asym_laplace": _asym_laplace,
    "Erlang(3,1)": _stats("Erlang", 3, 1),
}


def _rational_vectors(n, seed, lo=-1, hi=1):
    """Two random vectors with entries in [lo, hi] (eighths), all tied, two tied at the top."""
    rng = random.Random(seed)
    out = [[Fraction(rng.randint(8 * lo, 8 * hi), 8) for _ in range(n)] for _ in range(2)]
    out.append([Fraction(0)] * n)
    out.append([Fraction(1, 4), Fraction(1, 4)] + [Fraction(-k, 3) for k in range(n - 2)])
    return out


def _exact_reference(fam, maker, mu):
    _, kinks, degree = maker
    n = len(mu)
    rows = []
    for k in range(n):
        order = [mu[k]] + mu[:k] + mu[k + 1:]
        v = _exact_p1(fam, [sp.Rational(m.numerator, m.denominator) for m in order], kinks, degree(n))
        rows.append(Fraction(int(v.p), int(v.q)))
    return rows


# ---------------------------------------------------------------------------
# default tier
# ---------------------------------------------------------------------------


def test_newton_cotes_exact_to_its_degree():
    """The (d+1)-point rule integrates x^m exactly for m <= d, and m = d + 1 when d is even; not beyond."""
    from derive.routes.piecewise import newton_cotes

    for d in (1, 4, 9):
        w = newton_cotes(d)
        top = d + 1 if d % 2 == 0 else d
        for m in range(top + 1):
            assert sum(wk * sp.Rational(k, d) ** m for k, wk in enumerate(w)) == sp.Rational(1, m + 1)
        assert sum(wk * sp.Rational(k, d) ** (top + 1) for k, wk in enumerate(w)) != sp.Rational(1, top + 2)


def test_power_function_n3_public_path_exact():
    """derive.derive at n = 3 against both exact references (which must agree with each other too)."""
    maker = POLYNOMIAL["PowerFunction(2,0,1)"]
    fam = maker[0]()
    with checks_at_level("light"):
        d = derive.derive(fam, 3)
    assert d.status == "closed" and d.extra["route"] == "piecewise"
    pieces = atlas.polynomial_pieces(fam)
    vectors = _rational_vectors(3, seed=7)
    for mu in vectors:
        env = dict(zip(d.symbols, mu))
        got = [evaluate_dag(e, env, exact=True) for e in d.closed_form]
        assert got == atlas.exact_probs(pieces, mu)
    assert atlas.exact_probs(pieces, vectors[0]) == _exact_reference(fam, maker, vectors[0])


def _general_at(d, N, k, mu):
    """The symbolic-n result of ``d`` at n = N, i = k, scores ``mu`` (40 digits)."""
    e = d.result.xreplace(d.definitions).subs({sm.n: N, sm.i: k})
    e = _expand_sums(e)
    e = _expand_sums(e.xreplace(d.definitions)).subs({sm.mu[q + 1]: sp.Rational(m) for q, m in enumerate(mu)})
    return mpmath.mpf(sp.Float(sp.N(e.doit(), 40), 40))


def _check_general(ctor, args, registry, a, mu):
    fam = family_from_sympy_stats(getattr(stats, ctor)("X", *args))
    with checks_at_level("light"):
        d = derive.derive(fam, "general")
        ref = derive.derive(registry, len(mu))
    assert d.status == "closed" and d.extra["route"] == "location_scale"
    assert d.extra["reduced_to"] == registry and d.extra["a"] == a
    assert "symbolic-n" in d.steps[-1].reason
    mu_sorted = sorted((sp.Rational(m) for m in mu), reverse=True)
    env = {s: a * m for s, m in zip(ref.symbols, mu_sorted)}
    with mpmath.workdps(40):
        for k in range(1, len(mu) + 1):
            want = mpmath.mpf(sp.Float(sp.N(ref.closed_form[k - 1].subs(env), 40), 40))
            got = _general_at(d, len(mu), k, mu_sorted)
            assert abs(got - want) <= mpmath.mpf(10) ** -30 * max(abs(want), 1), (ctor, k, got, want)


def test_uniform_location_scale_general_n():
    _check_general("Uniform", (2, 5), "uniform", sp.Rational(1, 3), ["1/2", "-1/4", "-2"])


# ---------------------------------------------------------------------------
# slow tier: n = 5 through derive.derive (full verification level), each family one test
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("ctor, args, registry, a", [
    ("Exponential", (3,), "exponential", 3),
    ("Laplace", (0, 2), "laplace", sp.Rational(1, 2)),
])
def test_location_scale_general_n(ctor, args, registry, a):
    _check_general(ctor, args, registry, a, ["0.3", "-0.7", "1.1", "-0.2"])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(POLYNOMIAL))
def test_polynomial_n5_exact(key):
    maker = POLYNOMIAL[key]
    fam = maker[0]()
    n = 5
    d = derive.derive(fam, n)
    assert d.status == "closed" and d.extra["route"] == "piecewise"
    pieces = atlas.polynomial_pieces(fam)
    for mu in _rational_vectors(n, seed=5):
        env = dict(zip(d.symbols, mu))
        got = [evaluate_dag(e, env, exact=True) for e in d.closed_form]
        assert got == atlas.exact_probs(pieces, mu), (key, mu)
        assert sum(got) == 1
    # p_1 at one vector also against sympy's own exact integration of the family's functions
    mu = _rational_vectors(n, seed=5)[0]
    _, kinks, degree = maker
    p1 = _exact_p1(fam, [sp.Rational(m.numerator, m.denominator) for m in mu], kinks, degree(n))
    assert atlas.exact_probs(pieces, mu)[0] == Fraction(int(p1.p), int(p1.q))


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(EXPONENTIAL))
def test_exponential_pieces_n5_oracle(key):
    fam = EXPONENTIAL[key]()
    d = derive.derive(fam, 5)
    assert d.status == "closed" and d.extra["route"] == "piecewise"
    for mu in ([Fraction(3, 10), Fraction(-7, 10), Fraction(11, 10), Fraction(-1, 5), Fraction(0)],
               [Fraction(1, 2), Fraction(1, 2), Fraction(0), Fraction(-1), Fraction(-3, 2)]):
        ref = oracle.probs([str(m) for m in mu], fam, dps=30)
        with mpmath.workdps(40):
            env = {s: mpmath.mpf(m.numerator) / m.denominator for s, m in zip(d.symbols, mu)}
            got = [evaluate_dag(e, env) for e in d.closed_form]
            for g, r in zip(got, ref):
                assert abs(g - r) <= mpmath.mpf(10) ** -28 * abs(r), (key, mu, g, r)


@pytest.mark.slow
def test_registry_uniform_n5_through_the_piecewise_route():
    """The registry uniform at n = 5 (past its hand route's n! orderings): exact rationals against both
    references, scale 2 included (``p(mu; 2) = p(mu/2; 1)``)."""
    fam = derive.family("uniform")
    d = derive.derive(fam, 5)
    assert d.status == "closed" and d.extra["route"] == "piecewise"
    pieces = atlas.polynomial_pieces(fam)
    d2 = derive.derive("uniform", 5, scale=2)
    for mu in _rational_vectors(5, seed=11):
        env = dict(zip(d.symbols, mu))
        got = [evaluate_dag(e, env, exact=True) for e in d.closed_form]
        assert got == atlas.exact_probs(pieces, mu), mu
        assert [evaluate_dag(e, {s: 2 * m for s, m in env.items()}, exact=True) for e in d2.closed_form] == got
    mu = _rational_vectors(5, seed=11)[0]
    p1 = _exact_p1(fam, [sp.Rational(m.numerator, m.denominator) for m in mu], (0, 1), 4)
    assert atlas.exact_probs(pieces, mu)[0] == Fraction(int(p1.p), int(p1.q))
