"""numeric._uniform region engine: panel sizes and region ends (session 11, H3).

The region engine's 16-point panels take ``h S <= 4`` and ``h <= (1 - t) / 6`` (error
below ~2e-21 of each panel's integral, bound in numeric._uniform's section comment), and a
region whose near groups fill at most a quarter of it ends just past them (smaller series
ratio, fewer terms).  Checked against references independent of the engine: exact sums
at 50 digits (two tied groups) and the adaptive quadrature (itself oracle-tested).
"""

import numpy as np
import pytest

import numeric
from numeric._quadrature import quadrature_log_probs
from numeric._uniform import _Wide, _wide_groups, _wide_row_log_probs, log_probs_rows, probs_vjp_rows
from numeric._vjp import quadrature_vjp
from numeric.families import get_family


def _two_tied_groups(w0, m, delta):
    """``w0`` scores tied at 0 and ``m`` tied at ``-delta``: exact log p at 50 digits
    (``sigma = 1 - t``: ``p_deep = int_0^(1 - delta) sigma^w0 (sigma + delta)^(m - 1)
    dsigma``, a sum of one-signed terms; ``p_top = (1 - m p_deep) / w0``)."""
    import mpmath as mp
    x = np.r_[np.zeros(w0), np.full(m, -delta)]
    with mp.workdps(50):
        d = -mp.mpf(float(x[-1]))
        e = 1 - d
        pd = mp.fsum(mp.binomial(m - 1, k) * d ** (m - 1 - k) * e ** (w0 + k + 1) / (w0 + k + 1) for k in range(m))
        ref = np.array([float(mp.log((1 - m * pd) / w0))] * w0 + [float(mp.log(pd))] * m)
    return x, ref


@pytest.mark.parametrize("w0,m,delta", [(40, 60, 0.002), (3, 300, 1e-4), (100, 100, 0.3), (400, 400, 0.01)])
def test_long_tail_panels_exact(w0, m, delta):
    # the mass decays over a stretch free of breakpoints (one long piece: the panels
    # of h S <= 4) after one near group
    x, ref = _two_tied_groups(w0, m, delta)
    lp, ok = _wide_row_log_probs(x)
    assert ok
    d, w, _, _ = _wide_groups(x)
    W = _Wide(d, w)
    # regions without near groups may let log G drop by up to 256 (64 with near groups)
    drops = [H * W._slope(a + H) for a, H, jf, _ in W.regions if H is not None]
    assert max(drops) <= 256.0 * (1 + 1e-12)
    assert np.max(np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-13


@pytest.mark.parametrize("w0,m,delta", [(1, 200, 1 - 1e-7), (2, 300, 0.99999), (64, 64, 0.999), (200, 3, 0.9),
                                        (70, 70, 1 - 1e-6), (30, 100, 1 - 1e-5)])
def test_end_region_panels_exact(w0, m, delta):
    # the deep group's mass lies where sig = 1 - t <= d_1 / 8: the end region (panels of
    # 8 steps of Psi; the ellipse crosses sig = 0, where every integrand is a polynomial
    # factor times a function analytic for |sig| < d_1)
    x, ref = _two_tied_groups(w0, m, delta)
    d, w, _, _ = _wide_groups(x)
    assert _Wide(d, w).regions[-1][1] is None
    lp, ok = _wide_row_log_probs(x)
    assert ok
    assert np.max(np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-13


def test_end_region_vjp_vs_quadrature():
    rng = np.random.default_rng(34)
    fam = get_family("uniform")
    x = np.r_[0.0, 0.0, -1e-3 * rng.random(size=60), -0.99999 - 5e-6 * rng.random(size=40)]
    d, w, _, _ = _wide_groups(x)
    assert _Wide(d, w).regions[-1][1] is None
    for log in (False, True):
        for c in (rng.normal(size=x.size), np.eye(x.size)[80]):
            v, ok = probs_vjp_rows(x[None], c[None], log=log)
            assert ok.all()
            ref, _ = quadrature_vjp(x, c, fam, log=log)
            assert np.max(np.abs(v[0] - ref)) <= 1e-11 * np.abs(ref).max()


def _cluster_row(rng, n, width=4e-3, deep=0):
    """A tight cluster at the top with an exact tie, some copies, and ``deep`` scores
    just above the support's end (``d`` near 1)."""
    x = np.r_[0.0, 0.0, -width * rng.random(size=n - 2 - deep), -0.9999 - 1e-4 * rng.random(size=deep)]
    x[5:20] = x[30:45]
    return x


def test_region_ends_past_its_near_groups():
    rng = np.random.default_rng(31)
    x = _cluster_row(rng, 200)
    d, w, _, _ = _wide_groups(x)
    W = _Wide(d, w)
    a, H, jf, _ = W.regions[0]
    assert W.ok and H is not None
    # the first region holds every cluster score and ends 1/4 of its span beyond them
    assert np.searchsorted(d, a + H) == d.size
    assert H == pytest.approx(1.25 * d[-1], rel=1e-15)
    lp, ok = log_probs_rows(x[None])
    ref = quadrature_log_probs(x, get_family("uniform"))
    assert ok.all()
    assert np.max(np.abs(lp[0] - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-12


@pytest.mark.parametrize("log", [False, True])
def test_cluster_rows_vjp_vs_quadrature(log):
    rng = np.random.default_rng(32)
    fam = get_family("uniform")
    for x in (_cluster_row(rng, 160), _cluster_row(rng, 160, deep=30)):
        for c in (rng.normal(size=x.size), np.eye(x.size)[int(rng.integers(x.size))]):
            v, ok = probs_vjp_rows(x[None], c[None], log=log)
            assert ok.all()
            ref, _ = quadrature_vjp(x, c, fam, log=log)
            assert np.max(np.abs(v[0] - ref)) <= 1e-11 * np.abs(ref).max()
            assert abs(v[0].sum()) <= 1e-12 * np.abs(v[0]).sum()


def test_batch_rows_independent_of_their_batch():
    # rows of a batch (region engine and exact rules mixed) equal the rows alone
    rng = np.random.default_rng(33)
    X = np.stack([_cluster_row(rng, 120), _cluster_row(rng, 120, deep=10), rng.normal(size=120),
                  0.05 * rng.normal(size=120)])
    lp, ok = log_probs_rows(X - X.max(axis=1, keepdims=True))
    assert ok.all()
    for r in range(X.shape[0]):
        one, _ = log_probs_rows(X[r:r + 1] - X[r].max())
        assert np.array_equal(one[0], lp[r])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clusters+ties", "s=1"])
def test_bench_rows_n1000_vs_quadrature(kind):
    # the benchmark's rows at n = 1000 (the first clustered row has a second cluster
    # near d = 1: the end region and geometric regions), log p and both VJPs
    from derive.bench import cotangent, scores
    fam = get_family("uniform")
    for shape in ((1, 1000), (2, 1000)):
        Y = scores(kind, shape)
        C = cotangent(kind, shape, "dense")
        for x, c in zip(Y, C):
            x = x - x.max()
            lp = numeric.log_probs(x, "uniform")
            ref = quadrature_log_probs(x, fam)
            fin = np.isfinite(ref)
            assert np.array_equal(np.isfinite(lp), fin)
            assert np.max(np.abs(lp[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))) <= 1e-12
            for log in (False, True):
                v, ok = probs_vjp_rows(x[None], c[None], log=log)
                assert ok.all()
                r, _ = quadrature_vjp(x, c, fam, log=log)
                assert np.max(np.abs(v[0] - r)) <= 1e-10 * np.abs(r).max()
