"""Row-batched O(n) engine (numeric._fast_rows) and the one-hot VJP path.

References are independent of the engine: ``derive.oracle.log_probs`` (mpmath)
for log p, and mpmath integrals of the max-CDF form's derivative

    d log p_y / d mu_k = -int h_k h_y F dx / int h_y F dx        (k != y)

(``tests/_mp_families``) for the one-hot VJP; for long rows, where mpmath is
too slow, the adaptive quadrature (``method="quadrature"``: Gauss-Kronrod
panels, a different algorithm) is the cross-check.
"""

import mpmath as mp
import numpy as np
import pytest

import numeric
from _mp_families import mp_family
from derive import oracle
from numeric.families import get_family
from numeric._fast_rows import rows_log_probs, rows_onehot_log_vjp

FAMS = ("normal", "logistic", "gumbel_min")
# the default tier checks the normal family against mpmath; the others run in the slow tier
FAMS_TIERED = ("normal",) + tuple(pytest.param(f, marks=pytest.mark.slow) for f in FAMS[1:])


def _log_tol(ref):
    """README bound: p to 1e-13 relative for p >= 1e-300 (or 2 rounding steps of
    log p), log p to 1e-12 max(1, |log p|) below."""
    ref = np.asarray(ref)
    small = np.maximum(1e-13, 2.0 * np.spacing(np.abs(ref)))
    return np.where(ref >= math_log_1e300, small, 1e-12 * np.maximum(1.0, np.abs(ref)))


math_log_1e300 = float(np.log(1e-300))


def _mp_onehot_rule(mu, y, fam, points, width):
    """``d log p_y / d mu_k`` for every k (mpf) by one composite Gauss-Legendre rule:
    ``points`` nodes on each panel of ``width`` over ``[min mu - 40, max mu + 40]``.

    All ``n`` integrals share the nodes, so ``Phi``/``phi`` are evaluated once per
    score and node: the integrand of k is ``phi_y phi_k prod_{j != y, k} Phi_j``.
    Beyond the cut each integrand carries ``phi_y`` at distance >= 40: below
    e^-800 (normal); logistic ``phi_y phi_k`` < e^-80 on the right, and on the left
    the n - 1 CDF factors are each < e^-40."""
    cdf, pdf = mp_family(fam)
    X, W = mp.gauss_quadrature(points, "legendre")
    m = [mp.mpf(float(v)) for v in mu]
    lo = mp.floor(min(m)) - 40
    acc = [mp.mpf(0)] * len(m)
    for panel in range(int((mp.ceil(max(m)) + 40 - lo) / width)):
        centre = lo + (panel + mp.mpf(0.5)) * width
        for xi, wi in zip(X, W):
            x = centre + xi * width / 2
            cd = [cdf(x - v) for v in m]
            fy = wi * pdf(x - m[y])
            for j, c in enumerate(cd):
                if j != y:
                    fy *= c
            acc[y] += fy
            for k, c in enumerate(cd):
                if k != y:
                    acc[k] += fy * pdf(x - m[k]) / c
    out = [-acc[k] / acc[y] if k != y else mp.mpf(0) for k in range(len(m))]
    out[y] = -mp.fsum(out)
    return out


def _mp_onehot(mu, y, fam, dps=20):
    """``d log p_y / d mu_k`` for every k by mpmath quadrature, as float64.

    Two composite Gauss-Legendre rules with different nodes (20 points on unit
    panels, 24 points on panels of width 2) must agree to 1e-15 relative in every
    entry: the reference is then at least 1000x below the tests' bounds (1e-12
    and the README's 1e-10).  The integrands are analytic within distance >= 1 of
    the real axis (logistic poles at +-i pi; normal entire), so a 20-point rule on
    a unit panel converges far below 1e-20; 20 digits carry the sums (all terms
    positive) to ~1e-19."""
    with mp.workdps(dps):
        a = _mp_onehot_rule(mu, y, fam, 20, 1)
        b = _mp_onehot_rule(mu, y, fam, 24, 2)
        gap = max(abs(u - v) / abs(v) for u, v in zip(a, b) if v != 0)
        assert gap <= mp.mpf(10) ** -15, f"mpmath reference not converged: rules differ by {mp.nstr(gap, 3)}"
        return np.array([float(v) for v in a])


def _rows(seed, n):
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(size=n),                                      # s = 1
                     2.5 * rng.normal(size=n),                                # wider
                     np.r_[np.zeros(n // 2), -3.0 + 0.01 * rng.normal(size=n - n // 2)]])  # ties + cluster


@pytest.mark.parametrize("fam", FAMS_TIERED)
def test_log_probs_vs_oracle(fam):
    x = _rows(3, 16)
    lp, ok = rows_log_probs(x, get_family(fam))
    assert ok.any()
    for r in np.flatnonzero(ok):
        ref = np.array([float(v) for v in oracle.log_probs(list(x[r]), fam, dps=25)])
        assert np.all(np.abs(lp[r] - ref) <= _log_tol(ref)), (r, np.abs(lp[r] - ref).max())


@pytest.mark.parametrize("fam", FAMS)
def test_row_result_independent_of_batch(fam):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(9, 300)) * rng.uniform(0.5, 2.0, size=(9, 1))
    F = get_family(fam)
    lp, ok = rows_log_probs(x, F)
    v, okv = rows_onehot_log_vjp(x, np.arange(9) * 30, F)
    for r in range(9):
        a, oka = rows_log_probs(x[r:r + 1], F)
        assert oka[0] == ok[r] and np.array_equal(a[0], lp[r], equal_nan=True)
        b, okb = rows_onehot_log_vjp(x[r:r + 1], np.array([r * 30]), F)
        assert okb[0] == okv[r] and np.array_equal(b[0], v[r], equal_nan=True)


def test_row_result_independent_of_batch_node_blocks():
    """Rows of one bin count whose nodes take a tilt over different node ranges (row 4
    alone vs with row 1): the node sums' products run over fixed node blocks, so BLAS
    sees the same shapes and the row's log p is the same bits either way."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 300)) * rng.uniform(0.5, 2.0, size=(6, 1))
    F = get_family("normal")
    lp, ok = rows_log_probs(x, F)
    for r in (1, 4):
        a, oka = rows_log_probs(x[r:r + 1], F)
        assert oka[0] == ok[r] and np.array_equal(a[0], lp[r], equal_nan=True)


@pytest.mark.parametrize("fam", FAMS_TIERED)
def test_onehot_vjp_vs_mpmath(fam):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6))
    y = np.array([int(np.argmin(x[0])), int(np.argmax(x[1]))])       # lowest and highest entry
    v, ok = rows_onehot_log_vjp(x, y, get_family(fam))
    assert ok.any()
    for r in np.flatnonzero(ok):
        ref = _mp_onehot(x[r], y[r], fam)
        assert np.all(np.abs(v[r] - ref) <= 1e-12 * np.abs(ref)), (r, np.abs(v[r] / ref - 1).max())


@pytest.mark.parametrize("fam", FAMS + ("gumbel_min", "cauchy"))
def test_public_onehot_vjps_vs_quadrature(fam):
    """``log_probs_vjp`` / ``probs_vjp`` with one nonzero cotangent per row (the NLL
    gradient), through the public API, against the adaptive quadrature; rows sum to 0."""
    rng = np.random.default_rng(2)
    x = 2.0 * rng.normal(size=(3, 300))
    c = np.zeros_like(x)
    c[0, 17] = -1.0
    c[1, np.argmin(x[1])] = 0.25            # a cotangent on the smallest entry (issue #17)
    c[2, np.argmax(x[2])] = -2.0
    for f in (numeric.log_probs_vjp, numeric.probs_vjp):
        got = f(x, c, fam)
        for r in range(3):
            ref = f(x[r], c[r], fam, method="quadrature")
            assert np.all(np.abs(got[r] - ref) <= 1e-10 * np.abs(ref) + 1e-200 * np.abs(ref).sum())
            assert abs(got[r].sum()) <= 1e-12 * np.abs(got[r]).sum()


def test_public_zero_cotangent_rows():
    x = np.random.default_rng(0).normal(size=(2, 300))
    c = np.zeros_like(x)
    c[1, 4] = 1.0
    out = numeric.log_probs_vjp(x, c, "normal")
    assert np.array_equal(out[0], np.zeros(300)) and out[1, 4] > 0


@pytest.mark.slow
@pytest.mark.parametrize("fam", FAMS)
@pytest.mark.parametrize("scale", [1.0, 2.0, 5.0])
def test_log_probs_vs_oracle_wide(fam, scale):
    rng = np.random.default_rng(int(scale * 10))
    x = scale * rng.normal(size=(2, 64))
    x[1, :8] = x[1, 8]                        # ties
    lp, ok = rows_log_probs(x, get_family(fam))
    for r in np.flatnonzero(ok):
        ref = np.array([float(v) for v in oracle.log_probs(list(x[r]), fam, dps=25)])
        assert np.all(np.abs(lp[r] - ref) <= _log_tol(ref))


@pytest.mark.slow
@pytest.mark.parametrize("fam", FAMS)
def test_onehot_vjp_vs_mpmath_wide(fam):
    """Three rows of 24 scores drawn as 3 x standard normal, the one-hot cotangent on
    the lowest entry, on entry 5 and on the highest entry, against mpmath."""
    rng = np.random.default_rng(9)
    x = 3.0 * rng.normal(size=(3, 24))
    y = np.array([int(np.argmin(x[0])), 5, int(np.argmax(x[2]))])
    v, ok = rows_onehot_log_vjp(x, y, get_family(fam))
    for r in np.flatnonzero(ok):
        ref = _mp_onehot(x[r], y[r], fam)
        # the README's VJP bound (1e-10 of each entry; one-hot entries share a sign)
        assert np.all(np.abs(v[r] - ref) <= 1e-10 * np.abs(ref))


def test_tied_blocks_vs_mpmath():
    """290 scores tied at 0 and 10 at -7.31 (normal): the lower entries' integrand is
    sharpened by the tied block; log p of both values against mpmath (two integrals)."""
    a = mp.mpf("-7.31")
    with mp.workdps(30):
        low = mp.quad(lambda x: mp.npdf(x - a) * mp.ncdf(x - a) ** 9 * mp.ncdf(x) ** 290,
                      [-mp.inf, a - 5, a, a + 5, 0, mp.inf])
        top = mp.quad(lambda x: mp.npdf(x) * mp.ncdf(x - a) ** 10 * mp.ncdf(x) ** 289,
                      [-mp.inf, a, -3, 0, 3, mp.inf])
        ref = np.array([float(mp.log(top)), float(mp.log(low))])
    x = np.concatenate([np.zeros(290), np.full(10, -7.31)])[None, :]
    lp, ok = rows_log_probs(x, get_family("normal"))
    got = numeric.log_probs(x[0], "normal")
    for v in (got, lp[0]) if ok[0] else (got,):
        assert np.all(np.abs(v[[0, -1]] - ref) <= _log_tol(ref))
