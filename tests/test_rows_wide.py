"""Wide rows in the row-batched engine (numeric._fast_rows): rows with more bins than a
full plan keeps (``RowsSpec.p_max``: normal spreads beyond ~20 standard units, logistic beyond
~20) take the spreading matrices of their integration window only; the node sums of every
row are tilted matrix products (_node_products).  Checked against the
adaptive quadrature (``method="quadrature"``, itself oracle-tested) and the independent
VJP reference (tests/_vjp_reference.py): ``s * N(0, 1)`` rows with s = 5, 6, clusters
with exact ties spread over ~30 units, float32 input, one-hot and dense cotangents,
spreads of 1e3 (declined by the engine, served by the quadrature through the public call),
and a row's result against the same row in a batch.
"""

import numpy as np
import pytest

import numeric
from _vjp_reference import reference_vjp
from numeric._fast_rows import _prepare, rows_log_probs, rows_onehot_log_vjp
from numeric.families import get_family

FAMS = ("normal", "logistic")


def _wide_rows(fam, n, seed):
    """Two ``6 N(0, 1)`` rows and a clustered row with exact ties (centres +-14, top
    tied), every one wider than the family's ``RowsSpec.p_max`` bins."""
    rng = np.random.default_rng(seed)
    centres = np.array([-14.0, -3.0, 0.5, 14.0])
    clus = centres[rng.integers(0, 4, size=n)] + 1e-3 * rng.normal(size=n)
    clus[: n // 4] = clus[rng.integers(0, n, size=n // 4)]
    clus[1] = clus.max()
    x = np.stack([6.0 * rng.normal(size=n), 6.0 * rng.normal(size=n), clus])
    _, P, _ = _prepare(x, get_family(fam), wide=True)
    assert (P > get_family(fam).fast.rows.p_max).all()
    return x


def _close_log_p(lp, ref):
    """The README's bound: p within 1e-13 relative (log p within 1e-13 absolute) or two
    rounding steps of log p where that is coarser; log p within 1e-12 max(1, |log p|)."""
    err = np.abs(lp - ref)
    return bool(np.all(err <= np.maximum(1e-13, 2.0 * np.spacing(np.abs(ref))))
                and np.all(err <= 1e-12 * np.maximum(1.0, np.abs(ref))))


@pytest.mark.parametrize("fam", FAMS)
def test_wide_rows_log_probs_vs_quadrature(fam):
    x = _wide_rows(fam, 300, 1)
    lp, ok = rows_log_probs(x, get_family(fam))
    assert ok.all()
    for r in range(x.shape[0]):
        ref = numeric.log_probs(x[r], fam, method="quadrature")
        assert _close_log_p(lp[r], ref), (r, np.abs(lp[r] - ref).max())
        assert abs(np.exp(lp[r]).sum() - 1.0) <= 1e-14


@pytest.mark.parametrize("fam", FAMS)
def test_wide_rows_float32_public(fam):
    """float32 input through the public call: the float64 values of the float32 scores,
    rounded once to float32."""
    x = _wide_rows(fam, 200, 2).astype(np.float32)
    p = numeric.probs(x, fam)
    assert p.dtype == np.float32
    for r in range(x.shape[0]):
        ref = numeric.probs(x[r].astype(np.float64), fam, method="quadrature")
        assert np.all(np.abs(p[r] - ref) <= 2.0 ** -23 * ref + 1e-45)


def test_wide_row_onehot_vjp_vs_reference():
    """The one-hot log VJP (the gradient of -log p_y) on a wide normal row, the cotangent on
    the smallest entry and on the largest: every entry within 1e-10 of its own sum of
    |terms|, rows summing to 0."""
    x = _wide_rows("normal", 300, 3)[:1]
    for y in (int(np.argmin(x[0])), int(np.argmax(x[0]))):
        v, ok = rows_onehot_log_vjp(x, np.array([y]), get_family("normal"))
        assert ok[0]
        ref, terms, _ = reference_vjp(x[0], {y: 1.0}, "normal", log=True)
        assert np.all(np.abs(v[0] - ref) <= 1e-10 * terms), (np.abs(v[0] - ref) / terms).max()
        assert abs(v[0].sum()) <= 1e-12 * np.abs(v[0]).sum()


@pytest.mark.slow
@pytest.mark.parametrize("fam, n", [("logistic", 300), ("normal", 1000), ("logistic", 1000)])
def test_wide_onehot_vjp_vs_reference_slow(fam, n):
    x = _wide_rows(fam, n, 4)
    ys = [int(np.argmin(x[0])), int(np.argmax(x[1])), 7]
    v, ok = rows_onehot_log_vjp(x, np.array(ys), get_family(fam))
    # (a clustered row may be declined: tied blocks sharpen log g beyond the node
    # stencil, and the per-row engine halves its node stride there)
    assert ok[:2].all()
    for r, y in enumerate(ys):
        if not ok[r]:
            continue
        ref, terms, _ = reference_vjp(x[r], {y: 1.0}, fam, log=True)
        assert np.all(np.abs(v[r] - ref) <= 1e-10 * terms), (r, (np.abs(v[r] - ref) / terms).max())


@pytest.mark.parametrize("fam", FAMS)
def test_wide_vjps_public_vs_quadrature(fam):
    """Both VJPs through the public calls, one-hot and dense cotangents (the dense ones
    of wide rows go to the per-row engine), against the quadrature."""
    x = _wide_rows(fam, 120, 5)[:2]
    rng = np.random.default_rng(6)
    onehot = np.zeros_like(x)
    onehot[0, int(np.argmin(x[0]))] = 1.5
    onehot[1, 4] = -1.0
    for c in (onehot, rng.normal(size=x.shape)):
        for f in (numeric.probs_vjp, numeric.log_probs_vjp):
            got = f(x, c, fam)
            for r in range(x.shape[0]):
                ref = f(x[r], c[r], fam, method="quadrature")
                assert np.all(np.abs(got[r] - ref) <= 1e-10 * np.abs(ref).max()), (f.__name__, r)


@pytest.mark.parametrize("fam", FAMS)
def test_wide_row_independent_of_batch(fam):
    x = _wide_rows(fam, 300, 7)
    rng = np.random.default_rng(8)
    mates = np.concatenate([x, rng.normal(size=(5, 300)), 2.0 * x[::-1]])
    F = get_family(fam)
    alone, ok1 = rows_log_probs(x[:1], F)
    batch, ok2 = rows_log_probs(mates, F)
    assert ok1[0] and ok2[0]
    assert np.array_equal(alone[0], batch[0])
    y = np.array([3] * mates.shape[0])
    va, _ = rows_onehot_log_vjp(x[:1], y[:1], F)
    vb, _ = rows_onehot_log_vjp(mates, y, F)
    assert np.array_equal(va[0], vb[0])


@pytest.mark.parametrize("fam", FAMS)
def test_spread_1e3_declined_and_served(fam):
    """A row spread over 1e3 units: the batched engine declines it, the public call
    answers with the quadrature's values (a cluster far below the top keeps its spread)."""
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(size=(1, 60)), rng.normal(size=(1, 60)) - 1000.0], axis=1)
    _, ok = rows_log_probs(x, get_family(fam))
    assert not ok[0]
    got = numeric.log_probs(x, fam)[0]
    ref = numeric.log_probs(x[0], fam, method="quadrature")
    assert _close_log_p(got, ref)


@pytest.mark.parametrize("fam", FAMS)
def test_node_products_match_log_space_rule(fam):
    """The node sums as tilted matrix products (_node_products) against the same
    trapezoid rule summed term by term in log space (_node_integrals) on the same log F
    (and log F + log h(x - z_y), the one-hot integrands): s = 1, 2, 5, a clustered row with
    ties, float32-rounded scores.  Both accept the same rows, and log g agrees to a few
    rounding steps of max(1, |log g|) (+ the scale of the tilt)."""
    from numeric._fast_rows import _log_F, _moments, _node_integrals, _node_products, _plan, _windows
    F = get_family(fam)
    spec = get_family(fam).fast
    rng = np.random.default_rng(10)
    rows = [s * rng.normal(size=400) for s in (1.0, 2.0, 5.0)] + [_wide_rows(fam, 400, 11)[2]]
    rows.append(rows[1].astype(np.float32).astype(np.float64))
    for z in rows:
        x = z[None, :]
        lo_i, P, ok = _prepare(x, F, wide=True)
        assert ok[0]
        pl = _plan(F, int(P[0]))
        M = _moments(x, lo_i, spec, pl.P)
        y = int(np.argmin(z))
        for extra in (False, True):
            if extra:
                cols = pl.kL + np.arange(pl.Gs)
                w = F.loghazard((lo_i[0] + cols) * spec.H - z[y])[None, :]
                a, b, jm = _windows(pl, M, w[:, ::8], peaks=True)
            else:
                a, b, jm = _windows(pl, M, peaks=True)
            a, b = int(a[0]), int(b[0])
            L = _log_F(M, pl, x.shape[1], a, b)
            if extra:
                L += w[:, a:b]
            ref, ok_ref = _node_integrals(L.copy(), pl, spec.H, a, b)
            got, ok_got = _node_products(L, pl, spec.H, a, b, jm)
            assert ok_ref[0] and ok_got[0]
            assert np.all(np.abs(got - ref) <= 1e-14 * np.maximum(1.0, np.abs(ref))), \
                (np.abs(got - ref) / np.maximum(1.0, np.abs(ref))).max()


@pytest.mark.parametrize("fam", FAMS)
def test_training_batch_kinds_vs_quadrature(fam):
    """A classifier-output batch as the bench draws it (s = 1, 2, 5 and clusters with
    ties): every row taken by the batched engine; log p and the one-hot log VJP (the
    gradient of nll_loss) of two rows per kind against the quadrature."""
    from derive.bench import KINDS, cotangent, scores
    F = get_family(fam)
    for kind in KINDS:
        x = scores(kind, (8, 300), salt=3)
        c = cotangent(kind, (8, 300), "one-hot")
        lp, ok = rows_log_probs(x, F)
        assert ok.all(), kind
        v = numeric.log_probs_vjp(x, c, fam)
        for r in (0, 5):
            ref = numeric.log_probs(x[r], fam, method="quadrature")
            assert _close_log_p(lp[r], ref), (kind, r, np.abs(lp[r] - ref).max())
            vref = numeric.log_probs_vjp(x[r], c[r], fam, method="quadrature")
            assert np.all(np.abs(v[r] - vref) <= 1e-10 * np.abs(vref).max()), (kind, r)
