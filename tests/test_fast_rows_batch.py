"""Row-batched dense VJPs (numeric._fast_rows.rows_dense_vjp) against independent
references: ``tests/_vjp_reference.py`` (log-space Gauss-Legendre panels on scipy's
special functions) for cotangents on a few entries, and the adaptive quadrature
(``method="quadrature"``, itself oracle-tested) for dense cotangents.  The bound is the
README's: each entry within 1e-10 of its own sum of |terms| ``sum_j |g_k - g_j| K_kj``.
"""

import numpy as np
import pytest

import numeric
from _vjp_reference import reference_vjp
from numeric._fast_rows import rows_dense_vjp
from numeric.families import get_family

FAMS = ("normal", "logistic")


def _rows(seed, n):
    rng = np.random.default_rng(seed)
    tied = np.r_[np.zeros(n // 3), -2.0 + 1e-3 * rng.normal(size=n // 3), 1.5 * rng.normal(size=n - 2 * (n // 3))]
    return np.stack([rng.normal(size=n), 2.0 * rng.normal(size=n), tied])


@pytest.mark.parametrize("fam, log", [("normal", True),
                                      pytest.param("normal", False, marks=pytest.mark.slow),
                                      pytest.param("logistic", True, marks=pytest.mark.slow),
                                      pytest.param("logistic", False, marks=pytest.mark.slow)])
def test_sparse_cotangents_vs_reference(fam, log):
    """Cotangents on 4 entries (the smallest, the largest and two others): every entry
    within 1e-10 of its own sum of |terms|; the rows sum to 0."""
    x = _rows(11, 300)
    rng = np.random.default_rng(3)
    g = np.zeros_like(x)
    supports = []
    for r in range(x.shape[0]):
        idx = [int(np.argmin(x[r])), int(np.argmax(x[r]))] + [int(i) for i in rng.choice(300, 2, replace=False)]
        sup = {i: float(v) for i, v in zip(idx, rng.normal(size=4))}
        for i, v in sup.items():
            g[r, i] = v
        supports.append(sup)
    v, ok = rows_dense_vjp(x, g, get_family(fam), log=log)
    assert ok.all()
    for r in range(x.shape[0]):
        sup = {i: g[r, i] for i in supports[r]}
        ref, terms, _ = reference_vjp(x[r], sup, fam, log=log)
        err = np.abs(v[r] - ref)
        assert np.all(err <= 1e-10 * terms + 1e-200 * terms.sum()), (r, (err / terms).max())
        assert abs(v[r].sum()) <= 1e-12 * np.abs(v[r]).sum()


@pytest.mark.parametrize("fam", FAMS)
def test_dense_cotangents_vs_quadrature(fam):
    """Dense N(0, 1) cotangents, s = 1, 2, 5 and a clustered row with ties, float32
    input, through the public calls (rows the batched path declines take the per-row
    engine) and directly; against the quadrature row by row."""
    rng = np.random.default_rng(5)
    x = np.concatenate([_rows(2, 300), 5.0 * rng.normal(size=(1, 300))]).astype(np.float32)
    c = rng.normal(size=x.shape)
    F = get_family(fam)
    for f, log in ((numeric.probs_vjp, False), (numeric.log_probs_vjp, True)):
        got = f(x, c, fam)
        direct, ok = rows_dense_vjp(x.astype(np.float64), c, F, log=log)
        assert ok[:3].all()
        for r in range(x.shape[0]):
            ref = f(x[r].astype(np.float64), c[r], fam, method="quadrature")
            tol = 1e-11 * np.abs(ref).max()
            # the public call answers in the input's dtype (float32: one rounding)
            assert got.dtype == np.float32
            assert np.all(np.abs(got[r] - ref) <= tol + 2.0 ** -23 * np.abs(ref))
            if ok[r]:
                assert np.all(np.abs(direct[r] - ref) <= tol)


@pytest.mark.parametrize("fam", FAMS)
def test_row_result_independent_of_batch(fam):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 300)) * rng.uniform(0.5, 2.0, size=(6, 1))
    c = rng.normal(size=x.shape)
    F = get_family(fam)
    for log in (False, True):
        v, ok = rows_dense_vjp(x, c, F, log=log)
        for r in range(6):
            a, oka = rows_dense_vjp(x[r:r + 1], c[r:r + 1], F, log=log)
            assert oka[0] == ok[r] and np.array_equal(a[0], v[r], equal_nan=True)


@pytest.mark.slow
@pytest.mark.parametrize("fam", FAMS)
def test_long_row_chunks_vs_quadrature(fam):
    """A row longer than the column chunks (n = 65,000: two chunks of the per-score
    passes; longer than the public route's rows for this engine, so asked for with
    n_max), dense cotangents, both VJPs, against the quadrature."""
    rng = np.random.default_rng(8)
    x = 1.5 * rng.normal(size=(1, 65_000))
    c = rng.normal(size=x.shape)
    F = get_family(fam)
    for f, log in ((numeric.probs_vjp, False), (numeric.log_probs_vjp, True)):
        v, ok = rows_dense_vjp(x, c, F, log=log, n_max=65_000)
        assert ok[0]
        ref = f(x[0], c[0], fam, method="quadrature")
        assert np.all(np.abs(v[0] - ref) <= 1e-11 * np.abs(ref).max())
        assert abs(v[0].sum()) <= 1e-12 * np.abs(v[0]).sum()


@pytest.mark.slow
def test_long_row_onehot_vs_quadrature():
    """The one-hot path on a logistic row of 65,000 entries (two column chunks of its
    evaluation), a cotangent on the smallest entry, against the quadrature."""
    from numeric._fast_rows import rows_onehot_log_vjp
    rng = np.random.default_rng(12)
    x = 2.0 * rng.normal(size=(1, 65_000))
    y = int(np.argmin(x[0]))
    v, ok = rows_onehot_log_vjp(x, np.array([y]), get_family("logistic"))
    assert ok[0]
    c = np.zeros(x.shape[1])
    c[y] = 1.0
    ref = numeric.log_probs_vjp(x[0], c, "logistic", method="quadrature")
    assert np.all(np.abs(v[0] - ref) <= 1e-10 * np.abs(ref))


@pytest.mark.slow
def test_very_long_logistic_row_vs_per_row_engine():
    """n = 300,000 (beyond _N_LONG: the batched VJPs with ten column chunks) against the
    per-row engine (numeric._fast, itself tested against the quadrature), both VJPs."""
    from numeric._fast import fast_log_probs_vjp, fast_probs_vjp
    rng = np.random.default_rng(13)
    x = 2.0 * rng.normal(size=(1, 300_000))
    c = rng.normal(size=x.shape)
    F = get_family("logistic")
    for fn, log in ((fast_probs_vjp, False), (fast_log_probs_vjp, True)):
        v, ok = rows_dense_vjp(x, c, F, log=log)
        assert ok[0]
        ref = fn(x, c, F)
        assert np.all(np.abs(v - ref) <= 1e-11 * np.abs(ref).max())


def test_gumbel_min_rows_vs_quadrature():
    """gumbel_min rows narrow enough for the row-batched engine (its grid step is 1/32:
    log p and one-hot VJPs up to 10 units of spread): ``0.5 N(0, 1)``, a clustered row
    with exact ties, float32 input; log p and both VJPs with one-hot (checked to take
    the batched path) and dense cotangents (the per-row engine's) through the public
    calls against the quadrature; a row it declines (``2 N(0, 1)``) is served alike."""
    from numeric._fast_rows import rows_log_probs, rows_onehot_log_vjp

    rng = np.random.default_rng(16)
    n = 300
    clus = np.array([0.0, -1.5, 0.7])[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n)
    clus[: n // 4] = clus[rng.integers(0, n, size=n // 4)]
    clus[1] = clus.max()
    x = np.stack([0.5 * rng.normal(size=n), clus, 2.0 * rng.normal(size=n)]).astype(np.float32)
    x64 = x.astype(np.float64)
    F = get_family("gumbel_min")
    _, okp = rows_log_probs(x64, F)
    c = rng.normal(size=x.shape)
    y = np.array([int(np.argmin(x[0])), 7, int(np.argmax(x[2]))])
    _, oko = rows_onehot_log_vjp(x64, y, F)
    assert okp[:2].all() and oko[:2].all() and not okp[2]
    onehot = np.zeros_like(c)
    onehot[np.arange(3), y] = 1.0
    lp = numeric.log_probs(x64, "gumbel_min")
    lp32 = numeric.log_probs(x, "gumbel_min")
    for r in range(3):
        ref = numeric.log_probs(x64[r], "gumbel_min", method="quadrature")
        err = np.abs(lp[r] - ref)
        assert np.all(err <= np.maximum(1e-13, 2.0 * np.spacing(np.abs(ref)))), err.max()
        assert lp32.dtype == np.float32 and np.all(np.abs(lp32[r] - ref) <= 2.0 ** -24 * np.abs(ref) + 1e-13)
    for f in (numeric.probs_vjp, numeric.log_probs_vjp):
        for g in (c, onehot):
            got = f(x, g, "gumbel_min")
            for r in range(3):
                ref = f(x64[r], g[r], "gumbel_min", method="quadrature")
                assert np.all(np.abs(got[r] - ref) <= 1e-10 * np.abs(ref).max() + 2.0 ** -23 * np.abs(ref))


def test_gumbel_min_narrow_low_nodes_vs_quadrature(monkeypatch):
    """gumbel_min rows of n = 1000 at spreads of 5-7 units: the lowest nodes' integrands
    ``h(x - m) F`` are narrow (second difference 0.35-0.5 at the peak: ``sigma ~ 1 /
    sqrt(#above)`` grid steps), which the row-batched engine takes with the Gaussian
    half-step test (``_CURV_MAX_GAUSS``; at the per-row engine's limit 0.35 these rows are
    declined, checked below).  ``N(0, 1)``, ``1.1 N(0, 1)`` and a clustered row with exact
    ties and a tied maximum, float32-rounded: log p within 4 ulps of ``|log p|`` (+1e-13)
    of the quadrature (measured <= 4, the per-row engine 3; against derive.oracle 3 and 2,
    p within 2.9e-14 relative for p >= 1e-300 as the per-row engine) and the one-hot log
    VJP on the lowest score within 1e-10 of its largest entry (measured 3e-14)."""
    from numeric import _fast_rows as FR

    rng = np.random.default_rng(20)
    n = 1000
    clus = np.array([0.0, -3.5, 1.5])[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n)
    clus[: n // 4] = clus[rng.integers(0, n, size=n // 4)]
    clus[1] = clus.max()
    x = np.stack([rng.normal(size=n), 1.1 * rng.normal(size=n), clus]).astype(np.float32).astype(np.float64)
    F = get_family("gumbel_min")
    y = np.argmin(x, axis=1)
    lp, okp = FR.rows_log_probs(x, F)
    v, oko = FR.rows_onehot_log_vjp(x, y, F)
    assert okp.all() and oko.all()
    for r in range(x.shape[0]):
        ref = numeric.log_probs(x[r], "gumbel_min", method="quadrature")
        assert np.all(np.abs(lp[r] - ref) <= 1e-13 + 4.0 * np.spacing(np.abs(ref))), r
        c = np.zeros(n)
        c[y[r]] = 1.0
        ref = numeric.log_probs_vjp(x[r], c, "gumbel_min", method="quadrature")
        assert np.all(np.abs(v[r] - ref) <= 1e-10 * np.abs(ref).max()), r
    # the same rows at the curvature limit 0.35 (fresh plans): the narrow nodes decline them
    monkeypatch.setattr(FR, "_CURV_MAX_GAUSS", FR._CURV_MAX)
    monkeypatch.setattr(FR, "_PLANS", {})
    assert not FR.rows_log_probs(x, F)[1].any()
    assert not FR.rows_onehot_log_vjp(x, y, F)[1].any()


@pytest.mark.parametrize("fam", ("normal", pytest.param("logistic", marks=pytest.mark.slow),
                                 pytest.param("gumbel_min", marks=pytest.mark.slow)))
def test_onehot_probs_vjp_vs_reference(fam):
    """The one-hot VJP of ``p`` straight from the engine (``log=False``: ``d p_y / dz_k =
    -g_y(z_k)``, no ``p_y`` from a separate log p pass) and through the public call, on
    rows with ties and a low-probability ``y``: every entry within 1e-10 of its own sum
    of |terms| (measured ~1e-14); the rows sum to 0.  The public call on float32 input
    against the reference at the float32 scores."""
    from numeric._fast_rows import rows_onehot_log_vjp

    x = _rows(5, 300) * (0.5 if fam == "gumbel_min" else 1.0)
    y = np.array([int(np.argmin(x[0])), 7, int(np.argmax(x[2]))])
    v, ok = rows_onehot_log_vjp(x, y, get_family(fam), log=False)
    assert ok.all()
    g = np.zeros_like(x)
    g[np.arange(3), y] = 1.0
    pub = numeric.probs_vjp(x.astype(np.float32), g, family=fam)
    for r in range(x.shape[0]):
        ref, terms, _ = reference_vjp(x[r], {int(y[r]): 1.0}, fam)
        err = np.abs(v[r] - ref)
        assert np.all(err <= 1e-10 * terms + 1e-200 * terms.sum()), (r, (err / terms).max())
        assert abs(v[r].sum()) <= 1e-12 * np.abs(v[r]).sum()
        z32 = x[r].astype(np.float32).astype(np.float64)
        ref32, terms32, _ = reference_vjp(z32, {int(y[r]): 1.0}, fam)
        # (float32 input gives a float32 result: one rounding to float32 on top, and
        # entries below its smallest subnormal flush to 0)
        assert pub.dtype == np.float32
        assert np.all(np.abs(pub[r] - ref32) <= 1e-10 * terms32 + 6e-8 * np.abs(ref32) + 1.5e-45 + 1e-200 * terms32.sum())
