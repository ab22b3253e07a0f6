"""method="auto" for short rows (3 <= n < FAST_MIN_N): the vectorised small-n kernel.

References are independent of the kernel: ``derive.oracle.log_probs`` (mpmath/arb,
30 digits) and closed forms (normal n = 3 ties: 1/3; Gumbel-min inclusion-exclusion).
The lean single-vector path must give the general path's bits, every row its own
bits whatever its batch mates, and rows the kernel cannot certify the quadrature's
exact values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import numeric
from numeric import _batch
from numeric.families import get_family

AUTO_FAMILIES = ["normal", "logistic", "gumbel_min", "cauchy"]


def _oracle(mu, name, **params):
    """Reference log p as mpmath numbers (30 digits)."""
    from derive import oracle
    return oracle.log_probs([float(v) for v in mu], name, **params)


def _check(lp, p, ref):
    """Issue-6 bounds against the mpmath reference (compared in mpmath, no float64
    rounding of the reference): log error <= 1e-12 max(1, |log p|); p relative error
    <= 1e-13 for p >= 1e-300 plus 2 ulp of log p (p is carried as its logarithm:
    log p ~ -368 has spacing 5.7e-14, and every kernel value log Phi of that size
    carries such a rounding error -- the convention of test_numeric_batch; measured
    1.11e-13 at p = 1e-160 for "auto" and "quadrature" alike); sum p = 1 within 1e-14."""
    import mpmath as mp
    for i, r in enumerate(ref):
        assert abs(mp.mpf(float(lp[i])) - r) <= 1e-12 * max(1, abs(r)), (i, lp[i], r)
        if r >= mp.log(mp.mpf("1e-300")):
            rel = abs(mp.mpf(float(p[i])) / mp.exp(r) - 1)
            assert rel <= 1e-13 + 2 * np.spacing(abs(float(r))), (i, float(rel), r)
    assert abs(math.fsum(p) - 1.0) <= 1e-14


def _vectors(rng, n, spreads):
    out = []
    for s in spreads:
        v = rng.standard_normal(n)
        out.append(v / (v.max() - v.min()) * s + rng.uniform(-50, 50))
    return out


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in ("cauchy", "normal") else f
                                    for f in AUTO_FAMILIES])
def test_auto_matches_oracle_across_magnitudes(family):
    # random vectors over spreads 1e-3 .. 60 (and a shift): the auto route
    # (kernel, or the quadrature for rows it declines) meets the issue-6 bounds
    rng = np.random.default_rng(sum(map(ord, family)))
    spreads = (1e-3, 0.7, 4.0, 15.0, 60.0) if family == "normal" else (1e-3, 0.7, 4.0, 15.0)
    for n in (3, 7):
        for mu in _vectors(rng, n, spreads):
            lp = numeric.log_probs(mu, family)
            p = numeric.probs(mu, family)
            _check(lp, p, _oracle(mu, family))


@pytest.mark.slow
def test_auto_normal_scale_and_larger_n():
    # max 0 and a power-of-two scale: the standardization (mu - max) / scale is exact,
    # so the reference sees the very numbers the engine sees
    rng = np.random.default_rng(17)
    for n, s in ((12, 5.0), (33, 2.0)):
        mu = rng.standard_normal(n) * s
        mu -= mu.max()
        lp = numeric.log_probs(mu, "normal", scale=0.25)
        p = numeric.probs(mu, "normal", scale=0.25)
        _check(lp, p, _oracle(mu / 0.25, "normal"))


def test_auto_normal_tie_of_three_is_a_third():
    # exact symmetric value; the tie is the narrowest integrand for n = 3
    for c in (0.0, -7.25, 1e5):
        p = numeric.probs(np.full(3, c), "normal")
        assert np.all(np.abs(p - 1 / 3) <= 1e-15)


def test_gumbel_min_inclusion_exclusion():
    # p_i = sum_{S subset of others} (-1)^|S| / (1 + sum_{j in S} exp(mu_i - mu_j))
    from itertools import combinations
    import mpmath as mp
    mp.mp.dps = 40
    mu = [0.3, -1.1, 0.9, -0.2]
    got = numeric.probs(np.array(mu), "gumbel_min")
    for i in range(4):
        others = [j for j in range(4) if j != i]
        ref = mp.mpf(0)
        for k in range(4):
            for S in combinations(others, k):
                ref += (-1) ** k / (1 + mp.fsum(mp.exp(mp.mpf(mu[i]) - mp.mpf(mu[j])) for j in S))
        assert abs(got[i] / float(ref) - 1) <= 1e-13


@pytest.mark.parametrize("family", AUTO_FAMILIES)
def test_single_vector_equals_batch_rows_bitwise(family):
    # lean 1-d path == the general (m, n) path == each row alone, bit for bit,
    # including rows the kernel declines (wide rows -> quadrature)
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.standard_normal((6, 9)) * s for s in (0.1, 1.0, 4.0, 12.0)])
    X[0] = 0.0
    got = numeric.probs(X, family, scale=1.3)
    lgot = numeric.log_probs(X, family, scale=1.3)
    for r in range(X.shape[0]):
        np.testing.assert_array_equal(numeric.probs(X[r], family, scale=1.3), got[r])
        np.testing.assert_array_equal(numeric.log_probs(X[r], family, scale=1.3), lgot[r])
        # a one-row batch (the lean path too) keeps its shape and the same bits
        one = numeric.log_probs(X[r:r + 1], family, scale=1.3)
        assert one.shape == (1, X.shape[1])
        np.testing.assert_array_equal(one[0], lgot[r])
        np.testing.assert_array_equal(numeric.probs(X[r:r + 1], family, axis=1, scale=1.3)[0], got[r])
    # other axis and a permuted batch
    np.testing.assert_array_equal(numeric.probs(X.T.copy(), family, axis=0, scale=1.3), got.T)
    perm = rng.permutation(X.shape[0])
    np.testing.assert_array_equal(numeric.probs(X[perm], family, scale=1.3), got[perm])


def test_student_t_nu_lean_path_bitwise():
    # student_t with its nu (and a scale) takes the lean 1-d paths: the general (m, n)
    # path's bits for probs, log_probs and both VJPs (dense and one-hot), nu integer
    # (linear parts), non-integer (log mode) and 1 (the cauchy); a bad nu still raises
    rng = np.random.default_rng(8)
    for nu in (3.0, 2, 2.5, 1.0):
        for n, s in ((3, 5.0), (10, 1.0), (10, 5.0)):
            X = s * rng.standard_normal((3, n))
            G = np.concatenate([rng.standard_normal((1, n)), np.eye(n)[:2]])
            kw = dict(nu=nu, scale=1.3)
            lp = numeric.log_probs(X, "student_t", **kw)
            vp = numeric.probs_vjp(X, G, "student_t", **kw)
            vl = numeric.log_probs_vjp(X, G, "student_t", **kw)
            for r in range(3):
                np.testing.assert_array_equal(numeric.log_probs(X[r], "student_t", **kw), lp[r])
                np.testing.assert_array_equal(numeric.probs(X[r], "student_t", **kw), np.exp(lp[r]))
                np.testing.assert_array_equal(numeric.probs_vjp(X[r], G[r], "student_t", **kw), vp[r])
                np.testing.assert_array_equal(numeric.log_probs_vjp(X[r], G[r], "student_t", **kw), vl[r])
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="nu"):
            numeric.probs(np.array([0.0, 1.0, 2.0]), "student_t", nu=bad)
    with pytest.raises(ValueError, match="nu"):
        numeric.probs(np.array([0.0, 1.0, 2.0]), "normal", nu=3.0)


def test_kernel_rows_independent_of_batch_mates():
    # a row's bits do not depend on the other rows of its chunk (wider rows extend
    # the shared node range; their nodes get weight 0 for the narrow row)
    fam = get_family("normal")
    rng = np.random.default_rng(5)
    Y = np.concatenate([rng.standard_normal((30, 10)) * s for s in (0.2, 1.0, 5.0, 12.0)])
    Y -= Y.max(axis=1, keepdims=True)
    lp, ok = _batch.batch_log_probs(Y, fam)
    assert ok.all()
    for r in range(0, Y.shape[0], 7):
        one, ok1 = _batch.batch_log_probs(Y[r:r + 1], fam)
        row, okr = _batch.row_log_probs(Y[r], fam)
        assert ok1[0] and okr
        np.testing.assert_array_equal(one[0], lp[r])
        np.testing.assert_array_equal(row, lp[r])


def test_declined_rows_are_exact():
    # beyond the kernel's reach: normal spread 1e6 (log p_2 = -3.3e11), a wide cauchy
    # row -- the quadrature answers, exactly
    mu = np.array([0.0, -1e6, 0.0])
    fam = get_family("normal")
    assert not _batch.batch_log_probs(mu[None, :] - mu.max(), fam)[1][0]   # really declined
    _check(numeric.log_probs(mu, "normal"), numeric.probs(mu, "normal"), _oracle(mu, "normal"))
    mu = np.array([0.0, -3000.0, -3.0, 2.0])                  # beyond the node budget
    y = mu[None, :] - mu.max()
    assert not _batch.batch_log_probs(y, get_family("cauchy"))[1][0]
    _check(numeric.log_probs(mu, "cauchy"), numeric.probs(mu, "cauchy"), _oracle(mu, "cauchy"))


def test_lean_path_special_inputs_follow_the_rules():
    # 1-d float64 vectors with special values leave the lean path: same rules as always
    p = numeric.probs(np.array([0.0, -np.inf, -0.5, 1.0]), "normal")
    assert p[1] == 0.0
    np.testing.assert_allclose(p[[0, 2, 3]], numeric.probs(np.array([0.0, -0.5, 1.0]), "normal"),
                               rtol=1e-14)
    assert np.isnan(numeric.probs(np.array([0.0, np.nan, 1.0]), "logistic")).all()
    np.testing.assert_array_equal(numeric.probs(np.array([0.0, np.inf, 1.0, np.inf]), "cauchy"),
                                  [0.0, 0.5, 0.0, 0.5])
    # a gap beyond the float range counts as -inf
    np.testing.assert_array_equal(numeric.probs(np.array([1e308, -1e308, 1e308]), "normal"),
                                  [0.5, 0.0, 0.5])
    # bad parameters are still rejected by name
    with pytest.raises(ValueError, match="scale"):
        numeric.probs(np.zeros(4), "normal", scale=-1.0)
    with pytest.raises(ValueError, match="scale"):
        numeric.probs(np.zeros(4), "normal", scale=float("nan"))
    with pytest.raises(ValueError, match="family"):
        numeric.probs(np.zeros(4), "normall")
    # float32 keeps its dtype, ints are promoted
    assert numeric.probs(np.zeros(4, dtype=np.float32), "normal").dtype == np.float32
    np.testing.assert_array_equal(numeric.probs(np.arange(4), "normal"),
                                  numeric.probs(np.arange(4.0), "normal"))


def test_large_n_lean_path_matches_general_rules():
    # n >= FAST_MIN_N: plain rows skip the special-row split; special rows still follow it
    n = numeric.FAST_MIN_N + 5
    rng = np.random.default_rng(9)
    x = rng.standard_normal(n) * 2
    p = numeric.probs(x, "normal")
    assert abs(math.fsum(p) - 1) <= 1e-14 and (p > 0).all()
    y = x.copy()
    y[3] = -np.inf
    q = numeric.probs(y, "normal")
    assert q[3] == 0.0 and abs(math.fsum(q) - 1) <= 1e-14
    y[4] = np.nan
    assert np.isnan(numeric.probs(y, "normal")).all()
    # the input is never modified (probs exponentiates its own buffer in place), and a
    # result never shares memory with the per-thread scratch of the next call
    keep = x.copy()
    a = numeric.probs(x, "normal")
    numeric.log_probs(x, "gumbel")
    np.testing.assert_array_equal(x, keep)
    big = rng.standard_normal(40_000)
    first = numeric.log_probs(big, "logistic")
    again = first.copy()
    numeric.log_probs(big[::-1].copy(), "logistic")
    numeric.probs(big * 3, "normal")
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(numeric.probs(x, "normal"), a)


@pytest.mark.slow
@pytest.mark.parametrize("family", AUTO_FAMILIES)
def test_auto_matches_oracle_many_vectors(family):
    rng = np.random.default_rng(100 + sum(map(ord, family)))
    for n in (3, 4, 6, 10, 16, 25):
        spreads = (1e-6, 0.05, 1.0, 3.0, 8.0, 20.0, 40.0, 60.0)
        for mu in _vectors(rng, n, spreads):
            _check(numeric.log_probs(mu, family), numeric.probs(mu, family), _oracle(mu, family))


def test_normal_bench_inputs_match_references():
    # the normal linear mode (tabulated erfcx) on the inputs the bench draws: s * N(0, 1)
    # rows (s = 1, 2, 5) and clustered rows with exact ties; n = 10 against the oracle,
    # n = 100 against the quadrature (itself oracle-tested), float32 input, and both
    # VJPs (dense and one-hot cotangents) against the quadrature's
    from derive.bench import KINDS, cotangent, scores
    for kind in KINDS:
        x = scores(kind, (2, 10))
        lp, p = numeric.log_probs(x, "normal"), numeric.probs(x, "normal")
        for r in range(2):
            _check(lp[r], p[r], _oracle(x[r], "normal"))
        x = scores(kind, (1, 100))
        lp = numeric.log_probs(x, "normal")[0]
        ref = numeric.log_probs(x[0], "normal", method="quadrature")
        assert np.all(np.abs(lp - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
        big = ref >= math.log(1e-300)
        # two contract bounds (each value within 1e-13 + 2 ulp of log p of the truth)
        assert np.all(np.abs(np.expm1(lp[big] - ref[big])) <= 2e-13 + 4 * np.spacing(np.abs(ref[big])))
        x = scores(kind, (3, 10))
        for w in ("dense", "one-hot"):
            g = cotangent(kind, (3, 10), w)
            for f in (numeric.probs_vjp, numeric.log_probs_vjp):
                got = f(x, g, "normal")
                for r in range(3):
                    vr = f(x[r], g[r], "normal", method="quadrature")
                    assert np.all(np.abs(got[r] - vr) <= 1e-10 * np.abs(vr) + 1e-200 * np.abs(vr).sum())
    x32 = (2.0 * np.random.default_rng(7).normal(size=(3, 12))).astype(np.float32)
    p32 = numeric.probs(x32, "normal")
    assert p32.dtype == np.float32
    for r in range(3):
        ref = np.exp(np.array([float(v) for v in _oracle(x32[r].astype(np.float64), "normal")]))
        assert np.all(np.abs(p32[r] - ref) <= 6e-8 * ref + 1e-45)


@pytest.mark.parametrize("family", AUTO_FAMILIES)
def test_single_vector_vjp_lean_path(family):
    # the lean 1-d VJP path (numeric._batch.row_vjp) gives the general (m, n) path's bits
    # for dense, one-hot and zero cotangents, probs and log_probs, scales 1, 0.5 (a power
    # of two: the general path's unshifted scores) and 1.3, one-row batches keeping their
    # shape; and at scale 1 it meets the README's VJP bound (1e-10 of each entry's sum of
    # |terms|) against the independent log-space reference of tests/_vjp_reference.py
    from _vjp_reference import reference_vjp

    from derive import bench
    fam = get_family(family)
    rng = np.random.default_rng(11)
    lean = 0
    for n in (3, 10):
        X = np.concatenate([bench.scores(k, (2, n)) for k in bench.KINDS]
                           + [30.0 * rng.standard_normal((1, n)), np.zeros((1, n))])
        dense = rng.standard_normal(X.shape)
        onehot = np.zeros(X.shape)
        hot = rng.integers(0, n, X.shape[0])
        onehot[np.arange(X.shape[0]), hot] = rng.uniform(0.5, 2.0, X.shape[0])
        for G in (dense, onehot, np.zeros(X.shape)):
            for fn, log in ((numeric.probs_vjp, False), (numeric.log_probs_vjp, True)):
                for scale in (0.5, 1.3, 1.0):          # (scale 1 last: checked below)
                    batch = fn(X, G, family, scale=scale)
                    for r in range(X.shape[0]):
                        np.testing.assert_array_equal(fn(X[r], G[r], family, scale=scale), batch[r])
                        one = fn(X[r:r + 1], G[r:r + 1], family, scale=scale)
                        assert one.shape == (1, n)
                        np.testing.assert_array_equal(one[0], batch[r])
                if G is not dense and G is not onehot:
                    continue
                for r in range(X.shape[0]):
                    y = X[r] - X[r].max()
                    lean += _batch.row_vjp(y, G[r], fam, log=log) is not None
                    if n == 10 and r % (4 if G is dense else 2):
                        continue                # (the reference's cost: a subset at n = 10)
                    ref, terms, _ = reference_vjp(y, dict(enumerate(G[r])) if G is dense
                                                  else {int(hot[r]): G[r, hot[r]]}, family, log=log)
                    tol = 1e-10 * (terms + 1e-200 * terms.sum()) + 1e-290
                    assert np.all(np.abs(batch[r] - ref) <= tol), (n, r, log, np.max(np.abs(batch[r] - ref) / tol))
    assert lean >= 0.75 * 2 * 2 * 2 * 10       # most rows took the lean path
    # float32 input (the general path): the float64 result of the rounded scores
    x32 = X[:4].astype(np.float32)
    v32 = numeric.probs_vjp(x32, dense[:4].astype(np.float32), family)
    assert v32.dtype == np.float32
    np.testing.assert_allclose(v32, numeric.probs_vjp(x32.astype(np.float64), dense[:4].astype(np.float32).astype(np.float64),
                                                      family).astype(np.float32), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("family", AUTO_FAMILIES)
def test_single_vector_vjp_lean_path_sweep(family):
    # the lean VJP path over lengths 3..100 and spreads s N(0, 1), s = 0.3..20, clustered
    # rows with ties, float32-rounded scores: the general path's bits, and the README's
    # bound (1e-10 of each entry's sum of |terms|) against tests/_vjp_reference.py
    # (dense cotangents up to n = 30, one-hot beyond)
    from _vjp_reference import reference_vjp

    from derive import bench
    rng = np.random.default_rng(sum(map(ord, family)) + 17)
    for n in (3, 7, 30, 100):
        X = np.concatenate([s * rng.standard_normal((2, n)) for s in (0.3, 1.0, 2.0, 5.0, 20.0)]
                           + [bench.scores("clusters+ties", (2, n), salt=5),
                              (2.0 * rng.standard_normal((1, n))).astype(np.float32).astype(np.float64)])
        hot = rng.integers(0, n, X.shape[0])
        G = rng.standard_normal(X.shape) if n <= 30 else np.eye(n)[hot] * rng.uniform(0.5, 2.0, (X.shape[0], 1))
        for fn, log in ((numeric.probs_vjp, False), (numeric.log_probs_vjp, True)):
            batch = fn(X, G, family)
            for r in range(X.shape[0]):
                np.testing.assert_array_equal(fn(X[r], G[r], family), batch[r])
                y = X[r] - X[r].max()
                support = dict(enumerate(G[r])) if n <= 30 else {int(hot[r]): G[r, hot[r]]}
                ref, terms, _ = reference_vjp(y, support, family, log=log)
                tol = 1e-10 * (terms + 1e-200 * terms.sum()) + 1e-290
                assert np.all(np.abs(batch[r] - ref) <= tol), (n, r, log, np.max(np.abs(batch[r] - ref) / tol))
