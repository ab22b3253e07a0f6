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

__all__ = ["LOG_CONCAVE", "Recon", "reconnoitre", "soft_breakpoints"]

#: registry families whose density and CDF are log-concave: every l_u is
#: concave, so its mass is one hump around its unique mode.
LOG_CONCAVE = frozenset({"gumbel", "gumbel_min", "normal", "logistic", "laplace", "exponential", "uniform"})


@dataclass
class Recon:
    """Where the integrands keep their mass.

    Per located local maximum (any target): ``modes``, ``wl``, ``wr``.  Per
    target: ``hull_lo``, ``hull_hi``, ``logp``, ``peak``.  ``L``, ``R``: the
    tail cuts.
    """

    modes: np.ndarray
    wl: np.ndarray
    wr: np.ndarray
    hull_lo: np.ndarray
    hull_hi: np.ndarray
    logp: np.ndarray
    peak: np.ndarray
    L: float
    R: float


#: grid spacing at distance s from the nearest score: max(h0, s / _GRADE)
_GRADE = 8.0
#: the graded grid reaches _REACH standardized units beyond the extreme scores
_REACH = 40.0


def _offsets(h0, smax):
    """Offsets ``0 = s_0 < s_1 < ... <= smax`` with ``s_{k+1} = s_k + max(h0, s_k / _GRADE)``."""
    lin = h0 * np.arange(int(_GRADE) + 1)
    if smax <= lin[-1]:
        return lin[lin <= smax]
    r = 1.0 + 1.0 / _GRADE
    m = int(math.ceil(math.log(smax / lin[-1]) / math.log(r)))
    s = np.concatenate([lin, lin[-1] * r ** np.arange(1, m + 1)])
    return s[s <= smax]


def _grid(d, lo, hi):
    """Sample points graded around every score: spacing ``max(h0, s / 8)`` at
    distance ``s`` from the nearest score, ``_REACH`` beyond the extreme scores,
    then geometric out to 1e300 on an infinite side.

    ``d``: the distinct standardized scores, ascending.  Near a score the
    factors ``Phi(x - d_v)``, ``phi(x - d_u)`` have their unit-width features;
    at distance ``s`` from every score each factor is smooth on the scale
    ``s`` (algebraic tails) or log-concave (light tails), so a local maximum
    there is bracketed by two neighbouring samples and refined afterwards.
    ``h0 >= 0.02`` grows until at most ``max(400, 3e6 / len(d))`` points remain.
    """
    budget = int(min(20000, max(400, 3_000_000 // max(len(d), 1))))
    half = np.diff(d) / 2
    smax = max(_REACH, float(half.max()) if len(half) else 0.0)
    h0 = 0.02
    while True:
        tmpl = _offsets(h0, smax)
        cnt = np.searchsorted(tmpl, half, side="right")
        n_end = int(np.searchsorted(tmpl, _REACH, side="right"))
        if 2 * (int(cnt.sum()) + n_end) <= budget or h0 > 1e3:
            break
        h0 *= 1.5
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    off = tmpl[np.arange(int(cnt.sum())) - start]
    parts = [np.repeat(d[:-1], cnt) + off, np.repeat(d[1:], cnt) - off,
             d[0] - tmpl[:n_end], d[-1] + tmpl[:n_end]]
    a, b = d[0] - _REACH, d[-1] + _REACH
    if math.isfinite(lo):
        parts.append(np.array([lo]))
    else:
        parts.append(a - np.logspace(-1, 300, 400))
    if math.isfinite(hi):
        parts.append(np.array([hi]))
    else:
        parts.append(b + np.logspace(-1, 300, 400))
    X = np.unique(np.concatenate(parts))
    return X[(X >= lo) & (X <= hi)]


def _ell(kern, df, mult, X, targets, paired=False):
    """``l_t(x)`` (max-CDF form) for each target ``t`` at each point ``x``: shape
    (len(targets), len(X)), ``-inf`` where the integrand vanishes; with
    ``paired``, ``l_{t_k}(x_k)`` for one target per point (shape (len(X),)).
    Also returns ``sum_v m_v log Phi(x - d_v)`` over the finite terms and the
    count of ``-inf`` terms per point."""
    with np.errstate(all="ignore"):
        Y = X[None, :] - df[:, None]
        LC = np.asarray(kern.flogcdf(Y), dtype=np.float64)
        isinf = np.isnan(LC) | (LC == -np.inf)
        ninf = (mult[:, None] * isinf).sum(axis=0)
        S = (mult[:, None] * np.where(isinf, 0.0, LC)).sum(axis=0)
        if paired:
            cols = np.arange(len(X))
            inf_t, lc_t, y_t = isinf[targets, cols], LC[targets, cols], Y[targets, cols]
            other = ninf - inf_t
            rest = np.where(other > 0, -np.inf, S - np.where(inf_t, 0.0, lc_t))
        else:
            inf_t, lc_t, y_t = isinf[targets], LC[targets], Y[targets]
            other = ninf[None, :] - inf_t
            rest = np.where(other > 0, -np.inf, S[None, :] - np.where(inf_t, 0.0, lc_t))
        ell = np.asarray(kern.flogpdf(y_t), dtype=np.float64) + rest
    ell[np.isnan(ell)] = -np.inf
    return ell, S, ninf


def _ell_pairs(kern, df, mult, x, t):
    """``l_{t_k}(x_k)`` for paired arrays ``x``, ``t`` (one target per point)."""
    return _ell(kern, df, mult, x, t, paired=True)[0]


def _refine(kern, df, mult, t, a, b):
    """Golden-section search for a local maximum of ``l_t`` in each bracket [a, b]
    (vectorised over brackets; 80 steps shrink a bracket by 0.618^80 ~ 2e-17)."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, e = b - g * (b - a), a + g * (b - a)
    fc, fe = _ell_pairs(kern, df, mult, c, t), _ell_pairs(kern, df, mult, e, t)
    for _ in range(80):
        left = fc >= fe  # keep [a, e]
        a = np.where(left, a, c)
        b = np.where(left, e, b)
        c_new = np.where(left, b - g * (b - a), e)
        e_new = np.where(left, c, a + g * (b - a))
        fc_old, fe_old = fc, fe
        c, e = c_new, e_new
        moved = np.where(left, c, e)
        fm = _ell_pairs(kern, df, mult, moved, t)
        fc = np.where(left, fm, fe_old)
        fe = np.where(left, fc_old, fm)
    return np.where(fc >= fe, c, e), np.maximum(fc, fe)


def _drop_width(kern, df, mult, t, m, pk, s_hi, sign):
    """Distance ``s`` in (0, s_hi] from ``m`` (direction ``sign``) at which ``l_t``
    is ``1`` below ``pk`` (bisection; ``l_t(m + sign s_hi) < pk - 1`` is known)."""
    lo, hi = np.zeros_like(m), s_hi.copy()
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        above = _ell_pairs(kern, df, mult, m + sign * mid, t) >= pk - 1.0
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi


def reconnoitre(kern, df, mult, targets, T, T2, label) -> Recon:
    """Locate the mass of every target integrand (see the module docstring).

    Every local maximum of the sampled ``l_t`` within ``T`` of its peak is a
    mode (log-concave families: the largest sample only); where the samples are coarse (bracket wider than 0.05) it is
    refined by golden-section search and its widths by bisection.
    """
    lo = float(kern.lo)
    hi = float(kern.hi)
    X = _grid(np.unique(df), lo, hi)
    bps = [float(b) for b in kern.breakpoints]
    if bps:
        extra = (df[:, None] + np.array(bps)[None, :]).ravel()
        extra = extra[(extra >= X[0]) & (extra <= X[-1])]
        X = np.unique(np.concatenate([X, extra]))
    G = len(X)
    ell, S, ninf = _ell(kern, df, mult, X, targets)
    peak = ell.max(axis=1)
    if not np.all(np.isfinite(peak)):
        bad = int(np.argmin(np.isfinite(peak)))
        raise OracleError(
            f"{label}: could not locate the mass of the integrand of class {int(targets[bad])} "
            "(scores too far apart for the float64 reconnaissance)"
        )
    # --- every local maximum of the samples within T of the peak ---
    pad = np.full((len(targets), 1), -np.inf)
    left = np.concatenate([pad, ell[:, :-1]], axis=1)
    right = np.concatenate([ell[:, 1:], pad], axis=1)
    if kern.name in LOG_CONCAVE and not kern.custom:
        # concave l: the sampled maximum brackets the only mode
        is_max = np.zeros(ell.shape, dtype=bool)
        is_max[np.arange(len(targets)), ell.argmax(axis=1)] = True
    else:
        # a margin above rounding noise, so that a flat stretch is not a row of modes
        with np.errstate(invalid="ignore"):
            eps = 1e-12 * (1.0 + np.abs(np.where(np.isfinite(ell), ell, 0.0)))
            is_max = (ell > left + eps) & (ell >= right) & (ell >= peak[:, None] - T)
        is_max[np.arange(len(targets)), ell.argmax(axis=1)] = True
    ti, ki = np.nonzero(is_max)
    t_abs = np.asarray(targets)[ti]
    pk = ell[ti, ki]
    modes = X[ki]
    xa, xb = X[np.maximum(ki - 1, 0)], X[np.minimum(ki + 1, G - 1)]
    # A bracket is refined when it is wide, or when both neighbouring samples are already
    # more than 1 below the sampled maximum: the mode is then narrower than the grid
    # (super-exponential factors, e.g. Gompertz f(y) ~ exp(-eta e^(b y)) at y ~ 13: width
    # ~ e^-13), its sampled value can be thousands of units below the true peak, and the
    # tolerances built on log p would be off by as many orders of magnitude.
    la, lb = ell[ti, np.maximum(ki - 1, 0)], ell[ti, np.minimum(ki + 1, G - 1)]
    coarse = ((xb - xa) > 0.05) | ((la < pk - 1.0) & (lb < pk - 1.0))
    if coarse.any():
        m_r, pk_r = _refine(kern, df, mult, t_abs[coarse], xa[coarse], xb[coarse])
        better = pk_r >= pk[coarse]
        modes[coarse] = np.where(better, m_r, modes[coarse])
        pk[coarse] = np.where(better, pk_r, pk[coarse])
    peak = np.maximum(peak, np.array([pk[ti == j].max() for j in range(len(targets))]))
    # --- hulls: where l_t is within T of its peak ---
    inside = ell >= peak[:, None] - T
    first = inside.argmax(axis=1)
    last = G - 1 - inside[:, ::-1].argmax(axis=1)
    hull_lo = np.minimum(X[np.maximum(first - 1, 0)], [modes[ti == j].min() for j in range(len(targets))])
    hull_hi = np.maximum(X[np.minimum(last + 1, G - 1)], [modes[ti == j].max() for j in range(len(targets))])
    # --- widths: first sample 1 below the mode's value on each side, then bisection ---
    low1 = ell[ti] < pk[:, None] - 1.0
    idx = np.arange(G)[None, :]
    li = np.where(low1 & (X[None, :] < modes[:, None]), idx, -1).max(axis=1)
    ri = np.where(low1 & (X[None, :] > modes[:, None]), idx, G).min(axis=1)
    wl = np.where(li >= 0, modes - X[np.maximum(li, 0)], modes - hull_lo[ti])
    wr = np.where(ri < G, X[np.minimum(ri, G - 1)] - modes, hull_hi[ti] - modes)
    if coarse.any():
        sel = coarse & (li >= 0)
        if sel.any():
            wl[sel] = _drop_width(kern, df, mult, t_abs[sel], modes[sel], pk[sel], wl[sel], -1.0)
        sel = coarse & (ri < G)
        if sel.any():
            wr[sel] = _drop_width(kern, df, mult, t_abs[sel], modes[sel], pk[sel], wr[sel], +1.0)
    # floor: a drop at a kink or support end (uniform, exponential) is a
    # breakpoint already, and grading away from a width of 1e-12 would only add pieces
    tiny = max(1e-4, 1e-12 * float(np.abs(df).max()))
    narrow = np.zeros(wl.shape, dtype=bool)
    if kern.custom:
        # ... except for a hump narrower than the floor on *both* sides, a smooth but
        # super-exponential factor next to a kink rather than a drop (sympy.stats Gompertz
        # at mu = (30, 0, 0): the losers' mass lies within 2e-13 of the top's support end,
        # their integrand falls by e^(5e12) per unit): graded from a floored width, the
        # piece next to the kink has no node within 1e-7 of it, where the integrand is
        # e^(-5e5) of its peak, and the rules return 0.  Such a hump keeps its widths
        # (at least 64 ulps of the mode).
        narrow = (wl < tiny) & (wr < tiny)
    res = 64 * np.spacing(np.maximum(np.abs(modes), 1.0))
    wl = np.where(narrow, np.maximum(wl, res), np.maximum(wl, tiny))
    wr = np.where(narrow, np.maximum(wr, res), np.maximum(wr, tiny))
    # --- rough log p: trapezoid on the samples, or peak * (wl + wr) summed over
    # the modes where the samples are too coarse to see a peak (the larger) ---
    w = np.empty(G)
    w[1:-1] = (X[2:] - X[:-2]) / 2
    w[0] = (X[1] - X[0]) / 2
    w[-1] = (X[-1] - X[-2]) / 2
    with np.errstate(divide="ignore"):
        logp = logsumexp(ell + np.log(w)[None, :], axis=1)
        by_mode = pk + np.log(wl + wr)
    logp = np.maximum(logp, [logsumexp(by_mode[ti == j]) for j in range(len(targets))])

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
    return Recon(np.clip(modes, L, R), wl, wr, hull_lo, hull_hi, logp, peak, L, R)


def _score_centres(scores, lo_lim, hi_lim):
    """Scores inside the range as centres of unit width, one per half unit:
    a score within 1/2 of a kept one is covered by that one's grading."""
    out = []
    for d in sorted(scores):
        if lo_lim < d < hi_lim and (not out or d - out[-1] >= 0.5):
            out.append(d)
    return out


def soft_breakpoints(rc: Recon, scores, log_concave, max_points: int = 20000) -> np.ndarray:
    """Breakpoints graded around every centre, thinned.

    Centres: every located mode (its widths ``wl``, ``wr``) and, unless the
    family is log-concave, every score ``d_v`` (width 1, the standardized
    scale: the body of ``phi(x - d_v)`` and the rise of ``Phi(x - d_v)``
    are there).  From each centre ``c``, points ``c +- w 2^k``.

    Log-concave families: every ``l_u`` is concave, so its mass is the one
    hump around its (unique) mode; points reach 4096 widths from the modes.
    Other families (heavy tails): an integrand has mass at the body of its
    own score *and* where the other scores' CDFs rise (student_t, scores
    (0, -1e5): half of the loser's mass sits near 0, half near -1e5), and
    between the scores at every scale; the scores are centres by
    construction, not found by a search, and points reach
    ``64 max(1, spread)`` beyond the extreme scores; further out every
    factor is a power of ``|x|`` to relative ``O(spread / |x|)`` and the
    end pieces (mapped to finite ones, split geometrically when needed)
    take the tails.  Points stay within the tail cuts ``L``, ``R``.

    A point is kept when it is at least the local spacing
    ``s(x) = min_c max(w_c, |x - c| / 2)`` away from the previous one, so
    pieces are about one width long at the centres and grow geometrically
    away from them.
    """
    L, R = float(rc.L), float(rc.R)
    lo_lim = max(L, float(np.min(rc.modes - 4096 * rc.wl)))
    hi_lim = min(R, float(np.max(rc.modes + 4096 * rc.wr)))
    cen = [(float(m), float(a), float(b)) for m, a, b in zip(rc.modes, rc.wl, rc.wr)]
    if not log_concave:
        d = [float(v) for v in scores]
        reach = 64 * max(1.0, max(d) - min(d))
        lo_lim = max(L, min(lo_lim, min(d) - reach))
        hi_lim = min(R, max(hi_lim, max(d) + reach))
        cen += [(c, 1.0, 1.0) for c in _score_centres(d, lo_lim, hi_lim)]
    pts = [lo_lim, hi_lim] + [float(v) for v in rc.hull_lo] + [float(v) for v in rc.hull_hi]
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
    pts = np.unique(np.clip(np.array(pts, dtype=np.float64), lo_lim, hi_lim))
    cs = np.array([c for c, _, _ in cen])
    w = np.array([min(a, b) for _, a, b in cen])
    need = np.empty(len(pts))
    for s in range(0, len(pts), 2000):
        chunk = pts[s : s + 2000]
        need[s : s + 2000] = np.maximum(w[None, :], np.abs(chunk[:, None] - cs[None, :]) / 2).min(axis=1)
    return np.array(_thin_breakpoints(pts, need, max_points))


# --------------------------------------------------------------------------
# mpmath reconnaissance, for spreads the float64 scan cannot resolve
# (|d| > ~1e5: unit widths at 1e300 are below a float's ulp, and normal
# log-integrands ~ -d^2/2 overflow float64 beyond |d| ~ 1e154).
# Same outputs as :func:`reconnoitre`, as mpf lists; nothing here ends up in
# a returned value either.
# --------------------------------------------------------------------------



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
    if kern.name in LOG_CONCAVE and not kern.custom:
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
