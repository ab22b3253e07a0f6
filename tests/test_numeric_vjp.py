"""Vector-Jacobian products against high-precision finite differences of an
independent mpmath evaluation of (eq:pi), and against the softmax Jacobian."""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric


def _mp_family(name):
    if name == "normal":
        return mp.ncdf, mp.npdf
    if name == "logistic":
        return (lambda x: 1 / (1 + mp.exp(-x))), (lambda x: mp.exp(-abs(x)) / (1 + mp.exp(-abs(x))) ** 2)
    if name == "cauchy":
        return (lambda x: mp.atan(-1 / x) / mp.pi if x < 0 else mp.mpf(1) / 2 + mp.atan(x) / mp.pi), \
            (lambda x: 1 / (mp.pi * (1 + x * x)))
    if name == "laplace":
        return (lambda x: mp.exp(x) / 2 if x < 0 else 1 - mp.exp(-x) / 2), (lambda x: mp.exp(-abs(x)) / 2)
    if name == "exponential":
        return (lambda x: -mp.expm1(-x) if x > 0 else mp.mpf(0)), (lambda x: mp.exp(-x) if x >= 0 else mp.mpf(0))
    raise KeyError(name)


def _mp_probs(mu, name):
    C, P = _mp_family(name)
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
    C, P = _mp_family(name)
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
