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
positive sums to a few ulps).  Rows with more active entries (clusters, ties: ``M`` up
to any size) take the region engine (below); the rows it declines use 32-point panels
bisected until ``log G`` changes by at most ``_DROP`` = 16
across each (32-point Gauss-Legendre on ``e^(8 t)``, ``t`` in [-1, 1]: error
below 1e-25 relative; ``log G`` is concave, so the drop bounds its growth off
the real axis the same way), except panels whose every integrand is below
``e^-L`` of the smallest probability that uses them:

    p_i >= c_i G(c_i) / (4 M)     (the last ``c_i / (2 M)`` below ``c_i``,
                                   where G >= G(c_i) (1 - 1/(2M))^M >= G(c_i) / 2),

and the integrand of any ``p_i`` on a panel ``[a, b]`` is at most
``G(b) / b``, so a panel whose ``log G(b)`` lies ``L = 45 + log(panels)``
below that bound adds at most ``e^-45`` relative, computed or not (these panels'
tables hold ``K^2 N`` entries: rows with more than ``_K_MAX`` = 256 distinct
active values, or whose panels do not settle, are left to the caller's
quadrature, ``ok`` False).  The region engine (section "rows with many distinct
active scores" below: series expansions of ``log G`` and of the kernels on
regions of ``t = 1 - s``, cost ``O((K + nodes) R + K regions R)``) declines only
rows whose mass lies within ``2^-24`` of ``s = 0`` beyond a near-tie at the top.

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


def _blocks(y, exact, grp=None):
    """Rows grouped by their Gauss rule, in blocks of bounded size: yields
    ``(rows, gd, gw, cols, gid, N, bisect)`` for the rows of at most ``2 _N_EXACT``
    active scores (``exact``) or for those with more and at most ``_K_MAX`` distinct
    active values (not ``exact``: the bisected panels); ``grp``: :func:`_groups` of ``y``
    if already formed."""
    gd, gw, cols, gid, cnt = _groups(y) if grp is None else grp
    K = (gw > 0).sum(axis=1)
    M = gw.sum(axis=1)
    # ceil(M / 2) points suffice (exact for degree 2N - 1 >= M - 1): one rule (block)
    # per distinct count up to 2 _N_EXACT, the smallest exact one for each row
    half = np.maximum(1.0, np.ceil(M / 2.0))
    N = np.where(M <= 2 * _N_EXACT, half, _N_EXACT).astype(np.intp)
    take = M <= 2 * _N_EXACT if exact else (M > 2 * _N_EXACT) & (K <= _K_MAX)
    for v in np.unique(N):
        rows = np.flatnonzero((N == v) & take)
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
    grp = _groups(y)
    for rows, gd, gw, cols, gid, N, bisect in _blocks(y, True, grp):
        lp, good = _log_probs_block(_Rows(gd, gw, N, bisect))
        out[rows[:, None], cols] = np.take_along_axis(lp, gid, axis=1)
        ok[rows] = good
    res = out[:, :n]
    for r in np.flatnonzero(~ok):
        res[r], ok[r] = _wide_row_log_probs(y[r], _row_groups(grp, r))
    rest = np.flatnonzero(~ok)
    if rest.size:
        # rows the region engine declines: the bisected panels (<= _K_MAX values)
        sub = np.full((rest.size, n + 1), -np.inf)
        for rows, gd, gw, cols, gid, N, bisect in _blocks(y[rest], False):
            lp, good = _log_probs_block(_Rows(gd, gw, N, bisect))
            sub[rows[:, None], cols] = np.take_along_axis(lp, gid, axis=1)
            ok[rest[rows]] = good
        res[rest] = sub[:, :n]
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
    grp = _groups(y)

    def exact(sel, rows_out, exact_rule):
        for rows, gd, gw, cols, gid, N, bisect in _blocks(y if sel is None else y[sel], exact_rule,
                                                          grp if sel is None else None):
            r = rows if sel is None else sel[rows]
            ge = np.take_along_axis(g[r], np.minimum(cols, n - 1), axis=1)    # column n: padding
            R = _Rows(gd, gw, N, bisect)
            lp, good = _log_probs_block(R)
            v = _vjp_block(R, lp, np.where(cols < n, ge, 0.0), gid, cols < n, log)
            rows_out[rows[:, None], cols] = np.where(cols < n, v, 0.0)
            ok[r] = good & np.isfinite(v).all(axis=1)

    exact(None, out, True)
    res = out[:, :n]
    ok &= _balanced(res)
    for r in np.flatnonzero(~ok):
        res[r], ok[r] = _wide_row_vjp(y[r], g[r], log, _row_groups(grp, r))
        ok[r] &= _balanced(res[r][None, :])[0]
    rest = np.flatnonzero(~ok)
    if rest.size:
        # rows the region engine declines: the bisected panels (<= _K_MAX values)
        sub = np.zeros((rest.size, n + 1))
        exact(rest, sub, False)
        res[rest] = sub[:, :n]
        ok[rest] &= _balanced(res[rest])
    res[~ok] = np.nan
    return res, ok


def _balanced(v):
    """Rows of ``v`` whose sum is within 1e-11 of their absolute sum.

    A VJP row sums to 0 exactly (p and log p are unchanged by a common shift of the
    scores).  For log p, g = c / p of entries e^-|log p| below the top makes the
    kernels' ``(g_e - g_t) A - B`` a difference of terms that far above the result
    (two tied groups 1 - 1e-9 apart); once it has cancelled to noise the row sum
    shows it (rows the engines serve: <= 1e-15 of sum |v|), and the row is declined
    (the next engine, finally the quadrature) rather than answered.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.abs(v.sum(axis=1)) <= 1e-11 * np.abs(v).sum(axis=1)


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


# -- rows with many distinct active scores -----------------------------------------
#
# With ``t = 1 - s`` (``t`` in [0, 1): the distance below the top score plus one) and
# the distinct active gaps ``d_0 = 0 < d_1 < ... < d_(K-1) < 1`` (weights ``w_J``),
#
#     log G(t) = sum_(d_J < t) w_J log(1 - t + d_J),
#     p_I = int_(d_I)^1 G(t) / (1 - t + d_I) dt,
#
# every term of ``log G`` has one sign (<= 0) and every integrand is positive.  [0, t_end]
# is cut into *regions* ``[a, a + H)``; a group with ``d_J <= a`` is *far* for the
# region, one with ``a < d_J < a + H`` *near*.  At ``t = a + tau``, with
# ``q_J = 1 / (1 - a + d_J)`` and ``e_J = d_J - a``,
#
#     far:   log(1 - t + d_J) = log(1 - a + d_J) - sum_(r>=1) (tau q_J)^r / r,
#            1 / (1 - t + d_J) = sum_(k>=0) tau^k q_J^(k+1),
#     near:  log(1 - t + d_J) = -sum_(r>=1) (tau - e_J)^r / r,
#            1 / (1 - t + d_J) = sum_(k>=0) (tau - e_J)^k,
#
# so ``log G``, ``S = sum_J w_J / (1 - t + d_J)`` and ``Gamma`` (the VJP's cotangent
# sum) at every node are polynomials in ``tau`` per *piece* (between consecutive near
# breakpoints): far moments ``Q_r = sum_far w_J q_J^r`` (one pass over the far groups
# per region) plus the binomial expansion of ``(tau - e_J)^r`` over compensated prefix
# sums of ``w_J e_J^q`` (near groups), evaluated by Horner at the nodes; ``p_I`` (and
# the VJP integrals) need only the node moments ``m_k = sum_nodes v tau^k`` of each
# region (far ``I``: ``sum_k q_I^(k+1) m_k``) or their suffix sums over the pieces
# after ``d_I`` (near ``I``).  Cost ``O((K + nodes) R + K regions R)`` instead of
# ``K^2`` node-group pairs; stretches where ``G`` is negligible for every group before
# the next breakpoint are skipped (the next region starts at that breakpoint).
#
# Bounds.  Region width ``H <= (1 - a) / 4``: both series' ratios ``tau q_J <= H /
# (1 - a)`` and ``tau - e_J <= H`` are at most ``rho_p = H / (1 - a) <= 1/4``, and
# ``R = ceil((log(M + 1) + 38) / log(1 / rho_p))`` terms leave below ``e^-38`` of
# ``log G`` in absolute terms (``M`` factors) and ``rho_p^R`` relative of every
# positive sum.  ``H S(a + H) <= _C_REG`` (``S`` increases with ``t``): ``log G`` drops
# by at most ``_C_REG`` across a region (``_C_FAR`` = 256 for a region without near
# groups and at most ``_NEAR_MAX`` far ones: ``log G - log G(a) = -sum_r tau^r
# Q_(r-1) / r`` is then a one-signed sum whose rounding is a few ulps of the drop ``X``
# so far, where ``G`` is ``e^-X`` below ``G(a)``: weighted by ``G``, a few ulps whatever
# the cap; node values are scaled by the region's
# largest: no underflow within it; ``log G(a)``, large, enters only that scale), and
# the binomial sums, whose terms are at most ``(2H)^r`` times the near weights (``H
# M_near <= H S <= _C_REG``), lose at most ``~2 _C_REG eps`` (1.4e-14) absolutely in
# ``log G`` and ``~2 H eps`` relative in the kernel sums (the ``k = 0`` term, a plain
# positive sum, dominates).  A region also holds at most ``_NEAR_MAX`` near groups
# (bounded node tables), and one with ``>= _SPLIT_NEAR`` near groups that fill at most a
# quarter of it ends at ``1.25`` times the last one's offset: a tight cluster then has
# its own region of small ``rho_p`` (few terms ``R`` for its many pieces, cost ``~pieces
# R^2``) and the breakpoint-free stretch after it the next (one piece).  Every bound
# above holds for any smaller ``H``.  Prefix and suffix sums and ``log G(a)`` are compensated
# (:func:`_csum`: each addition's rounding added back); ``log(1 - a + d_J)`` is
# ``log1p(-(a - d_J))`` when ``a - d_J <= 1/2``, else ``log((1 - a) + d_J)``: a few ulps
# either way, kept by the one-signed sums.
#
# Panels.  The integrand is ``e^phi`` with ``phi`` concave, ``|phi'| <= S`` (``S`` at the
# piece's right end bounds it on the piece), singular only at ``1 - t = -d_J <= 0``.
# A piece is cut into equal 16-point Gauss-Legendre panels of half-width ``h <= 4 / S``
# and ``h <= (1 - t_r) / 6`` (``t_r`` the piece's right end, so ``1 - t >= 7 h`` at the
# panel's centre ``t_c``).  On the Bernstein ellipse of parameter 8 around a panel (real
# half-axis ``4.0625 h``, imaginary ``3.9375 h``; ``|z - t_c| <= 0.58 (1 - t_c)``: no
# singularity) ``Re log(1 - z + d_J) <= log(1 - t_c + d_J) + |z - t_c| / (1 - t_c + d_J)``,
# so ``Re phi <= phi(t_c) + 4.0625 h S`` while ``phi >= phi(t_c) - h S`` on the panel: a
# ratio below ``e^(5.0625 h S) <= e^20.25``; each kernel ``1 / (1 - t + d_J)`` (and ``S``,
# ``Gamma``: sums of them) changes by a factor below ``8 / 2.9375 = 2.72``, two kernels
# (the VJP's) below 7.4, so the rule's error is below ``(32 / 15) / 63 * 8^-32 * e^20.25
# * 7.4 ~ 2e-21`` of the panel's integral (of its sum of |terms| for ``Gamma``;
# Trefethen's bound for analytic integrands).  A piece that one panel covers
# with ``h S <= 1/64`` takes 4 points instead: ellipse parameter 64 (real half-axis
# ``32 h <= 1 / (2 S)``), ``Re phi`` within ``1/2 + 1/64 + 1/8``, error below
# ``(32 / 15) / 4095 * 2 * 1.9 * 64^-8 ~ 7e-18``.
#
# The integration ends at ``t_end`` where ``log G <= log G(d_(K-1)) + 2 log((1 -
# d_(K-1)) / (4M)) - 45``: every ``p_I >= G(d_I) (1 - d_I) / (4M)`` (the first ``(1 -
# d_I) / (2M)`` after ``d_I``, where ``G >= G(d_I) / 2``), every VJP kernel
# ``K_IJ >= G (1 - d)^2 / (16 M^2)`` likewise, and what lies beyond (``G`` and
# ``G / (1 - t + d_I)`` decrease) is below ``e^-45`` of each.  Close to ``t = 1`` the
# regions shrink geometrically until ``1 - t <= d_1 / 8``, where the end region
# (:meth:`_Wide._end_region`) takes the rest; rows that would need regions within
# ``2^-24`` of ``t = 1`` or more than ``_MAX_REGIONS`` regions are declined.

_RHO = 1.0 / 4
_C_REG = 64.0
_C_FAR = 256.0            # the same for regions without near groups
_NW = 16
_MAX_REGIONS = 4000
_CUT = 45.0
_SIG_MIN = 2.0 ** -24     # regions reaching this close to t = 1: declined
_NEAR_MAX = 1 << 13       # near groups per region (node tables ~ 4 x that x (R + 1)); half
                          # that for rows of <= 2^16 groups (fewer regions pay off only
                          # where each region's O(far groups x R) work is large)
_SPLIT_NEAR = 32          # regions with this many near groups end just past them (_Wide._regions)


_RULES_4_16 = tuple(np.concatenate([_rule(4)[i], _rule(_NW)[i]]) for i in (0, 2))   # nodes, weights
_RULES_4_16 += (np.log(_RULES_4_16[1]),)


def _csum(x):
    """Prefix sums along axis 0 with each addition's rounding error (TwoSum: exact in
    floating point) summed separately and added back: error ~2 eps of the sum of
    |terms| whatever the length (instead of up to ``length * eps``)."""
    s = np.cumsum(x, axis=0)
    if x.shape[0] > 1:
        prev, cur = s[:-1], s[1:]
        bb = cur - prev
        err = (prev - (cur - bb)) + (x[1:] - bb)
        s[1:] += np.cumsum(err, axis=0)
    return s


def _pow_rows(x, R, first=None, shift=False):
    """Rows ``first * x^r`` (r = 0..R; ``first`` 1 by default; ``shift``: ``first *
    x^(r+1)``) by repeated multiplication, the same products in the same order as a loop."""
    a = np.empty((R + 1,) + np.shape(x))
    if shift:
        np.multiply(1.0 if first is None else first, x, out=a[0])
    else:
        a[0] = 1.0 if first is None else first
    if a[0].size <= 256:
        # short rows: one call (accumulate runs its inner loop along axis 0, strided:
        # slow on long rows, which take the loop)
        a[1:] = x
        return np.multiply.accumulate(a, axis=0)
    for r in range(1, R + 1):
        np.multiply(a[r - 1], x, out=a[r])
    return a


def _moments(q, R, c):
    """``sum_J c_J q_J^(r+1)`` (r = 0..R): the rows of ``_pow_rows(q, R, c, shift=True)``
    summed (pairwise along each contiguous row).  Long ``q``: the same products in the
    same order and the same pairwise sum of each row, one row at a time (bit-identical;
    no (R + 1) x len(q) table streamed through memory twice)."""
    if q.size <= 2048:
        return _pow_rows(q, R, c, shift=True).sum(axis=1)
    out = np.empty(R + 1)
    pw = np.multiply(c, q)
    out[0] = pw.sum()
    for r in range(1, R + 1):
        np.multiply(pw, q, out=pw)
        out[r] = pw.sum()
    return out


def _log1m(z, x):
    """``log(1 - z)`` given ``z`` (non-increasing) and ``x = 1 - z`` formed as a sum of
    positives: ``log1p(-z)`` where ``z <= 1/2``, ``log(x)`` before (both to a few ulps)."""
    k = int(np.searchsorted(-z, -0.5, side="left"))        # z[:k] > 1/2
    out = np.empty_like(z)
    with np.errstate(divide="ignore"):
        np.log(x[:k], out=out[:k])
        np.log1p(-z[k:], out=out[k:])
    return out


class _Wide:
    """One row's groups (``d`` ascending, ``d[0] = 0``; weights ``w``) on the regions
    of the section comment above."""

    def __init__(self, d, w):
        self.d, self.w = d, w
        self.Mcum = np.cumsum(w)
        self.M = float(self.Mcum[-1])
        self.target = self._cut(d.size - 1)
        self.regions, self.ok = self._regions()

    def _cut(self, j):
        """``log G(d_j) + 2 log((1 - d_j) / (4M)) - 45``: below it ``G`` is negligible
        for group ``j`` and every group before it (section comment)."""
        d, w = self.d, self.w
        dj = d[j]
        lg = float(np.sum(w[:j] * _log1m(dj - d[:j], (1.0 - dj) + d[:j])))
        return lg + 2.0 * math.log((1.0 - dj) / (4.0 * self.M)) - _CUT

    def _slope(self, t):
        """``S(t) = sum_(d_J < t) w_J / (1 - t + d_J)``, ``-d log G / dt``."""
        k = int(np.searchsorted(self.d, t, side="left"))
        x = np.add(1.0 - t, self.d[:k])
        return float(np.sum(np.divide(self.w[:k], x, out=x)))

    def _far(self, a, jf, R, c=None):
        """``q_J = 1 / ((1 - a) + d_J)`` of the far groups and ``sum_far c_J q_J^r`` (r = 1..R+1)."""
        d = self.d[:jf]
        x = (1.0 - a) + d
        q = 1.0 / x
        c = self.w[:jf] if c is None else c
        return q, _moments(q, R, c)

    def _regions(self):
        """Regions ``(a, H, jf, log G(a))`` (``H`` None: the end region) and ok."""
        d, w = self.d, self.w
        last = d[-1]
        out = []
        cuts = {}
        a = 0.0
        near_max = _NEAR_MAX if d.size > 1 << 16 else _NEAR_MAX // 2
        jp, php = 0, 0.0          # the previous start's jf and plain log G (before any: log G <= 0)
        lm = 2.0 * math.log(4.0 * self.M)
        while True:
            sig = 1.0 - a
            jf = int(np.searchsorted(d, a, side="right"))
            # (decisions on a plain sum; the cut has a margin of e^45)
            lt = _log1m(a - d[:jf], sig + d[:jf])
            np.multiply(w[:jf], lt, out=lt)
            phi = float(np.sum(lt))
            if a > last and phi <= self.target:
                return out, True
            if jf < d.size:
                if jf not in cuts:
                    # the cut of group jf - 1 need not be formed (O(jf)) when phi is surely
                    # above it: if jf > jp, d_(jf-1) > the previous start (searchsorted
                    # right), so log G(d_(jf-1)) <= its log G (G decreases) and the cut <=
                    # php + 2 log((1 - d_(jf-1)) / (4M)) - 45.  Margin 1 + 1e-6 |php| covers
                    # the plain sums' rounding (<= K eps of the sum of |terms| plus M eps
                    # from the logs' arguments): the same decision as with the cut formed
                    dl = float(d[jf - 1])
                    ub = php + 2.0 * math.log1p(-dl) - lm - _CUT
                    if not (jf > jp and phi > ub + 1.0 + 1e-6 * abs(php)):
                        cuts[jf] = self._cut(jf - 1)
                jp, php = jf, phi
                if jf in cuts and phi <= cuts[jf]:
                    # nothing from a to the next breakpoint counts for the groups before
                    # it (G decreases): the next region starts there
                    a = float(d[jf])
                    continue
            if a > last and (d.size == 1 or sig <= d[1] / 8.0):
                # every group far and 1 - t below d_1 / 8: the end region (t to 1)
                out.append((a, None, jf, 0.0))
                return out, sig >= _SIG_MIN
            # H <= rho (1 - a), and H S(a + H) <= C (S increases with t: the drop of
            # log G across the region is at most H S(b))
            H = _RHO * sig
            S0 = self._slope(a + H)
            cap = _C_REG
            if jf <= _NEAR_MAX and (jf == d.size or d[jf] >= a + min(H, _C_FAR / S0)):
                # no near group (no binomial sums); few far ones (the drop lets rho and R
                # grow: the far tables are (R + 1) x jf)
                cap = _C_FAR
            if H * S0 > cap:
                H = cap / S0
            if jf + near_max < d.size and d[jf + near_max] < a + H:
                # at most near_max near groups (bounded node tables)
                H = float(d[jf + near_max]) - a
            jn = int(np.searchsorted(d, a + H, side="left"))
            if jn - jf >= _SPLIT_NEAR and float(d[jn - 1]) - a <= H / 4.0:
                # the near groups fill at most a quarter of the region: it ends just past
                # them (a smaller H is always allowed; ratio rho and so R fall with it)
                H = 1.25 * (float(d[jn - 1]) - a)
            b = a + H
            out.append((a, b - a, jf, _fsum(lt)))   # (exact: Sterbenz) next region starts at b
            if len(out) > _MAX_REGIONS or sig < _SIG_MIN:
                return out, False
            a = b

    def region(self, p):
        """Nodes of region ``p``: ``tau``, log weights, log G, ``S``; the far ``q``, near
        ``e``, the first node of each near piece and the powers ``tau^k``."""
        a, H, jf, phi = self.regions[p]
        if H is None:
            return self._end_region(a)
        d, w = self.d, self.w
        sig = 1.0 - a
        jn = int(np.searchsorted(d, a + H, side="left"))
        rho = H / sig
        R = int(min(40, max(2, math.ceil((math.log(self.M + 1.0) + 38.0) / -math.log(rho)))))
        q, Q = self._far(a, jf, R)
        e = d[jf:jn] - a
        wn = w[jf:jn]
        # near prefix sums E_q = sum_(j < i) wn_j e_j^q (q = 0..R), i = 0..len(e)
        powe = np.empty((e.size + 1, R + 1))
        powe[0] = 0.0
        powe[1:] = (_pow_rows(e, R) * wn).T
        Ecs = _csum(powe) if e.size else None
        # pieces between near breakpoints, split into equal panels; S at the piece's right
        # end (the group at that end counted) bounds S on the whole piece
        edges = np.concatenate([[0.0], e, [H]])
        width = np.diff(edges)
        cS = _piece_coefs(Ecs, Q, R, False)
        Send = np.einsum("pm,mp->p", cS, _pow_rows(edges[1:], R))      # S at each piece's right end
        # pieces whose one panel has h S <= 1/64 (and h <= (1 - t) / 64): 4 points;
        # others 16-point panels of h <= 4 / S and h <= (1 - t) / 6 (section comment)
        slope = np.maximum(Send, 1.0 / (sig - edges[1:]))
        npts = np.where(width * slope <= 1.0 / 32, 4, _NW)
        nsub = np.where(npts == 4, 1, np.maximum(1, np.ceil(width * np.maximum(Send / 8.0, 3.0 / (sig - edges[1:])))))
        nsub = nsub.astype(np.intp)
        panel = np.repeat(np.arange(width.size), nsub)          # piece of each panel
        first = np.concatenate([[0], np.cumsum(nsub)])[:-1]
        k = np.arange(panel.size) - first[panel]
        hs = width[panel] / nsub[panel]
        lo = edges[panel] + k * hs
        pp = npts[panel]                                        # points per panel
        cnt = np.repeat(panel, pp)                              # piece (near groups below) of each node
        pstart = np.concatenate([[0], np.cumsum(pp)])[:-1]
        j = np.arange(cnt.size) - np.repeat(pstart, pp)
        at = np.repeat(np.where(pp == 4, 0, 4), pp) + j       # into the stacked 4- and 16-point rules
        gx = _RULES_4_16[0][at]
        hn = np.repeat(hs, pp)
        tau = np.repeat(lo, pp) + hn * gx
        lw = np.repeat(np.log(hs), pp) + _RULES_4_16[2][at]
        start = np.concatenate([[0], np.cumsum(nsub * npts)])[:-1]   # first node of each piece
        tp = _pow_rows(tau, R)
        # phi - log G and S as polynomials in tau per piece (far moments plus the
        # binomial expansion of the near groups' (tau - e_J)^r), Horner at the nodes
        lrel = lw - _poly_at_nodes(_piece_coefs(Ecs, Q, R, True), cnt, tp)
        S = _poly_at_nodes(cS, cnt, tp)
        return {"tau": tau, "phi": phi, "lrel": lrel, "S": S, "q": q, "e": e, "start": start, "R": R,
                "jf": jf, "jn": jn, "tp": tp, "a": a, "cnt": cnt}

    def gamma(self, reg, c):
        """``sum_J c_J / (1 - t + d_J)`` at the nodes of ``reg`` over its far and near
        groups (``c``: one weight per group up to ``jn``)."""
        R, jf, e, tp = reg["R"], reg["jf"], reg["e"], reg["tp"]
        if "sig" in reg:                                   # end region: top group exactly
            cr = c[1:]
            q = reg["q"]
            Qc = np.empty(R + 1)
            pw = cr * q
            for r in range(R + 1):
                Qc[r] = pw.sum()
                pw = pw * q
            return c[0] / reg["sig"] + np.einsum("r,rp->p", Qc, tp)
        q = reg["q"]
        Qc = _moments(q, R, c[:jf])
        Ec = None
        if e.size:
            powc = np.empty((e.size + 1, R + 1))
            powc[0] = 0.0
            powc[1:] = (_pow_rows(e, R) * c[jf:]).T
            Ec = _csum(powc)
        return _poly_at_nodes(_piece_coefs(Ec, Qc, R, False), reg["cnt"], tp)

    def _end_region(self, a):
        """The last region, ``t`` from ``a`` to 1 (``sig = 1 - t`` from ``sig_e = 1 - a <=
        d_1 / 8`` down to 0; every group active): the top group's factor ``sig^(w_0)``
        exactly, the others expanded about ``t = 1`` (``tau = -sig``, ``q_J = 1 / d_J``,
        ratio ``sig / d_J <= 1/8``; alternating terms falling like ``8^-r``).

        Panels (16 points): steps of 8 in ``Psi(sig) = 2 (w_0 + 1) log sig + 2 M_r
        log(sig + d_1)`` (``M_r`` the other groups' weight), so a panel ``[lo, hi]``
        spans at most ``4 / (w_0 + 1)`` in ``log sig`` and ``h M_r <= 2 (hi + d_1)``.
        Every integrand is ``sig^k`` (``0 <= k <= w_0``; ``k = w_0 - 2`` only where
        ``w_0 >= 2``: a lone top group's ``A_0`` is not formed) times a function
        analytic for ``|sig| < d_1``.  On the Bernstein ellipse of parameter 8 (reach
        ``4.0625 h <= 2.03 hi <= d_1 / 4`` from the centre ``c``, crossing ``sig = 0``
        harmlessly) ``|z|^k / lo^k <= (1 + 2.53 (hi / lo - 1))^(w_0) <= e^10.2``; the
        other factors' log grows by at most ``5.0625 h M_r / (lo + d_1) <= 11.4`` over
        their panel minimum, the kernels ``1 / (sig + d_J)`` (J >= 1) by 1.51 each: the
        rule's error is below ``(32 / 15) / 63 * 8^-32 * e^21.6 * 2.3 ~ 2.4e-21`` of the
        panel's integral.
        They stop where ``log G`` falls below the cut (found on a grid of
        ``sig_e 2^(-j/4)``, the last panel ending at 0 beyond it dropped)."""
        d, w = self.d, self.w
        sig_e = 1.0 - a
        w0 = float(w[0])
        dr, wr = d[1:], w[1:]
        Mr = float(wr.sum())
        d1 = float(dr[0]) if dr.size else 1.0
        rho = sig_e / d1
        R = int(min(40, max(2, math.ceil((math.log(self.M + 1.0) + 38.0) / -math.log(max(rho, 1e-300))))))
        q = 1.0 / dr
        Q = np.empty(R + 1)
        pw = wr * q
        for r in range(R + 1):
            Q[r] = pw.sum()
            pw = pw * q
        phi = _fsum(wr * np.log(dr))

        def log_g(sg):
            tau = -sg
            acc = np.zeros_like(sg)
            tk = np.ones_like(sg)
            for r in range(1, R + 1):
                tk = tk * tau
                acc += tk * Q[r - 1] / r
            with np.errstate(divide="ignore"):
                return w0 * np.log(sg) + phi - acc

        grid = sig_e * np.exp2(-np.arange(0, 4 * 200) / 4.0)
        below = np.flatnonzero(log_g(grid) <= self.target)
        sig_min = grid[below[0]] if below.size else grid[-1]

        def psi(sg):
            return 2.0 * (w0 + 1.0) * np.log(sg) + 2.0 * Mr * np.log(sg + d1)

        npan = int(math.ceil((psi(sig_e) - psi(sig_min)) / 8.0))
        target = psi(sig_e) - 8.0 * np.arange(1, npan + 1, dtype=float)
        # invert Psi (increasing, convex in log sig): Newton in log sig from above
        u = np.full(npan, math.log(sig_e))
        for _ in range(60):
            sg = np.exp(u)
            f = psi(sg) - target
            step = f / (2.0 * (w0 + 1.0) + 2.0 * Mr * sg / (sg + d1))
            u = u - step
            if np.all(np.abs(step) <= 1e-15 * np.maximum(1.0, np.abs(u))):
                break
        edges = np.concatenate([[sig_e], np.exp(u)])            # descending
        hi, lo_ = edges[:-1], edges[1:]
        gx, _, gw = _rule(_NW)
        sg = (lo_[:, None] + (hi - lo_)[:, None] * gx).ravel()
        lw = np.log(((hi - lo_)[:, None] * gw).ravel())
        tau = -sg
        tp = np.empty((R + 1, sg.size))
        tp[0] = 1.0
        for r in range(1, R + 1):
            tp[r] = tp[r - 1] * tau
        lrel = lw + (log_g(sg) - phi)
        S = w0 / sg + np.einsum("r,rp->p", Q, tp)
        return {"tau": tau, "phi": phi, "lrel": lrel, "S": S, "q": q, "e": np.zeros(0), "start": np.zeros(1, np.intp),
                "R": R, "jf": d.size, "jn": d.size, "tp": tp, "sig": sg}

    @staticmethod
    def kernel(reg, v, i0=0):
        """``sum_(nodes t > d_I) v_t / (1 - t + d_I)`` of this region for its far groups
        ``i0 <= I < jf`` and its near groups ``jf <= I < jn``; ``v`` (P,) or several node
        weight sets (s, P) at once (results (..., groups))."""
        R, tp, q, e = reg["R"], reg["tp"], reg["q"], reg["e"]
        top = "sig" in reg                                     # end region: the top group exactly
        if e.size:
            # per-piece node moments, then their compensated suffix sums over the pieces:
            # the first is the region's moment m_k, the others serve the near groups
            per = np.add.reduceat(tp * v[..., None, :], reg["start"], axis=-1)   # (..., R + 1, pieces)
            suf = _csum(np.moveaxis(per, -1, 0)[::-1])[::-1]                  # (pieces, ..., R + 1)
            m = suf[0]
        else:
            m = np.einsum("rp,...p->...r", tp, v)              # node moments (..., R + 1)
        qs = q[max(i0 - 1, 0):] if top else q[i0:]
        # sum_k q^(k+1) m_k (positive terms for the probabilities; signed weight sets:
        # within ~2 (R + 1) eps of the sum of |terms|): few groups, the powers' rows times
        # the moments (one call); many, Horner in q (no (R + 1) x groups table)
        if qs.size <= 256:
            far = np.einsum("...k,kj->...j", m, _pow_rows(qs, R, shift=True))
        else:
            far = np.zeros(v.shape[:-1] + qs.shape)
            for kk in range(R, -1, -1):
                far += m[..., kk, None]
                far *= qs
        empty = np.zeros(v.shape[:-1] + (0,))
        if top:
            if i0 == 0:
                far = np.concatenate([np.sum(v / reg["sig"], axis=-1)[..., None], far], axis=-1)
            return far, empty
        if e.size == 0:
            return far, empty
        # near I (breakpoint at the start of piece I - jf + 1): the moments of the pieces
        # after it
        Sq = suf[1:]                                                      # (ne, ..., R + 1)
        # sum_k (tau - e)^k = sum_q Sq_q c_q(e),  c_q(e) = sum_(j <= R - q) C(q+j, q) (-e)^j
        cq = np.einsum("ji,jq->iq", _pow_rows(-e, R), _shift_matrix(R))     # (-e)^j C(q+j, q)
        near = np.moveaxis(np.einsum("iq,i...q->i...", cq, Sq), 0, -1)
        return far, near


def _coef_matrix(R, log):
    """``A[q, m]``: the coefficient of ``tau^m`` contributed by the near moment ``E_q``:
    ``(-1)^q C(m+q, q) / (m+q)`` (``log``: terms of ``-log(1 - u) = sum_r u^r / r``,
    ``1 <= m + q <= R``) or ``(-1)^q C(m+q, q)`` (``1 / (1 - u) = sum_k u^k``, ``m + q <= R``)."""
    key = (R, log)
    A = _COEF.get(key)
    if A is None:
        A = np.zeros((R + 1, R + 1))
        for qq in range(R + 1):
            for m in range(R + 1 - qq):
                r = m + qq
                if log and r == 0:
                    continue
                A[qq, m] = (-1) ** qq * math.comb(r, qq) / (r if log else 1)
        A = _COEF[key] = A
    return A


_COEF: dict = {}


def _shift_matrix(R):
    """``B[j, q] = C(q + j, q)`` for ``q + j <= R`` (0 beyond)."""
    B = _COEF.get(("shift", R))
    if B is None:
        B = np.zeros((R + 1, R + 1))
        for j in range(R + 1):
            for qq in range(R + 1 - j):
                B[j, qq] = math.comb(qq + j, qq)
        B = _COEF[("shift", R)] = B
    return B


def _piece_coefs(Ecs, Q, R, log):
    """Per piece (rows) the coefficients of ``tau^m`` (m = 0..R) of ``phi - log G``
    (``log``) or of ``sum_J c_J / (1 - t + d_J)``: far part from the moments ``Q``
    (``Q[r] = sum c q^(r+1)``), near part from the prefix sums ``Ecs`` (None: none)."""
    far = np.zeros(R + 1)
    if log:
        far[1:] = Q[:R] / np.arange(1, R + 1)
    else:
        far[:] = Q[:R + 1]
    if Ecs is None:
        return far[None]                                  # one piece
    return np.einsum("pq,qm->pm", Ecs, _coef_matrix(R, log)) + far


def _horner(coef, cnt, tau):
    """``sum_m coef[cnt, m] tau^m`` at every node."""
    if coef.shape[0] == 1 or coef.strides[0] == 0:     # one piece (or no near group)
        c = coef[0]
        out = np.full_like(tau, c[-1])
        for m in range(coef.shape[1] - 2, -1, -1):
            out *= tau
            out += c[m]
        return out
    ct = np.ascontiguousarray(coef.T)                 # (R + 1, pieces): one column per step
    out = ct[-1][cnt]
    for m in range(coef.shape[1] - 2, -1, -1):
        out *= tau
        out += ct[m][cnt]
    return out


def _poly_at_nodes(coef, cnt, tp):
    """``sum_m coef[cnt, m] tau^m`` at every node from the powers ``tp`` (R + 1, P): one
    gather and one contraction (each term bounded by the same sum of |terms| as in
    Horner's scheme)."""
    if coef.shape[0] == 1 or coef.strides[0] == 0:     # one piece (or no near group)
        return np.einsum("r,rp->p", np.ascontiguousarray(coef[0]), tp)
    if tp.shape[1] > 1 << 14:                          # long tables: Horner (fewer passes)
        return _horner(coef, cnt, tp[1])
    return np.einsum("rp,rp->p", np.ascontiguousarray(coef.T)[:, cnt], tp)


def _fsum(t):
    """Sum of ``t`` with every addition's rounding error added back (:func:`_csum`): a
    few ulps of the result for one-signed terms (``log G(a)`` reaches -1e4 and below;
    numpy's pairwise sum could be off by ``log2(K)`` ulps of it)."""
    if t.size <= 1:
        return float(t[0]) if t.size else 0.0
    # the last entry of _csum(t), the same operations in the same order (bit-identical),
    # without forming the corrected prefix sums before it; temporaries reused in place
    s = np.cumsum(t)
    prev, cur = s[:-1], s[1:]
    bb = cur - prev
    err = cur - bb
    np.subtract(prev, err, out=err)
    np.subtract(t[1:], bb, out=bb)
    np.add(err, bb, out=err)
    return float(s[-1] + np.cumsum(err, out=err)[-1])


def _scaled(reg):
    """``(lam, v)``: the region's largest ``log(w G)`` and ``w G e^-lam`` at its nodes;
    ``log G(a)`` (``phi``, large) enters ``lam`` alone, so ``v`` is formed from the
    small node-relative logs."""
    m = float(reg["lrel"].max())
    return reg["phi"] + m, np.exp(reg["lrel"] - m)


class _Acc:
    """Per-group sums of positive region contributions ``e^lam x``, kept linear relative
    to a reference per group: the running minimum of ``lam`` up to the group's first
    region (non-increasing along the groups; a later region's ``lam`` exceeds it by at
    most the drop across one region plus the spread of the panel weights, far from
    overflow).  Groups whose reference lies more than 800 above a region's ``lam`` get
    nothing from it (its terms are below ``e^-800`` of their own: zeros in float64):
    they form a prefix, skipped."""

    def __init__(self, K):
        self.ref = np.full(K, np.inf)
        self.acc = np.zeros(K)
        self.seen = 0
        self.low = np.inf

    def start(self, lam, jn):
        """Register region ``lam`` for groups up to ``jn``; the first group it reaches."""
        self.low = min(self.low, lam)
        if jn > self.seen:
            self.ref[self.seen:jn] = self.low
            self.seen = jn
        return int(np.searchsorted(-self.ref[:jn], -(lam + 800.0), side="right"))

    def add(self, lam, i0, jf, far, near):
        with np.errstate(under="ignore"):
            self.acc[i0:jf] += np.exp(lam - self.ref[i0:jf]) * far
            self.acc[jf:jf + near.size] += np.exp(lam - self.ref[jf:jf + near.size]) * near

    def log(self):
        with np.errstate(divide="ignore"):
            return np.log(self.acc) + self.ref


_KEEP = 1 << 19           # node-table entries a VJP keeps from the probabilities' pass


def _wide_log_probs(W, keep=None):
    """Group log-probabilities (K,) of a :class:`_Wide` row, renormalised, and ok;
    ``keep`` (a list): the regions' node tables are appended while they fit in _KEEP
    entries (the VJP's second pass reuses them)."""
    acc = _Acc(W.d.size)
    size = 0
    for p in range(len(W.regions)):
        reg = W.region(p)
        if keep is not None:
            size += reg["tp"].size + 4 * reg["tau"].size + reg["q"].size     # every kept array
            if size <= _KEEP:
                keep.append(reg)
        lam, v = _scaled(reg)
        i0 = acc.start(lam, reg["jn"])
        far, near = _Wide.kernel(reg, v, i0)
        acc.add(lam, i0, reg["jf"], far, near)
    return _normalized(W, acc.log())


def _normalized(W, lp):
    """``(log p - log sum p, ok)``: ok when the sum is 1 within ``_SUM_TOL``."""
    with np.errstate(divide="ignore"):
        lt = lp + np.log(W.w)
    mx = lt.max()
    tot = mx + math.log(np.exp(lt - mx).sum())
    ok = bool(W.ok and math.isfinite(tot) and abs(tot) <= _SUM_TOL)
    return lp - tot, ok


def _wide_groups(yr):
    """Distinct active gaps ``d`` (ascending, ``d[0] = 0``), weights, active columns and
    their group index of one row."""
    d = yr.max() - yr
    cols = np.flatnonzero(d < 1.0)
    vals, inv, cnt = np.unique(d[cols], return_inverse=True, return_counts=True)
    return vals, cnt.astype(np.float64), cols, inv


def _row_groups(grp, r):
    """:func:`_wide_groups` of row ``r`` read from the batch's :func:`_groups` (the same
    values, weights and column-to-group map; columns in order of ``d``, ties in column
    order, so per-group sums over columns run in the same order)."""
    gd, gw, cols, gid, cnt = grp
    k = int(cnt[r])
    K = int(np.count_nonzero(gw[r]))
    return gd[r, :K], gw[r, :K], cols[r, :k], gid[r, :k]


def _wide_vjp(W, lpg, C, qt, log, kept=()):
    """``g_e A_E - B_E`` per group pieces: returns (lA (K,), B (K,), accP) with
    ``A_E = int G h_E S`` (log) and ``B_E = int G h_E Gamma`` (``Gamma`` from the group
    cotangent sums ``C`` shifted by ``qt``; ``log``: ``C_J / p_J``, ``lpg`` given).
    ``probs`` (not ``log``) needs no probabilities: they are summed in the same pass
    (``accP``, for the sum check)."""
    K = W.d.size
    accA = _Acc(K)
    accP = None if log else _Acc(K)
    B = np.zeros(K)
    lone = W.w[0] == 1.0
    for p in range(len(W.regions)):
        reg = kept[p] if p < len(kept) else W.region(p)
        jf, jn = reg["jf"], reg["jn"]
        lam, v = _scaled(reg)
        if log:
            # gamma_J e^-lam... kept at the true scale: C_J G / p_J is bounded
            om = C[:jn] * np.exp(lam - lpg[:jn]) - W.w[:jn] * qt * math.exp(lam)
        else:
            om = C[:jn] - W.w[:jn] * qt
        if lone:
            om[0] = 0.0
        # one kernel pass for the weight sets: A (v S), B (v Gamma) and, for probs, p (v)
        iA = accA.start(lam, jn)
        # B: probs at the region's scale e^lam (negligible below the groups' own, as for
        # A); log_probs at the true scale (C_J G / p_J is O(1) for late groups J)
        iB = 0 if log else iA
        sets = [v * reg["S"], v * W.gamma(reg, om)]
        starts = [iA, iB]
        if accP is not None:
            sets.append(v)
            starts.append(accP.start(lam, jn))
        i0 = min(starts)
        far, near = _Wide.kernel(reg, np.stack(sets), i0)     # far[k][j] <-> group i0 + j
        accA.add(lam, iA, jf, far[0][iA - i0:], near[0])
        sB = 1.0 if log else math.exp(lam)
        B[iB:jf] += sB * far[1][iB - i0:]
        B[jf:jn] += sB * near[1]
        if accP is not None:
            accP.add(lam, starts[2], jf, far[2][starts[2] - i0:], near[2])
    return accA.log(), B, accP


def _wide_row_log_probs(yr, groups=None):
    """``(log p (n,), ok)`` of one row by the region engine (``groups``: its
    :func:`_wide_groups` if already formed).

    >>> import numpy as np
    >>> lp, ok = _wide_row_log_probs(np.array([0.0, 0.0, -0.5]))
    >>> np.exp(lp).round(15).tolist(), ok       # 1/2 - 1/48 twice, 1/24
    ([0.479166666666667, 0.479166666666667, 0.041666666666667], True)
    """
    d, w, cols, inv = _wide_groups(yr) if groups is None else groups
    out = np.full(yr.size, -np.inf)
    W = _Wide(d, w)
    if not W.ok:
        return out, False
    lp, ok = _wide_log_probs(W)
    out[cols] = lp[inv]
    return out, ok


def _wide_row_vjp(yr, gr, log, groups=None):
    """``(J^T g (n,), ok)`` of one row by the region engine (``log``: of ``log p``):
    ``v_e = (g_e - g_t) A_E - B_E`` with the cotangent shifted by that of a top entry
    ``t`` (module docstring; for ``log``, ``g = c / p`` formed in log space).

    >>> import numpy as np
    >>> v, ok = _wide_row_vjp(np.array([0.0, -0.5, -2.0]), np.array([1.0, 0.0, 0.0]), False)
    >>> v.round(15).tolist()                     # d(1 - (1 - d)^2 / 2) = (1 - d) dd
    [0.5, -0.5, 0.0]
    """
    d, w, cols, inv = _wide_groups(yr) if groups is None else groups
    out = np.zeros(yr.size)
    W = _Wide(d, w)
    if not W.ok:
        return out, False
    ge = gr[cols]
    t = int(np.flatnonzero(inv == 0)[0])
    C = np.zeros(d.size)
    np.add.at(C, inv, ge)
    if log:
        kept = []
        lpg, ok = _wide_log_probs(W, kept)
        qt = ge[t] * math.exp(-lpg[0])
        lA, B, _ = _wide_vjp(W, lpg, C, qt, log, kept)
    else:
        qt = ge[t]
        lA, B, accP = _wide_vjp(W, None, C, qt, log)
        ok = _normalized(W, accP.log())[1]
    lAe = lA[inv]
    with np.errstate(over="ignore", invalid="ignore"):
        if log:
            first = ge * np.exp(lAe - lpg[inv]) - qt * np.exp(lAe)
        else:
            first = (ge - qt) * np.exp(lAe)
        if w[0] == 1.0:
            first[inv == 0] = 0.0
        v = first - B[inv]
    out[cols] = v
    return out, ok and bool(np.isfinite(v).all())
