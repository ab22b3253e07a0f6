"""Laplace and exponential noise: all n log-probabilities (and VJPs) in O(n) work.

(Uniform noise, also served here, is handed to :mod:`numeric._uniform`: exact
Gauss rules on the piecewise-polynomial max-CDF.)

Both families share one structure.  Write ``w(x) = beta e^(mu - x)`` for a score
``mu`` below ``x`` (``beta = 1/2`` laplace, ``1`` exponential); then

    Phi(x - mu) = 1 - w,        h(x - mu) = phi / Phi = w / (1 - w)        (*)

(laplace on ``x > mu``, exponential on its whole support).  Pick a cut ``x_s``
and integrate in ``u = e^-(x - x_s)`` in (0, 1], so ``w = c u`` with
``c = beta e^(mu - x_s)`` and ``dx = du / u``:

    p_i = int_0^1 h_i(u) G(u) du / u,        G(u) = F(x_s - log u) = prod_j Phi_j.

*Far* scores (``c_j <= 1/2``, so ``c_j u <= 1/2``) enter only through power
series that converge like ``2^-r``:

    log G = sum_near log Phi_j - sum_{r>=1} u^r P_r / r,     P_r = sum_far c_j^r,
    p_i   = c_i sum_{r>=1} c_i^(r-1) J_(r-1),                 J_m = int_0^1 u^m G du,

so the whole row needs ``O(n)`` work plus a few hundred quadrature nodes; a
far score needs ``R = ceil(57 / log2(1/c))`` terms (``c^R <= 2^-57``: the
dropped tail of either series is below ``2^-56`` of its first term), so
scores far below the cut cost one term; the series of ``p_i`` stops earlier where
the moments allow (``c^R J_R <= 2^-57 J_0``, :func:`_series_terms`); small blocks
with many terms sum it in closed form at each node instead, ``c_i sum_nodes w G / (1 - c_i u)``
(:meth:`_Eval.far_direct`).  *Near* scores (few, see below) are
summed directly at the nodes with the exact ``log Phi``, ``log h``.

Cut and neglected mass (``L = 40``, proofs in :func:`_cut`):

* exponential, ``A = sum_j e^(mu_j - top) >= 2^k L'`` (largest such
  ``1 <= k <= 40``): ``x_s = top + k log 2``, every score is far; else
  ``x_s = top`` (``F = 0`` below) and near scores are ``c > 1/2`` (fewer
  than ``4 L'`` since ``A < 2 L'``); ``L' = L + log n + 7``.
* laplace: ``x_s`` is the largest point where the bound
  ``F(x) <= prod_{mu_j > x} e^(x - mu_j) / 2`` puts ``e^-x F`` below
  ``e^-L`` of its integral for every ``x < x_s`` (at most
  ``(L + 0.6 + log n) / log 2`` scores lie above it: those are near);
  ``L' = L + log n + (top - x_s) + 3``.  A cut more than 600 below the top
  (kinks at ``u < e^-600``) is declined.  Rows with ``sum_j e^(mu_j - top) / 2
  >= 2^k L'`` whose deepest score is not too deep (:func:`_cut`) take the
  exponential's cut above the top instead (every score far, ``c <= 2^-(k+1)``).
* ``[u_max, 1]`` with ``log G <= -L'`` is dropped; ``G`` is decreasing in ``u``.
* Also near: scores with ``1/64 < c <= 1/2`` when a row has at most 64 of
  them, and every score of rows with ``n <= 128`` (laplace: 64).

Every neglected piece is below ``10 e^-L`` (~4e-17) of each ``p_i``.  The
nodes are Gauss-Legendre panels split at the near kinks (laplace:
``c_j u = 1/2``) and bisected until ``log G`` drops by at most 12 across a panel
(Gauss-Legendre error for ``e^(6 s)`` on [-1, 1] with 16 points: ~1e-20
relative); exponential leaves its 15 largest near factors, polynomials of
degree <= 15 in ``u`` that vanish at ``u = 1`` for tied tops, out of that
test.  16 points in ``u`` on ``[0, u_1]`` (``u_1`` the first kink) and on
every exponential panel; laplace panels above ``u_1`` are Gauss rules in
``t = log u`` (14 points, or 8, 10, 12 on narrow panels with small drops), sized by
the singularities of the integrands in ``t`` (:meth:`_Row.nodes`).
Relative error of ``p``: a few ulps; the row is renormalised by
``logsumexp(log p)``, and a row whose sum is off by more than 1e-11 is
declined (``ok`` False) so the caller falls back.

VJP: ``(J^T g)_k = int h_k F (g_k S - Gamma) dx`` with ``S = sum_j h_j``,
``Gamma = sum_j g_j h_j``; the far parts of ``S``, ``Gamma`` are the series
``sum_r u^r P_r`` and ``sum_r u^r Q_r`` (``Q_r = sum_far g_j c_j^r``), and a far
``k`` gets ``c_k sum_r c_k^(r-1) (g_k JS_(r-1) - JGamma_(r-1))``.  The
cotangent is first shifted by the most probable entry's (``J^T 1 = 0``).
Every sum is formed in an order fixed by the row alone, so a row's bits do
not depend on its batch mates.

>>> import numpy as np
>>> from numeric.families import get_family
>>> lp, ok = log_probs_rows(np.array([[0.0, 0.0, 0.0]]), get_family("laplace"))
>>> np.round(np.exp(lp), 15).tolist(), ok.tolist()
([[0.333333333333333, 0.333333333333333, 0.333333333333333]], [True])
"""

from __future__ import annotations

import math

import numpy as np

from . import _uniform
from ._exp import exp_terms

__all__ = ["log_probs_rows", "probs_vjp_rows"]

_LOG2 = math.log(2.0)
_L = 40.0            # neglected mass: below ~10 e^-L (4e-17) of every p_i
_DROP = 12.0         # max drop of log G across one Gauss panel
_NT = 15             # exponential: largest near factors left out of the drop test
_SPLIT_ROUNDS = 80
_SUM_TOL = 1e-11
_MAX_DEPTH = 600.0
_BLOCK = 128
_TABLE = 1 << 16         # tables of powers up to this many entries replace loops
_NODE_TABLE = 1 << 17    # ... over the Gauss nodes (fewer entries per term: larger tables pay)
_LOG_MID = -6.0 * _LOG2   # c > 1/64 ...
_NEAR_MAX = 64            # ... is near when a row has at most this many such scores
_NEAR_ALL = 128           # rows this short: every score near (laplace: each near
_NEAR_ALL_LAPLACE = 64    # score adds a kink and its panel, so a lower bound there;
                          # the near-all rows take _NearLaplace, whose cost grows
                          # like n^2 nodes x scores: beyond 64 the log-space panels
                          # with far series are cheaper on batches)
_EXACT_N = 128            # exponential rows this short: one exact Gauss rule (_ExactExp)
_DIRECT = 1 << 16         # far slots x nodes per block up to this, and up to _DIRECT_PER_TERM per
_DIRECT_PER_TERM = 1000   # series term: the far series in closed form (_Eval.far_direct)
_CHUNK = 64               # rows per block of the panel engine (sorted by width first)
_LINEAR_SPREAD = 500.0    # laplace rows of <= _NEAR_ALL_LAPLACE scores: linear arithmetic (_NearLaplace)
_GX, _GW = np.polynomial.legendre.leggauss(16)
_GX = 0.5 * (_GX + 1.0)          # nodes and weights on [0, 1]
_GW = 0.5 * _GW
# Gauss rules on 16 places (unused places: node 1/2, weight 0): index 0 the
# 16-point rule (panels in u), 1..4 the rules of the panels in t = log u (_Row.nodes)
_NPTS = (16, 8, 10, 12, 14)


def _padded_rule(k):
    x, w = np.polynomial.legendre.leggauss(k)
    return (np.concatenate([0.5 * (x + 1.0), np.full(16 - k, 0.5)]),
            np.concatenate([0.5 * w, np.zeros(16 - k)]))


_RULES_X = np.array([_padded_rule(k)[0] for k in _NPTS])
_RULES_W = np.array([_padded_rule(k)[1] for k in _NPTS])
_RULE_USED = np.arange(16) < np.array(_NPTS)[:, None]     # (rule, place): a node of the rule
_T_MAX = 3.0              # laplace panels in t = log u (_Row.nodes): width <= 3 (and 2 d) ...
_RATIO8 = math.sqrt(2.0)  # ... and b / a <= 2^(1/2) (W <= log(2) / 2 <= d / 2) with 8 / 10 points ...
_DROP8 = 3.0              # ... where log G falls by at most 3 / _DROP10 = 5,
_DROP10 = 5.0
_RATIO12 = 2.0            # b / a <= 2 (W <= log 2 <= d) with 12 points where it falls by <= _DROP12
_DROP12 = 8.0


def _terms(logc):
    """Series terms per far score: the least ``R`` with ``c^R <= 2^-57``, i.e.
    ``ceil(57 / log2(1/c))`` (``c <= 1/2``; 0 for ``c = 0``; near scores, whose
    ``c`` may exceed 1/2, get values that the caller discards)."""
    r = np.maximum(-logc, _LOG2)
    np.divide(57.0 * _LOG2, r, out=r)
    return np.ceil(r, out=r).astype(np.int8)


def _cut(y, laplace):
    """Cut ``x_s`` per row, ``log c`` of every score, the near mask and ``L'``.

    Laplace: for ``x < x_s`` the bound ``f(x) = e^-x F(x) <= exp(-x - sum_{R(x)}
    (mu_j - x + log 2))`` (``R(x)`` the scores above ``x``, at least two of
    them, so the bound grows at least like ``e^x``) integrates to at most
    ``e^-x_s`` times that bound at ``x_s``; ``int f >= e^-0.6 e^-top / n`` (the
    part ``x >= top + log n``, where ``F >= (1 - 1/(2n))^n``).  So the mass
    below ``x_s`` is under ``e^-L`` of ``int f`` when
    ``(m-1) d + m log 2 - D_m >= L + 0.6 + log n`` with ``d = top - x_s``,
    ``m = |R|``, ``D_m`` the sum of the ``m`` top gaps; far ``i`` have
    ``e^(mu_i - x) / 2 <= h_i <= 2 e^(mu_i - x)`` there, and near ``i`` have
    ``p_i >= e^-0.6 e^(mu_i - top) / (2n)``, so each ``p_i`` loses at most
    ``4 e^-L`` relative.  The condition holds once ``m >= (L + 0.6 + log n) /
    log 2`` (``D_m <= m d``), so only that many top scores are sorted.

    Exponential: ``F = 0`` below ``top``; with ``A = sum e^(mu_j - top) >= 2^k L'``
    (``1 <= k <= 40``), ``log F(top + k log 2) <= -A / 2^k <= -L'`` and the cut
    ``x_s = top + k log 2`` loses at most ``8 k log 2 n e^-L'`` relative
    (``p_i >= a_i / (4 n)``; ``L' = L + log n + 7``).

    Laplace rows with a large ``A = sum_j e^(mu_j - top) / 2`` take the same cut
    above the top (``c_j = e^(mu_j - x_s) / 2 <= 2^-(k+1)``: every score far, no
    kink in range), when also the part below the top is negligible: there
    ``F(x) <= F(top) e^(x - top) <= e^(1/2 - A) e^(x - top)`` (the top's factor,
    and ``Phi(t) <= exp(-e^-t / 2)`` for the others), so it adds at most
    ``e^(1/2 - A)`` to any ``p_i >= e^-0.6 a_i / (2n)`` (``a_i = e^(mu_i - top)``)
    and to any ``K_ij = int h_i h_j F >= 0.9 a_i a_j / (16 A^2)`` (``x > top``,
    ``F >= e^(-2 A e^(top - x))``, ``A >= 2``); on ``[top, x_s]``
    ``h_i <= a_i e^(top - x)`` and ``F <= exp(-A e^(top - x)) <= e^-L'``.  Hence the
    conditions ``log a_min >= L + log(2n) + 1.1 - A`` and
    ``2 log a_min >= L + log(16 A^2) + 1/2 - A`` on the smallest ``a``: every ``p_i``
    and every VJP kernel entry loses below ``2 e^-L`` relative.
    """
    m, n = y.shape
    top = y.max(axis=1)
    lp_ = _L + math.log(n) + 7.0
    if not laplace:
        a = np.exp(y - top[:, None])
        # the highest cut x_s = top + k log 2 (k <= 40) with A / 2^k >= L': the
        # larger k, the smaller every c and the fewer series terms
        k = np.floor(np.log2(a.sum(axis=1) / lp_))
        trunc = k >= 1
        xs = top + np.where(trunc, np.minimum(k, 40.0), 0.0) * _LOG2
        logc = y - xs[:, None]
        near = (a > 0.5) & ~trunc[:, None]
        return xs, logc, near, np.full(m, lp_), trunc
    big = 0.5 * exp_terms(y - top[:, None]).sum(axis=1)
    lmin = y.min(axis=1) - top
    k = np.floor(np.log2(big / lp_))
    above = ((k >= 1) & (lmin >= _L + math.log(2.0 * n) + 1.1 - big)
             & (2.0 * lmin >= _L + np.log(16.0 * big * big) + 0.5 - big))
    if above.all():
        xs = top + np.minimum(k, 40.0) * _LOG2
        logc = y - xs[:, None]
        logc -= _LOG2
        return xs, logc, np.zeros((m, n), dtype=bool), np.full(m, lp_), np.ones(m, dtype=bool)
    xs, logc, near, lp, trunc = _cut_below(y, top)
    if above.any():
        xs = np.where(above, top + np.minimum(k, 40.0) * _LOG2, xs)
        logc[above] = y[above] - xs[above, None] - _LOG2
        near[above] = False
        lp = np.where(above, lp_, lp)
    return xs, logc, near, lp, trunc


def _cut_below(y, top):
    """The laplace cut below the top (:func:`_cut`)."""
    m, n = y.shape
    t = _L + 0.6 + math.log(n)
    kp = min(n, int(math.ceil(t / _LOG2)) + 2)
    part = y if kp == n else _top_k(y, kp)
    d = top[:, None] - np.sort(part, axis=1)[:, ::-1]          # ascending gaps, d[:, 0] = 0
    cnt = np.arange(1, kp + 1, dtype=np.float64)
    sol = (t - cnt * _LOG2 + np.cumsum(d, axis=1)) / (cnt - 1.0)
    nxt = np.concatenate([d[:, 1:], np.full((m, 1), np.inf if kp == n else -np.inf)], axis=1)
    valid = (sol <= nxt) & (cnt >= 2)
    k = np.argmax(valid, axis=1)
    ds = np.maximum(sol[np.arange(m), k], d[np.arange(m), k])
    xs = top - ds
    logc = np.subtract(y, xs[:, None])
    logc -= _LOG2
    near = y > xs[:, None]
    return xs, logc, near, _L + math.log(n) + ds + 3.0, np.ones(m, dtype=bool)


def _top_k(y, k):
    """The ``k`` largest entries of each row of ``y`` (m, n), in no particular order.

    Long rows: a strided sample of about 2048 entries gives a threshold that
    about ``3 k`` entries of the row pass (checked: rows where fewer than ``k``
    pass, or more than a quarter, take the full partition); the ``k`` largest
    are then selected among those candidates.  The same values as a partition
    of the whole row, at a few passes over it."""
    m, n = y.shape
    st = n // 2048
    if st >= 4:
        sub = y[:, ::st]
        ns = sub.shape[1]
        j = min(ns, -(-3 * k // st) + 2)
        thr = np.partition(sub, ns - j, axis=1)[:, ns - j]
        keep = y >= thr[:, None]
        cnt = keep.sum(axis=1)
        if cnt.min() >= k and cnt.max() <= n // 4:
            rr, cc = np.nonzero(keep)
            cand = np.full((m, int(cnt.max())), -np.inf)
            cand[rr, np.arange(rr.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)] = y[rr, cc]
            return np.partition(cand, cand.shape[1] - k, axis=1)[:, cand.shape[1] - k:]
    return np.partition(y, n - k, axis=1)[:, n - k:].copy()


class _Row:
    """The near scores (padded), far power sums and log G of a block of rows."""

    def __init__(self, y, laplace):
        m, n = y.shape
        self.m, self.n, self.laplace = m, n, laplace
        xs, logc, near, self.lp, self.trunc = _cut(y, laplace)
        # a laplace cut more than 600 below the top puts kinks at u < e^-600, near
        # the float64 floor: such rows are declined (computed on zeros, ok False)
        self.ok = y.max(axis=1) - xs <= _MAX_DEPTH
        if not self.ok.all():
            y = np.where(self.ok[:, None], y, 0.0)
            xs, logc, near, self.lp, self.trunc = _cut(y, laplace)
        # scores with 1/64 < c <= 1/2 are cheaper summed directly than by up to 57
        # series terms: near when a row has at most _NEAR_MAX of them
        # (rows of at most _NEAR_ALL scores: all near)
        all_near = n <= (_NEAR_ALL_LAPLACE if laplace else _NEAR_ALL)
        if all_near:
            # every score near, none far: the near table is the row sorted (largest
            # c first), the far table one block of padding slots
            order = np.argsort(-logc, axis=1, kind="stable")
            self.nlogc = _along(logc, order)
            self.ncol = order
        else:
            mid = logc > _LOG_MID
            ext = mid.sum(axis=1) <= _NEAR_MAX
            if ext.any():
                near = near | (mid & ext[:, None])
            # near scores, padded to K per row (c = 0 pads: log Phi = 0, h = 0)
            rr, cc = np.divmod(np.flatnonzero(near), n)
            counts = np.bincount(rr, minlength=m)
            K = max(int(counts.max()) if m else 0, 1)
            pos = np.arange(rr.size) - np.repeat(np.cumsum(counts) - counts, counts)
            nlogc = np.full((m, K), -np.inf)
            nlogc[rr, pos] = logc[rr, cc]
            ncol = np.full((m, K), n, dtype=np.intp)         # padding -> dummy column n
            ncol[rr, pos] = cc
            order = np.argsort(-nlogc, axis=1, kind="stable")      # largest c first
            self.nlogc = _along(nlogc, order)
            self.ncol = _along(ncol, order)
        self.nmask = np.isfinite(self.nlogc)
        self.nc = np.exp(self.nlogc)
        if all_near:
            self.fR = np.zeros((m, _BLOCK), dtype=np.int8)
            self.fcol = np.full((m, _BLOCK), n, dtype=np.int32)
            self.flogc = np.full((m, _BLOCK), -np.inf)
            self.fc = np.zeros((m, _BLOCK))
        else:
            self._far_table(logc, near)
        self.rmax = int(self.fR.max()) if m else 0
        colmax = self.fR.max(axis=0)                  # non-increasing along the columns
        # kr[r - 1]: columns holding a score that needs term r, rounded up to _BLOCK
        cnt = np.searchsorted(-colmax, -np.arange(1, self.rmax + 2), side="right")
        self.kr = -(-cnt // _BLOCK) * _BLOCK
        # lo[r - 1]: leading columns where every row needs term r (the rows' own
        # counts differ only in the band lo..kr, where the loops mask)
        colmin = self.fR.min(axis=0)
        self.lo = np.searchsorted(-colmin, -np.arange(1, self.rmax + 2), side="right")
        self.P = self._power_sums(self.fc)            # (m, rmax + 1), P[:, 0] unused

    def _far_table(self, logc, near):
        """The far scores: per row, sorted by their number of series terms
        (descending; near scores get -1 and sort last), padded with c = 0 to a
        multiple of _BLOCK columns; padding slots point at the dummy column n."""
        m, n = logc.shape
        R = _terms(logc)
        np.copyto(R, -1, where=near)
        np.negative(R, out=R)
        nf = n - int(near.sum(axis=1).min()) if m else 0
        W = -(-max(nf, 1) // _BLOCK) * _BLOCK
        order = np.argsort(R, axis=1, kind="stable")[:, :nf]
        fR = np.full((m, W), 1, dtype=np.int8)
        fR[:, :nf] = np.take(R, _flat(order, n))
        del R
        np.negative(fR, out=fR)
        valid = fR >= 0
        self.fcol = np.full((m, W), n, dtype=np.int32 if n < 2**31 - 1 else np.intp)
        self.fcol[:, :nf] = order
        self.flogc = np.full((m, W), -np.inf)
        if n >= 1 << 16:                     # long rows: no (m, n) temporary
            for i in range(m):
                np.take(logc[i], order[i], out=self.flogc[i, :nf])
        else:
            self.flogc[:, :nf] = np.take(logc, _flat(order, n))
        del order, logc
        np.copyto(self.fcol, n, where=~valid)
        np.copyto(self.flogc, -np.inf, where=~valid)
        np.maximum(fR, 0, out=fR)
        self.fR = fR
        self.fc = np.exp(self.flogc)

    def _power_sums(self, first):
        """``sum_far first_j c_j^(r-1)`` over the far scores that need term ``r``
        (sums in fixed blocks: a row's bits do not depend on its batch mates)."""
        out = np.zeros((self.m, self.rmax + 1))
        if self.rmax and first.size * self.rmax <= _TABLE:
            # the loop below as one table (same products and sums, same bits)
            pw = _powers(first, self.fc, self.rmax)
            mask = self.fR[None] >= np.arange(1, self.rmax + 1)[:, None, None]
            out[:, 1:] = _block_sum(np.where(mask, pw, 0.0)).T
            return out
        pw = first.copy()
        for r in range(1, self.rmax + 1):
            k, lo = self.kr[r - 1], self.lo[r - 1]
            # a score that needs fewer than r terms is zeroed here and stays zero
            # (same sums as masking each term: a row's own scores decide)
            np.copyto(pw[:, lo:k], 0.0, where=self.fR[:, lo:k] < r)
            out[:, r] = _block_sum(pw[:, :k])
            if r < self.rmax:
                k2 = self.kr[r]
                pw[:, :k2] *= self.fc[:, :k2]
        return out

    # -- the near factors and log G at points u (m, P) ------------------------
    def near_terms(self, u):
        """``log Phi_j``, ``log h_j`` of the near scores at ``u``: (m, K, P) each.

        ``c u <= 1/2`` (and every exponential factor): ``Phi = 1 - c u``,
        ``h = c u / (1 - c u)`` (*).  Laplace with ``c u > 1/2`` (``x`` below the
        score): ``Phi = e^(x - mu) / 2 = 1 / (4 c u)``, ``h = 1``.
        """
        cu = self.nc[:, :, None] * u[:, None, :]
        lcu = self.nlogc[:, :, None] + np.log(u)[:, None, :]
        if self.laplace:
            right = cu > 0.5
            np.minimum(cu, 0.5, out=cu)
        np.negative(cu, out=cu)
        lphi = np.log1p(cu, out=cu)
        lh = lcu - lphi
        if self.laplace:
            np.copyto(lphi, -2.0 * _LOG2 - lcu, where=right)
            np.copyto(lh, 0.0, where=right)
        return lphi, lh

    def far_log_g(self, u):
        """``-sum_r u^r P_r / r`` (every term has one sign)."""
        return -self.far_series(u, self.P / np.maximum(np.arange(self.rmax + 1), 1))

    def far_series(self, u, S):
        """``sum_r u^r S_r`` for power sums ``S`` (m, rmax + 1): a table of the terms
        (powers of ``u`` by sequential products, ``r ulps`` at most in term ``r``,
        whose size falls like ``2^-r``), summed over ``r`` in order -- a row's terms
        above its own largest are exact zeros, which leave its bits unchanged: a
        batch's larger ``rmax`` changes nothing."""
        if self.rmax == 0:
            return np.zeros_like(u)
        coef = S[:, 1:].T.reshape((self.rmax, self.m) + (1,) * (u.ndim - 1))
        if u.size * self.rmax <= _NODE_TABLE:
            t = _powers(u, u, self.rmax)               # u^(q+1), q = 0..rmax-1
            t *= coef
            return t.sum(axis=0)
        # the table's products and sums one term at a time (same bits)
        out = np.zeros_like(u)
        pw = u.copy()
        for q in range(self.rmax):
            out += pw * coef[q]
            if q + 1 < self.rmax:
                pw *= u
        return out

    def log_g(self, u, drop=False):
        """``log G`` at points ``u`` (m, P) for the placement of the nodes (u_max,
        panel splits) only: the far part is :meth:`_far_log_g_estimate`."""
        lphi, _ = self.near_terms(u)
        if drop and not self.laplace:
            lphi = lphi[:, _NT:]
        return _near_sum(lphi) + self._far_log_g_estimate(u)

    def _far_log_g_estimate(self, u):
        """``-sum_r u^r P_r / r`` with each term formed as ``exp(r log u + log(P_r / r))``:
        within ``~r |log u|`` ulps of the sequential products (terms below ``e^-700``
        count as ``e^-700``: ``rmax`` times 1e-304 at most), far below what the
        placement's thresholds resolve, in a few array operations instead of
        ``rmax``.  Elementwise work and an ordered sum: no batch dependence."""
        if self.rmax == 0:
            return np.zeros_like(u)
        r = np.arange(1.0, self.rmax + 1.0)
        lc = np.log(self.P[:, 1:] / r).T                 # (rmax, m)
        t = np.multiply.outer(r, np.log(u))              # (rmax, m, P)
        t += lc[:, :, None]
        return -_ordered_sum(exp_terms(t, out=t), 0)

    # -- geometry ----------------------------------------------------------------
    def u_max(self):
        """Largest ``u`` with ``log G(u) >= -L'`` (bisection in ``log2 u``), or 1."""
        one = np.ones((self.m, 1))
        umax = np.ones(self.m)
        if not self.laplace:
            bis = self.trunc.copy()
        else:
            bis = np.ones(self.m, dtype=bool)
        bis &= self.log_g(one)[:, 0] < -self.lp
        if bis.any():
            # log G is decreasing: the first grid point in log2 u below -L', then
            # a finer grid in the bracket above it (u_max within 2^(1/16))
            lo = np.full(self.m, -61.0)
            for width, pts in ((61.0, 62), (1.0, 16)):
                grid = lo[:, None] + (width / (pts - 1)) * np.arange(pts)
                below = self.log_g(np.exp2(grid)) < -self.lp[:, None]
                first = np.where(below.any(axis=1), np.argmax(below, axis=1), pts - 1)
                lo = grid[np.arange(self.m), np.maximum(first - 1, 0)]
            umax = np.where(bis, np.exp2(lo + 1.0 / 15.0), 1.0)
        return umax

    def panels(self, u_top=None):
        """Panel edges (m, E) ascending, ``inf``-padded, ``log G`` at them, and ok
        (False: a row's panels did not converge).  The panels end at
        ``min(u_max, u_top)`` (``u_top`` per row, optional).

        Laplace panels above the first kink ``u_1`` span at most ``min(2 d, 3)``
        in ``t = log u``, ``d`` the distance from a panel's right end to the nearest
        real singularity of the VJP integrands, ``log 2`` past the next kink (or
        the panels' end) ``r`` (:meth:`nodes`): an edge at ``r / 4`` (``[r/4, r]``
        spans ``2 log 2 = 2 d``; panels left of ``r / 4`` have ``d >= 3 log 2``,
        so ``W <= 3 <= 2 d``) and edges ``u_1 e^(3 k)``; every panel is bisected
        (log panels at geometric midpoints, which keeps ``W <= 2 d``) until
        ``log G`` drops by at most ``_DROP`` across it."""
        umax = self.u_max()
        if u_top is not None:
            umax = np.minimum(umax, u_top)
        cols = [np.zeros(self.m), umax]
        ref = None
        if self.laplace:
            kink = 0.5 / self.nc                   # c u = 1/2
            kink = np.where(kink < umax[:, None], kink, np.inf)
            cols.append(kink)
            umin = kink.min(axis=1)
            # the singularities' reference points r: every kink in range and the
            # end; an edge at r / 4 where it lies above the previous r (the kinks
            # ascend along a row, c being sorted largest first, those out of range
            # last: capped at the end, r stays ascending)
            ref = np.concatenate([np.minimum(kink, umax[:, None]), umax[:, None]], axis=1)
            q = 0.25 * ref
            prev = np.concatenate([np.zeros((self.m, 1)), ref[:, :-1]], axis=1)
            cols.append(np.where((q > prev) & (q > umin[:, None]), q, np.inf))
            # and edges u_1 e^(3 k): no panel above u_1 spans more than 3 in t
            has = np.isfinite(umin)
            if has.any():
                ng = np.where(has, np.ceil(np.log(umax / umin) / _T_MAX), 0.0)
                ng = int(np.fmax.reduce(ng))               # nan-ignoring max
                geo = umin[:, None] * np.exp(_T_MAX * np.arange(1, ng + 1))[None, :]
                cols.append(np.where(geo < umax[:, None], geo, np.inf))
        E = np.sort(np.concatenate([c if c.ndim == 2 else c[:, None] for c in cols], axis=1), axis=1)
        E = E[:, : int(np.isfinite(E).sum(axis=1).max())]
        lg = self.log_g(np.where(np.isfinite(E), E, 0.5), drop=True)
        lg = np.where(np.isfinite(E), lg, np.nan)
        ok = np.ones(self.m, dtype=bool)
        for _ in range(_SPLIT_ROUNDS):
            a, b = E[:, :-1], E[:, 1:]
            la, lb = lg[:, :-1], lg[:, 1:]
            need = (np.isfinite(b) & (b > a) & (la - lb > _DROP) & (la > -self.lp[:, None] - 5.0)
                    & (b - a > 1e-15 * b))
            if not need.any():
                break
            mid = np.where(need, 0.5 * (a + b), np.inf)
            if ref is not None:               # log panels: geometric midpoints
                np.copyto(mid, np.sqrt(a * b), where=need & (a >= umin[:, None]))
            lm = self.log_g(np.where(need, mid, 0.5), drop=True)
            E2 = np.concatenate([E, mid], axis=1)
            L2 = np.concatenate([lg, np.where(need, lm, np.nan)], axis=1)
            o = np.argsort(E2, axis=1, kind="stable")
            E2 = _along(E2, o)
            L2 = _along(L2, o)
            w = int(np.isfinite(E2).sum(axis=1).max())
            E, lg = E2[:, :w], L2[:, :w]
        else:
            ok[:] = False
            a, b = E[:, :-1], E[:, 1:]
            ok = ~(np.isfinite(b) & (lg[:, :-1] - lg[:, 1:] > _DROP)
                   & (lg[:, :-1] > -self.lp[:, None] - 5.0)).any(axis=1)
        self._umin = umin if ref is not None else None    # for nodes(): the first kink
        return E, lg, ok

    def nodes(self, u_top=None):
        """Gauss nodes ``u`` and ``log`` weights (m, N), ok, and the nodes per slot
        (short exponential rows take :class:`_ExactExp` instead); ``u_top``: see
        :meth:`panels`.

        Panels in ``u`` (the first laplace panel ``[0, u_1]``, every exponential
        panel): 16-point Gauss-Legendre in ``u``.  On ``[0, u_1]`` every score has
        ``c u <= 1/2``: ``h_i G / u = c_i prod_(j != i) (1 - c_j u)``, a polynomial,
        and the VJPs' ``h_k^2 G / u`` has its pole at ``u = 1 / c_k >= 2 u_1``
        (``rho >= 3 + 8^(1/2)``); ``G``'s slope is bounded by the drop test.

        Laplace panels ``[a, b]`` above the first kink: Gauss-Legendre in
        ``t = log u`` (``du / u = dt``: the integrands become ``h_i G``).  Between
        kinks every score above ``x`` contributes ``e^-t / (4 c)`` to ``G`` and
        ``h = 1``, every score below ``1 - c e^t`` and ``h = c e^t / (1 - c e^t)``:
        ``h_i G`` is entire in ``t`` (the ``u^-q`` pole at ``u = 0`` that limits
        panels in ``u`` is gone), and the VJP integrands ``h_k S G`` have simple
        poles only at ``t_j = -log c_j + 2 pi i k`` -- ``log 2`` beyond the kink
        of each score ``j`` still below ``x``, i.e. at least ``d = t_K + log 2 - t_b``
        from the panel's right end ``t_b`` (``t_K``: the next kink at or above
        ``b``, or the panels' end, beyond which far scores have ``c u <= 1/2``).
        Standard bound (Gauss-Legendre, ``N`` points, ``f`` analytic in the
        Bernstein ellipse ``E_rho`` of the panel): error ``<= 64 M / (15 (rho^2
        - 1) rho^(2N))``, ``M = max |f|`` on ``E_rho``.  A pole at ``d`` past the
        end of a panel of width ``W`` allows ``rho + 1/rho = 2 (1 + 2 d / W)``; the
        ``2 pi`` poles allow ``rho - 1/rho = 4 pi / W``; ``G``'s slope (``log G``
        falls by ``D`` across the panel) makes ``f`` like ``e^(D s / 2)`` on
        ``[-1, 1]``.  Hence four rules, the fewest points whose conditions hold,
        each checked at 40 digits on the model integrand ``e^(-q t) / (1 - e^t / 2)``
        (pole ``log 2`` past ``t = 0``, ``log G`` falling by ``D = q W``;
        tests/test_piecewise_engine.py, tests/test_piecewise_speed_paths.py;
        relative errors):

        * 8 points where ``W <= log(2) / 2 <= d / 2`` (``b / a <= 2^(1/2)``; pole:
          ``rho >= 9.9``; 1.2e-16) and ``D <= 3`` (3.4e-16 with the pole): narrow
          panels between close scores;
        * 10 points on the same panels with ``D <= _DROP10 = 5`` (<= 2.4e-17 over
          ``W <= log(2) / 2``, ``D <= 5``, ``d >= log 2``);
        * 12 points where ``W <= log 2 <= d`` (``b / a <= 2``; pole: ``rho >= 5.8``)
          and ``D <= _DROP12 = 8`` (<= 7.1e-18);
        * 14 points on every other panel: ``W <= min(2 d, 3)`` (:meth:`panels`;
          pole: ``rho >= 3.7``) and ``D <= _DROP = 12``, <= 1.4e-16 over that domain
          (worst at ``W = 3``, ``d = 3/2``; 16 points would give ~1e-19, far below
          what the 8-point panels already allow).  Panels where the drop test is
          waived (``log G < -L' - 5`` at their left end) carry below ``e^-L'`` of
          the mass: their rule does not matter.

        So each panel's integral of ``p`` (positive terms) is within ~4e-16 of
        itself, and the VJPs' within that of their sums of ``|terms|``.  The nodes
        are packed in panel order (an N-point panel takes N places) and summed in
        consecutive slots of 16, the slots in order: a row's sums stay fixed by
        the row alone; zero-weight padding (``u = 1/2``) last."""
        E, lg, ok = self.panels(u_top)
        a, b = E[:, :-1], E[:, 1:]
        live = np.isfinite(b) & (b > a)
        a = np.where(live, a, 0.5)
        wdt = np.where(live, b - a, 0.0)
        if self._umin is None:
            u = (a[:, :, None] + wdt[:, :, None] * _GX).reshape(self.m, -1)
            logw = np.log(wdt[:, :, None] * _GW).reshape(self.m, -1)
            return u, logw, ok, 16
        lp_ = live & (a >= self._umin[:, None])
        # the rule of each panel (docstring): 0 (16 points in u), 1..4 (8, 10, 12, 14 in t)
        drop = lg[:, :-1] - lg[:, 1:]                      # nan on dead panels: rule 4, unused
        narrow = b <= _RATIO8 * a
        rule = np.where(narrow & (drop <= _DROP8), 1,
                        np.where(narrow & (drop <= _DROP10), 2,
                                 np.where((b <= _RATIO12 * a) & (drop <= _DROP12), 3, 4)))
        rule = np.where(lp_, rule, 0)
        x, w = _RULES_X[rule], _RULES_W[rule]
        # a panel from ``base`` over ``scale``: in u (a, b - a), in log u (log a, log(b / a))
        scale = np.where(lp_, np.log(b / a), wdt)
        t = np.where(lp_, np.log(a), a)[:, :, None] + scale[:, :, None] * x
        logw = np.log(scale[:, :, None] * w)
        lp3 = lp_[:, :, None]
        logw += np.where(lp3, t, 0.0)                      # du = u dt
        u = np.where(lp3, np.exp(t), t)
        u = u.reshape(self.m, -1)
        logw = logw.reshape(self.m, -1)
        if not lp_.any():
            return u, logw, ok, 16
        # each panel's unused places dropped (packing: see the docstring)
        keep = (live[:, :, None] & _RULE_USED[rule]).reshape(self.m, -1)
        if self.m == 1:
            k = int(np.count_nonzero(keep))
            uo = np.full((1, -(-k // 16) * 16), 0.5)
            lwo = np.full(uo.shape, -np.inf)
            uo[0, :k], lwo[0, :k] = u[keep], logw[keep]
        else:
            pos = np.cumsum(keep, axis=1)
            N = -(-int(pos[:, -1].max()) // 16) * 16
            uo = np.full((self.m, N), 0.5)
            lwo = np.full((self.m, N), -np.inf)
            idx = (pos - 1 + (np.arange(self.m) * N)[:, None])[keep]
            np.put(uo, idx, u[keep])
            np.put(lwo, idx, logw[keep])
        return uo, lwo, ok, 16


def _flat(idx, width):
    """Flat indices of ``a[row, idx]`` in a C-contiguous ``a`` of ``width`` columns
    (``take`` / ``put`` on them cost a fraction of ``*_along_axis``)."""
    if idx.shape[0] == 1:
        return idx
    return idx + (np.arange(idx.shape[0], dtype=np.intp) * width)[:, None]


def _block_sum(t):
    """Row sums of ``t`` (m, k), k a multiple of _BLOCK: fixed-size pairwise
    blocks, then the block sums in order -- trailing zero blocks (padding to a
    batch's width) change nothing, so a row's bits do not depend on its
    batch mates."""
    sh, k = t.shape[:-1], t.shape[-1]
    return np.cumsum(t.reshape(sh + (k // _BLOCK, _BLOCK)).sum(axis=-1), axis=-1)[..., -1]


def _powers(first, x, r):
    """``first * x^q`` for q = 0..r-1, shape (r,) + first.shape, by sequential products.

    (One multiply per power rather than ``cumprod`` along the first axis: same
    products, same bits; numpy's accumulate along a leading axis is many times
    slower than whole-slice products.)"""
    b = np.empty((r,) + first.shape)
    b[0] = first
    for q in range(1, r):
        np.multiply(b[q - 1], x, out=b[q])
    return b


def _node_sum(t, npp):
    """Sums over the last axis (Gauss nodes in slots of ``npp``, zero padding
    last): per slot, then the slots in order."""
    sh = t.shape
    return np.cumsum(t.reshape(sh[:-1] + (sh[-1] // npp, npp)).sum(axis=-1), axis=-1)[..., -1]


def _near_sum(t):
    """Sums over axis 1 (near scores, zero padding last), in order."""
    if t.shape[1] == 0:
        return np.zeros((t.shape[0],) + t.shape[2:])
    return _ordered_sum(t, 1)


def _ordered_sum(t, axis):
    """Sum over a non-innermost ``axis`` of a C-contiguous array in index order.

    numpy reduces an axis that is not the innermost one by adding whole slices
    one after another (pairwise summation runs only along the contiguous
    innermost axis), so this is the sequential sum -- the last entry of
    ``cumsum`` along ``axis``, bit for bit, at a fraction of its cost; trailing
    zero padding leaves it unchanged.  (With an innermost axis of length 1 numpy
    would sum ``axis`` pairwise: ``cumsum`` then, cheap at that size.)"""
    t = np.ascontiguousarray(t)
    if t.shape[-1] == 1:
        return np.take(np.cumsum(t, axis=axis), -1, axis=axis)
    return t.sum(axis=axis)


def _lse_nodes(a, npp):
    """``log sum exp`` over the last axis (Gauss nodes in slots of ``npp``)."""
    mx = np.max(a, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    return np.log(_node_sum(np.exp(a - mx), npp)) + mx[..., 0]


def _along(a, idx):
    """``a[row, idx]`` per row (``np.take_along_axis`` on axis 1, without its
    index set-up: these tables are small and gathered a few times per call)."""
    return a[np.arange(a.shape[0])[:, None], idx]


def _gather(a, cols):
    """``a[row, cols]`` with column ``n`` (padding) read as 0."""
    n = a.shape[1]
    if a.shape[0] == 1:
        out = np.take(a[0], cols[0], mode="clip")[None]
    else:
        out = _along(a, np.minimum(cols, n - 1))
    np.copyto(out, 0.0, where=cols >= n)
    return out


def _far_poly(row, J, first=None):
    """``sum_{r=1}^{R_j} c_j^(r-1) J[..., row_j, r-1]`` for every far slot: (..., m, W)
    for ``J`` (..., m, rmax) -- several coefficient sets share the loop.  Slot ``j``
    takes term ``r`` when ``R_j >= first[row, r]`` (``first`` (m, rmax + 1), default
    ``first[:, r] = r``: all ``R_j`` terms; :func:`_series_terms` gives fewer);
    padding slots (``R = 0``) get ``J_0``.

    Horner's rule from each slot's own highest term down (``acc = acc c + J_(r-1)``,
    a slot's ``acc`` is 0 until its first term).  The columns are sorted by ``R``
    (descending) in every row, so the slots a term reaches are leading columns: up
    to the last where some row needs it, masked per slot only in the band where
    rows differ -- every slot's value follows from its own ``c``, ``R`` and row
    alone.  With ``J >= 0`` every operation adds non-negative terms (``2 R`` ulps at
    most); with signed ``J`` each slot is within ``2 R`` ulps of its sum of
    ``|terms|``."""
    sets = J.reshape((-1,) + J.shape[-2:])
    acc = np.zeros(sets.shape[:1] + row.fc.shape)
    if first is None:
        top = row.rmax
        kr, lo = row.kr, row.lo
        thr = None
    else:
        # per row, the columns with R >= v (v = 0..rmax + 1), then each term's
        # threshold's count: the band where rows differ is [min, max)
        cnt = np.empty((row.m, row.rmax + 2), dtype=np.intp)
        for i in range(row.m):
            cnt[i] = np.cumsum(np.bincount(row.fR[i], minlength=row.rmax + 2)[::-1])[::-1]
        thr = np.minimum(first, row.rmax + 1)
        c_r = _along(cnt, thr)          # (m, rmax + 1)
        kr, lo = c_r.max(axis=0)[1:], c_r.min(axis=0)[1:]
        top = int(np.flatnonzero(kr)[-1]) + 1 if kr.any() else 0
    for r in range(top, 1, -1):
        k, l = kr[r - 1], lo[r - 1]
        if r < top:
            acc[:, :, :k] *= row.fc[:, :k]
        acc[:, :, :l] += sets[:, :, r - 1:r]
        if l < k:
            lim = r if thr is None else thr[:, r:r + 1]
            np.add(acc[:, :, l:k], sets[:, :, r - 1:r], out=acc[:, :, l:k], where=row.fR[:, l:k] >= lim)
    if top > 1:                          # term 1 (J_0): every slot, padding included
        acc *= row.fc
    acc += sets[:, :, :1]
    return acc.reshape(J.shape[:-1] + row.fc.shape[-1:])


def _series_terms(row, J):
    """``first`` for :func:`_far_poly`: the slots of ``R_j = R`` take ``min(R, R')`` terms.

    ``p_j / (c_j e^M) = sum_(r>=0) c_j^r J_r`` with ``J_r = sum_nodes w G u^r e^-M``
    and every node ``u <= 1``, so ``J_(r+1) <= J_r`` and the tail after ``R'`` terms
    is at most ``c^R' J_R' / (1 - c) <= 2 c^R' J_R'`` (``c <= 1/2``): below ``2^-56``
    of the first term ``J_0`` once ``R' log2 c + log2(J_R' / J_0) <= -57``.  The
    ``R`` that :func:`_terms` sets is this bound with ``J_R <= J_0``; ``G``
    concentrated at small ``u`` (``J_R / J_0 << 1``) needs fewer.  A slot of ``R``
    terms has ``log2 c <= -57 / R``, so ``R'`` is taken per ``R`` with that ``c``:
    the least ``R'`` with ``-57 R' / R + log2(J_R' / J_0) <= -57`` (``min(R, .)``),
    non-decreasing in ``R``; term ``r`` then goes to the slots with ``R >= first_r``,
    the least ``R`` whose ``R' >= r`` (per row: no batch dependence)."""
    m, rj = J.shape
    rmax = row.rmax
    ident = np.broadcast_to(np.arange(rmax + 1), (m, rmax + 1))
    if rj < 2 or rmax < 2:
        return ident
    lt = np.log2(J[:, 1:] / J[:, :1])                        # R' = 1 .. rj - 1
    lt = np.where(np.isnan(lt), 0.0, lt)
    Rs = np.arange(1.0, rmax + 1.0)                              # R = 1 .. rmax
    Rp = np.arange(1.0, rj)
    ok = -57.0 * Rp[None, None, :] / Rs[None, :, None] + lt[:, None, :] <= -57.0   # (m, R, R')
    least = np.where(ok.any(axis=2), np.argmax(ok, axis=2) + 1, rmax)
    T = np.minimum(least, np.arange(1, rmax + 1))                # (m, rmax): R' of R = 1..rmax
    T = np.maximum.accumulate(T, axis=1)
    # first[:, r] = least R with T_R >= r  (T non-decreasing): 1 + #(T < r)
    first = np.empty((m, rmax + 1), dtype=np.intp)
    first[:, 0] = 0
    first[:, 1:] = 1 + (T[:, :, None] < np.arange(1, rmax + 1)).sum(axis=1)
    return first


class _Eval:
    """Nodes and the shared integrals of one block of rows."""

    def __init__(self, y, fam):
        if not fam.piecewise:
            raise NotImplementedError(f"piecewise engine has no kernels for family {fam.name!r}")
        self.row = row = _Row(y, fam.name == "laplace")
        self.u, self.logw, ok, self.npp = row.nodes()
        self.ok = ok & row.ok
        self.lu = np.log(self.u)
        self.lphi, self.lh = row.near_terms(self.u)
        self.logG = _near_sum(self.lphi) + row.far_log_g(self.u)
        # integrals are scaled by e^-M per row (M = max log(w G)): G can be far below 1e-300
        self.lwg = self.logw + self.logG
        self.M = np.max(self.lwg, axis=1)
        self.wg = np.exp(self.lwg - self.M[:, None])             # w G e^-M  (m, N)
        # closed-form far sums where the Horner loop's rmax passes (a few numpy calls
        # each) cost more than the W x N table (_Eval.far_direct); decided per row
        # from the row's own far slots, nodes and terms, so that a row's bits do not
        # depend on its batch mates
        w_r = -(-np.maximum((row.fR > 0).sum(axis=1), 1) // _BLOCK) * _BLOCK
        n_r = -(-np.isfinite(self.logw).sum(axis=1) // 16) * 16
        size = w_r * n_r
        self.direct = (size <= _DIRECT) & (size <= _DIRECT_PER_TERM * row.fR.max(axis=1).astype(np.intp))

    def far_sums(self, t, horner):
        """The far polynomials (s, m, W) of node values ``t`` (s, m, N): ``horner()``
        (:func:`_far_poly` on the moments) for the rows it serves, :meth:`far_direct`
        for the others (in groups of rows whose tables stay within ``_DIRECT``)."""
        d = self.direct
        if not d.any():
            return horner()
        W, N = self.row.fc.shape[1], self.u.shape[1]
        if d.all() and d.size * W * N <= _DIRECT:
            return self.far_direct(t, slice(None))
        out = horner() if not d.all() else np.empty(t.shape[:2] + (W,))
        idx = np.flatnonzero(d)
        step = max(1, _DIRECT // (W * N))
        for a in range(0, idx.size, step):
            rows = idx[a:a + step]
            out[:, rows] = self.far_direct(t[:, rows], rows)
        return out

    def far_direct(self, t, rows):
        """``sum_nodes t / (1 - c_j u)`` for every far slot of ``rows``: (s, r, W) for
        ``t`` (s, r, N).

        The far series summed in closed form at each node: ``sum_(r>=1) c^(r-1) J_(r-1)``
        with ``J_q = sum_nodes u^q t`` is ``sum_nodes t sum_(q>=0) (c u)^q``, and every
        far score has ``c u <= 1/2`` at every node (``c <= 1/2``, ``u <= 1``), so
        ``1 - c u`` is within 2 ulps of itself and each term within 3: no truncation
        (the series stop at ``2^-56`` of their first term), sums over the nodes in
        slots of ``npp`` as :meth:`moments_of` (row-determined).  Padding slots
        (``c = 0``) get ``J_0``.  Cost ``W N`` per row and set instead of about
        ``rmax`` passes of Horner's rule over ``W``: taken for small tables
        (``_DIRECT``), where the Horner loop's per-term calls dominate."""
        row = self.row
        om = np.multiply(row.fc[rows][:, :, None], self.u[rows][:, None, :])    # (r, W, N)
        np.subtract(1.0, om, out=om)
        out = np.divide(t[:, :, None, :], om[None])
        return _node_sum(out, self.npp)

    def moments_of(self, t):
        """``J[:, r] = sum_nodes u^r t``, r = 0..rmax-1 (``t`` carries the weights)."""
        row = self.row
        J = np.zeros((row.m, max(row.rmax, 1)))
        if row.rmax and t.size * row.rmax <= _NODE_TABLE:
            return _node_sum(_powers(t, self.u, row.rmax), self.npp).T
        for r in range(row.rmax):
            J[:, r] = _node_sum(t, self.npp)
            if r + 1 < row.rmax:
                t = t * self.u
        return J

    def log_probs(self, keep=False):
        """``(log p, ok)``; ``keep``: hold the far polynomials (``far_acc``) for a VJP."""
        row = self.row
        m, n = row.m, row.n
        def horner():
            J = self.moments_of(self.wg)
            return _far_poly(row, J, _series_terms(row, J))[None]
        acc = self.far_sums(self.wg[None], horner)[0]
        self.far_acc = acc if keep else None
        t = np.log(acc, out=None if keep else acc)
        t += row.flogc
        row.flogc = None
        t += self.M[:, None]
        lp = np.empty((m, n + 1))                  # column n: padding slots
        np.put(lp, _flat(row.fcol, n + 1), t)
        del t, acc
        # near: log sum_nodes w h_i G / u
        nl = _lse_nodes(self.lh + (self.lwg - self.lu)[:, None, :], self.npp)    # (m, K)
        np.put(lp, _flat(row.ncol, n + 1), nl)
        lpm = lp[:, :n]
        mx = lpm.max(axis=1)
        e = np.subtract(lpm, mx[:, None])
        s = np.log(np.sum(np.exp(e, out=e), axis=1)) + mx
        del e
        ok = self.ok & (np.abs(s) <= _SUM_TOL) & np.isfinite(s)
        self.lse = s
        lpm -= s[:, None]
        return lpm, ok


class _ExactExp:
    """Exponential rows of ``n <= _EXACT_N`` scores cut at their top: one exact Gauss rule.

    With ``c_j = e^(mu_j - top)`` and ``u = e^-(x - top)`` in (0, 1], (*) gives

        p_i = c_i int_0^1 prod_(j != i) (1 - c_j u) du,
        (J^T g)_k = c_k int_0^1 G(u) / (1 - c_k u) (g_k S - Gamma) du,
        S = sum_j h_j,  Gamma = sum_j g_j h_j,  h_j = c_j u / (1 - c_j u),

    polynomials of degree ``<= n - 1`` in ``u`` (``h_j G`` and ``G / (1 - c_k u)``
    lose a factor each, ``u`` adds one), which the ``ceil(n / 2)``-point
    Gauss-Legendre rule on [0, 1] integrates exactly.  Its weights are positive
    and so are the integrands of ``p``: the sums lose only rounding (a few ulps
    of ``p``).  Each factor is formed as ``1 - c u = (1 - c) + c (1 - u)`` from
    ``-expm1(log c)`` and the mirrored node ``1 - u`` (both to full relative
    precision), so a factor near 0 (a top score at a node near ``u = 1``) keeps
    its relative precision.  The terms of the node sums are floored at ``e^-700``
    of their largest (``numeric._exp``): what that changes is below 1e-300 of
    the sum.

    Served rows: no cut above the top (``A = sum_j c_j < 2 L'``, see
    :func:`_cut`) and a spread of at most ``_MAX_DEPTH`` (so ``c_j``, ``p_j``
    and ``1 / p_j`` stay normal floats); :meth:`serves` tells which.
    """

    def __init__(self, y):
        m, n = y.shape
        self.m, self.n = m, n
        lo, hi, w = _uniform._rule((n + 1) // 2)
        self.logc = y - y.max(axis=1)[:, None]
        self.c = np.exp(self.logc)
        # 1 - c u at every (row, node, entry): nodes on axis 1, entries last
        om = np.multiply.outer(hi, self.c).transpose(1, 0, 2)
        om += -np.expm1(self.logc)[:, None, :]
        self.om = om
        self.u = lo
        self.L = np.log(om)                                   # log(1 - c_j u)
        # log of w G at the nodes (sums over the entries: n terms in a fixed order)
        self.T = np.log(w) + self.L.sum(axis=2)
        self.M = self.T.max(axis=1)

    @staticmethod
    def serves(y):
        """Rows (bool mask) the exact rule takes: see the class docstring."""
        n = y.shape[1]
        d = y - y.max(axis=1)[:, None]
        a = np.exp(d).sum(axis=1)
        return (a < 2.0 * (_L + math.log(n) + 7.0)) & (d.min(axis=1) >= -_MAX_DEPTH)

    def log_probs(self):
        """``(log p, ok)``, renormalised like :meth:`_Eval.log_probs`."""
        e = exp_terms(self.T[:, :, None] - self.M[:, None, None] - self.L)
        lp = np.log(e.sum(axis=1))
        del e
        lp += self.logc
        lp += self.M[:, None]
        mx = lp.max(axis=1)
        s = np.log(np.exp(lp - mx[:, None]).sum(axis=1)) + mx
        ok = np.isfinite(s) & (np.abs(s) <= _SUM_TOL)
        lp -= s[:, None]
        return lp, ok

    def vjp(self, g, log):
        """``(J^T g, ok)``; ``log``: the VJP of ``log p`` (cotangent ``g / p``).

        The cotangent is first shifted by that of the most probable entry
        (``J^T 1 = 0``), as in :func:`probs_vjp_rows`: its own term, which would
        cancel in ``g_k S - Gamma``, is then absent."""
        lp, ok = self.log_probs()
        ar = np.arange(self.m)
        top = np.argmax(lp, axis=1)
        if log:
            g = g * np.exp(-lp)
        g = g - g[ar, top][:, None]
        h = self.c[:, None, :] * self.u[None, :, None]
        h /= self.om                                          # (m, N, n)
        # (every sum below runs over one axis in a fixed order: a row's bits do not
        # depend on its batch mates)
        S = h.sum(axis=2)
        h *= g[:, None, :]
        gam = h.sum(axis=2)
        del h
        wg = exp_terms(self.T - self.M[:, None])
        r = np.divide(1.0, self.om, out=self.om)              # 1 / (1 - c_k u)
        A = (r * (wg * S)[:, :, None]).sum(axis=1)
        r *= (wg * gam)[:, :, None]
        B = r.sum(axis=1)
        v = g * A
        v -= B
        v *= self.c * np.exp(self.M)[:, None]
        ok &= np.isfinite(v).all(axis=1)
        return v, ok


class _NearLaplace:
    """Laplace rows of ``n <= _NEAR_ALL_LAPLACE`` scores (every score near) with a
    spread of at most ``_LINEAR_SPREAD``: the panels and nodes of :class:`_Row`,
    the integrands in linear arithmetic.

    At a node ``u`` each score has ``Phi = 1 - c u``, ``h = c u / (1 - c u)`` when
    ``c u <= 1/2`` and ``Phi = 1 / (4 c u)``, ``h = 1`` otherwise (*), so

        log G = log prod_(c u <= 1/2) (1 - c u) - sum_(c u > 1/2) (log 4 + log c + log u)

    (the product of at most ``n`` factors in [1/2, 1] cannot underflow), and with
    ``V = w G / u`` (``w`` the Gauss weights; the row's largest ``V`` scaled to 1)

        p_i = sum_nodes V h_i,
        (J^T g)_k = sum_nodes V h_k (g_k S - Gamma),  S = sum_j h_j,  Gamma = sum_j g_j h_j,

    the nodes and error bounds being those of the panels (module docstring).  Below
    the lowest score (``u >= u_L = 1 / (2 c_min)``) every factor is ``e^(x - mu_j) / 2``
    and every ``h_j = 1``, so ``F`` grows exactly like ``e^(n x)`` there: that part adds
    ``T = F(x_L) / n = G(u_L) / n`` to every ``p_i`` and ``T (n g_k - sum_j g_j)`` to
    ``(J^T g)_k`` in closed form, and the panels end at ``u_L`` (without it, graded
    panels would run on to ``u_max``: most of the nodes of a row of a few scores).  Every
    ``p_i`` is at least ``e^-(spread + log(2n) + 1)`` of the largest, and each
    ``V h_i`` that makes up a sizeable part of it is as large: with the spread at
    most 500 no term that matters comes near the float64 floor (terms are floored
    at ``e^-700`` of the largest, ``numeric._exp``, changing each sum by less than
    1e-300 of its largest term), and ``1 / p_j`` (the VJP of ``log p``) does not
    overflow.  Sums over the nodes go panel by panel (:func:`_node_sum`), sums over
    the scores in their sorted order: a row's bits do not depend on its batch mates.
    """

    def __init__(self, y):
        row = _Row(y, True)
        self.row = row
        # the kink of the lowest score, where the closed-form part below it starts
        u_low = 0.5 / np.min(np.where(row.nmask, row.nc, np.inf), axis=1)
        self.nreal = row.nmask.sum(axis=1)
        u, logw, ok, npp = row.nodes(u_low)
        self.ok = ok & row.ok
        self.npp = npp
        live = np.isfinite(logw)
        u = np.concatenate([u, u_low[:, None]], axis=1)           # last column: u_L
        cu = row.nc[:, :, None] * u[:, None, :]                 # (m, K, P + 1)
        right = cu > 0.5
        one = np.subtract(1.0, cu)
        np.copyto(one, 1.0, where=right)
        # the scores with c u > 1/2 at a node are the first nr of the sorted ones
        # (largest c first, c_0): sum (log 4 + log(c_j u)) = nr (log 4 + log(c_0 u))
        # + sum (log c_j - log c_0), the latter a prefix sum of score differences (so
        # no large log c relative to a deep cut enters, only the row's own gaps)
        nr = right.sum(axis=1)
        pre = np.zeros((row.m, row.nlogc.shape[1] + 1))
        np.cumsum(np.where(row.nmask, row.nlogc - row.nlogc[:, :1], 0.0), axis=1, out=pre[:, 1:])
        sr = _along(pre, nr)
        lu = np.log(u)
        l0 = np.log(cu[:, 0, :])
        logg = np.log(one.prod(axis=1)) - nr * (2.0 * _LOG2 + l0) - sr
        t = logw + logg[:, :-1] - lu[:, :-1]                    # log(w G / u)
        tail = logg[:, -1] - np.log(self.nreal)                     # log(G(u_L) / n)
        t = np.where(live, t, -np.inf)
        self.M = np.maximum(t.max(axis=1), tail)
        self.V = np.where(live, exp_terms(t - self.M[:, None]), 0.0)
        self.Vt = exp_terms(tail - self.M)                          # T e^-M
        cu = cu[:, :, :-1]
        one = one[:, :, :-1]
        right = right[:, :, :-1]
        np.divide(cu, one, out=cu)                                  # h (left scores)
        np.copyto(cu, 1.0, where=right)
        self.h = cu

    @staticmethod
    def serves(y):
        return y.max(axis=1) - y.min(axis=1) <= _LINEAR_SPREAD

    def _sorted_log_probs(self):
        """``log p`` in the order of ``row.ncol`` (m, K) and the renormalising sum."""
        lk = np.log(_node_sum(self.h * self.V[:, None, :], self.npp) + self.Vt[:, None]) + self.M[:, None]
        lk = np.where(self.row.nmask, lk, -np.inf)
        mx = lk.max(axis=1)
        s = np.log(np.exp(lk - mx[:, None]).sum(axis=1)) + mx
        return lk - s[:, None], s

    def _scatter(self, vals):
        m, n = self.row.m, self.row.n
        out = np.empty((m, n + 1))
        np.put_along_axis(out, self.row.ncol, vals, axis=1)
        return out[:, :n]

    def log_probs(self):
        lk, s = self._sorted_log_probs()
        ok = self.ok & np.isfinite(s) & (np.abs(s) <= _SUM_TOL)
        return self._scatter(lk), ok

    def vjp(self, g, log):
        """``(J^T g, ok)``; the cotangent shifted by that of the most probable entry
        (its own term, which would cancel in ``g_k S - Gamma``, is then absent)."""
        lk, s = self._sorted_log_probs()
        ok = self.ok & np.isfinite(s) & (np.abs(s) <= _SUM_TOL)
        m = self.row.m
        ar = np.arange(m)
        gk = _gather(g, self.row.ncol)
        if log:
            gk = np.where(self.row.nmask, gk * np.exp(-lk), 0.0)
        top = np.argmax(lk, axis=1)
        gk = gk - gk[ar, top][:, None]
        S = self.h.sum(axis=1)
        gam = (self.h * gk[:, :, None]).sum(axis=1)
        a = _node_sum(self.h * (self.V * S)[:, None, :], self.npp)
        b = _node_sum(self.h * (self.V * gam)[:, None, :], self.npp)
        # below the lowest score: h_j = 1, S = n, Gamma = sum_j g_j (real scores)
        a += (self.Vt * self.nreal)[:, None]
        b += (self.Vt * np.where(self.row.nmask, gk, 0.0).sum(axis=1))[:, None]
        v = gk * a
        v -= b
        v *= np.exp(self.M)[:, None]
        v = np.where(self.row.nmask, v, 0.0)
        ok &= np.isfinite(v).all(axis=1)
        return self._scatter(v), ok


def _lean_split(y, fam):
    """``(kernel class, rows)`` for the rows a lean kernel serves (exponential:
    :class:`_ExactExp`, laplace: :class:`_NearLaplace`), or None."""
    n = y.shape[1]
    if fam.name == "exponential" and n <= _EXACT_N:
        cls = _ExactExp
    elif fam.name == "laplace" and n <= _NEAR_ALL_LAPLACE:
        cls = _NearLaplace
    else:
        return None
    sel = np.flatnonzero(cls.serves(y))
    return (cls, sel) if sel.size else None


# The kernels work with infinities on purpose (log 0 for padding and empty
# panels, c = 0 pads, inf-padded edges; every result is checked for finiteness
# and declined through ``ok``): floating-point warnings are off for the whole
# computation at the two entry points, once per call, not around each step.
@np.errstate(all="ignore")
def log_probs_rows(y, fam):
    """``(log p (m, n), ok (m,))`` for rows ``y`` (standardized, finite, n >= 2).

    ``p_i = int h(x - y_i) prod_j Phi(x - y_j) dx`` for laplace and exponential
    noise (module docstring); rows with ``ok`` False must be recomputed by
    the caller.

    >>> import numpy as np
    >>> from numeric.families import get_family
    >>> lp, ok = log_probs_rows(np.array([[0.0, -1.0]]), get_family("exponential"))
    >>> round(float(np.exp(lp[0, 1])), 15)          # e^-1 / 2
    0.183939720585721
    """
    if fam.name == "uniform" and not fam.custom:
        return _uniform.log_probs_rows(y)
    y = np.ascontiguousarray(y, dtype=np.float64)
    return _by_kernel(y, fam, lambda cls, rows: cls(y[rows]).log_probs(),
                      lambda rows: _Eval(y[rows], fam).log_probs())


def _by_kernel(y, fam, lean_fn, general_fn):
    """``(out (m, n), ok (m,))``: ``lean_fn(kernel class, rows)`` for the rows a lean
    kernel serves (:func:`_lean_split`), ``general_fn(rows)`` for the others."""
    m = y.shape[0]
    lean = None if fam.custom else _lean_split(y, fam)
    if lean is None:
        return _chunked(y, np.arange(m), lambda r: _width(y[r], fam), general_fn)
    cls, sel = lean
    if cls is _NearLaplace:
        def lean_fn(cls, rows, _fn=lean_fn):        # panels: about one per unit of spread
            return _chunked(y, rows, lambda r: y[r].max(axis=1) - y[r].min(axis=1), lambda r: _fn(cls, r))
    if sel.size == m:
        return lean_fn(cls, np.arange(m))
    out = np.empty(y.shape)
    ok = np.empty(m, dtype=bool)
    out[sel], ok[sel] = lean_fn(cls, sel)
    rest = np.setdiff1d(np.arange(m), sel)
    out[rest], ok[rest] = _chunked(y, rest, lambda r: _width(y[r], fam), general_fn)
    return out, ok


def _width(y, fam):
    """Rows' count of near scores as :class:`_Row` will take them: those with
    ``c > 1/64`` when there are at most ``_NEAR_MAX`` of them, else the ones
    the cut makes near (every near score is a column of the block's tables)."""
    _, logc, near, _, _ = _cut(y, fam.name == "laplace")
    mid = (logc > _LOG_MID).sum(axis=1)
    return np.where(mid <= _NEAR_MAX, mid, near.sum(axis=1))


def _chunked(y, rows, key, fn):
    """``fn(rows)`` on blocks of ``_CHUNK`` rows sorted by ``key(rows)``: the panel
    engine pads each block to its widest row (near scores, panels), so rows of
    similar width go together.  (Each row's result does not depend on its block:
    the padding adds exact zeros.)"""
    if rows.size <= _CHUNK:
        return fn(rows if rows.size < y.shape[0] else slice(None))
    order = rows[np.argsort(key(rows), kind="stable")]
    out = np.empty((rows.size, y.shape[1]))
    ok = np.empty(rows.size, dtype=bool)
    pos = np.searchsorted(rows, order)
    for a in range(0, rows.size, _CHUNK):
        blk = order[a:a + _CHUNK]
        out[pos[a:a + _CHUNK]], ok[pos[a:a + _CHUNK]] = fn(blk)
    return out, ok


@np.errstate(all="ignore")
def probs_vjp_rows(y, g, fam, log=False):
    """``(J^T g (m, n), ok (m,))``: VJP of ``probs`` (``log=True``: of ``log_probs``).

    ``(J^T g)_k = int h_k F (g_k S - Gamma) dx``, ``S = sum_j h_j``,
    ``Gamma = sum_j g_j h_j``; for ``log_probs`` the cotangent is ``g_j / p_j``,
    formed as ``g_j c_j^r / p_j = g_j c_j^(r-1) / poly_j`` (far) and in log space
    (near), so tiny ``p_j`` do not overflow.  Per unit scale (the caller divides).

    >>> import numpy as np
    >>> from numeric.families import get_family
    >>> v, ok = probs_vjp_rows(np.array([[0.0, -1.0]]), np.array([[1.0, 0.0]]),
    ...                        get_family("exponential"))
    >>> round(float(v[0, 0]), 15)                     # d/dmu_0 (1 - e^-(mu_0 - mu_1)/2)
    0.183939720585721
    """
    if fam.name == "uniform" and not fam.custom:
        return _uniform.probs_vjp_rows(y, g, log=log)
    y = np.ascontiguousarray(y, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64)
    return _by_kernel(y, fam, lambda cls, rows: cls(y[rows]).vjp(g[rows], log),
                      lambda rows: _panel_vjp(y[rows], g[rows], fam, log))


def _panel_vjp(y, g, fam, log):
    """:func:`probs_vjp_rows` on the panels of :class:`_Eval` (module docstring)."""
    m, n = y.shape
    ev = _Eval(y, fam)
    row = ev.row
    lpm, ok = ev.log_probs(keep=log)
    s = ev.lse
    # J^T 1 = 0, so the cotangent may be shifted by a constant per row: by the one
    # of the most probable entry (g / p for log_probs).  Then that entry's own term
    # g_k h_k^2 F, which would cancel in g_k S - Gamma, is absent, and every entry
    # is computed relative to its own sum of |(g_k - g_j) K_kj|.
    top = np.argmax(lpm, axis=1)
    ar = np.arange(m)
    if log:
        t = np.exp(lpm)
        t *= (g[ar, top] / np.exp(lpm[ar, top]))[:, None]
        g = np.subtract(g, t, out=t)
        g[ar, top] = 0.0
    else:
        g = g - g[ar, top][:, None]
    gfar = _gather(g, row.fcol)
    gnear = _gather(g, row.ncol)
    del g
    base = ev.lwg - ev.M[:, None]                                   # log(w G) - M
    if log:
        # g_j / p_j with p_j = c_j acc_j e^(M - s) (far) and log p_j (near):
        # every term below is the true one times e^-kappa, kappa = s
        phi = np.divide(1.0, ev.far_acc, out=ev.far_acc)     # padding slots: ignored
        ev.far_acc = None
        lam = np.where(row.nmask, _gather(lpm, row.ncol) + (s - ev.M)[:, None], 0.0)
        kappa = s
        del lpm
    else:
        phi = row.fc
        lam = np.zeros_like(row.nlogc)
        kappa = ev.M
        del lpm
    h_near = np.exp(ev.lh)                                         # (m, K, N)
    S = _near_sum(h_near) + row.far_series(ev.u, row.P)            # sum_j h_j
    # Gamma w G e^-kappa: far series with Q_r = sum g_j phi_j c_j^(r-1), near directly
    gphi = np.multiply(gfar, phi, out=phi if log else gfar)      # g_j phi_j
    del gfar
    Q = row._power_sums(gphi)
    ebase = np.exp(base)
    gam = (ebase * row.far_series(ev.u, Q)
           + _near_sum(gnear[:, :, None] * np.exp(ev.lh + base[:, None, :] - lam[:, :, None])))
    wgS = ebase * S
    # far k: g_k phi_k poly_S(c_k) - c_k poly_Gamma(c_k)
    vfar, t = ev.far_sums(np.stack([wgS, gam]),
                          lambda: _far_poly(row, np.stack([ev.moments_of(wgS), ev.moments_of(gam)])))
    vfar *= gphi
    t *= row.fc
    vfar -= t
    del t, gphi
    # near k: sum_nodes (h_k / u) (g_k e^-lam_k w G S e^-M - Gamma w G e^-kappa)
    hk = np.exp(ev.lh - ev.lu[:, None, :])
    # (e^-lam_k and w G apart can overflow and underflow: combined in the exponent)
    first = _node_sum(np.exp(ev.lh - ev.lu[:, None, :] + base[:, None, :] - lam[:, :, None])
                      * S[:, None, :], ev.npp) * gnear
    second = _node_sum(hk * gam[:, None, :], ev.npp)
    out = np.empty((m, n + 1))
    np.put(out, _flat(row.fcol, n + 1), vfar)
    np.put(out, _flat(row.ncol, n + 1), first - second)
    outm = out[:, :n]
    outm *= np.exp(kappa)[:, None]
    ok &= np.isfinite(outm).all(axis=1)
    return outm, ok
