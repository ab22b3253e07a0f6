"""Tiny probabilities to full relative precision: ``p`` directly, not ``exp(log p)``.

Every engine returns ``log p``; ``probs`` is ``exp(log p)``.  One rounding step of
``log p`` (``|log p| eps``) is 5.7e-14 .. 1.1e-13 relative in ``p`` below ``e^-256``, and
the engines' ``log p`` -- sums of log integrands of size ``|log p|`` in float64, each good
to ``eps |log p|`` absolute -- is good to ~7e-16 ``|log p|``: ``exp(log p)`` can miss 1e-13
relative from ``|log p|`` ~ 140 on.  This module recomputes the entries with ``log p`` in
``[LP_LO, LP_HI] = [-691.5, -256]`` of the smooth,
log-concave families (normal, logistic, gumbel_min) from the integral itself,

    p_i = int f(x - y_i) F(x) / Phi(x - y_i) dx,   F(x) = prod_j Phi(x - y_j),

with every log term carried as an exact part plus a small correction:

* the nodes ``x_k = k H`` (``H`` a power of two) and the offsets ``t = x_k - y_j`` are
  exact as double-doubles (``_two_sum``);
* each ``log Phi(t)``, ``log f(t)`` is written ``A + B`` with ``A`` formed exactly
  (``-t_hi^2 / 2`` by ``_two_prod``; ``t_hi`` itself; ``e^t`` of gumbel_min's density as a
  double-double from a 40-digit table at multiples of ``2^-10`` times ``1 + expm1(r)``)
  and ``B`` of modest size (``|B| <= 7``: ``log(erfcx / 2)``, ``log1p``, ``psi``), good to a
  few ``eps |B|``;
* in ``log F`` the large parts of the scores above a node (``t = x - y_j`` for logistic
  and gumbel_min, ``-t^2 / 2`` for normal) are summed in closed form from exact prefix
  sums of the sorted ``y`` (and ``y^2``), in double-double; the rest ``R(t)`` (size
  ``<= 7``, ``|t R'| <= 2``) by elements, only where it is not below 1e-21;
* each part is split into its multiple of ``2^-24`` (exact: ``|part| < 2^29``) and a
  remainder below ``2^-25``; the lattice parts sum exactly, the remainders in float64;

so ``log`` of the integrand at a node is good to a few ``eps`` times the sum of the small
parts (not of ``|log p|``).  A coarse grid (step 1, 1/2, 1/4 by family; widened while an integrand
is alive at an end) finds where the integrands live; then trapezoid sums at ``H = 1/8, 1/16, ...``
(each grid the last one plus its midpoints, trimmed to the nodes within ``e^-50`` of a
peak) until the sums at ``H`` and ``2H`` agree within 1e-9: for integrands analytic in a
strip the error at ``H`` is about the square of the one at ``2H``, so ~1e-18; the grid
must end where the integrand is ``e^-45`` below its peak (log-concave: the omitted tails
are below ``e^-45 / |(log g)'|``).  Finally ``p = e^M H S`` with ``M`` the
float peak (exact) and ``S = sum exp((L - M))`` of positive terms: ``p`` within a few ulps
plus the log terms' ``B`` rounding (measured against the oracle: docstrings of the tests).
Entries that fail a check, or rows too long or wide for the node budget, keep
``exp(log p)`` (within two steps of ``log p``, the README's stated floor).

laplace and exponential (kinks at the scores: no trapezoid rule) factor ``p_i = e^(z_i) K_i``
with ``z_i`` the entry's distance to the top score (exact as a double-double) and ``K_i`` an
integral of modest size in which the large linear parts cancel exactly; ``K_i`` by
Gauss-Legendre panels between the kinks (8 and 16 nodes must agree); see
``_pw_log_integrand``.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
from scipy import special

__all__ = ["refine_probs", "in_band", "FAMILIES", "LP_LO", "LP_HI", "N_MAX"]

# entries refined: log p in [LP_LO, LP_HI] (p >= 1e-300 with a margin, and below e^-256,
# where one step of log p is >= 5.7e-14 relative; the engines' log p is good to ~7e-16
# |log p|, so entries above e^-256 can miss too: gumbel_min's O(n) engine on a clustered
# row, 1.7e-13 at log p = -255.7 -- left to exp(log p) for the cost)
LP_LO, LP_HI = -691.5, -256.0
# gumbel_min's engines: log p measured 5 steps off (1.5e-13 in exp(log p)) on a whole cluster
# of entries at log p = -243 (n = 1000, clusters+ties): its band reaches up to -160, where
# 5 steps of log p (~5.6e-16 |log p| measured) stay below 1e-13 with a 10% margin
_LP_HI_FAM = {"gumbel_min": -160.0}
FAMILIES = ("normal", "logistic", "gumbel_min", "laplace", "exponential")
_PIECEWISE = ("laplace", "exponential")
# node-term budget per row (nodes x scores, ~3-10 ms of numpy at 2^18): beyond it the row
# keeps exp(log p)
_BUDGET = 1 << 18
# longer rows never fit (the coarse grid has at least 8 nodes): not even prepared
N_MAX = _BUDGET // 8
_CHUNK = 1 << 18
_LAT = 2.0 ** 24
_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_prod(a, b):
    p = a * b
    ca = _SPLIT * a
    ah = ca - (ca - a)
    al = a - ah
    cb = _SPLIT * b
    bh = cb - (cb - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


_EXP_TAB = []


def _exp_table():
    """``e^(i/32)`` (i = -256 .. 512) and ``e^(j/1024)`` (j = 0 .. 31) as double-doubles
    (40-digit decimal arithmetic), built once."""
    if not _EXP_TAB:
        with localcontext() as ctx:
            ctx.prec = 40
            def dd(v):
                e = v.exp()
                hi = float(e)
                return hi, float(e - Decimal(hi))
            coarse = np.array([dd(Decimal(i) / 32) for i in range(-256, 513)])
            fine = np.array([dd(Decimal(j) / 1024) for j in range(32)])
        _EXP_TAB[:] = [coarse, fine]      # one assignment: threads may race, never mix
    return _EXP_TAB[0], _EXP_TAB[1]


def _exp_dd(t):
    """``e^t`` as ``(hi, lo)``: for ``t`` in [-8, 16), ``e^(i/32) e^(j/1024) (1 + expm1(r))``
    with ``r = t - (32 i + j) / 1024`` exact, ``|r| <= 2^-11``; the table entries are
    40-digit double-doubles and their product is formed by ``_two_prod``: error below
    ``e^t (2^-11 eps + 2^-100)``, i.e. below 5.4e-15 absolute up to ``e^t = 1e5``.
    Elsewhere ``exp(t)`` (``t < -8``: absolute error below ``3.7e-20``)."""
    coarse, fine = _exp_table()
    inside = (t >= -8.0) & (t < 16.0)
    ts = np.where(inside, t, 0.0)
    k = np.rint(ts * 1024.0)
    r = ts - k / 1024.0
    ki = k.astype(np.int64) + 8192
    i, j = ki // 32, ki % 32
    ah, al = coarse[i, 0], coarse[i, 1]
    bh, bl = fine[j, 0], fine[j, 1]
    ph, pl = _two_prod(ah, bh)
    pl = pl + ah * bl + al * bh
    em = np.expm1(r)
    qh, ql = _two_prod(ph, em)
    hi, lo = _two_sum(ph, qh)
    lo = lo + (ql + pl * (1.0 + em))
    with np.errstate(over="ignore"):
        return np.where(inside, hi, np.exp(t)), np.where(inside, lo, 0.0)


def _parts(name, th, tl, which):
    """``log Phi(t)`` (which="cdf") or ``log f(t)`` (which="pdf") at ``t = th + tl`` as
    ``(A, B)``: ``A`` exact, ``B`` small (see the module docstring)."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if name == "normal":
            if which == "pdf":
                p, e = _two_prod(th, th)
                return -0.5 * p, -0.5 * e - th * tl - 0.9189385332046727
            deep = th < -1.0
            p, e = _two_prod(th, th)
            u = np.where(deep, th, -2.0)
            A = np.where(deep, -0.5 * p, 0.0)
            Bd = -0.5 * e - th * tl + np.log(special.erfcx(-u * 0.7071067811865476) * 0.5)
            ts = np.where(deep, 0.0, th)
            Bs = special.log_ndtr(ts) + tl * np.exp(-0.5 * ts * ts - 0.9189385332046727 - special.log_ndtr(ts))
            return A, np.where(deep, Bd, Bs)
        if name == "logistic":
            a = np.abs(th)
            if which == "pdf":
                return -a, -np.sign(th) * tl - 2.0 * np.log1p(np.exp(-a))
            neg = th < 0
            q = np.exp(-a)
            # th < 0: t - log1p(e^t); th >= 0: -log1p(e^-t); the tl slope 1 - Phi
            A = np.where(neg, th, 0.0)
            B = np.where(neg, tl, 0.0) - np.log1p(q) + np.where(neg, -tl * q / (1.0 + q), tl * q / (1.0 + q))
            return A, B
        # gumbel_min
        if which == "pdf":
            eh, el = _exp_dd(th)
            s, e = _two_sum(th, -eh)
            return s, e + tl - el - eh * tl
        u = np.exp(th)
        neg = th < 0
        small = u < 1e-8
        us = np.where(small, 1.0, u)
        # th < 0: t + psi(e^t), psi(u) = log(-expm1(-u) / u) in [-u/2, 0] (-u/2 + u^2/24
        # below u = 1e-8); th >= 0: log(-expm1(-u)); (log Phi)'(t) = u / (e^u - 1)
        psi = np.where(small, -0.5 * u, np.log(-np.expm1(-us) / np.where(neg, us, 1.0)))
        slope = np.where(small, 1.0 - 0.5 * u, np.where(u > 700.0, 0.0, us / np.expm1(np.minimum(us, 700.0))))
        A = np.where(neg, th, 0.0)
        B = psi + np.where(neg, tl + tl * (slope - 1.0), tl * slope)
        return A, B


def _split(v):
    """``v = c + r`` with ``c`` on the lattice ``2^-24`` (exact for ``|v| < 2^29``) and
    ``|r| <= 2^-25``."""
    c = np.rint(v * _LAT) / _LAT
    return c, v - c


def _dd_add(ah, al, bh, bl):
    s, e = _two_sum(ah, bh)
    return s, e + (al + bl)


# (log Phi)(t) = big(t) + R(t): big(t) = t (logistic, gumbel_min: t < 0) or -t^2/2 (normal:
# t < -1), summed over the scores above x in closed form from exact prefix sums of y and
# y^2; R of modest size, by elements, only where it is not below 1e-21 in total:
# t in (_R_LO, _R_HI)
_BIG_T = {"normal": -1.0, "logistic": 0.0, "gumbel_min": 0.0}
_R_LO = {"normal": -np.inf, "logistic": -50.0, "gumbel_min": -50.0}
_R_HI = {"normal": 9.5, "logistic": 50.0, "gumbel_min": 4.0}


def _residual(name, t):
    """``R(t) = log Phi(t) - big(t)`` (float64; its rounding and that of ``t`` move it by a
    few eps absolute: ``|R| <= 7``, ``|t R'(t)| <= 2`` on the ranges used)."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if name == "normal":
            deep = t < -1.0
            R = np.empty_like(t)
            R[deep] = np.log(special.erfcx(t[deep] * -0.7071067811865476) * 0.5)
            R[~deep] = special.log_ndtr(t[~deep])
            return R
        if name == "logistic":
            return -np.log1p(np.exp(-np.abs(t)))
        u = np.exp(t)
        small = u < 1e-8
        us = np.where(small, 1.0, u)
        return np.where(small, -0.5 * u, np.log(-np.expm1(-us) / np.where(t < 0, us, 1.0)))


_U_LO, _U_HI = math.exp(_R_LO["gumbel_min"]), math.exp(_R_HI["gumbel_min"])


def _gumbel_min_psi(u):
    """gumbel_min's ``R(t)`` at ``u = e^t``: ``psi(u) = log(-expm1(-u) / u)`` for ``u < 1``
    (below 1/8 its series through ``u^8``, next term ``u^10 / 479001600 <= 2e-18``), and
    ``log(-expm1(-u))`` for ``u >= 1``."""
    R = np.empty_like(u)
    s = u < 0.125
    v = u[s]
    w = v * v
    R[s] = v * (-0.5 + v * (1.0 / 24.0 + w * (-1.0 / 2880.0 + w * (1.0 / 181440.0 - w / 9676800.0))))
    b = ~s
    v = u[b]
    with np.errstate(divide="ignore", over="ignore"):
        R[b] = np.log(-np.expm1(-v)) - np.where(v < 1.0, np.log(v), 0.0)
    return R


class _Row:
    """A sorted finite row with the exact prefix sums of ``y`` (and ``y^2``, normal)."""

    def __init__(self, name, y):
        self.name = name
        self.ys = np.sort(y)
        c, r = _split(self.ys)
        self.s1 = (np.concatenate([[0.0], np.cumsum(c)]), np.concatenate([[0.0], np.cumsum(r)]))
        if name == "normal":
            p, e = _two_prod(self.ys, self.ys)
            c2, r2 = _split(p)
            self.s2 = (np.concatenate([[0.0], np.cumsum(c2)]), np.concatenate([[0.0], np.cumsum(r2 + e)]))

    def log_F(self, x):
        """``log F(x) = sum_j log Phi(x - y_j)`` at lattice nodes ``x`` as ``(c, r)``: ``c``
        on the ``2^-24`` lattice (a sum of exact parts), ``r`` small."""
        name, ys = self.name, self.ys
        n = ys.size
        k = np.searchsorted(ys, x - _BIG_T[name], side="right")
        N = (n - k).astype(np.float64)
        s1c = self.s1[0][n] - self.s1[0][k]              # exact (lattice)
        s1r = self.s1[1][n] - self.s1[1][k]
        if name == "normal":
            # -sum (x - y_j)^2 / 2 = -(N x^2 - 2 x S1 + S2) / 2, in double-double
            a, ae = _two_prod(N, x * x)                   # x * x exact (x on a 2^-10 lattice)
            b, be = _two_prod(2.0 * x, s1c)
            h, l = _dd_add(a, ae, -b, -be - 2.0 * x * s1r)
            h, l = _dd_add(h, l, self.s2[0][n] - self.s2[0][k], self.s2[1][n] - self.s2[1][k])
            h, l = -0.5 * h, -0.5 * l
        else:
            h, l = _two_sum(N * x, -s1c)                  # N x exact (N <= 2^20, x 2^-10 lattice)
            l = l - s1r
        c, r = _split(h)
        r = r + l
        # R by elements over the scores whose R is not negligible at some node
        j0 = np.searchsorted(ys, x[0] - _R_HI[name], side="left")
        j1 = np.searchsorted(ys, x[-1] - _R_LO[name], side="right")
        step = max(1, _CHUNK // max(x.size, 1))
        for a0 in range(j0, j1, step):
            if name == "gumbel_min":
                # u = e^(x - y) as a product (2 eps relative: |u psi'(u)| <= 1/2 of it)
                with np.errstate(under="ignore"):
                    u = np.exp(x - x[0])[:, None] * np.exp(x[0] - ys[None, a0:min(j1, a0 + step)])
                R = _gumbel_min_psi(u)
                R[(u <= _U_LO) | (u >= _U_HI)] = 0.0
            else:
                t = x[:, None] - ys[None, a0:min(j1, a0 + step)]
                R = _residual(name, t)
                R[(t <= _R_LO[name]) | (t >= _R_HI[name])] = 0.0
            cr, rr = _split(R)
            c = c + cr.sum(axis=1)
            r = r + rr.sum(axis=1)
        return c, r


_H0 = {"normal": 1.0, "logistic": 0.5, "gumbel_min": 0.5}


def _window(name, y, band):
    """A first window ``(lo, hi, left margin, right margin)`` for the integrands of the
    scores ``band``; widened while an integrand is alive at an end."""
    lo = float(y[band].min())
    if name == "normal":
        return lo, float(y.max()), 2.0, 10.0
    if name == "logistic":
        return lo, float(y.max()), 10.0, 64.0
    return lo, float(y[band].max()), 16.0, math.log(y.size + 60.0) + 2.0


def _log_integrands(row, band_y, x):
    """``log f(x - y_i) F(x) / Phi(x - y_i)`` for the scores ``band_y`` at the nodes ``x``:
    ``(c, r)`` of shape (len(band_y), len(x)), ``c`` on the 2^-24 lattice."""
    Fc, Fr = row.log_F(x)
    th, tl = _two_sum(x[None, :], -band_y[:, None])
    A1, B1 = _parts(row.name, th, tl, "pdf")
    A2, B2 = _parts(row.name, th, tl, "cdf")
    parts = [_split(A1), _split(B1), _split(-A2), _split(-B2)]
    c = Fc[None, :] + sum(p[0] for p in parts)
    r = Fr[None, :] + sum(p[1] for p in parts)
    return c, r


def _entry_terms(row, by, e_idx, x_flat):
    """``log f(x - y_e) - log Phi(x - y_e)`` at the pairs ``(e_idx, x_flat)``: ``(c, r)``."""
    th, tl = _two_sum(x_flat, -by[e_idx])
    A1, B1 = _parts(row.name, th, tl, "pdf")
    A2, B2 = _parts(row.name, th, tl, "cdf")
    parts = [_split(A1), _split(B1), _split(-A2), _split(-B2)]
    return sum(q[0] for q in parts), sum(q[1] for q in parts)


def _refine_row(name, y, band, lp):
    """``(p, ok)`` for the entries ``band`` of one finite standardized row ``y``."""
    out = np.full(band.size, np.nan)
    ok = np.zeros(band.size, dtype=bool)
    by = y[band]
    m = band.size
    # where the integrands live: a coarse grid over a window that holds them
    lo, hi, ml, mr = _window(name, y, band)
    # coarse step: normal integrands are wide (a step of 1 finds them), gumbel_min's narrow
    H0 = _H0[name]
    row = None
    for _ in range(4):
        x0 = np.arange(math.floor((lo - ml) / H0), math.ceil((hi + mr) / H0) + 1, dtype=np.float64) * H0
        if x0.size * (y.size + m) > _BUDGET:
            return out, ok
        if row is None:
            row = _Row(name, y)
        c0, _ = _log_integrands(row, by, x0)
        M0 = np.max(c0, axis=1, keepdims=True)
        if not np.isfinite(M0).all():
            return out, ok
        live = c0 > M0 - 60.0
        if not (live[:, 0].any() or live[:, -1].any()):
            break
        ml, mr = (2.0 * ml if live[:, 0].any() else ml), (2.0 * mr if live[:, -1].any() else mr)
    else:
        return out, ok
    # each entry's own node range (lattice indices k, x = k H), one coarse node beyond its
    # live ones; then trapezoid sums at H = 1/8, 1/16, ... (each grid the last one plus its
    # midpoints, each entry's range trimmed to its nodes within e^-50 of its peak and one
    # more each side: the nodes dropped hold below 1e-19 of its sum) until the sums at H
    # and 2H agree
    k_base = math.floor((lo - ml) / H0)
    first = np.argmax(live, axis=1) - 1
    last = live.shape[1] - np.argmax(live[:, ::-1], axis=1)
    H = 0.125
    f8 = int(H0 * 8)
    ka = f8 * (k_base + first)                  # coarse index -> index at H = 1/8
    kb = f8 * (k_base + last)
    while H >= 2.0 ** -10:
        Hn = 0.5 * H
        ka, kb = 2 * ka, 2 * kb                 # the same ranges at step Hn
        lens = kb - ka + 1
        if lens.sum() + (kb.max() - ka.min() + 1) * y.size > _BUDGET:
            break
        ku = np.arange(ka.min(), kb.max() + 1)
        Fc, Fr = row.log_F(ku * Hn)
        e_idx = np.repeat(np.arange(m), lens)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        k_flat = np.arange(lens.sum()) - np.repeat(starts, lens) + np.repeat(ka, lens)
        ce, re = _entry_terms(row, by, e_idx, k_flat * Hn)
        j = k_flat - ka.min()
        c = Fc[j] + ce
        r = Fr[j] + re
        with np.errstate(invalid="ignore", over="ignore", under="ignore"):
            M = np.maximum.reduceat(c, starts)
            fin = np.isfinite(M)
            M = np.where(fin, M, 0.0)
            # c - M is exact (both on the 2^-24 lattice); r small
            w = np.exp((c - M[e_idx]) + r)
            w[~np.isfinite(w)] = 0.0
            S = np.bincount(e_idx, weights=w, minlength=m)
            S2 = 2.0 * np.bincount(e_idx, weights=np.where(k_flat % 2 == 0, w, 0.0), minlength=m)
            ends = (c[starts] - M < -45.0) & (c[starts + lens - 1] - M < -45.0)
            # trapezoid error at step h of an integrand analytic in a strip ~ C e^(-2 pi a / h):
            # at h = H/2 about the square of the one at H, which |S - S2| measures, so
            # 1e-9 leaves ~1e-18
            good = fin & ends & (np.abs(S - S2) <= 1e-9 * S) & (S > 0)
            p = np.exp(M) * (Hn * S)
            lpr = np.log(p)
        # the engine's log p is within a few steps: a larger gap is not trusted
        good &= np.abs(lpr - lp) <= 16.0 * np.spacing(np.abs(lp)) + 1e-13
        take = good & ~ok
        out[take] = p[take]
        ok |= good
        if ok.all():
            break
        alive = c > M[e_idx] - 50.0
        big = np.iinfo(np.int64).max
        kmin = np.minimum.reduceat(np.where(alive, k_flat, big), starts)
        kmax = np.maximum.reduceat(np.where(alive, k_flat, -big), starts)
        ka = np.where(kmin == big, ka, np.maximum(ka, kmin - 1))
        kb = np.where(kmax == -big, kb, np.minimum(kb, kmax + 1))
        H = Hn
    return out, ok


# ---- laplace and exponential: p_i = e^(z_i) K_i with K_i of modest size -------------------
#
# With c the row's top score and z = y - c (as double-doubles: ``_two_sum``), u = x - c:
#
#   laplace      p_i = e^(z_i) K_i,  K_i = int e^(L_i(u)) du,
#                L_i(u) = -max(u, 0) + 2 min(0, u - z_i) - log 2 + sum_{j != i} l(u - z_j),
#                l(t) = t - log 2 (t < 0), log1p(-e^(-t) / 2) (t >= 0);
#   exponential  p_i = e^(z_i) K_i,  K_i = int_0^inf e^(-u) prod_{j != i} (1 - e^(-(u - z_j))) du
#
# (f(u - z_i) = e^(z_i) e^(-u) / 2 above z_i, e^(z_i) e^(-u + 2 (u - z_i)) / 2 below).  The
# large linear parts cancel exactly: -u + (u - 0) of the top score (``-max(u, 0)``, the top's
# own term dropped where it is below u); every other term of L_i where the integrand is
# alive (within e^-60 of its peak) is small: a score above u contributes u - z_j - log 2
# (its sum is at most ~60 there), one below at most log 2.  So L_i is good to ~60 eps
# absolute and K_i (of size >= ~1/n) to ~1e-14 relative; e^(z_i) is exp of an exact double
# (1 ulp) times (1 + z_lo).  The integrands are log-concave with kinks only at the scores
# (laplace; exponential: analytic on u > 0): Gauss-Legendre panels of width <= 1 between
# consecutive scores (and 0 .. 60 above the top), 8 and 16 nodes; analytic within log 2
# of each panel (log1p(-e^(-t)/2) is singular at t = -log 2 + i pi k), so the 16-node error
# is about the square of the 8-node one, which their difference measures: agreement within
# 1e-9 leaves ~1e-18.  Panels with both ends below e^-60 of the peak are dropped
# (log-concave: such a panel is monotone, below e^-60 of the peak everywhere); the laplace
# integrand below the lowest score is e^(L(z_min) + n (u - z_min)): e^L(z_min) / n exactly.
_GL = {}
_PW_BUDGET = 1 << 20
_LOG2 = math.log(2.0)


def _gauss(m):
    if m not in _GL:
        _GL[m] = np.polynomial.legendre.leggauss(m)
    return _GL[m]


def _pw_terms(name, u, zh, zl, top, band):
    """``(C, D)`` with ``L_i(u) = C(u) + D[:, k](u)`` for the entries ``i = band[k]`` at the
    nodes ``u`` (1-D; see above): ``C`` the part shared by every entry (``-u`` and every
    score's ``log Phi``, the top's ``u`` cancelled exactly), ``D`` the entry's own terms
    (its ``log Phi`` taken out; laplace: ``2 min(0, u - z_i)``).  Where entry ``i`` is
    alive every term of ``C`` is small (see above) except those that cancel exactly."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        def lphi(t):
            if name == "laplace":
                return np.where(t < 0, t - _LOG2, np.log1p(-0.5 * np.exp(-np.maximum(t, 0.0))))
            # exponential, u >= 0 (t >= 0 for every score): log(1 - e^-t) without cancellation
            tp = np.maximum(t, 0.0)
            return np.where(tp > _LOG2, np.log1p(-np.exp(-tp)), np.log(-np.expm1(-tp)))
        t = (u[:, None] - zh[None, :]) - zl[None, :]
        lp = lphi(t)
        if name == "laplace":
            lp[:, top] = np.where(u < 0, -_LOG2, lp[:, top])     # its t = u cancels -u
            C = (-np.maximum(u, 0.0) - _LOG2) + lp.sum(axis=1)
        else:
            C = -u + lp.sum(axis=1)
        tb = t[:, band]
        D = -lp[:, band]
        if name == "laplace":
            D = D + 2.0 * np.minimum(tb, 0.0)
        return C, D


def _refine_piecewise_row(name, y, band, lp):
    """``(p, ok)`` for the entries ``band`` of one finite standardized row ``y`` (laplace,
    exponential), all entries on shared nodes; rows beyond the node budget keep
    ``exp(log p)``."""
    out = np.full(band.size, np.nan)
    top = int(np.argmax(y))
    keep_e = band != top
    band, lpb = band[keep_e], lp[keep_e]
    if band.size == 0:
        return out, np.zeros(out.size, dtype=bool)
    zh, zl = _two_sum(y, -y[top])
    zh[top], zl[top] = 0.0, 0.0
    n, m = zh.size, band.size
    w = n + m
    tail = np.arange(0.0, 61.0)                   # above the top: e^-u decay, dropped past 60
    B = np.unique(zh) if name == "laplace" else np.zeros(0)
    # least cost (laplace: L at every kink; the tail's panels): beyond the budget the row is
    # declined before any work (declining is safe)
    if (B.size + 2 * tail.size + 24 * tail.size) * w > _PW_BUDGET:
        return out, np.zeros(out.size, dtype=bool)
    Ct, Dt = _pw_terms(name, tail, zh, zl, top, band)
    Lt = Ct[:, None] + Dt                                     # (nodes, entries)
    Mb = Lt.max(axis=0)
    if name == "laplace":
        # L at the kinks first; segments with both ends below e^-60 of an entry's largest
        # value are dead for it (log-concave); the live ones (for some entry) split into
        # panels of width <= 1
        CB, DB = _pw_terms(name, B, zh, zl, top, band)
        LB = CB[:, None] + DB
        Mb = np.maximum(Mb, LB.max(axis=0))
        live = ((LB[:-1] > Mb - 60.0) | (LB[1:] > Mb - 60.0)).any(axis=1)
        B0, lens = B[:-1][live], np.diff(B)[live]
        k = np.maximum(1, np.ceil(lens)).astype(np.int64)
        frac = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
        a = np.concatenate([np.repeat(B0, k) + np.repeat(lens / k, k) * frac, tail[:-1]])
        b = np.concatenate([np.repeat(B0, k) + np.repeat(lens / k, k) * (frac + 1), tail[1:]])
        Lmin = LB[0]
    else:
        a, b = tail[:-1], tail[1:]
        Lmin = np.full(m, -np.inf)
    # the panels' ends: panels with both ends below e^-60 of an entry's largest value are
    # dropped for it (log-concave: monotone there, below e^-60 of the peak throughout)
    E = np.unique(np.concatenate([a, b]))
    if (E.size + 24 * a.size) * w > _PW_BUDGET:
        return out, np.zeros(out.size, dtype=bool)
    CE, DE = _pw_terms(name, E, zh, zl, top, band)
    LE = CE[:, None] + DE
    La, Lb = LE[np.searchsorted(E, a)], LE[np.searchsorted(E, b)]
    Mb = np.maximum(Mb, LE.max(axis=0))
    alive = (La > Mb - 60.0) | (Lb > Mb - 60.0)              # (panels, entries)
    use = alive.any(axis=1)
    a, b, alive = a[use], b[use], alive[use]
    h = 0.5 * (b - a)
    L = {}
    for q in (8, 16):
        xg, _ = _gauss(q)
        C, D = _pw_terms(name, ((0.5 * (a + b))[:, None] + h[:, None] * xg[None, :]).ravel(),
                         zh, zl, top, band)
        L[q] = (C[:, None] + D).reshape(a.size, q, m)
    M = np.maximum(np.where(alive[:, None, :], L[16], -np.inf).max(axis=(0, 1)), Mb)
    S = {}
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for q in (8, 16):
            wq = h[:, None, None] * _gauss(q)[1][None, :, None] * np.exp(L[q] - M)
            S[q] = np.where(alive[:, None, :], wq, 0.0).sum(axis=(0, 1)) + np.exp(Lmin - M) / n
        good = (S[16] > 0) & (np.abs(S[8] - S[16]) <= 1e-9 * S[16]) & np.isfinite(M)
        # the tail must end far below each entry's peak
        good &= Lt[-1] < Mb - 45.0
        # math.exp: within 1 ulp of e^v for the exact double v
        ez = np.array([math.exp(v) for v in zh[band]])
        eM = np.array([math.exp(v) if math.isfinite(v) else math.nan for v in M])
        p = ez * eM * S[16] * (1.0 + zl[band])
        good &= (p > 0) & (np.abs(np.log(p) - lpb) <= 16.0 * np.spacing(np.abs(lpb)) + 1e-13)
    res = np.where(good, p, np.nan)
    out[keep_e] = res
    return out, np.isfinite(out)


def refine_probs(y, lp, p, fam):
    """Replace ``p`` (``exp(lp)``, rows of standardized scores ``y``, shape (m, n), finite
    or ``-inf`` entries) in place where ``lp`` is in ``[LP_LO, LP_HI]``, for the families in
    :data:`FAMILIES`; entries not certified keep their value.  Returns ``p``."""
    if fam.custom or fam.name not in FAMILIES:
        return p
    hi = _LP_HI_FAM.get(fam.name, LP_HI)
    rows = np.flatnonzero(((lp >= LP_LO) & (lp <= hi)).any(axis=1))
    for r in rows:
        row = y[r]
        fin = np.isfinite(row)
        if not fin.any() or np.isnan(row).any() or np.isposinf(row).any():
            continue
        idx = np.flatnonzero(fin)
        yr = np.ascontiguousarray(row[idx], dtype=np.float64)
        band = np.flatnonzero((lp[r, idx] >= LP_LO) & (lp[r, idx] <= hi))
        if band.size == 0 or yr.size < 2:
            continue
        refine = _refine_piecewise_row if fam.name in _PIECEWISE else _refine_row
        v, ok = refine(fam.name, yr, band, lp[r, idx[band]])
        p[r, idx[band[ok]]] = v[ok]
    return p


def in_band(p, family=None):
    """True when some entry of ``p`` is in the refined range of ``family`` (one reduction
    when none is small enough).  A name in :data:`FAMILIES` gives its own range; anything
    else (aliases, family objects) the widest one, so that ``refine_probs`` (which decides
    each row by the family's own range) never depends on a row's batch mates."""
    p_hi = _P_HI_FAM.get(family, _P_HI) if family in FAMILIES else _P_HI_MAX
    # fmin ignores NaN (a NaN row must not switch the refinement off for its batch mates)
    if p.size == 0 or not np.fmin.reduce(p, axis=None) <= p_hi:
        return False
    return bool(np.any((p >= _P_LO) & (p <= p_hi)))


_P_LO, _P_HI = math.exp(LP_LO), math.exp(LP_HI)
_P_HI_FAM = {k: math.exp(v) for k, v in _LP_HI_FAM.items()}
_P_HI_MAX = max([_P_HI, *_P_HI_FAM.values()])
