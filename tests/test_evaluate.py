"""Derivation.evaluate: every p_i and log p_i of a closed form, verified to the requested digits.

References: derive.oracle.probs (an independent quadrature of (eq:pi)) at 30 digits, including
entries far below 1e-300 where the closed forms cancel, and exact ties where the logistic form
is 0/0.
"""

import types

import mpmath
import pytest
import sympy as sp

import derive
from derive.derivation import EvaluationError, evaluate_closed_form

oracle = pytest.importorskip("derive.oracle")


def _close(got, ref, digits=29):
    with mpmath.workdps(40):
        for g, r in zip(got, ref):
            if r == 0:
                assert g == 0
            else:
                assert abs(g - r) <= mpmath.mpf(10) ** -digits * abs(r), (g, r)


def _against_oracle(family, n, mu, **params):
    d = derive.derive(family, n, **params)
    e = d.evaluate(mu, dps=30)
    ref = oracle.probs([str(m) for m in mu], family, dps=30, **params)
    _close(e.p, ref)
    with mpmath.workdps(40):
        for lp, r in zip(e.log_p, ref):
            if r > 0:
                assert abs(lp - mpmath.log(r)) <= mpmath.mpf(10) ** -28 * max(1, abs(lp))
    return e


def test_normal_n3_far_apart_entries_to_30_digits():
    # p_2 = 3.606e-100 (= Phi(-30/sqrt 2) to 1e-390), p_3 = 6.48e-394
    e = _against_oracle("normal", 3, ["30", "0", "-30"])
    assert mpmath.nstr(e.p[1], 4) == "3.606e-100"
    assert mpmath.nstr(e.p[2], 2) == "6.5e-394"


def test_gumbel_min_far_apart_entries_need_more_precision():
    e = _against_oracle("gumbel_min", 3, ["30", "0", "-30"])
    # 1 - 1/(1 + e^-30) - ... cancels ~40 digits for p_3 = 1.6e-39: the working precision rose
    assert e.working_dps > 30 + 40


@pytest.mark.parametrize("family,mu", [
    ("exponential", ["0.25", "-1.5", "0.75"]),
    pytest.param("laplace", ["-0.5", "2", "0.125"], marks=pytest.mark.slow),
    pytest.param("uniform", ["0.3", "0.1", "0"], marks=pytest.mark.slow),
    pytest.param("logistic", ["1.5", "-0.25", "0.5"], marks=pytest.mark.slow),
    pytest.param("normal", ["-2", "0.5", "0"], marks=pytest.mark.slow),
])
def test_other_families_match_the_oracle(family, mu):
    _against_oracle(family, 3, mu)


def test_logistic_ties_give_the_limit():
    # the closed form carries its tie limits (n <= 3) ...
    for mu in (["0.5", "0.5", "0"], ["1", "1", "1"]):
        _against_oracle("logistic", 3, mu)
    # ... and the bare partial-fraction form, 0/0 at ties, is evaluated as the limit along mu + t v
    d = derive.derive("logistic", 3)
    bare = [e.args[-1][0] if isinstance(e, sp.Piecewise) else e for e in d.closed_form]
    plain = types.SimpleNamespace(closed_form=bare, symbols=d.symbols, extra={}, status=d.status)
    for mu in (["0.5", "0.5", "0"], ["1", "1", "1"]):
        e = evaluate_closed_form(plain, mu, dps=30)
        assert e.how == "limit at ties"
        _close(e.p, oracle.probs(mu, "logistic", dps=30))


def test_normal_stable_form_equals_owens_form():
    d = derive.derive("normal", 3)
    stable, owen = d.extra["stable_forms"], d.closed_form
    # every sign pattern of (Delta_12, Delta_13) for some entry, ties included
    points = [(-2, 0.5, 0), (0, 1, 1), (0, 0, 2)]
    with mpmath.workdps(45):
        for mu in points:
            env = dict(zip(d.symbols, [sp.nsimplify(m) for m in mu]))
            for s_, o in zip(stable, owen):
                a, b = sp.N(s_.xreplace(env), 35), sp.N(o.xreplace(env), 35)
                assert abs(mpmath.mpf(a) - mpmath.mpf(b)) < mpmath.mpf(10) ** -30, mu


@pytest.mark.slow
def test_generic_path_raises_precision_for_owens_cancelling_form():
    # Owen's form itself (no stable rearrangement): p_3 ~ 1e-28 at mu = (8, 0, -8) cancels ~28 digits
    d = derive.derive("normal", 3)
    plain = types.SimpleNamespace(closed_form=d.closed_form, symbols=d.symbols, extra={}, status=d.status)
    e = evaluate_closed_form(plain, ["8", "0", "-8"], dps=30)
    _close(e.p, oracle.probs(["8", "0", "-8"], "normal", dps=30))
    assert e.working_dps > 60


def test_bad_input_and_missing_closed_form():
    d = derive.derive("gumbel_min", 3)
    with pytest.raises(ValueError, match="mu"):
        d.evaluate([0, 1], dps=30)
    with pytest.raises(ValueError, match="mu"):
        d.evaluate([0, float("nan"), 1])
    with pytest.raises(ValueError, match="dps"):
        d.evaluate([0, 1, 2], dps=0)
    with pytest.raises(ValueError, match="oracle"):
        derive.derive("normal", 4).evaluate([0, 1, 2, 3])
    assert issubclass(EvaluationError, ArithmeticError)
