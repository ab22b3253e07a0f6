"""Row-batched log p of the heavy-tailed O(n) engine (numeric._fast_cauchy.heavy_log_probs_rows:
all rows of one padded bin count at once, shared plans), through the public entry points.

References are independent of the engine: ``numeric.log_probs(..., method="quadrature")``
(adaptive quadrature per row) for log p, within the README's guarantees (relative error
<= 1e-13 for p >= 1e-300, log p within 1e-12 max(1, |log p|)).  A row's result does not
depend on its batch mates: the same row alone gives the same bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import numeric
from numeric import _fast, _fast_cauchy
from numeric.families import get_family

LOG_1E300 = math.log(1e-300)


def _rows(n, seed):
    """s N(0, 1) rows (s = 0.3, 1, 2, 5), four clusters with exact ties (tied maximum), a
    linear spread of 40, four wide clusters (half of them ties, spread 33), a float32-rounded
    s = 5 row."""
    rng = np.random.default_rng(seed)
    rows = [s * rng.normal(size=n) for s in (0.3, 1.0, 2.0, 5.0)]
    c = np.repeat(3.0 * rng.normal(size=4), -(-n // 4))[:n] + 1e-3 * rng.normal(size=n)
    c[rng.integers(0, n, size=n // 4)] = c[0]
    c[1] = c.max()
    rows.append(c)
    rows.append(np.linspace(-20.0, 20.0, n))
    w = np.repeat(np.array([-15.0, -4.0, 3.0, 18.0]), -(-n // 4))[:n]
    w[::2] += 0.3 * rng.normal(size=w[::2].size)
    rows.append(w)
    rows.append((5.0 * rng.normal(size=n)).astype(np.float32).astype(np.float64))
    return np.array(rows)


def _check(lp, ref, where):
    big = ref >= LOG_1E300
    rel = np.abs(np.expm1(lp[big] - ref[big]))
    assert rel.max() <= 1e-13, f"{where}: p rel err {rel.max():.3g}"
    err = np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-12, f"{where}: log p err {err.max():.3g}"


def _served(x, fam):
    """The rows the batched engine serves (not left to the per-row engine)."""
    y = np.ascontiguousarray(x, dtype=np.float64)
    return _fast_cauchy.heavy_log_probs_rows(y, fam, fam.fast, _fast._cache_for(fam))[1]


CASES = [("cauchy", None, 256), ("student_t", 3.0, 300),
         pytest.param("student_t", 2.5, 256, marks=pytest.mark.slow),
         pytest.param("cauchy", None, 1000, marks=pytest.mark.slow),
         pytest.param("student_t", 1.05, 600, marks=pytest.mark.slow),
         pytest.param("student_t", 1.5, 1000, marks=pytest.mark.slow),
         pytest.param("student_t", 4.5, 1000, marks=pytest.mark.slow),
         pytest.param("student_t", 6.0, 1000, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,nu,n", CASES)
def test_batched_rows_match_quadrature_and_are_independent(name, nu, n):
    kw = {} if nu is None else {"nu": nu}
    fam = get_family(name, **kw)
    x = _rows(n, n + int(10 * (nu or 1)))
    if n <= 300:
        x = x[[1, 3, 4, 6, 7]]        # default tier: s = 1, 5, clusters, wide, float32
    assert _served(x, fam).all()
    lp = numeric.log_probs(x, name, **kw)
    p = numeric.probs(x, name, **kw)
    for r in range(x.shape[0]):
        ref = numeric.log_probs(x[r], name, method="quadrature", **kw)
        _check(lp[r], ref, f"{name} nu={nu} n={n} row {r}")
        # alone, the row gives the same bits (and probs is exp of log p)
        assert np.array_equal(numeric.log_probs(x[r:r + 1], name, **kw)[0], lp[r])
        assert np.allclose(p[r], np.exp(ref), rtol=1e-13, atol=0)


def test_float32_input():
    x = _rows(256, 3)[[1, 3]].astype(np.float32)
    lp = numeric.log_probs(x, "cauchy")
    assert lp.dtype == np.float32
    ref = numeric.log_probs(x.astype(np.float64), "cauchy", method="quadrature")
    assert np.all(np.abs(lp - ref) <= 1e-6 * np.maximum(1.0, np.abs(ref)))


def test_long_rows_match_per_row_engine():
    """n = 32000 (the near field is skipped on s N(0, 1) rows: F(c + T) ~ e^(-n / (pi T))):
    within 1e-15 max(1, |log p|) of the per-row engine (itself checked against mpmath in
    tests/test_fast_cauchy.py); a row alone gives the same bits."""
    fam = get_family("cauchy")
    spec, cache = fam.fast, _fast._cache_for(fam)
    rng = np.random.default_rng(9)
    x = np.array([s * rng.normal(size=32000) for s in (1.0, 5.0)])
    lp, ok = _fast_cauchy.heavy_log_probs_rows(x, fam, spec, cache)
    assert ok.all()
    for r in range(2):
        ref = _fast._row_log_probs(x[r], fam, spec, cache)
        assert np.abs(lp[r] - ref).max() <= 1e-15 * max(1.0, np.abs(ref).max())
        assert np.array_equal(_fast_cauchy.heavy_log_probs_rows(x[r:r + 1], fam, spec, cache)[0][0], lp[r])


def test_rows_it_cannot_serve_are_left_to_the_caller():
    """Scores beyond 2^40 (the lattice split), ranges beyond 200 and rows the cost model
    declines come back ok False; the public path still answers them (per-row engine /
    quadrature)."""
    fam = get_family("cauchy")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 300))
    x[0] += 2.0 ** 41
    x[1, 0] = 250.0
    ok = _served(x, fam)
    assert ok.tolist() == [False, False, True]
    lp = numeric.log_probs(x, "cauchy")
    assert np.all(np.isfinite(lp[[0, 2]]))
    assert abs(np.exp(lp[1]).sum() - 1.0) < 1e-13


VJP_CASES = [("cauchy", None, 256), pytest.param("student_t", 3.0, 256, marks=pytest.mark.slow),
             pytest.param("cauchy", None, 1000, marks=pytest.mark.slow),
             pytest.param("student_t", 1.5, 600, marks=pytest.mark.slow),
             pytest.param("student_t", 4.5, 1000, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,nu,n", VJP_CASES)
def test_batched_vjps_match_quadrature_and_are_independent(name, nu, n):
    """probs_vjp and log_probs_vjp, dense and one-hot cotangents (one-hot rows take the
    dense path here), against the quadrature's VJPs: within 1e-10 of the row's largest
    entry (README), every row served by the batched engine, and a row alone gives the
    same bits."""
    kw = {} if nu is None else {"nu": nu}
    fam = get_family(name, **kw)
    rng = np.random.default_rng(n + 7)
    x = _rows(n, n + 3)
    if n <= 300:
        x = x[[3, 4]]             # s = 5, clusters with ties (slow tier: all rows at n >= 600)
    dense = rng.normal(size=x.shape)
    onehot = np.zeros(x.shape)
    onehot[np.arange(x.shape[0]), rng.integers(0, n, size=x.shape[0])] = -1.0
    if n <= 300:
        x = np.concatenate([x, _rows(n, n + 3)[[1, 6]]])   # s = 1, wide clusters
        dense = np.concatenate([dense, rng.normal(size=(2, n))])
        onehot = np.concatenate([onehot, onehot])
    for g in (dense, onehot):
        for log, fn in ((False, numeric.probs_vjp), (True, numeric.log_probs_vjp)):
            assert _fast_cauchy.heavy_vjp_rows(x, g, fam, fam.fast, _fast._cache_for(fam), log=log)[1].all()
            got = fn(x, g, name, **kw)
            for r in range(x.shape[0]):
                ref = fn(x[r], g[r], name, method="quadrature", **kw)
                assert np.abs(got[r] - ref).max() <= 1e-10 * np.abs(ref).max(), (log, r)
                assert np.array_equal(fn(x[r:r + 1], g[r:r + 1], name, **kw)[0], got[r])
