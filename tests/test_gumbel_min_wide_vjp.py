"""gumbel_min VJPs of wide rows (standardized spread 14 .. 48) on the O(n) engine's
refined grid (``FastSpec.vjp_refine_span``), against ``method="quadrature"`` (itself
tested against the oracle): ``s * N(0, 1)`` rows (s = 3, 5), a row stretched to a spread
of 45, clustered rows with exact ties, float32 input; dense and one-hot cotangents, VJPs
of ``p`` and of ``log p``.  README: each entry within 1e-10 of its own sum of |terms|
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
from numeric.families import get_family

pytestmark = pytest.mark.slow


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


@pytest.mark.parametrize("kind", ["s=3", "s=5", "spread 45", "clusters+ties"])
def test_wide_dense_log_vjp_vs_quadrature(kind):
    x = _rows()[kind]
    assert 14.0 < np.ptp(x) <= 48.0
    fam = get_family("gumbel_min")
    c = np.random.default_rng(5).normal(size=x.size)
    # the engine itself serves the row (no quadrature fallback inside)
    v, ok = _fast.fast_log_probs_vjp(x[None, :], c[None, :], fam, rows=True)
    assert ok.all()
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(v[0], ref, terms)
    _check(numeric.log_probs_vjp(x, c, "gumbel_min"), ref, terms)
    if kind == "s=5":
        ref, terms = _dense_reference(numeric.probs_vjp, x, c)
        _check(numeric.probs_vjp(x, c, "gumbel_min"), ref, terms)


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
