"""Symbolic-n closed forms (derive.general_n) instantiated at n = 2..5.

The symbolic-n results of uniform and laplace (sorted scores, ties allowed) and logistic
(distinct scores) are written out for concrete n (``n`` and ``i`` substituted, the sums over
segments / elementary symmetric polynomials / residues expanded) and compared with
independent values: exact rationals from a direct piecewise integration (uniform), the
30-digit oracle (every family), and the concrete-n closed forms that derive.derive builds
per n (uniform n = 2 in the default tier; the rest, n = 3, 4 and laplace n = 5 in the slow tier;
uniform n = 5 is only compared with the exact rationals: its concrete-n derivation takes minutes).
"""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from derive import closed, derive, family, oracle
from derive.derivation import _entry_expressions, checks_at_level
from derive.pages import _has_general_derivation

TOL = mpmath.mpf(10) ** -28


@pytest.fixture(scope="module")
def general():
    with checks_at_level("light"):
        return {name: derive(name, "general") for name in ("uniform", "laplace", "logistic")}


def _instantiate(d, n):
    exprs, syms = _entry_expressions(d, n)
    assert exprs is not None and len(exprs) == n
    return exprs, syms


def _sorted_points(n, seed, count, gap, ties=True):
    """Sorted rational scores; with ``ties`` every other point repeats some scores."""
    rng = random.Random(seed)
    out = []
    for q in range(count):
        v = sp.Rational(rng.randint(-1000, 1000), 1000)
        row = []
        for k in range(n):
            row.append(v)
            if not (ties and q % 2 == 1 and rng.random() < 0.5):
                v -= sp.Rational(rng.randint(1, int(1000 * gap)), 1000)
        out.append(row)
    return out


def _uniform_exact(mu):
    """p for uniform noise on [0, 1] at rational mu: int_{mu_i}^{mu_i+1} prod_{j != i} clamp(x - mu_j, 0, 1) dx,
    integrated exactly between all breakpoints mu_j, mu_j + 1 (no routes, no closed forms)."""
    x = sp.Symbol("x")
    ps = []
    for i, mi in enumerate(mu):
        cuts = sorted({mi, mi + 1} | {c for m in mu for c in (m, m + 1) if mi < c < mi + 1})
        total = sp.Integer(0)
        for a, b in zip(cuts, cuts[1:]):
            mid = (a + b) / 2
            f = sp.Integer(1)
            for j, mj in enumerate(mu):
                if j == i:
                    continue
                f *= 0 if mid <= mj else (1 if mid >= mj + 1 else x - mj)
            F = sp.Poly(f, x).integrate()
            total += F.eval(b) - F.eval(a)
        ps.append(total)
    return ps


@pytest.mark.parametrize("n", [2, 3, 4, pytest.param(5, marks=pytest.mark.slow)])
def test_uniform_general_exact_rationals(general, n):
    exprs, syms = _instantiate(general["uniform"], n)
    for mu in _sorted_points(n, 10 + n, 4, gap=0.7):
        got = [e.xreplace(dict(zip(syms, mu))) for e in exprs]
        assert all(g.is_Rational for g in got), got
        want = _uniform_exact(mu)
        assert got == want, (mu, got, want)
        assert sum(got) == 1


@pytest.mark.parametrize("name, gap", [("laplace", 1.5), ("logistic", 1.5)])
@pytest.mark.parametrize("n", [3, pytest.param(2, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow),
                               pytest.param(5, marks=pytest.mark.slow)])
def test_general_matches_oracle(general, name, gap, n):
    d = general[name]
    exprs, syms = _instantiate(d, n)
    fns = [sp.lambdify(syms, e, "mpmath") for e in exprs]
    # logistic's form needs distinct scores (its ties are 0/0): no ties there
    for mu in _sorted_points(n, 20 + n, 2, gap, ties=name != "logistic"):
        mu = [float(m) for m in mu]
        want = oracle.probs(mu, name, dps=30)
        with mpmath.workdps(40):
            got = [fn(*map(mpmath.mpf, mu)) for fn in fns]
        for g, w in zip(got, want):
            assert abs(g - w) <= TOL * abs(w), (mu, g, w)


@pytest.mark.slow
def test_general_evaluate_any_order_and_ties(general):
    """Derivation.evaluate sorts (uniform, laplace) and takes limits at ties (logistic)."""
    for name, mu in (("uniform", [0.3, -0.5, 0.1, 0.3]), ("laplace", [-1, 2, 0.5, 0.5]), ("logistic", [1, -2, 1, 0])):
        e = general[name].evaluate(mu, dps=30)
        want = oracle.probs(mu, name, dps=30)
        for g, w in zip(e.p, want):
            assert abs(g - w) <= TOL * max(abs(w), mpmath.mpf(10) ** -300), (name, mu, g, w)


def test_general_column_is_the_derivation(general):
    """The notes' general-n cell is closed only for a derivation that ends in a formula (no integral)."""
    for d in general.values():
        assert d.status == "closed" and _has_general_derivation(d)
        assert not d.result.has(sp.Integral)
    assert "distinct scores" in general["logistic"].reason


def _concrete_sorted(name, n):
    """The concrete-n closed forms for mu_1 >= ... >= mu_n (rank formulas; logistic: its closed form)."""
    syms = sp.symbols(f"mu_1:{n + 1}", real=True)
    with checks_at_level("light"):
        if name == "uniform":
            return [closed._uniform_rank(family(name), syms, r, points=1).result for r in range(n)], syms
        if name == "laplace":
            return [closed._laplace_rank(family(name), syms, r, points=1).result for r in range(n)], syms
        d = derive(name, n)
    # distinct scores: the last Piecewise branch of a tie-limited form is the general one
    return [e.args[-1][0] if isinstance(e, sp.Piecewise) else e for e in d.closed_form], tuple(d.symbols)


def _compare_with_concrete(general, name, n, gap):
    exprs, syms = _instantiate(general[name], n)
    forms, csyms = _concrete_sorted(name, n)
    for mu in _sorted_points(n, 30 + n, 3, gap, ties=name != "logistic"):
        if name == "uniform":
            # both are exact rationals at rational scores (a 0 entry of the rank form rounds to 1e-42 in floats)
            assert [a.xreplace(dict(zip(syms, mu))) for a in exprs] == [b.xreplace(dict(zip(csyms, mu))) for b in forms]
            continue
        with mpmath.workdps(40):
            pt = [mpmath.mpf(m.p) / m.q for m in mu]
            for a, b in zip(exprs, forms):
                va = sp.lambdify(syms, a, "mpmath")(*pt)
                vb = sp.lambdify(csyms, b, "mpmath")(*pt)
                assert abs(va - vb) <= TOL * max(abs(vb), mpmath.mpf(10) ** -300), (name, n, mu, va, vb)


@pytest.mark.parametrize("name, gap", [("uniform", 0.7), pytest.param("laplace", 1.5, marks=pytest.mark.slow),
                                       pytest.param("logistic", 1.5, marks=pytest.mark.slow)])
def test_general_equals_concrete_n2(general, name, gap):
    _compare_with_concrete(general, name, 2, gap)


@pytest.mark.slow
@pytest.mark.parametrize("name, gap, n", [("uniform", 0.7, 3), ("uniform", 0.7, 4), ("laplace", 1.5, 3),
                                          ("laplace", 1.5, 4), ("laplace", 1.5, 5), ("logistic", 1.5, 3),
                                          ("logistic", 1.5, 4)])
def test_general_equals_concrete_slow(general, name, gap, n):
    _compare_with_concrete(general, name, n, gap)


def test_cli_symbolic_n_list_matches_the_derivations():
    """`perturbmax derive FAMILY` without --n is offered exactly for the families with a symbolic-n formula."""
    from derive.cli import SYMBOLIC_N_FAMILIES
    from derive.families import FAMILY_NAMES

    with checks_at_level("light"):
        for name in FAMILY_NAMES:
            if name in ("gumbel", "student_t") or name in ("uniform", "laplace", "logistic"):
                continue  # gumbel: softmax_derivation; student_t needs nu; the rest: the fixture's tests
            d = derive(name, "general")
            assert (name in SYMBOLIC_N_FAMILIES) == _has_general_derivation(d), name
