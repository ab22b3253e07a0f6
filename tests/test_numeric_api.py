"""Public API of numeric: broadcasting, dtypes, methods, baselines, determinism, threads."""

import math

import mpmath as mp
import numpy as np
import pytest
from scipy.special import softmax

import numeric


def test_exports():
    for name in ("probs", "log_probs", "probs_vjp", "log_probs_vjp", "NumericFamily", "get_family",
                 "family_from_logcdf", "FAMILY_NAMES", "METHODS", "QuadratureError"):
        assert hasattr(numeric, name)
    # one family class per side, with distinct names; both factories return instances of it
    assert isinstance(numeric.get_family("normal"), numeric.NumericFamily)
    assert not hasattr(numeric, "Family")
    assert set(numeric.METHODS) == {"auto", "closed", "quadrature", "batch", "quantile",
                                    "monte_carlo"}
    assert issubclass(numeric.QuadratureError, ArithmeticError)


def test_gumbel_is_softmax_any_shape_and_axis():
    x = np.random.default_rng(0).normal(size=(3, 4, 5)) * 4
    for axis in (0, 1, 2, -1, -2):
        np.testing.assert_allclose(numeric.probs(x, axis=axis), softmax(x, axis=axis), rtol=1e-14)
    np.testing.assert_allclose(numeric.probs(x, axis=None), softmax(x, axis=None), rtol=1e-14)


@pytest.mark.parametrize("scale", [1.0, 0.75])
def test_gumbel_log_probs_and_vjps_any_shape_and_axis(scale):
    """Gumbel: log_probs is scipy's log_softmax of mu / scale, and both VJPs are the
    explicit Jacobians (diag(p) - p p^T) / scale and (I - 1 p^T) / scale applied to g,
    along every axis, a -inf entry included."""
    from scipy.special import log_softmax
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5)) * 4
    x[1, 2, 3] = -np.inf
    g = rng.normal(size=x.shape)
    for axis in (0, 1, 2, -1, None):
        lp = numeric.log_probs(x, axis=axis, scale=scale)
        np.testing.assert_allclose(lp, log_softmax(x / scale, axis=axis), rtol=1e-14, atol=1e-14)
        xs = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]) if axis is not None else x.reshape(1, -1)
        gs = np.moveaxis(g, axis, -1).reshape(xs.shape) if axis is not None else g.reshape(1, -1)
        want_p, want_l = [], []
        for row, c in zip(xs, gs):
            p = np.exp(log_softmax(row / scale))
            want_p.append((np.diag(p) - np.outer(p, p)) @ c / scale)
            want_l.append((c - p * c.sum()) / scale)
        for fn, want in ((numeric.probs_vjp, want_p), (numeric.log_probs_vjp, want_l)):
            got = fn(x, g, axis=axis, scale=scale)
            got = np.moveaxis(got, axis, -1).reshape(xs.shape) if axis is not None else got.reshape(1, -1)
            np.testing.assert_allclose(got, np.array(want), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("family", ["normal", "laplace", "cauchy"])
def test_batch_equals_rows(family):
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    got = numeric.probs(x, family, axis=1)
    assert got.shape == x.shape
    for i in range(2):
        for k in range(4):
            np.testing.assert_array_equal(got[i, :, k], numeric.probs(x[i, :, k], family))


def test_log_probs_is_log_of_probs():
    x = np.array([0.0, -3.0, 1.5, 0.2])
    for fam in ("normal", "logistic", "uniform"):
        lp = numeric.log_probs(x, fam)
        p = numeric.probs(x, fam)
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(lp, np.log(p), rtol=1e-14)


def test_float32_in_float32_out():
    x = np.array([[0.0, 1.0, -2.0]], dtype=np.float32)
    for fam in ("gumbel", "normal"):
        p = numeric.probs(x, fam)
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, numeric.probs(x.astype(np.float64), fam), rtol=1e-6)
        g = numeric.probs_vjp(x, np.ones_like(x), fam)
        assert g.dtype == np.float32


def test_closed_method_where_available():
    assert numeric.probs([0.0, 1.0, 2.0], method="closed").shape == (3,)
    p = numeric.probs([0.3, -0.4], "cauchy", method="closed")
    assert abs(p[0] - (0.5 + math.atan(0.7 / 2) / math.pi)) < 1e-15
    with pytest.raises(ValueError, match="valid methods here"):
        numeric.probs([0.0, 1.0, 2.0], "logistic", method="closed")


def test_quantile_baseline_is_the_article_rule():
    # K = 3 quantile nodes computed by hand in mpmath for the normal family
    mu = [0.0, -1.0, 0.5]
    K = 3
    got = numeric.probs(mu, "normal", method="quantile", K=K)
    e = [mp.sqrt(2) * mp.erfinv(2 * mp.mpf(k) / (K + 1) - 1) for k in range(1, K + 1)]
    for i in range(3):
        ref = sum(mp.fprod(mp.ncdf(mu[i] - mu[j] + ek) for j in range(3) if j != i) for ek in e) / K
        assert abs(got[i] - ref) <= 1e-14 * ref
    # and it is a poor approximation: K = 1000 misses the small entry badly
    mu = np.array([0.0, -6.0, 1.0])
    exact = numeric.probs(mu, "normal")
    rule = numeric.probs(mu, "normal", method="quantile", K=1000)
    assert abs(rule[1] - exact[1]) / exact[1] > 1e-2


def test_monte_carlo_baseline_seeded():
    mu = np.array([0.0, -1.0, 0.5])
    a = numeric.probs(mu, "normal", method="monte_carlo", samples=200_000, seed=3)
    b = numeric.probs(mu, "normal", method="monte_carlo", samples=200_000, seed=3)
    np.testing.assert_array_equal(a, b)
    exact = numeric.probs(mu, "normal")
    assert np.max(np.abs(a - exact)) < 5 * math.sqrt(0.25 / 200_000)
    assert a.sum() == 1.0


def test_method_options_validated():
    with pytest.raises(TypeError, match="samples"):
        numeric.probs([0.0, 1.0], "normal", method="monte_carlo", samples=1.5)
    with pytest.raises(ValueError, match="not available"):
        fam = numeric.family_from_logcdf(numeric.get_family("normal").logcdf, numeric.get_family("normal").logpdf)
        numeric.probs([0.0, 1.0], fam, method="quantile")


@pytest.mark.parametrize("family", ["normal", "cauchy", "laplace", "uniform", "exponential"])
def test_article_properties(family):
    rng = np.random.default_rng(11)
    for _ in range(3):
        mu = rng.normal(size=6) * 2
        p = numeric.probs(mu, family)
        assert (p >= 0).all() and abs(math.fsum(p) - 1) <= 1e-14
        order = np.argsort(mu)
        assert (np.diff(p[order]) >= 0).all()                      # order preserving (non-strict)
        np.testing.assert_allclose(numeric.probs(mu + 3.7, family), p, rtol=1e-12, atol=1e-300)
        perm = rng.permutation(6)
        # permutation equivariant (to rounding: the quadrature sums in another order)
        np.testing.assert_allclose(numeric.probs(mu[perm], family), p[perm], rtol=1e-14)


@pytest.mark.parametrize("family", ["normal", "logistic", "cauchy", "laplace"])
def test_batch_method_agrees_with_quadrature_rowwise(family):
    # "batch" vectorises over rows (laplace is not served and goes to the quadrature);
    # the reference is the adaptive quadrature run on each row alone
    rng = np.random.default_rng(7)
    x = rng.normal(scale=2.0, size=(40, 6))
    x[3] = [0.0, 0.0, -3.0, -3.0, -40.0, 1.0]          # ties and a tiny entry
    x[5, 2] = -np.inf
    got = numeric.probs(x, family, method="batch")
    ref = np.stack([numeric.probs(row, family, method="quadrature") for row in x])
    tiny = ref < 1e-300
    assert np.array_equal(got == 0, ref == 0)
    rel = np.abs(got[~tiny & (ref > 0)] / ref[~tiny & (ref > 0)] - 1)
    assert rel.max() <= 2e-13, rel.max()
    assert np.allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-14)
