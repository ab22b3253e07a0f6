"""derive.present: display forms are short and equal to the derived forms (checked independently here)."""

import mpmath
import pytest
import sympy as sp

import derive
from derive.latex import latex
from derive.present import LATEX_BUDGET, present, present_derivation


def _value(e, env):
    with mpmath.workdps(40):
        return mpmath.mpf(sp.N(e.xreplace(env), 35))


def test_laplace_n2_delta_form():
    d = derive.derive("laplace", 2)
    pr = present_derivation(d)["ranks"][0]
    D = sp.Symbol("Delta_12", real=True)
    assert sp.simplify(pr.expr - (1 - (2 + D) * sp.exp(-D) / 4)) == 0


@pytest.mark.parametrize("family,n,params", [pytest.param("normal", 3, {}, marks=pytest.mark.slow), ("laplace", 2, {}),
                                             pytest.param("student_t", 2, {"nu": 3}, marks=pytest.mark.slow),
                                             ("gumbel_min", 3, {}), ("exponential", 3, {})])
def test_budget_and_equality(family, n, params):
    d = derive.derive(family, n, **params)
    pres = present_derivation(d)
    for pr in pres["steps"] + (pres["closed"] or []):
        assert len(latex(pr.expr)) <= LATEX_BUDGET, latex(pr.expr)
    # independent check: definitions put back, value at a random point equals the derived closed form
    env = dict(zip(d.symbols, [sp.Rational(7, 10), sp.Rational(-3, 10), sp.Rational(11, 10)][:n]))
    for pr, e in zip(pres["closed"], d.closed_form):
        back = pr.expr
        for _ in range(3):
            back = back.xreplace(pr.definitions)
        back = back.replace(lambda x: type(x).__name__ == "_NormalCDF",
                            lambda x: (1 + sp.erf(x.args[0] / sp.sqrt(2))) / 2)
        assert abs(_value(back, env) - _value(e, env)) < mpmath.mpf(10) ** -28


@pytest.mark.slow
def test_normal_n3_owen_arguments_are_named_and_no_sqrt2_condition():
    d = derive.derive("normal", 3)
    pr = present_derivation(d)["closed"][0]
    tex = latex(pr.expr)
    assert "a_{12}" in tex and "\\Delta_{12} = 0" in tex and "\\sqrt{2} \\left(" not in tex
    a12 = pr.definitions[sp.Symbol("a_12", real=True)]
    D12, D13 = sp.Symbol("Delta_12", real=True), sp.Symbol("Delta_13", real=True)
    ref = (2 * D13 - D12) / (sp.sqrt(3) * D12)
    assert sp.simplify(a12.xreplace({D12: 1, D13: sp.Rational(5, 2)}) ** 2 - ref.subs({D12: 1, D13: sp.Rational(5, 2)}) ** 2) == 0


def test_present_leaves_symbolic_n_alone():
    x = sp.Symbol("x")
    assert present(x + 1, ()).expr == x + 1


def test_log_of_powers_of_helper_symbols_is_split():
    """log(c_2^a c_3^b) in a form written with the derivation's c_j = e^{mu_j - mu_1} is shown as
    a log c_2 + b log c_3, checked equal (c_j put back on both sides) at 30 digits."""
    m1, m2, m3 = sp.symbols("mu_1 mu_2 mu_3", real=True)
    c2, c3 = sp.symbols("c_2 c_3", positive=True)
    defs = {c2: sp.exp(m2 - m1), c3: sp.exp(m3 - m1)}
    expr = (c2 - c3 + sp.log(c2 ** (c2 ** 2 * (c3 - 1) ** 2) * c3 ** (-c3 ** 2))) / ((c2 - 1) * (c3 - 2))
    pr = present(expr, (m1, m2, m3), 0, definitions=defs)
    assert pr.check.startswith("numeric-30-digits")
    logs = pr.expr.atoms(sp.log)
    assert logs and all(g.args[0] in (c2, c3) for g in logs), pr.expr
    assert "log{\\left(e^" not in latex(pr.expr)
