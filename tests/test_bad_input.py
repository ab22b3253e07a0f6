"""Every special or bad input gets a defined answer, or an error: numeric and oracle
(the CLI's bad input is in tests/test_cli.py).

Expected values are independent of the code under test: exact limits
(one-hot, exact zeros, 1 for n = 1), closed forms for n = 2 (normal
Phi(D/sqrt 2), cauchy 1/2 + atan(D/2)/pi = atan(2/D)/pi for the loser,
logistic sigmoid for gumbel), scipy.special.softmax for Gumbel noise.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy import special

import numeric

FAMILIES = ("gumbel", "gumbel_min", "normal", "logistic", "laplace", "exponential", "uniform",
            "cauchy", "student_t")
FULL_SUPPORT = ("gumbel", "gumbel_min", "normal", "logistic", "laplace", "cauchy", "student_t")
REL = 1e-13
TINY = 1e-300


def _no_runtime_warnings(fn, *args, **kw):
    """Call fn and fail on any RuntimeWarning (overflow, invalid value, ...)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    bad = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not bad, [str(w.message) for w in bad]
    return out


# ===========================================================================
# numeric
# ===========================================================================

class TestNumericSpecialValues:
    @pytest.mark.parametrize("family", FAMILIES)
    def test_nan_poisons_only_its_row(self, family):
        mu = np.array([[0.0, np.nan, 1.0], [0.0, 0.3, -0.2]])
        p = numeric.probs(mu, family)
        assert np.isnan(p[0]).all(), p
        assert np.isfinite(p[1]).all() and abs(p[1].sum() - 1) <= 1e-14
        lp = numeric.log_probs(mu, family)
        assert np.isnan(lp[0]).all() and np.isfinite(lp[1]).all()

    def test_nan_row_like_scipy_softmax(self):
        # same convention as scipy.special.softmax
        mu = np.array([[np.nan, 1.0], [2.0, 1.0]])
        p = numeric.probs(mu, "gumbel")
        ref = special.softmax(mu, axis=-1)
        assert np.array_equal(np.isnan(p), np.isnan(ref))
        np.testing.assert_allclose(p[1], ref[1], rtol=REL)

    def test_nan_row_vjp(self):
        mu = np.array([[0.0, np.nan], [0.0, 1.0]])
        v = numeric.probs_vjp(mu, np.ones_like(mu), "normal")
        assert np.isnan(v[0]).all() and np.isfinite(v[1]).all()

    @pytest.mark.parametrize("family", FAMILIES)
    def test_minus_inf_has_probability_exactly_zero(self, family):
        mu = np.array([0.3, -np.inf, -0.2, -np.inf])
        p = numeric.probs(mu, family)
        assert p[1] == 0.0 and p[3] == 0.0
        # the remaining entries are the probabilities of the finite sub-vector
        ref = numeric.probs(np.array([0.3, -0.2]), family)
        np.testing.assert_allclose(p[[0, 2]], ref, rtol=2 * REL)
        lp = numeric.log_probs(mu, family)
        assert lp[1] == -np.inf and lp[3] == -np.inf

    def test_minus_inf_normal_closed_form(self):
        # p_1 = Phi(D / sqrt 2) for the two finite entries, D = 1
        p = numeric.probs(np.array([1.0, -np.inf, 0.0]), "normal")
        assert p[1] == 0.0
        assert abs(p[0] - special.ndtr(1 / math.sqrt(2))) <= REL * p[0]

    def test_only_one_finite_entry(self):
        p = numeric.probs(np.array([-np.inf, 2.0, -np.inf]), "normal")
        assert p.tolist() == [0.0, 1.0, 0.0]

    @pytest.mark.parametrize("family", FAMILIES)
    def test_one_plus_inf_is_one_hot(self, family):
        p = numeric.probs(np.array([0.0, np.inf, 5.0, -np.inf]), family)
        assert p.tolist() == [0.0, 1.0, 0.0, 0.0]
        lp = numeric.log_probs(np.array([0.0, np.inf, 5.0]), family)
        assert lp.tolist() == [-np.inf, 0.0, -np.inf]

    @pytest.mark.parametrize("family", FAMILIES)
    def test_several_plus_inf_split_evenly(self, family):
        # documented in numeric.probs: k entries +inf -> 1/k each (limit of tied scores -> +inf)
        mu = np.array([[np.inf, 0.0, np.inf], [np.inf, np.inf, np.inf], [0.0, 1.0, 2.0]])
        p = numeric.probs(mu, family)
        assert p[0].tolist() == [0.5, 0.0, 0.5]
        assert np.allclose(p[1], 1 / 3, rtol=1e-15, atol=0)
        assert np.isfinite(p[2]).all()
        lp = numeric.log_probs(mu[:1], family)
        assert lp[0, 1] == -np.inf and abs(lp[0, 0] - math.log(0.5)) <= 1e-15

    def test_all_minus_inf_row_is_nan(self):
        # documented: no entry can win -> NaN row (like scipy.special.softmax)
        p = numeric.probs(np.array([[-np.inf, -np.inf], [0.0, 0.0]]), "normal")
        assert np.isnan(p[0]).all() and p[1].tolist() == [0.5, 0.5]

    @pytest.mark.parametrize("family", ["normal", "cauchy"])
    def test_n_equals_one(self, family):
        assert numeric.probs(np.array([3.7]), family).tolist() == [1.0]
        assert numeric.probs(np.array([[1.0], [-2.0], [np.inf]]), family).tolist() == [[1.0], [1.0], [1.0]]
        assert numeric.log_probs(np.array([3.7]), family).tolist() == [0.0]
        assert numeric.probs_vjp(np.array([3.7]), np.array([2.0]), family).tolist() == [0.0]

    def test_empty_axis(self):
        for shape in [(0,), (3, 0), (0, 4)]:
            mu = np.zeros(shape)
            p = numeric.probs(mu, "normal")
            assert p.shape == shape
            assert numeric.log_probs(mu, "normal").shape == shape

    def test_python_scalar_and_zero_d_array(self):
        # a scalar is one score vector of length 1 (as scipy.special.softmax(3.0) == 1.0)
        for mu in (3.0, np.float64(3.0), np.array(3.0)):
            p = numeric.probs(mu, "normal")
            assert np.ndim(p) == 0 and float(p) == 1.0
            assert float(numeric.log_probs(mu, "normal")) == 0.0
        assert numeric.probs(np.float32(2.0), "normal").dtype == np.float32

    def test_integer_input_promoted(self):
        p = numeric.probs(np.array([1, 0, 3]), "normal")
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p, numeric.probs([1.0, 0.0, 3.0], "normal"))

    def test_lists_are_accepted(self):
        p = numeric.probs([0.0, 1.0], "gumbel")
        np.testing.assert_allclose(p, special.softmax([0.0, 1.0]), rtol=REL)

    @pytest.mark.parametrize("bad", [
        np.array([1.0 + 0j, 2.0]),
        np.array([1.0, 2.0], dtype=np.complex64),
        [1 + 2j, 0.0],
        np.array([1.0, "a"], dtype=object),
        np.array([1.0, 2.0], dtype=object),
        ["a", "b"],
        np.array([True, False]),
        [[1.0, 2.0], [3.0]],
    ], ids=["complex128", "complex64", "complex-list", "object-mixed", "object-float", "strings", "bool",
            "ragged"])
    def test_complex_object_string_input_is_typeerror(self, bad):
        with pytest.raises(TypeError):
            numeric.probs(bad, "normal")
        with pytest.raises(TypeError):
            numeric.log_probs(bad, "normal")

    def test_unknown_family_lists_names(self):
        with pytest.raises(ValueError) as info:
            numeric.probs(np.zeros(3), "gauss")
        msg = str(info.value)
        assert "gauss" in msg
        for name in FAMILIES:
            assert name in msg
        with pytest.raises(ValueError):
            numeric.log_probs(np.zeros(3), "no_such")
        with pytest.raises(ValueError):
            numeric.probs_vjp(np.zeros(3), np.ones(3), "no_such")

    def test_family_of_wrong_type(self):
        with pytest.raises(TypeError):
            numeric.probs(np.zeros(3), 42)

    @pytest.mark.parametrize("family,params,word", [
        ("normal", {"scale": 0.0}, "scale"),
        ("normal", {"scale": -1.0}, "scale"),
        ("gumbel", {"scale": float("nan")}, "scale"),
        ("cauchy", {"scale": float("inf")}, "scale"),
        ("student_t", {"nu": 0.0}, "nu"),
        ("student_t", {"nu": -2.0}, "nu"),
        ("student_t", {"nu": float("nan")}, "nu"),
        ("normal", {"nu": 3.0}, "nu"),          # nu belongs to student_t only
        ("normal", {"sigma": 1.0}, "sigma"),    # unknown parameter
    ])
    def test_bad_parameters(self, family, params, word):
        for fn in (numeric.probs, numeric.log_probs):
            with pytest.raises(ValueError, match=word):
                fn(np.zeros(3), family, **params)
        with pytest.raises(ValueError, match=word):
            numeric.probs_vjp(np.zeros(3), np.ones(3), family, **params)

    def test_bad_cotangent_shape(self):
        with pytest.raises(ValueError):
            numeric.probs_vjp(np.zeros(3), np.ones(4), "normal")

    @pytest.mark.parametrize("axis", [2, -3, 5])
    def test_axis_out_of_range(self, axis):
        with pytest.raises(np.exceptions.AxisError, match="axis"):
            numeric.probs(np.zeros((2, 3)), "normal", axis=axis)
        with pytest.raises(np.exceptions.AxisError, match="axis"):
            numeric.log_probs(np.zeros((2, 3)), "normal", axis=axis)
        with pytest.raises(TypeError, match="axis"):
            numeric.probs(np.zeros((2, 3)), "normal", axis=1.5)

    def test_bad_method_and_options(self):
        with pytest.raises(ValueError, match="auto.*quadrature"):
            numeric.probs([0.0, 1.0], "normal", method="magic")
        with pytest.raises(ValueError, match="closed"):
            numeric.probs([0.0, 1.0, 2.0], "normal", method="closed")
        with pytest.raises(ValueError, match="monte_carlo"):
            numeric.probs([0.0, 1.0], "normal", method="quantile", samples=10)
        with pytest.raises(ValueError, match="K"):
            numeric.probs([0.0, 1.0], "normal", method="quantile", K=0)

    def test_axis_zero_matches_transpose_gumbel(self):
        mu = np.array([[0.0, 3.0], [1.0, -1.0], [2.0, 0.5]])
        np.testing.assert_allclose(numeric.probs(mu, "gumbel", axis=0), special.softmax(mu, axis=0), rtol=REL)


class TestNumericExtremeMagnitudes:
    @pytest.mark.parametrize("family", FAMILIES)
    def test_huge_spread_1e300(self, family):
        mu = np.array([1e300, 0.0, -1e300])
        p = _no_runtime_warnings(numeric.probs, mu, family)
        assert np.isfinite(p).all()
        assert abs(p[0] - 1.0) <= 1e-14 and p[1] < TINY and p[2] < TINY
        lp = _no_runtime_warnings(numeric.log_probs, mu, family)
        assert not np.isnan(lp).any() and abs(lp[0]) <= 1e-14
        for mu in ([1e308, -1e308], [1e300, 1e300, -1e300], [-1e300, 0.0, 1.0]):
            p = _no_runtime_warnings(numeric.probs, np.array(mu), family)
            lp = _no_runtime_warnings(numeric.log_probs, np.array(mu), family)
            assert np.isfinite(p).all() and not np.isnan(lp).any() and abs(p.sum() - 1) <= 1e-14

    @pytest.mark.parametrize("family", FAMILIES)
    def test_differences_overflow_float64(self, family):
        # mu_1 - mu_2 = 3.4e308 overflows to inf: the answer is still [1, 0]
        p = _no_runtime_warnings(numeric.probs, np.array([1.7e308, -1.7e308]), family)
        assert p.tolist() == [1.0, 0.0] or (abs(p[0] - 1) <= 1e-14 and 0 <= p[1] < TINY)

    def test_cauchy_huge_gap_closed_form(self):
        # loser of two: P[C2 - C1 > D] = 1/2 - atan(D/2)/pi = atan(2/D)/pi  (no cancellation)
        for d in (1e10, 1e100, 1e299):
            p = numeric.probs(np.array([d, 0.0]), "cauchy")
            expect = math.atan(2.0 / d) / math.pi
            assert abs(p[1] - expect) <= REL * expect, (d, p[1], expect)
            lp = numeric.log_probs(np.array([d, 0.0]), "cauchy")
            assert abs(lp[1] - math.log(expect)) <= REL + 4e-16 * abs(math.log(expect))

    def test_normal_far_tail_log_space(self):
        # loser of two, D = 60: p = Phi(-D/sqrt 2) ~ 1e-393 (below float range); log p from log_ndtr
        lp = numeric.log_probs(np.array([60.0, 0.0]), "normal")
        expect = special.log_ndtr(-60.0 / math.sqrt(2.0))
        assert abs(lp[1] - expect) <= REL + 4e-16 * abs(expect)
        assert numeric.probs(np.array([60.0, 0.0]), "normal")[1] == 0.0
        for d in (-50.0, -500.0, -5e4):
            lp = numeric.log_probs([d, 0.0], "normal")[0]
            assert abs(lp - special.log_ndtr(d / math.sqrt(2))) <= REL * abs(lp)

    @pytest.mark.parametrize("family", ["cauchy", "student_t"])
    @pytest.mark.parametrize("d", [1e300, 1e200, 1e20])
    def test_huge_gaps_heavy_tail_clusters(self, family, d):
        # scores [d, 0, -d]; to first order in 1/d (relative corrections ~1/d):
        #   p_1 = P[C1 - C0 > d] = atan(2/d)/pi   (C1 huge, or C0 below -d, both 1/(pi d))
        #   p_2 = P[C2 > 2d] = atan(1/(2d))/pi    (C0 < -2d also needs C2 - C1 > d: O(1/d^2))
        # student_t with nu = 1 is the cauchy law.  The middle entry's mass sits at x ~ -d, a
        # feature of width 1 at |x| = d: a single x = sinh(u) map (ulp of u ~1e-13) misses it.
        params = {"nu": 1.0} if family == "student_t" else {}
        lp = _no_runtime_warnings(numeric.log_probs, [d, 0.0, -d], family, **params)
        p = _no_runtime_warnings(numeric.probs, [d, 0.0, -d], family, **params)
        e1, e2 = math.atan(2 / d) / math.pi, math.atan(0.5 / d) / math.pi
        assert abs(lp[1] - math.log(e1)) <= 1e-13 * abs(math.log(e1))
        assert abs(lp[2] - math.log(e2)) <= 1e-13 * abs(math.log(e2))
        assert abs(p[1] / e1 - 1) <= 1e-13 and abs(p[2] / e2 - 1) <= 1e-13
        assert abs(p[0] - 1) <= 1e-15

    @pytest.mark.parametrize("family", ["gumbel_min", "logistic", "laplace", "normal", "exponential",
                                        "uniform", "gumbel"])
    def test_huge_spread_light_tails_log_values(self, family):
        # [1e300, 0, -1e300]: exponential left tails (logistic, laplace, gumbel, gumbel_min) give
        # log p_1 ~ -1e300 and log p_2 ~ -2e300 (gumbel_min: -3e300: both the winner's noise below
        # -2e300 and the middle's below -1e300 are needed); so does exponential noise through its
        # right tail (p_1 = P[eps_1 > 1e300 + eps_0] = e^-1e300 / 2; the 30-digit oracle gives
        # -1e300, -2e300); others underflow to -inf
        lp = numeric.log_probs([1e300, 0.0, -1e300], family)
        p = numeric.probs([1e300, 0.0, -1e300], family)
        assert p.tolist() == [1.0, 0.0, 0.0] and lp[0] == 0.0
        expect = {"logistic": (-1e300, -2e300), "laplace": (-1e300, -2e300), "gumbel": (-1e300, -2e300),
                  "gumbel_min": (-1e300, -3e300), "exponential": (-1e300, -2e300)}.get(family)
        if expect is None:
            assert lp[1] == -np.inf and lp[2] == -np.inf
        else:
            assert abs(lp[1] / expect[0] - 1) <= 1e-13 and abs(lp[2] / expect[1] - 1) <= 1e-13

    @pytest.mark.parametrize("family", FULL_SUPPORT)
    def test_subnormal_differences(self, family):
        for mu in (np.array([0.0, 5e-324]), np.array([1e-310, 0.0, -1e-310]), np.array([2.0**-1074] * 4)):
            p = _no_runtime_warnings(numeric.probs, mu, family)
            n = len(mu)
            np.testing.assert_allclose(p, np.full(n, 1.0 / n), rtol=1e-14)
            # order preserved (non-strict at this resolution)
            order = np.argsort(mu, kind="stable")
            assert (np.diff(p[order]) >= -1e-16).all()

    def test_subnormal_scale(self):
        # temperature -> 0 makes it an argmax: scale 1e-310 with differences 1
        p = numeric.probs(np.array([0.0, 1.0, -1.0]), "normal", scale=1e-310)
        assert p.tolist() == [0.0, 1.0, 0.0]

    def test_float32_in_float32_out(self):
        mu = np.array([[0.0, 1.0, 2.0], [5.0, -3.0, 0.25]], dtype=np.float32)
        for fn in (numeric.probs, numeric.log_probs):
            assert fn(mu, "normal").dtype == np.float32
        ref = special.softmax(mu.astype(np.float64), axis=-1).astype(np.float32)
        np.testing.assert_allclose(numeric.probs(mu, "gumbel"), ref, rtol=2.4e-7, atol=0)

    @pytest.mark.parametrize("family", FAMILIES)
    def test_float32_overflow_range(self, family):
        # differences up to 6e38 overflow float32 but not float64; exp(100) overflows float32
        mu = np.array([3e38, -3e38, 0.0], dtype=np.float32)
        p = _no_runtime_warnings(numeric.probs, mu, family)
        # heavy tails (cauchy, student_t nu=1) leave losers ~ 2/(pi D) ~ 1e-39: a float32 subnormal
        assert p.dtype == np.float32 and p[0] == 1.0
        assert (p[1:] >= 0).all() and (p[1:] < 1e-30).all(), p
        mu = np.array([100.0, 0.0, -100.0], dtype=np.float32)
        p = _no_runtime_warnings(numeric.probs, mu, family)
        assert p.dtype == np.float32 and np.isfinite(p).all()
        assert abs(float(p.astype(np.float64).sum()) - 1.0) <= 2.4e-7

    def test_float32_gumbel_against_softmax_wide_range(self):
        mu = np.array([88.0, 80.0, -80.0, 0.0], dtype=np.float32)
        ref = special.softmax(mu.astype(np.float64)).astype(np.float32)
        p = _no_runtime_warnings(numeric.probs, mu, "gumbel")
        np.testing.assert_allclose(p, ref, rtol=2.4e-7, atol=1.5e-45)


class TestUserFamilies:
    def test_numeric_family_not_a_cdf(self):
        from scipy.special import log_ndtr

        def norm_logpdf(x):
            return -0.5 * x**2 - 0.5 * math.log(2 * math.pi)

        with pytest.raises(ValueError, match="CDF"):            # decreasing
            numeric.family_from_logcdf(lambda x: log_ndtr(-x), norm_logpdf, name="decreasing")
        with pytest.raises(ValueError, match="CDF"):            # exceeds 1
            numeric.family_from_logcdf(lambda x: log_ndtr(x) + 0.5, norm_logpdf, name="above_one")
        with pytest.raises(ValueError, match="CDF"):            # does not reach 1
            numeric.family_from_logcdf(lambda x: log_ndtr(x) + math.log(0.5), norm_logpdf, name="half")
        with pytest.raises(ValueError, match="derivative"):     # density is not its derivative
            numeric.family_from_logcdf(log_ndtr, lambda x: norm_logpdf(x / 2) - math.log(2), name="wrong_pdf")
        with pytest.raises(ValueError):                         # NaN inside the support
            numeric.family_from_logcdf(lambda x: np.full_like(x, np.nan), norm_logpdf, name="nan")
        with pytest.raises(TypeError):
            numeric.family_from_logcdf("log_ndtr", norm_logpdf)
        with pytest.raises(ValueError):
            numeric.family_from_logcdf(log_ndtr, norm_logpdf, support=(1.0, 0.0))

    def test_valid_numeric_family_reproduces_registry(self):
        from scipy.special import log_ndtr

        fam = numeric.family_from_logcdf(log_ndtr, lambda x: -0.5 * x**2 - 0.5 * math.log(2 * math.pi), name="my_normal")
        p = numeric.probs(np.array([1.0, 0.0]), fam)
        expect = special.ndtr(1 / math.sqrt(2))
        assert abs(p[0] - expect) <= REL * expect

    def test_derive_family_from_cdf_not_a_cdf(self):
        import derive

        x = sp.Symbol("x", real=True)
        with pytest.raises(ValueError, match="CDF"):            # tends to 1/2, not 1
            derive.family_from_cdf(x / 2, x, sp.Interval(0, 1))
        with pytest.raises(ValueError, match="CDF"):            # decreasing: limits 1 and 0
            derive.family_from_cdf(sp.exp(-x), x, sp.Interval(0, sp.oo))
        with pytest.raises(ValueError, match="CDF"):            # right limits, negative derivative near 0
            derive.family_from_cdf(x - sp.sin(2 * sp.pi * x) / sp.pi, x, sp.Interval(0, 1))
        with pytest.raises(ValueError, match="CDF"):            # never reaches 0 on the left
            derive.family_from_cdf(sp.atan(x) / sp.pi + sp.Rational(3, 4), x, sp.Interval(-sp.oo, sp.oo))
        y = sp.Symbol("y")
        with pytest.raises(ValueError):                         # depends on another symbol
            derive.family_from_cdf(1 - sp.exp(-x * y), x, sp.Interval(0, sp.oo))
        with pytest.raises(TypeError):
            derive.family_from_cdf(1 - sp.exp(-x), "x", sp.Interval(0, sp.oo))

    def test_derive_family_from_cdf_valid(self):
        import derive

        x = sp.Symbol("x", real=True)
        fam = derive.family_from_cdf(1 - sp.exp(-x), x, sp.Interval(0, sp.oo), name="my_exp")
        half = sp.Rational(1, 2)
        assert sp.simplify(fam.pdf(half) - sp.exp(-half)) == 0
        assert fam.pdf(-1) == 0


# ===========================================================================
# oracle
# ===========================================================================

class TestNoSilentNumericalFailure:
    """Pathological user families (validation off): numeric raises QuadratureError, never a wrong value."""

    def test_density_inconsistent_with_cdf_raises(self):
        # logpdf of N(0, 2^2) paired with the CDF of N(0, 1): sum p != 1
        from scipy.special import log_ndtr

        fam = numeric.family_from_logcdf(log_ndtr, lambda x: -x * x / 8 - 0.5 * math.log(8 * math.pi),
                                         name="inconsistent", validate=False)
        with pytest.raises(numeric.QuadratureError, match="differs from 1"):
            numeric.probs([0.0, -0.5, 1.0], fam)

    def test_wildly_oscillating_density_raises(self):
        # a density with 10^6 oscillations per unit: the adaptive rule cannot resolve it
        from scipy.special import log_ndtr

        def logpdf(x):
            return -x * x / 2 - 0.5 * math.log(2 * math.pi) + np.log1p(0.999 * np.sin(1e6 * x))
        fam = numeric.family_from_logcdf(log_ndtr, logpdf, name="wiggly", validate=False)
        with pytest.raises(numeric.QuadratureError):
            numeric.probs([0.0, -0.5, 1.0], fam)

    def test_nan_producing_family_raises(self):
        from scipy.special import log_ndtr

        def logcdf(x):
            return np.where((x > 0.2) & (x < 0.3), np.nan, log_ndtr(x))
        fam = numeric.family_from_logcdf(logcdf, lambda x: -x * x / 2 - 0.5 * math.log(2 * math.pi),
                                         name="holey", validate=False)
        with pytest.raises(numeric.QuadratureError, match="nan"):
            numeric.probs([0.0, -0.5, 1.0], fam)

    def test_student_t_tiny_nu_is_answered_or_raises(self):
        # nu = 0.02: tails beyond float64 range; either a verified answer or QuadratureError
        try:
            p = numeric.probs([0.0, -1.0, 1.0], "student_t", nu=0.02)
        except numeric.QuadratureError:
            return
        assert abs(p.sum() - 1) <= 1e-14 and p[2] > p[0] > p[1]


def _oracle():
    from derive import oracle
    return oracle


class TestOracle:
    @pytest.mark.parametrize("mu", [[0.0, float("nan"), 1.0], ["nan", 1]])
    def test_nan_is_valueerror(self, mu):
        with pytest.raises(ValueError, match="NaN"):
            _oracle().probs(mu, "normal")
        with pytest.raises(ValueError, match="NaN"):
            _oracle().log_probs(mu, "normal")

    def test_minus_inf_is_exactly_zero(self):
        import mpmath as mp

        p = _oracle().probs([1.0, float("-inf"), 0.0], "normal", dps=30)
        assert p[1] == 0
        # closed form Phi(1/sqrt 2) for the remaining pair
        with mp.workdps(40):
            expect = mp.ncdf(1 / mp.sqrt(2))
        assert abs(p[0] - expect) < mp.mpf(10) ** -28
        lp = _oracle().log_probs([1.0, float("-inf"), 0.0], "normal", dps=30)
        assert lp[1] == mp.ninf

    def test_one_plus_inf_is_one_hot(self):
        p = _oracle().probs([0.0, float("inf"), 3.0, float("-inf")], "cauchy")
        assert [int(v) for v in p] == [0, 1, 0, 0] and all(v in (0, 1) for v in p)

    def test_several_plus_inf_is_valueerror(self):
        with pytest.raises(ValueError, match="inf"):
            _oracle().probs([float("inf"), 0.0, float("inf")], "normal")

    def test_all_minus_inf_is_valueerror(self):
        with pytest.raises(ValueError):
            _oracle().probs([float("-inf"), float("-inf")], "normal")

    def test_empty_is_valueerror(self):
        with pytest.raises(ValueError, match="empty"):
            _oracle().probs([], "normal")

    def test_n_equals_one(self):
        assert _oracle().probs([2.5], "student_t", nu=3) == [1]
        assert _oracle().log_probs([2.5], "normal") == [0]

    @pytest.mark.parametrize("mu", [3.0, "abc", [[0.0, 1.0]], [0.0, "x"], [1 + 2j, 0.0], [object(), 1.0]])
    def test_non_numeric_or_not_a_vector(self, mu):
        with pytest.raises(ValueError):
            _oracle().probs(mu, "normal")

    def test_unknown_family_lists_names(self):
        with pytest.raises(ValueError) as info:
            _oracle().probs([0.0, 1.0], "gauss")
        for name in FAMILIES:
            assert name in str(info.value)

    @pytest.mark.parametrize("params,word", [
        ({"scale": 0}, "scale"), ({"scale": -2.0}, "scale"), ({"scale": float("nan")}, "scale"),
        ({"nu": 0}, "nu"), ({"nu": float("nan")}, "nu"),
    ])
    def test_bad_parameters(self, params, word):
        fam = "student_t" if "nu" in params else "normal"
        with pytest.raises(ValueError, match=word):
            _oracle().probs([0.0, 1.0], fam, **params)

    def test_bad_dps(self):
        with pytest.raises(ValueError):
            _oracle().probs([0.0, 1.0], "normal", dps=1)
        with pytest.raises(TypeError):
            _oracle().probs([0.0, 1.0], "normal", dps=30.5)

    def test_subnormal_difference(self):
        import mpmath as mp

        p = _oracle().probs([0.0, 5e-324], "normal", dps=30)
        assert abs(p[0] - mp.mpf("0.5")) < mp.mpf(10) ** -29 and p[1] >= p[0]
