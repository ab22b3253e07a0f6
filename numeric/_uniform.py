"""Uniform noise: every log-probability and VJP from Gauss rules that are exact.

Standard uniform noise (``Phi(t) = clip(t, 0, 1)``, ``phi = 1`` on (0, 1]).  Take
the row's top score ``T`` and ``d_j = T - mu_j >= 0``; with ``x = T + s``,

    F(T + s) = G(s) = prod_j min(s + d_j, 1),      s in (0, 1]   (F = 0 below T,
                                                                   1 above T + 1),
    p_i = int_0^(c_i) G(s) / (s + d_i) ds,          c_i = 1 - d_i,

so only the *active* scores ``d_i < 1`` have ``p_i > 0`` (the others: exactly 0,
``log p = -inf``).  Sort the distinct active values ``d_0 = 0 < d_1 < ... <
d_(K-1)`` (multiplicities ``w_J``): on the interval ``I_m = (c_(m+1), c_m)``
(``c_K = 0``) the groups ``J <= m`` are unsaturated and

    G(s) = prod_(J <= m) (s + d_J)^(w_J),

a polynomial of degree ``M_m = sum_(J <= m) w_J``; the integrand of ``p_i``
(one factor removed) has degree ``M_m - 1``, that of the VJP kernel
``K_ij = int G / ((s + d_i)(s + d_j))`` degree ``M_m - 2``.  An ``N``-point
Gauss-Legendre rule is exact for degree ``<= 2N - 1``: rows with ``M <= 64``
take ``N = ceil(M / 2)`` nodes per interval and no
other approximation (the rule's own rounding: nodes and weights to ~1e-16, the
positive sums to a few ulps).  Rows with more active entries (clusters, ties: ``M`` up to any size)
use 32-point panels bisected until ``log G`` changes by at most ``_DROP`` = 16
across each (32-point Gauss-Legendre on ``e^(8 t)``, ``t`` in [-1, 1]: error
below 1e-25 relative; ``log G`` is concave, so the drop bounds its growth off
the real axis the same way), except panels whose every integrand is below
``e^-L`` of the smallest probability that uses them:

    p_i >= c_i G(c_i) / (4 M)     (the last ``c_i / (2 M)`` below ``c_i``,
                                   where G >= G(c_i) (1 - 1/(2M))^M >= G(c_i) / 2),

and the integrand of any ``p_i`` on a panel ``[a, b]`` is at most
``G(b) / b``, so a panel whose ``log G(b)`` lies ``L = 45 + log(panels)``
below that bound adds at most ``e^-45`` relative, computed or not.  Rows with
more than ``_K_MAX`` = 256 distinct active values (the tables hold ``K^2 N``
entries), or whose panels do not settle, are declined (``ok`` False: the caller's
quadrature takes them).

Rounding: a factor ``s + d_J`` close to 1, tied ``w_J`` times, would carry its
rounding ``w_J`` times; each node therefore also knows its distance ``tau`` to
the top ``c_m`` of its interval, and ``log(s + d_J) = log1p(-(tau + d_m - d_J))``
when ``tau + d_m - d_J <= 1/2`` (absolute error ~1e-16 times that small
argument), ``log(s + d_J)`` otherwise (``s`` itself carried from the lower
end, so it keeps its relative precision down to 0).

VJP: ``(J^T g)_e = sum_(j != e) (g_e - g_j) K_ej = g_e A_E - B_E`` with
``A_E = int G h_E S``, ``B_E = int G h_E Gamma``, ``h_J = 1/(s + d_J)``,
``S = sum_J w_J h_J``, ``Gamma = sum_J gamma_J h_J`` (``gamma_J`` the sum of the
cotangent over group ``J``; the ``j = e`` terms cancel).  The cotangent is
first shifted by that of one top entry ``t`` (``J^T 1 = 0``): since
``h_J <= h_0 = 1/s``, ``K_eJ <= K_et``, so ``|g_e| A_E <= M |g_e - g_t| K_et``
and both products are within ``~M`` ulps of the entry's own sum of
``|terms|``.  (For a lone top entry ``K_tt`` diverges; there ``g_t = 0`` and
``gamma_0 = 0``, and ``A_0`` is not formed.)  For ``log_probs`` the cotangent is
``c_j / p_j``, formed as ``exp(log(w G h_J) - log p_J)`` (``G / p_J <= 4 M /
c_J`` on the nodes that use it: no overflow however small ``p_J``).

>>> import numpy as np
>>> lp, ok = log_probs_rows(np.array([[0.0, -0.5, -2.0]]))
>>> np.exp(lp).round(15).tolist(), ok.tolist()       # 1 - 1/8 and 1/8
([[0.875, 0.125, 0.0]], [True])
"""

from __future__ import annotations

import math

import numpy as np

from ._exp import exp_terms

__all__ = ["log_probs_rows", "probs_vjp_rows"]

_N_EXACT = 32          # Gauss points per panel for rows with M > 2 N_EXACT
_DROP = 16.0           # max change of log G across a panel (rows with M > 64)
_L = 45.0              # neglected panels: below e^-L of every probability using them
_ROUNDS = 80
_TOP_POW = 16          # powers of s left out of the drop test
_K_MAX = 256           # rows with more distinct active values are declined
_ELEMS = 1 << 21       # (rows x groups x nodes) per block
_ROWS = 256            # rows per block
_SUM_TOL = 1e-11

_RULES: dict = {}


def _rule(N):
    """Gauss-Legendre nodes on [0, 1] (``x`` and ``1 - x``, the mirrored node, so
    both distances to the ends keep their relative precision) and weights."""
    r = _RULES.get(N)
    if r is None:
        x, w = np.polynomial.legendre.leggauss(N)
        lo = 0.5 * (1.0 + x)
        r = _RULES[N] = (lo, lo[::-1].copy(), 0.5 * w)
    return r


def _groups(y):
    """Active scores of rows ``y`` (m, n) grouped by value.

    Returns ``gd`` (m, K) the distinct ``d = T - mu < 1`` ascending (padding 1.0),
    ``gw`` (m, K) multiplicities (padding 0), ``cols``/``gid`` (m, k) the active
    columns and their group index (padding: column n), and the active count per row."""
    m, n = y.shape
    top = y.max(axis=1)
    d = top[:, None] - y
    active = d < 1.0
    cnt = active.sum(axis=1)
    k = int(cnt.max())
    if n <= 4096:
        key = np.where(active, d, 2.0)
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        sd = np.take_along_axis(key, order, axis=1)
    else:
        order = np.full((m, k), n, dtype=np.intp)
        sd = np.full((m, k), 2.0)
        for r in range(m):
            c = np.flatnonzero(active[r])
            o = np.argsort(d[r, c], kind="stable")
            order[r, :c.size] = c[o]
            sd[r, :c.size] = d[r, c[o]]
    valid = sd < 1.0
    order = np.where(valid, order, n)
    new = np.ones((m, k), dtype=bool)
    new[:, 1:] = sd[:, 1:] != sd[:, :-1]
    gid = np.cumsum(new, axis=1) - 1
    K = int(np.where(valid, gid, 0).max()) + 1
    gd = np.ones((m, K))
    gw = np.zeros((m, K))
    rr = np.repeat(np.arange(m), k).reshape(m, k)
    gd[rr[valid], gid[valid]] = sd[valid]
    np.add.at(gw, (rr[valid], gid[valid]), 1.0)
    return gd, gw, order, np.where(valid, gid, 0), cnt


class _Rows:
    """Panels, nodes and the factor table of a block of rows with the same rule."""

    def __init__(self, gd, gw, N, bisect):
        self.gd, self.gw = gd, gw
        m, K = gd.shape
        self.m, self.K = m, K
        self.Mcum = np.cumsum(gw, axis=1)
        self.Mall = self.Mcum[:, -1]
        c = 1.0 - gd                                   # interval tops c_m
        nxt = np.concatenate([gd[:, 1:], np.ones((m, 1))], axis=1)
        width = nxt - gd                               # c_m - c_(m+1)
        cb = 1.0 - nxt                                 # interval bottoms
        # panels: interval index, s-range [sa, sb], tau-range [ta, tb] (tau = c_m - s)
        self.c = c
        pm = np.broadcast_to(np.arange(K), (m, K)).copy()
        sa, sb = cb, c.copy()
        ta, tb = np.zeros((m, K)), width
        self.rule = _rule(N)
        self.N = N
        self.ok = np.ones(m, dtype=bool)
        if bisect:
            pm, sa, sb, ta, tb = self._bisect(pm, sa, sb, ta, tb)
        self.pm, self.sa, self.sb, self.ta, self.tb = pm, sa, sb, ta, tb
        x, xr, w = self.rule
        h = sb - sa
        live = h > 0
        self.s = (sa[:, :, None] + h[:, :, None] * x).reshape(m, -1)
        self.tau = (ta[:, :, None] + h[:, :, None] * xr).reshape(m, -1)
        self.node_m = np.repeat(pm, N, axis=1)
        with np.errstate(divide="ignore"):
            self.lw = np.log(np.where(live, h, 0.0)[:, :, None] * w).reshape(m, -1)
        # nodes of empty panels (padding) use no group (T = +inf) and weight 0
        livep = np.repeat(live, N, axis=1)
        T, sat = self._logs(self.node_m, self.s, self.tau)
        sat |= ~livep[:, None, :]
        np.copyto(T, 0.0, where=sat)
        lG = _over_groups(gw, T)
        np.copyto(T, np.inf, where=sat)
        self.T, self.sat = T, sat          # sat: no integrand of J at the node
        self.lwG = np.where(livep, self.lw + lG, -np.inf)

    def _logs(self, pm, s, tau):
        """``log(s + d_J)`` for every group ``J`` at points ``(m, s, tau)`` (m, K, P),
        and where ``J`` is saturated (``J > m``: its factor is 1, its integrand 0)."""
        gd = self.gd
        dm = np.take_along_axis(gd, pm, axis=1)
        z = tau[:, None, :] + (dm[:, None, :] - gd[:, :, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(s[:, None, :] + gd[:, :, None])
            np.negative(z, out=z)
            np.log1p(z, out=out, where=z >= -0.5)
        return out, np.arange(self.K)[None, :, None] > pm[:, None, :]

    def table(self, pm, s, tau):
        """:meth:`_logs` with ``+inf`` where ``J`` is saturated."""
        out, sat = self._logs(pm, s, tau)
        np.copyto(out, np.inf, where=sat)
        return out

    def log_g(self, pm, s, tau, wts=None):
        """``sum_J wts_J log(s + d_J)`` over the unsaturated groups (``wts``: the
        multiplicities by default); groups of weight 0 add nothing, also at s = 0."""
        T = self.table(pm, s, tau)
        wts = self.gw if wts is None else wts
        with np.errstate(invalid="ignore"):
            T = np.where((T == np.inf) | (wts[:, :, None] == 0), 0.0, T)
        return _over_groups(wts, T)

    def _bisect(self, pm, sa, sb, ta, tb):
        """Split panels until ``log G`` changes by at most ``_DROP`` across each, where
        the degree is above the exact rule's and the panel is not negligible (module
        doc); rows that do not settle within ``_ROUNDS`` are declined."""
        m = self.m
        lGc = self.log_g(np.broadcast_to(np.arange(self.K), (m, self.K)), self.c, np.zeros((m, self.K)))
        with np.errstate(divide="ignore"):
            floor = lGc + np.log(self.c) - np.log(4.0 * self.Mall)[:, None]
        # the drop is measured on G / s^a, a = min(w_0, _TOP_POW): the top group's
        # factor s^(w_0) is a polynomial the rule integrates with the rest (a 32-point
        # rule on s^a f with a <= 16 errs like a degree->= 47 fit of f), and at s = 0
        # it would ask for endless splits
        wts = self.gw.copy()
        apow = np.minimum(wts[:, 0], _TOP_POW)[:, None]
        wts[:, 0] -= apow[:, 0]
        la = self.log_g(pm, sa, tb, wts)
        lb = self.log_g(pm, sb, ta, wts)
        exact = self.Mcum <= 2 * _N_EXACT
        for _ in range(_ROUNDS):
            Lr = _L + math.log(pm.shape[1])
            fl = np.take_along_axis(floor, pm, axis=1)
            hi_deg = ~np.take_along_axis(exact, pm, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                need = (hi_deg & (sb > sa) & (lb - la > _DROP) & (lb + (apow - 1.0) * np.log(sb) > fl - Lr))
            # a panel that must split but is down to the float resolution: decline the row
            self.ok &= ~(need & (sb - sa <= 1e-15 * sb)).any(axis=1)
            need &= sb - sa > 1e-15 * sb
            if not need.any():
                break
            # split: the new panel is the lower half, the old one keeps the upper half
            ms = np.where(need, 0.5 * (sa + sb), sa)
            mt = np.where(need, 0.5 * (ta + tb), tb)
            lm = self.log_g(pm, ms, mt, wts)
            lm = np.where(need, lm, la)
            width = int(need.sum(axis=1).max())
            idx = np.argsort(~need, axis=1, kind="stable")[:, :width]
            sel = np.take_along_axis(need, idx, axis=1)

            def new(v, fill):
                return np.where(sel, np.take_along_axis(v, idx, axis=1), fill)

            # the lower halves are appended; the upper halves stay in place
            add = (new(pm, 0), new(sa, 0.0), new(ms, 0.0), new(mt, 0.0), new(tb, 0.0), new(la, -np.inf),
                   new(lm, -np.inf))
            sa, tb, la = ms, mt, lm
            pm, sa, sb, ta, tb, la, lb = (np.concatenate([v, a], axis=1) for v, a in
                                          zip((pm, sa, sb, ta, tb, la, lb), add))
        else:
            self.ok &= ~need.any(axis=1)
        return pm, sa, sb, ta, tb

    def entry_logs(self):
        """``log`` of the integrand of each group's probability at every node,
        ``-inf`` off its domain (m, K, P)."""
        return self.lwG[:, None, :] - self.T


def _seq(a, axis):
    """Sum along ``axis`` in index order: padding (zeros, wherever a batch puts it)
    leaves every row's bits unchanged, so a row does not depend on its batch mates."""
    return np.take(np.cumsum(a, axis=axis), -1, axis=axis)


def _node_sum(a, N):
    """Sum over the last axis (nodes, ``N`` per panel): each panel's ``N`` values
    (short panels: in node order, by strided adds -- numpy's reduction over a
    length-``N`` axis costs a call per panel; longer ones: numpy's fixed-length
    reduction), then the panels in order (padding panels: zeros)."""
    sh = a.shape
    v = a.reshape(sh[:-1] + (sh[-1] // N, N))
    if N > 8:
        return _seq(v.sum(axis=-1), -1)
    t = v[..., 0].copy()
    for j in range(1, N):
        t += v[..., j]
    return _seq(t, -1)


def _over_groups(w, T):
    """``sum_J w_J T_J`` (w (m, K), T (m, K, P)) in group order."""
    out = w[:, 0, None] * T[:, 0]
    for j in range(1, T.shape[1]):
        out += w[:, j, None] * T[:, j]
    return out


def _lse(a, N):
    """``log sum exp`` over the last axis (nodes, ``N`` per panel); ``-inf`` where every
    term is.  The terms are floored at ``e^-700`` of the largest (numeric._exp: what
    that adds is below 1e-300 of the sum, and ``exp`` avoids its slow path for
    results that underflow)."""
    mx = np.max(a, axis=-1, keepdims=True)
    fin = np.isfinite(mx[..., 0])
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        out = np.log(_node_sum(exp_terms(a - mx), N)) + mx[..., 0]
    return np.where(fin, out, -np.inf)


def _blocks(y):
    """Rows grouped by their Gauss rule, in blocks of bounded size: yields
    ``(rows, gd, gw, cols, gid, N, bisect)``; rows with more than ``_K_MAX``
    distinct active values are not yielded (declined)."""
    gd, gw, cols, gid, cnt = _groups(y)
    K = (gw > 0).sum(axis=1)
    M = gw.sum(axis=1)
    # ceil(M / 2) points suffice (exact for degree 2N - 1 >= M - 1): one rule (block)
    # per distinct count up to 2 _N_EXACT, the smallest exact one for each row
    half = np.maximum(1.0, np.ceil(M / 2.0))
    N = np.where(M <= 2 * _N_EXACT, half, _N_EXACT).astype(np.intp)
    for v in np.unique(N):
        rows = np.flatnonzero((N == v) & (K <= _K_MAX))
        if rows.size == 0:
            continue
        # rows sorted by their count of groups and cut into blocks of at most _ROWS:
        # each block is padded to its own largest count (padding adds exact zeros)
        rows = rows[np.argsort(K[rows], kind="stable")]
        Kb = int(K[rows].max())
        step = max(1, min(_ROWS, _ELEMS // (Kb * Kb * int(v))))
        for a in range(0, rows.size, step):
            r = rows[a:a + step]
            Kr = int(K[r].max())
            kr = int(cnt[r].max())
            yield (r, gd[r, :Kr], gw[r, :Kr], cols[r, :kr], gid[r, :kr], int(v), bool(M[r].max() > 2 * _N_EXACT))


def log_probs_rows(y):
    """``(log p (m, n), ok (m,))`` for finite rows ``y`` of uniform scores (per unit
    scale, n >= 2); rows with ``ok`` False must be recomputed by the caller.

    >>> import numpy as np
    >>> lp, ok = log_probs_rows(np.array([[0.0, 0.0, -0.5]]))
    >>> np.exp(lp[0]).round(15).tolist()        # 1/2 - 1/48 twice, 1/24
    [0.479166666666667, 0.479166666666667, 0.041666666666667]
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    m, n = y.shape
    out = np.full((m, n + 1), -np.inf)
    ok = np.zeros(m, dtype=bool)
    for rows, gd, gw, cols, gid, N, bisect in _blocks(y):
        lp, good = _log_probs_block(_Rows(gd, gw, N, bisect))
        out[rows[:, None], cols] = np.take_along_axis(lp, gid, axis=1)
        ok[rows] = good
    res = out[:, :n]
    res[~ok] = np.nan
    return res, ok


def _log_probs_block(R):
    """Group log-probabilities (m, K), renormalised, and ok."""
    E = R.entry_logs()
    lp = _lse(E, R.N)                               # (m, K)
    with np.errstate(invalid="ignore"):
        tot = _lse(np.where(R.gw > 0, lp + np.log(np.maximum(R.gw, 1.0)), -np.inf), 1)
    ok = R.ok & np.isfinite(tot) & (np.abs(tot) <= _SUM_TOL)
    return lp - tot[:, None], ok


def probs_vjp_rows(y, g, log=False):
    """``(J^T g (m, n), ok (m,))``: VJP of ``probs`` (``log=True``: of ``log_probs``,
    cotangent ``c``) for finite rows ``y`` of uniform scores (per unit scale).

    ``(J^T g)_e = sum_(j != e) (g_e - g_j) int h_e h_j F`` (module doc); entries
    with ``p = 0`` get 0.

    >>> import numpy as np
    >>> v, ok = probs_vjp_rows(np.array([[0.0, -0.5, -2.0]]), np.array([[1.0, 0.0, 0.0]]))
    >>> v.round(15).tolist()                     # d(1 - (1 - d)^2 / 2) = (1 - d) dd
    [[0.5, -0.5, 0.0]]
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64)
    m, n = y.shape
    out = np.zeros((m, n + 1))
    ok = np.zeros(m, dtype=bool)
    gpad = np.concatenate([g, np.zeros((m, 1))], axis=1)
    for rows, gd, gw, cols, gid, N, bisect in _blocks(y):
        R = _Rows(gd, gw, N, bisect)
        lp, good = _log_probs_block(R)
        v = _vjp_block(R, lp, gpad[rows[:, None], cols], gid, cols < n, log)
        out[rows[:, None], cols] = np.where(cols < n, v, 0.0)
        ok[rows] = good & np.isfinite(v).all(axis=1)
    res = out[:, :n]
    res[~ok] = np.nan
    return res, ok


def _vjp_block(R, lp, ge, gid, valid, log):
    """Per active entry (m, k): ``g_e A_E - B_E`` (module doc)."""
    m, K = R.gw.shape
    rr = np.arange(m)
    lpe = np.take_along_axis(lp, gid, axis=1)             # log p of each entry
    ge = np.where(valid, ge, 0.0)
    # t: the first active entry (a top entry, group 0); q_t = g_t (c_t / p_t for log)
    qt = ge[:, 0] * np.exp(-lpe[:, 0]) if log else ge[:, 0].copy()
    C = np.zeros((m, K))                                    # cotangent summed per group
    np.add.at(C, (np.repeat(rr, ge.shape[1]), gid.ravel()), ge.ravel())
    # a lone top group has gamma_0 = 0 exactly: left out of Gamma (its h_0 = 1/s
    # times a rounding residue would not be integrable), and A_0 is not formed
    lone = R.gw[:, 0] == 1.0
    inc = np.ones((m, K))
    inc[lone, 0] = 0.0
    lh = -R.T                                               # log h_J at the nodes, -inf off
    with np.errstate(under="ignore", over="ignore", invalid="ignore", divide="ignore"):
        H = np.zeros_like(lh)                               # (exp(-inf) is slow: not asked)
        np.exp(lh, out=H, where=~R.sat)
        wG = np.exp(R.lwG)
        S = _over_groups(R.gw, H)
        if log:
            # Gamma w G = sum_J (C_J / p_J - w_J q_t) h_J w G, C_J / p_J in log space
            lpg = np.where(R.gw > 0, lp, 0.0)                # padding groups: no -inf
            if lpg.min() > -700.0:
                # 1 / p_J representable: C_J / p_J times h_J w G directly
                t1 = wG * _over_groups(C * inc * np.exp(-lpg), H)
            else:
                t1 = _over_groups(C * inc, np.exp(R.lwG[:, None, :] + lh - lpg[:, :, None]))
            Phi = t1 - qt[:, None] * wG * _over_groups(R.gw * inc, H)
        else:
            Phi = wG * _over_groups((C - R.gw * qt[:, None]) * inc, H)
        BA = _node_sum(H[..., None, :] * np.stack([Phi, wG * S], axis=1)[:, None], R.N)
        B, A = BA[:, :, 0], BA[:, :, 1]                     # (m, K) each
        A[lone, 0] = 0.0
        Ae = np.take_along_axis(A, gid, axis=1)
        Be = np.take_along_axis(B, gid, axis=1)
        if log:
            first = ge * np.exp(np.log(Ae) - lpe) - qt[:, None] * Ae
        else:
            first = (ge - qt[:, None]) * Ae
        v = np.where(Ae > 0, first, 0.0) - Be
    return np.where(valid, v, 0.0)
