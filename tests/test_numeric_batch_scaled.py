"""The small-n kernel's scaled linear mode and one-hot VJPs (numeric._batch).

Rows with entries below 1e-270 (wide logistic, gumbel_min and cauchy rows) take the
scaled linear mode (F split into mantissa product and exact exponent sum); one-hot
cotangents take the positive form ``d p_y / d y_k = -int h_y h_k F``.  Checked against
the adaptive quadrature (itself oracle-tested), the independent log-space VJP reference
(tests/_vjp_reference.py) and, in the slow tier, the 30-digit oracle.
"""

import math

import numpy as np
import pytest
from _vjp_reference import reference_vjp

import numeric
from derive import bench
from numeric import _batch
from numeric.families import get_family

SCALED = ("logistic", "gumbel_min", "cauchy")
# row lengths of the wide rows (gumbel_min: entries far below 1e-270, which the plain
# linear mode cannot hold; logistic and cauchy entries fall like e^-spread and
# 1 / spread^2 only: their rows take the scaled mode only where the linear mode fails)
N_WIDE = {"logistic": 24, "gumbel_min": 24, "cauchy": 40}


def _wide_rows(name, n, rows=3, seed=0):
    """s * N(0, 1) rows with s = 5, 10, 20 and a clustered row with ties, standardized."""
    rng = np.random.default_rng([seed, n, SCALED.index(name) if name in SCALED else 9])
    x = np.concatenate([s * rng.normal(size=(rows, n)) for s in (5.0, 10.0, 20.0)]
                       + [bench.scores("clusters+ties", (1, n), salt=seed) * 6.0])
    return x - x.max(axis=1, keepdims=True)


def _check_log_probs(lp, ref):
    """README bounds: p to 1e-13 relative (or 2 rounding steps of log p) for p >= 1e-300,
    log p to 1e-12 max(1, |log p|) below."""
    big = ref >= math.log(1e-300)
    tol = np.where(big, 1e-13 + 4.0 * np.spacing(np.abs(ref)), 1e-12 * np.maximum(1.0, np.abs(ref)))
    assert np.all(np.abs(lp - ref) <= tol), np.max(np.abs(lp - ref) / tol)


def _scaled_only(y, fam):
    """``(log p, ok)`` of every row by the scaled mode alone (pass 1, mode "scaled")."""
    plan = _batch._Plan(y, fam)
    out = np.full(y.shape, np.nan)
    ok = np.zeros(y.shape[0], dtype=bool)
    with np.errstate(all="ignore"):
        for sel, x, wl, lw in plan.chunks(np.flatnonzero(plan.reach)):
            out[sel], ok[sel] = _batch._pass1(y[sel], x, wl, lw, plan, "scaled")
    return out, ok


@pytest.mark.parametrize("name", SCALED)
def test_scaled_mode_matches_quadrature(name):
    fam = get_family(name)
    y = _wide_rows(name, N_WIDE[name], rows=1 if name == "cauchy" else 3)
    lp, ok = _scaled_only(y, fam)
    assert ok.sum() >= y.shape[0] - 1           # (a row may need the log mode)
    deep = 0
    for r in np.flatnonzero(ok):
        ref = numeric.log_probs(y[r], name, method="quadrature")
        _check_log_probs(lp[r], ref)
        deep += int((ref < math.log(1e-270)).sum())
    if name == "gumbel_min":
        assert deep > 0                         # entries the plain linear mode cannot hold


@pytest.mark.parametrize("name", SCALED)
def test_auto_wide_rows_use_the_kernel_and_match_quadrature(name):
    """Public "auto" on rows the linear mode does not serve: served by the kernel (no
    quadrature fallback), each row as when computed alone (bit for bit), float32 too."""
    fam = get_family(name)
    y = _wide_rows(name, max(60, N_WIDE[name]), rows=1, seed=1)
    plan = _batch._Plan(y, fam)
    if name == "gumbel_min":
        assert not plan.lin.all()               # the scaled mode is exercised
    lp, ok = _batch.batch_log_probs(y, fam)
    assert ok.all()
    got = numeric.log_probs(y, name)
    assert np.array_equal(got, lp)
    for r in range(y.shape[0]):
        assert np.array_equal(numeric.log_probs(y[r], name), lp[r])
        _check_log_probs(lp[r], numeric.log_probs(y[r], name, method="quadrature"))
    x32 = (y[:2] / 2.0).astype(np.float32)
    p32 = numeric.probs(x32, name)
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, numeric.probs(x32.astype(np.float64), name).astype(np.float32),
                               rtol=1e-6, atol=0)


def _onehot(shape, seed):
    rng = np.random.default_rng(seed)
    g = np.zeros(shape)
    hot = rng.integers(0, shape[1], size=shape[0])
    g[np.arange(shape[0]), hot] = rng.choice([-1.0, 1.0], size=shape[0]) * rng.uniform(0.5, 2.0, shape[0])
    return g, hot


def _check_vjp(v, ref, terms):
    """README: within 1e-10 of the entry's own sum of |terms| (entries below 1e-200 of the
    row's total, or below the float64 range, to that absolute size)."""
    tol = 1e-10 * (terms + 1e-200 * terms.sum()) + 1e-290
    assert np.all(np.abs(v - ref) <= tol), np.max(np.abs(v - ref) / tol)


@pytest.mark.parametrize("log", [False, True])
def test_onehot_normal_rows_the_dense_form_declined(log):
    """Normal n = 10 rows with s = 5 and clustered rows: the one-hot form serves every row
    (the centred dense form cancels there) and matches the log-space reference."""
    fam = get_family("normal")
    x = np.concatenate([bench.scores("s=5", (40, 10)), bench.scores("clusters+ties", (20, 10))])
    y = x - x.max(axis=1, keepdims=True)
    g, hot = _onehot(y.shape, 3)
    v, ok = _batch.batch_vjp(y, g, fam, log=log)
    assert ok.all()
    for r in range(0, y.shape[0], 3):
        ref, terms, _ = reference_vjp(y[r], {int(hot[r]): g[r, hot[r]]}, "normal", log=log)
        _check_vjp(v[r], ref, terms)
    assert np.all(np.abs(v.sum(axis=1)) <= 1e-12 * np.abs(v).sum(axis=1))


@pytest.mark.parametrize("name", SCALED)
@pytest.mark.parametrize("log", [False, True])
def test_wide_row_vjps_match_reference(name, log):
    """One-hot and dense VJPs of rows with entries below 1e-270 (scaled linear mode) and
    of ordinary rows, against the log-space reference, through the public entry points."""
    y = _wide_rows(name, N_WIDE[name], rows=1, seed=2)
    fam = get_family(name)
    g1, hot = _onehot(y.shape, 4)
    gd = np.random.default_rng(5).normal(size=y.shape)
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    for g in (g1, gd) if name != "cauchy" else (g1,):
        v, ok = _batch.batch_vjp(y, g, fam, log=log)
        assert ok.sum() >= y.shape[0] - 1
        got = f(y, g, name)
        for r in range(y.shape[0]):
            support = {k: g[r, k] for k in np.flatnonzero(g[r])}
            ref, terms, _ = reference_vjp(y[r], support, name, log=log)
            _check_vjp(got[r], ref, terms)
            assert np.array_equal(f(y[r], g[r], name), got[r])


@pytest.mark.parametrize("name", SCALED)
def test_scaled_mode_vjps_forced_match_reference(name):
    """The scaled mode's one-hot and dense VJP forms on every row (not only where the
    linear mode fails), against the log-space reference."""
    fam = get_family(name)
    y = _wide_rows(name, 12, rows=1, seed=6)
    plan = _batch._Plan(y, fam)
    c0 = math.exp(-fam.small.log_c0)
    g1, hot = _onehot(y.shape, 8)
    gd = np.random.default_rng(9).normal(size=y.shape)
    for log in (False, True):
        v1, vd = np.full(y.shape, np.nan), np.full(y.shape, np.nan)
        ok1, okd = np.zeros(y.shape[0], bool), np.zeros(y.shape[0], bool)
        with np.errstate(all="ignore"):
            for sel, x, wl, lw in plan.chunks(np.flatnonzero(plan.reach)):
                v1[sel], ok1[sel] = _batch._onehot_chunk(y[sel], g1[sel], x, wl, plan, c0, log,
                                                         scaled=True)
                vd[sel], okd[sel] = _batch._vjp_log_chunk(y[sel], gd[sel], x, lw, plan, log, wl,
                                                          scaled=True)
        assert ok1.sum() >= y.shape[0] - 1 and okd.sum() >= y.shape[0] - 1
        for r in range(y.shape[0]):
            if ok1[r]:
                ref, terms, _ = reference_vjp(y[r], {int(hot[r]): g1[r, hot[r]]}, name, log=log)
                _check_vjp(v1[r], ref, terms)
            if okd[r]:
                ref, terms, _ = reference_vjp(y[r], dict(enumerate(gd[r])), name, log=log)
                _check_vjp(vd[r], ref, terms)


@pytest.mark.slow
@pytest.mark.parametrize("name", SCALED)
def test_scaled_mode_vs_oracle(name):
    from derive import oracle
    fam = get_family(name)
    y = _wide_rows(name, 12, rows=1, seed=7)
    lp, ok = _scaled_only(y, fam)
    for r in np.flatnonzero(ok):
        ref = np.array([float(v) for v in oracle.log_probs([float(t) for t in y[r]], name, dps=30)])
        _check_log_probs(lp[r], ref)
