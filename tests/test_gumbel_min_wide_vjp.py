"""gumbel_min VJPs of wide rows (standardized spread 14 .. 48): ``log p`` with dense
cotangents by the node matrix of posterior expectations (numeric._gumbel_min_dense, the
engine's kernel; numeric._gumbel_min_vjp holds the method), ``p``
on the O(n) engine (refined grid where needed, ``FastSpec.vjp_refine_span``), against
``method="quadrature"`` (itself tested against the oracle) and the independent
log-space reference tests/_vjp_reference.py: ``s * N(0, 1)`` rows (s = 1 .. 5), a row
stretched to a spread of 45, clustered rows with exact ties, float32 input, long rows
(n = 1e4); dense, few-entry and one-hot cotangents.  README: each entry within 1e-10 of its own sum of |terms|
``T_k = sum_j |g_k - g_j| K_kj`` (``g = c / p`` for ``log p``), rows summing to 0 within
1e-12 of their absolute sum.  ``T_k`` is bounded below by ``|(J^T g)_k|`` and, writing
``g = g_+ - g_-`` (the positive and negative parts), by ``|(J^T g_-+)_k|`` for the part
of the sign opposite to ``g_k``: for ``g_k <= 0``, ``(J^T g_+)_k = -sum_j g_+j K_kj``
and every such term is at most ``|g_k - g_j| K_kj``.  The test uses the larger of the
two, from the quadrature.  One-hot cotangents: each entry within 1e-10 of itself."""

import math

import numpy as np
import pytest

import numeric
from numeric import _fast
from numeric._gumbel_min_dense import dense_log_vjp_row
from numeric.families import get_family

from _vjp_reference import reference_vjp


def _rows(n=1000):
    rng = np.random.default_rng(2026)
    s3 = 3.0 * rng.normal(size=n)
    s5 = 5.0 * rng.normal(size=n)
    wide = rng.normal(size=n)
    wide *= 45.0 / np.ptp(wide)
    centres = rng.normal(size=4)
    centres *= 30.0 / np.ptp(centres)
    clus = centres[rng.integers(0, 4, size=n)] + 1e-3 * rng.normal(size=n)
    clus[: n // 4] = clus[rng.integers(0, n, size=n // 4)]
    clus[1] = clus.max()
    return {"s=3": s3, "s=5": s5, "spread 45": wide, "clusters+ties": clus}


def _check(v, ref, scale=None):
    """``v`` within 1e-10 of ``scale`` (default ``|ref|``) entrywise, summing to 0."""
    scale = np.abs(ref) if scale is None else scale
    err = np.abs(v - ref)
    bad = err > 1e-10 * np.maximum(scale, 1e-200 * scale.sum())
    assert not bad.any(), (np.flatnonzero(bad)[:5], (err / scale)[bad][:5])
    assert abs(math.fsum(v)) <= 1e-12 * np.abs(v).sum()


def _dense_reference(fn, x, c):
    """``(J^T c, lower bound of each entry's sum of |terms|)`` by quadrature."""
    ref = fn(x, c, "gumbel_min", method="quadrature")
    opp = np.zeros_like(ref)
    for part in (np.maximum(c, 0.0), np.minimum(c, 0.0)):
        # entries of the other sign than ``part``: |(J^T part)_k| <= their sum of |terms|
        other = (c * part.sum()) < 0
        opp[other] = np.abs(fn(x, part, "gumbel_min", method="quadrature"))[other]
    return ref, np.maximum(np.abs(ref), opp)


def test_node_matrix_dense_short_row():
    """Default tier: the node matrix itself (no fallback, no cost model) on a row of n = 80,
    spread ~20, dense cotangent, against the quadrature (each entry within 1e-10 of its sum of
    |terms|); a cotangent on a few entries leaves the entries below its posteriors with
    sums of |terms| of ``e^-1000`` size, which the node matrix cannot resolve: declined,
    and the public call (the per-row engine) against the log-space reference."""
    fam = get_family("gumbel_min")
    rng = np.random.default_rng(41)
    z = 4.0 * rng.normal(size=80)
    c = rng.normal(size=z.size)
    v = dense_log_vjp_row(z, c, fam, fam.fast, _fast._cache_for(fam), check_cost=False)
    ref, terms = _dense_reference(numeric.log_probs_vjp, z, c)
    _check(v, ref, terms)
    o = np.argsort(z)
    support = dict(zip(o[[10, 40, 78, 79]].tolist(), [1.0, -1.3, 0.9, -0.2]))
    c = np.zeros(z.size)
    c[list(support)] = list(support.values())
    with pytest.raises(NotImplementedError):
        dense_log_vjp_row(z, c, fam, fam.fast, _fast._cache_for(fam), check_cost=False)
    ref, terms, _ = reference_vjp(z, support, "gumbel_min", log=True)
    _check(numeric.log_probs_vjp(z, c, "gumbel_min"), ref, terms)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s=3", "s=5", "spread 45", "clusters+ties"])
def test_wide_dense_log_vjp_vs_quadrature(kind):
    x = _rows()[kind]
    assert 14.0 < np.ptp(x) <= 48.0
    fam = get_family("gumbel_min")
    c = np.random.default_rng(5).normal(size=x.size)
    # the node matrix serves the row (no fallback)
    v = dense_log_vjp_row(x, c, fam, fam.fast, _fast._cache_for(fam))
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(v, ref, terms)
    _check(numeric.log_probs_vjp(x, c, "gumbel_min"), ref, terms)
    if kind == "s=5":
        ref, terms = _dense_reference(numeric.probs_vjp, x, c)
        _check(numeric.probs_vjp(x, c, "gumbel_min"), ref, terms)


@pytest.mark.slow
def test_wide_float32_and_one_hot():
    """Scores rounded to float32: in float64 against the quadrature (one-hot at the top
    and at the bottom entry, dense); as float32 input the float32 result is the float64
    one rounded."""
    x = _rows()["s=5"].astype(np.float32)
    xd = x.astype(np.float64)
    for y in (int(np.argmax(xd)), int(np.argmin(xd))):
        c = np.zeros(x.size)
        c[y] = 1.0
        got = numeric.log_probs_vjp(xd, c, "gumbel_min")
        _check(got, numeric.log_probs_vjp(xd, c, "gumbel_min", method="quadrature"))
        got32 = numeric.log_probs_vjp(x, c, "gumbel_min")
        assert got32.dtype == np.float32
        np.testing.assert_allclose(got32, got.astype(np.float32), rtol=2e-7, atol=0)
    c = np.random.default_rng(6).normal(size=x.size)
    ref, terms = _dense_reference(numeric.log_probs_vjp, xd, c)
    got = numeric.log_probs_vjp(xd, c, "gumbel_min")
    _check(got, ref, terms)
    got32 = numeric.log_probs_vjp(x, c, "gumbel_min")
    np.testing.assert_allclose(got32, got.astype(np.float32), rtol=2e-7, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("s", [1.0, 3.0])
def test_node_matrix_long_rows_vs_quadrature(s):
    """n = 1e4 (the per-row engine declines these rows even on its refined grid: weights
    1 / p_j spanning more than 32 bands of e^600, or log(F Gamma) turning within
    1 / #above): the node matrix against the quadrature."""
    fam = get_family("gumbel_min")
    rng = np.random.default_rng(int(s) + 90)
    x = s * rng.normal(size=10_000)
    c = rng.normal(size=x.size)
    v = dense_log_vjp_row(x, c, fam, fam.fast, _fast._cache_for(fam))
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(v, ref, terms)
