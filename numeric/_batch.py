"""Vectorised batch kernel: log p for many short score rows at once.

For a row ``y`` (standardized, finite) and ``F(x) = prod_j Phi(x - y_j)``,

    p_i = int h(x - y_i) F(x) dx,   log of the integrand
    L_i(x) = logpdf(x - y_i) + sum_{j != i} logcdf(x - y_j).

Rule: the trapezoid on a mapped variable ``x = c + s map(t)`` (map: t, sinh t,
t + e^t - 1 or t - e^-t + 1 by family, see ``_MAPS``), nodes ``t_k = k * hh``.
For an integrand analytic in a strip around the real t-axis and decaying
at both ends the trapezoid error is ``O(exp(-2 pi d / hh))``.  The sum over
every other node (step ``2 hh``) is the error estimate: when the two agree
to ``AGREE`` (3e-14) relative, the full sum (which converges faster) is at
least as accurate, below the 1e-13 target.  The truncation
is certified by requiring the terms at both ends of the t-range to be below
``1e-18`` of the sum (the tails decay at least geometrically in t).

Two passes, both shared by all rows of a chunk (numpy broadcasting):

1. one grid per family centred at the row maximum (``c = 0`` after the
   shift); it serves every entry whose mass lies near the top;
2. entries that pass 1 cannot certify (tiny entries of spread rows, whose
   mass sits far below the top) get their own grid centred at the mode of
   ``L_i`` (damped Newton with finite differences, vectorised over all
   such entries) with the Laplace width ``s_i = (-L_i'')^(-1/2)``.  The
   centre is rounded to 12 bits so ``c_i - y_j`` is (nearly) exact.

Rows with an entry still uncertified, or whose probabilities do not sum to
1 within ``SUM_TOL`` (a further independent check), get ``ok = False`` and
the caller recomputes them with the adaptive quadrature.

>>> import numpy as np
>>> from numeric.families import get_family
>>> lp, ok = batch_log_probs(np.array([[0.0, -1.0]]), get_family("normal"))
>>> bool(ok[0]), round(float(np.exp(lp[0, 0])), 12)     # Phi(1/sqrt 2)
(True, 0.760249938907)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["batch_log_probs", "BATCH_FAMILIES", "N_MAX"]

# families with analytic kernels whose tails the grids below reach
BATCH_FAMILIES = ("normal", "logistic", "gumbel", "gumbel_min", "cauchy", "student_t")
N_MAX = 64

# |T_2h / T_h - 1| accepted.  The trapezoid error decays like A q^(1/h) with an unknown
# A, so "T_h error ~ (T_2h - T_h)^2" is NOT safe (measured: disagreement 3.5e-10 with
# T_h off by 1.9e-12, logistic); the disagreement itself bounds the error of T_h.
AGREE = 3e-14
LOG_END = math.log(1e-18)   # end terms relative to the sum
# below log p = -1e13 the node values carry absolute rounding > 1e-3: leave to the caller
LOG_MIN = 1e13
SUM_TOL = 1e-13         # |sum p - 1| accepted before renormalising
_CHUNK_BYTES = 12 * 2 ** 20  # per (rows, nodes, n) temporary

# pass 1 grid: x = S1 * sinh(t), t in [-T, T] step HH1; pass 2: x = c_i + s_i sinh(t), step HH2.
# Reach X (|x| covered): light tails need ~40 units, algebraic tails (cauchy: h ~ x^-2,
# Phi(-x) ~ 1/(pi x)) need |x| ~ 1e19 so the dropped tail is < 1e-18.
_SPEC = {
    "normal": dict(MAP="lin", S1=1.0, HH1=0.15, PAD=1.0, PADQ=9.5, XL=10.0, XR=9.5, HH2=0.25),
    "logistic": dict(MAP="sinh", S1=2.5, HH1=0.033, PAD=3.0, PADN=42.0, XL=60.0, XR=60.0, HH2=0.033),
    "gumbel": dict(MAP="expr", S1=1.0, HH1=0.095, PAD=6.0, XL=8.0, XR=46.0, HH2=0.095),
    "gumbel_min": dict(MAP="expl", S1=1.0, C0=-4.0, HH1=0.056, PAD=3.0, PADN=42.0, XL=60.0, XR=6.0,
                       HH2=0.056),
    "cauchy": dict(MAP="sinh", S1=1.0, HH1=0.05, PAD=0.0, ALG=20.0, XL=1e19, XR=1e19, HH2=0.05),
}


# maps t -> x / S (entire, increasing): "lin" for gaussian tails on both sides, "sinh"
# for exponential/algebraic tails on both sides, "expr"/"expl" for an exponential tail on
# the right/left and a double-exponential one on the other side (gumbel / gumbel_min):
# a map that grows fast where the integrand decays doubly exponentially would make it
# blow up off the real axis and ruin the trapezoid's geometric convergence.
_MAPS = {
    "lin": (lambda t: t, lambda t: np.ones_like(t)),
    "sinh": (np.sinh, np.cosh),
    "expr": (lambda t: t + np.expm1(t), lambda t: 1.0 + np.exp(t)),
    "expl": (lambda t: t - np.expm1(-t), lambda t: 1.0 + np.exp(-t)),
}


def _inverse(kind, x):
    """t with map(t) = x (scalar, by bisection; the maps are increasing)."""
    f = _MAPS[kind][0]
    lo, hi = -1e3, 1e3
    lo = -abs(x) - 1.0 if kind in ("lin", "expr") else -math.log(abs(x) + 2.0) - 1.0
    hi = abs(x) + 1.0 if kind in ("lin", "expl") else math.log(abs(x) + 2.0) + 1.0
    if kind == "sinh":
        return math.asinh(x)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(f(np.float64(mid))) < x:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _spec(fam):
    if fam.name == "student_t":
        nu = float(fam.params.get("nu", 1.0))
        # tails |x|^-nu: reach 1e-20^(1/nu), capped (larger reach -> pass declines)
        X = min(1e300, 10.0 ** (20.0 / nu)) if nu > 0.07 else 1e300
        return dict(MAP="sinh", S1=1.0, HH1=0.05, PAD=0.0, ALG=20.0 / nu, XL=max(X, 40.0),
                    XR=max(X, 40.0), HH2=0.05)
    return _SPEC[fam.name]


def _check(y, fam):
    if not hasattr(fam, "logcdf") or not hasattr(fam, "logpdf"):
        raise TypeError("fam must be a NumericFamily (numeric.families.get_family)")
    if fam.name not in BATCH_FAMILIES or fam.custom or not fam.is_analytic:
        raise NotImplementedError(f"batch kernel: family {fam.name!r} not supported "
                                  f"(supported: {', '.join(BATCH_FAMILIES)})")
    if not isinstance(y, np.ndarray) or y.dtype != np.float64 or y.ndim != 2:
        raise TypeError("y must be a 2-d float64 ndarray of shape (m, n)")
    if y.shape[1] < 2:
        raise ValueError(f"y must have n >= 2 columns, got n = {y.shape[1]}")
    if not np.isfinite(y).all():
        raise ValueError("y must be finite (handle -inf/+inf/nan rows before the batch kernel)")


def batch_log_probs(y, fam):
    """``(log p, ok)`` for every row of ``y`` (m, n) at once.

    ``log p[r, i] = log int h(x - y_ri) prod_j Phi(x - y_rj) dx`` (standard
    family, scores already divided by the scale), normalised so each row
    sums to 1.  ``ok[r]`` is True when row r is certified (relative error
    ~1e-15, log error <= 1e-13 |log p|); rows with ``ok`` False hold NaN and
    must be recomputed by the adaptive quadrature.

    >>> from numeric.families import get_family
    >>> lp, ok = batch_log_probs(np.array([[0.0, -60.0]]), get_family("normal"))
    >>> round(float(lp[0, 1]), 6)           # log Phi(-60 / sqrt 2)
    -904.667264
    """
    _check(y, fam)
    m, n = y.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if m == 0:
        return out, ok
    spec = _spec(fam)
    # rows sorted by spread share chunks: each chunk's grid reaches down to its own
    # lowest score only (the left end of the grid follows the chunk's widest row)
    order = np.argsort(np.min(y, axis=1) - np.max(y, axis=1), kind="stable")
    step = max(1, min(256, _CHUNK_BYTES // (8 * 200 * n)))
    for a in range(0, m, step):
        sel = order[a:a + step]
        out[sel], ok[sel] = _rows(y[sel], fam, spec)
    return out, ok


def _agree(logT):
    """Accepted relative disagreement per entry: AGREE for p >= 1e-300; below, the
    log-accuracy target 1e-13 |log p| (rounding noise of node values ~ eps |L| would
    otherwise decline every tiny entry)."""
    with np.errstate(invalid="ignore"):
        return np.where(logT >= -690.0, AGREE, np.maximum(AGREE, 1e-13 * np.abs(logT)))


def _converged(E, logT):
    """Error test of the trapezoid sum over the node axis (last) of ``E = e^{L - max}``.

    ``d1 = |T_2h / T_h - 1|`` (the step-2h sum uses every other node) must be below the
    tolerance: T_h converges faster than T_2h, so d1 bounds its error.  (A sharper
    three-level model ``e(h) ~ d1 (d1/d2)^2`` was tried and rejected: pre-asymptotic
    grids gave certified errors up to 1.5e-8.)"""
    fine = E.sum(axis=-1)
    c2 = 2.0 * E[..., ::2].sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = np.abs(c2 / fine - 1.0)
        return d1 <= _agree(logT)


def _trapezoid(Lk):
    """(log T_h, certified) along the last axis (nodes); the end nodes must be negligible."""
    mx = np.max(Lk, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    E = np.exp(Lk - mx)
    with np.errstate(divide="ignore", invalid="ignore"):
        logT = np.log(E.sum(axis=-1)) + mx[..., 0]
        ends = np.maximum(Lk[..., 0], Lk[..., -1])
    good = (_converged(E, logT) & (ends - logT <= LOG_END) & np.isfinite(logT)
            & (logT > -LOG_MIN))
    return logT, good


def _rows(y, fam, spec, diag=None):
    m, n = y.shape
    y = y - y.max(axis=1, keepdims=True)
    # ---- pass 1: x = S1 sinh(t) (or x = S1 t for "lin" families), t = k hh, shared by all
    # rows and entries.  The left end follows the lowest score of the chunk (entries below
    # the reach go to pass 2); the step shrinks like 1/sqrt(log n) (the integrands narrow).
    S1 = spec["S1"]
    hh = spec["HH1"] * (10.0 / max(n, 10)) ** 0.27
    fwd, jac = _MAPS[spec["MAP"]]
    # left reach: the lowest score minus the decay length of the left tails, which steepen
    # with n (F ~ e^{n x} for exponential tails, |x|^{-nu n} for algebraic ones)
    pad = spec["PAD"] + spec.get("PADN", 0.0) / n + spec.get("PADQ", 0.0) / math.sqrt(n)
    if "ALG" in spec:
        pad = 10.0 ** min(300.0, spec["ALG"] / n + 1.0)
    XL = min(spec["XL"], pad - float(y.min()))
    C0 = spec.get("C0", 0.0)
    kL = int(math.ceil(-_inverse(spec["MAP"], (-XL - C0) / S1) / hh))
    kR = int(math.ceil(_inverse(spec["MAP"], (spec["XR"] - C0) / S1) / hh))
    t = hh * np.arange(-kL, kR + 1)
    x = C0 + S1 * fwd(t)
    logjac = np.log(S1 * hh * jac(t))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        d = x[None, :, None] - y[:, None, :]                 # (m, G, n)
        C = fam.logcdf(d)
        LF = C.sum(axis=2, keepdims=True)
        L = fam.logpdf(d) - C + LF + logjac[None, :, None]   # (m, G, n)
        L = np.where(np.isnan(L), -np.inf, L)
    logp, good = _trapezoid(np.swapaxes(L, 1, 2))
    if diag is not None:
        diag["pass1"] = good.copy()
    del d, C, L
    # ---- pass 2: own grid for each entry pass 1 cannot certify
    rr, ii = np.nonzero(~good)
    if rr.size:
        lp2, g2 = _own_grids(y[rr], ii, fam, spec, diag)
        logp[rr, ii] = lp2
        good[rr, ii] = g2
    ok = good.all(axis=1)
    # ---- normalisation: sum p = 1 is an independent check of the whole row
    with np.errstate(invalid="ignore"):
        lse = np.log(np.sum(np.exp(logp - logp.max(axis=1, keepdims=True)), axis=1)) \
            + logp.max(axis=1)
    ok &= np.abs(np.expm1(lse)) <= SUM_TOL
    if diag is not None:
        diag["good"], diag["sum_err"] = good, np.expm1(lse)
    logp = logp - lse[:, None]
    logp[~ok] = np.nan
    return logp, ok


def _L_at(x, Y, ii, fam):
    """L_i(x) for entries (row Y[e], index ii[e]) at points x (E, P)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        d = x[:, :, None] - Y[:, None, :]                    # (E, P, n)
        C = fam.logcdf(d)
        di = np.take_along_axis(d, ii[:, None, None], axis=2)[:, :, 0]
        Ci = np.take_along_axis(C, ii[:, None, None], axis=2)[:, :, 0]
        return fam.logpdf(di) - Ci + C.sum(axis=2)


def _own_grids(Y, ii, fam, spec, diag=None):
    """Pass 2 for E = len(ii) entries (row Y[e], entry ii[e]): ``(log p, certified)``."""
    E, n = Y.shape
    yi = Y[np.arange(E), ii]
    # mode of L_i: damped Newton with central differences (L_i is log-concave for
    # normal/logistic/gumbel(s); otherwise the step falls back to a bounded ascent).
    # start: the best of a few candidates between the entry's score and the top (0)
    cand = np.stack([yi, 0.75 * yi, 0.5 * yi, 0.25 * yi, np.zeros(E), yi + 1.0, 1.0 + 0 * yi], axis=1)
    Lc = np.nan_to_num(_L_at(cand, Y, ii, fam), nan=-np.inf)
    x = cand[np.arange(E), np.argmax(Lc, axis=1)]
    conv = np.zeros(E, dtype=bool)
    for _ in range(60):
        dl = 1e-3 * (1.0 + 0.05 * np.abs(x))
        P = np.stack([x - dl, x, x + dl], axis=1)
        Lv = _L_at(P, Y, ii, fam)
        g = (Lv[:, 2] - Lv[:, 0]) / (2 * dl)
        c2 = (Lv[:, 2] - 2 * Lv[:, 1] + Lv[:, 0]) / (dl * dl)
        lim = 1.0 + 0.5 * np.abs(x - yi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            stp = np.where(c2 < 0, -g / c2, np.sign(g) * lim)
            stp = np.clip(np.nan_to_num(stp), -lim, lim)
            # converged: concave there and the step is a small share of the width
            conv = (c2 < 0) & np.isfinite(Lv).all(axis=1) & (np.abs(stp) * np.sqrt(-c2) < 1e-2)
        x = x + stp
        if conv.all():
            break
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(c2 < 0, (-c2) ** -0.5, 1.0)
    s = np.nan_to_num(np.clip(s, 1e-3, 1e3), nan=1.0)
    # centre rounded to a multiple of 2^-12 (relative to its magnitude) so c - y_j is exact
    e2 = np.exp2(np.floor(np.log2(np.abs(x) + 1.0)) - 12)
    c = np.round(x / e2) * e2
    # pass-2 grid: x = c_i + s_i map(t), t = k hh, restricted to |x - c_i| <= reach
    fwd, jacf = _MAPS[spec["MAP"]]
    hh = spec["HH2"]
    X = max(spec["XL"], spec["XR"])
    logp = np.full(E, -np.inf)
    good = np.zeros(E, dtype=bool)
    order = np.argsort(s)                    # similar widths share a chunk (similar node counts)
    a = 0
    while a < E:
        smin = s[order[a]]
        kL = int(math.ceil(-_inverse(spec["MAP"], -X / smin) / hh))
        kR = int(math.ceil(_inverse(spec["MAP"], X / smin) / hh))
        if kL + kR > 8000:                   # reach needs too many nodes: decline the rest
            break
        step = max(1, _CHUNK_BYTES // (8 * (kL + kR + 1) * n))
        sel = order[a:a + step]
        a += step
        t = hh * np.arange(-kL, kR + 1)
        z = s[sel, None] * fwd(t)[None, :]
        jac = s[sel, None] * hh * jacf(t)[None, :]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            d = (c[sel, None, None] - Y[sel, None, :]) + z[:, :, None]
            C = fam.logcdf(d)
            di = np.take_along_axis(d, ii[sel, None, None], axis=2)[:, :, 0]
            Ci = np.take_along_axis(C, ii[sel, None, None], axis=2)[:, :, 0]
            L = fam.logpdf(di) - Ci + C.sum(axis=2) + np.log(jac)
        inside = np.abs(z) <= X
        L = np.where(np.isnan(L) | ~inside, -np.inf, L)
        mx = np.max(L, axis=1, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        Ef = np.exp(L - mx)
        # end terms: the outermost nodes inside the reach on each side
        first = np.argmax(inside, axis=1)
        last = t.size - 1 - np.argmax(inside[:, ::-1], axis=1)
        r = np.arange(sel.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.log(Ef.sum(axis=1)) + mx[:, 0]
            ends = np.maximum(L[r, first], L[r, last])
        conv_ok = _converged(Ef, lp)
        rel = conv_ok
        if diag is not None:
            diag.setdefault("pass2", []).append(dict(sel=sel, rel=rel, ends=ends - lp, c=c[sel], s=s[sel], K=(kL, kR)))
        logp[sel] = lp
        good[sel] = (conv_ok & (ends - lp <= LOG_END) & np.isfinite(lp) & (lp > -LOG_MIN)
                     & conv[sel])
    return logp, good
