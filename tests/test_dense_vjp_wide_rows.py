"""Dense-cotangent VJPs of wide normal and logistic rows on the row-batched engine
(numeric._fast_rows): Gamma's spreading matrix as column blocks (_gamma_blocks), the
long products in inner-dimension chunks (_matmul_rows), the normal's log p VJP on rows
of up to twice RowsSpec.p_max bins, and the routing of a few rows to the per-row engine
(rows_dense_worth).  References are independent of the engine: the adaptive quadrature
(``method="quadrature"``, itself oracle-tested), exact sums (math.fsum) for the products
and the Gamma tables' own entries for the blocks.  VJP bound: the README's (1e-10); the
checks here are tighter (1e-11 of the row's largest entry)."""

import math

import numpy as np
import pytest

import numeric
import numeric._fast_rows as FR
from numeric._fast import _gamma_cache
from numeric.families import get_family


def _quad(x, c, fam, log):
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    return f(x, c, fam, method="quadrature")


def _close(v, ref, tol=1e-11):
    return np.all(np.abs(v - ref) <= tol * np.abs(ref).max()) and abs(math.fsum(v)) <= 1e-12 * np.abs(v).sum()


def test_matmul_rows_chunks_vs_exact_sums():
    """Inner dimensions above _KC (chunks added in order), a row selection with a column
    offset, a last row block padded: every entry within a few ulps of the sum of the
    moduli of its terms (math.fsum), and each row's bits the same alone as in the batch."""
    rng = np.random.default_rng(3)
    k = FR._KC * 2 + 77
    A = rng.normal(size=(7, k + 5)) * np.exp(rng.uniform(-30, 30, size=(7, 1)))
    B = rng.normal(size=(k, FR._KC_COLS + 9))
    rows = np.array([6, 0, 3, 4, 5])
    out = FR._matmul_rows(A, B, np.empty((rows.size, B.shape[1])), rows=rows, a0=5)
    for i, r in enumerate(rows):
        for j in range(0, B.shape[1], 17):
            terms = A[r, 5:] * B[:, j]
            assert abs(out[i, j] - math.fsum(terms)) <= 64 * 2.0 ** -53 * math.fsum(np.abs(terms))
        alone = FR._matmul_rows(A, B, np.empty((1, B.shape[1])), rows=np.array([r]), a0=5)
        assert np.array_equal(alone[0], out[i])
    full = FR._matmul_rows(A[:, 5:], B, np.empty((7, B.shape[1])))
    assert np.array_equal(full[rows], out)


@pytest.mark.parametrize("fam, log", [("normal", True), ("logistic", True)])
def test_gamma_blocks_hold_the_tables(fam, log):
    """Every entry of the blocks a column block reads (bins J0 .. NJ - 1) is the Gamma
    table's coefficient b_r at offset column minus bin, times (-H)^r, zero beyond the cut."""
    F = get_family(fam)
    pl = FR._plan(F, 2 * F.fast.rows.p_max)
    gc = _gamma_cache(F, log=log)
    R1, T = gc.R + 1, FR._TRI
    NJ = -(-pl.P // T)
    C = 5
    J0 = max(0, (pl.kL + T * C - gc.s_hi) // T)
    D, e_top = FR._gamma_blocks(pl, gc, log, C - (NJ - 1), C - J0)
    Bm = D[e_top - C + J0:e_top - C + NJ].reshape(-1, T)
    rng = np.random.default_rng(0)
    for _ in range(300):
        j = int(rng.integers(J0 * T, NJ * T))
        r = int(rng.integers(0, R1))
        cc = int(rng.integers(0, T))
        s = pl.kL + T * C + cc - j
        if s > gc.s_hi:
            want = 0.0
        else:
            s0, _, tab = gc.get(s)
            want = tab[s - s0, r] * (-F.fast.H) ** r
        assert Bm[(j - J0 * T) * R1 + r, cc] == want


def _wide_rows(rng, n):
    tied = np.r_[np.zeros(n // 3), -25.0 + 1e-3 * rng.normal(size=n // 3), 5.0 * rng.normal(size=n - 2 * (n // 3))]
    tied[::7] = tied[1::7][: tied[::7].size]
    return np.stack([5.0 * rng.normal(size=n), 6.5 * rng.normal(size=n), tied,
                     6.0 * rng.normal(size=n).astype(np.float32).astype(np.float64)])


def test_normal_log_vjp_wide_rows_vs_quadrature():
    """The normal's log p VJP on rows of (p_max, 2 p_max] bins (s = 5, 6.5, a clustered row
    with ties spread over 30 units, a float32-rounded row; n = 300): served by the
    row-batched engine (checked), within 1e-11 of the row's largest entry of the quadrature."""
    F = get_family("normal")
    rng = np.random.default_rng(12)
    x = _wide_rows(rng, 300)
    _, P, _ = FR._prepare(x, F, p_lim=FR._dense_p_lim(F, True))
    assert (P > F.fast.rows.p_max).sum() >= 3 and (P <= 2 * F.fast.rows.p_max).all()
    c = rng.normal(size=x.shape)
    v, ok = FR.rows_dense_vjp(x, c, F, log=True)
    assert ok.all()
    for r in range(x.shape[0]):
        assert _close(v[r], _quad(x[r], c[r], "normal", True)), r


@pytest.mark.parametrize("fam", ["normal", pytest.param("logistic", marks=pytest.mark.slow)])
def test_wide_rows_independent_of_batch(fam):
    """A wide row's VJPs (Gamma's column blocks serve the rows whose windows meet them)
    are the same bits alone as with batch mates of other windows and bin counts."""
    F = get_family(fam)
    rng = np.random.default_rng(5)
    x = _wide_rows(rng, 300)
    x = np.concatenate([x, rng.normal(size=(2, 300))])
    c = rng.normal(size=x.shape)
    for log in (False, True):
        v, ok = FR.rows_dense_vjp(x, c, F, log=log)
        for r in (0, 2, 4):
            a, oka = FR.rows_dense_vjp(x[r:r + 1], c[r:r + 1], F, log=log)
            assert oka[0] == ok[r] and np.array_equal(a[0], v[r], equal_nan=True)


@pytest.mark.parametrize("fam", ["normal", pytest.param("logistic", marks=pytest.mark.slow)])
def test_few_rows_route_and_accuracy(monkeypatch, fam):
    """Public dense VJPs: fewer than _DENSE_MIN_ROWS rows go straight to the per-row engine,
    more to the row-batched one (spied); both against the quadrature (s = 2 and 5, n = 300)."""
    calls = []
    orig = FR.rows_dense_vjp

    def spy(z, *a, **k):
        calls.append(z.shape[0])
        return orig(z, *a, **k)

    import numeric as N
    monkeypatch.setattr(N, "rows_dense_vjp", spy)
    rng = np.random.default_rng(8)
    x = np.stack([2.0 * rng.normal(size=300), 5.0 * rng.normal(size=300)])
    c = rng.normal(size=x.shape)
    for f, log in ((numeric.probs_vjp, False), (numeric.log_probs_vjp, True)):
        calls.clear()
        v = f(x, c, fam)
        assert not calls
        for r in range(2):
            assert _close(v[r], _quad(x[r], c[r], fam, log)), (log, r)
        calls.clear()
        v4 = f(np.concatenate([x, x]), np.concatenate([c, c]), fam)
        assert calls == [4]
        for r in range(2):
            assert _close(v4[r], _quad(x[r], c[r], fam, log)), (log, r)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s=5", "clusters+ties"])
def test_bench_rows_normal_log_vjp_vs_quadrature(kind):
    """The bench's (256, 1000) rows (s = 5: 448-704 bins) through the public log p VJP, six
    rows against the quadrature."""
    from derive.bench import cotangent, scores
    x = scores(kind, (256, 1000))[:8]
    c = cotangent(kind, (256, 1000), "dense")[:8]
    v = numeric.log_probs_vjp(x, c, "normal")
    _, ok = FR.rows_dense_vjp(x, c, get_family("normal"), log=True)
    assert ok.sum() >= 6
    for r in range(6):
        assert _close(v[r], _quad(x[r], c[r], "normal", True)), r


def test_far_terms_coarse_bound(monkeypatch):
    """The normal's log p VJP on rows spanning 38-38.5 units (beyond its Gamma cut t_c = 37,
    so far terms exist): the far-term check from log F at the coarse columns alone
    (_far_ok_coarse, seen to run on rows with far terms) agrees with the exact check on
    every column (forced for every row: the same rows served, the same bits), and the
    VJPs match the quadrature.  (A row of uniform spread is declined either way: its far
    terms, weighted by 1 / p, matter; the per-row engine sums them exactly.)"""
    F = get_family("normal")
    rng = np.random.default_rng(17)
    n = 300
    bulk = 3.0 * rng.normal(size=n)
    bulk[:3] = [-20.0, -19.5, 18.2]
    wide = 6.0 * rng.normal(size=n)
    wide *= 38.5 / (wide.max() - wide.min())
    x = np.stack([bulk, wide, rng.uniform(-19.0, 19.0, size=n), 6.0 * rng.normal(size=n)])
    c = rng.normal(size=x.shape)
    seen = []
    orig = FR._far_ok_coarse

    def spy(lfc, farc, kc, *a):
        okc = orig(lfc, farc, kc, *a)
        seen.append(np.isfinite(lfc[:, 1:] + farc[:, 1:]).any(axis=1) & okc)
        return okc

    monkeypatch.setattr(FR, "_far_ok_coarse", spy)
    v, ok = FR.rows_dense_vjp(x, c, F, log=True)
    assert ok[[0, 1, 3]].all() and np.concatenate(seen).sum() >= 2
    monkeypatch.setattr(FR, "_far_ok_coarse", lambda lfc, *a: np.zeros(lfc.shape[0], dtype=bool))
    v2, ok2 = FR.rows_dense_vjp(x, c, F, log=True)
    assert np.array_equal(ok2, ok) and np.array_equal(v2[ok], v[ok])
    for r in np.flatnonzero(ok):
        assert _close(v[r], _quad(x[r], c[r], "normal", True)), r
