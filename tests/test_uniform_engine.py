"""numeric._uniform: exact Gauss rules for uniform noise.

References are independent of the engine: exact rational arithmetic (uniform
probabilities and Jacobian entries are integrals of piecewise polynomials; the
scores are dyadic, so the float inputs are those rationals exactly), the 30-digit
oracle, and the adaptive quadrature (itself oracle-tested) for long rows.
"""

import math
from fractions import Fraction as Fr

import numpy as np
import pytest

import numeric
from derive import oracle
from numeric._quadrature import quadrature_log_probs
from numeric._uniform import log_probs_rows, probs_vjp_rows
from numeric.families import get_family


def _poly_mul(a, b):
    out = [Fr(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def _integral(mu, skip, upper):
    """Exact ``int_T^upper prod_(j not in skip) clip(x - mu_j, 0, 1) dx`` (x from the
    top score T), split at every breakpoint ``mu_j + 1``."""
    T = max(mu)
    cuts = sorted({T, upper} | {m + 1 for m in mu if T < m + 1 < upper})
    tot = Fr(0)
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        mid = (a + b) / 2
        poly = [Fr(1)]
        for j, m in enumerate(mu):
            if j in skip or mid - m >= 1:
                continue
            poly = _poly_mul(poly, [-m, Fr(1)])          # (x - m_j)
        tot += sum(c * (b ** (k + 1) - a ** (k + 1)) / (k + 1) for k, c in enumerate(poly))
    return tot


def _exact_probs(mu):
    mu = [Fr(v) for v in mu]
    T = max(mu)
    return [_integral(mu, {i}, m + 1) if m + 1 > T else Fr(0) for i, m in enumerate(mu)]


def _exact_jacobian(mu):
    """``K_kj = int h_k h_j F`` (k != j) exactly: the integrand is the product without
    factors k and j, on x < min(mu_k, mu_j) + 1."""
    mu = [Fr(v) for v in mu]
    T = max(mu)
    n = len(mu)
    K = [[Fr(0)] * n for _ in range(n)]
    for k in range(n):
        for j in range(k + 1, n):
            up = min(mu[k], mu[j]) + 1
            if up > T:
                K[k][j] = K[j][k] = _integral(mu, {k, j}, up)
    return K


def _check_log_p(lp, p_exact):
    for got, p in zip(lp, p_exact):
        if p == 0:
            assert got == -np.inf
            continue
        ref = math.log(p.numerator) - math.log(p.denominator) if p < Fr(1, 10**300) else math.log(float(p))
        assert abs(got - ref) <= 1e-13 * max(1.0, abs(ref)), (got, ref)


DYADIC = [
    [0, -0.5, -0.25, -2.0],
    [0, 0, -0.5, -0.5, -0.75, -1.0, -1.5],                   # ties, one exactly 1 below
    [1.0, 0.9375, 0.875, 0.5, 0.0625, 0.125, -3.0, 0.96875],
    [0, -2 ** -40, -0.5, -1 + 2 ** -40],                      # near-ties, a breakpoint near s = 0
    [0, -0.999755859375] * 3,                                 # ties just above the cut
]


@pytest.mark.parametrize("mu", DYADIC)
def test_probs_exact_rationals(mu):
    lp, ok = log_probs_rows(np.array([mu], dtype=float))
    assert ok.all()
    _check_log_p(lp[0], _exact_probs(mu))


def test_issue_18_cluster_exact():
    # 9999 tied scores 0.01 below the top: p_top = d + (1 - d^10000) / 10000 for the
    # float d = 0.01 (the rest of the row shares 1 - p_top)
    x = np.r_[np.zeros(9999), 0.01]
    d = Fr(0.01)
    p_top = d + (1 - d ** 10000) / 10000
    p = numeric.probs(x, "uniform")
    assert abs(p[-1] / float(p_top) - 1) <= 1e-13
    assert abs(p[0] / float((1 - p_top) / 9999) - 1) <= 1e-13


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("mu", DYADIC[:3])
def test_vjp_exact_rationals(mu, log):
    rng = np.random.default_rng(len(mu))
    n = len(mu)
    K = _exact_jacobian(mu)
    P = _exact_probs(mu)
    for c in (np.eye(n)[1], np.round(rng.normal(size=n) * 64) / 64):
        v, ok = probs_vjp_rows(np.array([mu], dtype=float), c[None], log=log)
        assert ok.all()
        g = [Fr(float(ci)) / P[i] if (log and P[i] > 0) else (Fr(float(ci)) if not log else Fr(0))
             for i, ci in enumerate(c)]
        for k in range(n):
            ref = sum((g[k] - g[j]) * K[k][j] for j in range(n) if j != k and P[k] > 0)
            terms = sum(abs(g[k] - g[j]) * K[k][j] for j in range(n) if j != k and P[k] > 0)
            assert abs(v[0, k] - float(ref)) <= 1e-12 * float(terms) + 1e-300, (k, v[0, k], float(ref))


@pytest.mark.parametrize("s", [1.0, 2.0, 5.0, 0.3])
def test_random_rows_vs_oracle(s):
    rng = np.random.default_rng(int(10 * s))
    x = s * rng.normal(size=(2, 8))
    lp = numeric.log_probs(x, "uniform")
    for r in range(2):
        ref = np.array([float(v) for v in oracle.log_probs(x[r].tolist(), "uniform", dps=30)])
        fin = np.isfinite(ref)
        assert (np.isfinite(lp[r]) == fin).all()
        err = np.abs(lp[r][fin] - ref[fin])
        assert (err <= 1e-13 * np.maximum(1.0, np.abs(ref[fin]))).all(), err


@pytest.mark.parametrize("kind", ["normal", "cluster", "deep"])
def test_long_rows_vs_quadrature(kind):
    rng = np.random.default_rng(3)
    fam = get_family("uniform")
    if kind == "normal":
        x = rng.normal(size=2000)
    elif kind == "cluster":                     # M > 64: the region engine
        x = np.r_[1e-3 * rng.normal(size=80), rng.normal(size=200) - 0.7]
        x[:20] = x[0]
    else:                                       # deep ties: probabilities ~e^-15 and below
        x = np.r_[0.0, np.full(100, -0.999), -0.9 - 0.05 * rng.random(size=30)]
    lp, ok = log_probs_rows(x[None])
    assert ok.all()
    ref = quadrature_log_probs(x, fam)
    fin = np.isfinite(ref)
    assert (np.isfinite(lp[0]) == fin).all()
    err = np.abs(lp[0][fin] - ref[fin])
    # the quadrature's own guarantee is 1e-12 |log p| (README): compare at that level
    assert (err <= 1e-12 * np.maximum(1.0, np.abs(ref[fin]))).all(), err.max()
    assert abs(np.exp(lp[0][fin]).sum() - 1) <= 1e-14


def test_public_paths_float32_and_batch_independence():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 12))
    x[3, :6] = x[3, 0]
    x[7] *= 0.02
    c = rng.normal(size=x.shape)
    for fn, args in ((numeric.log_probs, ()), (numeric.probs_vjp, (c,)), (numeric.log_probs_vjp, (c,))):
        full = fn(x, *args, family="uniform")
        q = fn(x, *args, family="uniform", method="quadrature")
        assert np.allclose(full, q, rtol=1e-11, atol=1e-12)
        for r in (0, 3, 7, 39):
            one = fn(x[r:r + 1], *(a[r:r + 1] for a in args), family="uniform")
            assert np.array_equal(one[0], full[r])
    x32 = x.astype(np.float32)
    p = numeric.probs(x32, "uniform", scale=2.0)
    assert p.dtype == np.float32
    ref = numeric.probs(x32.astype(np.float64) / 2.0, "uniform", method="quadrature")
    assert np.allclose(p, ref, rtol=1e-6, atol=1e-7)


def _wide_rows(rng):
    """Rows with more than 256 distinct scores within 1 of the top (the region engine):
    clusters with exact ties (a tied top), s N(0, 1) rows scaled into the support width,
    an even spread over it, and a cluster just under 1 below a tied top (the end region,
    p down to e^-1000 and below)."""
    c = np.r_[1e-3 * rng.normal(size=150), 1e-3 * rng.normal(size=100) - 0.5, 3e-3 * rng.normal(size=60) - 0.2]
    c[rng.integers(0, c.size, 60)] = c[rng.integers(0, c.size, 60)]
    c[np.argsort(c)[-2]] = c.max()
    yield "clusters+ties", c
    for s in (1.0, 2.0, 5.0):
        yield f"s={s}", 0.02 * s * rng.normal(size=300)
    yield "spread", np.linspace(0, -0.9, 400)
    deep = np.r_[0.0, 0.0, -4e-3 * rng.random(size=160), -0.9997 - 1e-4 * rng.random(size=140)]
    yield "deep", deep


def test_wide_rows_vs_quadrature():
    fam = get_family("uniform")
    for name, x in _wide_rows(np.random.default_rng(21)):
        lp, ok = log_probs_rows(x[None])
        assert ok.all(), name
        ref = quadrature_log_probs(x, fam)
        fin = np.isfinite(ref)
        assert np.array_equal(np.isfinite(lp[0]), fin), name
        err = np.abs(lp[0][fin] - ref[fin])
        assert (err <= 1e-12 * np.maximum(1.0, np.abs(ref[fin]))).all(), (name, err.max())
        assert abs(np.exp(lp[0][fin]).sum() - 1) <= 1e-14, name


def _bisected_panels_log_probs(x):
    """log p of one row by the exact engine's bisected 32-point panels (the path of
    rows with more than 64 active scores that the region engine declines)."""
    from numeric._uniform import _blocks, _log_probs_block, _Rows
    y = (x - x.max())[None]
    out = np.full(x.size + 1, -np.inf)
    ok = np.zeros(1, dtype=bool)
    for rows, gd, gw, cols, gid, N, bisect in _blocks(y, False):
        lp, ok = _log_probs_block(_Rows(gd, gw, N, bisect))
        out[cols[0]] = np.take_along_axis(lp, gid, axis=1)[0]
    return out[None, :x.size], ok


def test_wide_engine_vs_exact_engine():
    # rows with 64 < M active scores and <= 256 distinct values, which the exact
    # engine's bisected panels also serve: the two algorithms (Gauss rules on every
    # interval / expansions on regions) agree to a few ulps of log p
    from numeric._uniform import _wide_row_log_probs
    rng = np.random.default_rng(22)
    rows = [np.r_[1e-3 * rng.normal(size=150), 1e-3 * rng.normal(size=90) - 0.5],
            np.r_[0.0, 0.0, -rng.random(size=200) * 0.9],
            0.05 * rng.normal(size=200).astype(np.float32).astype(float)]
    for x in rows:
        ref, ok = _bisected_panels_log_probs(x)
        got, okw = _wide_row_log_probs(x)
        assert ok.all() and okw
        fin = np.isfinite(ref[0])
        assert np.array_equal(np.isfinite(got), fin)
        rel = np.abs(got[fin] - ref[0][fin]) / np.maximum(1.0, np.abs(ref[0][fin]))
        assert rel.max() <= 2e-14, rel.max()
        small = fin & (ref[0] > -30.0)                   # relative error of p itself
        assert np.abs(np.expm1(got[small] - ref[0][small])).max() <= 1e-13


@pytest.mark.parametrize("log", [False, True])
def test_vjp_high_degree_rows_vs_quadrature(log):
    # M > 64 active entries: the region engine; dense and one-hot cotangents
    rng = np.random.default_rng(7)
    x = np.r_[0.0, np.full(100, -0.999), -0.9 - 0.05 * rng.random(size=30)]
    fn = numeric.log_probs_vjp if log else numeric.probs_vjp
    for c in (rng.normal(size=x.size), np.eye(x.size)[0], np.eye(x.size)[120]):
        v, ok = probs_vjp_rows(x[None], c[None], log=log)
        assert ok.all()
        ref = fn(x, c, "uniform", method="quadrature")
        assert np.max(np.abs(v[0] - ref)) <= 1e-12 * np.max(np.abs(ref))
        assert abs(v[0].sum()) <= 1e-13 * np.abs(v[0]).sum()


@pytest.mark.slow
def test_random_dyadic_rows_exact():
    rng = np.random.default_rng(11)
    for _ in range(40):
        n = int(rng.integers(3, 9))
        mu = (np.round(rng.normal(size=n) * 32) / 32 * float(rng.choice([0.25, 1.0]))).tolist()
        if rng.random() < 0.3:
            mu[1] = mu[0]
        lp, ok = log_probs_rows(np.array([mu]))
        assert ok.all()
        _check_log_p(lp[0], _exact_probs(mu))


@pytest.mark.slow
def test_long_row_1e5_vs_quadrature():
    rng = np.random.default_rng(12)
    x = rng.normal(size=100_000)
    lp = numeric.log_probs(x, "uniform")
    ref = quadrature_log_probs(x, get_family("uniform"))
    fin = np.isfinite(ref)
    assert np.array_equal(np.isfinite(lp), fin)
    assert np.max(np.abs(lp[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))) <= 1e-13


@pytest.mark.parametrize("fam", ["uniform", "normal"])
@pytest.mark.parametrize("log", [False, True])
def test_quadrature_vjp_component_chunks(monkeypatch, fam, log):
    """quadrature_vjp with its tables cut into component chunks and node blocks (the path
    of long rows) gives the one-table values: each component is certified on its own."""
    from numeric import _vjp
    rng = np.random.default_rng(7)
    y = 0.5 * rng.normal(size=12)
    y[3] = y[5]
    g = rng.normal(size=12)
    f = get_family(fam)
    ref, _ = _vjp.quadrature_vjp(y, g, f, log=log)
    monkeypatch.setattr(_vjp, "_VJP_ELEMS", 200)
    got, _ = _vjp.quadrature_vjp(y, g, f, log=log)
    scale = np.abs(ref).max()
    assert np.max(np.abs(got - ref)) <= 1e-12 * scale


def _check_wide_vjp(log, names):
    from numeric._vjp import quadrature_vjp
    fam = get_family("uniform")
    rng = np.random.default_rng(23)
    for name, x in _wide_rows(np.random.default_rng(21)):
        if name not in names:
            continue
        for c in (rng.normal(size=x.size), np.eye(x.size)[int(rng.integers(x.size))]):
            v, ok = probs_vjp_rows(x[None], c[None], log=log)
            assert ok.all(), name
            ref, _ = quadrature_vjp(x, c, fam, log=log)
            assert np.max(np.abs(v[0] - ref)) <= 1e-11 * np.max(np.abs(ref)), name
            assert abs(v[0].sum()) <= 1e-12 * np.abs(v[0]).sum(), name


@pytest.mark.parametrize("log", [False, True])
def test_wide_vjp_vs_quadrature(log):
    _check_wide_vjp(log, ("clusters+ties",))


@pytest.mark.slow
@pytest.mark.parametrize("log", [False, True])
def test_wide_vjp_vs_quadrature_all_kinds(log):
    _check_wide_vjp(log, ("s=1.0", "s=2.0", "s=5.0", "spread", "deep"))


def test_wide_rows_public_float32():
    rng = np.random.default_rng(24)
    x = (np.r_[1e-3 * rng.normal(size=300), 1e-3 * rng.normal(size=100) - 0.6]).astype(np.float32)
    x[:3] = x.max()
    p = numeric.probs(x, "uniform", scale=0.5)
    assert p.dtype == np.float32
    ref = np.exp(quadrature_log_probs(x.astype(np.float64) / 0.5, get_family("uniform")))
    assert np.allclose(p, ref, rtol=1e-6, atol=1e-30)


def test_rows_the_region_engine_declines_take_the_bisected_panels():
    # a near-tie at the top (d_1 = 1e-9) and mass up to s -> 0: the region engine would
    # need regions below 2^-24 of s = 0 and declines; the bisected exact panels serve it
    from numeric._uniform import _wide_row_log_probs
    from numeric._vjp import quadrature_vjp
    rng = np.random.default_rng(25)
    x = np.r_[0.0, -1e-9, -0.99995 - 1e-5 * rng.random(100)]
    assert not _wide_row_log_probs(x)[1]
    fam = get_family("uniform")
    lp, ok = log_probs_rows(x[None])
    assert ok.all()
    ref = quadrature_log_probs(x, fam)
    fin = np.isfinite(ref)
    assert np.max(np.abs(lp[0][fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))) <= 1e-12
    c = rng.normal(size=x.size)
    for log in (False, True):
        v, okv = probs_vjp_rows(x[None], c[None], log=log)
        assert okv.all()
        r, _ = quadrature_vjp(x, c, fam, log=log)
        assert np.max(np.abs(v[0] - r)) <= 1e-11 * np.abs(r).max()


@pytest.mark.slow
def test_wide_long_cluster_rows_vs_quadrature():
    # the benchmark's clustered rows (four tight clusters, a quarter exact copies, a
    # tied top) at n = 2000 and 4000: the region engine through the public API against
    # the adaptive quadrature (~3 s per row at n = 2000, ~10 s at 4000)
    from derive.bench import scores
    fam = get_family("uniform")
    for n, rows in ((2000, 2), (4000, 1)):
        for r, x in enumerate(scores("clusters+ties", (rows, n))):
            lp = numeric.log_probs(x, "uniform")
            ref = quadrature_log_probs(x, fam)
            fin = np.isfinite(ref)
            assert np.array_equal(np.isfinite(lp), fin), (n, r)
            rel = np.abs(lp[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))
            assert rel.max() <= 1e-12, (n, r, rel.max())


def _two_tied_groups(w0, m, delta):
    """w0 scores tied at 0 and m tied at -delta (0 < delta < 1), and their exact log p:
    with sigma = 1 - t, p_deep = int_0^(1 - delta) sigma^w0 (sigma + delta)^(m - 1) dsigma
    = sum_k C(m-1, k) delta^(m-1-k) (1 - delta)^(w0+k+1) / (w0+k+1), one-signed terms
    at 50 digits; p_top = (1 - m p_deep) / w0."""
    import mpmath as mp
    x = np.r_[np.zeros(w0), np.full(m, -delta)]
    with mp.workdps(50):
        d = -mp.mpf(float(x[-1]))
        e = 1 - d
        pd = mp.fsum(mp.binomial(m - 1, k) * d ** (m - 1 - k) * e ** (w0 + k + 1) / (w0 + k + 1) for k in range(m))
        ref = np.array([float(mp.log((1 - m * pd) / w0))] * w0 + [float(mp.log(pd))] * m)
    return x, ref


@pytest.mark.parametrize("w0,m,delta", [(70, 70, 0.999999), (2, 100, 0.9999), (3, 120, 0.5)])
def test_wide_two_tied_groups_exact(w0, m, delta):
    # the region engine (M > 64; the deep group's mass lies in the end region when delta
    # is close to 1)
    x, ref = _two_tied_groups(w0, m, delta)
    lp = numeric.log_probs(x, "uniform")
    err = np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-13, err.max()


@pytest.mark.parametrize("w0,m,delta", [(70, 70, 0.999999), (70, 70, 1 - 1e-3), (70, 70, 1 - 1e-9),
                                        (3, 3, 0.999999), (300, 300, 0.999999), (3, 300, 0.999999),
                                        (300, 3, 0.999999), (70, 70, 0.5)])
def test_quadrature_two_tied_groups_exact(w0, m, delta):
    # the adaptive quadrature (the reference of the other tests) on the same rows: the
    # deep entries' mass lies in [0, 1 - delta], between the jumps at 0 and 1 - delta,
    # ~1 away from the kink 1 where the heavy ties centre its map; an edge placed an ulp
    # of 1 off 1 - delta there moved log p_deep by ~4e-9 unseen by the error estimate
    x, ref = _two_tied_groups(w0, m, delta)
    lp = numeric.log_probs(x, "uniform", method="quadrature")
    err = np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-13, err.max()


@pytest.mark.parametrize("fam", ["normal", "laplace", "exponential"])
def test_quadrature_two_tied_groups_other_families(fam):
    # the same tied structure for families with unbounded support, against the oracle
    x = np.r_[np.zeros(70), np.full(70, -0.999999)]
    ref = np.array([float(v) for v in oracle.log_probs(x.tolist(), fam, dps=30)])
    lp = numeric.log_probs(x, fam, method="quadrature")
    err = np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-13, err.max()


def _two_tied_groups_vjp(w0, m, delta, g, log):
    """Exact J^T g on the rows of :func:`_two_tied_groups`: (J^T g)_k = sum_j (g_k - g_j)
    K_kj, K_kj = int h_k h_j F dx (k != j; log p: g_j -> c_j / p_j).  On t in (0, 1) (the
    max's position) F = t^w0 (t + delta)^m below 1 - delta and t^w0 above, h_top = 1/t,
    h_deep = 1/(t + delta) below 1 - delta and 0 above (the uniform log cdf is constant
    past 1): int_0^(1 - delta) t^a (t + delta)^b dt = sum_k C(b, k) delta^(b-k)
    (1 - delta)^(a+k+1) / (a+k+1), one-signed terms summed by mpmath at 40 digits
    (p_deep ~ 1e-2700 at 300 + 300, delta = 1 - 1e-9, so all of it in mpmath)."""
    import mpmath as mp
    with mp.workdps(40):
        d = mp.mpf(delta)
        e = 1 - d

        def lo(a, b):
            return mp.fsum(mp.binomial(b, k) * d ** (b - k) * e ** (a + k + 1) / (a + k + 1) for k in range(b + 1))

        ktt = lo(w0 - 2, m) + (1 - e ** (w0 - 1)) / (w0 - 1)
        ktd = lo(w0 - 1, m - 1)
        kdd = lo(w0, m - 2)
        pd = lo(w0, m - 1)
        pt = (1 - m * pd) / w0
        gm = [mp.mpf(float(v)) / ((pt if k < w0 else pd) if log else 1) for k, v in enumerate(g)]
        gt, gd = mp.fsum(gm[:w0]), mp.fsum(gm[w0:])
        return np.array([float((w0 * v - gt) * ktt + (m * v - gd) * ktd) for v in gm[:w0]]
                        + [float((w0 * v - gt) * ktd + (m * v - gd) * kdd) for v in gm[w0:]])


@pytest.mark.parametrize("w0,m,delta", [(3, 300, 1 - 1e-6), (70, 70, 1 - 1e-3), (70, 70, 1 - 1e-6),
                                        (300, 300, 1 - 1e-9), (300, 3, 1 - 1e-6), (3, 70, 1 - 1e-9),
                                        (3, 3, 1 - 1e-9)])
def test_quadrature_vjp_two_tied_groups(w0, m, delta):
    # the quadrature VJPs on the rows of test_quadrature_two_tied_groups_exact: the probs
    # VJP integrates without the probabilities, on the map they check (the map centred
    # at the heavy ties alone puts 3 tied at 0 + 300 at -(1 - 1e-6) 3.8e-10 off and
    # raises on 3 + 70 at -(1 - 1e-9)); within 1e-10 of the row's largest entry vs the
    # exact kernels, cotangents constant per group and random
    # (method "auto" too: the engines' log VJP on 70 + 70 at -(1 - 1e-9) cancelled to noise,
    # relative error 1, without raising; such rows are now declined by their row sum)
    x = np.r_[np.zeros(w0), np.full(m, -delta)]
    rng = np.random.default_rng(w0 + m)
    for g in (np.r_[np.full(w0, 0.3), np.full(m, -1.1)], rng.standard_normal(x.size)):
        for log, vjp in ((False, numeric.probs_vjp), (True, numeric.log_probs_vjp)):
            ref = _two_tied_groups_vjp(w0, m, delta, g, log)
            for method in ("quadrature", "auto"):
                out = vjp(x, g, "uniform", method=method)
                assert np.abs(out - ref).max() <= 1e-10 * np.abs(ref).max(), (log, method, np.abs(out - ref).max())
