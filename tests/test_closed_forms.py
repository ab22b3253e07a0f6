"""Closed forms from derive.derive against independent values.

References: numpy softmax; published facts (uniform mu = (0.3, 0.1, 0) ->
3443/6000, 1577/6000, 980/6000; normal mu = (1, 0, 0) -> p_1 =
0.633702045778079731188...; normal n = 2 -> Phi(Delta/sqrt 2); cauchy n = 2
-> 1/2 + atan(Delta/2)/pi); and derive.oracle.probs at 30 digits on random
score vectors (a few per case by default, >= 20 in the slow run).
"""

import random
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy import special

import derive
from derive.closed import derive as derive_closed

oracle = pytest.importorskip("derive.oracle")

DPS = 30


def _eval(d, mu):
    env = dict(zip(d.symbols, [sp.Rational(m) if isinstance(m, (int, str, Fraction)) else sp.Float(m, 50) for m in mu]))
    return [sp.N(e.subs(env), 45) for e in d.closed_form]


def _compare_to_oracle(d, family, vectors, digits=27, **params):
    with mpmath.workdps(45):
        return _compare(d, family, vectors, digits, **params)


def _compare(d, family, vectors, digits, **params):
    worst = 0
    for mu in vectors:
        got = _eval(d, mu)
        ref = oracle.probs([str(m) for m in mu], family, dps=DPS, **params)
        for g, r in zip(got, ref):
            g = mpmath.mpf(str(g))
            err = abs(g - r) / max(abs(r), mpmath.mpf(10) ** -300)
            worst = max(worst, err)
            assert err < mpmath.mpf(10) ** -digits, (family, mu, g, r)
    return worst


def _vectors(n, count, seed, spread=2.0):
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        # exact decimal strings: the same number for sympy (Rational) and the oracle
        v = ["%.3f" % (rng.randint(-int(spread * 1000), int(spread * 1000)) / 1000) for _ in range(n)]
        if len(set(v)) == n:
            out.append(v)
    return out


# -- facts from outside the code -------------------------------------------------


def test_uniform_published_fact_exact_rationals():
    d = derive_closed("uniform", 3)
    env = dict(zip(d.symbols, [sp.Rational(3, 10), sp.Rational(1, 10), 0]))
    got = [sp.nsimplify(e.subs(env)) for e in d.closed_form]
    assert got == [sp.Rational(3443, 6000), sp.Rational(1577, 6000), sp.Rational(980, 6000)]


def test_uniform_spread_above_one_gives_exact_zero():
    d = derive_closed("uniform", 3)
    env = dict(zip(d.symbols, [sp.Rational(1, 2), sp.Integer(0), sp.Integer(-2)]))
    vals = [sp.simplify(e.subs(env)) for e in d.closed_form]
    # class 3 is 2 behind the top: it can never win
    assert vals[2] == 0
    # classes 1, 2: P[U2 - U1 > 1/2] = (1/2)^2 / 2 = 1/8 (triangle area), so p = (7/8, 1/8, 0)
    assert vals[0] == sp.Rational(7, 8) and vals[1] == sp.Rational(1, 8)
    # mu = (2, 1/2, 0): class 1 always wins
    env = dict(zip(d.symbols, [sp.Integer(2), sp.Rational(1, 2), sp.Integer(0)]))
    assert [sp.simplify(e.subs(env)) for e in d.closed_form] == [1, 0, 0]


@pytest.mark.slow
def test_normal_n3_published_value():
    d = derive_closed("normal", 3)
    assert d.status == "special"
    v = _eval(d, [1, 0, 0])[0]
    with mpmath.workdps(40):
        assert abs(mpmath.mpf(str(v)) - mpmath.mpf("0.633702045778079731188")) < mpmath.mpf(10) ** -20


def test_normal_n2_is_phi_of_delta_over_sqrt2():
    d = derive_closed("normal", 2)
    assert d.status == "special"
    for delta in (-3.5, -0.2, 0.0, 1.7):
        got = float(d.closed_form[0].subs(dict(zip(d.symbols, (delta, 0.0)))))
        assert got == pytest.approx(special.ndtr(delta / np.sqrt(2)), rel=1e-14, abs=1e-300)


def test_cauchy_n2_is_arctan_formula():
    d = derive_closed("cauchy", 2)
    assert d.status == "closed"
    for delta in (-7.0, -0.3, 0.5, 12.0):
        got = float(d.closed_form[0].subs(dict(zip(d.symbols, (delta, 0.0)))))
        assert got == pytest.approx(0.5 + np.arctan(delta / 2) / np.pi, rel=1e-14)


def test_gumbel_and_gumbel_min_n2_are_sigmoids():
    for name, sign in (("gumbel", 1), ("gumbel_min", 1)):
        d = derive_closed(name, 2)
        for delta in (-4.0, 0.3, 2.5):
            got = float(d.closed_form[0].subs(dict(zip(d.symbols, (delta, 0.0)))))
            assert got == pytest.approx(special.expit(sign * delta), rel=1e-13)


def test_scale_is_honoured():
    d = derive_closed("gumbel", 3, scale=2)
    v = np.array([1.0, -0.5, 0.25])
    got = [float(e.subs(dict(zip(d.symbols, v)))) for e in d.closed_form]
    np.testing.assert_allclose(got, special.softmax(v / 2), rtol=1e-13)
    d = derive_closed("cauchy", 2, scale=3)
    got = float(d.closed_form[0].subs(dict(zip(d.symbols, (1.2, 0.0)))))
    assert got == pytest.approx(0.5 + np.arctan(1.2 / 3 / 2) / np.pi, rel=1e-13)


# -- against the oracle -------------------------------------------------------------

FAST_CASES = [
    ("gumbel_min", 3, {}),
    ("exponential", 3, {}),
    ("uniform", 3, {}),
    ("laplace", 3, {}),
    ("logistic", 3, {}),
    ("normal", 3, {}),
    ("student_t", 2, {"nu": 3}),
]


@pytest.mark.parametrize("family,n,params", FAST_CASES[:-1], ids=lambda v: str(v))
def test_closed_form_matches_oracle_few_points(family, n, params):
    d = derive_closed(family, n, **params)
    assert d.status in ("closed", "special")
    _compare_to_oracle(d, family, _vectors(n, 2, seed=hash(family) % 1000), **params)


SLOW_CASES = [(f, n, {}) for f in ("gumbel", "gumbel_min", "exponential", "uniform", "laplace", "logistic")
              for n in (2, 3, 4)] + [("normal", 2, {}), ("normal", 3, {}), ("cauchy", 2, {}),
                                     ("student_t", 2, {"nu": 1}), ("student_t", 2, {"nu": 3}),
                                     ("exponential", 3, {"scale": 2}), ("laplace", 2, {"scale": sp.Rational(1, 2)})]


@pytest.mark.slow
@pytest.mark.parametrize("family,n,params", SLOW_CASES, ids=lambda v: str(v))
def test_closed_form_matches_oracle_20_points(family, n, params):
    d = derive_closed(family, n, **params)
    assert d.status in ("closed", "special")
    spread = 2.0 * float(params.get("scale", 1))
    _compare_to_oracle(d, family, _vectors(n, 20, seed=7 + n, spread=spread), **params)


def test_exponential_rational_inputs_match_oracle_to_40_digits():
    d = derive_closed("exponential", 3)
    mu = ["0.375", "-0.28125", "0"]
    got = _eval(d, [Fraction(m) for m in mu])
    ref = oracle.probs(mu, "exponential", dps=40)
    with mpmath.workdps(45):
        for g, r in zip(got, ref):
            assert abs(mpmath.mpf(str(g)) - r) < mpmath.mpf(10) ** -38


def test_uniform_rational_inputs_exact():
    d = derive_closed("uniform", 3)
    mu = [Fraction(3, 8), Fraction(-1, 4), Fraction(1, 5)]
    exact = [sp.nsimplify(e.subs(dict(zip(d.symbols, map(sp.Rational, mu))))) for e in d.closed_form]
    assert all(v.is_Rational for v in exact)
    assert sum(exact) == 1
    ref = oracle.probs([str(float(m)) for m in mu], "uniform", dps=40)
    with mpmath.workdps(45):
        for v, r in zip(exact, ref):
            assert abs(mpmath.mpf(v.p) / v.q - r) < mpmath.mpf(10) ** -38


# -- statuses and reasons --------------------------------------------------------------


def test_no_closed_form_cases_name_the_oracle():
    for family, n in (("normal", 4), ("cauchy", 3), ("student_t", 3)):
        d = derive_closed(family, n)
        assert d.status == "none" and d.closed_form is None
        assert "derive.oracle.probs" in d.reason
        assert "Risch" in d.reason  # what was tried


def test_student_t_nu2_reports_where_sympy_stopped():
    d = derive_closed("student_t", 2, nu=2)
    assert d.status == "none"
    assert "unevaluated" in d.reason


def test_general_n_statuses():
    assert derive_closed("gumbel", "general").status == "closed"
    assert derive_closed("gumbel_min", sp.Symbol("n")).status == "closed"
    assert derive_closed("normal", "general").status == "none"


@pytest.mark.parametrize("bad", [0, -3, 2.0, 2.5, "three", True, None])
def test_bad_n_raises_naming_n(bad):
    with pytest.raises(ValueError, match="n"):
        derive_closed("gumbel", bad)


def test_exported_from_package():
    assert derive.derive is derive_closed


@pytest.mark.slow
def test_user_family_n2():
    x = sp.Symbol("x", real=True)
    fam = derive.family_from_cdf(1 / (1 + sp.exp(-x)), x, name="mylogistic")
    d = derive_closed(fam, 2)
    assert d.status == "closed"
    # logistic difference CDF (Balakrishnan): F(D) = (e^D (D - 1) + 1) / (e^D - 1)^2 * e^D ... check vs oracle
    _compare_to_oracle(d, fam, _vectors(2, 2, seed=3))


# -- symbolic n ---------------------------------------------------------------------------


@pytest.mark.parametrize("family,mu", [("gumbel_min", ["1.25", "-0.5", "0", "2"]),
                                       ("exponential", ["0.3", "-1", "2", "0.5"])])
def test_general_n_derivation_is_checked_and_matches_the_oracle(family, mu):
    d = derive_closed(family, "general")
    assert d.status == "closed" and len(d.steps) >= 5
    # every step after the start was verified (symbolically, or at 30 digits at concrete n)
    assert all(st.check != "given" for st in d.steps[1:])
    assert any("numeric" in st.check for st in d.steps)
    # the symbolic-n result written out for n = 4 against the oracle (an independent quadrature)
    got = d.evaluate(mu, dps=30).p
    ref = oracle.probs(mu, family, dps=30)
    with mpmath.workdps(40):
        for g, r in zip(got, ref):
            assert abs(g - r) < mpmath.mpf(10) ** -29 * r


@pytest.mark.parametrize("family", ["uniform", "laplace"])
def test_sorted_general_n_matches_the_oracle(family):
    from derive.derivation import _expand_sums, mp_value
    from derive.softmax import SYMBOLS

    d = derive_closed(family, "general")
    assert d.status == "closed" and "\\geq" in d.assumptions
    assert all(st.check != "given" for st in d.steps[1:])
    mu = ["0.3", "0.1", "-0.45", "-1.2"]  # sorted; for uniform the last class is more than 1 behind the top
    ref = oracle.probs(mu, family, dps=30)
    env = {SYMBOLS["mu"][k + 1]: sp.Rational(m) for k, m in enumerate(mu)}
    for k in range(1, 5):
        e = _expand_sums(d.result.subs({SYMBOLS["n"]: 4, SYMBOLS["i"]: k})).xreplace(env)
        v = mp_value(e)
        with mpmath.workdps(40):
            assert abs(v - ref[k - 1]) < mpmath.mpf(10) ** -29 * max(ref[k - 1], mpmath.mpf(10) ** -30)


def test_logistic_closed_form_has_its_limits_at_ties():
    # the partial-fraction form is 0/0 at ties; the closed form carries the limits (n <= 3)
    d = derive_closed("logistic", 3)
    with mpmath.workdps(45):
        for mu in (["0.5", "0.5", "0"], ["1", "1", "1"], ["0", "2", "2"], ["1", "0", "1"]):
            got = _eval(d, [Fraction(m) for m in mu])
            ref = oracle.probs(mu, "logistic", dps=30)
            for g, r in zip(got, ref):
                assert abs(mpmath.mpf(str(g)) - r) < mpmath.mpf(10) ** -28 * r, (mu, g, r)
    d2 = derive_closed("logistic", 2)
    assert [sp.nsimplify(e.subs(dict(zip(d2.symbols, (1, 1))))) for e in d2.closed_form] == [sp.Rational(1, 2)] * 2


@pytest.mark.slow
def test_logistic_n4_at_ties_and_near_ties_by_evaluate():
    """n >= 4: the closed form is the partial-fraction expression, 0/0 at ties (its tie
    limits are not built symbolically).  Derivation.evaluate takes the limit along
    mu + t v (verified at two t) at exact ties and raises its precision at near ties;
    every tie pattern of n = 4 (pairs, a pair with the leader, two pairs, a triple, all
    four) and near ties 1e-25 and 2^-40 apart, against the oracle at 30 digits."""
    d = derive_closed("logistic", 4)
    assert d.status == "closed"
    vectors = [["0", "0", "1", "2"], ["2", "2", "1", "0"], ["1", "1", "0", "0"], ["0.5", "0.5", "0.5", "-3"],
               ["3", "3", "3", "3"], ["1", "0", "1", "-2"], ["0", "1e-25", "1", "2"],
               [0.0, 2.0 ** -40, -1.5, -1.5 + 2.0 ** -40]]
    with mpmath.workdps(45):
        for mu in vectors:
            e = d.evaluate(mu, dps=DPS)
            ref = oracle.probs(mu, "logistic", dps=DPS)
            for g, r in zip(e.p, ref):
                assert abs(g - r) <= mpmath.mpf(10) ** -(DPS - 2) * r, (mu, e.how, g, r)
