"""Oracle edge cases, input validation and the checked-error contract."""

from __future__ import annotations

from unittest import mock

import mpmath as mp
import numpy as np
import pytest

from derive import oracle
from derive.oracle import OracleError


@pytest.fixture(autouse=True)
def _dps():
    with mp.workdps(60):
        yield


def test_single_score_is_certain():
    assert oracle.probs([3.5], "normal") == [1]
    assert oracle.log_probs(["-2"], "cauchy") == [0]


def test_minus_inf_is_exactly_zero_and_rest_unchanged():
    p = oracle.probs([1, float("-inf"), 0], "normal", dps=30)
    assert p[1] == 0
    with mp.workdps(50):
        want = mp.ncdf(1 / mp.sqrt(2))
    assert abs(p[0] - want) < mp.mpf(10) ** -29
    assert abs(p[2] - (1 - want)) < mp.mpf(10) ** -29
    lp = oracle.log_probs([1, "-inf", 0], "normal", dps=20)
    assert lp[1] == mp.ninf


def test_single_plus_inf_is_one_hot():
    assert oracle.probs([0, float("inf"), 5], "gumbel") == [0, 1, 0]
    assert oracle.probs([float("-inf"), 2.0], "uniform") == [0, 1]


@pytest.mark.parametrize(
    "mu, match",
    [
        ([], "empty"),
        ([0.0, float("nan")], "NaN"),
        ([float("inf"), 1.0, float("inf")], r"\+inf"),
        ([float("-inf"), float("-inf")], "-inf"),
        ([0.0, "abc"], "mu\\[1\\]"),
        ([0.0, None], "mu\\[1\\]"),
        ([0.0, 1 + 2j], "real"),
        (np.zeros((2, 2)), "one-dimensional"),
        (3.0, "sequence"),
    ],
)
def test_bad_scores_raise_value_error(mu, match):
    with pytest.raises(ValueError, match=match):
        oracle.probs(mu, "normal")


def test_bad_family_and_params():
    with pytest.raises(ValueError, match="gumbel.*normal"):
        oracle.probs([0, 1], "gaussian")
    with pytest.raises(ValueError, match="scale"):
        oracle.probs([0, 1], "normal", scale=-1)
    with pytest.raises(ValueError, match="nu"):
        oracle.probs([0, 1], "student_t", nu=0)
    with pytest.raises(ValueError, match="unexpected"):
        oracle.probs([0, 1], "normal", nu=3)
    with pytest.raises(TypeError, match="dps"):
        oracle.probs([0, 1], "normal", dps=20.5)
    with pytest.raises(ValueError, match="dps"):
        oracle.probs([0, 1], "normal", dps=2)


def test_ties_are_exactly_equal_and_symmetric():
    p = oracle.probs([0, 0, 0, 0], "cauchy")
    assert p == [mp.mpf(1) / 4] * 4 or all(abs(x - mp.mpf(1) / 4) < mp.mpf(10) ** -30 for x in p)
    p = oracle.probs([2, -1, 2, -1], "laplace", dps=25)
    assert p[0] == p[2] and p[1] == p[3]
    assert abs(2 * p[0] + 2 * p[1] - 1) < mp.mpf(10) ** -24


def test_uniform_out_of_reach_is_exactly_zero():
    # U[0,1] noise: a class more than 1 below the top can never win
    p = oracle.probs([0, -1, -0.5, -3], "uniform", dps=30)
    assert p[1] == 0 and p[3] == 0
    # two scores half a unit apart: p_2 = (1 - 0.5)^2 / 2 = 1/8
    assert abs(p[2] - mp.mpf(1) / 8) < mp.mpf(10) ** -29
    lp = oracle.log_probs([0, -1, -0.5], "uniform", dps=20)
    assert lp[1] == mp.ninf


def test_inputs_of_many_kinds_agree():
    ref = oracle.probs([0.25, 0, -1], "logistic", dps=25)
    for mu in ([mp.mpf("0.25"), 0, -1], np.array([0.25, 0.0, -1.0]), ["0.25", "0", "-1"],
               (np.float32(0.25), np.int64(0), -1)):
        assert oracle.probs(mu, "logistic", dps=25) == ref


def test_shift_invariance_is_exact_for_dyadic_shifts():
    a = oracle.probs([0.5, 0, -2], "gumbel_min", dps=25)
    b = oracle.probs([1024.5, 1024, 1022], "gumbel_min", dps=25)
    for x, y in zip(a, b):
        assert abs(x - y) <= mp.mpf(10) ** -27 * x


def test_rule_disagreement_raises(monkeypatch):
    from derive.oracle import _core

    real_ts = _core.tanh_sinh

    def bad_ts(*args, **kwargs):
        vals, errs = real_ts(*args, **kwargs)
        return [v * (1 + mp.mpf(10) ** -12) for v in vals], errs

    monkeypatch.setattr(_core, "tanh_sinh", bad_ts)
    with pytest.raises(OracleError, match=r"normal.*disagree.*gauss-legendre.*tanh-sinh"):
        oracle.probs([1, 0], "normal", dps=30)


def test_sum_check_raises(monkeypatch):
    from derive.oracle import _core

    real = _core.gauss_legendre_fixed

    def bad(pieces, evaluate, n_out):
        vals = real(pieces, evaluate, n_out)
        return [vals[0] * (1 + mp.mpf(10) ** -25)] + vals[1:]

    monkeypatch.setattr(_core, "gauss_legendre_fixed", bad)
    with pytest.raises(OracleError):
        oracle.probs(list(np.linspace(0, -3, 12)), "gumbel", dps=30)


def test_pathological_user_family_is_refused_not_answered(monkeypatch):
    # density t^(-0.99)/100 on [0, 1] without the end map (derive.oracle._mpfamily.end_power,
    # which computes it: tests/test_oracle_singular_ends.py): an integrable spike at every
    # score that Gauss-Legendre cannot resolve to 30 digits within the allowed pieces
    import sympy as sp

    import derive.oracle._core as core
    import derive.oracle._mpfamily as mpfamily
    from derive import family_from_cdf

    monkeypatch.setattr(mpfamily, "end_power", lambda *args: 1)
    t = sp.Symbol("t", real=True)
    fam = family_from_cdf(t ** sp.Rational(1, 100), t, sp.Interval(0, 1), name="spiky")
    orig = core.gauss_legendre_adaptive
    monkeypatch.setattr(core, "gauss_legendre_adaptive", lambda *a, **k: orig(*a, **{**k, "max_pieces": 60}))
    with pytest.raises(OracleError, match="pieces"):
        oracle.probs(["0.5", 0], fam, dps=30)


def test_oracle_error_is_arithmetic_error():
    assert issubclass(OracleError, ArithmeticError)


def test_log_probs_match_probs():
    mu = [0.3, -2, 1]
    p = oracle.probs(mu, "student_t", dps=25, nu=3)
    lp = oracle.log_probs(mu, "student_t", dps=25, nu=3)
    for a, b in zip(p, lp):
        assert abs(mp.log(a) - b) < mp.mpf(10) ** -23 * max(1, abs(b))


def test_certified_mode_encloses_closed_form():
    flint = pytest.importorskip("flint")
    if "normal" not in oracle.CERTIFIED_FAMILIES:
        pytest.skip("normal not certified")
    balls = oracle.probs([1, 0], "normal", dps=20, certified=True)
    with mp.workdps(40):
        want = mp.ncdf(1 / mp.sqrt(2))
    assert isinstance(balls[0], flint.arb)
    old = flint.ctx.prec
    flint.ctx.prec = 200
    try:
        exact = flint.arb(mp.nstr(want, 50))  # radius ~ 1e-50
    finally:
        flint.ctx.prec = old
    assert balls[0].contains(exact)
    assert float(balls[0].rad()) < 1e-15
    assert oracle.probs([3.0], "normal", certified=True)[0] == 1
    edge = oracle.probs([0.0, float("-inf")], "normal", certified=True)
    assert edge[1].is_zero()


def test_uniform_with_scale_exact_zero_and_value():
    # U[0, 2] noise: a gap of 2 can never be closed; a gap of 1.5 leaves (1 - 0.75)^2 / 2 = 1/32
    p = oracle.probs([0, -2, -1.5], "uniform", dps=25, scale=2)
    assert p[1] == 0
    q = oracle.probs([0, -1.5], "uniform", dps=25, scale=2)
    assert abs(q[1] - mp.mpf(1) / 32) < mp.mpf(10) ** -26


def test_timing_report_measures_seconds():
    r = oracle.timing_report(n_small=3, families=["gumbel", "uniform"], large=False)
    assert set(r) == {"gumbel n=3 dps=30", "uniform n=3 dps=30"}
    assert all(0 < v < 60 for v in r.values())


def test_float_and_string_parameters_are_exact():
    # scale 0.3: the float's exact binary value (sympy alone would keep 30 digits)
    p = oracle.probs([1, 0], "normal", dps=50, scale=0.3)
    q = oracle.probs([1, 0], "normal", dps=50, scale="0.3")
    with mp.workdps(70):
        want_bin = mp.ncdf(1 / (mp.mpf(0.3) * mp.sqrt(2)))
        want_dec = mp.ncdf(1 / (mp.mpf(3) / 10 * mp.sqrt(2)))
    assert abs(p[0] - want_bin) < mp.mpf(10) ** -48
    assert abs(q[0] - want_dec) < mp.mpf(10) ** -48
    with pytest.raises(ValueError, match="scale"):
        oracle.probs([1, 0], "normal", scale="abc")


# --------------------------------------------------------------------------
# Huge spreads: scores 1e3 .. 1e300 apart.  The loser of two has
# an independent closed form for every family; its p is astronomically
# small but an mpf, and log p must keep full relative precision.
# --------------------------------------------------------------------------


def _loser_log_ref(family, D):
    """log P[loser wins] for mu = (D, 0), standard scale, from closed forms
    evaluated here at high precision (D an mpf at the caller's precision)."""
    if family == "normal":
        # Phi(-D/sqrt2) = erfc(D/2)/2 = Gamma(1/2, D^2/4) / (2 sqrt(pi))
        # (mpmath's erfc itself overflows a float for arguments > ~1e154)
        return mp.log(mp.gammainc(mp.mpf(1) / 2, D * D / 4) / (2 * mp.sqrt(mp.pi)))
    if family in ("cauchy", "student_t"):  # student_t with nu = 1
        return mp.log(mp.atan(2 / D) / mp.pi)  # = 1/2 - atan(D/2)/pi
    if family in ("gumbel", "gumbel_min"):
        # difference of two Gumbels (either kind) is logistic: sigmoid(-D)
        return -(D + mp.log1p(mp.exp(-D)))
    if family == "logistic":
        # CDF of the difference of two logistics: e^t (e^t - 1 - t)/(e^t - 1)^2, t = -D
        e = mp.exp(-D)
        return -D + mp.log(D - 1 + e) - 2 * mp.log1p(-e)
    if family == "laplace":
        return mp.log(2 + D) - D - mp.log(4)
    if family == "exponential":
        return -D - mp.log(2)  # difference of two exponentials is Laplace
    raise AssertionError(family)


def _log_probs_and_probs(mu, family, dps, **params):
    """``(oracle.log_probs(...), oracle.probs(...))`` of one input from one integration.

    Both public functions round the same unrounded result of the oracle's
    ``compute`` (the integrals: all of the cost at these spreads); it is run once
    and handed to the second call, so each function's own post-processing (log1p
    of the rest for the winner, log of the loser, the final rounding) is still
    what the caller checks."""
    memo = {}

    def once(mu_fracs, fam, dps_):
        key = (tuple(mu_fracs), repr(fam), dps_)
        if key not in memo:
            memo[key] = real(mu_fracs, fam, dps_)
        return list(memo[key])

    real = oracle.compute
    with mock.patch.object(oracle, "compute", once):
        lp = oracle.log_probs(mu, family, dps=dps, **params)
        p = oracle.probs(mu, family, dps=dps, **params)
    assert len(memo) == 1, "the two calls integrated different problems"
    return lp, p


def _check_pair(family, D, dps=20, **params):
    lp, p = _log_probs_and_probs([D, 0.0], family, dps, **params)
    Dm = mp.mpf(D)
    with mp.workdps(int(2 * mp.log10(Dm)) + 3 * dps + 40):
        ref = _loser_log_ref(family, Dm)
        q = mp.exp(ref)
        rel = mp.mpf(10) ** -(dps - 3)
        assert abs(lp[1] - ref) <= rel * abs(ref), (family, D, lp[1], ref)
        assert abs(p[1] / q - 1) <= rel, (family, D, p[1], q)
        assert p[1] > 0 and isinstance(p[1], mp.mpf)
        # the winner: log p = log1p(-q) ~ -q, relative precision kept
        assert abs(lp[0] / mp.log1p(-q) - 1) <= rel, (family, D, lp[0])
        assert abs(p[0] - (1 - q)) <= rel


_PAIR_FAST = [
    ("normal", 1e3), ("cauchy", 1e3), ("logistic", 1e3),
    ("gumbel", 1e3), ("gumbel", 1e10), ("gumbel", 1e100), ("gumbel", 1e300),
    ("gumbel_min", 1e3), ("gumbel_min", 1e10),
    ("laplace", 1e3), ("laplace", 1e10),
    ("exponential", 1e3), ("exponential", 1e10), ("exponential", 1e100), ("exponential", 1e300),
]
_PAIR_SLOW = [
    ("normal", 1e10), ("cauchy", 1e10), ("logistic", 1e10),
    ("normal", 1e100), ("cauchy", 1e100), ("logistic", 1e100), ("laplace", 1e100),
    ("normal", 1e300), ("cauchy", 1e300), ("logistic", 1e300), ("laplace", 1e300),
    ("gumbel_min", 1e100), ("gumbel_min", 1e300),
]


@pytest.mark.parametrize("family, D", _PAIR_FAST)
def test_huge_spread_pair_closed_forms(family, D):
    _check_pair(family, D)


@pytest.mark.slow
@pytest.mark.parametrize("family, D", _PAIR_SLOW)
def test_huge_spread_pair_closed_forms_1e300(family, D):
    _check_pair(family, D)


@pytest.mark.slow
def test_huge_spread_student_t_nu1_is_cauchy():
    _check_pair("student_t", 1e10, nu=1)


def test_huge_spread_uniform_is_one_hot_exactly():
    for D in (1e3, 1e100, 1e300):
        assert oracle.probs([D, 0.0, -D], "uniform") == [1, 0, 0]
        assert oracle.log_probs([0.0, D], "uniform")[0] == mp.ninf


@pytest.mark.parametrize("D", [1e10, 1e300])
def test_huge_spread_three_gumbel_is_softmax(D):
    mu = [D, 0.0, -D]
    lp = oracle.log_probs(mu, "gumbel", dps=25)
    with mp.workdps(700):
        m = [mp.mpf(x) for x in mu]
        # log p_i = (mu_i - mu_0) - log(1 + e^{mu_1 - mu_0} + e^{mu_2 - mu_0})
        l1p = mp.log1p(mp.exp(m[1] - m[0]) + mp.exp(m[2] - m[0]))
        for a, x in zip(lp, m):
            ref = (x - m[0]) - l1p
            assert abs(a - ref) <= mp.mpf(10) ** -22 * abs(ref)


@pytest.mark.parametrize("family", ["normal", "laplace", "exponential", "logistic", "gumbel_min"])
@pytest.mark.parametrize("D", [1e10, pytest.param(1e300, marks=pytest.mark.slow)])
def test_huge_spread_three_light_tails(family, D):
    # mu = (D, 0, -D): the middle class wins iff it beats the top by D and the
    # bottom does not beat it by D; the latter fails with relative probability
    # ~ exp(-D) (light tails), so p_mid equals the loser of two to all digits.
    lp, p = _log_probs_and_probs([D, 0.0, -D], family, 20)
    assert p[2] > 0 and abs(mp.fsum(p) - 1) <= mp.mpf(10) ** -17
    with mp.workdps(int(2 * mp.log10(D)) + 80):
        ref = _loser_log_ref(family, mp.mpf(D))
        assert abs(lp[1] - ref) <= mp.mpf(10) ** -17 * abs(ref), (family, lp[1], ref)
        assert lp[2] < 1.9 * ref  # far below the middle one
        assert abs(p[1] / mp.exp(ref) - 1) <= mp.mpf(10) ** -17


@pytest.mark.parametrize("family", ["laplace", "exponential", "uniform"])
@pytest.mark.parametrize("mu", [(0.0, 1e-6, 2.0), pytest.param((3.5, 3.500001, -2.0), marks=pytest.mark.slow),
                                pytest.param((0.0, 1e-12, 0.75), marks=pytest.mark.slow)])
def test_close_kinks_stay_piece_ends(family, mu):
    # kinks 1e-6 (and 1e-12) apart must stay separate piece ends (a kink inside a
    # piece defeats Gauss-Legendre's error estimate).  Reference: the exact n = 3
    # closed form (derive.derive, sympy rationals of the float scores).
    import sympy as sp
    from fractions import Fraction

    import derive
    from derive import oracle

    form = derive.derive(family, 3)
    syms = sorted(form.closed_form[0].free_symbols, key=str)
    vals = {s: sp.Rational(Fraction(v)) for s, v in zip(syms, mu)}
    got = oracle.probs(list(mu), family, dps=30)
    for k in range(3):
        exact = sp.N(form.closed_form[k].subs(vals), 40)
        assert abs(got[k] - mp.mpf(str(exact))) <= mp.mpf(10) ** -29 * abs(mp.mpf(str(exact))), (k, got[k], exact)
