"""Fast paths of numeric._piecewise / numeric._uniform (issue #13), against independent references.

References: ``derive.oracle`` (30 digits) for short rows, the adaptive quadrature
(``method="quadrature"``, itself oracle-tested) for long rows and for the VJPs, and
central differences of the oracle for one VJP.  Inputs: ``s * normal`` rows
(s = 1, 2, 5), clusters, exact ties, wide spreads, float32, one-hot and dense
cotangents.
"""

import math

import numpy as np
import pytest

import numeric
import numeric._piecewise as pw
from derive import oracle
from numeric._quadrature import quadrature_log_probs
from numeric.families import get_family


def _rows(rng, n, spread=60.0):
    """s * normal (s = 1, 2, 5), half the row tied, tight clusters, a quarter-grid
    with many ties, and a wide spread."""
    out = [s * rng.normal(size=n) for s in (1.0, 2.0, 5.0)]
    r = rng.normal(size=n)
    r[: n // 2] = r[0]
    out.append(r)
    c = 3.0 * rng.normal(size=3)
    out.append(c[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n))
    out.append(np.round(4.0 * rng.normal(size=n)) / 4.0)
    out.append(np.r_[0.0, -spread * rng.random(size=n - 1)])
    return np.array(out)


def _check_log_p(lp, ref):
    """README: log p within 1e-12 max(1, |log p|); p to 1e-13 relative (or 2 steps of
    log p) where p >= 1e-300."""
    ref = np.asarray(ref, dtype=float)
    fin = np.isfinite(ref)
    assert np.array_equal(fin, np.isfinite(lp))
    err = np.abs(lp[fin] - ref[fin])
    assert (err <= 1e-12 * np.maximum(1.0, np.abs(ref[fin]))).all(), err.max()
    big = ref[fin] >= math.log(1e-300)
    assert (err[big] <= np.maximum(1e-13, 2 * np.spacing(np.abs(ref[fin][big])))).all(), err[big].max()


# -- exponential: the exact rule (n <= _EXACT_N) ------------------------------------

@pytest.mark.parametrize("n", [9])
def test_exponential_exact_rule_vs_oracle(n):
    rng = np.random.default_rng(n)
    f = get_family("exponential")
    Y = _rows(rng, n)[[2, 3, 4, 5, 6]]               # s = 5, ties, clusters, grid, wide spread
    lp, ok = pw.log_probs_rows(Y, f)
    assert ok.all()
    for r in range(Y.shape[0]):
        mu = [float(v) for v in Y[r]]
        _check_log_p(lp[r], [float(v) for v in oracle.log_probs(mu, "exponential", dps=30)])


@pytest.mark.parametrize("n", [40, 100, 128])
def test_exponential_exact_rule_vs_quadrature(n):
    rng = np.random.default_rng(100 + n)
    f = get_family("exponential")
    Y = _rows(rng, n)
    served = pw._ExactExp.serves(Y)
    assert served[:4].all()                   # s * normal and half-tied rows take the rule
    lp, ok = pw.log_probs_rows(Y, f)
    assert ok.all()
    for r in range(Y.shape[0]):
        ref = quadrature_log_probs(Y[r], f)
        assert np.max(np.abs(lp[r] - ref) / np.maximum(1.0, np.abs(ref))) <= 2e-15
        assert abs(np.exp(lp[r]).sum() - 1.0) <= 1e-14


def _vjp_refs(x, fam, rng):
    """(cotangent, log, reference) triples: one-hot and dense cotangents, both VJPs,
    the reference by the adaptive quadrature."""
    out = []
    for c in (rng.normal(size=x.shape), np.eye(x.shape[1])[rng.integers(0, x.shape[1], size=x.shape[0])]):
        for log in (False, True):
            fn = numeric.log_probs_vjp if log else numeric.probs_vjp
            out.append((c, log, fn(x, c, fam, method="quadrature")))
    return out


def _check_vjp(v, ref):
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    assert (np.abs(v - ref) <= 1e-11 * scale).all(), np.max(np.abs(v - ref) / scale)
    assert (np.abs(v.sum(axis=1)) <= 1e-13 * np.abs(v).sum(axis=1) + 1e-300).all()


@pytest.mark.parametrize("n", [5, 60])
def test_exponential_exact_rule_vjp_vs_quadrature(n):
    rng = np.random.default_rng(200 + n)
    x = _rows(rng, n, spread=40.0)
    for c, log, ref in _vjp_refs(x, "exponential", rng):
        fn = numeric.log_probs_vjp if log else numeric.probs_vjp
        _check_vjp(fn(x, c, "exponential"), ref)


def test_exponential_exact_rule_vjp_vs_oracle_differences():
    # d p_i / d mu_k by central differences of the 30-digit oracle (step 1e-10: error
    # ~1e-20 truncation + 1e-20 rounding at 30 digits)
    import mpmath as mp
    mu = [0.3, -1.1, 0.3, 2.0, -0.4]
    n = len(mu)
    h = mp.mpf("1e-10")
    J = np.zeros((n, n))
    with mp.workdps(30):
        for k in range(n):
            up = [mp.mpf(v) for v in mu]
            dn = list(up)
            up[k] += h
            dn[k] -= h
            pu, pd = oracle.probs(up, "exponential", dps=30), oracle.probs(dn, "exponential", dps=30)
            J[:, k] = [float((a - b) / (2 * h)) for a, b in zip(pu, pd)]
        p = np.array([float(v) for v in oracle.probs(mu, "exponential", dps=30)])
    g = np.array([0.7, -1.3, 0.2, 0.0, 2.1])
    x = np.array(mu)
    assert np.max(np.abs(numeric.probs_vjp(x, g, "exponential") - g @ J)) <= 1e-12
    assert np.max(np.abs(numeric.log_probs_vjp(x, g, "exponential") - (g / p) @ J)) <= 1e-12


def test_exponential_exact_rule_rows_independent_and_mixed():
    # a batch mixing rows the rule serves with rows it leaves to the panels (a cut above
    # the top: 120 near-tied scores; a spread beyond _MAX_DEPTH): each row's bits equal
    # its own call's, and the declined rows still agree with the quadrature
    rng = np.random.default_rng(7)
    f = get_family("exponential")
    n = 120
    Y = np.array([rng.normal(size=n), 1e-4 * rng.normal(size=n), np.r_[0.0, -700.0, rng.normal(size=n - 2)]])
    assert pw._ExactExp.serves(Y).tolist() == [True, False, False]
    _check_rows_independent(Y, f, rng.normal(size=Y.shape), log=True, tol=2e-15)


def _check_rows_independent(Y, f, G, log, tol):
    """Each row of the batch ``Y`` gets the bits of its own call (log p and the VJP
    with cotangent ``G``), and log p agrees with the quadrature within ``tol``."""
    lp, ok = pw.log_probs_rows(Y, f)
    v, okv = pw.probs_vjp_rows(Y, G, f, log=log)
    assert ok.all() and okv.all()
    for r in range(Y.shape[0]):
        assert np.array_equal(pw.log_probs_rows(Y[r:r + 1], f)[0][0], lp[r])
        assert np.array_equal(pw.probs_vjp_rows(Y[r:r + 1], G[r:r + 1], f, log=log)[0][0], v[r])
        ref = quadrature_log_probs(Y[r], f)
        assert np.max(np.abs(lp[r] - ref) / np.maximum(1.0, np.abs(ref))) <= tol


def _check_float32_public(fam, x, scale):
    """float32 scores in, float32 probabilities out, equal to the float64 quadrature."""
    p = numeric.probs(x, fam, scale=scale)
    assert p.dtype == np.float32
    ref = numeric.probs(x.astype(np.float64), fam, scale=scale, method="quadrature")
    assert np.allclose(p, ref, rtol=1e-6, atol=1e-7)


def test_exponential_float32_public():
    rng = np.random.default_rng(9)
    _check_float32_public("exponential", (2.0 * rng.normal(size=(50, 12))).astype(np.float32), 0.5)


# -- laplace: rows of n <= _NEAR_ALL_LAPLACE in linear arithmetic -----------------------

@pytest.mark.parametrize("n", [pytest.param(4, marks=pytest.mark.slow), 10])
def test_laplace_near_rows_vs_oracle(n):
    rng = np.random.default_rng(300 + n)
    f = get_family("laplace")
    Y = _rows(rng, n, spread=400.0)[[1, 3, 4, 6]]     # s = 2, ties, clusters, wide spread
    assert pw._NearLaplace.serves(Y).all()
    lp, ok = pw.log_probs_rows(Y, f)
    assert ok.all()
    for r in range(Y.shape[0]):
        mu = [float(v) for v in Y[r]]
        _check_log_p(lp[r], [float(v) for v in oracle.log_probs(mu, "laplace", dps=30)])


@pytest.mark.parametrize("n", [32, 64])
def test_laplace_near_rows_vs_quadrature(n):
    rng = np.random.default_rng(300 + n)
    f = get_family("laplace")
    Y = _rows(rng, n, spread=450.0)
    assert n <= pw._NEAR_ALL_LAPLACE and pw._NearLaplace.serves(Y).all()
    lp, ok = pw.log_probs_rows(Y, f)
    assert ok.all()
    for r in range(Y.shape[0]):
        ref = quadrature_log_probs(Y[r], f)
        assert np.max(np.abs(lp[r] - ref) / np.maximum(1.0, np.abs(ref))) <= 5e-15
        assert abs(np.exp(lp[r]).sum() - 1.0) <= 1e-14


@pytest.mark.parametrize("n", [3, 12, 32, 64])
def test_laplace_near_rows_vjp_vs_quadrature(n):
    rng = np.random.default_rng(400 + n)
    x = _rows(rng, n, spread=300.0)
    for c, log, ref in _vjp_refs(x, "laplace", rng):
        fn = numeric.log_probs_vjp if log else numeric.probs_vjp
        _check_vjp(fn(x, c, "laplace"), ref)


def test_laplace_near_rows_independent_and_mixed():
    # rows the linear kernel serves next to a spread beyond _LINEAR_SPREAD (the log-space
    # panels take it): bits equal each row's own call, values agree with the quadrature
    rng = np.random.default_rng(11)
    f = get_family("laplace")
    Y = np.array([2.0 * rng.normal(size=20), np.r_[0.0, -550.0, rng.normal(size=18)], 1e-3 * rng.normal(size=20)])
    assert pw._NearLaplace.serves(Y).tolist() == [True, False, True]
    _check_rows_independent(Y, f, rng.normal(size=Y.shape), log=False, tol=5e-15)


def test_laplace_float32_public():
    rng = np.random.default_rng(12)
    _check_float32_public("laplace", (3.0 * rng.normal(size=(40, 9))).astype(np.float32), 2.0)


@pytest.mark.parametrize("fam", ["laplace", "exponential"])
def test_blocked_batches_match_unblocked(fam, monkeypatch):
    # batches of more than _CHUNK rows run in blocks sorted by width: each row's bits
    # equal those of one unblocked run (and of its own call)
    rng = np.random.default_rng(13)
    f = get_family(fam)
    Y = rng.normal(size=(9, 200)) * np.array([0.01, 0.3, 1.0, 2.0, 5.0, 1.0, 3.0, 0.1, 10.0])[:, None]
    Y[5] = np.round(Y[5] * 2) / 2
    G = rng.normal(size=Y.shape)
    monkeypatch.setattr(pw, "_CHUNK", 2)
    lp, ok = pw.log_probs_rows(Y, f)
    v, okv = pw.probs_vjp_rows(Y, G, f, log=True)
    assert ok.all() and okv.all()
    monkeypatch.setattr(pw, "_CHUNK", 10**9)
    assert np.array_equal(pw.log_probs_rows(Y, f)[0], lp)
    assert np.array_equal(pw.probs_vjp_rows(Y, G, f, log=True)[0], v)
    assert np.array_equal(pw.log_probs_rows(Y[4:5], f)[0][0], lp[4])


def test_uniform_blocked_rows_match_unblocked(monkeypatch):
    # uniform rows of one rule are sorted by their count of groups and cut into blocks of
    # _ROWS: every row's bits equal those of one unblocked run; values match the quadrature
    import numeric._uniform as un
    rng = np.random.default_rng(14)
    x = rng.normal(size=(12, 10)) * np.array([0.3, 1.0, 2.0] * 4)[:, None]
    x[4, :5] = x[4, 0]
    x[7] = np.round(x[7] * 4) / 4
    c = rng.normal(size=x.shape)
    monkeypatch.setattr(un, "_ROWS", 2)
    lp, ok = un.log_probs_rows(x)
    v, okv = un.probs_vjp_rows(x, c, log=True)
    assert ok.all() and okv.all()
    monkeypatch.setattr(un, "_ROWS", 10**6)
    assert np.array_equal(un.log_probs_rows(x)[0], lp)
    assert np.array_equal(un.probs_vjp_rows(x, c, log=True)[0], v)
    ref = numeric.log_probs(x, "uniform", method="quadrature")
    fin = np.isfinite(ref)
    assert np.array_equal(fin, np.isfinite(lp))
    assert np.max(np.abs(lp[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))) <= 1e-13
