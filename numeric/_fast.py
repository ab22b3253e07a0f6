"""Large-n fast path: all n log-probabilities in O(n + grid) work.

Standardized scores ``z`` (one row), noise CDF ``Phi``, ``f = log Phi``,
hazard ``h = f'``.  The max-CDF form (p_i = ∫ h(x - mu_i) F(x) dx) reads

    p_i = g(z_i),      g(m) = int h(x - m) F(x) dx,      log F(x) = sum_j f(x - z_j).

Three steps, none of them O(n * grid):

1. **log F on a uniform grid** ``x_k = lo + k H`` (``H`` a power of two and
   ``lo`` a multiple of it, so grid offsets ``(k - l) H`` are exact).  Each
   score is binned to the nearest centre ``c_b = lo + b H`` with offset
   ``z_j = c_b + u_j H``, ``|u_j| <= 1/2`` -- bin and offset split off
   ``z_j / H`` exactly (:func:`_split_lattice`) -- and ``f`` is Taylor expanded
   about the centre:

       f(x - z_j) = sum_r a_r(x - c_b) (-u_j H)^r,      a_r = f^(r) / r!

   so ``log F(x_k) = sum_b sum_r M[r, b] A_r[k - b]`` with the bin moments
   ``M[r, b] = sum_{j in b} u_j^r`` (one bincount per order) and the
   tables ``A_r[s] = a_r(s H) (-H)^r`` (``_fast_kernels``).  The sum over
   ``b`` is a discrete convolution done *directly* (never an FFT): the bulk
   ``r = 0`` term as a Toeplitz product summed pairwise, so its rounding is
   ``O(log P)`` ulps of ``sum_j |f(x - z_j)| = |log F(x)|`` (all terms have
   one sign).  Only the rows the integrands need are computed
   (:class:`_GridSum`: every 8th row for the windows of step 2, then the
   exact rows over the union of the windows).  Truncation: score ``j`` is off by at most ``|a_{R+1}(t)|
   (H/2)^(R+1)``, ``t = x - z_j``.  Relative to ``|f(t)|`` that is, for the
   normal (``H = 1/16``, ``R = 8``), 1e-19 at ``t = 0``, 6e-18 at 2, 5e-17 at 3,
   6e-16 at 4 (and grows further out, where ``|f| < 1e-5``); at an integrand
   peak ``sum_j h(x - z_j) = |(log h)'(x - z_i)|`` (<= 37 for ``p_i >= 1e-300``)
   and ``|f| <= h`` for ``t > 0``, so the error in ``log F`` there stays below
   ~1e-15.  Logistic (``H = 1/8``, ``R = 7``): at most 1e-14 ``|f(t)|`` for every
   ``t`` and ``sum_j sigma(z_j - x) <= 1`` at a peak.  Measured: ``R = 7`` and
   ``R = 10`` agree to rounding (n = 1e3..1e5, spreads 2..30); ``R = 5`` is off
   by 5e-13.

2. **log g on the grid nodes** ``m_l = lo + l H`` (every ``ms``-th grid point)
   by the trapezoid rule on the
   same grid, in log space: ``log g(m_l) = logsumexp_k(log h(x_k - m_l) +
   log F(x_k)) + log H``.  The integrand is analytic in a strip, so the rule
   converges geometrically while the integrand is resolved; rows whose peak
   is narrower than ``1.7 H`` (normal scores far below many others: width
   ``~ 1 / sqrt(#above)``) are re-integrated on a local grid of step
   ``sigma / 4`` with ``log F`` interpolated there (16-point Lagrange through
   degree-6 fine tables, :func:`_interp_fine`; ``log F`` is a sum of shifted
   smooth functions, so that error is again relative to ``|log F|``), with a
   halved-step convergence check.  Each node sums only
   over its window (:func:`_windows`: the log integrand is concave, so a coarse
   scan bounds where it is above its peak minus 45).

3. **interpolate** ``log g`` at the n scores: a ``q``-point local polynomial on
   the node grid (node value + polynomial of differences), re-expanded once
   into degree-4 Taylor polynomials about ``16`` points per node interval
   (:func:`_fine_tables`); each score's row and offset split off exactly
   (:func:`_split_lattice`), then 5 ``take`` + Horner steps, in cache-sized
   chunks.

Cauchy noise (heavy tails, the maximum sits near ``n / pi``) replaces step 2
by near-field Gauss-Legendre panels plus a far field by multipoles
(``numeric._fast_cauchy``; log F on the grid only where the near field
carries weight); steps 1 and 3 are shared, and so is the VJP's structure.

VJP (:func:`fast_probs_vjp`): ``(J^T g)_i = p_i (g'_i rho_S(z_i) - rho_Gamma(z_i))``
where ``rho_S = (log g)'`` comes from the same Horner pass as ``log p`` and
``rho_Gamma`` needs one more spreading (weighted moments) and one more set of
node integrals.  A one-hot cotangent ``c_y e_y`` needs no ``Gamma``: its entries
are ``-c_y int h_k h_y F`` (over ``p_y`` for ``log p``), one node integral of the
log weight ``log F + log h(x - z_y)`` (:func:`_row_onehot_vjp`).

``log p`` is then renormalised by ``logsumexp(log p)`` (a common shift of
order 1e-15).  Measured error: 1-2 ulps of ``log p`` (so ~1e-13 relative in
``p`` near ``p = 1e-300``, the float64 floor there), ~1e-15 relative for
``p`` above 1e-30.  Every step checks its own assumptions (peak inside the
grid, integrand decayed by ``e^-45`` at the window ends, local rule
converged) and raises ``NotImplementedError`` instead of returning a
doubtful number, as it does when a rough cost model says the grids would
cost more than exact O(n G) quadrature, so the caller can fall back.

No threaded BLAS is called (small products use einsum / np.convolve): on a
loaded machine OpenBLAS worker threads spin and cost more than the work.

>>> import numpy as np
>>> from numeric.families import get_family
>>> lp = fast_log_probs(np.linspace(-3, 3, 5000)[None, :], get_family("normal"))
>>> bool(abs(np.exp(lp).sum() - 1) < 1e-14)
True
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._exp import exp_terms
from ._fast_cauchy import cauchy_nodes, fast_cauchy_vjp_row
# (_MAGIC is read from here by numeric._fast_rows)
from ._fast_grid import (_CHUNK, _LATTICE_MAX, _MAGIC, _MAGIC_BITS, _bin_moments, _eval_at_scores,  # noqa: F401
                         _fine_tables, _signed_logadd, _split_lattice, _spread_convolve)
from ._fast_kernels import FastSpec as _Spec, KernelCache  # noqa: F401

__all__ = ["fast_log_probs", "fast_log_probs_rows", "fast_probs_vjp", "fast_log_probs_vjp", "FAST_FAMILIES"]

FAST_FAMILIES = ("normal", "logistic", "gumbel_min", "cauchy")

# integrand values below peak * e^-_TAIL are dropped (n_grid * e^-45 < 1e-16)
_TAIL = 45.0
_SPAN_MAX = 200.0  # standardized score range handled here (grid cost ~ span^2)


_CACHES: dict = {}
_CACHES_LOCK = threading.Lock()

# m nodes every `ms` grid steps, log g interpolated with a q-point stencil
# (per family in _Spec; q = 10 at spacing 1/16 is at rounding level for the
# normal, measured against q = 16)
_QF = 16  # points of the Lagrange stencil for log F at off-grid points


def _cache_for(fam, spec=None) -> KernelCache:
    """The kernel tables of ``fam`` on the grid step of ``spec`` (default: the family's)."""
    spec = fam.fast if spec is None else spec
    key = fam.kernel_key if spec.H == fam.fast.H else (fam.kernel_key, spec.H)
    with _CACHES_LOCK:
        c = _CACHES.get(key)
        if c is None:
            # the cache holds its own standard-family kernels (scale is irrelevant:
            # the inputs are standardized)
            c = KernelCache(fam, spec.H, spec.R, spec.t_right, spec.rho, spec.ncirc)
            _CACHES[key] = c
        return c


# a row whose log g the node stencil cannot resolve even with a node at every grid
# point (blocks of ~1e5 near-tied scores: F rises within ~1/#block of the block, so log g
# bends on that scale) is redone once on a grid this many times finer (node spacing
# H / 4; every truncation and resolution bound of the module docstring only improves as
# H shrinks, and the grids' cost grows ~16x: still far below exact O(nG) quadrature)
_REFINE = 4


def _refined(spec):
    """``spec`` on a grid ``_REFINE`` times finer (the same pads, orders and stencils)."""
    return dataclasses.replace(spec, H=spec.H / _REFINE)


def _check_family(fam):
    name = getattr(fam, "name", None)
    if getattr(fam, "custom", False) or getattr(fam, "fast", None) is None or fam.hazard_c is None:
        raise NotImplementedError(f"fast path has no kernels for family {name!r}")


# --- exact interpolation weights (built once, read only) --------------------

def _interp_fine(values, a, b, pos):
    """Local ``_QF``-point Lagrange interpolation of the unit-spaced samples
    ``values[a:b]`` (sample ``k`` at position ``k``) at fractional positions
    ``pos``, through the Taylor tables of :func:`_fine_tables` (16 rows per
    sample interval, degree 6): a few passes per point, for the many points
    of the narrow-integrand rules.  Degree 6 is at rounding level against the
    direct 16-point barycentric sum (<= 6.6e-16 of ``max(1, |log F|)``, normal
    and gumbel_min, n = 3e3..1e5; degree 4: 1.3e-14 for the normal).
    ``pos - a`` is exact (``a`` an integer below ``pos``), so the point is the
    one asked for."""
    S, d = 16, 6
    tab = _fine_tables(values[a:b], _QF, S, d)
    t = (pos - a) * S
    rf = np.rint(t)
    t -= rf
    r = rf.astype(np.intp)
    if r.size and (r.min() < (_QF // 2 - 1) * S or r.max() >= tab.shape[1]):
        raise NotImplementedError("log F interpolation stencil leaves the grid")
    out = tab[d][r]
    for j in range(d - 1, -1, -1):
        out *= t
        out += tab[j][r]
    return out


# --- step 1: log F on the grid ----------------------------------------------

def _near_origin(z):
    """``(row, (min, max))``: the row itself, or shifted by its maximum when
    ``|z| > 2^40`` (the lattice split needs ``|z|`` bounded).  The shift is exact
    there: with a range <= 200 every entry lies within a factor 2 of the
    maximum (Sterbenz), and ``p`` is shift invariant."""
    zmin, zmax = float(z.min()), float(z.max())
    if max(-zmin, zmax) > _LATTICE_MAX and zmax - zmin <= _SPAN_MAX:
        return z - zmax, (zmin - zmax, 0.0)
    return z, (zmin, zmax)    # (a wider range is declined by _Geo)


class _GridSum:
    """A grid sum (:func:`_spread_convolve`) over the x grid ``k = kL..kR``,
    computed where it is needed: :meth:`coarse` every ``_COARSE``-th row (for
    the integrand windows), :meth:`ensure` the exact rows of a range.  For many
    scores the integrands of all nodes sit near the top scores (``log F`` falls
    steeply below them), so most of the grid is never needed (normal, n = 1e5:
    28% of it)."""

    __slots__ = ("M", "geo", "spec", "cache", "table", "v", "h0", "h1", "_coarse", "_spread")

    def __init__(self, M, geo, spec, cache, table="A", spread=None):
        self.M, self.geo, self.spec, self.cache, self.table = M, geo, spec, cache, table
        # the family's own form of log F (NumericFamily.spread), else the plain spreading
        self._spread = spread(M, spec, cache) if spread is not None and table == "A" else (
            lambda kL, kR, stride=1: _spread_convolve(M, kL, kR, spec, cache, table, stride))
        self.v = np.full(geo.G, np.nan)     # rows [h0, h1) hold exact values
        self.h0 = self.h1 = 0
        self._coarse = None

    def coarse(self):
        if self._coarse is None:
            g = self.geo
            self._coarse = self._spread(g.kL, g.kR, stride=_COARSE)
        return self._coarse

    def _fill(self, a, b):
        if a < b:
            kL = self.geo.kL
            self.v[a:b] = self._spread(kL + a, kL + b - 1)

    def ensure(self, a, b):
        """Exact values on rows ``a .. b - 1`` (clipped to the grid); returns the array."""
        a, b = max(0, int(a)), min(self.geo.G, int(b))
        if self.h0 == self.h1:
            self._fill(a, b)
            self.h0, self.h1 = a, b
        else:
            # keep one contiguous range: fill the gaps on either side
            if a < self.h0:
                self._fill(a, self.h0)
                self.h0 = a
            if b > self.h1:
                self._fill(self.h1, b)
                self.h1 = b
        return self.v


# --- steps 2 and 3 -----------------------------------------------------------

class _Geo:
    """Grid geometry of one row: bins/x grid ``x_k = lo + k H`` (``kL <= k <= kR``)
    and m nodes ``m_l = lo + l H`` (``lL <= l <= lR``, step ``ms``)."""

    __slots__ = ("lo", "invH", "P", "kL", "kR", "G", "ms", "q", "lL", "lR", "K", "fine_S", "fine_d",
                 "zmin", "zmax")

    def __init__(self, z, spec, check_cost=True, zrange=None):
        H = spec.H
        zmin, hi = (float(z.min()), float(z.max())) if zrange is None else zrange
        self.zmin, self.zmax = zmin, hi
        if not hi - zmin <= _SPAN_MAX:
            raise NotImplementedError(f"score range {hi - zmin:.3g} exceeds the fast path's {_SPAN_MAX}")
        if max(-zmin, hi) > _LATTICE_MAX:
            raise NotImplementedError("scores too large for the lattice split (shift the row first)")
        self.invH = 1.0 / H
        # origin on the H lattice (exact: H is a power of two), so bins and
        # evaluation rows come from an exact split of z / H (_split_lattice);
        # score z_j sits at grid position z_j / H - lo / H, in bin rint of that
        lo_i = math.floor(zmin * self.invH)
        self.lo = lo = lo_i * H
        self.P = int(np.rint(hi * self.invH)) - lo_i + 1
        self.kL = -int(math.ceil((spec.pad_left + spec.pad_factor * (hi - lo)) / H))
        self.kR = self.P - 1 + int(math.ceil((spec.pad_right + spec.pad_factor * (hi - lo)) / H))
        self.G = self.kR - self.kL + 1
        # q/2 + 1 nodes beyond each end of [0, P - 1] for the interpolation stencil
        self.ms = spec.ms
        self.q = spec.q
        self.fine_S = spec.fine_S
        self.fine_d = spec.fine_d
        half = spec.q // 2
        self.lL = -(half + 1) * self.ms
        self.K = (self.P - 1 - self.lL) // self.ms + half + 2
        self.lR = self.lL + (self.K - 1) * self.ms
        # decline when the grids dwarf the scores (few scores spread widely):
        # a rough cost model, in microseconds
        if spec.pad_factor:   # cauchy: near-field panels per node (numeric._fast_cauchy)
            node = 300 + 0.04 * self.K * (1.2 * (hi - lo) + 2.5)
        else:
            node = 0.005 * self.K * self.G
        fast = 350 + node + 0.0001 * (spec.R + 1) * self.P * (self.P + self.G) + 0.03 * z.size
        exact = 500 + spec.quad_us * z.size
        if check_cost and fast > exact:
            raise NotImplementedError(
                f"fast path does not pay off for n={z.size} over a score range of {hi - lo:.3g}")


_ROWS = 128     # m nodes per block of the node integrals
_COARSE = 8     # stride of the coarse scan that finds each integrand's window


def _windows(win, LFc, G):
    """Per node row, grid indices ``[lo, hi]`` outside which the log integrand
    ``L(k) = win[i, k] + log F(x_k)`` is below its peak minus ``_TAIL``, from
    ``LFc`` = ``log F`` on every ``_COARSE``-th grid row.

    ``log h`` and ``log F`` are concave for the normal and the logistic (log-
    concave CDFs, increasing reversed hazard), so each ``L`` is unimodal: a
    coarse sample (every ``_COARSE``-th node) lying below the coarse peak by
    more than ``_TAIL`` bounds everything beyond it, because ``L`` is monotone
    outside its maximum.  Rows without such a sample keep the grid end (the
    caller then checks the decay there).
    """
    Lc = win[:, ::_COARSE] + LFc[None, :]
    jc = np.argmax(Lc, axis=1)
    low = Lc < (Lc[np.arange(Lc.shape[0]), jc] - _TAIL)[:, None]
    before = np.arange(Lc.shape[1])[None, :] < jc[:, None]
    # unimodal: the decayed samples are a prefix and a suffix of the row
    nl = np.count_nonzero(low & before, axis=1)
    nr = np.count_nonzero(low & ~before, axis=1)
    lo_k = np.maximum(nl - 1, 0) * _COARSE
    hi_k = np.where(nr == 0, G - 1, (Lc.shape[1] - nr) * _COARSE)
    return lo_k, hi_k


def _node_kernel(geo, fam, spec):
    """``win[i, k'] = log h(x_(kL + k') - m_l)`` for node ``l = lR - ms i`` (a strided view)."""
    d = np.arange(geo.kL - geo.lR, geo.kR - geo.lL + 1)      # t = (k - l) H
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        LH = fam.loghazard(d * spec.H)
    return sliding_window_view(LH, geo.G)[::geo.ms]


def _windows_fine(win, LFv):
    """Per node row, grid indices ``[lo, hi]`` two rows outside the first and last
    grid rows where ``L = win[i] + LFv`` is within ``_TAIL`` of its maximum.

    No shape is assumed (the VJP's integrands ``h F Gamma`` need not be
    unimodal: ``Gamma`` is a sum of terms peaking at different scores), so every
    grid row is tested; the rule then sums every row between, and the caller
    checks that the end rows are below the threshold (else the window was
    clipped by the grid and the row is declined).  The two rows of margin keep
    the peak of an integrand narrower than a grid step two rows from the
    window's ends, where :func:`_refine_narrow` reads its three samples."""
    K, G = win.shape
    lo = np.empty(K, dtype=np.intp)
    hi = np.empty(K, dtype=np.intp)
    for i0 in range(0, K, _ROWS):
        i1 = min(K, i0 + _ROWS)
        L = win[i0:i1] + LFv[None, :]
        with np.errstate(invalid="ignore"):
            above = L >= (L.max(axis=1) - _TAIL)[:, None]
        first = np.argmax(above, axis=1)
        last = G - 1 - np.argmax(above[:, ::-1], axis=1)
        lo[i0:i1] = np.maximum(first - 2, 0)
        hi[i0:i1] = np.minimum(last + 2, G - 1)
    return lo, hi


# the signed rule (weights of both signs, :func:`_signed_T2`) on every other grid row
# against the full rule, relative to the scale's integral: the signed integrand is
# analytic in a strip, so the rule's error falls geometrically with the step, err(H) ~
# err(2H)^2 in units of the scale (the scale's own integrand resolved: second difference
# <= 0.35 at its peak); 1e-6 at 2H leaves ~1e-12 at H, inside the 2e-11 the interpolants
# of log A and the ratio are allowed (the per-sign path checks the resolution alone)
_SIGNED_AGREE = 1e-6


def _node_integrals(geo, LF, fam, spec, win=None, fine=False, rho=None):
    """Trapezoid integrals at the m nodes (returned in increasing ``l``):

        log g(m_l) = log H sum_k h(x_k - m_l) exp(LF(x_k))

    with the resolution / truncation checks of the module docstring.  ``LF``
    is a :class:`_GridSum` (``log F``; windows from its coarse rows, which
    needs a unimodal integrand, exact rows over the windows' union) or, with
    ``fine=True``, a :class:`_LogWeight` (the whole log weight on the grid;
    windows from every row: :func:`_windows_fine`).

    ``rho`` (with ``fine``; the grid's ``Gamma / scale`` of a signed
    :class:`_LogWeight`): returns ``(log of the scale's integrals, ratio)`` with
    ``ratio`` the rule of the signed integrand ``rho h F scale`` over the scale's, the
    checks on the scale's integrand (narrow peaks are declined: the local rules
    interpolate the log weight, which a signed one does not have), and the signed
    rule on every other row within ``_SIGNED_AGREE`` of the scale's sum.
    """
    H = spec.H
    G, K = geo.G, geo.K
    if win is None:
        win = _node_kernel(geo, fam, spec)
    logg = np.empty(K)
    ratio = None if rho is None else np.empty(K)
    narrow = []
    logH = math.log(H)
    if fine:
        LFv = LF.full()
        lo_k, hi_k = _windows_fine(win, LFv)
    else:
        lo_k, hi_k = _windows(win, LF.coarse(), G)
        # exact grid sums only over the union of the windows
        LFv = LF.ensure(int(lo_k.min()), int(hi_k.max()) + 1)
    for i0 in range(0, K, _ROWS):
        i1 = min(K, i0 + _ROWS)
        A = int(lo_k[i0:i1].min())
        B = int(hi_k[i0:i1].max()) + 1
        L = win[i0:i1, A:B] + LFv[None, A:B]
        kmax, peak, curv = _checked_peaks(L)
        nr = np.flatnonzero(curv > 0.35)
        if nr.size:
            kk = kmax[nr]
            trip = np.stack([L[nr, kk - 1], L[nr, kk], L[nr, kk + 1]], axis=1)
            # the first and last grid rows within _TAIL of the peak: the local rule
            # must span them (a multimodal integrand has mass away from its top peak)
            with np.errstate(invalid="ignore"):
                above = L[nr] >= (peak[nr] - _TAIL)[:, None]
            first = np.argmax(above, axis=1)
            last = B - A - 1 - np.argmax(above[:, ::-1], axis=1)
            narrow.append((i0 + nr, kk + A, trip, curv[nr], first + A, last + A))
        L -= peak[:, None]
        exp_terms(L, out=L)         # (rows of the block below their own window: no slow exp)
        tot = L.sum(axis=1)
        logg[i0:i1] = peak + (np.log(tot) + logH)
        if rho is not None:
            L *= rho[None, A:B]
            sig = L.sum(axis=1)
            if not np.all(np.abs(2.0 * L[:, ::2].sum(axis=1) - sig) <= _SIGNED_AGREE * tot):
                raise NotImplementedError("VJP: signed rule not converged")
            ratio[i0:i1] = sig / tot
    if narrow:
        if rho is not None:
            raise NotImplementedError("VJP: narrow integrand of a signed weight")
        _refine_narrow(narrow, logg, geo, LF, fam, spec, check_interp=fine)
    # row i <-> node l = lR - ms i: reverse to increasing l (= lL + ms j)
    if rho is not None:
        return np.ascontiguousarray(logg[::-1]), np.ascontiguousarray(ratio[::-1])
    return np.ascontiguousarray(logg[::-1])


def _checked_peaks(L):
    """``(kmax, peak, curv)`` of the log integrands ``L`` (a row per node, a column per
    grid row): each row's peak column and value and ``kappa H^2``, minus the second
    difference at the peak (the resolution the trapezoid rule needs).  Raises
    NotImplementedError (the row set is declined) when a peak is not finite or lies
    within two columns of an edge, or when an integrand has not decayed by
    ``e^-_TAIL`` at both ends (the rule truncates there)."""
    kmax = np.argmax(L, axis=1)
    rows = np.arange(L.shape[0])
    peak = L[rows, kmax]
    if not np.all(np.isfinite(peak)):
        raise NotImplementedError("non-finite integrand peak")
    if kmax.min() < 2 or kmax.max() > L.shape[1] - 3:
        raise NotImplementedError("integrand peak at the edge of the x grid")
    if np.any(L[:, 0] > peak - _TAIL) or np.any(L[:, -1] > peak - _TAIL):
        raise NotImplementedError("integrand not decayed at the x grid ends")
    curv = 2.0 * peak - L[rows, kmax + 1] - L[rows, kmax - 1]
    return kmax, peak, curv


def _refine_narrow(narrow, logg, geo, LF, fam, spec, check_interp=False):
    """Re-integrate under-resolved rows on a local grid around the peak.

    The peak is narrower than 1.7 H only when log F has curvature >> 1 (a
    normal score far below many others; for gumbel_min every score far below
    many others: its posterior ``h_j F`` has ``sigma ~ 1 / sqrt(#above)``).
    Local trapezoid rule with step sigma/4 (sigma from the curvature at the
    peak), on +-12 sigma, widened (x4, up to +-768 sigma) for rows whose
    integrand has not decayed by e^-45 at the window ends (one-sided shapes:
    steep on one side, slowly decaying on the other), and from the start
    wide enough to span every grid row within e^-45 of the grid peak: the
    VJP's integrands ``h F Gamma`` are multimodal (``Gamma`` weights each
    score's posterior), and a rule around the top peak alone would end in a
    valley between peaks, pass the decay test and drop the other peaks'
    mass.  Convergence check: the rule with step sigma/2 (every other node)
    must agree to 1e-8; the error of a geometrically converging rule at step
    sigma/4 is then below 1e-16.

    ``check_interp`` (the log weights ``log(F Gamma)``): ``log Gamma`` is a
    log-sum of terms that take turns at dominating (for gumbel_min the switch
    from one score's ``-e^(x - z_j)`` to the next is ~1 / #above wide), so it
    need not be smooth on the grid scale as ``log F`` is.  At every point of
    the local rule the interpolation error of its 16-point stencil is
    estimated from the stencil's 16th difference (as for ``log g``,
    :func:`_interp_error`); an error ``d`` in the log moves that term by ``d``
    of itself, so the rule moves by at most the term-weighted mean of the
    estimates, which must stay below ``1e-11`` (against the VJP's 1e-10),
    else the row is declined.  The samples' own rounding, ``eps |log F|``,
    enters the 16th difference up to ``2^16`` times (~2e-11 for
    ``|log F| ~ 1e6`` after the factor :func:`_interp_bound`); that part is
    an error of the samples, present with any rule, and is not counted.
    """
    H = spec.H
    # one entry (rows, peak index, three samples around it, curvature, first and last
    # grid row within _TAIL of the peak) per block
    rows = np.concatenate([r[0] for r in narrow])
    kmax = np.concatenate([r[1] for r in narrow]).astype(np.float64)
    trip = np.concatenate([r[2] for r in narrow])
    curv = np.concatenate([r[3] for r in narrow])
    first = np.concatenate([r[4] for r in narrow])
    last = np.concatenate([r[5] for r in narrow])
    _widening_passes(
        kmax, trip, curv, first, last,
        lambda now, c, s, width: _refine_rows(rows[now], c, s, width, logg, geo, LF, fam, H, check_interp))


def _widening_passes(kmax, trip, curv, first, last, run):
    """Local rules of narrow integrands at growing half widths: ``run(now, centre, sig,
    width)`` integrates the entries ``now`` on +-``width`` sigma and returns which of
    them decayed by ``e^-_TAIL`` at both ends; the others are redone 4x wider, up to
    +-768 sigma (NotImplementedError beyond).  Each entry starts wide enough to span
    its grid rows ``first .. last`` (those within ``_TAIL`` of the grid peak ``kmax``,
    with the three samples ``trip`` around it and curvature ``curv``): an integrand
    with mass away from its top peak keeps it."""
    # vertex of the parabola through the three samples around the peak
    centre = kmax + (trip[:, 2] - trip[:, 0]) / (2.0 * curv)
    sig = 1.0 / np.sqrt(curv)                       # in units of H
    # half width (in sigma) that spans the rows within _TAIL of the grid peak, plus a row
    need = np.maximum(centre - first, last - centre) / sig + 1.0 / sig
    todo = np.arange(kmax.size)
    width = 12
    while todo.size:
        if width > 768:
            raise NotImplementedError("narrow integrand not decayed within +-768 sigma")
        now = todo[need[todo] <= width]
        if now.size:
            ok = run(now, centre[now], sig[now], width)
            todo = np.setdiff1d(todo, now[ok], assume_unique=True)
        width *= 4


def _local_log_integrand(nodes_l, centre, sig, width, geo, LF, fam, H):
    """The points of local trapezoid rules (step sigma / 4 on +-``width`` sigma about
    ``centre``, as grid positions ``k - kL``) of the nodes ``nodes_l`` (node indices
    ``l``, floats) and their log integrands ``log h(x - m_l) + log F(x)``, ``log F``
    from the fine interpolant of the exact grid sums: ``(pos, L, peak, ok, vals,
    span)``, ``ok`` where the integrand decayed by ``e^-_TAIL`` at both ends of its
    rule, ``vals`` the grid sums over the rows ``span``."""
    uu = np.arange(-4 * width, 4 * width + 1) * 0.25
    pos = centre[:, None] + sig[:, None] * uu[None, :]
    if pos.min() < _QF or pos.max() > geo.G - 1 - _QF:
        raise NotImplementedError("narrow integrand window leaves the x grid")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lh = fam.loghazard(((pos + geo.kL - nodes_l[:, None]) * H).ravel()).reshape(pos.shape)
    # exact grid sums under every stencil (the windows' union may not reach)
    span = (max(0, int(math.floor(pos.min())) - _QF), min(geo.G, int(math.floor(pos.max())) + _QF + 1))
    vals = LF.ensure(*span)
    L = lh + _interp_fine(vals, *span, pos.ravel()).reshape(pos.shape)
    peak = L.max(axis=1)
    ok = (L[:, 0] < peak - _TAIL) & (L[:, -1] < peak - _TAIL)
    return pos, L, peak, ok, vals, span


def _refine_rows(rows, centre, sig, width, logg, geo, LF, fam, H, check_interp):
    """One pass of :func:`_refine_narrow` at half width ``width`` sigma: writes the rows
    whose integrand decayed at both ends, returns that mask."""
    ml = (geo.lR - geo.ms * rows).astype(np.float64)       # node index l
    pos, L, peak, ok, vals, span = _local_log_integrand(ml, centre, sig, width, geo, LF, fam, H)
    E = exp_terms(L - peak[:, None])
    tot = E.sum(axis=1)
    if check_interp:
        # stencil of the point at pos: samples floor(pos) - QF/2 + 1 .. floor(pos) + QF/2;
        # an error d in the log moves the point's term by d of itself, so the rule moves
        # by at most the E-weighted mean of the points' estimates
        # (less the part the samples' own rounding, eps |log(F Gamma)|, puts into the
        # 16th difference: at most 2^16 times it, an error of the samples, not of the
        # interpolant, within the 1e-13 |log p| the README allows such rows)
        with np.errstate(invalid="ignore"):
            B = _interp_bound(_QF)
            v = vals[span[0]:span[1]]
            err = np.abs(np.diff(v, n=_QF)) * B - (2.0 ** _QF * B * _ROUNDING) * np.abs(v[_QF // 2:v.size - _QF // 2])
            at = err[np.floor(pos).astype(np.intp) - span[0] - (_QF // 2 - 1)]
            moved = np.where(E > 0, np.maximum(at, 0.0), 0.0)
            moved *= E
            if not np.all(moved.sum(axis=1) <= 1e-11 * tot):
                raise NotImplementedError("VJP: log(F Gamma) not resolved by its 16-point stencil")
    half_rule = 2.0 * E[:, ::2].sum(axis=1)
    if np.any(ok & ~(np.abs(half_rule / tot - 1.0) < 1e-8)):
        raise NotImplementedError("narrow integrand: local trapezoid rule not converged")
    logg[rows[ok]] = peak[ok] + (np.log(tot[ok]) + np.log(sig[ok] * H * 0.25))
    return ok


# Step 3 interpolates log g through q nodes; its error on a node interval is about
# |Delta^q log g| max_s prod_i |s - i| / q! (the q-th difference of the node values, i
# over the stencil, s in the central interval).  Measured on rows of distinct scores it
# stays below 2e-16 of max(1, |log g|) at the specs' node strides; blocks of many tied
# scores sharpen log F (gumbel_min, 3 blocks of 200 off the lattice: 2.4e-14, i.e.
# log p ~80 ulps off at p ~ 1e-166), and then the nodes are halved (ms = 1).
_INTERP_TOL = 1e-15


# the values' own rounding (eps |v| each) enters a q-th difference up to 2^q times
_ROUNDING = 2.3e-16


def _interp_error(logg, q, absolute=False, less_rounding=False):
    """Estimated interpolation error of log g relative to ``max(1, |log g|)`` (see
    above; ``absolute=True``: the error itself), the largest over the nodes of each row
    of ``logg`` (..., K).  ``less_rounding`` (with ``absolute``): each estimate less
    what the node values' own rounding can put into it, ``2^q eps |log g|`` times the
    factor :func:`_interp_bound` -- an error of the values, present whatever the
    stencil, within the ``1e-13 |log p|`` the README allows entries that small."""
    B = _interp_bound(q)
    D = np.abs(np.diff(logg, n=q, axis=-1))
    if absolute:
        E = D * B
        if less_rounding:
            E -= (2.0 ** q * B * _ROUNDING) * np.abs(logg[..., q // 2:q // 2 + D.shape[-1]])
        return E.max(axis=-1)
    return (D * B / np.maximum(1.0, np.abs(logg[..., q // 2:q // 2 + D.shape[-1]]))).max(axis=-1)


def _interp_bound(q):
    """``max_s prod_i |s - i| / q!`` over the central interval ``0 <= s <= 1`` of the
    ``q``-point stencil ``i = -q/2 + 1 .. q/2``: the factor of the ``q``-th difference
    in the stencil's error estimate."""
    B = _INTERP_B.get(q)
    if B is None:
        s = np.linspace(0.0, 1.0, 257)[:, None]
        i = np.arange(-q // 2 + 1, q // 2 + 1)[None, :]
        B = _INTERP_B.setdefault(q, float(np.prod(np.abs(s - i), axis=1).max()) / math.factorial(q))
    return B


_INTERP_B: dict = {}


def _row_nodes(z, fam, spec, cache, check_cost=True):
    """Steps 1 and 2 for one row: ``(log g at the nodes, geo, M, LF, z, spec, cache)``
    (``z`` as used: see :func:`_near_origin`; ``spec`` and ``cache`` as used: see
    :data:`_REFINE`)."""
    z_in = z
    z, zrange = _near_origin(z)
    geo = _Geo(z, spec, check_cost, zrange)
    M = _bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    if spec.heavy:
        # LF: numeric._fast_cauchy's opaque state (log F only where needed)
        logg, LF = cauchy_nodes(z, fam, geo, M, spec, cache)
    else:
        LF = _GridSum(M, geo, spec, cache, spread=fam.spread)
        logg = _node_integrals(geo, LF, fam, spec)
        if geo.ms > 1 and _interp_error(logg, geo.q) > _INTERP_TOL:
            # nodes every grid step (the x grid and log F are unchanged)
            geo = _Geo(z, dataclasses.replace(spec, ms=1), False, zrange)
            LF.geo = geo
            logg = _node_integrals(geo, LF, fam, spec)
            if _interp_error(logg, geo.q) > _INTERP_TOL:
                if spec.H < fam.fast.H:
                    raise NotImplementedError("log g not resolved by its node interpolant")
                fine = _refined(fam.fast)
                return _row_nodes(z_in, fam, fine, _cache_for(fam, fine), check_cost)
    return logg, geo, M, LF, z, spec, cache


def _row_log_probs(z, fam, spec, cache, parts=False, check_cost=True, out=None):
    """log p for one row (into ``out`` when given); with ``parts`` also
    ``(d log g / d m at the scores, geo, M, LF, z, spec, cache)`` (see :func:`_row_nodes`)."""
    logg, geo, M, LF, z, spec, cache = _row_nodes(z, fam, spec, cache, check_cost)
    dlg = np.empty_like(z) if parts else None
    # common renormalisation: sum p = 1 (a shift of order 1e-15)
    mx = float(logg.max())
    lp, tot = _eval_at_scores(z, geo, logg, out=out, deriv=dlg, shift=mx)
    lp -= mx + math.log(tot)
    # log p <= 0; a near one-hot row could round its leader to +1 ulp (p = 1 + 2e-16)
    np.minimum(lp, 0.0, out=lp)
    if parts:
        return lp, dlg, geo, M, LF, z, spec, cache
    return lp


# --- the VJP: Gamma integrals ------------------------------------------------
#
# Gamma_w(x) = sum_j w_j h(x - z_j) (w_j > 0) on the x grid.  Offsets t = x - z_j <= t_c go
# through the binned Taylor sum (table B of a KernelCache cut at t_c, R orders); beyond t_c
# each term is summed exactly in log space wherever it is not negligible (t_c is where h
# has fallen so far that this is rare for dense cotangents).  The tables' cut, orders and
# circles are the family's (FastSpec.gamma, and FastSpec.gamma_log for the VJP of log p
# where they differ; numeric.families gives each truncation and rounding bound).  The
# probabilities' tables (cut where |log Phi| < 1e-40, with fewer orders) are not reused;
# the row-batched engine (numeric._fast_rows) reads these same tables.
_FAR_EPS = 1e-17       # far terms below this share of the near sum at a grid row are dropped
_BAND = 600.0          # weights within e^600 of their band's largest share one linear spread
_BANDS_MAX = 32        # occupied bands spread per Gamma (each one a full grid spreading)
_FAR_TERMS = 1 << 18   # far terms (and (row, bin) bounds) handled per block: bounds the memory


def _gamma_cache(fam, H=None, log=False):
    """The Gamma tables of ``fam`` on the grid step ``H`` (default: the family's) for
    the VJP of ``p`` or (``log``) of ``log p``."""
    spec = fam.fast
    H = spec.H if H is None else H
    log = log and spec.gamma_log is not None
    key = fam.name + ":gamma" + (":log" if log else "") + ("" if H == spec.H else f":{H}")
    with _CACHES_LOCK:
        c = _CACHES.get(key)
        if c is None:
            t_c, R, rho, ncirc = spec.gamma_log if log else spec.gamma
            c = KernelCache(fam, H, R, t_c, rho, ncirc)
            _CACHES[key] = c
        return c


class _LogWeight:
    """``log(F Gamma)`` on the x grid for the node integrals of one ``Gamma``
    (:func:`_log_weight`).  :meth:`full` keeps each far term wherever it can
    change some node's integral by more than ``_FAR_EPS`` of that node's
    peak (enough for the trapezoid sums); :meth:`ensure` makes rows
    ``a..b-1`` accurate in log to ``_FAR_EPS`` (far terms kept down to that
    share of the near sum), which the local rules of
    :func:`_refine_narrow` need: they interpolate ``log(F Gamma)`` through
    16-point stencils, where an error in a row far below the peak would be
    carried to the peak.

    Signed (``lgam``, ``negg`` given: ``Gamma`` with terms of both signs): ``lnear``
    is then the log of a positive scale, a lower bound of the near terms' sum of
    moduli (:func:`_log_weight`), ``v = log F + log scale``, and ``Gamma`` itself is
    ``(-1)^negg e^lgam`` (near terms; far terms are added to both by ``far``):
    :meth:`ratio` is ``Gamma / scale`` on the grid."""

    __slots__ = ("v", "LFv", "lnear", "strict", "far", "lgam0", "negg0", "lgam", "negg")

    def __init__(self, LFv, lnear, far, lgam=None, negg=None):
        self.LFv, self.lnear, self.far = LFv, lnear, far
        self.v = LFv + lnear
        self.strict = np.zeros(LFv.size, dtype=bool)
        self.lgam0, self.negg0 = lgam, negg
        self.lgam = None if lgam is None else lgam.copy()
        self.negg = None if negg is None else negg.copy()

    def ratio(self):
        """``Gamma / scale`` on the grid (signed weights; 0 where the scale is 0)."""
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.where(np.isfinite(self.v), np.exp(self.lgam - (self.v - self.LFv)), 0.0)
        np.negative(r, out=r, where=self.negg)
        return r

    def full(self):
        return self.v

    def ensure(self, a, b):
        rows = np.arange(max(0, int(a)), min(self.v.size, int(b)))
        rows = rows[~self.strict[rows]]
        if rows.size and self.far is not None:
            self.far(self, rows, self.lnear[rows] + math.log(_FAR_EPS))
            self.strict[rows] = True
        return self.v


def _lower_spread(W, kL, kR, H, fam, s_hi):
    """``sum_b W_b h((k - b + 1/2) H)`` over the bins ``b`` with ``k - b <= s_hi`` at the
    grid rows ``k = kL .. kR`` (``W`` >= 0, one per bin): for a decreasing ``h`` a lower
    bound of ``sum_j w_j h(x_k - z_j)`` over those bins' scores (``x_k - z_j = (k - b -
    u_j) H <= (k - b + 1/2) H``); one direct convolution of positive terms."""
    s = np.arange(kL - (W.size - 1), kR + 1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        t = np.where(s <= s_hi, np.exp(fam.loghazard((s + 0.5) * H)), 0.0)
    return np.convolve(W, t, mode="valid")


def _log_weight(z, sel, ls, geo, spec, fam, win, LFv, log=False, neg=None):
    """:class:`_LogWeight` for ``Gamma = sum_j exp(ls_j) h(x_k - z_j)`` over the
    entries ``j`` in ``sel`` (None: every entry; ``ls`` finite, one per entry of ``sel``), on the x grid
    rows ``k = kL..kR``.

    Near terms (``t = x - z_j <= t_c``): one linear spread per band of weights
    (weights within ``e^_BAND`` of the band's largest, scaled by it); all
    terms positive, each to the relative truncation above, so ``near`` is
    good to a few ulps plus that.  Far terms: a bin ``b`` whose weights sum
    to ``W_b`` adds at most ``W_b h((k - b - 1/2) H)`` at row ``k`` (``h``
    decreases).  A row's far terms are dropped when the sum of these bounds
    is below ``_FAR_EPS`` of ``near`` there, or when even the upper bound of
    every node's integrand there, ``h(x_k - m) F (near + far bound)``, is
    below ``_FAR_EPS / G`` of that node's peak of ``h F near`` (a lower bound
    of its true peak): the trapezoid sum then changes by less than
    ``_FAR_EPS`` relative.  Elsewhere each bin with a non-negligible bound is
    summed term by term in log space, ``t = (k - b - u_j) H`` formed exactly
    from the lattice split.  When that work would cost more than a sizeable
    share of exact quadrature the row is declined (``NotImplementedError``).

    ``neg`` (bool, one per entry of ``sel``): signed weights ``(-1)^neg_j
    exp(ls_j)``; each band is spread once with its signs (:class:`_LogWeight`'s
    signed mode, bands added by :func:`numeric._fast_grid._signed_logadd`), far
    terms by sign, and the scale is ``sum_b W_b h((k - b + 1/2) H)`` over the near
    bins (``W_b`` the bin's absolute weight; ``h`` decreases for the families that
    take this mode, so it bounds ``sum_j |w_j| h(x_k - z_j)`` from below) plus the
    far terms' moduli; the far tests above take it for ``near``.
    """
    H, G, kL = spec.H, geo.G, geo.kL
    gcache = _gamma_cache(fam, H, log)
    zs = z if sel is None else z[sel]
    lnear = np.full(G, -np.inf)
    lgam = np.full(G, -np.inf) if neg is not None else None
    negg = np.zeros(G, dtype=bool) if neg is not None else None
    lW = np.full(geo.P, -np.inf)             # log of the weight in each bin
    lmax = float(ls.max())
    if lmax - float(ls.min()) < _BAND:
        bands = ((zs, ls, neg),)        # one band (the common case): no masks, no copies
    else:
        band = np.floor((lmax - ls) / _BAND)
        occupied = np.unique(band)
        # each occupied band costs one spreading of the whole grid: beyond _BANDS_MAX of
        # them (weights 1 / p_j spanning more than ~e^19000: gumbel_min log VJP of a
        # long row, spread ~50) exact quadrature is the cheaper answer
        if occupied.size > _BANDS_MAX:
            raise NotImplementedError("VJP: cotangent weights span too many e^600 bands")
        bands = ((zs[m], ls[m], None if neg is None else neg[m]) for m in (band == b for b in occupied))
    # A band's weights are scaled to [e^0, e^_BAND] (its largest to e^_BAND), not to
    # [e^-_BAND, 1]: the products of weights and table values then lie in [h(t_c),
    # e^_BAND max h n], inside the normal float range for every family's tables (the
    # normal's log-p tables reach h(37) ~ e^-690, which times e^-600 would underflow
    # and drop the terms that dominate where the largest weights' terms are far)
    with np.errstate(divide="ignore"):
        for zb, lb, nb in bands:
            sc = float(lb.max()) - _BAND
            wb = np.subtract(lb, sc)
            np.exp(wb, out=wb)
            if nb is None:
                Mb = _bin_moments(zb, geo.lo, geo.invH, geo.P, gcache.R, weights=wb)
                W0 = Mb[0]
            else:
                np.negative(wb, out=wb, where=nb)
                Mb, W0 = _bin_moments(zb, geo.lo, geo.invH, geo.P, gcache.R, weights=wb, absolute=True)
            # only the band's own bins b0 .. b1 - 1 (weights 1 / p_j fall with the score,
            # so the bands of a wide row hold disjoint runs of bins and together cost
            # about one spreading of the whole grid): row k gets sum_b' M[r, b0 + b']
            # T_r((k - b0 - b') H), the same sum with the grid shifted by b0
            occ = np.flatnonzero(W0)
            b0, b1 = int(occ[0]), int(occ[-1]) + 1
            v = _spread_convolve(Mb[:, b0:b1], kL - b0, geo.kR - b0, spec, gcache, table="B")
            if nb is None:
                lnear = np.logaddexp(lnear, np.log(np.maximum(v, 0.0)) + sc)
            else:
                lgam, negg = _signed_logadd(lgam, negg, np.log(np.abs(v)) + sc, v < 0)
                lnear = np.logaddexp(lnear, np.log(_lower_spread(W0[b0:b1], kL - b0, geo.kR - b0, H, fam,
                                                                 gcache.s_hi)) + sc)
            lW = np.logaddexp(lW, np.log(W0) + sc)
    out = _LogWeight(LFv, lnear, None, lgam, negg)
    s_hi = gcache.s_hi
    # far terms of row k: bins b <= k - s_hi - 1, t >= (s_hi + 1/2) H, where h <= h(t_c): a cheap
    # bound from the prefix sums of the bin weights, refined per (row, bin) where it is not enough
    cumW = np.logaddexp.accumulate(lW)
    kb = np.arange(kL, geo.kR + 1) - s_hi - 1             # last far bin of each row
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        h_c = float(fam.loghazard(np.array([(s_hi + 0.5) * H]))[0])
    far_crude = np.where(kb >= 0, cumW[np.clip(kb, 0, geo.P - 1)] + h_c, -np.inf)
    thr = lnear + math.log(_FAR_EPS)
    rows = np.flatnonzero(far_crude > thr)
    if rows.size == 0:
        return out
    bins = np.flatnonzero(np.isfinite(lW))
    lWb = lW[bins]
    logP = math.log(bins.size)
    smax = geo.kR - int(bins[0])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        LHub = fam.loghazard((np.arange(s_hi + 1, smax + 1) - 0.5) * H)
    # (row, bin) bounds in blocks of ~_FAR_TERMS elements
    cb = max(1, _FAR_TERMS // max(1, rows.size))

    def bounds(krows, b0, b1):
        S = krows[:, None] - bins[None, b0:b1]
        isfar = S > s_hi
        return np.where(isfar, lWb[None, b0:b1] + LHub[np.where(isfar, S - s_hi - 1, 0)], -np.inf)

    far_ub = np.full(rows.size, -np.inf)
    for b0 in range(0, bins.size, cb):
        far_ub = np.maximum(far_ub, bounds(rows + kL, b0, b0 + cb).max(axis=1))
    far_ub += logP
    keep = far_ub > thr[rows]
    rows, far_ub = rows[keep], far_ub[keep]
    if rows.size == 0:
        return out
    budget = [100 * z.size + 200_000]
    srt = {}

    def sorted_entries(need):
        """Exact offsets ``u_j`` (``z_j = lo + (b_j + u_j) H``) of the entries in the
        occupied bins ``bins[need]`` (and those asked for before) and their log weights,
        sorted by bin ``b_j`` (stable: a bin's entries in row order), with each occupied
        bin's first entry and count (count 0 for the bins not asked for: far() reads
        only the bins it asks for).  Only the asked bins' entries are gathered and
        sorted (the far bins of a wide row are a few of its lowest: a sort of the whole
        row cost ~3 times the spreading at n = 1e6)."""
        have = srt.get("have")
        if have is None or not have[need].all():
            have = np.zeros(bins.size, dtype=bool) if have is None else have.copy()
            have[need] = True
            want = np.zeros(geo.P, dtype=bool)
            want[bins[have]] = True
            us_, bs_, ix_ = [], [], []
            u, bi, tmp = np.empty(_CHUNK), np.empty(_CHUNK, dtype=np.int64), np.empty(_CHUNK)
            kbits = _MAGIC_BITS + int(geo.lo * geo.invH)
            for c0 in range(0, zs.size, _CHUNK):
                c1 = min(zs.size, c0 + _CHUNK)
                w = c1 - c0
                _split_lattice(zs[c0:c1], geo.invH, kbits, u[:w], tmp[:w], bi[:w])
                k = np.flatnonzero(want[bi[:w]])
                us_.append(u[k])
                bs_.append(bi[k])
                ix_.append(k + c0)
            bs, ix = np.concatenate(bs_), np.concatenate(ix_)
            order = np.argsort(bs, kind="stable")
            bs = bs[order]
            ix = ix[order]
            srt["us"] = np.concatenate(us_)[order]
            srt["lws"] = ls[ix]
            srt["neg"] = None if neg is None else neg[ix]
            srt["start"] = np.searchsorted(bs, bins)
            srt["cnt"] = np.where(have, np.searchsorted(bs, bins, side="right") - srt["start"], 0)
            srt["have"] = have
        return srt["us"], srt["lws"], srt["start"], srt["cnt"]

    def far(obj, rows, thr):
        """Add the far terms of bins whose bound exceeds ``thr - log(#bins)`` at ``rows``.

        The (row, bin) pairs are found block by block of bins and their terms summed
        in groups of about ``_FAR_TERMS`` (a group ends at a pair's end), each row's
        log-sum carried across groups in ``acc``: the memory stays bounded whatever
        the number of terms (the budget caps the time)."""
        acc = np.full(rows.size, -np.inf)
        accn = np.full(rows.size, -np.inf)          # (signed weights: the negative terms)
        touched = np.zeros(rows.size, dtype=bool)
        # the bins asked for by some row, gathered at once (one pass over the row)
        need = [np.unique(np.nonzero(bounds(rows + kL, b0, b0 + cb) > (thr - logP)[:, None])[1]) + b0
                for b0 in range(0, bins.size, cb)]
        need = np.concatenate(need) if need else np.zeros(0, dtype=np.intp)
        if need.size:
            sorted_entries(need)
        for b0 in range(0, bins.size, cb):
            ri, bj = np.nonzero(bounds(rows + kL, b0, b0 + cb) > (thr - logP)[:, None])
            if ri.size == 0:
                continue
            bj += b0
            us, lws, start, cnt = sorted_entries(np.unique(bj))
            c = cnt[bj]
            cum = np.cumsum(c)
            budget[0] -= int(cum[-1])
            if budget[0] < 0:
                raise NotImplementedError("VJP: too many far terms to sum exactly")
            # groups of pairs (ri ascending within the block): pair i joins group
            # (terms before it) // _FAR_TERMS
            grp = np.flatnonzero(np.diff((cum - c) // _FAR_TERMS)) + 1
            for p0, p1 in zip(np.r_[0, grp], np.r_[grp, ri.size]):
                cg = c[p0:p1]
                total = int(cg.sum())
                if total == 0:
                    continue
                rr = np.repeat(ri[p0:p1], cg)
                bg = bj[p0:p1]
                first = np.repeat(start[bg] - (np.cumsum(cg) - cg), cg) + np.arange(total)
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    lv = lws[first] + fam.loghazard(((rows[rr] + kL - np.repeat(bins[bg], cg)) - us[first]) * H)
                seg = np.flatnonzero(np.r_[True, rr[1:] != rr[:-1]])
                r_seg = rr[seg]
                ng = srt["neg"]
                for a_, part in ((acc, None),) if ng is None else ((acc, ~ng[first]), (accn, ng[first])):
                    lvp = lv if part is None else np.where(part, lv, -np.inf)
                    mx = np.maximum.reduceat(lvp, seg)
                    if part is not None:
                        mx[np.isneginf(mx)] = 0.0     # (no term of this sign in the row: sum 0)
                    with np.errstate(under="ignore", invalid="ignore"):
                        sm = np.add.reduceat(np.exp(lvp - np.repeat(mx, np.diff(np.r_[seg, total]))), seg)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        a_[r_seg] = np.logaddexp(a_[r_seg], mx + np.log(sm))
                touched[r_seg] = True
        kk = rows[touched]
        if obj.lgam is None:
            obj.v[kk] = obj.LFv[kk] + np.logaddexp(obj.lnear[kk], acc[touched])
            return
        # signed: Gamma = near + far_+ - far_-; the scale gains the far terms' moduli
        ap, an = acc[touched], accn[touched]
        lg, ng_ = _signed_logadd(obj.lgam0[kk], obj.negg0[kk], ap, np.zeros(kk.size, dtype=bool))
        obj.lgam[kk], obj.negg[kk] = _signed_logadd(lg, ng_, an, np.ones(kk.size, dtype=bool))
        obj.v[kk] = obj.LFv[kk] + np.logaddexp(obj.lnear[kk], np.logaddexp(ap, an))

    out.far = far
    # D[k] = max over nodes of (h F near at row k) - (peak of h F near): the mass test
    Llb = LFv + lnear
    D = np.full(rows.size, -np.inf)
    for i0 in range(0, win.shape[0], _ROWS):
        w = win[i0:i0 + _ROWS]
        peak = (w + Llb[None, :]).max(axis=1)
        D = np.maximum(D, (w[:, rows] - peak[:, None]).max(axis=0))
    thr_r = np.maximum(thr[rows], math.log(_FAR_EPS) - math.log(G) - LFv[rows] - D)
    keep = far_ub > thr_r
    far(out, rows[keep], thr_r[keep])
    return out


def _row_vjp(z, g, fam, spec, cache, check_cost=True, log=False, out=None):
    """One row of the VJP of ``p`` (``log=False``) or of ``log p`` (``log=True``),
    written into ``out`` when given.

    ``(J^T g)_k = int h_k F (g_k S - Gamma) dx = g_k T1_k - T2_k`` with
    ``S = sum_j h_j``, ``Gamma = sum_j g_j h_j``, ``T1_k = int h_k F S = p_k rho_S(z_k)``
    and ``T2_k = int h_k F Gamma``; for ``log p`` the cotangent ``c`` enters as
    ``g = c / p``.  ``J^T 1 = 0``, so ``g`` may be shifted, ``g' = g - s``
    (``= (c - s p) / p`` for ``log p``), exactly.  The error bound below is in
    the terms of ``g'``, against the entry's own sum ``sum_j |g_k - g_j| K_kj``
    (``K_kj = int h_k h_j F``): no shift is best for a cotangent on a
    low-probability entry (``g_k = g_j = 0`` for most pairs), ``s = g_top``
    for one on a dominant entry (else ``T1_top - K_top,top`` cancels), so
    ``s`` is a ``p``-weighted median of ``g``.

    ``T1``: ``S = (log F)'``, so by parts ``g'(m) = int h(x - m) F S dx`` and
    ``rho_S = (log g)'``, the derivative of the interpolant of ``log g`` (one
    Horner pass).  ``T2`` (families whose dense VJPs the row-batched engine serves,
    normal and logistic: first :func:`_signed_T2`, one spreading of the signed
    weights, with the bound below; rows it cannot certify, and the other families,
    as follows): split by the sign of ``g'`` into two integrals of
    positive integrands ``h(x - m) F Gamma_+-`` (:func:`_log_weight`, weights
    ``log|g'_j|`` in log space, so ``1 / p_j`` far beyond the float range is
    fine), each integrated at the m nodes in log space with windows taken
    from its own integrand (``Gamma`` may live far from the peak of
    ``h F``), and ``log T2_+-`` interpolated at the scores like ``log g``.  So
    ``T2_+-`` are accurate relative to themselves (the relative error of the
    probabilities, plus ``_FAR_EPS`` and the Gamma truncation), and

        |error of (J^T g)_k| <~ 1e-14 (|g'_k| T1_k + T2_+(z_k) + T2_-(z_k)),

    the entry's own sum of |terms| (``T2_+ + T2_- = sum_j |g'_j| int h_k h_j F``).
    """
    lp, rS, geo, M, LF, z, spec, cache = _row_log_probs(z, fam, spec, cache, parts=True, check_cost=check_cost)
    p = np.exp(lp)
    # the shift: a p-weighted median of g (of c / p for log p)
    # (over the entries with p >= 1e-9 max p: the rest weigh < 1e-4 of it even at n = 1e5)
    big = p >= 1e-9 * float(p.max())
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if big.all():
            # (every entry: heavy tails, or a short spread) no index array, no copies
            gg, pw = (g / p if log else g), p
        else:
            big = np.flatnonzero(big)
            gg = g[big] / p[big] if log else g[big]
            pw = p[big]
    del big
    half = 0.5 * float(pw.sum())
    if gg.size > 4096 and np.isfinite(gg).all():
        # the half-weight bin of 256 equal bins over [min, max], repeated inside it while
        # many values are left (g / p spans up to 1e9 times its bulk: one pass can leave
        # nearly every value in one bin), then the median inside it.  The bin index
        # floor((g - min) 256 / (max - min)) is a monotone function of g (each rounding
        # is), so the bins are ordered runs of values and the one where the running
        # weight passes half holds the weighted median; a span that overflows leaves
        # every value in bin 0 and the loop stops
        while gg.size > 4096:
            lo, hi = float(gg.min()), float(gg.max())
            if not lo < hi:
                break
            with np.errstate(over="ignore", invalid="ignore"):
                idx = ((gg - lo) * (256.0 / (hi - lo))).astype(np.intp)
            np.clip(idx, 0, 255, out=idx)
            cw = np.cumsum(np.bincount(idx, weights=pw, minlength=256))
            i = min(int(np.searchsorted(cw, half)), 255)
            half -= cw[i - 1] if i else 0.0
            inside = idx == i
            del idx
            size = gg.size
            gg, pw = gg[inside], pw[inside]
            del inside
            if gg.size == size:
                break
    if gg.size and float(gg.min()) == float(gg.max()):
        # one value left (the zeros of a one-hot cotangent): it is the median, no sort
        shift = float(gg[0])
    else:
        o = np.argsort(gg, kind="stable")
        cw = np.cumsum(pw[o])
        shift = float(gg[o[min(int(np.searchsorted(cw, half)), o.size - 1)]]) if o.size else 0.0
        del o, cw
    del gg, pw
    if not math.isfinite(shift):
        shift = 0.0
    v = g - shift * p if log else g - shift
    if spec.heavy:
        # algebraic tails, p >~ 1 / (n spread^nu): v / p stays far inside the float range
        if log:
            v /= p
        del rS, lp
        return fast_cauchy_vjp_row(z, v, fam, spec, cache, geo, M, LF, p, out=out)
    # the diagonal part first, so that rho_S and p are freed before the Gamma
    # integrals (n-sized arrays live at once bound the row's extra memory)
    out = np.multiply(rS, v, out=out)
    if not log:
        out *= p
    del rS
    with np.errstate(divide="ignore"):
        lmag = np.log(np.abs(v))
    if log:
        lmag -= lp
    # the Gamma weights need only their signs from here on (lmag finite <=> v != 0)
    neg = v < 0
    del lp, p, v
    LFv = LF.ensure(0, geo.G)
    win = _node_kernel(geo, fam, spec)
    if spec.rows is not None and spec.rows.dense:
        # the families whose dense VJPs the row-batched engine serves: Gamma spread once
        # with its signs (:func:`_signed_T2`); rows it cannot certify take the terms of
        # each sign apart below
        try:
            out -= _signed_T2(z, neg, lmag, geo, spec, fam, win, LFv, log)
            del neg, lmag
            if not np.all(np.isfinite(out)):
                raise NotImplementedError("VJP: a term overflowed float64")
            return out
        except NotImplementedError:
            pass
    for sgn in (1.0, -1.0):
        sel = np.flatnonzero((~neg if sgn > 0 else neg) & np.isfinite(lmag))
        if sel.size == 0:
            continue
        lwt = _log_weight(z, sel, lmag[sel], geo, spec, fam, win, LFv, log)
        logT = _node_integrals(geo, lwt, fam, spec, win=win, fine=True)
        del sel, lwt
        # log T2 is interpolated like log g; where Gamma's mass moves between regions
        # (weights 1/p_j of very low entries against the bulk) it can bend too sharply
        # for the node stencil (gumbel_min log VJP, dense c: 6e-2): decline unless the
        # estimated error of log T2 -- the relative error of T2 -- is below 2e-11
        # (beyond the rounding of log T2 itself, ~1e-16 |log T2|: rows with |log F| ~ 1e6)
        if _interp_error(logT, geo.q, absolute=True, less_rounding=True) > 2e-11:
            raise NotImplementedError("VJP: log T2 not resolved by its node interpolant")
        T2 = _eval_at_scores(z, geo, logT)
        with np.errstate(over="ignore"):
            np.exp(T2, out=T2)
        if sgn > 0:
            out -= T2
        else:
            out += T2
        del T2
    if not np.all(np.isfinite(out)):
        raise NotImplementedError("VJP: a term overflowed float64")
    return out


def _signed_T2(z, neg, lmag, geo, spec, fam, win, LFv, log):
    """``T2_k = int h_k F Gamma`` at the scores, ``Gamma = sum_j v_j / p_j^log h_j`` with
    its signs (``lmag = log|v_j / p_j^log|``, ``neg = v < 0``): one spreading of the signed weights and
    one node pass (:func:`_log_weight` and :func:`_node_integrals` in their signed
    modes), the integrals as ``A R`` with ``A`` the integral of the positive scale
    ``h F Gamma_lb`` (``Gamma_lb <= sum_j |w_j| h_j``) and ``R`` the ratio of the
    signed rule to it; ``log A`` and ``R`` are interpolated at the scores, each
    declined unless its estimated error is below ``1e-11`` (absolute), so ``T2`` is
    within ``2e-11 A <= 2e-11 (T2_+ + T2_-)`` (the integrals of the terms of each sign,
    :func:`_row_vjp`'s bound).  Raises ``NotImplementedError`` where it cannot
    certify that (narrow integrands, an unconverged rule, unresolved interpolants)."""
    fin = np.isfinite(lmag)
    if fin.all():
        del fin
        # (a dense cotangent: every entry, no index or copies of the row)
        lwt = _log_weight(z, None, lmag, geo, spec, fam, win, LFv, log, neg=neg)
    else:
        sel = np.flatnonzero(fin)
        del fin
        if sel.size == 0:
            return 0.0
        # the selected entries' copies first and the index freed before the spreading
        # (n-sized arrays alive at once bound the row's extra memory)
        zs, ls, ns = z[sel], lmag[sel], neg[sel]
        del sel
        lwt = _log_weight(zs, None, ls, geo, spec, fam, win, LFv, log, neg=ns)
        del zs, ls, ns
    logA, ratio = _node_integrals(geo, lwt, fam, spec, win=win, fine=True, rho=lwt.ratio())
    del lwt
    if (_interp_error(logA, geo.q, absolute=True, less_rounding=True) > 1e-11
            or _interp_error(ratio, geo.q, absolute=True) > 1e-11):
        raise NotImplementedError("VJP: log A or the signed ratio not resolved by its node interpolant")
    T2 = _eval_at_scores(z, geo, logA)
    with np.errstate(over="ignore"):
        np.exp(T2, out=T2)
    T2 *= _eval_at_scores(z, geo, ratio, out=lmag)
    return T2


def fast_log_probs(x, fam, *, check_cost=True):
    """log p for each row of standardized scores ``x`` (shape (m, n)), O(n) per row.

    ``log p_i = log int h(t - x_i) prod_j Phi(t - x_j) dt`` (see module doc).
    Raises ``NotImplementedError`` when the family has no fast kernels, an
    internal accuracy check fails, or (``check_cost=True``) a rough cost model
    says the grids would cost more than exact O(n G) quadrature (few scores
    spread over a wide range); the caller then uses exact quadrature.

    >>> from numeric.families import get_family
    >>> lp = fast_log_probs(np.zeros((1, 3000)), get_family("logistic"))
    >>> bool(np.allclose(lp, -np.log(3000), rtol=0, atol=1e-13))
    True
    """
    _check_family(fam)
    x = _check_scores(x)
    spec = fam.fast
    cache = _cache_for(fam)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _row_log_probs(x[i], fam, spec, cache, check_cost=check_cost)
    return out


def fast_log_probs_rows(x, fam, *, check_cost=True, assume_finite=False):
    """Like :func:`fast_log_probs` but declines row by row: returns
    ``(log_p, ok)`` with ``ok[i]`` False (and ``log_p[i]`` NaN) for the rows
    the fast path declined, so a caller can send only those to quadrature.
    An unsupported family still raises ``NotImplementedError``.
    ``assume_finite=True`` skips the finiteness pass (the caller has checked).

    >>> from numeric.families import get_family
    >>> lp, ok = fast_log_probs_rows(np.array([[0.0] * 100, [0.0] * 99 + [150.0]]), get_family("normal"))
    >>> ok.tolist()
    [True, False]
    """
    _check_family(fam)
    x = _check_scores(x, finite=not assume_finite)
    spec = fam.fast
    cache = _cache_for(fam)
    out = np.empty_like(x)
    ok = np.zeros(x.shape[0], dtype=bool)
    for i in range(x.shape[0]):
        try:
            _row_log_probs(x[i], fam, spec, cache, check_cost=check_cost, out=out[i])
            ok[i] = True
        except NotImplementedError:
            out[i] = np.nan
    return out, ok


def _vjp_rows(x, cotangent, fam, check_cost, rows, assume_finite, log):
    _check_family(fam)
    x = _check_scores(x, finite=not assume_finite)
    g = np.asarray(cotangent, dtype=np.float64)
    if g.shape != x.shape:
        raise ValueError(f"cotangent must have the shape of x {x.shape}, got {g.shape}")
    if not assume_finite and not np.all(np.isfinite(g)):
        raise ValueError("cotangent must be finite")
    spec = fam.fast
    cache = _cache_for(fam)
    out = np.empty_like(x)
    ok = np.ones(x.shape[0], dtype=bool)
    for i in range(x.shape[0]):
        try:
            try:
                _checked_row_vjp(x[i], g[i], fam, spec, cache, check_cost, log, out[i])
            except NotImplementedError:
                if not _vjp_refines(x[i], fam):
                    raise
                fine = _refined(spec)
                _checked_row_vjp(x[i], g[i], fam, fine, _cache_for(fam, fine), check_cost, log, out[i])
        except NotImplementedError:
            if not rows:
                raise
            ok[i] = False
            out[i] = np.nan
    return (out, ok) if rows else out


# Rows whose VJP the grid cannot resolve (log T2 or log(F Gamma) bending too sharply for
# the 16-point stencils: for gumbel_min the weights 1 / p_j of entries far below the top,
# for the normal blocks of ~1e4 near-tied scores, under which log(F Gamma) bends within
# ~1 / #block) are redone once on the grid _REFINE times finer, where every bound of the
# module docstring only improves, when their standardized spread is at most this: the
# finer grids' cost grows with the square of the spread, and beyond it exact quadrature
# is the cheaper answer (the family's FastSpec.vjp_refine_span)


def _vjp_refines(z, fam):
    span = fam.fast.vjp_refine_span
    return span is not None and float(z.max()) - float(z.min()) <= span


def _row_onehot_vjp(z, y, cy, fam, spec, cache, check_cost=True, log=False, out=None):
    """One row of the VJP of ``p`` (``log=False``) or ``log p`` (``log=True``) for the
    one-hot cotangent ``c = cy e_y`` (the gradient of a negative log-likelihood),
    written into ``out`` when given.

    Differentiating the max-CDF form ``p_y = int h(x - z_y) F(x) dx``,

        d p_y / d z_k = - int h(x - z_k) h(x - z_y) F(x) dx = - T(z_k)   (k != y),
        d p_y / d z_y = sum_{k != y} T(z_k)                              (J^T 1 = 0),

    so ``(J^T c)_k = cy dp_y/dz_k`` and ``(J_log^T c)_k = (cy / p_y) dp_y/dz_k``.
    ``T(m) = int h(x - m) [F h_y](x) dx`` is the engine's node integral with the log
    weight ``log F + log h(x - z_y)`` on the grid (``x - z_y = (k - b_y - u_y) H`` from
    the exact lattice split of ``z_y``), integrated with the checks of the dense VJP's
    ``T2`` (windows from every grid row, narrow peaks refined locally with the
    stencil-resolution test on the log weight), and ``log T`` interpolated at the
    scores.  Every entry is one positive integral (the diagonal a sum of them), so it
    comes out to the rule's relative accuracy however small, far inside the README's
    1e-10 of the entry's sum of |terms| (here the entry itself)."""
    logg, geo, M, LF, z, spec, cache = _row_nodes(z, fam, spec, cache, check_cost)
    H = spec.H
    u, tmp, b = np.empty(1), np.empty(1), np.empty(1, dtype=np.int64)
    _split_lattice(z[y:y + 1], geo.invH, _MAGIC_BITS + int(geo.lo * geo.invH), u, tmp, b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lhy = fam.loghazard(((np.arange(geo.kL, geo.kR + 1) - int(b[0])) - u[0]) * H)
    lwt = _LogWeight(LF.ensure(0, geo.G), lhy, None)
    logT = _node_integrals(geo, lwt, fam, spec, win=_node_kernel(geo, fam, spec), fine=True)
    # log T is interpolated like log g; as for the dense VJP's T2 (see _row_vjp)
    if _interp_error(logT, geo.q, absolute=True, less_rounding=True) > 2e-11:
        raise NotImplementedError("VJP: log T not resolved by its node interpolant")
    out = _eval_at_scores(z, geo, logT, out=out)
    if log:
        # T / p_y formed in log space (p_y may lie below the float range); p_y = g(z_y)
        # itself (sum_j g(z_j) = int F' = 1: the other entries' values, which renormalise
        # log p, move it by ~1e-15 only)
        out -= _eval_at_scores(z[y:y + 1], geo, logg)[0]
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out[y] = 0.0
    out[y] = -float(out.sum())
    out *= -cy
    if not np.all(np.isfinite(out)):
        raise NotImplementedError("VJP: a term overflowed float64")
    return out


def _checked_row_vjp(z, g, fam, spec, cache, check_cost, log, out):
    """:func:`_row_vjp` (a one-hot ``g`` outside the heavy-tailed engine:
    :func:`_row_onehot_vjp`) into ``out``, declined (``NotImplementedError``) unless the row sums
    to 0: ``J^T 1 = 0`` (README: within 1e-12 of its absolute sum, plus the float
    resolution of subnormal entries).  An integral the checks missed moves its entries,
    and so the sum, by its own error: a row that fails is declined, never returned
    (numpy's pairwise sum is good to ~log2(n) ulps of sum |v|, far inside the limit)."""
    nz = np.flatnonzero(g) if not spec.heavy else ()
    v = None
    if len(nz) == 1:
        y = int(nz[0])
        v = _row_onehot_vjp(z, y, float(g[y]), fam, spec, cache, check_cost=check_cost, log=log, out=out)
    elif log and spec.node_vjp:
        # (imported here: that module builds on this one)
        from ._gumbel_min_dense import dense_log_vjp_row
        try:
            v = dense_log_vjp_row(z, g, fam, spec, cache, check_cost=check_cost, out=out)
        except NotImplementedError:
            v = None
    if v is None:
        v = _row_vjp(z, g, fam, spec, cache, check_cost=check_cost, log=log, out=out)
    if not abs(float(np.sum(v))) <= 1e-12 * float(np.abs(v).sum()) + v.size * 5e-324:
        raise NotImplementedError("VJP: row does not sum to 0")


def fast_probs_vjp(x, cotangent, fam, *, check_cost=True, rows=False, assume_finite=False):
    """Vector-Jacobian product of the probabilities, row by row, O(n) per row.

    ``(J^T g)_k = int h(t - x_k) F(t) (g_k S(t) - Gamma(t)) dt
    = sum_j (g_k - g_j) int h_k h_j F dt`` with ``S = sum_j h(t - x_j)``,
    ``Gamma = sum_j g_j h(t - x_j)`` (differentiate the max-CDF form; the
    diagonal term ``-int h'_k F`` becomes ``int h_k F S`` by parts).  Each
    entry is accurate relative to its own sum of |terms| (see
    :func:`_row_vjp`), whatever the cotangent: rows whose terms the engine
    cannot resolve are declined.  ``rows=True`` declines row by row like
    :func:`fast_log_probs_rows` and returns ``(vjp, ok)`` (declined rows NaN,
    for the caller's quadrature); otherwise a declined row raises
    ``NotImplementedError``.  ``assume_finite=True`` skips the finiteness
    passes (the caller has checked scores and cotangent).

    >>> from numeric.families import get_family
    >>> v = fast_probs_vjp(np.zeros((1, 3000)), np.ones((1, 3000)), get_family("normal"))
    >>> bool(np.abs(v).max() < 1e-16)
    True
    """
    return _vjp_rows(x, cotangent, fam, check_cost, rows, assume_finite, log=False)


def fast_log_probs_vjp(x, cotangent, fam, *, check_cost=True, rows=False, assume_finite=False):
    """Vector-Jacobian product of the log-probabilities, row by row, O(n) per row.

    ``(J_log^T c)_k = sum_i c_i d log p_i / d x_k = (J^T g)_k`` with ``g_i = c_i / p_i``,
    which spans the float range when some ``p_i`` are tiny.  So ``g`` is never
    formed: centred, ``g'_i = (c_i - p_i sum_j c_j) / p_i``, its diagonal part is
    ``g'_k T1_k = (c_k - p_k sum c) rho_S(x_k)`` and its ``Gamma`` enters the
    integrals as log weights ``log|c_i - p_i sum c| - log p_i`` (weights
    ``e^600`` apart are spread separately and summed in log space; see
    :func:`_row_vjp`).  Same signature, accuracy statement and row-decline
    contract as :func:`fast_probs_vjp` (``rows=True``: ``(vjp, ok)``).

    >>> from numeric.families import get_family
    >>> z = np.linspace(0.0, 30.0, 300)[None, :]       # p_0 ~ 1e-400: c / p overflows
    >>> c = np.zeros_like(z); c[0, 0] = -1.0
    >>> v = fast_log_probs_vjp(z, c, get_family("normal"))
    >>> bool(abs(v.sum()) < 1e-12 * np.abs(v).sum()), bool(v[0, 0] < 0)
    (True, True)
    """
    return _vjp_rows(x, cotangent, fam, check_cost, rows, assume_finite, log=True)


def _check_scores(x, finite=True):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must have shape (m, n) with n >= 2, got {x.shape}")
    if finite and not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    return x
