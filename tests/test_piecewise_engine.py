"""numeric._piecewise: the O(n) laplace / exponential engine.

References are independent of the engine: ``derive.oracle.log_probs`` (30
digits) for ``log p``; for the VJPs, mpmath integrals of the Jacobian written
out here from its definition (``dp_i/dmu_k = -int phi_i phi_k prod_{j != i,k}
Phi_j`` for ``k != i``, columns summing to 0), split at every score; for long
rows the adaptive quadrature ``numeric._quadrature`` (itself tested against
the oracle).
"""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from derive import oracle
from numeric._piecewise import log_probs_rows, probs_vjp_rows
from numeric._quadrature import quadrature_log_probs
from numeric.families import FAMILY_NAMES, get_family

from _mp_families import mp_family

FAMS = ("laplace", "exponential")

# tests that call the engine's internals (_Row, _NearLaplace, ...) directly run
# them outside the entry points' np.errstate: their intended inf / nan steps warn
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _check_log_probs(lp, ref):
    """README guarantees: p to 1e-13 relative (or 2 steps of log p) for p >= 1e-300,
    log p to 1e-12 max(1, |log p|)."""
    ref = np.asarray(ref, dtype=float)
    err = np.abs(lp - ref)
    assert (err <= 1e-12 * np.maximum(1.0, np.abs(ref))).all(), (err, ref)
    big = ref >= math.log(1e-300)
    step = np.spacing(np.abs(ref[big]))
    assert (err[big] <= np.maximum(1e-13, 2 * step)).all(), (err[big], ref[big])


@pytest.mark.parametrize("fam", FAMS)
@pytest.mark.parametrize("mu", [
    [0.3, -1.2, 2.0, 0.5, -4.0, 2.0, -60.0, 1.7],          # ties, spread 62
    [0.0, -800.0, -801.5, -3.0],                           # p far below 1e-300
])
def test_log_probs_vs_oracle(fam, mu):
    lp, ok = log_probs_rows(np.array([mu]), get_family(fam))
    assert ok.all()
    ref = [float(v) for v in oracle.log_probs(mu, fam, dps=30)]
    _check_log_probs(lp[0], ref)


def _mp_jacobian(mu, fam, dps=25):
    """``d p_i / d mu_k`` by mpmath quadrature of ``-phi_i phi_k prod Phi_j`` (k != i)."""
    cdf, pdf = mp_family(fam)
    n = len(mu)
    with mp.workdps(dps):
        m = [mp.mpf(v) for v in mu]
        lo = min(m) - 60 if fam == "laplace" else max(m)
        pts = sorted({v for v in m if v >= lo} | {lo}) + [mp.inf]
        Jm = [[mp.mpf(0)] * n for _ in range(n)]
        for i in range(n):
            for k in range(n):
                if k == i:
                    continue

                def f(x, i=i, k=k):
                    out = -pdf(x - m[i]) * pdf(x - m[k])
                    for j in range(n):
                        if j not in (i, k):
                            out *= cdf(x - m[j])
                    return out
                Jm[i][k] = mp.quad(f, pts)
        for k in range(n):
            Jm[k][k] = -mp.fsum(Jm[i][k] for i in range(n) if i != k)
        p = [float(v) for v in oracle.probs(mu, fam, dps=dps)]
    return np.array([[float(v) for v in r] for r in Jm]), np.array(p)


@pytest.mark.parametrize("fam", FAMS)
def test_vjp_vs_mpmath_jacobian(fam):
    mu = [0.4, -0.9, 1.3, 1.1]
    J, p = _mp_jacobian(mu, fam)
    f = get_family(fam)
    rng = np.random.default_rng(0)
    for g in (rng.normal(size=4), np.array([0.0, 1.0, 0.0, 0.0])):     # dense and one-hot
        v, ok = probs_vjp_rows(np.array([mu]), g[None], f)
        ref = J.T @ g
        assert ok.all() and np.max(np.abs(v[0] - ref)) <= 1e-10 * np.max(np.abs(ref))
        vl, ok = probs_vjp_rows(np.array([mu]), g[None], f, log=True)
        refl = J.T @ (g / p)
        assert ok.all() and np.max(np.abs(vl[0] - refl)) <= 1e-10 * np.max(np.abs(refl))


@pytest.mark.parametrize("fam", FAMS)
@pytest.mark.parametrize("kind", ["normal", "dense", "ties", "top_above_bulk"])
def test_long_rows_vs_quadrature(fam, kind):
    rng = np.random.default_rng(1)
    n = 1500
    y = {"normal": 3.0 * rng.normal(size=n),
         "dense": 1e-3 * rng.uniform(size=n),
         "ties": np.round(rng.normal(size=n) * 2) / 2,
         "top_above_bulk": np.concatenate([[25.0, 24.0], rng.normal(size=n - 2)])}[kind]
    lp, ok = log_probs_rows(y[None], get_family(fam))
    assert ok.all()
    ref = quadrature_log_probs(y, get_family(fam))
    assert np.max(np.abs(lp[0] - ref) / np.maximum(1.0, np.abs(ref))) <= 2e-15
    assert abs(np.exp(lp[0]).sum() - 1.0) <= 1e-14


@pytest.mark.parametrize("fam", FAMS)
def test_rows_independent_of_batch_mates(fam):
    rng = np.random.default_rng(3)
    f = get_family(fam)
    for n in (3, 300):
        Y = rng.normal(size=(5, n)) * np.array([0.01, 1.0, 3.0, 30.0, 0.1])[:, None]
        Y[4] = np.round(Y[4] * 3) / 3
        G = rng.normal(size=Y.shape)
        lp, _ = log_probs_rows(Y, f)
        v, _ = probs_vjp_rows(Y, G, f)
        vl, _ = probs_vjp_rows(Y, G, f, log=True)
        for i in range(5):
            assert np.array_equal(log_probs_rows(Y[i:i + 1], f)[0][0], lp[i])
            assert np.array_equal(probs_vjp_rows(Y[i:i + 1], G[i:i + 1], f)[0][0], v[i])
            assert np.array_equal(probs_vjp_rows(Y[i:i + 1], G[i:i + 1], f, log=True)[0][0], vl[i])


def test_declines_what_it_cannot_do():
    # laplace cut more than 600 below the top: declined, not guessed
    y = np.array([[1000.0, 0.0, 0.5, -0.3]])
    _, ok = log_probs_rows(y, get_family("laplace"))
    assert not ok.any()
    with pytest.raises(NotImplementedError):
        log_probs_rows(y, get_family("normal"))
    assert {k for k in FAMILY_NAMES if get_family(k).piecewise} == {"laplace", "exponential", "uniform"}


@pytest.mark.parametrize("fam", FAMS)
def test_vjp_entries_sum_to_zero(fam):
    rng = np.random.default_rng(4)
    y = 2.0 * rng.normal(size=(3, 2000))
    g = rng.normal(size=y.shape)
    for log in (False, True):
        v, ok = probs_vjp_rows(y, g, get_family(fam), log=log)
        assert ok.all()
        assert (np.abs(v.sum(axis=1)) <= 1e-13 * np.abs(v).sum(axis=1)).all()


@pytest.mark.slow
@pytest.mark.parametrize("fam", FAMS)
def test_log_probs_vs_oracle_n200(fam):
    rng = np.random.default_rng(7)
    mu = list(np.round(4.0 * rng.normal(size=200), 3))
    lp, ok = log_probs_rows(np.array([mu]), get_family(fam))
    assert ok.all()
    _check_log_probs(lp[0], [float(v) for v in oracle.log_probs(mu, fam, dps=30)])


@pytest.mark.parametrize("fam", FAMS)
def test_table_and_loop_paths_agree_bitwise(fam, monkeypatch):
    # small blocks use tables of powers, large ones loops over the term index;
    # both must do the same arithmetic (a row's bits cannot depend on its block)
    import numeric._piecewise as pw
    rng = np.random.default_rng(5)
    Y = rng.normal(size=(3, 400)) * np.array([0.1, 2.0, 20.0])[:, None]
    G = rng.normal(size=Y.shape)
    f = get_family(fam)
    a, v = log_probs_rows(Y, f)[0], probs_vjp_rows(Y, G, f, log=True)[0]
    monkeypatch.setattr(pw, "_TABLE", 0)
    monkeypatch.setattr(pw, "_NODE_TABLE", 0)
    assert np.array_equal(log_probs_rows(Y, f)[0], a)
    assert np.array_equal(probs_vjp_rows(Y, G, f, log=True)[0], v)


@pytest.mark.parametrize("fam", FAMS + ("uniform",))
def test_public_api_uses_the_engine(fam, monkeypatch):
    # numeric.log_probs / probs_vjp / log_probs_vjp with method "auto" route rows of
    # these families here; the results equal the engine's own (scale divides the scores)
    import numeric
    import numeric._piecewise as pw
    calls = []
    for name in ("log_probs_rows", "probs_vjp_rows"):
        fn = getattr(pw, name)
        monkeypatch.setattr(pw, name, lambda *a, _fn=fn, **k: calls.append(1) or _fn(*a, **k))
    rng = np.random.default_rng(8)
    x = 3.0 * rng.normal(size=(4, 40))
    g = rng.normal(size=x.shape)
    f = get_family(fam)
    lp = numeric.log_probs(x, fam, scale=2.0)
    v = numeric.probs_vjp(x, g, fam, scale=2.0)
    vl = numeric.log_probs_vjp(x, g, fam, scale=2.0)
    assert len(calls) >= 3
    y = (x - x.max(axis=1, keepdims=True)) / 2.0
    assert np.allclose(lp, log_probs_rows(y, f)[0], rtol=0, atol=1e-13)
    assert np.allclose(v, probs_vjp_rows(y, g, f)[0] / 2.0, rtol=0, atol=1e-15)
    assert np.allclose(vl, probs_vjp_rows(y, g, f, log=True)[0] / 2.0, rtol=0, atol=1e-13)
    # against the independent quadrature path, with a -inf entry and float32 input
    xq = x.copy()
    xq[1, 3] = -np.inf
    for a, b in ((numeric.log_probs(xq, fam), numeric.log_probs(xq, fam, method="quadrature")),
                 (numeric.log_probs_vjp(xq, g, fam), numeric.log_probs_vjp(xq, g, fam, method="quadrature"))):
        fin = np.isfinite(b)
        assert np.array_equal(fin, np.isfinite(a))
        assert np.max(np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))) <= 1e-13
    p32 = numeric.probs(x.astype(np.float32), fam)
    assert p32.dtype == np.float32 and np.allclose(p32.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("n", [3, 17, 32])
def test_exponential_exact_rule_matches_panels(n, monkeypatch):
    # exponential rows of n <= 32 use one ceil(n/2)-point Gauss rule, exact for their
    # polynomial integrands; the general panels (16-point, split by the drop test) and
    # the adaptive quadrature agree with it on random, tied and clustered rows
    import numeric._piecewise as pw
    rng = np.random.default_rng(n)
    f = get_family("exponential")
    y = np.concatenate([s * rng.normal(size=(2, n)) for s in (1.0, 2.0, 5.0)])
    y[0, : n // 2] = y[0, 0]
    y[1] = 1e-3 * y[1]
    g = rng.normal(size=y.shape)
    lp, ok = log_probs_rows(y, f)
    v, okv = probs_vjp_rows(y, g, f, log=True)
    assert ok.all() and okv.all()
    monkeypatch.setattr(pw, "_EXACT_N", 0)
    lp2, _ = log_probs_rows(y, f)
    v2, _ = probs_vjp_rows(y, g, f, log=True)
    assert np.max(np.abs(lp - lp2) / np.maximum(1.0, np.abs(lp2))) <= 2e-15
    assert np.max(np.abs(v - v2)) <= 1e-12 * np.max(np.abs(v2))
    for r in range(y.shape[0]):
        ref = quadrature_log_probs(y[r], f)
        assert np.max(np.abs(lp[r] - ref) / np.maximum(1.0, np.abs(ref))) <= 2e-15


def _above_top_rows():
    """Laplace rows whose cut lies above the top score (``sum_j e^(mu_j - top) / 2``
    large): a tight tied cluster plus scattered and deep scores, and a long normal row."""
    rng = np.random.default_rng(11)
    clus = np.concatenate([1e-3 * rng.normal(size=300), [0.0, 0.0], rng.normal(size=100) - 4.0,
                           [-9.0, -14.5, -20.0]])
    return [clus, 0.5 * rng.normal(size=1500)]


def test_laplace_cut_above_top_vs_quadrature():
    import numeric._piecewise as pw
    f = get_family("laplace")
    for y in _above_top_rows():
        y = y - y.max()
        assert pw._cut(y[None], True)[0][0] > 0.0            # the cut above the top is taken
        lp, ok = log_probs_rows(y[None], f)
        assert ok.all()
        ref = quadrature_log_probs(y, f)
        assert np.max(np.abs(lp[0] - ref) / np.maximum(1.0, np.abs(ref))) <= 2e-15
        # VJPs: dense, one-hot on the top and on the deepest entry, against the quadrature's
        from numeric._vjp import quadrature_vjp
        rng = np.random.default_rng(12)
        for g in (rng.normal(size=y.size), np.eye(y.size)[np.argmax(y)], np.eye(y.size)[np.argmin(y)]):
            for log in (False, True):
                v, ok = probs_vjp_rows(y[None], g[None], f, log=log)
                q, _ = quadrature_vjp(y, g, f, log=log)
                assert ok.all()
                # each entry to 1e-10 of its own size (one-hot: every entry's terms share a
                # sign) or of the row's largest (dense)
                tol = 1e-10 * (np.abs(q) if np.count_nonzero(g) == 1 else np.abs(q).max())
                assert (np.abs(v[0] - q) <= tol).all()


@pytest.mark.slow
def test_laplace_cut_above_top_vs_oracle():
    # 240 tied-ish scores make sum e^(mu - top) / 2 ~ 120: the cut above the top; deep
    # entries (down to -25) checked against the 30-digit oracle
    import numeric._piecewise as pw
    rng = np.random.default_rng(13)
    mu = np.concatenate([np.round(1e-3 * rng.normal(size=240), 6), [-2.0, -11.0, -25.0]])
    assert pw._cut((mu - mu.max())[None], True)[0][0] > 0.0
    lp, ok = log_probs_rows((mu - mu.max())[None], get_family("laplace"))
    assert ok.all()
    ref = np.array([float(v) for v in oracle.log_probs(list(mu), "laplace", dps=30)])
    _check_log_probs(lp[0], ref)


@pytest.mark.parametrize("mu", [[0.7, -0.4, 0.1], [2.0, 2.0, -1.5, 0.3, -6.0], [0.0, -30.0, -31.0]])
def test_laplace_short_rows_closed_tail_vs_oracle(mu):
    # below the lowest score F grows like e^(n x): that part is added in closed form
    import numeric._piecewise as pw
    y = np.array([mu]) - max(mu)
    assert (pw._NearLaplace(y).Vt > 0).all()
    lp, ok = log_probs_rows(y, get_family("laplace"))
    assert ok.all()
    _check_log_probs(lp[0], [float(v) for v in oracle.log_probs(mu, "laplace", dps=30)])


def test_top_k_matches_full_partition():
    # the sampled threshold must give exactly the k largest values, whatever the
    # row's order (sorted rows, the top entries off the sample's stride, ties)
    import numeric._piecewise as pw
    rng = np.random.default_rng(11)
    n = 40000
    rows = [rng.normal(size=n), np.sort(rng.normal(size=n)), np.round(rng.normal(size=n) * 2),
            np.where(np.arange(n) % 19 == 7, 50.0 + rng.normal(size=n), rng.normal(size=n))]
    Y = np.array(rows)
    for k in (3, 70, 200):
        got = np.sort(pw._top_k(Y, k), axis=1)
        ref = np.sort(np.partition(Y, n - k, axis=1)[:, n - k:], axis=1)
        assert np.array_equal(got, ref)


def test_laplace_long_rows_bitwise_with_full_partition(monkeypatch):
    # the laplace cut of long rows reads the top scores through _top_k: same bits
    # as selecting them from a partition of the whole row
    import numeric._piecewise as pw
    rng = np.random.default_rng(12)
    Y = np.array([5.0 * rng.normal(size=20000), np.sort(rng.normal(size=20000)),
                  np.round(rng.normal(size=20000) * 3) / 3])
    f = get_family("laplace")
    a = log_probs_rows(Y, f)
    monkeypatch.setattr(pw, "_top_k", lambda y, k: np.partition(y, y.shape[1] - k, axis=1)[:, y.shape[1] - k:])
    b = log_probs_rows(Y, f)
    assert a[1].all() and np.array_equal(a[0], b[0])


def test_ordered_sum_is_the_sequential_sum():
    # row bits must not depend on zero padding of the summed axis: the sums over
    # near scores / series terms are sequential (cumsum's last entry), whatever
    # the trailing shape (numpy sums an innermost axis pairwise)
    import numeric._piecewise as pw
    rng = np.random.default_rng(13)
    for shape, axis in [((3, 50, 7), 1), ((1, 200, 2), 1), ((2, 100, 1), 1), ((57, 1, 300), 0), ((40, 5), 0)]:
        a = rng.normal(size=shape) * np.exp(rng.uniform(-30, 30, size=shape))
        ref = np.take(np.cumsum(a, axis=axis), -1, axis=axis)
        assert np.array_equal(pw._ordered_sum(a, axis), ref)
        pad = np.concatenate([a, np.zeros_like(a)], axis=axis)
        assert np.array_equal(pw._ordered_sum(pad, axis), ref)


@pytest.mark.parametrize("fam", FAMS)
def test_moment_truncated_far_series_vs_quadrature(fam):
    # far scores take fewer series terms when G sits at small u (J_R / J_0 << 1,
    # _series_terms): s * N(0, 1) rows (s = 1, 2, 5), clusters with ties, a wide
    # spread and float32-rounded scores, against the adaptive quadrature
    import numeric._piecewise as pw
    rng = np.random.default_rng(11)
    n = 700
    c = 3.0 * rng.normal(size=3)
    clus = c[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n)
    clus[rng.integers(0, n, size=n // 4)] = clus[0]
    rows = [1.0 * rng.normal(size=n), 2.0 * rng.normal(size=n), 5.0 * rng.normal(size=n), clus,
            np.concatenate([[0.0, -0.3], -40.0 * rng.random(size=n - 2)]),
            (2.0 * rng.normal(size=n)).astype(np.float32).astype(np.float64)]
    f = get_family(fam)
    Y = np.array(rows)
    lp, ok = log_probs_rows(Y, f)
    assert ok.all()
    for y, l in zip(Y, lp):
        ref = quadrature_log_probs(y, f)
        assert np.max(np.abs(l - ref) / np.maximum(1.0, np.abs(ref))) <= 2e-15
        assert abs(np.exp(l).sum() - 1.0) <= 1e-14
    # the rows do take fewer terms than c^R <= 2^-57 alone would give
    ev = pw._Eval(Y[:3] - Y[:3].max(axis=1, keepdims=True), f)
    first = pw._series_terms(ev.row, ev.moments_of(ev.wg))
    assert (first[:, 1:] > np.arange(1, ev.row.rmax + 1)).any()


@pytest.mark.parametrize("fam", FAMS)
def test_moment_truncated_far_series_vjp_vs_quadrature(fam):
    # the VJP of log p divides by the (truncated) far series: both VJPs, one-hot and
    # dense cotangents, against the adaptive quadrature's
    from test_piecewise_speed import _check_vjp, _vjp_refs
    rng = np.random.default_rng(12)
    x = np.array([2.0 * rng.normal(size=300), 5.0 * rng.normal(size=300)])
    for c, log, ref in _vjp_refs(x, fam, rng):
        fn = numeric.log_probs_vjp if log else numeric.probs_vjp
        _check_vjp(fn(x, c, fam), ref)


def _mp_gauss(npts):
    """Gauss-Legendre nodes and weights on [-1, 1] to the working precision
    (numpy's float64 rule refined by Newton's method on P_n)."""
    xs, ws = [], []
    for x0 in np.polynomial.legendre.leggauss(npts)[0]:
        x = mp.mpf(x0)
        for _ in range(6):
            p, q = mp.legendre(npts, x), mp.legendre(npts - 1, x)
            dp = npts * (x * p - q) / (x * x - 1)
            x -= p / dp
        dp = npts * (x * mp.legendre(npts, x) - mp.legendre(npts - 1, x)) / (x * x - 1)
        xs.append(x)
        ws.append(2 / ((1 - x * x) * dp * dp))
    return xs, ws


def test_log_panel_rules_at_40_digits():
    # the laplace panels in t = log u (numeric._piecewise._Row.nodes): the model
    # integrands in exact arithmetic (40 digits) against their closed forms --
    # f(t) = e^(-q t) / (1 - e^t / 2), a simple pole log 2 past the kink t = 0 (and
    # at log 2 + 2 pi i k), times G's slope e^(-q t); relative errors of the rules
    with mp.workdps(40):
        def rel_err(npts, a, b, q):
            xs, ws = _mp_gauss(npts)
            a, b = mp.mpf(a), mp.mpf(b)
            f = lambda t: mp.exp(-q * t) / (1 - mp.exp(t) / 2)
            quad = sum(w * (b - a) / 2 * f((a + b) / 2 + (b - a) / 2 * x) for x, w in zip(xs, ws))
            exact = mp.quad(f, [a, (a + b) / 2, b])
            return float(abs(quad / exact - 1))
        L2 = math.log(2.0)
        # 16 points: the panel [r/4, r] (W = 2 d = 2 log 2) ...
        assert rel_err(16, -2 * L2, 0, 0) < 1e-18
        # ... with log G falling by 12 across it
        assert rel_err(16, -2 * L2, 0, 12 / (2 * L2)) < 1e-17
        # ... and the widest panels left of r/4 (W = 3, d = 3 log 2; the 2 pi i poles)
        assert rel_err(16, -2 * L2 - 3, -2 * L2, 0) < 1e-17
        assert rel_err(16, -2 * L2 - 3, -2 * L2, 4) < 1e-17
        # 8 points: W <= log(2) / 2 <= d / 2, log G falling by at most 3
        assert rel_err(8, -L2 / 2, 0, 0) < 2e-16
        assert rel_err(8, -L2 / 2, 0, 3 / (L2 / 2)) < 1e-15


def _laplace_kind_rows(rng, n, per_kind):
    """s N(0, 1) rows (s = 1, 2, 5), clusters with ties, a wide spread and
    float32-rounded scores: (6 per_kind, n)."""
    rows = []
    for _ in range(per_kind):
        for s in (1.0, 2.0, 5.0):
            rows.append(s * rng.normal(size=n))
        c = 3.0 * rng.normal(size=3)
        clus = c[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n)
        clus[rng.integers(0, n, size=max(1, n // 4))] = clus[0]
        rows.append(clus)
        rows.append(np.sort(-40.0 * rng.random(size=n)))
        rows.append((2.0 * rng.normal(size=n)).astype(np.float32).astype(np.float64))
    return np.array(rows)


def _check_laplace_vs_quadrature(Y, rng):
    from test_piecewise_speed import _check_vjp, _vjp_refs
    f = get_family("laplace")
    lp, ok = log_probs_rows(Y, f)
    assert ok.all()
    for y, l in zip(Y, lp):
        ref = quadrature_log_probs(y, f)
        _check_log_probs(l, ref)
        assert np.max(np.abs(l - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-14
    for c, log, ref in _vjp_refs(Y, "laplace", rng):
        v, ok = probs_vjp_rows(Y, c, f, log=log)
        assert ok.all()
        _check_vjp(v, ref)


def test_laplace_log_panels_vs_quadrature_n10():
    # the t = log u panels with 8-point rules on narrow panels, on a batch of
    # n = 10 rows (the short-row kernel) against the adaptive quadrature
    import numeric._piecewise as pw
    rng = np.random.default_rng(31)
    Y = _laplace_kind_rows(rng, 10, 2)
    row = pw._Row(Y, True)
    u, logw, ok, npp = row.nodes()
    E, _, _ = row.panels()
    # some rows do take 8-point panels: fewer live nodes than 16 per panel
    live_nodes = np.isfinite(logw).sum(axis=1)
    panels = (np.isfinite(E[:, 1:]) & (E[:, 1:] > E[:, :-1])).sum(axis=1)
    assert (live_nodes < 16 * panels).any()
    _check_laplace_vs_quadrature(Y, rng)


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 100, 1000])
def test_laplace_log_panels_vs_quadrature(n):
    rng = np.random.default_rng(40 + n)
    _check_laplace_vs_quadrature(_laplace_kind_rows(rng, n, 1 if n == 1000 else 2), rng)
