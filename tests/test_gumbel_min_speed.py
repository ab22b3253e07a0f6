"""gumbel_min on the O(n) engine: log F on the grid with the far scores in closed form
(numeric._gumbel_min_tail.TailSpread, ``f(t) = t + psi(e^t)``) and the three-transcendental
log hazard (numeric.families._gumbel_min_loghazard).

References are independent of the code under test: log F by a direct float64 sum over the
scores (each term ``log(-expm1(-e^t))`` within a few ulps of itself, summed exactly by
``math.fsum``), the log hazard by mpmath at 40 digits, log p by ``method="quadrature"``
(itself tested against the oracle) and, in the slow tier, by the long-double trapezoid
rule of tests/test_numeric_fast.py.  Bounds: README Guarantees (log p within
``1e-12 max(1, |log p|)``); log F within ``1e-15 max(1, |log F|)`` (the engine's own
budget for it, numeric._fast)."""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from numeric import _fast
from numeric._fast_grid import _spread_convolve
from numeric._gumbel_min_tail import TailSpread, _band
from numeric.families import _gumbel_min_loghazard, get_family

FAM = get_family("gumbel_min")


def _direct_log_cdf(x, z):
    """``sum_j log(1 - exp(-e^(x - z_j)))`` by one float64 term per score, summed exactly."""
    t = x - z
    with np.errstate(over="ignore", divide="ignore"):
        u = np.exp(t)
        terms = np.where(t > 0, np.log1p(-np.exp(-u)), np.log(-np.expm1(-u)))
    return math.fsum(terms.tolist())


def _rows():
    rng = np.random.default_rng(1311)
    clus = np.array([-14.0, -3.0, 2.5, 11.0])[rng.integers(0, 4, size=3000)] + 1e-3 * rng.normal(size=3000)
    clus[:700] = clus[rng.integers(0, 3000, size=700)]
    clus[5] = clus.max()
    return {
        "s=5": 5.0 * rng.normal(size=2000),
        "s=10 float32": (10.0 * rng.normal(size=1500)).astype(np.float32).astype(np.float64),
        "spread 150": np.concatenate([np.linspace(-75.0, 75.0, 700), rng.normal(size=300)]),
        "clusters+ties": clus,
    }


@pytest.mark.parametrize("refined", [False, True])
@pytest.mark.parametrize("name", list(_rows()))
def test_tail_spread_vs_direct_sum(name, refined):
    """Every grid row the engine may read, on the family's grid and the 4x finer one: exact
    rows within 1e-15 max(1, |log F|) of the direct sum (rows sampled across the whole grid,
    the far-only rows below every score included), the window scan's coarse rows within
    1e-13, a sub-range call equal to the full call's rows, and the closed form taken (bins
    beyond the band)."""
    z = _rows()[name]
    spec = _fast._refined(FAM.fast) if refined else FAM.fast
    cache = _fast._cache_for(FAM, spec)
    geo = _fast._Geo(z, spec, check_cost=False)
    M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    assert geo.P > 2 * (cache.s_hi + _band(spec))        # the closed form serves this row
    ts = TailSpread(M, spec, cache)
    full = ts(geo.kL, geo.kR)
    coarse = ts(geo.kL, geo.kR, stride=8)
    ks = np.unique(np.r_[0, geo.G - 1, np.linspace(0, geo.G - 1, 40).astype(int),
                         np.random.default_rng(3).integers(0, geo.G, size=20)])
    for k in ks:
        x = geo.lo + (geo.kL + int(k)) * spec.H
        ref = _direct_log_cdf(x, z)
        assert abs(full[k] - ref) <= 1e-15 * max(1.0, abs(ref)), (k, full[k], ref)
        if k % 8 == 0:
            assert abs(coarse[k // 8] - ref) <= 1e-13 * max(1.0, abs(ref)), (k, coarse[k // 8], ref)
    a, b = geo.G // 3, geo.G // 3 + 150
    assert np.array_equal(ts(geo.kL + a, geo.kL + b - 1), full[a:b])
    if geo.P <= 3000:
        # the plain spreading agrees to rounding (its cost grows like P G)
        plain = _spread_convolve(M, geo.kL, geo.kR, spec, cache)
        assert np.all(np.abs(full - plain) <= 1e-15 * np.maximum(1.0, np.abs(plain)))


def test_loghazard_vs_mpmath():
    """``log h = x - log expm1(e^x)`` (and its two tails) within 3e-15 max(1, |log h|) of
    40-digit values, across the switch points x = -30 and e^x = 700 and far beyond."""
    xs = np.r_[np.linspace(-40.0, 8.0, 1201), -30.0, math.log(700.0), math.nextafter(math.log(700.0), 9),
               6.5, 6.6, 20.0, 700.0]
    got = _gumbel_min_loghazard(xs)
    with mp.workdps(40):
        ref = np.array([float(mp.mpf(x) - mp.log(mp.expm1(mp.exp(mp.mpf(x))))) for x in xs])
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 3e-15, (xs[err.argmax()], err.max())
    assert _gumbel_min_loghazard(np.array([-np.inf]))[0] == 0.0
    assert _gumbel_min_loghazard(np.array([700.0]))[0] == 700.0 - math.exp(700.0)
    assert _gumbel_min_loghazard(np.array([1000.0]))[0] == -np.inf


def test_wide_row_log_probs_vs_quadrature(monkeypatch):
    """The per-row engine (closed-form far scores) on a wide s = 5 row of n = 600 and a
    clustered row with ties: log p within the README's 1e-12 max(1, |log p|) of the
    quadrature, the rows served by the engine (no fallback) through the family's
    TailSpread (NumericFamily.spread)."""
    assert FAM.spread is TailSpread
    served = []
    call = TailSpread.__call__
    monkeypatch.setattr(TailSpread, "__call__", lambda self, *a, **k: served.append(a) or call(self, *a, **k))
    rng = np.random.default_rng(77)
    x = 5.0 * rng.normal(size=600)
    clus = np.array([-9.0, 0.0, 6.0])[rng.integers(0, 3, size=600)] + 1e-3 * rng.normal(size=600)
    clus[:150] = clus[rng.integers(0, 600, size=150)]
    clus[7] = clus.max()
    for row in (x, clus):
        got = _fast.fast_log_probs(row[None, :], FAM)[0]
        ref = numeric.log_probs(row, "gumbel_min", method="quadrature")
        err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
        assert err.max() <= 1e-12, err.max()
        assert np.array_equal(numeric.log_probs(row, "gumbel_min"), got)
    assert served


@pytest.mark.slow
def test_wide_row_log_probs_vs_long_double_trapezoid():
    """Slow: s = 8 row of n = 400 against the long-double trapezoid rule of
    tests/test_numeric_fast.py (where long double is extended precision), README bound."""
    from test_numeric_fast import EXTENDED, _ld_gumbel_min_log_probs
    if not EXTENDED:
        pytest.skip("long double is float64 here")
    mu = 8.0 * np.random.default_rng(5).normal(size=400)
    ref = _ld_gumbel_min_log_probs(mu)
    got = numeric.log_probs(mu, "gumbel_min")
    err = np.abs(got - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max() <= 1e-12, err.max()
