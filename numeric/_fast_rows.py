"""Row-batched form of the O(n) engine (numeric._fast) for normal and logistic noise.

The per-row engine (:mod:`numeric._fast`) computes, for one row of standardized
scores ``z``,

    p_i = g(z_i) / sum_j g(z_j),   g(m) = int h(x - m) F(x) dx,   log F(x) = sum_j f(x - z_j),

with ``f = log Phi``, ``h = f'``: ``log F`` on a grid ``x_k = lo + k H`` from binned
Taylor moments (``M[r, b] = sum_{j in bin b} u_j^r``), ``log g`` at nodes
``m_l = lo + l H`` by the trapezoid rule, and a local interpolant of ``log g``
evaluated at the scores.  Here the same three steps run on many rows at once:

* rows are grouped by their bin count ``P`` (rounded up to a multiple of
  ``_PQ``).  The grid, the nodes and every table then depend on ``P`` only, in
  coordinates relative to the row's own origin ``lo`` (a multiple of ``H``), so
  a group shares them: the matrix ``log h((k - l) H)`` of the node integrals
  is built once per ``P``; the Toeplitz matrices of the spreading
  ``W[(r, b), k] = a_r((k - b) H) (-H)^r`` depend on ``k - b`` only and are
  shared by every window (:func:`_window_spread`).
* ``log F`` on the integration rows (each row's window: its integrands live
  near its top scores, and bins more than the tables' cut below the window add
  nothing) is one matrix product ``M W`` per group of rows with one window.
  The bulk ``r = 0`` term ``sum_b count_b log Phi((k - b) H)`` is split as
  ``W0 = W0_hi + W0_lo`` with ``W0_hi`` on the lattice ``2^-e`` chosen so that
  ``n max|W0| 2^e <= 2^52``: every product and partial sum of
  ``count . W0_hi`` is then an integer multiple of ``2^-e`` below ``2^53``, so
  that product is exact in any summation order, and ``W0_lo`` (``|W0_lo| <=
  2^-e-1``) contributes at most ``P u n 2^-e-1`` of rounding, below
  ``1e-19`` absolute.  ``log F`` therefore carries one rounding of its own
  size (the per-row engine: ``O(log P)`` ulps of ``|log F|``).
* The node integrals use every grid row (step ``H``).  Each integrand
  ``h(x - m) F(x)`` is log-concave (``log h`` and ``log Phi`` are concave for
  these families), so the per-row engine's resolution test applies: the second
  difference of the log integrand at its peak must be below 0.35 (at least 1.7 samples per standard deviation; a Gaussian of
  that width is integrated by the trapezoid rule to ``exp(-2 pi^2 1.7^2) <
  1e-24``), the peak must lie inside the rows and the integrand must have
  decayed by ``e^-45`` at both ends.  As an independent check the rule on
  every other row (step ``2 H``) must agree to ``1e-8``: the trapezoid
  error of an integrand analytic in a strip falls geometrically (at least
  squaring when the step halves), so the full rule is then good to ``1e-16``.
  (gumbel_min, whose integrands below many scores are narrow: curvature up to 0.5
  and the Gaussian half-step test of :func:`_half_tol`.)  A row failing any check
  is declined (``ok`` False) and the caller sends it to the per-row engine, which
  refines narrow integrands on local grids.
  For ``log p`` and the VJPs' ``log g`` the node sums are matrix products of
  exponentially tilted factors (:func:`_node_products`: positive terms scaled
  to at most 1, no ``exp`` per node and column); the dense VJP's ``T2``
  integrands need not be log-concave and keep the log-space rule.
* The interpolation at the scores reads row-wise tables built by
  :func:`numeric._fast._fine_tables` on all rows at once; rows whose node values
  fail the per-row engine's interpolation-error estimate (``_interp_error``: blocks
  of tied scores sharpen ``log g``) are declined (the per-row engine halves its
  node stride there).

Matrix products run on blocks of exactly ``_MB`` rows (the last block padded
with zero rows): a BLAS product's rounding then depends only on the row
itself, so a row's result does not depend on its batch mates.  Per-score
passes of the VJPs run in column chunks of ``_COLS`` scores (fixed by ``n``),
so long rows need only the result and a few arrays of their size.

Dense cotangents (:func:`rows_dense_vjp`).  ``(J^T g)_k = g'_k T1_k - T2_k`` with
``g' = g - s`` (``J^T 1 = 0``; for ``log p``, ``g = c / p``), ``T1_k = p_k (log
g)'(z_k)`` (the derivative of the interpolant of ``log g``) and ``T2_k = int h_k F
Gamma``, ``Gamma = sum_j g'_j h_j``: one spreading of the signed weights (log
magnitudes ``log|g'_j|`` in bands of ``e^600``, each band with its signs) with the
hazard's Taylor tables, and one node pass, both on the columns where some node's
integrand can matter (:func:`_t2_windows`: a monotone bound on coarse cells of the
scale integrand below): the rule of the signed integrand ``h F Gamma`` (smooth: its halved rule is checked against the
scale below) as a ratio to the rule of ``h F Gamma_lb``, ``Gamma_lb <= sum_j |g'_j|
h_j`` a positive lower bound (bins' absolute weights times ``h`` half a bin further
out), whose log is interpolated at the scores like ``log g``, the ratio alongside.

One-hot cotangents (:func:`rows_onehot_log_vjp`).  With ``c = c_y e_y`` (the
gradient of a negative log-likelihood), ``sum_i c_i d log p_i / d mu_k =
c_y (d p_y / d mu_k) / p_y`` and, differentiating the max-CDF form,

    d p_y / d mu_k = - int h(x - mu_k) h(x - mu_y) F(x) dx      (k != y),
    d p_y / d mu_y = sum_{k != y} int h_k h_y F dx               (the row sums to 0).

The first is ``g_y(mu_k)`` with ``g_y(m) = int h(x - m) [F h_y](x) dx``: the
engine's node integrals with ``log F`` replaced by ``log F + log h(x - mu_y)``
(still log-concave), interpolated at the scores like ``log g``.  Every term is
positive, so each entry comes out to the engine's relative accuracy however
small it is, and the diagonal is a sum of positive terms.  ``p_y`` in the
ratio is ``H st sum_k h(x_k - mu_y) F(x_k)``, the same rule on the same rows; the
VJP of ``p`` itself takes ``d p_y / d mu_k`` as it stands (no ratio, no log p pass).

>>> import numpy as np
>>> from numeric.families import get_family
>>> lp, ok = rows_log_probs(np.zeros((2, 500)), get_family("normal"))
>>> bool(ok.all()), bool(np.allclose(lp, -np.log(500), rtol=0, atol=1e-13))
(True, True)
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ._exp import exp_terms
from ._fast import (_BAND, _FAR_EPS, _INTERP_TOL, _LATTICE_MAX, _MAGIC, _MAGIC_BITS,
                    _SPAN_MAX, _TAIL, _cache_for, _fine_tables, _gamma_cache, _interp_error)
from ._fast_grid import _lattice_exponent, _on_lattice, _signed_logadd

__all__ = ["rows_log_probs", "rows_onehot_log_vjp", "rows_dense_vjp", "rows_dense_worth", "rows_serves"]


def rows_serves(fam):
    """Whether this engine takes rows of ``fam`` (its ``FastSpec.rows``; numeric.families
    gives the reasons of each family's values)."""
    return fam.fast is not None and fam.fast.rows is not None


_COARSE = 8             # column stride of the window scan
# Taylor orders r < _WIN_R of the spreading in the window scan: the next term is at most
# |a_4| (H/2)^4 per score (normal: 0.1 (1/32)^4, logistic: (1/16)^4 / 4!), below 0.05 in
# log F for n <= 2^16 and 1.3 for the longest (logistic VJP) rows -- little against the
# scan's margin _TAIL = 45 and its extra coarse sample, and the rule's own checks (decay
# at the window ends, the peak found on every column) stand behind it
_WIN_R = 4
_WQ = 16                # windows rounded outwards to multiples of this many columns
_WQ_ONEHOT = 64         # ... those of the one-hot VJP (a multiple of _WQ)
# accepted |T_2h / T_h - 1| (the rule on every other row against the full rule): the
# error of a rule analytic in a strip falls geometrically, err(h) <= err(2h)^2 <= 1e-16
# (or, for RowsSpec.gauss_agree families, the Gaussian bound of :func:`_half_tol`)
_AGREE = 1e-8
_PQ = 16                 # bin counts rounded up to a multiple of this (fewer groups)
# the spreading matrices of log F cover a row's integration window only
# (:func:`_window_spread`): its integrands live where F is not negligible, near the top
# scores, and bins more than the tables' cut below the window add nothing there.  The
# dense VJPs take rows of at most RowsSpec.p_max bins, the rest of the engine rows of up
# to RowsSpec.p_wide (bin counts above p_max rounded up to a multiple of _PQ_WIDE: fewer
# plans); the per-row engine serves the rows declined
_PQ_WIDE = 64
# the per-score temporaries (bins, offsets, powers, evaluation) of a block of rows are
# ~10 arrays of its size: blocks of <= 2^18 scores keep them near 20 MB; longer rows go
# to the per-row engine, which works in cache-sized chunks
_BLOCK_ELEMS = 1 << 18
_N_MAX = 1 << 16
# the VJPs run their per-score passes in column chunks and keep at most two arrays of
# the rows' size, so they take long rows too (the per-row engine's VJPs need several
# times more memory there), up to RowsSpec.n_max_vjp scores ...
# ... except rows of (_N_MAX, _N_LONG] scores: there the per-row engine's VJPs are
# faster on a single row (2-3x at n = 1e5) and their memory stays within 4 times the
# input's plus 32 MB; beyond it they need several times that (n = 1e6: 115-170 MB)
_N_LONG = 1 << 18
# dense VJPs of rows of (_N_MAX_DENSE, _N_MAX]: the per-row engine is faster (same-process,
# n = 32000: 1.0-2.6 times, most on clustered rows, which this engine declines after
# most of its work), at n = 8192 about even
_N_MAX_DENSE = 1 << 14
# fewer rows than this go to the per-row engine (:func:`rows_dense_worth`)
_DENSE_MIN_ROWS = 4
# the dense VJPs take rows of up to this many times RowsSpec.p_max bins where the Gamma
# strip of that width stays cached (:func:`_dense_p_lim`): Gamma's products and the T2
# rule run on the columns where the integrands matter (:func:`_t2_windows`), so a wide
# row costs about its live columns.  s = 5 rows of n = 1000 span 448-704 bins (normal),
# 224-352 (logistic).  Every check of the module doc applies as it stands
_P_VJP_WIDE = 2
_COLS = 1 << 15         # scores per column chunk of the per-score passes
# columns the probs VJP's T2 windows reach left of those of h F (Gamma's weights |g'_j|
# move some mass towards lower scores)
_T2_LEFT = 64
_PLANS_BYTES = 96 << 20     # plans kept up to this many bytes (a batch of s * N(0, 1) rows
                            # spans ~6 bin counts, clustered rows up to ~15)
# spreading matrices kept up to this many bytes: the strips of log F (one per n scale)
# and of Gamma (one per VJP kind) that serve every bin count, ~20-30 MB each at p_max
_WINDOWS_BYTES = 96 << 20
_MB = 4                 # rows per matrix product (fixed: bits independent of the batch)
# multiply-adds per product: below OpenBLAS's threading threshold (one thread: on a
# shared machine its worker threads spin and cost more than the work)
_MM_MACS = 900_000
# inner-dimension chunks of the long products (_matmul_rows) and their column blocks:
# a (_KC x _KC_COLS) block of B is 1 MB, the size of a core's L2 cache
_KC = 1024
_KC_COLS = 128
_ELEMS = 1 << 18        # (rows x nodes x grid rows) elements per node-integral block
# the fine tables of log g (:func:`numeric._fast._fine_tables`) about _FINE[0] points per
# node interval, each a degree-_FINE[1] Taylor polynomial.  A row here holds n scores
# against K S table rows (n = 1000 at a spread of 30: K = 306, so S = 16 builds five table
# rows per score); S = 8 builds half of them (six terms each instead of five).  The
# truncation is e_(d+1) (1/(2 S))^(d+1) in node units; the per-row engine's measurement
# (S = 16: d = 3 leaves 5e-14 of max(1, |log g|), so |e_4| <~ 5e-8) puts |e_j| below
# ~0.02^j there, and S = 8, d = 5 leaves 0.02^6 16^-6 < 1e-17.  Measured against
# S = 16, d = 4 (normal, logistic, gumbel_min; n = 300, 1000; s = 1, 2, 5 and clusters
# with ties): within 3 ulps of max(1, |log p|), the rounding of log g itself
_FINE = (8, 5)
# largest second difference of the log integrand at its peak (the per-row engine's)
_CURV_MAX = 0.35
# ... for RowsSpec.gauss_agree families, whose narrow integrands pass the Gaussian
# half-step test of :func:`_half_tol`: at kappa <= 0.5 the rule at H errs by at most
# 16 * 2.01 e^(-2 pi^2 / kappa) <= 2.3e-16 of the integral (the derivation is there), a
# rounding of log g.  gumbel_min rows of n = 1000 at a spread of 6-7 units (N(0, 1)) have
# their lowest nodes' integrands at kappa 0.35-0.5 (sigma ~ 1 / sqrt(#above) grid
# steps); at 10 units most exceed 0.5 and go to the per-row engine
_CURV_MAX_GAUSS = 0.5

_PLANS: dict = {}
_WINDOWS: dict = {}
_PLANS_LOCK = threading.Lock()


class _Plan:
    """Geometry and shared matrices of one family and bin count ``P``.

    Grid rows ``k = kL + j`` (``j < Gs``), nodes ``l = lL + ms i`` (``i < K``),
    both relative to a row's origin ``lo``; ``W`` (R + 1, P, Gs): the spreading
    matrices ``a_r((k - b) H) (-H)^r`` (a view of one table strip); ``LH`` (K, Gs):
    ``log h((k - l) H)``."""

    __slots__ = ("name", "curv_max", "gauss_agree", "P", "kL", "Gs", "ms", "q", "lL", "K", "Tk", "W", "W0max", "LH", "agree", "loghazard",
                 "Wc", "LHc", "s_hi", "R", "kcache", "d_lo", "lam", "tilts", "fine_S", "fine_d",
                 "spec", "tilt_set")

    def __init__(self, fam, spec, P):
        H, R = spec.H, spec.R
        self.name = fam.name
        self.P = P
        self.spec = spec
        self.agree = _AGREE
        self.curv_max = _CURV_MAX_GAUSS if spec.rows.gauss_agree else _CURV_MAX
        self.gauss_agree = spec.rows.gauss_agree
        self.tilt_set = spec.rows.tilts
        self.kL = kL = -int(math.ceil(spec.pad_left / H))
        kR = P - 1 + int(math.ceil(spec.pad_right / H))
        self.Gs = Gs = kR - kL + 1
        self.ms, self.q = spec.ms, spec.q
        self.fine_S, self.fine_d = _FINE
        half = spec.q // 2
        self.lL = -(half + 1) * spec.ms
        self.K = (P - 1 - self.lL) // spec.ms + half + 2
        k = kL + np.arange(Gs)
        # the tables along s = k - b for s = kL - (P - 1) .. kR (zero beyond the right cut),
        # column r scaled by (-H)^r: W_r[b, j] = Tk[r, j + P - 1 - b] (a Toeplitz view)
        s = np.arange(kL - (P - 1), kR + 1)
        self.kcache = cache = _cache_for(fam)
        s0, A, _ = cache.get(int(s[0]))
        inside = s <= cache.s_hi
        Tk = np.where(inside[:, None], A[np.where(inside, s - s0, 0), :R + 1], 0.0).T
        Tk[1:] *= ((-H) ** np.arange(1, R + 1))[:, None]
        self.Tk = Tk
        self.W = sliding_window_view(Tk, Gs, axis=-1)[:, ::-1, :]      # (R + 1, P, Gs) view
        self.W0max = float(np.abs(Tk[0]).max())
        l = self.lL + spec.ms * np.arange(self.K)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self.LH = fam.loghazard((k[None, :] - l[:, None]) * H)
            # log h along every offset d = k - l of a column from a node (the tilted kernels)
            self.d_lo = kL - int(l[-1])
            self.lam = fam.loghazard(np.arange(self.d_lo, kR - self.lL + 1) * H)
        self.tilts = {}
        self.loghazard = fam.loghazard
        self.s_hi, self.R = cache.s_hi, R
        # coarse columns (every _COARSE-th) for the windows: plain products suffice there
        self.Wc = np.ascontiguousarray(self.W[:_WIN_R, :, ::_COARSE].reshape(_WIN_R * P, -1))
        self.LHc = np.ascontiguousarray(self.LH[:, ::_COARSE])

    @property
    def nbytes(self):
        return self.Tk.nbytes + self.LH.nbytes + self.Wc.nbytes + self.LHc.nbytes

    def tilted(self, c):
        """``(e, C1)``: the kernel ``e[d - d_lo] = exp(log h(d H) + c d H - C1)`` along the
        offsets ``d`` of :attr:`lam`, ``C1`` the integer ceiling of the exponent's
        maximum (so ``e <= 1``, and ``C1 - c d H`` is exact: ``c`` an integer, ``H`` a
        power of two)."""
        got = self.tilts.get(c)
        if got is None:
            H = self.spec.H
            with np.errstate(invalid="ignore", over="ignore"):
                arg = self.lam + c * H * np.arange(self.d_lo, self.d_lo + self.lam.size)
                C1 = float(math.ceil(np.max(arg[np.isfinite(arg)])))
                got = self.tilts.setdefault(c, (np.exp(arg - C1), C1))
        return got

def _toeplitz_window(key, s0, nb, w, build):
    """The cached strip of key ``key`` that holds bins ``0 .. nb - 1`` against columns
    whose offsets from the first bin run ``s0 .. s0 + w - 1``: ``(o, mats)`` with the
    window the columns ``o .. o + w - 1`` of each matrix in ``mats``.

    The matrices are Toeplitz in column minus bin, so one strip (per key) serves every
    window: it holds offsets from its smallest ``s_base`` on, rows for its largest
    bin count, and ``build(s_base, NB, WB)`` makes it; it is grown to the extents asked
    for and kept in a cache bounded by bytes (least recently built dropped first).
    Its entries do not depend on which windows were asked for first."""
    got = _WINDOWS.get(key)
    if got is None or got[0] > s0 or got[1] < nb or got[0] + got[2] < s0 + w:
        base, NB, end = (s0, nb, s0 + w) if got is None else (
            min(s0, got[0]), max(nb, got[1]), max(s0 + w, got[0] + got[2]))
        mats = build(base, NB, end - base)
        got = (base, NB, end - base, mats)
        size = sum(x.nbytes for x in mats)
        with _PLANS_LOCK:
            _WINDOWS.pop(key, None)
            while _WINDOWS and sum(sum(x.nbytes for x in v[3]) for v in _WINDOWS.values()) + size > _WINDOWS_BYTES:
                _WINDOWS.pop(next(iter(_WINDOWS)))
            _WINDOWS[key] = got
    return s0 - got[0], got[3]


def _window_spread(pl, e, s0, nb, w):
    """``(W0_hi, S)``: the spreading matrices of ``nb`` bins on ``w`` columns whose first
    bin sits ``s0`` grid steps below the first column, ``W0_hi`` (nb, w) the ``r = 0``
    table on the lattice ``2^-e`` and ``S`` (nb (R + 1), w) with row ``j (R + 1) + r``
    holding ``W0 - W0_hi`` (``r = 0``) and ``W_r`` (``r >= 1``) of bin ``j``; entry
    ``(j, c)`` is the table at offset ``s0 + c - j`` (column minus bin).  One strip per
    family, ``e`` and residue of ``s0`` modulo ``_WQ`` (windows start on multiples of
    ``_WQ``): :func:`_toeplitz_window`."""
    R1 = pl.R + 1

    def build(base, NB, WB):
        W = _table_strip(pl.kcache, "A", pl.spec.H, R1, base, NB, WB)
        hi = _on_lattice(W[0], e)
        S = np.empty((NB, R1, WB))
        np.subtract(W[0], hi, out=S[:, 0])
        S[:, 1:] = W[1:].transpose(1, 0, 2)
        return hi, S.reshape(-1, WB)

    o, (hi, S) = _toeplitz_window((pl.name, e, s0 % _WQ), s0, nb, w, build)
    return hi[:nb, o:o + w], S[:nb * R1, o:o + w]


def _gamma_window(pl, gc, log, s0, nb, w):
    """``S_lb`` (nb, w) holding ``h((s0 + c - j + 1/2) H)`` at bin ``j`` and column ``c``
    (zero beyond the cut ``t_c`` of the Gamma tables ``gc`` of numeric._fast's
    ``_gamma_cache``): ``h`` decreases (normal, logistic), so a bin's absolute weights
    times it bound its terms' moduli from below.  One strip per family, VJP and residue
    of ``s0`` modulo ``_WQ`` serves every bin count (:func:`_toeplitz_window`)."""

    def build(base, NB, WB):
        s = np.arange(base - (NB - 1), base + WB)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            lb = np.where(s <= gc.s_hi, np.exp(pl.loghazard((s + 0.5) * pl.spec.H)), 0.0)
        return (np.ascontiguousarray(sliding_window_view(lb, WB)[::-1, :]),)

    o, (Slb,) = _toeplitz_window((pl.name, "gamma_lb", log, s0 % _WQ), s0, nb, w, build)
    return Slb[:nb, o:o + w]


def _gamma_blocks(pl, gc, log, e_lo, e_hi):
    """``(D, e_top)``: the blocks of Gamma's spreading matrix on absolute columns.

    With bins ``j = _TRI J + jj`` and columns ``c = _TRI C + cc`` (column 0 at grid row
    ``kL``, bin 0 at the row's origin) the entry of bin ``j``, order ``r`` and column
    ``c`` is ``b_r((kL + c - j) H) (-H)^r`` (``b_r = h^(r) / r!`` from the Gamma tables
    ``gc``, zero beyond their cut): it depends on ``e = C - J``, ``jj``, ``r``, ``cc``
    only.  ``D[e_top - e]`` ((_TRI (R + 1)), _TRI) holds block ``e`` with row ``jj (R +
    1) + r``, in order of decreasing ``e``, so the blocks of bins ``J0 .. NJ - 1`` of
    column block ``C`` are the contiguous run ``D[e_top - C + J0 : e_top - C + NJ]``: a
    ready matrix of every bin count from a few MB (a strip of every bin against every
    column would hold (R + 1) P (P + pads) entries: 88 MB for the normal's log p VJP at
    640 bins).  Cached per family and VJP, grown to the blocks asked for."""
    key = (pl.name, "gamma_blk", log)
    got = _WINDOWS.get(key)
    if got is None or got[0] > e_lo or got[1] < e_hi:
        if got is not None:
            e_lo, e_hi = min(e_lo, got[0]), max(e_hi, got[1])
        R1, T = gc.R + 1, _TRI
        ee = np.arange(e_hi, e_lo - 1, -1)
        base = pl.kL + T * e_lo - (T - 1)
        s = np.arange(base, pl.kL + T * e_hi + T)           # every offset of the blocks
        c0, _, Bt = gc.get(int(s[0]))
        inside = s <= gc.s_hi
        Tk = np.where(inside[:, None], Bt[np.where(inside, s - c0, 0), :R1], 0.0)    # (offsets, R1)
        Tk[:, 1:] *= (-pl.spec.H) ** np.arange(1, R1)
        jj, cc = np.arange(T), np.arange(T)
        # offset index of (block, jj, cc): kL + T e + cc - jj - base
        idx = (T * (ee - e_lo))[:, None, None] + (T - 1) + cc[None, None, :] - jj[None, :, None]
        D = np.ascontiguousarray(Tk[idx].transpose(0, 1, 3, 2)).reshape(ee.size, T * R1, T)
        got = (e_lo, e_hi, None, (D,))
        with _PLANS_LOCK:
            _WINDOWS.pop(key, None)
            while _WINDOWS and sum(sum(x.nbytes for x in v[3]) for v in _WINDOWS.values()) + D.nbytes > _WINDOWS_BYTES:
                _WINDOWS.pop(next(iter(_WINDOWS)))
            _WINDOWS[key] = got
    return got[3][0], got[1]


def _table_strip(cache, table, H, R1, base, NB, WB):
    """``W[r, j, c]`` (R1, NB, WB): column ``r`` of the Taylor table ``table`` ("A": log Phi,
    "B": the hazard) of ``cache`` at offset ``base + c - j``, zero beyond the cache's
    right cut, scaled by ``(-H)^r`` (a Toeplitz view of one table strip)."""
    s = np.arange(base - (NB - 1), base + WB)             # offsets column minus bin, ascending
    c0, A, B = cache.get(int(s[0]))
    T = A if table == "A" else B
    inside = s <= cache.s_hi
    Tk = np.where(inside[:, None], T[np.where(inside, s - c0, 0), :R1], 0.0).T
    Tk[1:] *= ((-H) ** np.arange(1, R1))[:, None]
    return sliding_window_view(Tk, WB, axis=-1)[:, ::-1, :]


def _cut_blocks(s0, s_hi, nb, w):
    """Column blocks ``(c0, c1, j0)`` of a window of ``w`` columns whose first bin sits
    ``s0`` steps below its first column: bins below ``j0`` add nothing to the block
    (column minus bin beyond the tables' cut ``s_hi`` for every column of it), so its
    product starts at bin ``j0`` (blocks of ``_TRI`` columns; neighbours that start from
    the same bin merged: fewer, larger products)."""
    starts = [min(nb, max(0, s0 + c0 - s_hi)) for c0 in range(0, w, _TRI)]
    edges = [i * _TRI for i in range(len(starts)) if i == 0 or starts[i] != starts[i - 1]] + [w]
    return [(c0, c1, starts[c0 // _TRI]) for c0, c1 in zip(edges[:-1], edges[1:])]


def _cached_plan(key, build):
    pl = _PLANS.get(key)
    if pl is None:
        pl = build()
        with _PLANS_LOCK:
            # the oldest built go first
            while _PLANS and sum(q.nbytes for q in _PLANS.values()) + pl.nbytes > _PLANS_BYTES:
                _PLANS.pop(next(iter(_PLANS)))
            pl = _PLANS.setdefault(key, pl)
    return pl


def _plan(fam, P):
    return _cached_plan((fam.name, P), lambda: _Plan(fam, fam.fast, P))


def _matmul_rows(A, B, out, rows=None, a0=0):
    """``out = A[rows, a0:] @ B`` (``rows``: every row when None) as products of exactly
    ``_MB`` rows (the last block zero-padded) by blocks of ``B`` small enough
    (``_MM_MACS`` multiply-adds) that OpenBLAS stays on one thread: each entry's
    rounding then depends on its own row only.

    Inner dimensions above ``_KC`` run in chunks of ``_KC`` (the last shorter) whose
    products are added in order, on column blocks of ``_KC_COLS``: a block of ``B``
    (1 MB) then stays in the core's cache while every row block reads it (one long
    column block of the whole inner dimension, re-read from memory for each row
    block, ran at a fifth of the speed).  The chunks depend on the shapes only, so
    the rounding still depends on the row alone; it is BLAS's own blocked sum (a few
    ulps of the sum of the moduli), and sums of lattice multiples stay exact."""
    k, N = B.shape
    m = A.shape[0] if rows is None else rows.size
    full = m - m % _MB if rows is None else 0
    buf = np.zeros((_MB, min(k, _KC) if k > _KC else k))

    def ablock(i, k0, k1):
        # rows i .. i + _MB - 1 of A[rows, a0:], inner columns k0 .. k1 - 1
        if i < full:
            return A[i:i + _MB, a0 + k0:a0 + k1]
        q = min(_MB, m - i)
        blk = buf[:, :k1 - k0]
        blk[q:] = 0.0
        blk[:q] = A[i:i + q, a0 + k0:a0 + k1] if rows is None else A[rows[i:i + q], a0 + k0:a0 + k1]
        return blk

    if k > _KC:
        tmp = np.empty((_MB, min(_KC_COLS, N)))
        for j0 in range(0, N, _KC_COLS):
            j1 = min(N, j0 + _KC_COLS)
            t = tmp[:, :j1 - j0]
            for k0 in range(0, k, _KC):
                k1 = min(k, k0 + _KC)
                Bb = B[k0:k1, j0:j1]
                for i in range(0, m, _MB):
                    np.matmul(ablock(i, k0, k1), Bb, out=t)
                    o = out[i:i + _MB, j0:j1]
                    if k0:
                        o += t[:min(_MB, m - i)]
                    else:
                        o[...] = t[:min(_MB, m - i)]
        return out
    cols = max(1, _MM_MACS // (_MB * k))
    tmp = np.empty((_MB, min(cols, N)))
    for j0 in range(0, N, cols):
        j1 = min(N, j0 + cols)
        Bj = B[:, j0:j1]
        t = tmp[:, :j1 - j0]
        for i in range(0, m, _MB):
            np.matmul(ablock(i, 0, k), Bj, out=t)
            out[i:i + _MB, j0:j1] = t[:min(_MB, m - i)]
    return out


def _chunks(n):
    """Column slices of ``_COLS`` scores (the last shorter): per-score temporaries of a
    block of rows stay small, and a row's sums run in the same order whatever its
    batch mates (the slices depend on ``n`` only)."""
    return [slice(c0, min(n, c0 + _COLS)) for c0 in range(0, n, _COLS)]


def _split(z, lo_i, spec, P):
    """Exact bins and offsets of rows ``z`` with origins ``lo_i H``: ``(gb, u)``, flat,
    ``z = (lo_i + b + u) H`` with ``|u| <= 1/2`` and ``gb = row P + b``."""
    m, n = z.shape
    v = z * (1.0 / spec.H)
    t = v + _MAGIC
    b = t.view(np.int64) - (_MAGIC_BITS + lo_i)[:, None]      # exact bin index per score
    t -= _MAGIC
    v -= t                                                   # u in [-1/2, 1/2], exact
    b += (np.arange(m, dtype=np.int64) * P)[:, None]         # bins of row r: r P .. r P + P - 1
    return b.ravel(), v.ravel()


def _moments(z, lo_i, spec, P):
    """Bin moments ``M`` ((R + 1), rows, P) of rows ``z`` with origins ``lo_i H``:
    ``M[r, row, b] = sum_{j in bin b} u_j^r`` (one bincount per order over all rows;
    each bin's sum runs over its scores in row order)."""
    m, n = z.shape
    R = spec.R
    M = np.zeros((R + 1, m * P))
    for c in _chunks(n):
        gb, u = _split(z[:, c], lo_i, spec, P)
        M[0] += np.bincount(gb, minlength=m * P)
        pw = u.copy()
        for r in range(1, R + 1):
            M[r] += np.bincount(gb, weights=pw, minlength=m * P)
            if r < R:
                pw *= u
    return M.reshape(R + 1, m, P)


def _log_F(M, pl, n, a, b):
    """``log F`` on the plan's integration columns ``a .. b - 1``, (rows, b - a).

    Bins below ``b0`` contribute nothing there (``k - b`` beyond the tables' right
    cut for every column) and are left out, and so, per block of ``_TRI`` columns,
    are the bins below the first that reaches the block's first column (the
    matrices are zero where column minus bin exceeds the cut)."""
    R1, m, P = M.shape
    # W0_hi on the lattice 2^-e with n max|W0| 2^e <= 2^52: count . W0_hi is exact
    e = _lattice_exponent(n, max(pl.W0max, 1.0))
    b0 = max(0, min(P - 1, pl.kL + a - pl.s_hi))
    s0 = pl.kL + a - b0
    hi, S = _window_spread(pl, e, s0, P - b0, b - a)
    M0 = np.ascontiguousarray(M[0, :, b0:])
    rest = np.ascontiguousarray(M[:, :, b0:].transpose(1, 2, 0)).reshape(m, -1)     # (row, (b, r))
    out = np.empty((m, b - a))
    # bin j reaches column c when s0 + c - j <= s_hi
    for c0, c1, j0 in _cut_blocks(s0, pl.s_hi, P - b0, b - a):
        o = out[:, c0:c1]
        if j0 == P - b0:
            o[...] = 0.0
            continue
        _matmul_rows(M0[:, j0:], hi[j0:, c0:c1], o)
        o += _matmul_rows(rest[:, j0 * R1:], S[j0 * R1:, c0:c1], np.empty((m, c1 - c0)))
    return out


def _log_F_at(M, pl, n, a, b, cols):
    """``log F`` at the columns ``cols`` (ascending, within ``a .. b - 1``) of the window
    ``[a, b)``, (rows, cols.size): the matrices of :func:`_log_F` at those columns, every
    bin from the window's first reach on (entries beyond the cut are zero); the same
    lattice split of the bulk term, so the same rounding bound."""
    R1, m, P = M.shape
    e = _lattice_exponent(n, max(pl.W0max, 1.0))
    b0 = max(0, min(P - 1, pl.kL + a - pl.s_hi))
    hi, S = _window_spread(pl, e, pl.kL + a - b0, P - b0, b - a)
    j = np.asarray(cols) - a
    M0 = np.ascontiguousarray(M[0, :, b0:])
    rest = np.ascontiguousarray(M[:, :, b0:].transpose(1, 2, 0)).reshape(m, -1)
    out = _matmul_rows(M0, np.ascontiguousarray(hi[:, j]), np.empty((m, j.size)))
    out += _matmul_rows(rest, np.ascontiguousarray(S[:, j]), np.empty((m, j.size)))
    return out


def _windows(pl, M, extra=None, peaks=False):
    """Per row, the integration columns ``[a, b)`` outside which every node's log
    integrand is below its peak minus ``_TAIL``, rounded outwards to multiples of
    ``_WQ`` (so rows share them; each row's depends on that row only); with
    ``peaks`` also each node's coarse peak ``jm`` (rows, K): the integrand peaks
    within ``_COARSE`` columns of column ``_COARSE jm``.

    From ``log F`` (plus ``extra``, the one-hot weight) on every ``_COARSE``-th
    column: the log integrands are concave (module doc), so a coarse sample below
    the coarse peak minus ``_TAIL`` bounds everything beyond it."""
    m = M.shape[1]
    Lc = _matmul_rows(M[:_WIN_R].transpose(1, 0, 2).reshape(m, -1), pl.Wc, np.empty((m, pl.Wc.shape[1])))
    # with peaks: the windows from every _WSAMPLE-th node and the last ones (the extreme
    # windows are those of the extreme nodes: a peak moves right with its node); a node
    # whose integrand has not decayed at the ends fails the rule's checks
    K = pl.K
    keep = np.r_[0:K - _WSAMPLE:_WSAMPLE, K - _WSAMPLE:K] if peaks else slice(None)
    L = pl.LHc[None, keep, :] + Lc[:, None, :]
    if extra is not None:
        # the one-hot integrands h_m h_y F, and h_y F itself (the direct rule for g(z_y))
        Lc += extra
        L += extra[:, None, :]
        L = np.concatenate([L, Lc[:, None, :]], axis=1)
    Gc = L.shape[-1]
    with np.errstate(invalid="ignore"):
        jm = np.argmax(L, axis=-1)
        low = L < (np.take_along_axis(L, jm[..., None], axis=-1) - _TAIL)
    before = np.arange(Gc)[None, None, :] < jm[..., None]
    nl = np.count_nonzero(low & before, axis=-1).min(axis=1)
    nr = np.count_nonzero(low & ~before, axis=-1).min(axis=1)
    # (the one-hot windows, which differ more between rows, in coarser steps: fewer groups)
    wq = _WQ if extra is None else _WQ_ONEHOT
    a = np.maximum(nl - 1, 0) * _COARSE // wq * wq
    b = np.minimum(pl.Gs, -(-((Gc - nr) * _COARSE + 1) // wq) * wq)
    b[nr == 0] = pl.Gs
    if not peaks:
        return a, b
    return a, b, _coarse_peaks(pl, Lc, keep, jm[:, :keep.size])


def _coarse_peaks(pl, Lc, keep, jk):
    """Every node's coarse peak (the first coarse column where ``LHc[i] + Lc`` is
    largest), (rows, K), from those ``jk`` of the sampled nodes ``keep`` (ascending,
    holding the first and the last node).

    ``L_i(k) = log h((k - l_i) H) + w(k)`` with ``log h`` concave has increasing
    differences in ``(k, l_i)`` (``log h(k - l)`` is supermodular), so the smallest
    maximizer over any set of columns -- the coarse ones too -- does not decrease
    with the node (Topkis), whatever ``w``: the peak of node ``i`` lies between the
    peaks of the sampled nodes around it, and only those columns are searched.  (In
    rounded arithmetic a near-tie may pick a neighbouring sample; the exact peak is
    then searched around it by :func:`_node_products`, whose checks decline a row
    whose peak falls outside the searched columns.)"""
    m, Gc = Lc.shape
    K = pl.K
    nodes = np.arange(K)
    nxt = np.searchsorted(keep, nodes)
    prv = nxt - (keep[nxt] != nodes)
    lo, hi = jk[:, prv], jk[:, nxt]
    D = max(0, int((hi - lo).max()))
    cc = lo[..., None] + np.arange(D + 1)
    valid = cc <= hi[..., None]
    np.minimum(cc, Gc - 1, out=cc)
    with np.errstate(invalid="ignore"):
        L = pl.LHc[nodes[None, :, None], cc] + Lc[np.arange(m)[:, None, None], cc]
    L[~valid] = -np.inf
    return lo + np.argmax(L, axis=-1)


def _half_tol(curv, pl, concave=True):
    """Accepted ``|T_2H / T_H - 1|`` of nodes whose log integrand has the second
    difference ``curv`` at its peak (``concave``: the log integrand is concave).

    Normal and logistic: ``pl.agree`` (1e-8; with err(H) <= err(2H)^2, the strip
    argument of the module doc).  gumbel_min: the integrands of scores below many
    others are narrow (``sigma ~ 1 / sqrt(#above)``, a few grid steps), and for them
    the rule at ``2 H`` is not yet at 1e-8 although the rule at ``H`` is far below
    rounding.  For a Gaussian of second difference ``kappa = H^2 / sigma^2`` at its
    peak the trapezoid rule at step ``h`` errs by ``2 sum_k e^(-2 pi^2 k^2 sigma^2 /
    h^2) cos(.) <= 2.01 e^(-2 pi^2 sigma^2 / h^2)``: ``e_2H <= 2.01 e^(-pi^2 / (2
    kappa))`` and ``e_H <= 2.01 e^(-2 pi^2 / kappa) = 2.01 (e_2H / 2.01)^4``.  A
    measured disagreement within twice the Gaussian's ``e_2H`` says the integrand
    aliases no more than the Gaussian of its own peak width, so the rule at ``H``
    errs by about the fourth power of it, ``e_H <= 2.01 (2 e_2H / 2.01)^4 = 16 * 2.01
    e^(-2 pi^2 / kappa)``: at ``kappa <= 0.35``, ``e_2H <= 3e-6`` and ``e_H < 2e-23``;
    at the limit ``_CURV_MAX_GAUSS = 0.5`` of these families, ``e_2H <= 2.1e-4`` and
    ``e_H <= 2.3e-16``.  (The per-row engine, numeric._fast, accepts these integrands
    on the curvature test alone, up to 0.35.)  The dense VJP's ``T2`` integrands ``h F
    Gamma`` can be multimodal, where one peak's width says nothing of the rest: 1e-8
    and the curvature limit 0.35 for them."""
    if not (concave and pl.gauss_agree):
        return pl.agree
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(pl.agree, 4.02 * np.exp(-(math.pi ** 2 / 2.0) / curv))


def _trapezoid(L, logw, pl, concave=True, sgn=None):
    """``(log(w sum_k e^L), ok)`` over the last axis of the log integrands ``L``
    (overwritten), with the checks of the module doc: finite peak inside the rows,
    decayed by ``e^-45`` at both ends, second difference at the peak <= 0.35 (0.5 for
    the concave integrands of RowsSpec.gauss_agree families: ``_CURV_MAX_GAUSS``), and
    the rule on every other row within :func:`_half_tol`.

    ``sgn`` (rows, columns): a signed integrand ``sgn e^L`` with ``e^L`` a positive
    scale function of it (``|sgn|`` of order 1), and the result ``(log(w sum_k e^L),
    ratio, ok)`` with ``ratio`` the rule of the signed integrand over that of the
    scale; the checks above are on the scale, and the rule of the signed integrand on
    every other row must agree with its full rule within the tolerance times the
    scale's sum."""
    curv_max = pl.curv_max if concave else _CURV_MAX
    G = L.shape[-1]
    jm = np.argmax(L, axis=-1)[..., None]
    peak = np.take_along_axis(L, jm, axis=-1)[..., 0]
    jc = np.clip(jm, 1, G - 2)
    with np.errstate(invalid="ignore"):
        curv = (2.0 * peak - np.take_along_axis(L, jc - 1, axis=-1)[..., 0]
                - np.take_along_axis(L, jc + 1, axis=-1)[..., 0])
        good = (np.isfinite(peak) & (jm[..., 0] >= 2) & (jm[..., 0] <= G - 3) & (curv <= curv_max)
                & (L[..., 0] < peak - _TAIL) & (L[..., -1] < peak - _TAIL))
        L -= peak[..., None]
    exp_terms(L, out=L)
    tot = L.sum(axis=-1)
    if sgn is not None:
        L *= sgn[:, None, :]
        sig = L.sum(axis=-1)
        half = 2.0 * L[..., 0::2].sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            good &= np.abs(half - sig) <= _half_tol(curv, pl, concave) * tot
            return peak + (np.log(tot) + logw), sig / tot, good
    half = 2.0 * L[..., 0::2].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        good &= np.abs(half / tot - 1.0) <= _half_tol(curv, pl, concave)
        return peak + (np.log(tot) + logw), good


def _node_integrals(L_rows, pl, H, a, b, concave=True, sgn=None):
    """``(log int, ok)``: node integrals of ``LH[i] + L_rows[r]`` over the columns
    ``a .. b - 1`` (rows, K), and per row whether every node passed
    :func:`_trapezoid`'s checks; with ``sgn`` (rows, b - a) of signed integrands
    ``sgn e^(LH[i] + L_rows[r])``: ``(log int of the modulus, ratio, ok)`` (see there)."""
    m, Gs = L_rows.shape
    LH = pl.LH[:, a:b]
    K = pl.K
    logg = np.empty((m, K))
    ratio = np.empty((m, K)) if sgn is not None else None
    ok = np.ones(m, dtype=bool)
    blk = max(1, _ELEMS // (K * Gs))
    logw = math.log(H)
    for r0 in range(0, m, blk):
        r1 = min(m, r0 + blk)
        L = LH[None, :, :] + L_rows[r0:r1, None, :]
        if sgn is None:
            logg[r0:r1], good = _trapezoid(L, logw, pl, concave)
        else:
            logg[r0:r1], ratio[r0:r1], good = _trapezoid(L, logw, pl, concave, sgn[r0:r1])
        ok[r0:r1] = good.all(axis=1)
    return (logg, ok) if sgn is None else (logg, ratio, ok)


# smallest accepted sum of a node's scaled terms, e^-600: its terms within e^-_TAIL of the
# largest are then normal floats (> e^-700), each rounded relative to itself
_SUM_MIN = -600.0
_NEAR = _COARSE + 1     # columns either side of a coarse peak searched for the exact peak
_TRI = 64               # column blocks of the spreading product (each skips the bins below its reach)
_WSAMPLE = 4            # windows of the node products from every _WSAMPLE-th node (_windows)
_NODE_BLK = 64          # nodes per product of the node sums (_node_products)


def _node_products(L, pl, H, a, b, jm):
    """``(log int, ok)`` like :func:`_node_integrals` (the trapezoid rule on the columns
    ``a .. b - 1`` of the log integrands ``LH[i] + L[r]``, the same checks), with the
    sums as matrix products: per tilt ``c`` (the family's ``RowsSpec.tilts``)

        sum_k e^(LH[i, k] + L_k) = e^(C1 - c d_c H + L_kc) sum_k E_c[i, k] f_k,
        E_c[i, k] = e^(log h(d H) + c d H - C1),   f_k = e^(L_k - L_kc - c (k - kc) H),

    ``d = k - l_i`` (column minus node), ``kc`` the column where ``L_k - c k H`` is
    largest, ``d_c = kc - l_i``: both factors are at most 1 and ``C1 - c d_c H`` is
    exact, so the only roundings are those of the exponents near the node's terms
    (as in the log-space rule) and the product's sum of positive terms.  Each node
    takes the tilt nearest its peak offset ``t*`` (from the coarse peak ``jm`` of
    :func:`_windows`); a sum below ``e^_SUM_MIN`` declines the row (its largest terms
    would not be normal floats).  The rule on every other column is the product with
    the even columns alone.  The checks of :func:`_trapezoid` need each
    node's exact peak: the log integrand is concave, so it lies within ``_COARSE``
    columns of the coarse peak, and the ``2 _NEAR + 1`` columns around it are read."""
    m, W = L.shape
    K = pl.K
    ii = np.arange(K)
    l = pl.lL + pl.ms * ii
    # the columns a + q - _NEAR .. a + q + _NEAR of each node (q = its coarse peak's offset
    # in the window), read as runs of the rows padded by -inf (columns outside the window
    # take no part) and of log h along the offsets (LH[i, k] = lam[kL + k - l_i - d_lo])
    nw = 2 * _NEAR + 1
    q = np.clip(_COARSE * jm - a, 0, W - 1)
    pad = np.full((m, _NEAR), -np.inf)
    Lw = sliding_window_view(np.concatenate([pad, L, pad], axis=1), nw, axis=1)
    lam = np.concatenate([pad[0], pl.lam, pad[0]])
    with np.errstate(invalid="ignore"):
        vals = (sliding_window_view(lam, nw)[q + (pl.kL + a - pl.d_lo) - l[None, :]]
                + Lw[np.arange(m)[:, None], q])                                    # (m, K, nw)
        jp = np.argmax(vals, axis=-1)
        # flat positions of each node's peak and its neighbours in vals
        at = np.arange(m * K).reshape(m, K) * nw + jp
        jc = at + (np.clip(jp, 1, 2 * _NEAR - 1) - jp)
        vf = vals.ravel()
        peak = vf[at]
        curv = 2.0 * peak - vf[jc - 1] - vf[jc + 1]
        pcol = a + q - _NEAR + jp
        good = (np.isfinite(peak) & (jp >= 1) & (jp <= 2 * _NEAR - 1) & (pcol >= a + 2) & (pcol <= b - 3)
                & (curv <= pl.curv_max)
                & (pl.LH[None, :, a] + L[:, :1] < peak - _TAIL) & (pl.LH[None, :, b - 1] + L[:, -1:] < peak - _TAIL))
    del vals, Lw
    tilts = pl.tilt_set
    step = tilts[1] - tilts[0] if len(tilts) > 1 else 1
    # each node's tilt: the one nearest its peak offset t* = (column - node) H
    tstar = (pl.kL + _COARSE * jm - l[None, :]) * H
    ti = np.clip(np.rint(tstar / step), 0, len(tilts) - 1).astype(np.intp)
    logg = np.full((m, K), np.nan)
    half = np.full((m, K), np.nan)
    x = (pl.kL + a + np.arange(W)) * H             # column positions (exact)
    rows = np.arange(m)
    for t in np.unique(ti):
        c = tilts[t]
        e, C1 = pl.tilted(c)
        use = ti == t
        with np.errstate(invalid="ignore"):
            kc = np.argmax(L - c * x, axis=1)
        Lkc = L[rows, kc]
        with np.errstate(invalid="ignore"):
            D = L - Lkc[:, None]
            D -= c * (x[None, :] - x[kc][:, None])
        A = exp_terms(D, out=D)
        Ah = np.ascontiguousarray(A[:, ::2])
        st = e.strides[0]
        # the products over fixed blocks of _NODE_BLK nodes (those some row takes with this
        # tilt): BLAS picks its kernel by the operands' shapes, so a node's sum is then the
        # same bits whatever nodes its batch mates need
        for i0 in np.unique(np.flatnonzero(use.any(axis=0)) // _NODE_BLK) * _NODE_BLK:
            i1 = min(K, i0 + _NODE_BLK)
            # B[k, j] = e[(kL + a + k) - l_(i0 + j) - d_lo]: a Toeplitz block of the tilted kernel
            start = pl.kL + a - int(l[i0]) - pl.d_lo
            B = np.ascontiguousarray(as_strided(e[start:], shape=(W, i1 - i0), strides=(st, -pl.ms * st),
                                                writeable=False))
            Sm = _matmul_rows(A, B, np.empty((m, i1 - i0)))
            # the rule on every other column (the even ones): its own product, half the length
            Sh = _matmul_rows(Ah, B[::2], np.empty((m, i1 - i0)))
            # log of the scale: C1 - c (x_kc - m_i) + L_kc (the first two exact)
            with np.errstate(divide="ignore", invalid="ignore"):
                lS = np.log(Sm)
                scale = (C1 - c * (x[kc][:, None] - l[None, i0:i1] * H)) + Lkc[:, None]
                u = use[:, i0:i1]
                logg[:, i0:i1] = np.where(u, lS + scale, logg[:, i0:i1])
                half[:, i0:i1] = np.where(u, 2.0 * Sh / Sm, half[:, i0:i1])
                good[:, i0:i1] &= ~u | (lS >= _SUM_MIN)
    with np.errstate(invalid="ignore"):
        good &= np.abs(half - 1.0) <= _half_tol(curv, pl)
    return logg + math.log(H), good.all(axis=1)


def _points(zr, lo_i, pl, spec):
    """Where the scores ``zr`` (rows, n) sit in the fine tables of the plan's nodes
    (:func:`numeric._fast._fine_tables`): ``(idx, v, ok)`` with ``idx`` the flat
    index of each score's fine row into a (rows, d + 1, ncol) table (column 0),
    ``v`` its offset in ``[-1/2, 1/2]`` (an exact split of ``z a``, ``a = S / (ms H)``
    a power of two) and ``ok`` False for rows whose stencil leaves the nodes."""
    m, n = zr.shape
    S, d = pl.fine_S, pl.fine_d
    ncol = (pl.q // 2 - 1) * S + (pl.K - pl.q + 1) * S
    a = S / (spec.H * pl.ms)
    # fine row of score z: rint(z a) - r0, r0 = (lo + lL H) a  (lo = lo_i H)
    r0 = (lo_i + pl.lL) * (S // pl.ms)
    v = zr * a
    t = v + _MAGIC
    idx = t.view(np.int64) - (_MAGIC_BITS + r0)[:, None]
    t -= _MAGIC
    v -= t                                            # offset in [-1/2, 1/2]
    ok = (idx.min(axis=1) >= (pl.q // 2 - 1) * S) & (idx.max(axis=1) < ncol)
    idx[~ok] = (pl.q // 2 - 1) * S
    idx += (np.arange(m, dtype=np.int64) * ((d + 1) * ncol))[:, None]
    return idx, v, ok


def _tables(logg, pl, spec, abs_tol=None):
    """Fine tables (:func:`numeric._fast._fine_tables`) of the node values ``logg``
    (rows, K) and per row whether the interpolant resolves them
    (``_interp_error``: relative to ``max(1, |log g|)`` within ``_INTERP_TOL``, or
    with ``abs_tol`` the absolute error within it)."""
    fin = np.isfinite(logg).all(axis=1)
    if not fin.all():
        # a row with a node its checks declined (an underflowed sum: log 0) is tabulated
        # as zeros and declined, so no inf - inf enters the shared products
        logg = np.where(fin[:, None], logg, 0.0)
    tab = _fine_tables(logg, pl.q, pl.fine_S, pl.fine_d)       # (rows, d + 1, ncol)
    ok = fin
    if abs_tol is not None:
        ok = ok & (_interp_error(logg, pl.q, absolute=True) <= abs_tol)
    elif pl.ms > 1:
        # node values the q-point interpolant does not resolve (tied blocks): the
        # per-row engine halves the node stride (numeric._fast._interp_error)
        ok = ok & (_interp_error(logg, pl.q) <= _INTERP_TOL)
    return tab, ok


def _horner(tab, pts, pl, spec, deriv=False):
    """The fine tables ``tab`` at the points ``pts`` of :func:`_points` (Horner in the
    offset); ``deriv``: also the derivative with respect to the score (the same
    pass, ``d t / d z = S / (ms H)``)."""
    idx, v, _ = pts
    d = pl.fine_d
    ncol = tab.shape[2]
    flat = tab.reshape(-1)
    # column j of a row's table is ``j ncol`` after its column 0
    out = np.take(flat[d * ncol:], idx)
    dout = out.copy() if deriv else None
    tmp = np.empty_like(out)
    for j in range(d - 1, -1, -1):
        out *= v
        np.take(flat[j * ncol:], idx, out=tmp)
        out += tmp
        if deriv and j > 0:
            # p' = sum_j j e_j delta^(j-1): Horner alongside the value
            dout *= v
            dout += out
    if deriv:
        dout *= pl.fine_S / (spec.H * pl.ms)
        return out, dout
    return out


def _eval(zr, lo_i, logg, pl, spec):
    """Interpolants of the node values ``logg`` (rows, K) at the scores ``zr`` (rows,
    n): ``(values, ok)``, ``ok`` False for rows whose stencil leaves the nodes or
    whose node values the interpolant does not resolve (:func:`_tables`)."""
    pts = _points(zr, lo_i, pl, spec)
    tab, ok = _tables(logg, pl, spec)
    return _horner(tab, pts, pl, spec), ok & pts[2]


def _prepare(z, fam, wide=False, p_lim=None):
    """Per-row origins and bin counts: ``(lo_i, P, ok)`` (``wide``: rows up to
    ``RowsSpec.p_wide`` bins taken; ``p_lim``: up to that many)."""
    spec = fam.fast
    rs = spec.rows
    invH = 1.0 / spec.H
    zmin = z.min(axis=1)
    zmax = z.max(axis=1)
    ok = (zmax - zmin <= _SPAN_MAX) & (np.maximum(-zmin, zmax) <= _LATTICE_MAX)
    zmin = np.where(ok, zmin, 0.0)
    zmax = np.where(ok, zmax, 0.0)
    lo_i = np.floor(zmin * invH).astype(np.int64)
    P = np.rint(zmax * invH).astype(np.int64) - lo_i + 1
    P += (-P) % _PQ
    big = P > rs.p_max
    P[big] += (-P[big]) % _PQ_WIDE
    ok &= P <= (p_lim if p_lim is not None else rs.p_wide if wide else rs.p_max)
    return lo_i, P, ok


def _vjp_takes(fam, n, n_max=_N_MAX):
    """Whether the VJPs take rows of ``n`` scores of family ``fam`` (up to
    ``RowsSpec.n_max_vjp``; ``n_max``: the longest below _N_LONG)."""
    return n <= n_max or _N_LONG < n <= fam.fast.rows.n_max_vjp


def _rows(z, fam, group_fn, *args, takes=True, wide=False, p_lim=None):
    """Run ``group_fn(pl, rows, zr, lo_i, *args) -> (values, good)`` on the rows of
    each bin count (all declined unless ``takes``; ``wide``, ``p_lim``: see :func:`_prepare`)."""
    m, n = z.shape
    lo_i, P, ok = _prepare(z, fam, wide, p_lim)
    ok &= takes
    step = max(1, _BLOCK_ELEMS // n)
    groups = [np.flatnonzero(ok & (P == p)) for p in np.unique(P[ok])]
    if len(groups) == 1 and groups[0].size == m <= step:
        # one block of every row (long rows): no copies of the rows or the result
        val, good = group_fn(_plan(fam, int(P[0])), groups[0], z, lo_i, *args)
        val[~good] = np.nan
        return val, good
    out = np.full((m, n), np.nan)
    for group in groups:
        for a in range(0, group.size, step):
            rows = group[a:a + step]
            val, good = group_fn(_plan(fam, int(P[rows[0]])), rows, z[rows], lo_i[rows], *args)
            out[rows[good]] = val[good]
            ok[rows[~good]] = False
    return out, ok


def _subgroups(a, b):
    """Rows with the same window ``[a, b)``."""
    key = a * (1 << 32) + b
    for k in np.unique(key):
        sel = np.flatnonzero(key == k)
        yield int(a[sel[0]]), int(b[sel[0]]), sel


def _log_probs_group(pl, rows, zr, lo_i):
    spec = pl.spec
    m, n = zr.shape
    M = _moments(zr, lo_i, spec, pl.P)
    logg = np.empty((m, pl.K))
    good = np.zeros(m, dtype=bool)
    a, b, jm = _windows(pl, M, peaks=True)
    for a, b, sel in _subgroups(a, b):
        LF = _log_F(M[:, sel], pl, n, a, b)
        logg[sel], good[sel] = _node_products(LF, pl, spec.H, a, b, jm[sel])
    lp, good2 = _eval(zr, lo_i, logg, pl, spec)
    mx = lp.max(axis=1, keepdims=True)
    tot = exp_terms(lp - mx).sum(axis=1, keepdims=True)
    lp -= mx + np.log(tot)
    np.minimum(lp, 0.0, out=lp)
    return lp, good & good2




def rows_log_probs(z, fam, n_max=None):
    """``(log p, ok)`` for standardized finite rows ``z`` (m, n), n >= 2.

    ``log p_i = log g(z_i) - log sum_j g(z_j)`` (module doc); rows with ``ok``
    False (declined by a check, longer than ``n_max`` -- default: the family's
    ``RowsSpec.n_max_probs``, at most ``_N_MAX`` -- or wider than ``RowsSpec.p_wide`` bins: the
    per-row engine's) hold NaN.  A row's result depends on that row only.
    """
    n_max = min(_N_MAX, fam.fast.rows.n_max_probs if n_max is None else n_max)
    return _rows(z, fam, _log_probs_group, takes=z.shape[1] <= n_max, wide=True)


def _onehot_group(pl, rows, zr, lo_i, y, log):
    spec = pl.spec
    H = spec.H
    m, n = zr.shape
    M = _moments(zr, lo_i, spec, pl.P)
    r = np.arange(m)
    yr = y[rows]
    zy = zr[r, yr]
    cols = pl.kL + np.arange(pl.Gs)

    def weight(sel, c):
        # log h(x_k - z_y) on columns c (x_k = (lo_i + k) H exactly)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return pl.loghazard((lo_i[sel, None] + cols[None, c]) * H - zy[sel, None])

    gy = np.empty(m)
    lgy = np.empty((m, pl.K))
    good = np.zeros(m, dtype=bool)
    a, b, jm = _windows(pl, M, weight(r, slice(None, None, _COARSE)), peaks=True)
    for a, b, sel in _subgroups(a, b):
        LW = _log_F(M[:, sel], pl, n, a, b)
        LW += weight(sel, slice(a, b))
        lgy[sel], good[sel] = _node_products(LW, pl, H, a, b, jm[sel])
        if log:
            # log g(z_y): the rule on the same columns (the integrand h_y F, one per row)
            gy[sel], g0 = _trapezoid(LW, math.log(H), pl)
            good[sel] &= g0
    tab, good2 = _tables(lgy, pl, spec)
    good &= good2
    v = np.empty((m, n))
    for c in _chunks(n):
        pts = _points(zr[:, c], lo_i, pl, spec)
        good &= pts[2]
        vc = _horner(tab, pts, pl, spec)
        if log:
            vc -= gy[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(vc, out=vc)
        np.negative(vc, out=v[:, c])
    v[r, yr] = 0.0
    v[r, yr] = -v.sum(axis=1)
    return v, good


def rows_onehot_log_vjp(z, y, fam, log=True):
    """``(v, ok)``: ``v[r, k] = d log p_{y_r} / d z_{r, k}`` for standardized finite rows
    ``z`` (m, n) and indices ``y`` (m,) (the VJP of ``log p`` with the cotangent
    ``e_y``; multiply by ``c_y``).  Off the diagonal ``-g_y(z_k) / g(z_y)``, on it
    the sum of those terms with the opposite sign (module doc).  With ``log`` False
    ``v[r, k] = d p_{y_r} / d z_{r, k}``: ``-g_y(z_k)`` itself (no ``g(z_y)``).

    >>> import numpy as np
    >>> from numeric.families import get_family
    >>> z = np.linspace(-1.0, 1.0, 300)[None, :]
    >>> fam = get_family("normal")
    >>> (vl, ok1), (vp, ok2) = rows_onehot_log_vjp(z, [7], fam), rows_onehot_log_vjp(z, [7], fam, log=False)
    >>> lp, _ = rows_log_probs(z, fam)
    >>> bool(ok1[0] and ok2[0]), bool(np.allclose(vp, vl * np.exp(lp[0, 7]), rtol=1e-13, atol=0))
    (True, True)
    """
    return _rows(z, fam, _onehot_group, np.asarray(y), log, takes=_vjp_takes(fam, z.shape[1]), wide=True)


_MEDIAN_SORT = 4096     # a row's candidates for the weighted median are sorted below this many
# radix levels of the weighted median: the order-preserving integer key of a float64
# (:func:`_fkey`) is read 12 bits (sign and exponent) then 13 bits at a time
_RADIX = ((52, 12), (39, 13), (26, 13), (13, 13), (0, 13))
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)


def _fkey(x):
    """int64 keys ordered as the float64 values ``x`` (IEEE bits, the 63 low bits of the
    negatives flipped; -0.0 sorts just below +0.0): ``x < y`` implies ``key(x) < key(y)``
    and equal keys are equal values."""
    b = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    return b ^ ((b >> 63) & _LOW63)


def _weighted_median(get, m, n):
    """Per row, a ``pw``-weighted median of ``gg`` over rows of ``n`` entries given by
    column chunks, ``get(cols) -> (gg, pw)`` (m, chunk) (entries with ``pw = 0`` are
    ignored; rows without weight give 0): the first value, in ascending order, where
    the running weight reaches half the row's.

    Rows of at most ``_MEDIAN_SORT`` entries are sorted (all rows together).  Longer
    rows are narrowed by a radix select on the values' order-preserving integer keys
    (:func:`_fkey`): a weighted histogram of the next bits of the keys that share the
    bits chosen so far locates the bin holding the median (the keys are ordered like
    the values, so each bin is a run of values), until at most ``_MEDIAN_SORT`` are
    left in every row (their candidates then sorted) or all 64 bits are fixed (one
    value left).  Exact whatever the spread of the values (``c / p`` of the log VJP
    spans ~1e10 around a bulk of order 1): at most five passes."""
    chunks = _chunks(n)
    rows = np.arange(m)
    if n <= _MEDIAN_SORT:
        # short rows: every row sorted at once (one argsort of the block, no levels);
        # the entry picked is the same -- the first in ascending order of gg where the
        # running weight reaches half the row's -- with the weights summed in sorted order
        gg, pw = get(slice(0, n))
        live = pw > 0
        key = np.where(live, gg, np.inf)          # entries without weight sort last
        o = np.argsort(key, axis=1)
        cs = np.cumsum(np.take_along_axis(np.where(live, pw, 0.0), o, axis=1), axis=1)
        i = np.argmax(cs >= (0.5 * cs[:, -1])[:, None], axis=1)
        out = np.take_along_axis(key, o[rows, i][:, None], axis=1)[:, 0]
        return np.where(live.any(axis=1), out, 0.0)
    out = np.zeros(m)
    prefix = np.zeros(m, dtype=np.int64)          # the key's bits above the current level
    below = np.zeros(m)                           # weight of the entries below the prefix's run
    half = None
    todo = np.ones(m, dtype=bool)
    level = 0

    def candidates(gg, pw, lv):
        """Keys of the live entries and which share the prefix of levels < lv."""
        key = _fkey(gg)
        cand = pw > 0
        if lv:
            cand &= (key >> _RADIX[lv - 1][0]) == prefix[:, None]
        return key, cand

    for level, (sh, bits) in enumerate(_RADIX):
        nb = 1 << bits
        hist = np.zeros(m * nb)
        cnt = np.zeros(m * nb)
        for c in chunks:
            gg, pw = get(c)
            key, cand = candidates(gg, pw, level)
            cand &= todo[:, None]
            if level == 0:
                b = (key >> sh) + (1 << (bits - 1))           # sign and exponent: 0 .. 4095
            else:
                b = (key >> sh) & (nb - 1)
            b = (b + (rows * nb)[:, None])[cand]
            hist += np.bincount(b, weights=pw[cand], minlength=m * nb)
            cnt += np.bincount(b, minlength=m * nb)
        cw = np.cumsum(hist.reshape(m, nb), axis=1)
        if half is None:
            half = 0.5 * cw[:, -1]
            todo &= cw[:, -1] > 0                    # rows without weight give 0
        i = np.minimum(np.argmax(cw >= (half - below)[:, None], axis=1), nb - 1)
        below = np.where(todo, below + np.where(i > 0, cw[rows, np.maximum(i - 1, 0)], 0.0), below)
        if level == 0:
            pre = i.astype(np.int64) - (1 << (bits - 1))
        else:
            pre = (prefix << bits) | i.astype(np.int64)
        prefix = np.where(todo, pre, prefix)
        need = cnt.reshape(m, nb)[rows, i]
        if sh == 0:
            # every bit fixed: the key is the value
            k = prefix[todo]
            out[todo] = (k ^ ((k >> 63) & _LOW63)).view(np.float64)
            todo[:] = False
        if not (need[todo] > _MEDIAN_SORT).any():
            break
    sort = np.flatnonzero(todo)
    if sort.size:
        rr, vals, ws = [], [], []
        for c in chunks:
            gg, pw = get(c)
            _, cand = candidates(gg, pw, level + 1)
            r_, c_ = np.nonzero(cand[sort])
            rr.append(r_)
            vals.append(gg[sort][r_, c_])
            ws.append(pw[sort][r_, c_])
        rr, vals, ws = np.concatenate(rr), np.concatenate(vals), np.concatenate(ws)
        o = np.lexsort((vals, rr))
        rr, vals = rr[o], vals[o]
        cs = np.cumsum(ws[o])
        first = np.searchsorted(rr, np.arange(sort.size))
        base = np.where(first > 0, cs[np.maximum(first - 1, 0)], 0.0)
        # the first candidate of each row where the running weight reaches half
        hit = np.flatnonzero(cs - base[rr] >= (half - below)[sort][rr])
        pick = np.searchsorted(rr, np.arange(sort.size), side="right") - 1
        pick[rr[hit[::-1]]] = hit[::-1]
        out[sort] = vals[pick]
    return out


def _gamma_logs(zr, lo_i, getw, pl, gc, log, spec, wins, tight=None):
    """``(lgam, neg, labs, far)``: ``Gamma = sum_j (-1)^neg_j e^lmag_j h(x - z_j)`` on the
    columns ``a .. b - 1`` of each window ``(a, b, rows)`` of ``wins`` as its log modulus
    ``lgam`` and sign ``neg`` (rows, Gs) (``-inf`` elsewhere), ``getw(cols) -> (lmag,
    neg)`` by column chunks; ``labs`` the log of a lower bound of ``sum_j e^lmag_j h(x -
    z_j)``, the sum of the moduli of its terms (:func:`_gamma_window`); ``far`` (rows,
    Gs) the log of a bound on the terms beyond the Gamma tables' (``gc``) cut.

    Weights within ``e^_BAND`` of their row's band's largest are spread together,
    with their signs, scaled by it (numeric._fast's bands); bands add with their signs
    in log space (:func:`_signed_logadd`).  Each term is good to its tables' relative
    truncation, and the sum's rounding is a few ulps of ``sum_j |w_j| h_j`` (products
    of ``_MB`` rows: the sum over the bins is BLAS's, ``<= (R + 1) P`` terms).  A bin
    ``b`` of absolute weight ``W_b`` adds at most ``W_b h((k - b - 1/2) H)`` at column
    ``k`` beyond the cut (``h`` decreases there), so the far terms of column ``k`` are
    at most ``h((s_hi + 1/2) H) sum_{b <= k - s_hi - 1} W_b``."""
    m, n = zr.shape
    P, R1 = pl.P, gc.R + 1
    chunks = _chunks(n)
    top = np.full(m, -np.inf)
    low = np.full(m, np.inf)
    for c in chunks:
        lm, _ = getw(c)
        fin = np.isfinite(lm)
        top = np.maximum(top, np.where(fin, lm, -np.inf).max(axis=1))
        low = np.minimum(low, np.where(fin, lm, np.inf).min(axis=1))
    live = np.isfinite(top)
    nb = int(np.floor((top[live] - low[live]) / _BAND).max()) + 1 if live.any() else 0
    lgam = np.full((m, pl.Gs), -np.inf)
    labs = np.full((m, pl.Gs), -np.inf)
    neg = np.zeros((m, pl.Gs), dtype=bool)
    lW = np.full((m, P), -np.inf)
    bands = []
    for bnd in range(nb):
        sc = np.full(m, -np.inf)
        for c in chunks:
            lm, _ = getw(c)
            with np.errstate(invalid="ignore"):
                inb = np.floor((top[:, None] - lm) / _BAND) == bnd
            sc = np.maximum(sc, np.where(inb, lm, -np.inf).max(axis=1))
        if not np.isfinite(sc).any():
            continue
        sc[~np.isfinite(sc)] = 0.0
        Mw = np.zeros((R1, m * P))
        Wabs = np.zeros(m * P)
        for c in chunks:
            lm, ng = getw(c)
            with np.errstate(invalid="ignore"):
                inb = np.floor((top[:, None] - lm) / _BAND) == bnd
            gb, u = _split(zr[:, c], lo_i, spec, P)
            w = np.where(inb, np.exp(np.where(inb, lm - sc[:, None], 0.0)), 0.0).ravel()
            Wabs += np.bincount(gb, weights=w, minlength=m * P)
            np.negative(w, out=w, where=ng.ravel())
            Mw[0] += np.bincount(gb, weights=w, minlength=m * P)
            for r in range(1, R1):
                w *= u
                Mw[r] += np.bincount(gb, weights=w, minlength=m * P)
        A = np.ascontiguousarray(Mw.reshape(R1, m, P).transpose(1, 2, 0)).reshape(m, P * R1)   # (row, (b, r))
        del Mw
        Wabs = Wabs.reshape(m, P)
        bands.append((A, sc))
        # the scale Gamma_lb on the columns of wins (a product of the bins' weights alone)
        Glb = np.zeros((m, pl.Gs))
        for a, b, sel in wins:
            s0 = pl.kL + a
            Slb = _gamma_window(pl, gc, log, s0, P, b - a)
            Ws = Wabs[sel]
            for c0, c1, j0 in _cut_blocks(s0, gc.s_hi, P, b - a):
                if j0 < P:
                    Glb[sel, a + c0:a + c1] = _matmul_rows(Ws[:, j0:], Slb[j0:, c0:c1], np.empty((sel.size, c1 - c0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            # (the first band: logaddexp(-inf, y) = y, so its logs as they stand)
            lg, lw = np.log(Glb), np.log(Wabs)
            lg += sc[:, None]
            lw += sc[:, None]
            labs = np.logaddexp(labs, lg) if bands[:-1] else lg
            lW = np.logaddexp(lW, lw) if bands[:-1] else lw
    # Gamma itself on the columns of the T2 windows (tight(labs): those where some node's
    # integrand can matter), band by band, on absolute column blocks of _TRI columns
    # (:func:`_gamma_blocks`): each block's product over the bin blocks that reach it,
    # for the rows whose window meets it (the same product whatever the row's window and
    # batch mates: its bits depend on the row alone)
    wins_t = wins if tight is None else tight(labs)
    T = _TRI
    NJ, NC = -(-P // T), -(-pl.Gs // T)
    ra = np.full(m, pl.Gs, dtype=np.int64)
    rb = np.zeros(m, dtype=np.int64)
    for a, b, sel in wins_t:
        ra[sel], rb[sel] = a, b
    # bin j reaches column c when kL + c - j <= s_hi: from bin block J0(C) on
    J0 = [max(0, (pl.kL + T * C - gc.s_hi) // T) for C in range(NC)]
    need = [(C, np.flatnonzero((ra < T * C + T) & (rb > T * C))) for C in range(NC) if J0[C] < NJ]
    need = [(C, r_) for C, r_ in need if r_.size]
    if need:
        D, e_top = _gamma_blocks(pl, gc, log, need[0][0] - (NJ - 1), max(C - J0[C] for C, _ in need))
    for ib, (A, sc) in enumerate(bands):
        if NJ * T > P:
            A = np.concatenate([A, np.zeros((m, (NJ * T - P) * R1))], axis=1)
        Gam = np.zeros((m, pl.Gs))
        for C, rr in need:
            c0, c1 = T * C, min(pl.Gs, T * C + T)
            B = D[e_top - C + J0[C]:e_top - C + NJ].reshape(-1, T)[:, :c1 - c0]
            Gam[rr, c0:c1] = _matmul_rows(A, B, np.empty((rr.size, c1 - c0)), rows=rr, a0=J0[C] * T * R1)
        with np.errstate(divide="ignore", invalid="ignore"):
            lg = np.log(np.abs(Gam))
            lg += sc[:, None]
            if ib:
                lgam, neg = _signed_logadd(lgam, neg, lg, Gam < 0)
            else:
                # (_signed_logadd with -inf: the finite logs as they stand, -inf elsewhere)
                lgam, neg = np.where(np.isfinite(lg), lg, -np.inf), Gam < 0
    cumW = np.logaddexp.accumulate(lW, axis=1)
    ib = pl.kL + np.arange(pl.Gs) - gc.s_hi - 1            # last far bin of each column
    with np.errstate(divide="ignore"):
        log_hc = float(pl.loghazard(np.array([(gc.s_hi + 0.5) * spec.H]))[0])
    far = np.where(ib >= 0, cumW[:, np.clip(ib, 0, P - 1)] + log_hc, -np.inf)
    return lgam, neg, labs, far, wins_t


def _t2_windows(pl, LF, labs, wins):
    """The columns of each row's T2 integrands that can matter: ``(a, b, rows)`` within
    the windows ``wins`` (where ``labs = log Gamma_lb`` is known, and ``LF = log F`` at
    their coarse columns: every ``_COARSE``-th from the window's start and its last),
    rounded outwards to multiples of ``_WQ``.

    The scale integrand of node ``i``, ``h((k - l_i) H) F_k Gamma_lb(k)``, is bounded on a
    cell ``k0 <= k <= k1`` of coarse columns by ``h((k0 - l_i) H) F_k1 Gamma_lb(k0)``: ``h``
    decreases (normal, logistic), ``F`` increases, and ``Gamma_lb = sum_b W_b h((k - b +
    1/2) H)`` (``W_b >= 0``, zero beyond the tables' cut) does not increase.  A cell
    where this bound is below every node's largest sampled value minus ``_TAIL`` holds
    only terms below ``e^-45`` of the node's peak (to the rounding of ``log F``, ~1e-13
    against the margin 45): cells left of the first live one and right of the last are
    dropped, keeping one dead cell on each side so the rule's decay checks see the ends.
    The signed terms there are at most ``C`` times the scale's, ``|Gamma| <= C Gamma_lb``
    plus the far terms (``C = max h(t - H) / h(t)`` over the tables' offsets: normal
    ``e^(37 H)`` ~ 10, logistic ``e^H``; the far terms are checked by :func:`_far_ok` on
    the full windows), so the dropped part of ``T2`` and of its scale ``A`` is below
    ``(C + 1) G e^-45 A < 1e-15 A`` (``G <= 1400`` columns), inside the ``2e-11 A`` of the
    bound.  Each row's window depends on that row only."""
    out_a, out_b, rows_all = [], [], []
    for a2, b2, sel in wins:
        kc = np.r_[np.arange(a2, b2 - 1, _COARSE), b2 - 1]
        LH = pl.LH[None, :, kc]
        with np.errstate(invalid="ignore"):
            lf = LF[sel][:, kc]
            lb = labs[sel][:, kc]
            V = LH + (lf + lb)[:, None, :]
            pk = V.max(axis=-1, keepdims=True)                   # (rows, K, 1): lower bounds of the peaks
            U = LH[:, :, :-1] + (lf[:, 1:] + lb[:, :-1])[:, None, :]
            live = (U >= pk - _TAIL).any(axis=1)                # (rows, cells)
        anyl = live.any(axis=1)
        first = np.argmax(live, axis=1)
        last = live.shape[1] - 1 - np.argmax(live[:, ::-1], axis=1)
        a = kc[np.maximum(first - 1, 0)] // _WQ * _WQ
        b = np.minimum(b2, -(-(kc[np.minimum(last + 2, kc.size - 1)] + 1) // _WQ) * _WQ)
        a = np.where(anyl, np.maximum(a, a2), a2)
        b = np.where(anyl & (b > a), b, b2)
        out_a.append(a)
        out_b.append(b)
        rows_all.append(sel)
    if not rows_all:
        return []
    rows_all = np.concatenate(rows_all)
    a, b = np.concatenate(out_a), np.concatenate(out_b)
    return [(aa, bb, rows_all[s_]) for aa, bb, s_ in _subgroups(a, b)]


def _far_ok(Lfar, logT, pl, H, a, b):
    """Per row, whether the terms beyond the Gamma tables' cut are negligible at
    every node: their trapezoid sum ``H sum_k h(x_k - m) F_k far_k`` over the
    columns ``a .. b - 1`` (``Lfar = log (F far)`` there) is at most ``(b - a) H``
    times its largest term, required below ``_FAR_EPS`` of the node's integral
    ``e^logT``."""
    m, Gs = Lfar.shape
    ok = np.ones(m, dtype=bool)
    rows = np.flatnonzero(np.isfinite(Lfar).any(axis=1))
    blk = max(1, _ELEMS // (pl.K * Gs))
    lim = math.log(_FAR_EPS) - math.log(Gs * H)
    for r0 in range(0, rows.size, blk):
        rr = rows[r0:r0 + blk]
        mx = (pl.LH[None, :, a:b] + Lfar[rr, None, :]).max(axis=-1)
        with np.errstate(invalid="ignore"):
            ok[rr] = (mx <= logT[rr] + lim).all(axis=1)
    return ok


def _far_ok_coarse(lfc, farc, kc, logT, pl, H, a, b):
    """:func:`_far_ok` from ``log F`` and the far bound at the coarse columns ``kc`` alone
    (``lfc``, ``farc``; ``kc[0] = a``, ``kc[-1] = b - 1``): on a cell ``kc_q <= k <=
    kc_(q+1)`` the log term ``log h((k - l_i) H) + log F_k + far_k`` is at most
    ``log h((kc_q - l_i) H) + log F(kc_(q+1)) + far(kc_(q+1))`` (``h`` decreases, ``F``
    and the far bound, a running sum, increase), so rows whose bound passes pass the
    exact check; ``None`` for the others (rows, bool), which need it."""
    m = lfc.shape[0]
    ok = np.ones(m, dtype=bool)
    lim = math.log(_FAR_EPS) - math.log((b - a) * H)
    right = lfc[:, 1:] + farc[:, 1:]
    rows = np.flatnonzero(np.isfinite(right).any(axis=1))
    if not rows.size:
        return ok
    LH = pl.LH[:, kc[:-1]]
    blk = max(1, _ELEMS // (pl.K * kc.size))
    for r0 in range(0, rows.size, blk):
        rr = rows[r0:r0 + blk]
        mx = (LH[None, :, :] + right[rr, None, :]).max(axis=-1)
        with np.errstate(invalid="ignore"):
            ok[rr] = (mx <= logT[rr] + lim).all(axis=1)
    return ok


def _merge_left(wins):
    """``(b, rows)`` per distinct right end ``b`` of the windows ``(a, b, rows)``."""
    ends = {}
    for _, b, sel in wins:
        ends.setdefault(b, []).append(sel)
    return [(b, np.concatenate(sels)) for b, sels in ends.items()]


def _dense_group(pl, rows, zr, lo_i, fam, G, log):
    spec = pl.spec
    H = spec.H
    m, n = zr.shape
    g = G if rows.size == G.shape[0] else G[rows]      # (all rows: _rows passes them in order)
    chunks = _chunks(n)
    M = _moments(zr, lo_i, spec, pl.P)
    logg = np.empty((m, pl.K))
    good = np.zeros(m, dtype=bool)
    # the integration windows of h F (every node's integrand above its peak minus _TAIL)
    a_h, b_h, jm = _windows(pl, M, peaks=True)
    wins = list(_subgroups(a_h, b_h))
    # the T2 integrands h F Gamma on the windows of h F widened to the left, for log p
    # to the end of the grid: its weights 1/p_j of low entries move the mass towards
    # the low scores, where F is small; the decay at the window ends is checked.  log F
    # is formed on these columns only, and log g from it as for log p (_node_products)
    wins2 = ([(0, b, sel) for b, sel in _merge_left(wins)] if log
             else [(max(0, a - _T2_LEFT), b, sel) for a, b, sel in wins])
    LF = np.empty((m, pl.Gs))
    # log p: on the widened windows (to the grid's start) log F at the coarse columns only
    # (the T2 windows and the far-term bound read no more), in full on the h F windows and,
    # once the T2 windows are known, on their columns left of those; p (64 columns more
    # than the h F windows): in full on the widened windows
    for a, b, sel in (wins if log else wins2):
        LF[sel, a:b] = _log_F(M[:, sel], pl, n, a, b)
    for a, b, sel in wins:
        logg[sel], good[sel] = _node_products(LF[sel, a:b], pl, H, a, b, jm[sel])
    LFc = np.empty((m, pl.Gs)) if log else LF
    coarse = []
    for a, b, sel in (wins2 if log else ()):
        kc = np.r_[np.arange(a, b - 1, _COARSE), b - 1]
        LFc[sel[:, None], kc] = lfc = _log_F_at(M[:, sel], pl, n, a, b, kc)
        coarse.append((a, b, sel, kc, lfc))
    tab, ok = _tables(logg, pl, spec)
    good &= ok
    # log p and its slope (log g)' at the scores, chunk by chunk
    lp = np.empty((m, n))
    rS = np.empty((m, n))
    for c in chunks:
        pts = _points(zr[:, c], lo_i, pl, spec)
        lp[:, c], rS[:, c] = _horner(tab, pts, pl, spec, deriv=True)
        good &= pts[2]
    mx = lp.max(axis=1)
    tot = np.zeros(m)
    for c in chunks:
        tot += exp_terms(lp[:, c] - mx[:, None]).sum(axis=1)
    lp -= (mx + np.log(tot))[:, None]
    np.minimum(lp, 0.0, out=lp)
    # the shift s (J^T 1 = 0): a p-weighted median of g (of c / p for log p) over the
    # entries with p >= 1e-9 max p, as in numeric._fast._row_vjp
    lcut = (lp.max(axis=1) + math.log(1e-9))[:, None]

    def median_terms(c):
        lpc = lp[:, c]
        big = lpc >= lcut
        p = np.exp(lpc)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            gg = np.where(big, g[:, c] / p if log else g[:, c], 0.0)
        return gg, np.where(big, p, 0.0)

    shift = _weighted_median(median_terms, m, n)
    shift[~np.isfinite(shift)] = 0.0

    def centred(c):
        """``v = g - s`` (``c - s p`` for log p) on the columns ``c``, and ``p`` there."""
        p = np.exp(lp[:, c])
        return (g[:, c] - shift[:, None] * p if log else g[:, c] - shift[:, None]), p

    def weights(c):
        v, _ = centred(c)
        with np.errstate(divide="ignore"):
            lm = np.log(np.abs(v))
        if log:
            lm -= lp[:, c]
        return lm, v < 0

    if len(chunks) == 1:
        # one chunk: the weights once (Gamma's band passes read them several times)
        w1 = weights(chunks[0])

        def weights(c):
            return w1

    # Gamma with its signs: T2 = int h F Gamma is integrated as the ratio of its rule to
    # that of the scale A = int h F Gamma_lb (Gamma_lb: a lower bound of Gamma's sum of
    # |terms|, a positive sum of shifted h, so log A interpolates like log g), the
    # ratio a smooth function of the node (the mean of Gamma / Gamma_lb under the
    # weights h(x_k - m) F_k Gamma_lb(x_k)); the rule's checks are those of h F Gamma_lb,
    # and its halved rule is held to the tolerance against A
    lgam, neg, labs, far, wins_t = _gamma_logs(zr, lo_i, weights, pl, _gamma_cache(fam, log=log), log, spec, wins2,
                                               tight=lambda labs: _t2_windows(pl, LFc, labs, wins2))
    has = np.isfinite(labs).any(axis=1) & good
    # (every T2 window lies within its row's widened window, so ends at or before b_h)
    a_t = np.empty(m, dtype=np.int64)
    for a, b, sel in wins_t:
        a_t[sel] = a
    ext = (a_t < a_h) & log
    for a, b, sel in _subgroups(np.where(ext, a_t, 0), np.where(ext, a_h, 0)):
        if a < b:
            LF[sel, a:b] = _log_F(M[:, sel], pl, n, a, b)
    logA = np.zeros((m, pl.K))
    ratio = np.zeros((m, pl.K))
    okT = np.ones(m, dtype=bool)
    for a, b, sel in wins_t:
        sel = sel[has[sel]]
        if not sel.size:
            continue
        la = labs[sel, a:b]
        with np.errstate(invalid="ignore", over="ignore"):
            rho = np.where(np.isfinite(la), np.exp(lgam[sel, a:b] - la), 0.0)
        np.negative(rho, out=rho, where=neg[sel, a:b])
        logA[sel], ratio[sel], okT[sel] = _node_integrals(LF[sel, a:b] + la, pl, H, a, b, concave=False, sgn=rho)
    # the far terms (beyond the Gamma tables' cut) on the full windows
    for a, b, sel in (() if log else wins2):
        sel = sel[has[sel]]
        if sel.size:
            okT[sel] &= _far_ok(LF[sel, a:b] + far[sel, a:b], logA[sel], pl, H, a, b)
    for a, b, sel, kc, lfc in coarse:
        live = has[sel]
        sel, lfc = sel[live], lfc[live]
        if not sel.size:
            continue
        okc = _far_ok_coarse(lfc, far[sel][:, kc], kc, logA[sel], pl, H, a, b)
        rest = sel[~okc]
        if rest.size:
            # the bound did not settle these rows: the exact check on log F in full
            okc[~okc] = _far_ok(_log_F(M[:, rest], pl, n, a, b) + far[rest, a:b], logA[rest], pl, H, a, b)
        okT[sel] &= okc
    # log A and the ratio interpolated like log g; decline unless the estimated error
    # of each is below 1e-11 (absolute: the relative error of A, and of T2 against A),
    # so T2 is within 2e-11 of A <= int h F sum_j |g'_j| h_j = T2_+ + T2_- (the terms
    # of each sign apart: numeric._fast._row_vjp's bound)
    tabA, okA = _tables(logA, pl, spec, abs_tol=1e-11)
    tabR, okR = _tables(ratio, pl, spec, abs_tol=1e-11)
    good &= okT & ((okA & okR) | ~has)
    # (J^T g)_k = v_k T1_k - T2(z_k), T1_k = p_k rho_S(z_k) (v_k rho_S for log p)
    out = rS
    for c in chunks:
        v, p = centred(c)
        o = out[:, c]
        o *= v
        if not log:
            o *= p
        if has.any():
            pts = _points(zr[:, c], lo_i, pl, spec)
            with np.errstate(over="ignore", invalid="ignore"):
                T = np.exp(_horner(tabA, pts, pl, spec))
            T *= _horner(tabR, pts, pl, spec)
            T[~has] = 0.0
            o -= T
        good &= np.isfinite(o).all(axis=1)
    return out, good


def rows_dense_vjp(z, g, fam, log=False, n_max=_N_MAX_DENSE):
    """``(v, ok)``: the VJP of ``p`` (``log=False``) or ``log p`` (``log=True``) for
    standardized finite rows ``z`` (m, n) and finite cotangents ``g`` (m, n), all rows
    of a bin count together on the grid of :func:`rows_log_probs`.

    ``(J^T g)_k = g'_k T1_k - T2_k`` with ``g' = g - s`` (``J^T 1 = 0``; for ``log p``
    ``g = c / p``, so ``g' p = c - s p``), ``T1_k = int h_k F S = p_k (log g)'(z_k)``
    (``S = (log F)'``, by parts; the derivative of the interpolant of ``log g``,
    from the same Horner pass) and ``T2_k = int h_k F Gamma``, ``Gamma = sum_j g'_j
    h_j`` spread once with its signs (weights ``log|g'_j|`` in log space) and
    integrated at the nodes as the ratio of its rule to that of a positive scale
    ``A = int h F Gamma_lb`` (module doc), with the checks of the module doc on the
    scale and the halved rule of the signed integrand held to ``1e-8 A``; ``log A``
    and the ratio are interpolated at the scores (each to ``1e-11``).
    Rows are declined (``ok`` False, NaN) when a check fails, when the terms of
    ``Gamma`` beyond its tables' cut are not negligible at every node
    (:func:`_far_ok`), when ``log A`` or the ratio is not resolved by its
    interpolant, or when a term overflows; the caller sends them to the per-row
    engine (numeric._fast.fast_probs_vjp), which sums far terms exactly.  The shift
    ``s`` is a ``p``-weighted median of ``g``; each entry is then accurate to
    ~1e-13 of ``|g'_k| T1_k`` plus ``2e-11 A(z_k) <= 2e-11 (T2_+(z_k) + T2_-(z_k))``
    (``T2_+-`` the integrals of the terms of each sign), the per-row engine's bound.
    Rows longer than ``n_max`` (at most ``_N_MAX``; default ``_N_MAX_DENSE``, where
    the per-row engine becomes the faster one) are declined, except those beyond
    ``_N_LONG`` (up to ``RowsSpec.n_max_vjp``).  A row's result depends on that row only.

    >>> import numpy as np
    >>> from numeric.families import get_family
    >>> v, ok = rows_dense_vjp(np.zeros((1, 300)), np.ones((1, 300)), get_family("normal"))
    >>> bool(ok[0]), bool(np.abs(v).max() < 1e-15)
    (True, True)
    """
    rs = fam.fast.rows
    return _rows(z, fam, _dense_group, fam, np.asarray(g, dtype=np.float64), log,
                 takes=rs.dense and _vjp_takes(fam, z.shape[1], min(n_max, _N_MAX)),
                 p_lim=_dense_p_lim(fam, log))


def rows_dense_worth(m, n):
    """Whether ``m`` rows of ``n`` scores with dense cotangents go to
    :func:`rows_dense_vjp` first (else straight to the per-row engine): its fixed costs
    per bin count (plan windows, node tables, Gamma's band passes) outweigh the per-row
    engine's on fewer than ``_DENSE_MIN_ROWS`` rows (n = 300 .. 8000, normal and
    logistic, s = 1 .. 5: one row 1.1-2.7 times slower, four rows about even).  Rows
    longer than ``_N_LONG`` stay here (the per-row engine's memory there: see
    ``_N_LONG``)."""
    return m >= _DENSE_MIN_ROWS or n > _N_LONG


def _dense_p_lim(fam, log):
    """Widest rows (bins) of the dense VJP of ``p`` or (``log``) ``log p``: ``_P_VJP_WIDE``
    times RowsSpec.p_max.  Gamma's spreading matrix is held as column blocks
    (:func:`_gamma_blocks`: ~14 MB for the normal's log p VJP, 17 orders), the log F
    strip of that width as for log p (:func:`_window_spread`, within p_wide)."""
    return _P_VJP_WIDE * fam.fast.rows.p_max
