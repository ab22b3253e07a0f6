"""Special and bad inputs of the numeric API (issue 7, item 2 and 3)."""

import math
import warnings

import numpy as np
import pytest
from scipy.special import log_ndtr, softmax

import numeric
from numeric import QuadratureError

FAMS = ["gumbel", "normal", "laplace", "uniform", "cauchy"]


@pytest.mark.parametrize("family", FAMS)
def test_nan_row_is_nan_like_scipy(family):
    mu = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    p = numeric.probs(mu, family)
    assert np.isnan(p[0]).all() and np.isfinite(p[1]).all()
    assert np.isnan(softmax(mu, axis=-1)[0]).all()          # the behaviour we copy
    assert np.isnan(numeric.log_probs(mu, family)[0]).all()


@pytest.mark.parametrize("family", FAMS)
def test_minus_inf_entries_get_exact_zero(family):
    mu = np.array([0.0, -np.inf, -0.5, -np.inf])
    p = numeric.probs(mu, family)
    lp = numeric.log_probs(mu, family)
    assert p[1] == 0.0 and p[3] == 0.0
    assert lp[1] == -np.inf and lp[3] == -np.inf
    np.testing.assert_allclose(p[[0, 2]], numeric.probs([0.0, -0.5], family), rtol=1e-14)


@pytest.mark.parametrize("family", FAMS)
def test_plus_inf(family):
    np.testing.assert_array_equal(numeric.probs([0.0, np.inf, 5.0], family), [0.0, 1.0, 0.0])
    # several +inf: uniform over them (the limit of tied scores growing without bound)
    np.testing.assert_array_equal(numeric.probs([np.inf, 3.0, np.inf, np.inf], family),
                                  [1 / 3, 0.0, 1 / 3, 1 / 3])
    lp = numeric.log_probs([np.inf, -np.inf, np.inf], family)
    np.testing.assert_array_equal(lp, [-math.log(2), -np.inf, -math.log(2)])


@pytest.mark.parametrize("family", FAMS)
def test_all_minus_inf_row_is_nan(family):
    assert np.isnan(numeric.probs([-np.inf, -np.inf], family)).all()


@pytest.mark.parametrize("family", FAMS)
def test_n1_scalar_0d_and_empty(family):
    assert numeric.probs([3.5], family).tolist() == [1.0]
    assert numeric.log_probs([3.5], family).tolist() == [0.0]
    s = numeric.probs(2.0, family)
    assert np.ndim(s) == 0 and s == 1.0                        # like scipy.special.softmax(2.0)
    assert numeric.probs(np.float32(2.0), family).dtype == np.float32
    e = numeric.probs(np.zeros((3, 0)), family)
    assert e.shape == (3, 0)
    assert numeric.probs(np.zeros((0, 4)), family).shape == (0, 4)
    assert numeric.probs([], family).shape == (0,)


@pytest.mark.parametrize("bad", [np.array([1 + 2j, 0]), np.array(["a", "b"]), np.array([object(), 1.0]),
                                 np.array([True, False]), [[1.0, 2.0], [3.0]]])
def test_non_real_input_is_type_error(bad):
    with pytest.raises(TypeError, match="mu"):
        numeric.probs(bad, "normal")


def test_integer_input_promoted():
    p = numeric.probs(np.array([1, 0, 3]), "normal")
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, numeric.probs([1.0, 0.0, 3.0], "normal"), rtol=0)


@pytest.mark.parametrize("axis", [2, -3, 5])
def test_axis_out_of_range(axis):
    with pytest.raises(np.exceptions.AxisError, match="axis"):
        numeric.probs(np.zeros((2, 3)), "normal", axis=axis)
    with pytest.raises(TypeError, match="axis"):
        numeric.probs(np.zeros((2, 3)), "normal", axis=1.5)


@pytest.mark.parametrize("family", ["gumbel", "normal", "logistic", "cauchy", "laplace", "exponential"])
def test_huge_spread_no_warning_no_nan(family):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mu in ([0.0, -1e300], [1e308, -1e308], [1e300, 1e300, -1e300], [-1e300, 0.0, 1.0]):
            p = numeric.probs(np.array(mu), family)
            lp = numeric.log_probs(np.array(mu), family)
            assert np.isfinite(p).all() and not np.isnan(lp).any()
            assert abs(p.sum() - 1) <= 1e-14
    # exact small cases: gaps of 2e308 overflow -> probability 0
    np.testing.assert_array_equal(numeric.probs([1e308, -1e308], family), [1.0, 0.0])


def test_huge_spread_cauchy_heavy_tail_value():
    # n = 2: p_2 = 1/2 - atan(d/2)/pi = atan(2/d)/pi ~ 2/(pi d) stays representable
    d = 1e300
    lp = numeric.log_probs([0.0, -d], "cauchy")
    assert abs(lp[1] - math.log(2 / (math.pi * d))) <= 1e-13 * 700


@pytest.mark.parametrize("family", ["normal", "laplace", "logistic"])
def test_subnormal_differences(family):
    tiny = 5e-324
    p = numeric.probs([0.0, tiny, 2 * tiny], family)
    np.testing.assert_allclose(p, [1 / 3] * 3, rtol=1e-15)
    assert p[2] >= p[1] >= p[0]


def test_normal_pair_far_tail_matches_log_ndtr():
    for d in (-50.0, -500.0, -5e4):
        lp = numeric.log_probs([d, 0.0], "normal")[0]
        assert abs(lp - log_ndtr(d / math.sqrt(2))) <= 1e-13 * abs(lp)


def test_float32_overflow_range():
    mu = np.array([3e38, -3e38, 1e38], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fam in ("gumbel", "normal", "cauchy"):
            p = numeric.probs(mu, fam)
            assert p.dtype == np.float32
            assert np.isfinite(p).all() and abs(float(p.sum()) - 1) < 1e-6
            assert p[0] == np.float32(1.0)
    p = numeric.probs(np.array([0.0, -1.0, 2.0], dtype=np.float32), "normal")
    ref = numeric.probs(np.array([0.0, -1.0, 2.0]), "normal")
    assert p.dtype == np.float32 and np.allclose(p, ref, rtol=1e-6)


def test_bad_method_and_options():
    with pytest.raises(ValueError, match="auto.*quadrature"):
        numeric.probs([0.0, 1.0], "normal", method="magic")
    with pytest.raises(ValueError, match="closed"):
        numeric.probs([0.0, 1.0, 2.0], "normal", method="closed")
    with pytest.raises(ValueError, match="monte_carlo"):
        numeric.probs([0.0, 1.0], "normal", method="quantile", samples=10)
    with pytest.raises(ValueError, match="K"):
        numeric.probs([0.0, 1.0], "normal", method="quantile", K=0)
    with pytest.raises(ValueError, match="scale"):
        numeric.probs([0.0, 1.0], "normal", scale=float("nan"))


# ---------------------------------------------------------------------------
# no silent numerical failure: pathological user families
# ---------------------------------------------------------------------------

def test_density_inconsistent_with_cdf_raises():
    # logpdf of N(0, 2^2) paired with the CDF of N(0, 1): sum p != 1 -> QuadratureError
    fam = numeric.family_from_logcdf(log_ndtr, lambda x: -x * x / 8 - 0.5 * math.log(8 * math.pi),
                         name="inconsistent", validate=False)
    with pytest.raises(QuadratureError, match="differs from 1"):
        numeric.probs([0.0, -0.5, 1.0], fam)


def test_wildly_oscillating_density_raises():
    # a density with 10^6 oscillations per unit: the adaptive rule cannot resolve it
    def logpdf(x):
        return -x * x / 2 - 0.5 * math.log(2 * math.pi) + np.log1p(0.999 * np.sin(1e6 * x))
    fam = numeric.family_from_logcdf(log_ndtr, logpdf, name="wiggly", validate=False)
    with pytest.raises(QuadratureError):
        numeric.probs([0.0, -0.5, 1.0], fam)


def test_nan_producing_family_raises():
    def logcdf(x):
        out = log_ndtr(x)
        return np.where((x > 0.2) & (x < 0.3), np.nan, out)
    fam = numeric.family_from_logcdf(logcdf, lambda x: -x * x / 2 - 0.5 * math.log(2 * math.pi),
                         name="holey", validate=False)
    with pytest.raises(QuadratureError, match="nan"):
        numeric.probs([0.0, -0.5, 1.0], fam)


def test_student_t_tiny_nu_is_answered_or_raises():
    # nu = 0.02: tails beyond float64 range; either a verified answer or QuadratureError
    try:
        p = numeric.probs([0.0, -1.0, 1.0], "student_t", nu=0.02)
    except QuadratureError:
        return
    assert abs(p.sum() - 1) <= 1e-14 and p[2] > p[0] > p[1]


@pytest.mark.parametrize("family", ["cauchy", "student_t"])
@pytest.mark.parametrize("d", [1e300, 1e200, 1e20])
def test_huge_gaps_heavy_tail_clusters(family, d):
    # scores [d, 0, -d]; to first order in 1/d (relative corrections ~1/d):
    #   p_1 = P[C1 - C0 > d] = atan(2/d)/pi   (C1 huge, or C0 below -d, both 1/(pi d))
    #   p_2 = P[C2 > 2d] = atan(1/(2d))/pi    (C0 < -2d also needs C2 - C1 > d: O(1/d^2))
    # student_t with nu = 1 is the cauchy law.  The middle entry's mass sits at x ~ -d, a
    # feature of width 1 at |x| = d: a single x = sinh(u) map (ulp of u ~1e-13) misses it.
    params = {"nu": 1.0} if family == "student_t" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = numeric.log_probs([d, 0.0, -d], family, **params)
        p = numeric.probs([d, 0.0, -d], family, **params)
    e1, e2 = math.atan(2 / d) / math.pi, math.atan(0.5 / d) / math.pi
    assert abs(lp[1] - math.log(e1)) <= 1e-13 * abs(math.log(e1))
    assert abs(lp[2] - math.log(e2)) <= 1e-13 * abs(math.log(e2))
    assert abs(p[1] / e1 - 1) <= 1e-13 and abs(p[2] / e2 - 1) <= 1e-13
    assert abs(p[0] - 1) <= 1e-15


@pytest.mark.parametrize("family", ["gumbel_min", "logistic", "laplace", "normal", "exponential",
                                    "uniform", "gumbel"])
def test_huge_spread_light_tails_log_values(family):
    # [1e300, 0, -1e300]: exponential left tails (logistic, laplace, gumbel, gumbel_min) give
    # log p_1 ~ -1e300 and log p_2 ~ -2e300 (gumbel_min: -3e300: both the winner's noise below
    # -2e300 and the middle's below -1e300 are needed); others underflow to -inf
    lp = numeric.log_probs([1e300, 0.0, -1e300], family)
    p = numeric.probs([1e300, 0.0, -1e300], family)
    assert p.tolist() == [1.0, 0.0, 0.0] and lp[0] == 0.0
    expect = {"logistic": (-1e300, -2e300), "laplace": (-1e300, -2e300), "gumbel": (-1e300, -2e300),
              "gumbel_min": (-1e300, -3e300)}.get(family)
    if expect is None:
        assert lp[1] == -np.inf and lp[2] == -np.inf
    else:
        assert abs(lp[1] / expect[0] - 1) <= 1e-13 and abs(lp[2] / expect[1] - 1) <= 1e-13
