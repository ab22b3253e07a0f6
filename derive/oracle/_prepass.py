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
    return np.array(kept)
