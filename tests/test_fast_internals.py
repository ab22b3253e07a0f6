"""Building blocks of the large-n engine ``numeric._fast`` against exact values.

* the lattice split ``v = z / spacing = rint(v) + frac`` is checked in exact
  rational arithmetic (``fractions.Fraction`` of the float64 inputs);
* the lazily computed grid sums (coarse rows, exact rows over a range) are
  checked against the full Toeplitz sum evaluated term by term with
  ``math.fsum`` (correctly rounded) from the same kernel tables;
* the fine-table interpolation of grid samples is checked against the
  sampled function itself (a polynomial of degree < 16 is reproduced to
  rounding, a smooth function to its interpolation error);
* ``exp_terms`` against ``math.exp``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from numeric import _fast
from numeric._exp import TERM_FLOOR, exp_terms
from numeric.families import get_family


def _split(z, inv):
    frac = np.empty_like(z)
    tmp = np.empty_like(z)
    idx = np.empty(z.shape, dtype=np.int64)
    _fast._split_lattice(z, inv, _fast._MAGIC_BITS, frac, tmp, idx)
    return idx, frac


@pytest.mark.parametrize("inv", [1.0, 16.0, 256.0, 512.0])
def test_lattice_split_is_exact(inv):
    rng = np.random.default_rng(int(inv))
    z = np.concatenate([
        rng.standard_normal(2000) * 10.0,
        rng.uniform(-2.0 ** 40, 2.0 ** 40, 500),
        (rng.integers(-1000, 1000, 300) + 0.5) / inv,           # ties: exactly half-way
        rng.integers(-1000, 1000, 300) / inv,                   # on the lattice
        np.array([0.0, -0.0, 5e-324, -5e-324, 1e-310, 2.0 ** -1074 * 3, 1e-300]),
        np.nextafter(np.arange(-50, 50) / inv, np.inf),
    ])
    idx, frac = _split(z, inv)
    for zi, k, f in zip(z.tolist(), idx.tolist(), frac.tolist()):
        v = Fraction(zi) * Fraction(inv)
        assert Fraction(k) + Fraction(f) == v, (zi, k, f)
        assert abs(f) <= 0.5, (zi, f)
        if abs(f) == 0.5:
            assert k % 2 == 0, (zi, k)      # ties to even


def test_row_origin_shift_is_exact_for_large_offsets():
    rng = np.random.default_rng(7)
    for off in (2.0 ** 41, -3e14, 1e15):
        z = off + rng.uniform(-50.0, 50.0, 400)
        zz, (lo, hi) = _fast._near_origin(z)
        zmax = float(z.max())
        for a, b in zip(z.tolist(), zz.tolist()):
            assert Fraction(a) - Fraction(zmax) == Fraction(b)
        assert (lo, hi) == (float(zz.min()), 0.0)
    z = rng.uniform(-50.0, 50.0, 400)
    zz, _ = _fast._near_origin(z)
    assert zz is z


@pytest.mark.parametrize("name, table", [("normal", "A"), ("normal", "B"), ("logistic", "A"),
                                         ("gumbel_min", "A")])
def test_lazy_grid_sums_match_termwise_sums(name, table):
    fam = get_family(name)
    spec = get_family(name).fast
    cache = _fast._cache_for(fam)
    z = np.random.default_rng(3).standard_normal(3000) * 1.5
    geo = _fast._Geo(z, spec, check_cost=False)
    M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    s0, A, B = cache.get(geo.kL - (geo.P - 1))
    T = A if table == "A" else B
    H = spec.H

    def termwise(k):       # sum_b sum_r M[r, b] T_r(k - b) (-H)^r, correctly rounded
        terms = []
        for b in range(geo.P):
            s = k - b
            if s > cache.s_hi:
                continue
            row = T[s - s0]
            terms.extend(M[r, b] * row[r] * (-H) ** r for r in range(spec.R + 1))
        return math.fsum(terms)

    gs = _fast._GridSum(M, geo, spec, cache, table)
    coarse = gs.coarse()
    a, b = geo.G // 3, geo.G // 3 + 40
    v = gs.ensure(a, b)
    assert np.isnan(v[:a]).all() and np.isnan(v[b:]).all()
    v = gs.ensure(a - 10, b + 5)            # grows the range on both sides
    ks = list(range(a - 10, b + 5, 3))
    for k in ks:
        ref = termwise(geo.kL + k)
        assert abs(v[k] - ref) <= 1e-15 * max(1.0, abs(ref)), (k, v[k], ref)
    for i in range(0, len(coarse), 7):
        ref = termwise(geo.kL + i * _fast._COARSE)
        assert abs(coarse[i] - ref) <= 1e-15 * max(1.0, abs(ref)), (i, coarse[i], ref)


def test_fine_interpolation_reproduces_polynomials_and_smooth_functions():
    k = np.arange(400, dtype=np.float64)
    rng = np.random.default_rng(11)
    pos = rng.uniform(40.0, 360.0, 5000)
    # degree 15 < 16 stencil points: the interpolant is the polynomial itself
    c = rng.standard_normal(16) / np.arange(1, 17) ** 2

    def poly(x):
        u = (x - 200.0) / 200.0
        return np.polyval(c, u) * 50.0

    got = _fast._interp_fine(poly(k), 0, k.size, pos)
    ref = poly(pos)
    assert np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))) < 5e-14
    # a sum of shifted log Phi (what the engine interpolates), spacing 1/16 in t
    fam = get_family("normal")
    shifts = rng.uniform(-3.0, 3.0, 50)

    def logF(x):
        t = x[:, None] / 16.0 - 12.5 - shifts[None, :]
        return fam.logcdf(t).sum(axis=1)

    got = _fast._interp_fine(logF(k), 0, k.size, pos)
    ref = logF(pos)
    assert np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))) < 2e-15
    with pytest.raises(NotImplementedError):
        _fast._interp_fine(poly(k), 0, k.size, np.array([2.0]))


def test_exp_terms_floor():
    x = np.array([0.0, -1.0, -699.0, -700.0, -745.0, -1e300, -np.inf])
    got = exp_terms(x.copy())
    ref = [math.exp(max(v, TERM_FLOOR)) for v in x.tolist()]
    assert got.tolist() == ref


def test_gumbel_min_log_vjp_refined_grid_vs_quadrature():
    """gumbel_min ``log_probs_vjp`` with dense cotangents: rows whose log T2 the grid's
    stencils cannot resolve (weights 1 / p_j of entries far below the top) are redone on
    the grid _REFINE times finer; ``N(0, 1)`` rows and a clustered row with exact ties,
    every entry of the rows served against the quadrature within the README's 1e-10 of the row's largest
    entry (the entries here share the scale of their sums of |terms|), rows summing to 0."""
    import numeric

    rng = np.random.default_rng(13)
    n = 1000
    clus = 3.0 * rng.normal(size=4)[rng.integers(0, 4, size=n)] + 1e-3 * rng.normal(size=n)
    clus[: n // 4] = clus[rng.integers(0, n, size=n // 4)]
    clus[1] = clus.max()
    x = np.stack([rng.normal(size=n), rng.normal(size=n), clus])
    g = rng.normal(size=x.shape)
    F = get_family("gumbel_min")
    spec, cache = get_family("gumbel_min").fast, _fast._cache_for(F)
    coarse = []
    for r in range(3):
        try:
            _fast._row_vjp(x[r], g[r], F, spec, cache, log=True)
            coarse.append(True)
        except NotImplementedError:
            coarse.append(False)
    v, ok = _fast.fast_log_probs_vjp(x, g, F, rows=True)
    # the s = 1 rows are served, some of them on the refined grid; a row declined even
    # there goes to the quadrature in the public call
    assert ok[:2].all() and not all(coarse[:2])
    for r in np.flatnonzero(ok):
        ref = numeric.log_probs_vjp(x[r], g[r], "gumbel_min", method="quadrature")
        assert np.all(np.abs(v[r] - ref) <= 1e-10 * np.abs(ref).max()), np.abs(v[r] - ref).max()
        assert abs(math.fsum(v[r])) <= 1e-12 * np.abs(v[r]).sum()


@pytest.mark.parametrize("name", ["normal", "logistic", "gumbel_min"])
def test_row_engine_coarse_peaks_match_full_search(name):
    """The row-batched engine finds each node's coarse peak between those of the sampled
    nodes around it (``log h`` concave: the smallest maximizer does not decrease with
    the node); against the argmax over every coarse column of the node's row."""
    from numeric import _fast_rows as fr

    fam = get_family(name)
    rng = np.random.default_rng(7)
    z = np.concatenate([s * rng.standard_normal((3, 400)) for s in (1.0, 2.0, 4.0)])
    z[-1, :100] = z[-1, 0]                   # a block of ties
    lo_i, P, ok = fr._prepare(z, fam, wide=True)
    checked = 0
    for p in np.unique(P[ok]):
        rows = np.flatnonzero(ok & (P == p))
        pl = fr._plan(fam, int(p))
        M = fr._moments(z[rows], lo_i[rows], fam.fast, pl.P)
        m = rows.size
        Lc = fr._matmul_rows(M[:fr._WIN_R].transpose(1, 0, 2).reshape(m, -1), pl.Wc, np.empty((m, pl.Wc.shape[1])))
        _, _, jm = fr._windows(pl, M, peaks=True)
        full = np.argmax(pl.LHc[None, :, :] + Lc[:, None, :], axis=-1)
        assert np.array_equal(jm, full)
        checked += m
    assert checked >= 3


def test_signed_logadd_against_direct_sums():
    """``_signed_logadd`` (the row-batched dense VJP's sum of signed Gamma bands in log
    space) against the plain float sum where that is exact enough, with exact
    cancellation and empty terms giving ``-inf``."""
    from numeric._fast_grid import _signed_logadd

    rng = np.random.default_rng(3)
    l1, l2 = rng.uniform(-30, 30, size=(2, 500))
    n1, n2 = rng.random((2, 500)) < 0.5
    l, neg = _signed_logadd(l1, n1, l2, n2)
    direct = np.where(n1, -1.0, 1.0) * np.exp(l1) + np.where(n2, -1.0, 1.0) * np.exp(l2)
    hi = np.maximum(l1, l2)
    # (e^l rounds by |l| ulps: the log's own rounding, magnified by exp)
    assert np.all(np.abs(np.where(neg, -1.0, 1.0) * np.exp(l) - direct) <= 2.3e-16 * (4 + 2 * np.abs(hi)) * np.exp(hi))
    l, _ = _signed_logadd(np.array([2.0, -np.inf, -np.inf]), np.array([False, False, True]),
                          np.array([2.0, 1.5, -np.inf]), np.array([True, True, False]))
    assert l[0] == -np.inf and l[1] == 1.5 and l[2] == -np.inf
