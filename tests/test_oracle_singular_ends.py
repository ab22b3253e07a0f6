"""derive.oracle on densities unbounded at a finite support end, ``phi ~ (x - end)^a`` with
``-1 < a < 0`` (sympy.stats Arcsin(0, 1) and Beta(1/2, 1/2) at both ends, Beta(3/10, 1),
Beta(1/2, 2), ChiSquared(1) at the left end): the oracle's pieces next to such a kink are
integrated in ``s``, ``x = kink +- L s^k`` (derive.oracle._quadrature.PowerPiece).

Reference: the quantile form ``p_i = int_0^1 prod_{j != i} Phi(Q(u) + mu_i - mu_j) du``
(tests/_user_family_refs.quantile_probs: a different, bounded integrand, mpmath tanh-sinh
split at its kinks) with Phi and Q written by hand, not taken from sympy.stats; 30-digit
oracle values must agree to 1e-25 relative, exact zeros exactly.
"""

import mpmath as mp
import numpy as np
import pytest

from _user_family_refs import quantile_probs


def _beta_half_2_cdf(z):
    # Beta(1/2, 2): I_z(1/2, 2) = (3 sqrt z - z^(3/2)) / 2
    return (3 * mp.sqrt(z) - z * mp.sqrt(z)) / 2


def _beta_half_2_quantile(u):
    # (3t - t^3)/2 = u with t = 2 sin(theta): sin(3 theta) = u
    return (2 * mp.sin(mp.asin(u) / 3)) ** 2


_ARCSIN = (lambda z: 2 / mp.pi * mp.asin(mp.sqrt(z)), lambda u: mp.sin(mp.pi * u / 2) ** 2, 0, 1)

#: key -> (sympy.stats constructor arguments, cdf, quantile, lo, hi)
CASES = {
    "Arcsin(0,1)": (("Arcsin", 0, 1),) + _ARCSIN,
    "Beta(1/2,1/2)": (("Beta", "1/2", "1/2"),) + _ARCSIN,
    "Beta(3/10,1)": (("Beta", "3/10", 1), lambda z: z ** (mp.mpf(3) / 10), lambda u: u ** (mp.mpf(10) / 3), 0, 1),
    "Beta(1/2,2)": (("Beta", "1/2", 2), _beta_half_2_cdf, _beta_half_2_quantile, 0, 1),
    "ChiSquared(1)": (("ChiSquared", 1), lambda z: mp.erf(mp.sqrt(z / 2)), lambda u: 2 * mp.erfinv(u) ** 2, 0, None),
}

_FAMILIES = {}


def _family(key):
    if key not in _FAMILIES:
        import sympy as sp
        import sympy.stats

        import derive

        name, *args = CASES[key][0]
        X = getattr(sympy.stats, name)("X", *[sp.Rational(a) if isinstance(a, str) else a for a in args])
        _FAMILIES[key] = derive.family_from_sympy_stats(X)
    return _FAMILIES[key]


def _check(key, mu, dps=30):
    from derive import oracle

    _, F, Q, lo, hi = CASES[key]
    got = oracle.probs(mu, _family(key), dps=dps)
    # tiny entries keep their mass at 1 - u ~ p: the reference needs that many more digits
    smallest = min([abs(mp.log10(p)) for p in got if p > 0])
    ref = quantile_probs(F, Q, lo, hi, mu, dps, guard=20 + 2 * int(smallest))
    for i, (g, r) in enumerate(zip(got, ref)):
        if r == 0:
            assert g == 0, (key, mu, i, g)
        else:
            assert abs(g - r) <= mp.mpf(10) ** (5 - dps) * r, (key, mu, i, mp.nstr(g, dps), mp.nstr(r, dps))


def _rows(key, n, seed):
    """s N(0, 1) / 5 rows (s = 1, 2, 5: spreads up to and beyond the width 1 of the bounded
    supports), a tie block, and a row with entries below the reach of the top (p = 0 for a
    bounded support) or far below it (ChiSquared(1): p ~ 1e-29, checked by the oracle's
    survival form as well)."""
    rng = np.random.default_rng(seed)
    rows = [[float(f"{v:.6g}") for v in rng.normal(size=n) * s / 5] for s in (1, 2, 5)]
    tie = list(rows[0])
    tie[1] = tie[0]
    rows.append(tie)
    far = -130.0 if CASES[key][4] is None else -1.5
    rows.append([0.0, -0.999] + [far] * (n - 2) if n > 2 else [0.0, far])
    return rows


def test_power_end_oracle_spike():
    # density t^(-0.99) / 100 on [0, 1] (F = t^(1/100)): a plain Gauss-Legendre piece
    # converges like N^(-0.02); with the end map (k = 100) it is analytic in s
    import sympy as sp

    from derive import family_from_cdf, oracle

    t = sp.Symbol("t", real=True)
    fam = family_from_cdf(t ** sp.Rational(1, 100), t, sp.Interval(0, 1), name="spiky")
    mu = ["0.5", 0]
    got = oracle.probs(mu, fam, dps=30)
    ref = quantile_probs(lambda z: z ** (mp.mpf(1) / 100), lambda u: u ** 100, 0, 1, mu, 30)
    for g, r in zip(got, ref):
        assert abs(g - r) <= mp.mpf(10) ** -25 * r, (g, r)


_SLOW = [(key, n, k) for key in CASES if key != "Beta(1/2,1/2)"
         for n, k in ((2, 2), (2, 4), (3, 0), (3, 3), (3, 4), (5, 2))] + [("Beta(1/2,1/2)", 2, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("key,n,k", _SLOW)
def test_power_end_oracle(key, n, k):
    # Beta(1/2, 1/2) is the arcsine law: sympy.stats writes its CDF through complex acosh
    # terms that cancel (several times slower to evaluate), so it runs on one row only
    _check(key, _rows(key, n, n)[k])


@pytest.mark.slow
@pytest.mark.parametrize("mu", [(30.0, 0.0, 0.0), (20.0, 0.0, -3.0)])
def test_mass_within_1e_13_of_a_kink(mu):
    # sympy.stats Gompertz(1, 1/2), F = 1 - exp(-(e^x - 1)/2): the losers' integrands fall by
    # e^(e^30 / 2) per unit right of the top's support end, their mass lies within ~2e-13 of it
    # (log p ~ -5.3e12); the reconnaissance keeps that hump's width, so pieces reach it.
    # Reference: the exact finite sum of exponentials (tests/_user_family_refs.gompertz_exact)
    import sympy as sp
    import sympy.stats

    import derive
    from _user_family_refs import gompertz_exact

    fam = derive.family_from_sympy_stats(sympy.stats.Gompertz("X", 1, sp.Rational(1, 2)))
    got = derive.oracle.probs(list(mu), fam, dps=30)
    ref = gompertz_exact([repr(m) for m in mu], 1, "0.5", 60)
    with mp.workdps(60):
        for g, r in zip(got, ref):
            assert abs(g / r - 1) <= mp.mpf(10) ** -25, (mu, g, r)
