"""The piecewise exponential-polynomial route against exact values computed another way.

The reference integrates ``p_1 = Int f(x - mu_1) prod_{j>1} F(x - mu_j) dx``
at concrete rational ``mu``: the line is cut at the numbers ``mu_j + b_k``
(``b_k`` the kinks of F), on each segment the integrand is sympy's
piecewise-folded product with the branch holding at the segment's midpoint,
and sympy integrates that polynomial exactly.  No Max/Min formula, no
term tables: only the family's own CDF and sympy's integrator.
"""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
import sympy as sp
from sympy import stats

from derive.conditions import evaluate_dag
from derive.derivation import checks_at_level
from derive.routes import piecewise
from derive.sympy_stats import family_from_sympy_stats

X = sp.Symbol("x", real=True)


def _exact_p1(fam, mu, kinks, degree):
    mu = [sp.Rational(m) for m in mu]
    y = fam.symbol
    body = fam.pdf(y).subs(y, X - mu[0]) * sp.Mul(*[fam.cdf(y).subs(y, X - m) for m in mu[1:]])
    cuts = sorted({m + b for m in mu for b in kinks})
    total = sp.Integer(0)
    for a, b in zip(cuts, cuts[1:]):
        # between consecutive cuts the integrand is one polynomial of degree <= ``degree``:
        # interpolate it through exact values at interior points, integrate exactly
        xs = [a + (b - a) * sp.Rational(k, degree + 2) for k in range(1, degree + 2)]
        poly = sp.interpolate([(t, body.xreplace({X: t})) for t in xs], X)
        total += sp.integrate(poly, (X, a, b))
    return total


def _route_probs(d, mu):
    """Every p_k of the route's closed forms at rational ``mu``, in exact rationals."""
    env = {s: Fraction(int(m.p), int(m.q)) for s, m in zip(d.symbols, mu)}
    return [sp.Rational(v.numerator, v.denominator) for v in (evaluate_dag(e, env, exact=True)
                                                               for e in d.closed_form)]


def _vectors(n, seed, lo=-2, hi=2):
    rng = random.Random(seed)
    out = [[sp.Rational(rng.randint(lo * 8, hi * 8), 8) for _ in range(n)] for _ in range(2)]
    out.append([sp.Integer(0)] * n)                      # all tied
    out.append([sp.Rational(1, 2), sp.Rational(1, 2)] + [sp.Integer(-k) for k in range(n - 2)])
    return out


# (family, kinks, degree in x of the integrand at n: the density's plus n - 1 times the CDF's)
TRIANGULAR = (lambda: family_from_sympy_stats(stats.Triangular("X", 0, 2, 1)), (0, 1, 2), lambda n: 2 * n - 1)
UNIFORM = (lambda: family_from_sympy_stats(stats.Uniform("X", 2, 5)), (2, 5), lambda n: n - 1)
POWER = (lambda: family_from_sympy_stats(stats.PowerFunction("X", 2, 0, 1)), (0, 1), lambda n: 2 * n - 1)
TRAPEZOID = (lambda: family_from_sympy_stats(stats.Trapezoidal("X", 0, 1, 2, 3)), (0, 1, 2, 3),
             lambda n: 2 * n - 1)


def _check(maker, n, seed):
    make, kinks, degree = maker
    fam = make()
    with checks_at_level("light"):
        d = piecewise.attempt(fam, n)
    assert d.status == "closed"
    for mu in _vectors(n, seed):
        got = _route_probs(d, mu)
        assert sum(got) == 1
        for k in range(n):
            # p_k by relabelling: class k first
            order = [mu[k]] + mu[:k] + mu[k + 1:]
            assert got[k] == _exact_p1(fam, order, kinks, degree(n)), (mu, k)


def test_triangular_n2_exact():
    _check(TRIANGULAR, 2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("maker", [TRIANGULAR, UNIFORM, POWER, TRAPEZOID], ids=["tri", "uni", "pow", "trap"])
def test_piecewise_n4_exact(maker):
    _check(maker, 4, seed=4)
