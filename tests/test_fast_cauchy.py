"""The Cauchy part of the large-n fast path (``numeric._fast_cauchy``):
node integrals (log probabilities) and the fast VJP, against independent
references computed here:

* mpmath quadrature over the whole line (algebraic tails: breakpoints out
  to 1e7 and +-inf) of ``p_c = int h(x - a_c) prod_d Phi(x - a_d)^m_d dx``
  for clustered scores (``k`` distinct values ``a_c`` with multiplicities
  ``m_c``, any n), and for a few distinct scores;
* mpmath quadrature of the VJP identity ``(J^T g)_c = int h_c F (g_c S - Gamma)``,
  ``S = sum_j h_j``, ``Gamma = sum_j g_j h_j``;
* mpmath central differences of ``sum_i g_i p_i`` (independent of that identity);
* the O(n G) quadrature VJP of ``numeric.probs_vjp(..., method="quadrature")``;
* ``derive.oracle.log_probs`` (25 digits) for a few distinct scores;
* the identity ``rho_S = (log g)'`` (by parts) against finite differences.

The cauchy engine spec (``get_family("cauchy").fast``) is checked to carry the
values these tests validate (``RECOMMENDED``).
"""

from __future__ import annotations

import dataclasses
import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from numeric import _fast
from numeric._fast_cauchy import cauchy_node_log_g, cauchy_node_rhos, cauchy_nodes, fast_cauchy_vjp_row
from numeric.families import get_family

FAM = get_family("cauchy")
LOG_1E300 = math.log(1e-300)

# Node spacing H (ms = 1) with a 12-point stencil: at ms = 4 the interpolation
# of log g between nodes is off by up to 3e-8 for n <= 300 (log g is analytic
# only in |Im m| < 2 when the near field carries weight); pads for the near
# field |x - c| <= T <= 2.4 (a + 1/2) + 1/4 of numeric._fast_cauchy.
RECOMMENDED = dict(ms=1, q=12, pad_left=5.0, pad_right=5.0, pad_factor=0.7)


def test_family_carries_the_validated_spec():
    spec = FAM.fast
    assert spec.heavy and spec.tail == 1.0
    assert dataclasses.replace(spec, **RECOMMENDED) == spec


# ---------------------------------------------------------------------------
# mpmath references (written out here, independent of numeric)
# ---------------------------------------------------------------------------

def _mp_logcdf(t):
    # 1/2 + atan(t)/pi = atan(-1/t)/pi for t < 0 (no cancellation in the left tail)
    return mp.log(mp.atan(-1 / t) / mp.pi) if t < -1 else mp.log(mp.mpf(1) / 2 + mp.atan(t) / mp.pi)


def _mp_hazard(t):
    return mp.exp(-mp.log(mp.pi) - mp.log1p(t * t) - _mp_logcdf(t))


def _breaks(a):
    pts = sorted({float(min(a)) - 50.0, *map(float, a), float(max(a)) + 50.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7})
    return [-mp.inf] + [mp.mpf(v) for v in pts] + [mp.inf]


def _mp_cluster(a, counts, weights=None, dps=20):
    """log p_c per cluster and, with ``weights`` (cotangent per cluster), the VJP
    ``g_c int h_c F S - int h_c F Gamma`` per cluster (mpf)."""
    logp, vjp = [], []
    with mp.workdps(dps):
        A = [mp.mpf(float(v)) for v in a]
        cnt = [int(v) for v in counts]
        k = len(A)

        def logF(x):
            return mp.fsum(cnt[d] * _mp_logcdf(x - A[d]) for d in range(k))

        for c in range(k):
            pts = _breaks(a)
            logp.append(mp.log(mp.quad(lambda x, c=c: _mp_hazard(x - A[c]) * mp.exp(logF(x)), pts)))
            if weights is not None:
                W = [mp.mpf(float(w)) for w in weights]

                def t1(x, c=c):
                    return _mp_hazard(x - A[c]) * mp.exp(logF(x)) * mp.fsum(
                        cnt[d] * _mp_hazard(x - A[d]) for d in range(k))

                def t2(x, c=c):
                    return _mp_hazard(x - A[c]) * mp.exp(logF(x)) * mp.fsum(
                        cnt[d] * W[d] * _mp_hazard(x - A[d]) for d in range(k))

                vjp.append(W[c] * mp.quad(t1, pts) - mp.quad(t2, pts))
    return logp, vjp


# ---------------------------------------------------------------------------
# fast path (through numeric._fast when wired, else the same pieces by hand)
# ---------------------------------------------------------------------------

def _parts(z):
    spec = FAM.fast
    cache = _fast._cache_for(FAM)
    geo = _fast._Geo(z, spec, check_cost=False)
    M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    LF = _fast._spread_convolve(M, geo.kL, geo.kR, spec, cache)
    return spec, cache, geo, M, LF


def _fast_log_probs(z):
    return _fast.fast_log_probs(np.asarray(z, dtype=np.float64)[None, :], FAM, check_cost=False)[0]


def _fast_vjp(z, g):
    z = np.asarray(z, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    try:
        return _fast.fast_probs_vjp(z[None, :], g[None, :], FAM, check_cost=False)[0]
    except NotImplementedError:
        # numeric._fast not yet wired to the cauchy VJP: call it on the same parts
        spec, cache, geo, M, _ = _parts(z)
        _, state = cauchy_nodes(z, FAM, geo, M, spec, cache)
        return fast_cauchy_vjp_row(z, g, FAM, spec, cache, geo, M, state, _fast_log_probs(z))


def _check_log_probs(lp, ref, where):
    """issue #6: rel. error <= 1e-13 in p where p >= 1e-300 (2 ulps of log p where
    coarser), |log p error| <= 1e-12 max(1, |log p|) everywhere."""
    rel_p = np.abs(np.expm1(lp - ref))
    tol = np.maximum(1e-13, 2.0 * np.spacing(np.abs(ref)))
    bad = ((ref >= LOG_1E300) & (rel_p > tol)) | (np.abs(lp - ref) > 1e-12 * np.maximum(1.0, np.abs(ref)))
    assert not bad.any(), f"{where}: max rel p err {rel_p.max():.3g} at {np.argmax(rel_p)}"


# ---------------------------------------------------------------------------
# log probabilities
# ---------------------------------------------------------------------------

CLUSTERS = [
    # (spread, counts): n from 100 to 1e4, spreads up to 60 (standardized)
    (1.0, [1, 3, 96]),
    (20.0, [1, 30, 900, 69]),
    (60.0, [1, 5, 200, 2, 9792]),
    # the near field carries weight: few scores, or a few far above the rest
    (60.0, [1, 3, 12]),
    (3.0, [2, 3, 11]),
    (20.0, [1000, 1, 2]),
    pytest.param(60.0, [40, 1, 59], marks=pytest.mark.slow),
    # many scores: the near field is skipped (F(c + T) < e^-400), far field only
    (5.0, [3000, 1, 7000]),
    (2.0, [30000, 1, 70000]),
    pytest.param(60.0, [1, 1, 1, 1, 96], marks=pytest.mark.slow),
]


@pytest.mark.parametrize("spread,counts", CLUSTERS)
def test_clustered_log_probs_match_mpmath(spread, counts):
    rng = np.random.default_rng([int(spread), sum(counts)])
    a = np.sort(rng.uniform(0.0, spread, len(counts))) + 0.0371
    a[0], a[-1] = 0.0371, spread + 0.0371
    ref_c = np.array([float(v) for v in _mp_cluster(a, counts)[0]])
    z = np.repeat(a, counts)
    perm = rng.permutation(z.size)
    lp = _fast_log_probs(z[perm])
    _check_log_probs(lp, np.repeat(ref_c, counts)[perm], f"spread {spread} n={z.size}")
    assert abs(np.exp(lp).sum() - 1.0) < 1e-14


@pytest.mark.slow
def test_node_log_g_matches_mpmath_at_the_nodes():
    # g(m) = int h(x - m) F(x) dx at a few node positions, 20 distinct scores over 40
    z = np.random.default_rng(5).uniform(-20.0, 20.0, 20)
    spec, _, geo, M, LF = _parts(z)
    logg = cauchy_node_log_g(z, FAM, geo, LF, spec, M)
    m = geo.lo + spec.H * np.arange(geo.lL, geo.lR + 1, geo.ms)
    assert logg.size == m.size
    with mp.workdps(20):
        Z = [mp.mpf(float(v)) for v in z]
        for i in (0, m.size // 3, m.size - 1):
            mm = mp.mpf(float(m[i]))
            ref = mp.log(mp.quad(lambda x: _mp_hazard(x - mm) * mp.exp(mp.fsum(_mp_logcdf(x - v) for v in Z)),
                                 _breaks(list(z) + [float(m[i])])))
            assert abs(logg[i] - float(ref)) <= 2e-15 * max(1.0, abs(float(ref))), (i, logg[i], float(ref))


def test_distinct_scores_match_mpmath():
    z = np.random.default_rng(11).standard_normal(30) * 6.0
    lp = _fast_log_probs(z)
    picks = [int(np.argmin(z)), int(np.argsort(z)[15])]
    for i in picks:
        with mp.workdps(20):
            Z = [mp.mpf(float(v)) for v in z]
            ref = float(mp.log(mp.quad(
                lambda x: _mp_hazard(x - Z[i]) * mp.exp(mp.fsum(_mp_logcdf(x - v) for v in Z)),
                _breaks(z))))
        _check_log_probs(lp[i:i + 1], np.array([ref]), f"distinct entry {i}")


def test_near_field_skipped_only_when_negligible():
    # many scores: F(c + T) < e^-400, the log F grid is never built
    spec, cache, geo, M, LF = _parts(np.repeat([0.0, 1.5, 4.0], [3000, 1, 7000]))
    logg, state = cauchy_nodes(None, FAM, geo, M, spec, cache)
    assert not state.need_near and state.LF is None
    np.testing.assert_array_equal(logg, cauchy_node_log_g(None, FAM, geo, LF, spec, M))
    # few scores: it is, built only right of the provably negligible panels and up
    # to the last point the near field's stencils read, and it is the grid of
    # numeric._fast there
    z = np.repeat([0.0, 1.5, 4.0], [30, 1, 70])
    spec, cache, geo, M, LF = _parts(z)
    logg, state = cauchy_nodes(z, FAM, geo, M, spec, cache)
    assert state.need_near and state.k_from > geo.kL and state.k_to < geo.kR
    np.testing.assert_allclose(state.LF, LF[state.k_from - geo.kL:state.k_to - geo.kL + 1], rtol=1e-15, atol=0)
    np.testing.assert_allclose(logg, cauchy_node_log_g(z, FAM, geo, LF, spec, M), rtol=1e-15, atol=0)
    # the VJP from the state equals the VJP recomputed from log F
    g = np.random.default_rng(0).standard_normal(z.size)
    lp = _fast_log_probs(z)
    np.testing.assert_array_equal(fast_cauchy_vjp_row(z, g, FAM, spec, cache, geo, M, state, lp),
                                  fast_cauchy_vjp_row(z, g, FAM, spec, cache, geo, M, LF, lp))


@pytest.mark.slow
@pytest.mark.parametrize("n,spread", [(24, 40.0), (60, 120.0)])
def test_matches_derive_oracle(n, spread):
    from derive import oracle
    z = np.random.default_rng(n).uniform(-spread / 2, spread / 2, n)
    ref = np.array([float(v) for v in oracle.log_probs(z.tolist(), "cauchy", dps=25)])
    _check_log_probs(_fast_log_probs(z), ref, f"oracle n={n}")


def test_node_cost_does_not_grow_with_n():
    # the node step reads the scores only through the bin moments: the same
    # moments (all scores in a handful of bins) give the same node values
    z1 = np.repeat([0.0, 0.5, 3.0], [10, 20, 30])
    z2 = np.repeat([0.0, 0.5, 3.0], [1000, 2000, 3000])
    for z in (z1, z2):
        spec, _, geo, M, LF = _parts(z)
        logg = cauchy_node_log_g(z, FAM, geo, LF, spec, M)
        again = cauchy_node_log_g(z, FAM, geo, LF, spec)   # M recomputed
        np.testing.assert_array_equal(logg, again)


# ---------------------------------------------------------------------------
# VJP
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("a,counts", [
    ([0.0, 1.3, 2.2], [1, 4, 15]),                    # n = 20
    pytest.param([-3.0, 0.4, 7.5, 20.0], [50, 1, 140, 9], marks=pytest.mark.slow),   # n = 200, spread 23
    pytest.param([0.0, 1.5, 4.0], [3000, 1, 7000], marks=pytest.mark.slow),          # n = 1e4: far field only
    ([-1.0, 0.2, 3.0], [30000, 2, 70000]),            # n = 1e5
])
def test_vjp_matches_mpmath_identity(a, counts):
    rng = np.random.default_rng(len(counts))
    gc = rng.standard_normal(len(counts))
    _, ref_c = _mp_cluster(np.array(a), counts, weights=gc, dps=20)
    ref_c = np.array([float(v) for v in ref_c])
    z = np.repeat(a, counts)
    g = np.repeat(gc, counts)
    perm = rng.permutation(z.size)
    v = _fast_vjp(z[perm], g[perm])
    ref = np.repeat(ref_c, counts)[perm]
    assert np.abs(v - ref).max() <= 1e-10 * np.abs(ref).max()
    # J^T g sums to 0, to the tolerance of the property tests (tests/test_properties.py):
    # rho_S = (log g)' comes from the interpolant of log g, so the identity holds to its accuracy
    assert abs(v.sum()) <= 1e-12 * (np.abs(v).sum() + np.abs(g).max())


@pytest.mark.slow
def test_vjp_matches_mpmath_finite_differences():
    # d/dz_k sum_i g_i p_i by central differences of mpmath probabilities: moving
    # one member of a cluster makes it a cluster of its own (k + 1 integrals)
    a = [0.0, 0.9, 2.5]
    counts = [2, 5, 13]
    gcl = [0.7, -1.1, 0.4]
    eps = mp.mpf("1e-10")                            # truncation ~ eps^2: 1e-20
    with mp.workdps(32):
        fd = []
        for c in range(3):
            vals = []
            for sgn in (1, -1):
                aa = list(a) + [mp.mpf(a[c]) + sgn * eps]
                cc = list(counts)
                cc[c] -= 1
                cc = cc + [1]
                keep = [i for i in range(4) if cc[i] > 0]
                aa = [aa[i] for i in keep]
                cc = [cc[i] for i in keep]
                gg = [(gcl + [gcl[c]])[i] for i in keep]
                logp, _ = _mp_cluster_mp(aa, cc)
                vals.append(mp.fsum(cc[i] * gg[i] * mp.exp(logp[i]) for i in range(len(aa))))
            fd.append(float((vals[0] - vals[1]) / (2 * eps)))
    z = np.repeat(a, counts)
    g = np.repeat(gcl, counts)
    v = _fast_vjp(z, g)
    got = v[np.cumsum(counts) - counts]
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-10 * max(abs(x) for x in fd))


def _mp_cluster_mp(A, cnt):
    """log p per cluster at the working precision for mpf cluster values ``A``."""
    k = len(A)
    out = []
    pts = [-mp.inf] + sorted({*A, min(A) - 50, max(A) + 50, *(mp.mpf(10) ** e for e in range(2, 8))}) + [mp.inf]
    for c in range(k):
        f = lambda x, c=c: _mp_hazard(x - A[c]) * mp.exp(mp.fsum(cnt[d] * _mp_logcdf(x - A[d]) for d in range(k)))  # noqa: E731
        out.append(mp.log(mp.quad(f, pts)))
    return out, None


@pytest.mark.parametrize("n", [1000, pytest.param(10000, marks=pytest.mark.slow)])
def test_vjp_matches_quadrature_vjp(n):
    rng = np.random.default_rng(n)
    z = rng.standard_normal(n) * 2.0
    z[:3] = [25.0, -30.0, 24.5]                      # a wide, uneven row
    g = rng.standard_normal(n)
    v = _fast_vjp(z, g)
    ref = numeric.probs_vjp(z, g, "cauchy", method="quadrature")
    assert np.abs(v - ref).max() <= 1e-10 * np.abs(ref).max()


def test_vjp_of_constant_cotangent_is_zero():
    z = np.random.default_rng(2).standard_normal(3000) * 3.0
    v = _fast_vjp(z, np.full(z.size, 2.5))
    assert np.abs(v).max() < 1e-15


def test_rhos_are_the_node_ratios():
    # rho_S with S = sum_j h(x - z_j) and rho_Gamma with gc = 1: equal ratios;
    # and log g identical to cauchy_node_log_g
    z = np.random.default_rng(4).uniform(-5.0, 5.0, 500)
    spec, cache, geo, M, LF = _parts(z)
    S = _fast._spread_convolve(M, geo.kL, geo.kR, spec, cache, table="B")
    ones = np.ones(z.size)
    Mg = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R, weights=ones)
    Gam = _fast._spread_convolve(Mg, geo.kL, geo.kR, spec, cache, table="B")
    logg, rS, rG = cauchy_node_rhos(FAM, geo, LF, S, Gam, spec, M, Mg)
    np.testing.assert_array_equal(logg, cauchy_node_log_g(z, FAM, geo, LF, spec, M))
    np.testing.assert_allclose(rG, rS, rtol=1e-14)
    assert np.all(rS > 0)


@pytest.mark.parametrize("z", [np.random.default_rng(8).uniform(-6.0, 6.0, 40),
                               np.random.default_rng(9).standard_normal(20000) * 2.0])
def test_rho_S_is_the_derivative_of_log_g(z):
    # F S = F' and parts: int h(x - m) F S dx = -int h'(x - m) F dx = g'(m), so
    # rho_S = (log g)'; compare with 8th-order central differences on the nodes
    spec, cache, geo, M, LF = _parts(z)
    S = _fast._spread_convolve(M, geo.kL, geo.kR, spec, cache, table="B")
    logg, rS, _ = cauchy_node_rhos(FAM, geo, LF, S, S, spec, M, M)
    step = geo.ms * spec.H
    c = np.array([1 / 280, -4 / 105, 1 / 5, -4 / 5, 0.0, 4 / 5, -1 / 5, 4 / 105, -1 / 280])
    fd = np.convolve(logg, c[::-1], mode="valid") / step
    np.testing.assert_allclose(rS[4:-4], fd, rtol=1e-8, atol=1e-8 * np.abs(rS).max())


def test_near_field_outside_the_grid_is_declined():
    z = np.random.default_rng(1).uniform(0.0, 10.0, 200)
    spec, _, geo, M, LF = _parts(z)
    with pytest.raises(NotImplementedError, match="log F grid"):
        cauchy_node_log_g(z, FAM, geo, LF[: LF.size // 2], spec, M)


# --- the small-n kernel's cauchy spec (numeric.families: SmallSpec core step) ------------

def _small_rows(rng, n):
    """s N(0, 1) rows (s = 1, 2, 5), clusters with exact ties (tied maximum), a linear
    spread of 60."""
    out = [s * rng.normal(size=n) for s in (1.0, 2.0, 5.0)]
    c = np.repeat(3.0 * rng.normal(size=4), -(-n // 4))[:n] + 1e-3 * rng.normal(size=n)
    c[rng.integers(0, n, size=n // 4)] = c[0]
    c[1] = c.max()
    out.append(c)
    out.append(np.linspace(-30.0, 30.0, n))
    return np.array(out)


@pytest.mark.parametrize("n", [pytest.param(40, marks=pytest.mark.slow), 120,
                               pytest.param(250, marks=pytest.mark.slow)])
def test_small_kernel_mid_n_vs_quadrature(n):
    # the small-n kernel's core step at mid n (numeric.families._cauchy_small_step; each row
    # certified by its even/odd agreement, none declined here): log p within 1e-12 max(1, |log p|) and
    # p within 1e-13 relative, float32 input, both VJPs (dense and one-hot) within 1e-10 of
    # the row's scale, all against the quadrature
    from numeric import _batch
    rng = np.random.default_rng(n)
    x = _small_rows(rng, n)
    y = x - x.max(axis=1, keepdims=True)
    assert _batch.batch_log_probs(y, FAM)[1].all()
    lp = numeric.log_probs(x, "cauchy")
    ref = numeric.log_probs(x, "cauchy", method="quadrature")
    assert np.all(np.abs(lp - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
    big = ref >= LOG_1E300
    assert np.all(np.abs(np.expm1(lp[big] - ref[big])) <= 1e-13)
    x32 = x[:2].astype(np.float32)
    ref32 = numeric.probs(x32.astype(np.float64), "cauchy", method="quadrature")
    assert np.allclose(numeric.probs(x32, "cauchy"), ref32, rtol=1e-6, atol=1e-30)
    dense = rng.normal(size=x.shape)
    onehot = np.zeros(x.shape)
    onehot[np.arange(x.shape[0]), rng.integers(0, n, size=x.shape[0])] = 1.0
    for g in (dense, onehot):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            v, w = fn(x, g, "cauchy"), fn(x, g, "cauchy", method="quadrature")
            assert np.all(np.abs(v - w) <= 1e-10 * np.abs(w).max(axis=1, keepdims=True))


@pytest.mark.parametrize("n", [200, 255])
def test_small_kernel_tight_rows_at_large_n(n):
    # rows of nearly equal scores (s = 0.01, 0.1, 0.3) near n = 255 put their mass at
    # x ~ n / pi, where the core step must shrink faster than at mid n
    # (numeric.families._cauchy_small_step): every row certified, and p against the quadrature
    from numeric import _batch
    rng = np.random.default_rng(n + 1)
    x = np.array([s * rng.normal(size=n) for s in (0.01, 0.1, 0.3)])
    y = x - x.max(axis=1, keepdims=True)
    lp, ok = _batch.batch_log_probs(y, FAM)
    assert ok.all()
    ref = numeric.log_probs(x, "cauchy", method="quadrature")
    assert np.all(np.abs(np.expm1(lp - ref)) <= 1e-13)


# ---------------------------------------------------------------------------
# coarse-bin spreading (numeric._fast_cauchy._spread_heavy): rows of >= 240 bins
# ---------------------------------------------------------------------------

def _coarse_rows(n, seed):
    rng = np.random.default_rng(seed)
    wide = np.repeat(np.array([-15.0, -4.0, 3.0, 18.0]), -(-n // 4))[:n]
    wide[::2] += 0.3 * rng.standard_normal(wide[::2].size)      # clusters, half of them ties
    return [5.0 * rng.standard_normal(n), wide,
            (5.0 * rng.standard_normal(n)).astype(np.float32).astype(np.float64)]


def test_coarse_spreading_matches_mpmath():
    """log F and S = sum_j h(x - z_j) on the grid by coarse bins + band, against
    30-digit direct sums: log F within 2.5e-16 max(1, |log F|) (the plain spreading's
    level), S within 2e-15 of itself (positive terms)."""
    from numeric._fast_cauchy import _P_COARSE, _spread_heavy
    spec = FAM.fast
    cache = _fast._cache_for(FAM)
    z = _coarse_rows(150, 21)[1]
    geo = _fast._Geo(z, spec)
    assert geo.P >= _P_COARSE
    M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    LF = _spread_heavy(M, geo.kL, geo.kR, spec, cache, "A")
    S = _spread_heavy(M, geo.kL, geo.kR, spec, cache, "B")
    with mp.workdps(30):
        zs = [mp.mpf(float(v)) for v in z]
        for k in np.linspace(0, LF.size - 1, 7).astype(int):
            x = mp.mpf(geo.lo) + (geo.kL + int(k)) * mp.mpf(spec.H)
            ref = mp.fsum(_mp_logcdf(x - zj) for zj in zs)
            assert abs(LF[k] - float(ref)) <= 2.5e-16 * max(1.0, abs(float(ref)))
            ref = mp.fsum(_mp_hazard(x - zj) for zj in zs)
            assert abs(S[k] - float(ref)) <= 2e-15 * float(ref)


@pytest.mark.parametrize("n,full", [(256, False), pytest.param(256, True, marks=pytest.mark.slow),
                                    pytest.param(1000, True, marks=pytest.mark.slow)])
def test_coarse_rows_match_quadrature(n, full):
    """Rows whose near field goes through the coarse spreading (s = 5 normal, four wide
    clusters with ties, float32-rounded scores, and float32 input): log p and both VJPs
    against method="quadrature" within the README's guarantees (observed <= 4.2e-16
    max(1,|log p|), VJPs <= 4e-15 of their largest entry).  The default tier takes the
    clusters and the float32 input."""
    from numeric._fast_cauchy import _P_COARSE
    fam = FAM
    rng = np.random.default_rng(23)
    rows = _coarse_rows(n, 24)
    rows.append(rows[2].astype(np.float32))
    for z in rows if full else rows[1::2]:
        assert _fast._Geo(z.astype(np.float64), fam.fast).P >= _P_COARSE
        z = z[None]
        g = rng.standard_normal(z.shape)
        lq = numeric.log_probs(z, fam, method="quadrature").astype(np.float64)
        lp = numeric.log_probs(z, fam).astype(np.float64)
        assert np.all(np.abs(lp - lq) <= (1e-12 if z.dtype == np.float64 else 1e-6) * np.maximum(1.0, np.abs(lq)))
        if z.dtype != np.float64:
            continue
        for vjp in (numeric.log_probs_vjp, numeric.probs_vjp):
            ref = vjp(z, g, fam, method="quadrature")
            assert np.abs(vjp(z, g, fam) - ref).max() <= 1e-10 * np.abs(ref).max()


@pytest.mark.parametrize("nu", [3.0, pytest.param(1.05, marks=pytest.mark.slow),
                                pytest.param(2.5, marks=pytest.mark.slow), pytest.param(6.0, marks=pytest.mark.slow)])
def test_student_t_coarse_corrections_match_plain_spreading(nu):
    """student_t keeps the plain r = 0 bulk and takes the corrections r >= 1 by band and
    coarse bins: log F within 2.5e-16 max(1, |log F|) of the plain spreading (itself
    within ~2e-16 of 30-digit direct sums), S and the signed Gamma sums within 1e-15 of
    their largest modulus (non-integer nu: the segment-form hazard on the coarse circles)."""
    from numeric._fast_cauchy import _P_COARSE_R1, _spread_heavy
    from numeric._fast_grid import _spread_convolve
    fam = get_family("student_t", nu=nu)
    spec = fam.fast
    cache = _fast._cache_for(fam)
    rng = np.random.default_rng(5)
    for z in _coarse_rows(600, 22)[:2]:
        geo = _fast._Geo(z, spec)
        assert geo.P >= _P_COARSE_R1
        M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
        Mg = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R, weights=rng.standard_normal(z.size))
        a = _spread_convolve(M, geo.kL, geo.kR, spec, cache, table="A")
        b = _spread_heavy(M, geo.kL, geo.kR, spec, cache, "A")
        assert np.all(np.abs(a - b) <= 2.5e-16 * np.maximum(1.0, np.abs(a)))
        for W in (M, Mg):
            a = _spread_convolve(W, geo.kL + 7, geo.kR - 5, spec, cache, table="B")
            b = _spread_heavy(W, geo.kL + 7, geo.kR - 5, spec, cache, "B")
            assert np.abs(a - b).max() <= 1e-15 * np.abs(a).max()
