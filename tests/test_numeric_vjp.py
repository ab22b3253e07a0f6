"""Vector-Jacobian products against high-precision finite differences of an
independent mpmath evaluation of (eq:pi), and against the softmax Jacobian."""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from _mp_families import mp_family




def _mp_probs(mu, name):
    C, P = mp_family(name)
    lo, hi = min(mu) - 30, max(mu) + 30
    pts = sorted(set(list(mp.linspace(lo, hi, 61)) + list(mu)))
    if name in ("cauchy",):
        pts = [-mp.inf] + pts + [mp.inf]
    if name == "exponential":
        pts = [p for p in pts if p >= max(mu)] + [mp.inf]
    out = []
    for i in range(len(mu)):
        f = lambda x, i=i: P(x - mu[i]) * mp.fprod(C(x - mu[j]) for j in range(len(mu)) if j != i)  # noqa: E731
        out.append(mp.quad(f, pts))
    return out


def _fd_jacobian(mu, name, h=mp.mpf("1e-12")):
    """J[i][k] = dp_i/dmu_k by central differences at 40 digits (truncation ~h^2)."""
    n = len(mu)
    J = [[None] * n for _ in range(n)]
    for k in range(n):
        up = [m + (h if j == k else 0) for j, m in enumerate(mu)]
        dn = [m - (h if j == k else 0) for j, m in enumerate(mu)]
        pu, pd = _mp_probs(up, name), _mp_probs(dn, name)
        for i in range(n):
            J[i][k] = (pu[i] - pd[i]) / (2 * h)
    return J


def _derivative_jacobian(mu, name):
    """J[i][k] = -int phi(x - mu_i) phi(x - mu_k) prod_{j != i,k} Phi(x - mu_j) dx for i != k
    (differentiating (eq:pi) under the integral); the diagonal from sum_i p_i = 1."""
    C, P = mp_family(name)
    n = len(mu)
    lo, hi = min(mu) - 30, max(mu) + 30
    pts = sorted(set(list(mp.linspace(lo, hi, 31)) + list(mu)))
    if name == "cauchy":
        pts = [-mp.inf] + pts + [mp.inf]
    if name == "exponential":
        pts = [p for p in pts if p >= max(mu)] + [mp.inf]
    J = [[mp.mpf(0)] * n for _ in range(n)]
    for i in range(n):
        for k in range(n):
            if i != k:
                f = lambda x, i=i, k=k: P(x - mu[i]) * P(x - mu[k]) * mp.fprod(  # noqa: E731
                    C(x - mu[j]) for j in range(n) if j not in (i, k))
                J[i][k] = -mp.quad(f, pts)
    for k in range(n):
        J[k][k] = -sum(J[i][k] for i in range(n) if i != k)
    return J


CASES = {
    "normal": [0.0, -1.25, 0.5],
    "logistic": [0.0, -3.0, 1.0],
    "laplace": [0.0, -0.75, 0.4],
    "exponential": [0.0, -0.6, 0.9],
    "cauchy": [0.0, -2.0, 0.7],
}


def _check_vjp(family, J, p):
    mu = CASES[family]
    rng = np.random.default_rng(3)
    for _ in range(2):
        g = rng.normal(size=3)
        ref = [sum(mp.mpf(g[i]) * J[i][k] for i in range(3)) for k in range(3)]
        refl = [sum(mp.mpf(g[i]) / p[i] * J[i][k] for i in range(3)) for k in range(3)]
        got = numeric.probs_vjp(np.array(mu), g, family)
        gotl = numeric.log_probs_vjp(np.array(mu), g, family)
        scale = max(abs(r) for r in ref)
        scalel = max(abs(r) for r in refl)
        for k in range(3):
            assert abs(got[k] - ref[k]) <= 1e-10 * scale, (family, k, got[k], mp.nstr(ref[k], 15))
            assert abs(gotl[k] - refl[k]) <= 1e-10 * scalel, (family, k, gotl[k], mp.nstr(refl[k], 15))
        assert abs(math.fsum(got)) <= 1e-15 * np.abs(got).sum() * 10


@pytest.mark.parametrize("family", ["normal", "logistic", "laplace", "exponential", "cauchy"])
def test_vjp_against_derivative_integrals(family):
    with mp.workdps(20):
        mmu = [mp.mpf(m) for m in CASES[family]]
        J = _derivative_jacobian(mmu, family)
        p = _mp_probs(mmu, family)
    _check_vjp(family, J, p)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["normal", "laplace"])
def test_vjp_against_high_precision_finite_differences(family):
    with mp.workdps(40):
        mmu = [mp.mpf(m) for m in CASES[family]]
        J = _fd_jacobian(mmu, family)
        p = _mp_probs(mmu, family)
    _check_vjp(family, J, p)


def test_gumbel_vjp_is_softmax_jacobian():
    mu = np.array([0.3, -1.0, 2.0, 0.0])
    g = np.array([1.0, -2.0, 0.5, 3.0])
    p = np.exp(mu) / np.exp(mu).sum()
    J = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(numeric.probs_vjp(mu, g), J.T @ g, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(numeric.log_probs_vjp(mu, g), g - p * g.sum(), rtol=1e-14, atol=1e-16)
    # the quadrature route agrees with the closed form
    np.testing.assert_allclose(numeric.probs_vjp(mu, g, method="quadrature"), J.T @ g, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(numeric.log_probs_vjp(mu, g, method="quadrature"), g - p * g.sum(),
                               rtol=1e-11, atol=1e-14)


def test_scale_chain_rule():
    mu = np.array([0.3, -1.0, 2.0])
    g = np.array([1.0, -2.0, 0.5])
    s = 2.5
    np.testing.assert_allclose(numeric.probs_vjp(mu, g, "normal", scale=s),
                               numeric.probs_vjp(mu / s, g, "normal") / s, rtol=1e-13)


def test_log_vjp_with_underflowing_probabilities():
    # p_2 ~ e^-904 underflows; the log-VJP is still finite and exact:
    # n = 2 normal: log p_2 = log Phi((mu_2 - mu_1)/sqrt 2) -> d/dmu_2 = h(d/sqrt2)/sqrt2
    mu = np.array([0.0, -60.0])
    c = np.array([0.0, 1.0])
    got = numeric.log_probs_vjp(mu, c, "normal")
    d = -60 / math.sqrt(2)
    with mp.workdps(30):
        ref = float(mp.npdf(d) / mp.ncdf(d) / mp.sqrt(2))
    assert abs(got[1] - ref) <= 1e-12 * ref and abs(got[0] + ref) <= 1e-12 * ref


def test_vjp_ties_and_special_rows():
    mu = np.array([[0.0, 0.0, -1.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [0.0, -np.inf, 1.0]])
    g = np.array([[1.0, 2.0, 3.0]] * 4)
    out = numeric.probs_vjp(mu, g, "normal")
    assert np.isnan(out[1]).all()
    assert (out[2] == 0).all()
    assert out[3, 1] == 0.0
    np.testing.assert_allclose(out[3, [0, 2]], numeric.probs_vjp([0.0, 1.0], [1.0, 3.0], "normal"), rtol=1e-13)
    # ties: symmetric entries, FD check on the tied row
    h = 1e-6
    fd = []
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd.append(g[0] @ (numeric.probs(mu[0] + e, "normal") - numeric.probs(mu[0] - e, "normal")) / (2 * h))
    np.testing.assert_allclose(out[0], fd, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="cotangent"):
        numeric.probs_vjp([0.0, 1.0], [1.0], "normal")


def test_vjp_cost_at_most_three_times_probs():
    import time
    mu = np.random.default_rng(0).normal(size=200) * 3
    g = np.random.default_rng(1).normal(size=200)
    numeric.probs(mu, "logistic", method="quadrature")
    t0 = time.perf_counter()
    for _ in range(3):
        numeric.probs(mu, "logistic", method="quadrature")
    t1 = time.perf_counter()
    for _ in range(3):
        numeric.probs_vjp(mu, g, "logistic")
    t2 = time.perf_counter()
    assert (t2 - t1) <= 3.5 * (t1 - t0), f"vjp {t2 - t1:.3f}s vs probs {t1 - t0:.3f}s"


def test_vjp_with_entries_far_below_float_range():
    # normal, scale 0.25, scores [0, 18]: z = (0 - 18) / (0.25 sqrt 2) = -50.9, p_0 = Phi(z) ~ 1e-565.
    # probs VJP: every term ~ phi(z) ~ 1e-565, the exact answer is 0 in float64 (it used to raise
    # QuadratureError after many seconds).  log_probs VJP, independent closed form for n = 2:
    #   d log p_0 / d mu_0 = phi(z)/Phi(z) / (s sqrt 2),  d log p_1 / d mu_0 = -phi(z)/Phi(-z) / (s sqrt 2)
    import time
    from scipy.special import log_ndtr
    s, c = 0.25, np.array([1.0, -0.5])
    z = -18.0 / (s * math.sqrt(2.0))
    lphi = -0.5 * z * z - 0.5 * math.log(2 * math.pi)
    r0 = math.exp(lphi - log_ndtr(z)) / (s * math.sqrt(2.0))
    r1 = math.exp(lphi - log_ndtr(-z)) / (s * math.sqrt(2.0))
    t0 = time.perf_counter()
    for g in ([1.0, -0.5], [1.0, 0.0], [0.0, 3.0]):
        v = numeric.probs_vjp([0.0, 18.0], g, "normal", scale=s)
        assert np.isfinite(v).all() and np.abs(v).max() <= 1e-300, v
    lv = numeric.log_probs_vjp([0.0, 18.0], c, "normal", scale=s)
    assert time.perf_counter() - t0 < 5.0
    expect0 = c[0] * r0 - c[1] * r1
    np.testing.assert_allclose(lv, [expect0, -expect0], rtol=1e-10)
    # three entries, a tie at the bottom: still 0 for probs (all terms ~1e-565)
    v = numeric.probs_vjp([0.0, 18.0, 0.0], [1.0, -0.5, 0.3], "normal", scale=s)
    assert np.isfinite(v).all() and np.abs(v).max() <= 1e-300


def test_vjp_huge_gap_heavy_tail():
    # cauchy [d, 0, -d]: p_1 = atan(2/d)/pi (1 + O(1/d)), dp_1/dmu_1 = (2/pi)/(d^2 + 4) (the
    # difference of two cauchy laws is cauchy with scale 2); the third entry changes it by O(1/d^3)
    d = 1e20
    v = numeric.probs_vjp([d, 0.0, -d], [0.0, 1.0, 0.0], "cauchy")
    # middle entry of three: to first order only its pair with the winner matters
    expect = (2 / math.pi) / (d * d + 4)
    assert np.isfinite(v).all()
    assert abs(v[1] / expect - 1) <= 1e-10, v
    assert abs(v.sum()) <= 1e-14 * np.abs(v).sum()


@pytest.mark.parametrize("family", ["normal", "logistic"])
def test_auto_vjp_large_n_against_one_dimensional_integrals(family):
    # n = 600 >= FAST_MIN_N (the O(n) engine's VJP): scores with two values, k copies of
    # a = 0.5 (group A) and n - k of b = 0 (group B).  Off-diagonal Jacobian entries
    # dp_i/dmu_j = -c_{ij}, c_{ij} = int phi_i phi_j prod_{l != i, j} Phi_l dx, three kinds
    # (AA, AB, BB), each a 1-d integral done by scipy.integrate.quad; the diagonal follows
    # from sum_i p_i = 1 (columns of J sum to 0).
    from scipy import integrate, stats
    dist = {"normal": stats.norm, "logistic": stats.logistic}[family]
    n, k, a, b = 600, 200, 0.5, 0.0
    mu = np.array([a] * k + [b] * (n - k))
    perm = np.random.default_rng(3).permutation(n)
    mu = mu[perm]
    g = np.random.default_rng(4).normal(size=n)

    def c(i_a, j_a):
        na = k - i_a - j_a
        nb = n - k - (2 - i_a - j_a)
        def f(x):
            la = dist.logcdf(x - a)
            lb = dist.logcdf(x - b)
            lpi = dist.logpdf(x - (a if i_a else b)) + dist.logpdf(x - (a if j_a else b))
            return math.exp(lpi + na * la + nb * lb)
        return integrate.quad(f, -30, 30, points=[0.0, 3.0, 6.0, 9.0], epsabs=0, epsrel=1e-13, limit=400)[0]
    cAA, cAB, cBB = c(1, 1), c(1, 0), c(0, 0)
    isA = mu == a
    gA, gB = g[isA].sum(), g[~isA].sum()
    ref = np.where(isA,
                   g * ((k - 1) * cAA + (n - k) * cAB) - (gA - g) * cAA - gB * cAB,
                   g * ((n - k - 1) * cBB + k * cAB) - (gB - g) * cBB - gA * cAB)
    scale_terms = np.abs(g) * n * max(cAA, cAB, cBB) + (np.abs(g).sum()) * max(cAA, cAB, cBB)
    v = numeric.probs_vjp(mu, g, family)
    assert np.all(np.abs(v - ref) <= 1e-10 * np.abs(ref) + 1e-13 * scale_terms)


def test_log_vjp_far_tail_pair_and_unresolved_entries():
    # normal [D, 0]: d log p_1 / d mu_1 = phi(z)/Phi(z)/sqrt 2, z = -D/sqrt 2 (independent,
    # scipy log_ndtr).  p_1 = e^{-D^2/4} is far below 1e-300: the log-space accuracy target
    # 1e-13 |log p| applies.  An unresolved integrand must not be accepted as negligible
    # (it once returned 0 here).  Beyond log p = -1e12 no value is certified: raise.
    from scipy.special import log_ndtr
    for d in (1e3, 1e4):
        z = -d / math.sqrt(2.0)
        r = math.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_ndtr(z)) / math.sqrt(2.0)
        v = numeric.log_probs_vjp([d, 0.0], [0.0, 1.0], "normal", method="quadrature")
        assert abs(v[1] / r - 1) <= 1e-13 * (d * d / 4), (d, v, r)
        assert abs(v[0] / r + 1) <= 1e-13 * (d * d / 4)
    with pytest.raises(numeric.QuadratureError, match="log p"):
        numeric.log_probs_vjp([2e6, 0.0], [0.0, 1.0], "normal", method="quadrature")


# n = 2: VJP from the derivative of the closed form.  Reference: mpmath's numerical
# derivative of the difference CDF G written out here independently (at 30 digits).
_MP_G = {
    "normal": lambda d: mp.ncdf(d / mp.sqrt(2)),
    "cauchy": lambda d: mp.mpf(1) / 2 + mp.atan(d / 2) / mp.pi,
    "gumbel_min": lambda d: 1 / (1 + mp.exp(-d)),
    "laplace": lambda d: (2 - d) * mp.exp(d) / 4 if d < 0 else 1 - (2 + d) * mp.exp(-d) / 4,
    "exponential": lambda d: mp.exp(d) / 2 if d < 0 else 1 - mp.exp(-d) / 2,
    "uniform": lambda d: (0 if d <= -1 else (1 + d) ** 2 / 2 if d < 0
                          else 1 - (1 - d) ** 2 / 2 if d < 1 else 1),
}


@pytest.mark.parametrize("family", sorted(_MP_G))
@pytest.mark.parametrize("mu, scale", [((0.3, -0.4), 1.0), ((1.7, 0.2), 0.5), ((0.0, 10.0), 0.125),
                                       ((-3.0, 2.5), 2.0)])
def test_pair_vjp_matches_derivative_of_closed_form(family, mu, scale):
    g = np.array([0.3, -0.7])
    with mp.workdps(30):
        d = (mp.mpf(mu[0]) - mp.mpf(mu[1])) / scale
        G = _MP_G[family]
        c = mp.diff(G, d) if abs(d) != 1 or family != "uniform" else mp.mpf(0)
        p1 = G(d)
        ref = float((mp.mpf(g[0]) - g[1]) * c / scale)
        # log p: c/s * (g1/p1 - g2/p2), zero where c = 0
        ref_log = float(c / scale * (g[0] / p1 - g[1] / (1 - p1))) if c != 0 else 0.0
    v = numeric.probs_vjp(np.array(mu), g, family, scale=scale)
    vl = numeric.log_probs_vjp(np.array(mu), g, family, scale=scale)
    assert v[0] == -v[1] and vl[0] == -vl[1]
    assert abs(v[0] - ref) <= 1e-12 * abs(ref) + 1e-300, (v, ref)
    assert abs(vl[0] - ref_log) <= 1e-12 * abs(ref_log) + 1e-300, (vl, ref_log)
