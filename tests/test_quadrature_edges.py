"""The adaptive quadrature on panels far narrower than 1e-13: an entry whose whole
support is such a panel keeps its probability (uniform noise, scores just inside one
unit below the top).  References are exact rational integrals."""

from fractions import Fraction
import math

import numpy as np
import pytest

import numeric


def _exact_log_p2(delta):
    # mu = (0, -(1 - d), -(1 - d)), uniform[0, 1] noise: entry 2 can only win on
    # x in [0, d], where F_1(x) = x and F_3(x) = x + 1 - d:
    # p_2 = int_0^d x (x + 1 - d) dx = d^3 / 3 + (1 - d) d^2 / 2
    d = Fraction(delta)
    p = d**3 / 3 + (1 - d) * d**2 / 2
    return math.log(p.numerator) - math.log(p.denominator)


@pytest.mark.parametrize("k", [40, 50, 52])
@pytest.mark.parametrize("method", ["quadrature", "auto"])
def test_uniform_entry_supported_on_a_sub_ulp_panel(k, method):
    delta = 2.0**-k
    mu = np.array([0.0, -(1.0 - delta), -(1.0 - delta)])
    lp = numeric.log_probs(mu, "uniform", method=method)
    want = _exact_log_p2(delta)
    assert abs(lp[1] - want) <= 1e-12 * abs(want), (lp, want)
    assert lp[2] == lp[1]
    assert abs(math.expm1(lp[0]) + 2 * math.exp(want)) <= 1e-15


@pytest.mark.parametrize("family", ["uniform", "exponential", "laplace"])
def test_tied_block_below_a_kink_keeps_small_entries(family):
    # 100 scores tied at -0.999 below a top at 0 (F steep: the map is recentred); the
    # entries' integrands jump at the kink -0.999 + 1, and p_2 (~5e-7 for uniform) must
    # keep 1e-13 relative accuracy against the 30-digit oracle at the same float scores
    from derive import oracle
    import mpmath

    mu = np.r_[0.0, np.full(100, -0.999)]
    lp = numeric.log_probs(mu, family, method="quadrature")
    ref = oracle.log_probs([float(mu[0]), float(mu[1])] + [float(mu[1])] * 99, family, dps=30)
    for i in (0, 1):
        assert abs(mpmath.mpf(lp[i]) - ref[i]) <= 1e-13 * max(1.0, abs(float(ref[i]))), (i, lp[i], ref[i])
    assert np.all(lp[2:] == lp[1])


def _gompertz_family():
    # Gompertz(1, 1/2) noise written by hand in numpy: F = 1 - exp(-(e^x - 1)/2) on x >= 0
    def logcdf(x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            v = np.log(-np.expm1(-np.expm1(np.maximum(x, 0.0)) / 2))
        return np.where(x > 0, v, -np.inf)

    def logpdf(x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            v = x - np.expm1(x) / 2 - math.log(2.0)
        return np.where(x > 0, v, -np.inf)

    return numeric.family_from_logcdf(logcdf, logpdf, (0.0, math.inf), name="gompertz_by_hand")


@pytest.mark.parametrize("mu", [(30.0, 0.0, 0.0), (30.0, 29.0, 0.0), (20.0, 0.0, -3.0)])
def test_mass_next_to_a_kink_narrower_than_the_nodes(mu):
    # the losers' integrands fall by e^(e^30 / 2) per unit of x right of the kink at 30: all
    # their mass lies within ~2e-13 of it.  Reference: the exact finite sum of exponentials
    from _user_family_refs import gompertz_exact
    import mpmath

    ref = gompertz_exact([repr(m) for m in mu], 1, "0.5", 40)
    want = [float(mpmath.log(r)) for r in ref]
    lp = numeric.log_probs(np.array(mu), _gompertz_family())
    for got, w in zip(lp, want):
        assert abs(got - w) <= 1e-12 * max(1.0, abs(w)), (mu, lp, want)


# ---------------------------------------------------------------------------
# a density unbounded at both finite support ends: sympy.stats Arcsin(0, 1)
# ---------------------------------------------------------------------------


def arcsin_probs_ref(mu, dps=30):
    """p_i = int phi(x - y_i) prod_{j != i} Phi(x - y_j) dx for arcsine noise on [0, 1],
    ``Phi(d) = (2/pi) asin(sqrt d)``, ``phi(d) = 1 / (pi sqrt(d (1 - d)))``, by mpmath.

    Independent of numeric and of derive.oracle (whose Gauss-Legendre pieces cannot
    resolve the end singularities): the scores are exact binary values; x runs over
    ``[max y, y_i + 1]`` cut at every kink ``y_j``, ``y_j + 1``; each half of a piece is
    written as ``x = end +- t^2`` with ``x - y_j = (end - y_j) +- t^2`` exact, so the
    integrand ``2 t phi ...`` is bounded and analytic in t (Gauss-Legendre to ``dps``
    digits, its error estimate checked, and sum p = 1 checked)."""
    import mpmath as mp

    with mp.workdps(dps + 10):
        y = [mp.mpf(v) for v in mu]
        top = max(y)
        kinks = sorted(set(y) | {v + 1 for v in y})
        out = []
        for i in range(len(y)):
            lo, hi = top, y[i] + 1
            if not hi > lo:
                out.append(mp.mpf(0))
                continue
            pts = [lo] + [k for k in kinks if lo < k < hi] + [hi]
            tot = mp.mpf(0)
            for a, b in zip(pts[:-1], pts[1:]):
                for end, sgn in ((a, 1), (b, -1)):
                    off = [end - v for v in y]

                    def f(t, off=off, sgn=sgn, i=i):
                        d = [o + sgn * t * t for o in off]
                        if not 0 < d[i] < 1:
                            return mp.mpf(0)
                        v = 2 * t / (mp.pi * mp.sqrt(d[i] * (1 - d[i])))
                        for j, dj in enumerate(d):
                            if j != i and dj < 1:
                                v = v * (2 / mp.pi * mp.asin(mp.sqrt(dj)) if dj > 0 else 0)
                        return v

                    T = mp.sqrt(abs((a + b) / 2 - end))
                    val, err = mp.quad(f, mp.linspace(0, T, 5), error=True, method="gauss-legendre")
                    assert err < mp.mpf(10) ** (2 - dps), err
                    tot += val
            out.append(tot)
        assert abs(mp.fsum(out) - 1) < mp.mpf(10) ** (2 - dps)
        return [+v for v in out]


_ARCSIN = []


def _arcsin():
    if not _ARCSIN:
        import sympy.stats
        import derive

        _ARCSIN.append(derive.family_from_sympy_stats(sympy.stats.Arcsin("X", 0, 1)))
    return _ARCSIN[0]


def _arcsin_rows(n, seed):
    """s N(0, 1) / 5 rows (s = 1, 2, 5: spreads up to and beyond the support's width 1),
    a tie block, and a linear spread 1.5 (entries more than 1 below the top: p = 0)."""
    rng = np.random.default_rng(seed)
    rows = [rng.normal(size=n) * s * 0.2 for s in (1, 2, 5)]
    tie = rng.normal(size=n) * 0.2
    tie[: max(2, n // 2)] = tie[0]
    rows.append(tie)
    rows.append(np.linspace(1.5, 0.0, n))
    return [[float(f"{v:.6g}") for v in r] for r in rows]


def _check_arcsin_probs(mu):
    import mpmath

    ref = arcsin_probs_ref(mu, 20)
    x = np.array(mu)
    p = numeric.probs(x, family=_arcsin())
    lp = numeric.log_probs(x, family=_arcsin())
    for i, r in enumerate(ref):
        if r == 0:
            assert p[i] == 0 and lp[i] == -np.inf, (mu, i, p[i])
            continue
        assert abs(mpmath.mpf(p[i]) / r - 1) <= 1e-13, (mu, i, p[i], r)
        lr = mpmath.log(r)
        assert abs(mpmath.mpf(lp[i]) - lr) <= 1e-12 * max(1, abs(lr)), (mu, i, lp[i], lr)
    assert abs(math.fsum(p) - 1) <= 1e-14


def _check_arcsin_vjp(mu, seed):
    """Both VJPs against central differences of :func:`arcsin_probs_ref` (step 1e-10 at 30
    digits: truncation ~1e-20, rounding ~1e-20), each entry within 1e-10 of its own sum of
    |terms|."""
    import mpmath as mp

    n = len(mu)
    g = np.random.default_rng(seed).normal(size=n)
    h = mp.mpf(10) ** -10
    base = arcsin_probs_ref(mu, 30)
    J = []
    with mp.workdps(40):
        for k in range(n):
            pu = arcsin_probs_ref([mp.mpf(m) + (h if j == k else 0) for j, m in enumerate(mu)], 30)
            pd = arcsin_probs_ref([mp.mpf(m) - (h if j == k else 0) for j, m in enumerate(mu)], 30)
            J.append([(a - b) / (2 * h) for a, b in zip(pu, pd)])
    for log in (False, True):
        gg = [(g[i] / base[i] if base[i] > 0 else 0) if log else g[i] for i in range(n)]
        want = np.array([float(mp.fsum(gg[i] * J[k][i] for i in range(n))) for k in range(n)])
        scale = np.array([float(mp.fsum(abs(gg[i] * J[k][i]) for i in range(n))) for k in range(n)])
        got = (numeric.log_probs_vjp if log else numeric.probs_vjp)(np.array(mu), g, family=_arcsin())
        assert np.all(np.abs(got - want) <= 1e-10 * scale + 1e-15 * np.max(scale)), (mu, log, got, want)


@pytest.mark.parametrize("n,k", [(2, 2), (3, 1), (3, 3), (5, 4), (5, 0)])
def test_arcsin_density_unbounded_at_both_ends(n, k):
    # the density (x (1 - x))^(-1/2) / pi is infinite at every kink y_j, y_j + 1
    _check_arcsin_probs(_arcsin_rows(n, n)[k])


def test_arcsin_vjp():
    _check_arcsin_vjp(_arcsin_rows(2, 2)[0], seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3, 5])
def test_arcsin_all_rows(n):
    for mu in _arcsin_rows(n, n) + _arcsin_rows(n, 10 + n):
        _check_arcsin_probs(mu)
    for k in (0, 1, 2, 4):
        _check_arcsin_vjp(_arcsin_rows(n, 20 + n)[k], seed=n)


def test_arcsin_vjp_at_a_tie_raises():
    # d p_1 / d mu_2 at a tie is int phi^2 = int dx / (pi^2 x (1 - x)) = inf: no number to return
    with pytest.raises(numeric.QuadratureError):
        numeric.probs_vjp(np.array([0.25, 0.25, -0.1]), np.array([1.0, -1.0, 0.5]), family=_arcsin())
