"""Dense-cotangent VJPs of the row-batched engine (numeric._fast_rows): the weighted
median that picks the shift ``s`` (``g' = g - s``), and the paths that serve dense
VJPs of normal and logistic rows, against independent references (a plain sort for
the median; the adaptive quadrature, itself oracle-tested, and the per-row engine,
tested against it, for the VJPs).  The VJP bound is the README's (1e-10)."""

import numpy as np
import pytest

import numeric
from numeric._fast_rows import _fkey, _weighted_median, rows_dense_vjp
from numeric.families import get_family


def _median_by_sort(gg, pw):
    """The first value, in ascending order, where the running weight reaches half."""
    out = []
    for r in range(gg.shape[0]):
        live = pw[r] > 0
        if not live.any():
            out.append(0.0)
            continue
        v, w = gg[r][live], pw[r][live]
        o = np.argsort(v, kind="stable")
        cs = np.cumsum(w[o])
        out.append(v[o][np.argmax(cs >= 0.5 * cs[-1])])
    return np.array(out)


def test_fkey_orders_like_the_values():
    x = np.array([-np.inf, -1e308, -2.5, -1e-310, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1.0 + 2e-16, 3e300, np.inf])
    k = _fkey(x)
    assert np.all(np.diff(k) > 0)


@pytest.mark.parametrize("n", (700, 5000, 40000, 70000))
def test_weighted_median_vs_sort(n):
    """Short rows (one sort) and long rows (radix select over column chunks: 70,000 is
    three chunks) on values of one scale, values spanning 1e-9..1e9 around a bulk
    of order 1 (c / p of the log VJP), heavy ties, two values, tiny values, entries
    without weight and a row without any: the same value as a plain sort."""
    rng = np.random.default_rng(n)
    for kind in range(6):
        m = 3
        if kind == 0:
            gg = rng.normal(size=(m, n))
        elif kind == 1:
            gg = rng.normal(size=(m, n)) / np.exp(rng.uniform(-20.0, 0.0, size=(m, n)))
        elif kind == 2:
            gg = np.round(3.0 * rng.normal(size=(m, n)))
        elif kind == 3:
            gg = np.full((m, n), 2.5)
            gg[:, ::7] = -1.0
        elif kind == 4:
            gg = 1e-300 * rng.normal(size=(m, n))
        else:
            gg = np.where(rng.random((m, n)) < 0.5, 0.0, -0.0) + (rng.random((m, n)) < 0.1)
        pw = np.where(rng.random((m, n)) < 0.3, 0.0, rng.exponential(size=(m, n)))
        pw[1] = 0.0
        got = _weighted_median(lambda c: (gg[:, c], pw[:, c]), m, n)
        assert np.array_equal(got, _median_by_sort(gg, pw)), kind


def _far_spy(monkeypatch):
    """Count the passes of the per-row engine's far-term gathering (numeric._fast's
    sorted_entries, which splits the scores of the bins it is asked for)."""
    import inspect

    import numeric._fast as F
    calls = []
    orig = F._split_lattice

    def spy(*a):
        if inspect.stack()[1].function == "sorted_entries":
            calls.append(1)
        return orig(*a)

    monkeypatch.setattr(F, "_split_lattice", spy)
    return calls


@pytest.mark.parametrize("n, s", [(300, 10.0), pytest.param(2000, 6.0, marks=pytest.mark.slow),
                                  pytest.param(1000, 8.0, marks=pytest.mark.slow)])
def test_per_row_far_terms_vs_quadrature(monkeypatch, n, s):
    """Rows wider than the Gamma tables' cut (normal log VJP: t_c = 37; spreads 40-60),
    whose far terms the per-row engine sums exactly from the entries of the bins asked
    for only: both VJPs against the quadrature (within 1e-11 of the row's largest
    entry), the far path checked to have run."""
    from numeric._fast import fast_log_probs_vjp, fast_probs_vjp
    calls = _far_spy(monkeypatch)
    rng = np.random.default_rng(4)
    x = s * rng.normal(size=n)
    x[: n // 10] = x[n // 10: 2 * (n // 10)]          # ties
    c = rng.normal(size=n)
    F = get_family("normal")
    for fn, pub in ((fast_log_probs_vjp, numeric.log_probs_vjp), (fast_probs_vjp, numeric.probs_vjp)):
        calls.clear()
        v = fn(x[None], c[None], F)[0]
        ref = pub(x, c, "normal", method="quadrature")
        assert np.all(np.abs(v - ref) <= 1e-11 * np.abs(ref).max())
        assert abs(v.sum()) <= 1e-12 * np.abs(v).sum()
        if fn is fast_log_probs_vjp:
            assert calls, "the far terms were not summed"


@pytest.mark.parametrize("fam, log", [("normal", False), ("logistic", True),
                                      pytest.param("logistic", False, marks=pytest.mark.slow)])
def test_wide_rows_probs_vjp_vs_quadrature(fam, log):
    """Dense VJPs on rows wider than RowsSpec.p_max bins (up to twice where the Gamma
    strip stays cached: the normal's VJP of p, both of the logistic's; s N(0, 1) with
    s = 5..8 at n = 300, a clustered row with ties spread over 35 units, a float32-rounded
    row), served by the row-batched engine (checked), against the quadrature: within
    1e-11 of the row's largest entry, rows summing to 0."""
    import numeric._fast_rows as FR
    F = get_family(fam)
    assert FR._dense_p_lim(F, log) == FR._P_VJP_WIDE * F.fast.rows.p_max
    rng = np.random.default_rng(21)
    n = 300
    tied = np.r_[np.zeros(n // 3), -30.0 + 1e-3 * rng.normal(size=n // 3), 5.0 * rng.normal(size=n - 2 * (n // 3))]
    tied[::7] = tied[1::7][: tied[::7].size]
    x = np.stack([5.0 * rng.normal(size=n), 7.0 * rng.normal(size=n), tied,
                  6.0 * rng.normal(size=n).astype(np.float32).astype(np.float64)])
    _, P, _ = FR._prepare(x, F, p_lim=FR._P_VJP_WIDE * F.fast.rows.p_max)
    wide = P > F.fast.rows.p_max
    assert wide.sum() >= 3
    c = rng.normal(size=x.shape)
    v, ok = rows_dense_vjp(x, c, F, log=log)
    assert ok[wide].all()
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    for r in range(x.shape[0]):
        ref = f(x[r], c[r], fam, method="quadrature")
        assert np.all(np.abs(v[r] - ref) <= 1e-11 * np.abs(ref).max()), r
        assert abs(v[r].sum()) <= 1e-12 * np.abs(v[r]).sum()


@pytest.mark.slow
@pytest.mark.parametrize("fam, log", [("normal", False), ("logistic", False), ("logistic", True)])
def test_wide_rows_probs_vjp_n1000_vs_quadrature(fam, log):
    """The bench's s = 5 rows at n = 1000 (448-704 bins for the normal): the rows the
    row-batched engine serves, against the quadrature."""
    from derive.bench import cotangent, scores
    x = scores("s=5", (256, 1000))[:6]
    c = cotangent("s=5", (256, 1000), "dense")[:6]
    v, ok = rows_dense_vjp(x, c, get_family(fam), log=log)
    assert ok.sum() >= 5
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    for r in np.flatnonzero(ok):
        ref = f(x[r], c[r], fam, method="quadrature")
        assert np.all(np.abs(v[r] - ref) <= 1e-11 * np.abs(ref).max()), r


@pytest.mark.parametrize("fam, log", [("normal", True), ("logistic", True),
                                      pytest.param("normal", False, marks=pytest.mark.slow),
                                      pytest.param("logistic", False, marks=pytest.mark.slow)])
def test_t2_windows_vs_quadrature(monkeypatch, fam, log):
    """The T2 rule and Gamma's products on the columns where some node's integrand can
    matter (numeric._fast_rows._t2_windows): dense cotangents, and cotangents with their
    weight on the lowest entries (weights c / p of the log VJP move T2's mass far to
    the left), s = 1, 2, clusters with ties; the windows were narrowed on some rows
    and every entry is within 1e-11 of the row's largest against the quadrature."""
    import numeric._fast_rows as FR
    seen = []
    orig = FR._t2_windows

    def spy(pl, LF, labs, wins):
        out = orig(pl, LF, labs, wins)
        full = {int(r): (a, b) for a, b, sel in wins for r in sel}
        seen.extend(full[int(r)] != (a, b) for a, b, sel in out for r in sel)
        return out

    monkeypatch.setattr(FR, "_t2_windows", spy)
    rng = np.random.default_rng(31)
    n = 300
    tied = np.r_[np.zeros(n // 3), -2.0 + 1e-3 * rng.normal(size=n // 3), 1.5 * rng.normal(size=n - 2 * (n // 3))]
    tied[::5] = tied[0]
    x = np.stack([rng.normal(size=n), 2.0 * rng.normal(size=n), tied, 2.0 * rng.normal(size=n)])
    c = rng.normal(size=x.shape)
    low = np.argsort(x[3])[:3]
    c[3] = 1e-3 * c[3]
    c[3, low] = [5.0, -3.0, 2.0]
    v, ok = rows_dense_vjp(x, c, get_family(fam), log=log)
    assert ok.all() and any(seen)
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    for r in range(x.shape[0]):
        ref = f(x[r], c[r], fam, method="quadrature")
        assert np.all(np.abs(v[r] - ref) <= 1e-11 * np.abs(ref).max()), r
