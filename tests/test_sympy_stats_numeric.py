"""Every sympy.stats noise of the atlas in numeric: probs, log_probs and both VJPs against the oracle.

For each sympy.stats distribution in ``derive.atlas.families()`` (at the atlas's fixed
parameters) numeric must meet README "Guarantees" or raise: probabilities within 1e-13
relative (p >= 1e-300), log p within 1e-12 max(1, |log p|), VJP entries within 1e-10 of
their own sum of |terms|.  References are independent of numeric: ``derive.oracle`` at 20
digits (it guarantees dps - 3 = 17, a 1e4 margin below the asserted 1e-13) on scores
``w * s * N(0, 1)`` (w the atlas's width of the family: half its interquartile range; s = 1,
2, 5), ties and a spread of 30 w, and for the VJPs central differences of the oracle
(step 1e-9 w: truncation ~1e-18, rounding ~1e-11 of p at 20 digits).  The default tier
checks a few families at n = 3; the slow tier sweeps every family at n = 2, 3 and 5, the
VJPs of every family at n = 3, and three at n = 20 (the oracle's mpmath kernels of user
CDFs cost seconds per row: the full grid would take far beyond the slow tier's budget).
"""

import math

import mpmath
import numpy as np
import pytest
import sympy
import sympy.stats

import derive
import numeric
from derive import atlas

#: the atlas's sympy.stats families (key -> maker)
STATS = {key: make for key, desc, make in atlas.families() if "sympy.stats" in desc}

_FAMILIES = {}


def _family(key):
    if key not in _FAMILIES:
        fam = STATS[key]()
        _FAMILIES[key] = (fam, float(atlas._width(fam)))
    return _FAMILIES[key]


def _vectors(n, w, seed):
    """Score rows (floats, passed exactly to the oracle: numeric's accuracy is for the scores it
    computes with): random s N(0,1) w for s = 1, 2, 5 (6 digits), a tie block, and a linear
    spread of 30 w."""
    rng = np.random.default_rng(seed)
    rows = [rng.normal(size=n) * s * w for s in (1, 2, 5)]
    tie = rng.normal(size=n) * w
    tie[: max(2, n // 2)] = tie[0]
    rows.append(tie)
    rows.append(np.linspace(30 * w, 0, n))
    return [[float(f"{v:.6g}") for v in r] for r in rows]


def _check_probs(fam, mu):
    ref = derive.oracle.probs(mu, fam, dps=20)
    x = np.array(mu)
    p = numeric.probs(x, family=fam)
    lp = numeric.log_probs(x, family=fam)
    worst = 0.0
    for i, r in enumerate(ref):
        if r > mpmath.mpf(10) ** -300:
            rel = abs(mpmath.mpf(p[i]) / r - 1)
            assert rel <= 1e-13, (fam.name, mu, i, p[i], r)
            worst = max(worst, float(rel))
        lr = mpmath.log(r) if r > 0 else -mpmath.inf
        if lr != -mpmath.inf:
            assert abs(mpmath.mpf(lp[i]) - lr) <= 1e-12 * max(1, abs(lr)), (fam.name, mu, i, lp[i], lr)
        else:
            assert lp[i] == -np.inf
    assert abs(math.fsum(p) - 1) <= 1e-14
    return worst


def _check_vjp(fam, mu, w, seed):
    """probs_vjp / log_probs_vjp against central differences of the oracle, each entry within
    1e-10 of its own sum of |terms| (bounded here by the row's scale: |g|_max * sum_k |J_ik|)."""
    rng = np.random.default_rng(seed)
    n = len(mu)
    g = rng.normal(size=n)
    x = np.array(mu)
    h = mpmath.mpf(w) * mpmath.mpf(10) ** -9
    base = derive.oracle.probs(mu, fam, dps=20)
    J = []                               # J[k][i] = d p_i / d mu_k
    with mpmath.workdps(20):
        for k in range(n):
            up = [mpmath.mpf(m) + (h if j == k else 0) for j, m in enumerate(mu)]
            dn = [mpmath.mpf(m) - (h if j == k else 0) for j, m in enumerate(mu)]
            pu = derive.oracle.probs([mpmath.nstr(v, 30) for v in up], fam, dps=20)
            pd = derive.oracle.probs([mpmath.nstr(v, 30) for v in dn], fam, dps=20)
            J.append([(a - b) / (2 * h) for a, b in zip(pu, pd)])
    for log in (False, True):
        gg = [g[i] / float(base[i]) if log else g[i] for i in range(n)]
        want = np.array([float(mpmath.fsum(gg[i] * J[k][i] for i in range(n))) for k in range(n)])
        scale = np.array([float(mpmath.fsum(abs(gg[i] * J[k][i]) for i in range(n))) for k in range(n)])
        f = numeric.log_probs_vjp if log else numeric.probs_vjp
        got = f(x, g, family=fam)
        assert np.all(np.abs(got - want) <= 1e-10 * scale + 1e-15 * np.max(scale)), (fam.name, mu, log, got, want)


@pytest.mark.parametrize("key", ["Gompertz(1,1/2)", "Weibull(1,2)"])
def test_default_families_n3(key):
    fam, w = _family(key)
    mu = _vectors(3, w, seed=3)
    for row in (mu[1], mu[4]):
        _check_probs(fam, row)


#: checked elsewhere: Arcsin(0, 1) has a density unbounded at both support ends, where the
#: oracle needs 10-30 s per row; its probs / log_probs are compared with the oracle on two rows
#: in test_density_unbounded_at_an_end below, and at n = 2..20 with both VJPs in
#: tests/test_quadrature_edges.py against an independent mpmath reference
ELSEWHERE = ("Arcsin(0,1)",)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(k for k in STATS if k not in ELSEWHERE))
def test_every_atlas_sympy_stats_family(key):
    fam, w = _family(key)
    rows = [_vectors(2, w, seed=2)[1]] + [_vectors(3, w, seed=3)[k] for k in (2, 3, 4)] + [_vectors(5, w, seed=5)[1]]
    for row in rows:
        _check_probs(fam, row)


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(k for k in STATS if k not in ELSEWHERE))
def test_vjp_every_atlas_sympy_stats_family(key):
    # 7 oracle calls per family (0.5-3 s each): one n = 3 row, a random cotangent
    fam, w = _family(key)
    _check_vjp(fam, _vectors(3, w, seed=7)[0], w, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["Gompertz(1,1/2)", "Weibull(1,2)", "Frechet(2,1,0)"])
def test_n20(key):
    fam, w = _family(key)
    _check_probs(fam, _vectors(20, w, seed=20)[0])


@pytest.mark.slow
def test_location_scale_user_family_runs_on_the_registry_engine():
    # F(x) = T_3(x/2 + 1): Student t (nu = 3) at scale 2, given as a user CDF (hypergeometric form).
    # Reference: p(mu; F) = p(mu / 2; T_3), the registry family's oracle at the halved scores;
    # numeric's scale is in the user's unit (scale 3 on F is T_3 at scale 6)
    import sympy as sp

    x = sp.Symbol("x", real=True)
    fam = derive.family_from_cdf(derive.family("student_t", nu=3).cdf(x / 2 + 1), x, name="t3_scale2")
    nf = fam.to_numeric()
    assert (nf.name, nf.params) == ("student_t", {"scale": 2.0, "nu": 3.0})
    mu = [3.0, 0.0, -1.5, 40.0]
    for scale in (1.0, 3.0):
        ref = derive.oracle.probs([m / (2 * scale) for m in mu], "student_t", nu=3, dps=20)
        got = numeric.probs(np.array(mu), family=fam, scale=scale)
        assert max(abs(mpmath.mpf(g) / r - 1) for g, r in zip(got, ref)) <= 1e-13, (scale, got, ref)
    with pytest.raises(ValueError, match="takes only 'scale'"):
        numeric.probs(np.array(mu), family=fam, nu=5)


#: densities unbounded at a finite support end, d^a with a = -1/2 or -7/10 (numeric's end map
#: of order 2 or 10 makes them analytic, the oracle's PowerPiece maps as well), the other end
#: finite or infinite
SINGULAR = {
    "Arcsin(0,1)": lambda: derive.family_from_sympy_stats(sympy.stats.Arcsin("X", 0, 1)),
    "Beta(3/10,1)": lambda: derive.family_from_sympy_stats(sympy.stats.Beta("X", sympy.Rational(3, 10), 1)),
    "Beta(1/2,2)": lambda: derive.family_from_sympy_stats(sympy.stats.Beta("X", sympy.Rational(1, 2), 2)),
    "ChiSquared(1)": lambda: derive.family_from_sympy_stats(sympy.stats.ChiSquared("X", 1)),
    "PowerFunction(1/2,0,1)": lambda: derive.family_from_sympy_stats(
        sympy.stats.PowerFunction("X", sympy.Rational(1, 2), 0, 1)),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(SINGULAR))
def test_density_unbounded_at_an_end(key):
    # slow tier: the oracle needs 1-15 s per row on these densities (Arcsin, singular at both
    # ends, up to 40 s: one row)
    fam = SINGULAR[key]()
    w = float(atlas._width(fam))
    for row in _vectors(3, w, seed=11)[:1 if key == "Arcsin(0,1)" else 2]:
        _check_probs(fam, row)


def test_density_steeper_than_inverse_sqrt():
    # Beta(3/10, 1): density 0.3 x^(-7/10) at 0, end map of order 10 (t^2 after the map).
    # Reference: the quantile form with F = x^(3/10), Q = u^(10/3) (tests/_user_family_refs)
    from _user_family_refs import quantile_probs

    fam = SINGULAR["Beta(3/10,1)"]()
    rows = [[0.1, 0.0, -0.2], [0.0, -0.05, -0.999, 0.3], [0.0, 0.0, -0.4], [0.0, -0.999], [0.25, 0.0, -0.7]]
    for mu in rows:
        ref = quantile_probs(lambda z: z ** (mpmath.mpf(3) / 10), lambda u: u ** (mpmath.mpf(10) / 3), 0, 1, mu, 20)
        p = numeric.probs(np.array(mu), family=fam)
        lp = numeric.log_probs(np.array(mu), family=fam)
        for i, r in enumerate(ref):
            if r == 0:       # at least the support's width below the top
                assert p[i] == 0 and lp[i] == -np.inf, (mu, i, p[i])
                continue
            assert abs(mpmath.mpf(p[i]) / r - 1) <= 1e-13, (mu, i, p[i], r)
            assert abs(mpmath.mpf(lp[i]) - mpmath.log(r)) <= 1e-12 * max(1, abs(mpmath.log(r))), (mu, i)


def test_steep_singular_end_away_from_zero_raises():
    # Beta(1, 3/10): density ~ (1 - x)^(-7/10) at x = 1, where the float64 argument of the
    # density cannot resolve the distance to the end below 1.1e-16 (a mass ~ (1e-16)^0.3 lies
    # there): the order-2 map leaves t^(-2/5) and the quadrature refuses (QuadratureError)
    fam = derive.family_from_sympy_stats(sympy.stats.Beta("X", 1, sympy.Rational(3, 10)))
    with pytest.raises(numeric.QuadratureError):
        numeric.probs(np.array([0.1, 0.0, -0.2]), family=fam)
