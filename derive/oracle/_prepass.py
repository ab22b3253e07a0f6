"""Float64 reconnaissance: where does each integrand keep its mass?

Nothing computed here ends up in a returned value: it only chooses the
breakpoints of the mpmath quadrature, the tail cuts and the tolerances.

For the standardized, shifted scores ``d_u <= 0`` (``max d = 0``) and the
log-integrand of class ``u`` in max-CDF form

    l_u(x) = log phi(x - d_u) + sum_{v != u} log Phi(x - d_v),

we evaluate ``l_u`` on a grid (uniform near the scores, geometric in the
tails), and read off per class the mode ``m_u``, the distances ``wl, wr``
at which ``l_u`` has dropped by 1 from its peak, the hull where it is within
``T`` of its peak, and a rough ``log p_u`` (trapezoid).  The bounds

    int_{-inf}^{L} phi(x - d_u) prod_{v != u} Phi(x - d_v) dx <= F(L),
    int_{R}^{inf}  phi(x - d_u) prod_{v != u} Phi(x - d_v) dx <= 1 - Phi(R - d_u),

(``F = prod_v Phi(x - d_v)``; both because every ``Phi <= 1`` is increasing)
give ``L, R`` beyond which every class holds less than ``e^-T2`` of its
mass; breakpoints are placed inside ``[L, R]`` only, the end pieces of the
quadrature still reach +-inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .errors import OracleError

__all__ = ["Recon", "reconnoitre", "soft_breakpoints"]


@dataclass
class Recon:
    modes: np.ndarray
    wl: np.ndarray
    wr: np.ndarray
    hull_lo: np.ndarray
    hull_hi: np.ndarray
    logp: np.ndarray
    peak: np.ndarray
    L: float
    R: float


def _grid(dmin, lo, hi, n_unique):
    C = 40.0
    a, b = dmin - C, C
    if math.isfinite(lo):
        a = max(a, lo)
    if math.isfinite(hi):
        b = min(b, hi)
    K = int(min(6000, max(400, 3_000_000 // max(n_unique, 1)), max(400, (b - a) / 0.02)))
    parts = [np.linspace(a, b, K)]
    if not math.isfinite(lo):
        parts.append(a - np.logspace(-1, 300, 400))
    if not math.isfinite(hi):
        parts.append(b + np.logspace(-1, 300, 400))
    return np.unique(np.concatenate(parts))


def reconnoitre(kern, df, mult, targets, T, T2, label) -> Recon:
    """Locate the mass of every target integrand (see the module docstring)."""
    lo = float(kern.lo)
    hi = float(kern.hi)
    X = _grid(float(df.min()), lo, hi, len(df))
    bps = [float(b) for b in kern.breakpoints]
    if bps:
        extra = (df[:, None] + np.array(bps)[None, :]).ravel()
        extra = extra[(extra >= X[0]) & (extra <= X[-1])]
        X = np.unique(np.concatenate([X, extra]))
    G = len(X)
    with np.errstate(all="ignore"):
        Y = X[None, :] - df[:, None]
        LC = np.asarray(kern.flogcdf(Y), dtype=np.float64)
        isinf = np.isnan(LC) | (LC == -np.inf)
        ninf = (mult[:, None] * isinf).sum(axis=0)
        S = (mult[:, None] * np.where(isinf, 0.0, LC)).sum(axis=0)
        inf_t = isinf[targets]
        other = ninf[None, :] - inf_t
        rest = np.where(other > 0, -np.inf, S[None, :] - np.where(inf_t, 0.0, LC[targets]))
        LP = np.asarray(kern.flogpdf(Y[targets]), dtype=np.float64)
        ell = LP + rest
        ell[np.isnan(ell)] = -np.inf
    peak = ell.max(axis=1)
    if not np.all(np.isfinite(peak)):
        bad = int(np.argmin(np.isfinite(peak)))
        raise OracleError(
            f"{label}: could not locate the mass of the integrand of class {int(targets[bad])} "
            "(scores too far apart for the float64 reconnaissance)"
        )
    k = ell.argmax(axis=1)
    w = np.empty(G)
    w[1:-1] = (X[2:] - X[:-2]) / 2
    w[0] = (X[1] - X[0]) / 2
    w[-1] = (X[-1] - X[-2]) / 2
    with np.errstate(divide="ignore"):
        logp = logsumexp(ell + np.log(w)[None, :], axis=1)
    inside = ell >= peak[:, None] - T
    first = inside.argmax(axis=1)
    last = G - 1 - inside[:, ::-1].argmax(axis=1)
    hull_lo = X[np.maximum(first - 1, 0)]
    hull_hi = X[np.minimum(last + 1, G - 1)]
    modes = X[k]
    low1 = ell < peak[:, None] - 1.0
    wl = np.empty(len(targets))
    wr = np.empty(len(targets))
    for i in range(len(targets)):
        ki = k[i]
        left = np.nonzero(low1[i, :ki])[0]
        right = np.nonzero(low1[i, ki + 1 :])[0]
        wl[i] = modes[i] - (X[left[-1]] if len(left) else hull_lo[i])
        wr[i] = (X[ki + 1 + right[0]] if len(right) else hull_hi[i]) - modes[i]
    tiny = 1e-12 * max(1.0, float(np.abs(df).max()))
    wl = np.maximum(wl, tiny)
    wr = np.maximum(wr, tiny)

    # --- tail cuts (monotone bounds, see the module docstring) ---
    with np.errstate(all="ignore"):
        logF = np.where(ninf > 0, -np.inf, S)
    if math.isfinite(lo):
        L = lo
    else:
        ok = np.nonzero(logF <= logp.min() - T2)[0]
        L = float(X[ok[-1]]) if len(ok) else float(X[0])
    if math.isfinite(hi):
        R = hi
    else:
        with np.errstate(all="ignore"):
            LS = np.asarray(kern.flogsf(X[None, :] - df[targets][:, None]), dtype=np.float64)
            LS[np.isnan(LS)] = 0.0
        good = (LS - logp[:, None] <= -T2).all(axis=0)
        bad = np.nonzero(~good)[0]
        j = (bad[-1] + 1) if len(bad) else 0
        R = float(X[min(j, G - 1)])
    hull_lo = np.clip(hull_lo, L, R)
    hull_hi = np.clip(hull_hi, L, R)
    return Recon(modes, wl, wr, hull_lo, hull_hi, logp, peak, L, R)


def soft_breakpoints(rc: Recon, max_points: int = 3000) -> np.ndarray:
    """Breakpoints around every mode: ``m +- w 2^k`` up to the tail cuts, thinned.

    A point is kept when it is at least the local spacing
    ``s(x) = min_u max(w_u, |x - m_u| / 2)`` away from the previous one, so
    pieces are about one width long at the modes and grow geometrically
    into the tails (which suits both Gaussian and algebraic decay).
    """
    lo_lim = max(rc.L, float(np.min(rc.modes - 4096 * rc.wl)))
    hi_lim = min(rc.R, float(np.max(rc.modes + 4096 * rc.wr)))
    pts = [lo_lim, hi_lim]
    # Up to the tail cuts, not just the hull: a heavy tail (cauchy) holds
    # mass far beyond the point where the integrand is 1e-50 of its peak,
    # and a single long piece would put every node where it is negligible.
    for m, wl, wr, a, b in zip(rc.modes, rc.wl, rc.wr, rc.hull_lo, rc.hull_hi):
        pts.append(m)
        s = wr
        while m + s < hi_lim:
            pts.append(m + s)
            s *= 2
        pts.append(b)
        s = wl
        while m - s > lo_lim:
            pts.append(m - s)
            s *= 2
        pts.append(a)
    pts = np.unique(np.clip(np.array(pts, dtype=np.float64), lo_lim, hi_lim))
    w = np.minimum(rc.wl, rc.wr)
    need = np.empty(len(pts))
    for s in range(0, len(pts), 2000):
        chunk = pts[s : s + 2000]
        need[s : s + 2000] = np.maximum(w[None, :], np.abs(chunk[:, None] - rc.modes[None, :]) / 2).min(axis=1)
    return np.array(_thin_breakpoints(pts, need, max_points))


# --------------------------------------------------------------------------
# mpmath reconnaissance, for spreads the float64 scan cannot resolve
# (|d| > ~1e5: unit widths at 1e300 are below a float's ulp, and normal
# log-integrands ~ -d^2/2 overflow float64 beyond |d| ~ 1e154).
# Same outputs as :func:`reconnoitre`, as mpf lists; nothing here ends up in
# a returned value either.
# --------------------------------------------------------------------------

#: families whose density and CDF are log-concave: every l_u is concave,
#: so one golden-section search finds its (unique) mode.
_LOG_CONCAVE = {"gumbel", "gumbel_min", "normal", "logistic", "laplace", "exponential", "uniform"}


def _ell_mp(kern, D, mult, t):
    """x -> l_t(x) = log phi(x - d_t) + sum_v m_v log Phi(x - d_v) - log Phi(x - d_t) (mpf or -inf)."""
    import mpmath as mp

    ninf = mp.ninf

    def f(x):
        lp = kern.logpdf(x - D[t])
        if lp == ninf:
            return ninf
        s = lp
        for v, (d, m) in enumerate(zip(D, mult)):
            k = m - 1 if v == t else m
            if k == 0:
                continue
            c = kern.logcdf(x - d)
            if c == ninf:
                return ninf
            s += k * c
        return s

    return f


def _golden_max(f, a, b, tol):
    """Golden-section search for a maximum of ``f`` on [a, b] (to ``tol``)."""
    import mpmath as mp

    g = (mp.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(20000):
        if b - a <= tol(c):
            break
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (c, fc) if fc >= fd else (d, fd)


def _drop_distance(f, m, peak, drop, sign, limit):
    """Distance s > 0 from ``m`` (direction ``sign``) where ``f`` first falls
    ``drop`` below ``peak``: doubling, then 40 bisections; capped at ``limit``."""
    import mpmath as mp

    s = mp.mpf(2) ** -10
    while True:
        if s >= limit:
            return limit
        if not f(m + sign * s) >= peak - drop:
            break
        s *= 2
    lo, hi = s / 2, s
    for _ in range(40):
        mid = (lo + hi) / 2
        if f(m + sign * mid) >= peak - drop:
            lo = mid
        else:
            hi = mid
    return hi


def _doubling_cut(start, sign, beyond):
    """The first ``x = start + sign 2^k`` (k = 0, 1, ...) with ``beyond(x)``, or the
    one past ``2^4000`` (mpmath, for the tail cuts of :func:`reconnoitre_mp`)."""
    import mpmath as mp

    s = mp.mpf(1)
    cap = mp.mpf(2) ** 4000
    while True:
        x = start + sign * s
        if beyond(x) or s > cap:
            return x
        s *= 2


def reconnoitre_mp(kern, D, mult, targets, T, T2, label) -> Recon:
    """mpmath version of :func:`reconnoitre` (current precision, ``D`` sorted mpf, max 0).

    Modes by golden-section search (on the whole range for log-concave
    families, otherwise on every gap between consecutive scores and keeping
    the best), widths where ``l`` drops by 1, hulls where it drops by ``T``
    (doubling + bisection), ``log p ~ peak + log(wl + wr)`` (the quadrature
    re-tightens its tolerances if this is too high), tail cuts by the same
    monotone bounds as the float version.
    """
    import mpmath as mp

    lo, hi = kern.lo, kern.hi
    C = mp.mpf(64)
    a0 = D[0] - C if mp.isinf(lo) else lo
    b0 = C if mp.isinf(hi) else hi
    if kern.name in _LOG_CONCAVE and not kern.custom:
        intervals = [(a0, b0)]
    else:
        edges = [a0] + [d for d in D if a0 < d < b0] + [b0]
        intervals = list(zip(edges[:-1], edges[1:]))
    tol = lambda x: mp.mpf(2) ** -14 * (1 + 0 * x)
    modes, wl, wr, hl, hh, logp, peaks = [], [], [], [], [], [], []
    for t in targets:
        f = _ell_mp(kern, D, mult, int(t))
        best = None
        for a, b in intervals:
            m, pk = _golden_max(f, a, b, tol)
            if best is None or pk > best[1]:
                best = (m, pk)
        m, pk = best
        if pk == mp.ninf:
            raise OracleError(f"{label}: could not locate the mass of the integrand of class {int(t)}")
        room_l = m - lo if not mp.isinf(lo) else mp.inf
        room_r = hi - m if not mp.isinf(hi) else mp.inf
        big = mp.mpf(2) ** 4000
        l1 = _drop_distance(f, m, pk, 1, -1, min(room_l, big))
        r1 = _drop_distance(f, m, pk, 1, +1, min(room_r, big))
        tiny = mp.mpf(2) ** -20
        l1, r1 = max(l1, tiny), max(r1, tiny)
        lT = _drop_distance(f, m, pk, T, -1, min(room_l, big))
        rT = _drop_distance(f, m, pk, T, +1, min(room_r, big))
        modes.append(m)
        wl.append(l1)
        wr.append(r1)
        hl.append(m - lT)
        hh.append(m + rT)
        peaks.append(pk)
        logp.append(pk + mp.log(l1 + r1))
    # --- tail cuts: F(L) <= min p e^-T2 and 1 - Phi(R - d_t) <= p_t e^-T2 ---
    minlogp = min(logp)
    if not mp.isinf(lo):
        L = lo
    else:
        L = _doubling_cut(min(modes), -1, lambda x: mp.fsum(k * kern.logcdf(x - d) for d, k in zip(D, mult))
                          <= minlogp - T2)
    if not mp.isinf(hi):
        R = hi
    else:
        R = _doubling_cut(max(modes), +1, lambda x: all(kern.logsf(x - D[int(t)]) - lp_ <= -T2
                                                        for t, lp_ in zip(targets, logp)))
    hl = [min(max(v, L), R) for v in hl]
    hh = [min(max(v, L), R) for v in hh]
    return Recon(modes, wl, wr, hl, hh, logp, peaks, L, R)


def soft_breakpoints_mp(rc: Recon, scores=(), max_points: int = 20000):
    """mpmath version of :func:`soft_breakpoints`, reaching the tail cuts.

    Centres: every mode (its widths) and every score ``d_v`` (width 1, the
    standardized scale: the kinks of ``Phi(x - d_v)`` are there).  From each
    centre, points ``c +- w 2^k`` up to the tail cuts ``L, R`` -- with a huge
    spread a heavy-tailed integrand keeps mass at every scale between the
    scores (cauchy: half of the loser's mass lies at distances ~ the spread),
    and one end piece mapped to [-1, 1] would never see it.  Thinned by the
    local spacing ``min_c max(w_c, |x - c| / 2)`` as in the float version.
    """
    import mpmath as mp

    lo_lim, hi_lim = rc.L, rc.R
    cen = [(m, a, b) for m, a, b in zip(rc.modes, rc.wl, rc.wr)]
    cen += [(d, mp.mpf(1), mp.mpf(1)) for d in scores if lo_lim < d < hi_lim]
    pts = [lo_lim, hi_lim] + list(rc.hull_lo) + list(rc.hull_hi)
    for m, wl, wr in cen:
        pts.append(m)
        s = wr
        while m + s < hi_lim:
            pts.append(m + s)
            s *= 2
        s = wl
        while m - s > lo_lim:
            pts.append(m - s)
            s *= 2
    pts = sorted({min(max(x, lo_lim), hi_lim) for x in pts})
    w = [min(a, b) for _, a, b in cen]
    cs = [c for c, _, _ in cen]
    need = [min(max(wu, abs(x - c) / 2) for wu, c in zip(w, cs)) for x in pts]
    return _thin_breakpoints(pts, need, max_points)


def _thin_breakpoints(pts, need, max_points):
    """Drop candidate breakpoints closer than the local resolution ``need``.

    ``pts`` is sorted; a point is kept when its distance to the last kept
    point is at least the smaller of the two points' ``need``.  The last
    candidate (the range end) is always kept.
    """
    kept = [pts[0]]
    kneed = need[0]
    for x, nd in zip(pts[1:], need[1:]):
        if x - kept[-1] >= min(nd, kneed):
            kept.append(x)
            kneed = nd
    if kept[-1] != pts[-1]:
        kept[-1] = pts[-1]
    if len(kept) > max_points:
        raise OracleError(f"too many breakpoints ({len(kept)}) for the integration range")
    return kept
