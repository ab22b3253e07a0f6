"""Accuracy of numeric.probs / log_probs against independent high-precision values.

References: derive.oracle's reference tables (mpmath, 30 digits), closed
forms of the literature evaluated in mpmath, and an mpmath quadrature of
(eq:pi) written here (with multiplicities, so large tied vectors are cheap).
"""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from _mp_families import mp_family

FAMILIES = list(numeric.FAMILY_NAMES)


def _load(family):
    oracle = pytest.importorskip("derive.oracle")
    try:
        return oracle.load_reference(family)
    except FileNotFoundError:
        pytest.skip(f"no reference table for {family}")


def _check_cases(cases, family, method, **params):
    """p: rel <= 1e-13 for p >= 1e-200 and <= 2e-13 down to 1e-300 (float64 floor: every
    kernel value log Phi, log phi of size |log p| > 512 carries a rounding error of up to
    ulp/2 = 5.7e-14); log p: abs <= 1e-12 max(1, |log p|); sum p = 1 +- 1e-14."""
    worst_p, worst_l, worst_s = 0.0, 0.0, 0.0
    bad = []
    for c in cases:
        mu = np.array([float(v) for v in c["mu"]])
        lp = numeric.log_probs(mu, family, method=method, **params)
        p = numeric.probs(mu, family, method=method, **params)
        worst_s = max(worst_s, abs(math.fsum(p) - 1.0))
        for i, (ref_l, ref_p) in enumerate(zip(c["log_p"], c["p"])):
            el = float(abs(mp.mpf(float(lp[i])) - ref_l) / max(1, abs(ref_l)))
            worst_l = max(worst_l, el)
            if el > 1e-12:
                bad.append((c["name"], i, "log", el))
            if ref_p >= mp.mpf("1e-300"):
                ep = float(abs(mp.mpf(float(p[i])) - ref_p) / ref_p)
                worst_p = max(worst_p, ep)
                if ep > (1e-13 if ref_p >= mp.mpf("1e-200") else 2e-13):
                    bad.append((c["name"], i, "p", ep))
    assert not bad, f"{family}/{method}: worst {sorted(bad, key=lambda b: -b[-1])[:5]}"
    assert worst_s <= 1e-14, f"{family}/{method}: sum p off by {worst_s:.2e}"
    return worst_p, worst_l


@pytest.mark.parametrize("method", ["auto", "quadrature"])
@pytest.mark.parametrize("family", FAMILIES)
def test_reference_tables(family, method):
    cases = _load(family)
    params = {k: float(v) for k, v in cases[0].get("params", {}).items()} if cases else {}
    _check_cases(cases, family, method, **params)


def test_oracle_helper_on_quadrature():
    testing = pytest.importorskip("derive.testing")
    testing.assert_matches_oracle(lambda mu: numeric.log_probs(mu, "logistic", method="quadrature"),
                                  "logistic", rtol=1e-12, log=True)


# ---------------------------------------------------------------------------
# n = 2 closed forms from the literature (difference of two iid noises)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _thirty_digits():
    """The references of this module are evaluated at 30 digits."""
    with mp.workdps(30):
        yield


PAIR_REFERENCE = {
    "normal": lambda d: mp.ncdf(d / mp.sqrt(2)),
    "cauchy": lambda d: mp.mpf(1) / 2 + mp.atan(d / 2) / mp.pi if d > -1e10 else mp.atan(-2 / d) / mp.pi,
    "gumbel": lambda d: 1 / (1 + mp.exp(-d)),
    "gumbel_min": lambda d: 1 / (1 + mp.exp(-d)),
    "logistic": None,
    "laplace": lambda d: (2 - d) * mp.exp(d) / 4 if d < 0 else 1 - (2 + d) * mp.exp(-d) / 4,
    "exponential": lambda d: mp.exp(d) / 2 if d < 0 else 1 - mp.exp(-d) / 2,
    "uniform": lambda d: (mp.mpf(0) if d <= -1 else (1 + d) ** 2 / 2 if d < 0
                          else 1 - (1 - d) ** 2 / 2 if d < 1 else mp.mpf(1)),
}


@pytest.mark.parametrize("method", ["auto", "quadrature"])
@pytest.mark.parametrize("family", [f for f, v in PAIR_REFERENCE.items() if v is not None])
def test_pairs_against_literature(family, method):
    ds = [-60.0, -37.0, -5.0, -1.0, -0.3, -1e-9, 0.0, 0.7, 2.0, 10.0, 59.0]
    if family == "uniform":
        ds = [-1.5, -0.999, -0.5, -1e-9, 0.0, 0.3, 0.99, 2.0]
    for d in ds:
        for scale in (1.0, 2.5):
            mu = np.array([d * scale, 0.0])
            lp = numeric.log_probs(mu, family, method=method, scale=scale)
            ref = PAIR_REFERENCE[family](mp.mpf(d))
            if ref == 0:
                assert lp[0] == -math.inf
                continue
            err = float(abs(mp.mpf(float(lp[0])) - mp.log(ref)) / max(1, abs(mp.log(ref))))
            assert err <= 1e-13, (family, method, d, scale, float(lp[0]), mp.nstr(mp.log(ref), 20))
            if ref > mp.mpf("1e-250"):
                p = numeric.probs(mu, family, method=method, scale=scale)[0]
                assert abs(p - ref) / ref <= 1e-13, (family, d)


# ---------------------------------------------------------------------------
# independent mpmath quadrature with multiplicities: large tied vectors
# ---------------------------------------------------------------------------



def _mp_probs_grouped(vals, counts, name, lo, hi, per_unit=8):
    """(eq:pi) with multiplicities; the integrands have features of width ~1/sqrt(count),
    so the panels are 1/per_unit wide (the caller checks two resolutions agree)."""
    C, P = mp_family(name)
    vals = [mp.mpf(v) for v in vals]
    # gumbel_min's density exp(t - e^t) is below e^-22000 beyond t = 10: end there (mpmath's
    # tanh-sinh on [hi, inf) would evaluate exp(-e^t) at astronomically large t and stall)
    top = hi + 4 if name == "gumbel_min" else mp.inf
    pts = [-mp.inf] + list(mp.linspace(lo, hi, int(hi - lo) * per_unit + 1)) + [top]
    out = []
    for i, v in enumerate(vals):
        def f(x, v=v, i=i):
            r = P(x - v) * C(x - v) ** (counts[i] - 1)
            for j, w in enumerate(vals):
                if j != i:
                    r *= C(x - w) ** counts[j]
            return r
        out.append(mp.quad(f, pts))
    return out


@pytest.mark.parametrize("family, n", [
    ("logistic", 1000),
    pytest.param("normal", 1000, marks=pytest.mark.slow),
    pytest.param("cauchy", 1000, marks=pytest.mark.slow),
    pytest.param("gumbel_min", 1000, marks=pytest.mark.slow),
    pytest.param("normal", 10000, marks=pytest.mark.slow),
    pytest.param("logistic", 10000, marks=pytest.mark.slow),
    pytest.param("cauchy", 10000, marks=pytest.mark.slow),
])
def test_large_n_tied_vectors(family, n):
    vals, frac = [0.0, -2.0, -9.0], [0.01, 0.5, 0.49]
    counts = [max(1, int(n * f)) for f in frac]
    counts[1] = n - counts[0] - counts[2]
    mu = np.concatenate([np.full(c, v) for v, c in zip(vals, counts)])
    np.random.default_rng(1).shuffle(mu)
    # panels a few feature widths wide: ~1/sqrt(count) for the normal (1/8 at n = 1e3,
    # 1/24 at 1e4: at 1/8 the n = 1e4 references of two resolutions differed by 1.5e-14);
    # gumbel_min's Phi^count falls like e^(count t), features ~1/count wide (1/32 at
    # n = 1e3 agrees with 1/64 to 17 digits; n = 1e4 would need ~1/300 and is left out)
    per = 32 if family == "gumbel_min" else 8 if n <= 1000 else 24
    with mp.workdps(20):
        ref = _mp_probs_grouped(vals, counts, family, -16, 6, per_unit=per)
        ref2 = _mp_probs_grouped(vals, counts, family, -16, 6, per_unit=per * 3 // 4)
    for r, r2 in zip(ref, ref2):                      # the reference itself is converged
        assert abs(r - r2) <= 1e-14 * r
    for method in ("auto", "quadrature"):
        p = numeric.probs(mu, family, method=method)
        lp = numeric.log_probs(mu, family, method=method)
        for v, r in zip(vals, ref):
            got, lgot = p[mu == v], lp[mu == v]
            assert np.all(got == got[0]) and np.all(lgot == lgot[0])
            assert abs(lgot[0] - mp.log(r)) <= 1e-12 * max(1, abs(mp.log(r))), (family, n, method, v)
            if r >= mp.mpf("1e-300"):
                assert abs(got[0] - r) / r <= 1e-13, (family, n, method, v, got[0], mp.nstr(r, 17))
        assert abs(math.fsum(p) - 1) <= 1e-14


def test_spread_60_normal_log_p_far_below_1e300():
    # log p_2 for mu = (0, 0, -60): int phi(x + 60) Phi(x)^2 dx, computed here in mpmath
    mu = np.array([0.0, 0.0, -60.0])
    lp = numeric.log_probs(mu, "normal")
    with mp.workdps(30):
        ref = mp.log(mp.quad(lambda x: mp.npdf(x + 60) * mp.ncdf(x) ** 2, mp.linspace(-60, 10, 141)))
    assert ref < -1100
    assert abs(lp[2] - ref) <= 1e-12 * abs(ref)


@pytest.mark.parametrize("family", ["normal", "laplace", "student_t"])
def test_scale_is_temperature(family):
    mu = np.array([0.3, -1.7, 2.2, 0.0, -4.0])
    for s in (0.01, 0.5, 7.0):
        np.testing.assert_allclose(numeric.probs(mu * s, family, scale=s), numeric.probs(mu, family),
                                   rtol=1e-13, atol=0)


@pytest.mark.parametrize("nu", [pytest.param(0.3, marks=pytest.mark.slow), 1.0, 2.5, 40.0])
def test_student_t_nu_against_oracle(nu):
    oracle = pytest.importorskip("derive.oracle")
    mu = [0.0, -1.5, 3.0, -12.0]
    ref = oracle.log_probs(mu, "student_t", dps=20, nu=nu)
    lp = numeric.log_probs(np.array(mu), "student_t", nu=nu)
    for a, b in zip(lp, ref):
        assert abs(mp.exp(mp.mpf(float(a)) - b) - 1) <= 1e-13, (nu, float(a), mp.nstr(b, 17))


@pytest.mark.slow
def test_laplace_many_kinks_against_oracle_and_linear_cost():
    # laplace rows with >= 64 kinks drop the panel breaks where every integrand is below
    # 1e-30 of its own probability (numeric._quadrature._relevant_kinks): check the values
    # against the oracle (mpmath, 20 digits) and that n = 1e4 costs well under O(n^2)
    import time
    oracle = pytest.importorskip("derive.oracle")
    for seed, spread in ((120, 3.0), (150, 30.0)):
        mu = np.random.default_rng(seed).normal(size=120) * spread
        ref = np.array([float(v) for v in oracle.log_probs(list(mu), "laplace", dps=20)])
        lp = numeric.log_probs(mu, "laplace")
        big = ref > -690.0
        assert np.all(np.abs(np.expm1(lp[big] - ref[big])) <= 1e-13)
        assert np.all(np.abs(lp - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
    mu = np.random.default_rng(0).normal(size=10_000) * 3.0
    t0 = time.perf_counter()
    p = numeric.probs(mu, "laplace")
    assert time.perf_counter() - t0 < 3.0          # O(n^2) panels (a kink per score) would take ~50 s
    assert abs(math.fsum(p) - 1.0) <= 1e-14


@pytest.mark.slow
@pytest.mark.parametrize("family, params, scale", [("cauchy", {}, 1.0), ("student_t", {"nu": 1.5}, 4.0)])
def test_cluster_far_below_the_top_keeps_its_spread(family, params, scale):
    # (1e17, 0, 0.5) - 1e17 rounds both lower scores to -1e17: a shifted row ties them,
    # while heavy tails give them probabilities ~1e-17 that differ by 16%
    oracle = pytest.importorskip("derive.oracle")
    mu = np.array([1e17, 0.0, 0.5, -2.0]) * scale
    ref = oracle.log_probs(mu.tolist(), family, dps=30, scale=scale, **params)
    for method in ("auto", "quadrature"):
        lp = numeric.log_probs(mu, family, method=method, scale=scale, **params)
        for a, b in zip(lp, ref):
            assert abs(mp.mpf(float(a)) - b) <= 1e-13 * max(1, abs(b)), (method, float(a), mp.nstr(b, 17))
    # the gradient too: d p_1 / d mu_1 by central differences of the oracle
    h = 1e-3 * scale
    up, dn = mu.copy(), mu.copy()
    up[1] += h
    dn[1] -= h
    pu = mp.exp(oracle.log_probs(up.tolist(), family, dps=30, scale=scale, **params)[1])
    pd = mp.exp(oracle.log_probs(dn.tolist(), family, dps=30, scale=scale, **params)[1])
    # O(h^2) difference error: h^2 p''' / 6 ~ 1e-7 relative at h = 1e-3 (p varies on scale 1)
    fd = float((pu - pd) / (2 * h))
    g = np.array([0.0, 1.0, 0.0, 0.0])
    v = numeric.probs_vjp(mu, g, family, scale=scale, **params)
    assert abs(v[1] - fd) <= 1e-6 * abs(fd), (v[1], fd)
