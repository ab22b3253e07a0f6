"""Adversarial sweep of the public numeric API: valid but unusual input.

Every registry family (student_t at integer and non-integer nu) and a user
family (Frechet(2), ``F(x) = exp(-x^-2)`` on (0, oo): numerically through
``numeric.family_from_logcdf`` in the default tier, compiled from sympy by
``derive`` in the slow tier) on all-equal rows, ``-inf`` entries, one finite
entry, ties at the top, shifts by 1e15 and 1e300, tiny and huge ``scale``,
float32 / float16 / int input, strided and transposed arrays, ``axis=0`` /
``axis=None``, 3-d batches, empty batches, n = 1, NaN and infinite scores
and cotangents.  Each expected value comes from an exact identity, not from
the code's own output on the same input:

* ``sum_i p_i = 1``; equal scores give ``p_i = 1/n``; tied scores equal ``p``;
* a ``-inf`` score has ``p = 0`` and the other entries are the row without it;
* ``p(mu + c) = p(mu)`` and ``p(s mu; scale s) = p(mu; scale 1)``, so
  ``J(s mu; s) = J(mu; 1) / s``;
* ``J^T 1 = 0`` for ``probs`` (``sum p = 1`` for every ``mu``), hence
  ``J^T (g + c 1) = J^T g``;
* ``log_probs``' Jacobian is ``diag(1/p) J``, so its VJP with ``c`` is the
  ``probs`` VJP with ``c / p`` (where every ``p > 0``);
* with equal scores and one-hot cotangent on a symmetric noise the VJP is
  ``(n - 1) K`` on the hot entry and ``-K`` on the others (permutation
  symmetry), which the row-sum identity pins down up to ``K``.

VJP comparisons use the README's accuracy unit: 1e-10 of an entry's sum of
|terms|, bounded above by ``ptp(g) * max_k sum_j K_kj <= ptp(g) / scale``
times a family constant; ``_vjp_tol`` takes ``ptp(g) / scale``.
"""
from __future__ import annotations

import numpy as np
import pytest

import numeric

_LOG2 = float(np.log(2.0))


def _frechet_logcdf(x):
    # Frechet(alpha = 2): F(x) = exp(-x^-2) on (0, oo), log F = -x^-2
    return -(x ** -2.0)


def _frechet_logpdf(x):
    # f = 2 x^-3 exp(-x^-2)
    return _LOG2 - 3.0 * np.log(x) - x ** -2.0


FRECHET = numeric.family_from_logcdf(_frechet_logcdf, _frechet_logpdf, (0.0, np.inf), name="frechet2")

FAMILIES = [("gumbel", {}), ("normal", {}), ("logistic", {}), ("cauchy", {}), ("gumbel_min", {}),
            ("laplace", {}), ("exponential", {}), ("uniform", {}), ("student_t", {"nu": 2.5}),
            (FRECHET, {})]
IDS = ["gumbel", "normal", "logistic", "cauchy", "gumbel_min", "laplace", "exponential", "uniform",
       "t2.5", "frechet"]
SLOW_FAMILIES = [("student_t", {"nu": 1.0}), ("student_t", {"nu": 0.7}), ("student_t", {"nu": 7.0}),
                 ("student_t", {"nu": 30.0})]
SLOW_IDS = ["t1", "t0.7", "t7", "t30"]
NS = (12,)
SLOW_NS = (2, 3, 5, 60)


def _vjp_tol(g, scale=1.0):
    return 1e-10 * float(np.ptp(g)) / scale + 1e-300


def _rows(n, rng):
    """A few spread-out rows with distinct scores (a 1/8 grid, so that +1e15 is exact)."""
    return np.round(rng.standard_normal((3, n)) * np.array([[1.0], [2.0], [5.0]]) * 8) / 8


def _sweep(fam, kw, n, rng):
    """All identity checks of one family at one n (shared by the default and slow tiers)."""
    # all-equal rows, at offsets where x - max and x / scale round differently
    eq = np.array([np.full(n, c) for c in (0.0, 7.3, 1e15, -1e300)])
    p = numeric.probs(eq, fam, **kw)
    np.testing.assert_allclose(p, 1.0 / n, rtol=1e-13, atol=0)
    np.testing.assert_allclose(numeric.log_probs(eq, fam, **kw), -np.log(n), rtol=1e-13, atol=0)
    g = rng.standard_normal(eq.shape)
    v = numeric.probs_vjp(eq, g, fam, **kw)
    assert np.all(np.abs(v.sum(axis=1)) <= 1e-12 * np.abs(v).sum(axis=1) + 1e-300)
    # log p's VJP is the probs VJP of c / p = n c
    lv = numeric.log_probs_vjp(eq, g, fam, **kw)
    np.testing.assert_allclose(lv, n * v, rtol=0, atol=n * _vjp_tol(g))

    mu = _rows(n, rng)
    p0 = numeric.probs(mu, fam, **kw)
    assert np.all(np.abs(p0.sum(axis=1) - 1) <= 1e-14)
    g = rng.standard_normal(mu.shape)
    v0 = numeric.probs_vjp(mu, g, fam, **kw)
    tol = _vjp_tol(g)
    # shift invariance, exact shifts of grid scores
    np.testing.assert_allclose(numeric.probs(mu + 1e15, fam, **kw), p0, rtol=2e-13, atol=0)
    np.testing.assert_allclose(numeric.probs_vjp(mu + 1e15, g, fam, **kw), v0, rtol=0, atol=2 * tol)
    # J^T (g + c) = J^T g; a constant cotangent gives 0
    np.testing.assert_allclose(numeric.probs_vjp(mu, g + 3.0, fam, **kw), v0, rtol=0, atol=4 * tol)
    assert np.all(np.abs(numeric.probs_vjp(mu, np.full(mu.shape, 0.3), fam, **kw)) <= 1e-12)
    # log p's VJP = probs VJP of c / p (rows whose p are all > 0: uniform's may be 0)
    pos = np.flatnonzero((p0 > 0).all(axis=1))
    if pos.size:
        for c in (g[pos], np.full((pos.size, n), 0.7)):
            gp = c / p0[pos]
            np.testing.assert_allclose(numeric.log_probs_vjp(mu[pos], c, fam, **kw),
                                       numeric.probs_vjp(mu[pos], gp, fam, **kw),
                                       rtol=0, atol=2 * _vjp_tol(gp))
    # scale covariance: p(s mu; s) = p(mu), J(s mu; s) = J(mu) / s; powers of two keep
    # mu s / s exact; 1e-8 and 1e8 round it by an ulp, which moves an entry at the edge of a
    # bounded support (uniform: a gap of exactly one width, p = 0) to ~ulp^k
    for s in (2.0 ** -27, 2.0 ** 27, 1e-8, 1e8):
        atol = 0 if s in (2.0 ** -27, 2.0 ** 27) else 1e-20
        np.testing.assert_allclose(numeric.probs(mu * s, fam, scale=s, **kw), p0, rtol=1e-11, atol=atol)
        np.testing.assert_allclose(numeric.probs_vjp(mu * s, g, fam, scale=s, **kw) * s, v0,
                                   rtol=0, atol=4 * tol)
    # a scale so large that every gap is ~1e-300 units: equal scores
    np.testing.assert_allclose(numeric.probs(mu, fam, scale=1e300, **kw), 1.0 / n, rtol=1e-13, atol=0)

    # -inf entries: p = 0 exactly, the others are the row without them
    r = mu[1].copy()
    r[0] = -np.inf
    p = numeric.probs(r, fam, **kw)
    ref = numeric.probs(r[1:], fam, **kw)
    assert p[0] == 0.0
    np.testing.assert_allclose(p[1:], ref, rtol=2e-13, atol=0)
    gr = g[1]
    v = numeric.probs_vjp(r, gr, fam, **kw)
    assert v[0] == 0.0
    np.testing.assert_allclose(v[1:], numeric.probs_vjp(r[1:], gr[1:], fam, **kw), rtol=0, atol=2 * tol)
    if fam != "gumbel":   # gumbel's log VJP is log_softmax's backward (-inf entries' c count)
        v = numeric.log_probs_vjp(r, gr, fam, **kw)
        assert v[0] == 0.0
        np.testing.assert_allclose(v[1:], numeric.log_probs_vjp(r[1:], gr[1:], fam, **kw),
                                   rtol=1e-9, atol=1e-9 * np.abs(gr).sum())
    # one finite entry, the rest -inf: one-hot, locally constant
    r = np.full(n, -np.inf)
    r[n // 2] = 3.0
    np.testing.assert_array_equal(numeric.probs(r, fam, **kw), np.eye(n)[n // 2])
    np.testing.assert_array_equal(numeric.probs_vjp(r, gr, fam, **kw), np.zeros(n))

    # ties at the top: equal p; a cotangent symmetric in them gives equal VJP entries
    r = mu[0].copy()
    r[:2] = r.max() + 0.5
    p = numeric.probs(r, fam, **kw)
    np.testing.assert_allclose(p[0], p[1], rtol=1e-13)
    assert abs(p.sum() - 1) <= 1e-14
    gs = g[0].copy()
    gs[1] = gs[0]
    v = numeric.probs_vjp(r, gs, fam, **kw)
    np.testing.assert_allclose(v[0], v[1], rtol=0, atol=2 * _vjp_tol(gs))

    # narrow dtypes: the dtype is kept, the values are float64 results on the rounded input
    for dt, rtol in ((np.float32, 1e-6), (np.float16, 2e-3)):
        m = mu.astype(dt)
        p = numeric.probs(m, fam, **kw)
        assert p.dtype == dt
        ref = numeric.probs(m.astype(np.float64), fam, **kw)
        tiny = np.finfo(dt).tiny
        np.testing.assert_allclose(p.astype(np.float64), ref, rtol=rtol, atol=tiny)
        for vjp in (numeric.probs_vjp, numeric.log_probs_vjp):
            assert vjp(m, g.astype(dt), fam, **kw).dtype == dt
    # int input is float64 input
    mi = np.arange(n)[::-1] - n // 2
    np.testing.assert_allclose(numeric.probs(mi, fam, **kw), numeric.probs(mi.astype(float), fam, **kw),
                               rtol=1e-13, atol=0)
    assert np.all(np.abs(numeric.probs_vjp(mi, np.ones(n, dtype=int), fam, **kw)) <= 1e-12)

    # layouts: a row's result does not depend on how it is laid out (up to the order of
    # a floating-point sum: an ulp or two)
    P = numeric.probs(mu, fam, **kw)
    big = np.zeros((3, 2 * n))
    big[:, ::2] = mu
    same = dict(rtol=1e-15, atol=0)
    np.testing.assert_allclose(numeric.probs(big[:, ::2], fam, **kw), P, **same)
    np.testing.assert_allclose(numeric.probs(mu.T, fam, axis=0, **kw), P.T, **same)
    np.testing.assert_allclose(numeric.probs(np.stack([mu, mu]).transpose(1, 2, 0), fam, axis=1, **kw),
                               np.stack([P, P]).transpose(1, 2, 0), **same)
    np.testing.assert_allclose(numeric.probs(mu[:1].reshape(1, n, 1), fam, axis=None, **kw),
                               P[:1].reshape(1, n, 1), **same)
    for vjp in (numeric.probs_vjp, numeric.log_probs_vjp):
        V = vjp(mu, g, fam, **kw)
        same = dict(rtol=1e-14, atol=1e-14 * np.abs(V).max())
        np.testing.assert_allclose(vjp(big[:, ::2], np.asfortranarray(g), fam, **kw), V, **same)
        np.testing.assert_allclose(vjp(mu.T, g.T, fam, axis=0, **kw), V.T, **same)
        np.testing.assert_allclose(vjp(mu.reshape(3, 1, n), g.reshape(3, 1, n), fam, **kw),
                                   V.reshape(3, 1, n), **same)
        np.testing.assert_allclose(vjp(mu[:1].reshape(1, n, 1), g[:1].reshape(1, n, 1), fam, axis=None, **kw),
                                   V[:1].reshape(1, n, 1), **same)
        with pytest.raises(ValueError, match="cotangent"):
            vjp(mu, g[0], fam, **kw)          # no broadcasting of the cotangent

    # NaN: a NaN score makes its row NaN, in all four functions
    r = mu[:2].copy()
    r[0, 1] = np.nan
    for out in (numeric.probs(r, fam, **kw), numeric.log_probs(r, fam, **kw),
                numeric.probs_vjp(r, g[:2], fam, **kw), numeric.log_probs_vjp(r, g[:2], fam, **kw)):
        assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()


@pytest.mark.parametrize("fam,kw", FAMILIES, ids=IDS)
def test_identity_sweep(fam, kw):
    rng = np.random.default_rng(20261207)
    for n in NS:
        _sweep(fam, kw, n, rng)


@pytest.mark.slow
@pytest.mark.parametrize("fam,kw", FAMILIES + SLOW_FAMILIES, ids=IDS + SLOW_IDS)
def test_identity_sweep_wide(fam, kw):
    rng = np.random.default_rng(7)
    for n in SLOW_NS:
        _sweep(fam, kw, n, rng)


@pytest.mark.slow
def test_identity_sweep_compiled_user_family():
    # the same Frechet(2) as a derive family compiled by to_numeric() (its own kernels)
    import sympy as sp

    import derive
    x = sp.Symbol("x")
    fam = derive.family_from_cdf(sp.exp(-x ** -2), x, sp.Interval(0, sp.oo)).to_numeric()
    rng = np.random.default_rng(11)
    for n in (3, 12, 40):
        _sweep(fam, {}, n, rng)


def test_user_family_with_heavy_tails_is_accepted():
    # 1 - F(60) is 5.3e-3 for Cauchy: the validation grid alone ends far from the limit 1.
    # n = 2: eps_1 - eps_2 is Cauchy of scale 2, so p_2 = 1/2 - atan(d/2) / pi = atan2(2, d) / pi
    from scipy import stats
    cauchy = numeric.family_from_logcdf(stats.cauchy.logcdf, stats.cauchy.logpdf, name="my_cauchy")
    d = np.array([0.0, 0.7, 3.0, 40.0, 1e4])
    p = numeric.probs(np.stack([d, np.zeros_like(d)], axis=1), cauchy)
    np.testing.assert_allclose(p[:, 1], np.arctan2(2.0, d) / np.pi, rtol=1e-13, atol=0)
    # a function that does not tend to 1 is still refused
    with pytest.raises(ValueError, match="does not tend to 1"):
        numeric.family_from_logcdf(lambda x: np.log(0.5 + 0.4 / (1 + np.exp(-x))),
                                   lambda x: np.log(0.4) - x - 2 * np.log1p(np.exp(-x)))


@pytest.mark.parametrize("fam,kw", FAMILIES, ids=IDS)
def test_empty_batches_n1_and_infinities(fam, kw):
    # empty batch (0, n) and empty axis: empty results of the same shape, every function
    for shape in ((0, 3), (2, 0, 5), (3, 0)):
        z = np.zeros(shape, dtype=np.float32)
        assert numeric.probs(z, fam, **kw).shape == shape
        assert numeric.log_probs(z, fam, **kw).dtype == np.float32
        for vjp in (numeric.probs_vjp, numeric.log_probs_vjp):
            assert vjp(z, z, fam, **kw).shape == shape
    # n = 1: p = 1, log p = 0, the Jacobian is 0
    one = np.array([[3.0], [-1e300], [1e300]])
    np.testing.assert_array_equal(numeric.probs(one, fam, **kw), np.ones((3, 1)))
    np.testing.assert_array_equal(numeric.log_probs(one, fam, **kw), np.zeros((3, 1)))
    np.testing.assert_array_equal(numeric.probs_vjp(one, one, fam, **kw), np.zeros((3, 1)))
    np.testing.assert_array_equal(numeric.log_probs_vjp(one, one, fam, **kw), np.zeros((3, 1)))
    # k +inf entries share the mass; all -inf is NaN; the VJP of such rows is 0 / NaN
    mu = np.array([[np.inf, 0.0, np.inf, -np.inf, 5.0], [-np.inf] * 5])
    p = numeric.probs(mu, fam, **kw)
    np.testing.assert_array_equal(p[0], [0.5, 0, 0.5, 0, 0])
    assert np.isnan(p[1]).all()
    v = numeric.probs_vjp(mu, np.tile(np.arange(5.0), (2, 1)), fam, **kw)
    np.testing.assert_array_equal(v[0], np.zeros(5))
    assert np.isnan(v[1]).all()
    # spreads up to 2e300: p sums to 1, order preserved, ties equal
    p = numeric.probs(np.array([1e300, 0.0, -1e300, 1e300]), fam, **kw)
    assert abs(p.sum() - 1) <= 1e-14 and p[0] == p[3] and p[1] >= p[2]
    # gaps overflowing float64 after / scale count as -inf
    p = numeric.probs(np.array([1e300, 0.0, 1e300 - 1e285]), fam, scale=1e-10, **kw)
    assert p[1] == 0.0 and abs(p.sum() - 1) <= 1e-14
    # subnormal gaps are equal scores
    np.testing.assert_allclose(numeric.probs(np.array([5e-324, 0.0, 0.0]), fam, **kw), 1 / 3, rtol=1e-13)
    # tiny scale: gaps of 5e7 .. 1e8 units, order kept, sums to 1
    p = numeric.probs(np.array([1.0, 0.0, 0.5]), fam, scale=1e-8, **kw)
    assert abs(p.sum() - 1) <= 1e-14 and p[0] >= p[2] >= p[1]


@pytest.mark.parametrize("fam,kw", FAMILIES, ids=IDS)
def test_nonfinite_cotangent_gives_nan_row(fam, kw):
    # J^T g with a NaN or infinite g_k on a live entry has no finite value: NaN row,
    # like a NaN score (scipy / torch propagate NaN the same way); other rows untouched
    mu = np.array([[0.3, -1.0, 2.0, 0.0]] * 3)
    g = np.array([[1.0, np.nan, 0.0, 0.0], [1.0, np.inf, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    for vjp in (numeric.probs_vjp, numeric.log_probs_vjp):
        out = vjp(mu, g, fam, **kw)
        assert np.isnan(out[:2]).all()
        np.testing.assert_allclose(out[2], vjp(mu[2], g[2], fam, **kw), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("fam", ["normal", "cauchy", "laplace", "uniform", FRECHET],
                         ids=["normal", "cauchy", "laplace", "uniform", "frechet"])
def test_nan_cotangent_on_neg_inf_entry_is_ignored(fam):
    # -inf entries' cotangents are ignored (their p is 0 for every nearby mu)
    mu = np.array([0.3, -np.inf, 0.9, 0.0])
    g = np.array([1.0, np.nan, 0.0, 0.0])
    for vjp in (numeric.probs_vjp, numeric.log_probs_vjp):
        out = vjp(mu, g, fam)
        assert out[1] == 0.0
        np.testing.assert_allclose(out[[0, 2, 3]], vjp(mu[[0, 2, 3]], g[[0, 2, 3]], fam), rtol=1e-13, atol=1e-15)


def test_gumbel_cotangent_on_neg_inf_entry_is_ignored():
    # p_i = 0 identically at a -inf score, so dp_i/dmu_k = 0: the README drops its cotangent,
    # whatever it is, as on the other families' paths
    mu = np.array([0.3, -np.inf, 0.9, 0.0])
    ref = numeric.probs_vjp(mu[[0, 2, 3]], np.array([1.0, 0.0, 0.0]), "gumbel")
    for bad in (np.nan, np.inf, 2.0):
        out = numeric.probs_vjp(mu, np.array([1.0, bad, 0.0, 0.0]), "gumbel")
        assert out[1] == 0.0
        np.testing.assert_allclose(out[[0, 2, 3]], ref, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("nu", [1e4, 1e7, 1e10, 1e15])
def test_student_t_large_nu_tends_to_normal(nu):
    # t_nu -> N(0, 1) with F_t - Phi = O(1/nu): p_t - p_normal shrinks like 1/nu (measured
    # nu |p_t / p_normal - 1| ~ 29 on this row); these nu raised FloatingPointError (the tail's
    # continued fraction stopped only when all entries converged at the same step) or
    # QuadratureError (gammaln((nu+1)/2) - gammaln(nu/2) lost 2e-10 at nu = 1e7)
    mu = np.linspace(0.0, 3.0, 20)
    rel = np.abs(numeric.probs(mu, "student_t", nu=nu) / numeric.probs(mu, "normal") - 1).max()
    assert rel * nu <= 40.0 and (nu < 1e10 or rel <= 1e-13 + 40.0 / nu)
    assert rel * nu >= 20.0 or nu >= 1e15      # and not the normal itself


def test_student_t_large_nu_deep_tail_vs_mpmath():
    # log P[T < x] = log(I_{nu/(nu+x^2)}(nu/2, 1/2) / 2), 40-digit mpmath, where stdtr underflows
    mp = pytest.importorskip("mpmath")
    with mp.workdps(40):
        for nu in (1e4, 1e5):
            fam = numeric.get_family("student_t", nu=nu)
            for x in (-40.0, -60.0, -200.0):
                n = mp.mpf(nu)
                ref = mp.log(mp.betainc(n / 2, mp.mpf(1) / 2, 0, n / (n + mp.mpf(x) ** 2), regularized=True) / 2)
                got = float(fam.logcdf(np.array([x]))[0])
                assert abs(got - float(ref)) <= 2e-15 * abs(float(ref))


def test_student_t_huge_nu_deep_tail_vs_mpmath():
    # log P[T < x] at nu = 1e12 .. 1e300 (the tail's Gauss-Laguerre form, numeric.families
    # _log_t_mills) against 50-digit mpmath: the density integrated from a = -x to inf by
    # mp.quad, log C = log Gamma((nu+1)/2) - log Gamma(nu/2) - log(nu pi)/2 with digits for
    # log nu; and betainc (log(I_{nu/(nu+x^2)}(nu/2, 1/2) / 2)) where it converges.  The beta
    # continued fraction is 1.5e-10 off at nu = 1e12, x = -40 and does not converge at
    # nu >= 1e20; log F_t - log Phi ~ x^4 / (4 nu) rules out the normal (0.25 at nu = 1e20,
    # x = -1e5)
    mp = pytest.importorskip("mpmath")
    for nu in (1e12, 1e20, 1e100, 1e300):
        with mp.workdps(60 + len(str(int(nu)))):
            n = mp.mpf(nu)
            lc = mp.loggamma((n + 1) / 2) - mp.loggamma(n / 2) - mp.log(n * mp.pi) / 2
        fam = numeric.get_family("student_t", nu=nu)
        for x in (-1.0, -40.0, -1e5, -1e8):
            with mp.workdps(50):
                a = mp.mpf(-x)
                lfa = -(n + 1) / 2 * mp.log1p(a * a / n)
                tail = mp.quad(lambda t: mp.exp(-(n + 1) / 2 * mp.log1p(t * t / n) - lfa),
                               [a, a + 1 / a, a + 10 / a + 10, mp.inf])
                ref = float(lc + lfa + mp.log(tail))
            got = float(fam.logcdf(np.array([x]))[0])
            assert abs(got - ref) <= 1e-15 * abs(ref), (nu, x, got, ref)
            if abs(x) < 100 and nu <= 1e20:
                with mp.workdps(50 + len(str(int(nu)))):
                    beta = mp.log(mp.betainc(n / 2, mp.mpf(1) / 2, 0, n / (n + mp.mpf(x) ** 2), regularized=True) / 2)
                assert abs(got - float(beta)) <= 1e-15 * abs(float(beta)), (nu, x, got, float(beta))


@pytest.mark.parametrize("nu", [1e20, 1e300])
def test_student_t_huge_nu_is_normal(nu):
    # |F_t - Phi| = O(1/nu): below float64 resolution at these nu (n = 2, 3, 4, 20)
    rng = np.random.default_rng(3)
    for mu in (np.array([0.3, -1.0, 2.0, 0.0]), np.array([0.3, -1.0]), np.array([0.0, -1.0, 2.0]),
               5.0 * rng.standard_normal(20)):
        np.testing.assert_allclose(numeric.probs(mu, "student_t", nu=nu), numeric.probs(mu, "normal"),
                                   rtol=1e-13, atol=0)


def test_torch_adapter_edges():
    torch = pytest.importorskip("torch")
    from numeric.torch import perturbed_log_softmax, perturbed_softmax
    for fam in ("normal", "laplace", "uniform"):
        # empty batch, empty axis, dim=1 of a 3-d batch, a transposed (non-contiguous) input
        for shape, dim in (((0, 4), -1), ((3, 0), -1), ((2, 3, 4), 1)):
            x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
            lp = perturbed_log_softmax(x, family=fam, dim=dim)
            lp.sum().backward()
            assert lp.shape == shape and x.grad.shape == shape
        base = torch.randn(4, 3, dtype=torch.float64)
        xt = base.t().requires_grad_()
        xc = base.t().contiguous().requires_grad_()
        for x in (xt, xc):
            perturbed_softmax(x, family=fam, dim=0)[0].sum().backward()
        torch.testing.assert_close(xt.grad, xc.grad, rtol=0, atol=0)
        # J^T 1 = 0 for the probabilities, in the dtype of the input
        x = torch.tensor([[0.3, -1.0, 2.0, 0.0]], dtype=torch.float32, requires_grad=True)
        perturbed_softmax(x, family=fam).sum().backward()
        assert x.grad.dtype == torch.float32 and float(x.grad.abs().max()) <= 1e-6
