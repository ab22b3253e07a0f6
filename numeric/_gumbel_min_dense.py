"""Dense VJPs of ``log p`` of gumbel_min rows: the node matrix of
:mod:`numeric._gumbel_min_vjp` (notation and error control there) without forming it
whole.

``Q[a, b] = sum_k W[a, k] h(x_k - m_b)`` (``W`` the normalized rule of node ``a`` on the x
grid) has three regions per block of rule rows: zero below its band (``h < e^-700``),
the band itself (one product with ``h`` on the grid offsets), and above it the
Bernoulli series ``sum_r (B_r / r!) T_r[a] e^(r (m_a - m_b))`` with ``T_r[a] =
E_a[e^(r (x - m_a))]``: eight numbers per row.  Everything the VJP needs from ``Q`` is
linear in it (``B = C Q``, ``B_+ = C_+ Q``, the rounding term ``|c L| Q``), so each block
adds its band segment once and its Bernoulli part as eight vectors, ``O(K)`` per block
instead of a ``K``-wide row of ``Q`` per node.  The one nonlinear part, the first
argument's interpolation error ``sum_a |c L|_a |Delta^q_a Q[a, b]|`` (``q``-th
differences down a column), is formed from the segments where a stencil of rows meets
its band, and where all of its rows are in their Bernoulli region from the same series:

    |Delta^q_j Q[i + j, b]| <= sum_r |B_r / r!| e^(r (m_i - m_b)) D_r[i],
    D_r[i] = |sum_j (-1)^(q - j) binom(q, j) e^(r j H) T_r[i + j]|

(the triangle inequality over ``r``: never below what the full difference gives; both
carry the same rounding of ``T`` times ``2^q``).  Below every row's band the difference
is 0.  The band segments are the same products as the full matrix's, so every other
part of the estimate and the decline rule are those of the module docstring of
:mod:`numeric._gumbel_min_vjp`, plus the mass each rule leaves beyond its ends (bounded from its end
weights by log-concavity: the comment above ``_BR``), which an entry whose sum of
|terms| is many decades below the others' sees (cotangents ``c = g p``).

Narrow posteriors (``sigma < 1.7 H``) take local trapezoid rules (:func:`_lattice_rules`:
step ``2^-j`` grid rows, between sigma / 8 and sigma / 4, on the lattice of that step, so
that ``log F`` at the points, ``log h`` and the move onto the grid are a few products with
per-phase Lagrange weights), started at +-12 sigma for every node:
``rho_a = h(x - m_a) F(x) / g(m_a)`` is log-concave (``(log h)'' = -u d/du[u / (1 -
e^-u)] < 0`` with ``u = e^(x - m_a)``, and ``F`` a product of log-concave CDFs), hence
unimodal, so a rule whose integrand has decayed by ``e^-45`` of its peak at both ends
holds all but ``e^-45`` of the mass (the log-concave tails decay at least linearly
beyond); rules that have not decayed are redone 4x wider (up to +-768 sigma).  (The
engine's general local rule also spans every grid row within ``e^-45`` of the grid
peak, which multimodal integrands such as ``h F Gamma`` need and a node's posterior
does not.)

>>> import numpy as np
>>> from numeric.families import get_family
>>> from numeric._fast import _cache_for
>>> import numeric
>>> fam = get_family("gumbel_min")
>>> z = 4.0 * np.random.default_rng(1).normal(size=60); c = np.cos(z)
>>> v = dense_log_vjp_row(z, c, fam, fam.fast, _cache_for(fam), check_cost=False)
>>> w = numeric.log_probs_vjp(z, c, "gumbel_min", method="quadrature")
>>> bool(np.abs(v - w).max() < 1e-10 * np.abs(w).max())
True
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ._exp import exp_terms
from ._fast import (_CHUNK, _QF, _TAIL, _Geo, _eval_at_scores, _interp_bound, _node_kernel, _row_log_probs,
                    _windows)
from ._gumbel_min_vjp import (_BERN, _BLOCK, _FAR, _LEBESGUE, _LIMIT, _REL, _ROUND, _ZERO, _grid_rules,
                              _h, _lagrange_pos, _maxfilter, _product,
                              _spread_scores)

__all__ = ["dense_log_vjp_row"]

# Mass a rule leaves out beyond its ends, relative to its own: its integrand is
# log-concave, so beyond an end x_e it lies below the chord from the peak through x_e,
# e^(L(x_e) - s |x - x_e|) with s = (L_peak - L(x_e)) / |x_peak - x_e|, and the tail holds
# at most w_e / (s h) of the rule's mass (w_e the end's normalized weight, h the rule's
# step).  Q[a, b] is off by at most twice the two tails' sum (the tails times h <= 1,
# and the renormalization by the kept mass), and B at every node by sum_a |c L|_a times
# that, at the scores by _LEBESGUE times it.  The rules' relative accuracy (_REL) does
# not cover this when some entry's sum of |terms| is far below the others' (cotangents
# spanning many decades, c = g p: posteriors' far tails are what those entries see).
_BR = np.array([r for r, _ in _BERN], dtype=np.float64)
_BB = np.array([b for _, b in _BERN])


def _block_rules(a0, a1, win, LFv, lo_k, hi_k, la, geo, LF, fam, H):
    """The normalized rules of nodes ``a0 .. a1 - 1`` on grid rows ``kA .. kB - 1``:
    ``(W, kA)``; wide posteriors by the trapezoid on the grid, narrow ones by local rules
    moved onto the grid (module docstring)."""
    A, B = int(lo_k[a0:a1].min()), int(hi_k[a0:a1].max()) + 1
    W, kmax, curv, trip, _, _ = _grid_rules(win, LFv, a0, a1, A, B)
    nar = np.flatnonzero(curv > 0.35)
    tails = _tail_mass(W, kmax - A, H)
    if nar.size == 0:
        return W, A, tails
    pieces = []
    # vertex of the parabola through the three samples around the grid peak, sigma
    # from the curvature there (numeric._fast._widening_passes)
    centre = kmax[nar] + (trip[nar, 2] - trip[nar, 0]) / (2.0 * curv[nar])
    sig = 1.0 / np.sqrt(curv[nar])
    # lattice step 2^-j <= sigma / 4 (grid units; j >= 2 as sigma < 1.7 here)
    jj = np.ceil(np.log2(4.0 / sig)).astype(np.intp)
    todo = np.arange(nar.size)
    width = 12
    while todo.size:
        if width > 768:
            raise NotImplementedError("narrow integrand not decayed within +-768 sigma")
        left = []
        for j in np.unique(jj[todo]):
            now = todo[jj[todo] == j]
            ok = _lattice_rules(nar[now], la[a0 + nar[now]], centre[now], sig[now], width, int(j),
                                geo, LF, fam, H, pieces)
            left.append(now[~ok])
        todo = np.concatenate(left)
        width *= 4
    kA = min([A] + [k0 for _, _, k0, _ in pieces])
    kB = max([B] + [k0 + Wg.shape[1] for _, Wg, k0, _ in pieces])
    if kA == A and kB == B:
        Wb = W
    else:
        Wb = np.zeros((a1 - a0, kB - kA))
        Wb[:, A - kA:B - kA] = W
    Wb[nar] = 0.0
    for rows, Wg, k0, tl in pieces:
        tails[rows] = tl
        Wb[rows, k0 - kA:k0 - kA + Wg.shape[1]] = Wg
    return Wb, kA, tails


def _tail_mass(E, kpk, h):
    """Bound of the mass beyond both ends of each row of the normalized rule ``E`` (step
    ``h``, peak at column ``kpk``) of a log-concave integrand (the comment above _BR)."""
    r = np.arange(E.shape[0])
    tiny = 5e-324
    e0 = np.maximum(E[:, 0], tiny)
    e1 = np.maximum(E[:, -1], tiny)
    pk = E[r, kpk]
    with np.errstate(divide="ignore"):
        sL = np.log(pk / e0) / (np.maximum(kpk, 1) * h)
        sR = np.log(pk / e1) / (np.maximum(E.shape[1] - 1 - kpk, 1) * h)
    return e0 / (sL * h) + e1 / (sR * h)


@functools.lru_cache(maxsize=None)
def _phase_weights(j, q):
    """``q``-point Lagrange weights at the ``2^j`` phases ``i 2^-j`` of a unit grid
    interval (stencil ``floor - q/2 + 1 .. floor + q/2``), ``(2^j, q)``, read only."""
    _, L = _lagrange_pos(np.arange(2 ** j) * 2.0 ** -j, q)
    L.flags.writeable = False
    return L


def _lattice_rules(rows, nodes_l, centre, sig, width, j, geo, LF, fam, H, pieces):
    """Local trapezoid rules of the narrow posteriors of ``rows`` (nodes ``nodes_l``) with
    step ``s = 2^-j`` grid rows (``<= sigma / 4``) on the lattice ``s Z``, over
    ``+-width`` sigma (the widest row's) about each centre, moved onto the x grid:
    appends ``(rows, W, k0)`` to ``pieces`` for the rows whose integrand decayed by
    ``e^-_TAIL`` at both ends, returns that mask.

    On the lattice every point sits at one of ``2^j`` phases of its grid interval, so
    ``log F`` there (the ``_QF``-point interpolant of the grid sums) and the move onto
    the grid (the ``q``-point interpolant of ``h(x_k - m_b)``, with the weights of
    :func:`numeric._gumbel_min_vjp._lagrange_pos`) are products with per-phase Lagrange
    weights, and ``log h(x - m)`` takes one evaluation per lattice offset.  The rule,
    its checks (decay at both ends; the rule of step ``2 s`` within 1e-8, so the rule
    of step ``s <= sigma / 4`` within 1e-16 for this geometrically converging rule) and
    so its accuracy are those of :func:`numeric._fast._refine_rows`' rules, at a step
    between sigma / 8 and sigma / 4."""
    S = 1 << j
    s = 2.0 ** -j
    M = int(math.ceil(width * float(sig.max()) * S))
    P = np.rint(centre * S).astype(np.int64)                 # lattice index of each centre
    p0, p1 = int(P.min()) - M, int(P.max()) + M              # the rows' lattice union
    k0 = p0 >> j                                             # floor(p0 s)
    nk = (p1 >> j) - k0 + 1
    if k0 - _QF // 2 + 1 < 0 or k0 + nk - 1 + _QF // 2 > geo.G - 1:
        raise NotImplementedError("narrow integrand window leaves the x grid")
    # log F at every lattice point of the union: the _QF-point stencils at each phase
    vals = LF.ensure(k0 - _QF // 2 + 1, k0 + nk + _QF // 2)[k0 - _QF // 2 + 1:k0 + nk + _QF // 2]
    win = np.lib.stride_tricks.sliding_window_view(vals, _QF)[:nk]
    LFl = (win @ _phase_weights(j, _QF).T).ravel()          # lattice index k0 S + .
    i = np.arange(-M, M + 1)
    idx = (P - k0 * S)[:, None] + i[None, :]
    # log h(x - m_l), x - m_l = (p s + kL - l) H: one evaluation per lattice offset
    off = P + (geo.kL - nodes_l.astype(np.int64)) * S
    o0, o1 = int(off.min()) - M, int(off.max()) + M
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lht = fam.loghazard(np.arange(o0, o1 + 1) * (s * H))
    L = lht[(off - o0)[:, None] + i[None, :]]
    L += LFl[idx]
    peak = L.max(axis=1)
    if not np.all(np.isfinite(peak)):
        raise NotImplementedError("non-finite narrow integrand peak")
    ok = (L[:, 0] < peak - _TAIL) & (L[:, -1] < peak - _TAIL)
    if not ok.any():
        return ok
    L = L[ok]
    L -= peak[ok, None]
    E = exp_terms(L, out=L)
    tot = E.sum(axis=1)
    if np.any(~(np.abs(2.0 * E[:, ::2].sum(axis=1) / tot - 1.0) < 1e-8)):
        raise NotImplementedError("narrow integrand: local trapezoid rule not converged")
    E /= tot[:, None]
    tl = _tail_mass(E, np.argmax(E, axis=1), s * H)
    # onto the grid: the weight at lattice point k S + phase goes to grid rows
    # k - q/2 + 1 .. k + q/2 with that phase's q-point weights
    q = geo.q
    Wl = np.zeros((E.shape[0], nk * S))
    np.put_along_axis(Wl, idx[ok], E, axis=1)
    X = Wl.reshape(E.shape[0], nk, S) @ _phase_weights(j, q)     # (rows, nk, q)
    Wg = np.zeros((E.shape[0], nk + q - 1))
    for m in range(q):
        Wg[:, m:m + nk] += X[:, :, m]
    pieces.append((rows[ok], Wg, k0 - q // 2 + 1, tl))
    return ok


def dense_log_vjp_row(z, c, fam, spec, cache, check_cost=True, out=None):
    """One row of the VJP of ``log p`` with cotangent ``c`` of gumbel_min scores ``z``
    (standardized), into ``out`` when given: the node matrix of
    :mod:`numeric._gumbel_min_vjp` at ``O(K)`` per block of nodes, its decline rule with the rules' tails added (module docstring).  Raises ``NotImplementedError`` where the row cannot be
    certified (the caller then uses the per-row engine)."""
    if spec.H != fam.fast.H:
        raise NotImplementedError("node-matrix VJP on the family's own grid only")
    lp, rS, geo, M, LF, z, spec, cache = _row_log_probs(z, fam, spec, cache, parts=True, check_cost=check_cost)
    del lp, M
    c = np.asarray(c, dtype=np.float64)
    H = spec.H
    geo = _Geo(z, dataclasses.replace(spec, ms=1), False, (geo.zmin, geo.zmax))
    K, G, q = geo.K, geo.G, geo.q
    win = _node_kernel(geo, fam, spec)[::-1]          # rows in increasing l
    d = np.arange(geo.kL - geo.lR, geo.kR - geo.lL + 1)     # h(x_k - m_b), one evaluation per offset
    hwin = np.lib.stride_tricks.sliding_window_view(_h(d * H), G)[::-1]
    la = geo.lL + geo.ms * np.arange(K)
    lo_k, hi_k = _windows(win, LF.coarse(), G)
    LFv = LF.ensure(int(lo_k.min()), int(hi_k.max()) + 1)
    # the three vectors through Q: C (c onto the nodes), C_+ (its positive part) and
    # |c L| near each node (module docstring of numeric._gumbel_min_vjp)
    (C, Cp), cnear = _spread_scores(z, (c, np.maximum(c, 0.0)), geo)
    Cs = np.stack([C, Cp, _LEBESGUE * cnear])
    starts = list(range(0, K, _BLOCK))
    nb = len(starts)
    # pass 1: per block the rules, the band [b0, b1) of columns, the Bernoulli moments
    # T_r[a] = E_a[e^(r (x - m_a))] (row a, node a at grid position lL + a)
    blocks = []
    T = np.empty((len(_BERN), K))
    tails = np.empty(K)
    for a0 in starts:
        a1 = min(K, a0 + _BLOCK)
        Wb, kA, tl = _block_rules(a0, a1, win, LFv, lo_k, hi_k, la, geo, LF, fam, H)
        tails[a0:a1] = tl
        kB = kA + Wb.shape[1]
        b0 = min(K, max(0, math.ceil(geo.kL + kA - _ZERO / H - geo.lL)))
        b1 = min(K, max(b0, math.floor(geo.kL + kB - 1 + _FAR / H - geo.lL) + 1))
        xr = np.arange(kA, kB) * H
        xc = 0.5 * (xr[0] + xr[-1])
        mu = Wb @ np.exp(_BR[:, None] * (xr - xc)[None, :]).T        # (rows, 8)
        dc = (geo.kL * H + xc) - (geo.lL + np.arange(a0, a1)) * H      # x_c - m_a
        T[:, a0:a1] = mu.T * np.exp(_BR[:, None] * dc[None, :])
        blocks.append((a0, a1, Wb, kA, b0, b1, mu, xc))
    # pass 2: per block the segment [lo, hi) of Q it shares with its neighbours' bands
    # (zero below b0, the band, the Bernoulli series from b1), its share of B, B_+,
    # |c L| Q (the segment, then the series beyond hi), and the q-th differences of the
    # stencils starting in the previous block
    Bv = np.zeros((Cs.shape[0], K))
    with np.errstate(under="ignore"):
        dec = np.exp(-_BR[:, None] * (np.arange(K) * H)[None, :])     # e^(-r j H), (8, K)
    err = np.zeros(K)
    nstart = K - q                         # stencil starts 0 .. K - q - 1 (rows i .. i + q)
    cmid = Cs[2, q // 2:q // 2 + nstart]   # |c L| at each stencil's centre node
    # |Delta^q_j e^(r j H) T_r[i + j]| per stencil start i (module docstring)
    D = np.zeros((len(_BERN), nstart))
    for jj in range(q + 1):
        D += (((-1.0) ** (q - jj) * math.comb(q, jj)) * np.exp(_BR * (jj * H)))[:, None] * T[:, jj:jj + nstart]
    np.abs(D, out=D)
    prev = None
    for j, (a0, a1, Wb, kA, b0, b1, mu, xc) in enumerate(blocks):
        nbr = blocks[max(0, j - 1):min(nb, j + 2)]
        lo = min(bb[4] for bb in nbr)
        hi = max(bb[5] for bb in nbr)
        S = np.zeros((a1 - a0, hi - lo))
        if b1 > b0:
            _product(Wb, hwin[b0:b1, kA:kA + Wb.shape[1]].T, S[:, b0 - lo:b1 - lo])
        # e^(r (x_c - m_b)) = e^(r (x_c - m_b1)) e^(-r (b - b1) H) (x_c - m_b1 < -2: the
        # first factor <= 1, the product within 2 ulps)
        sc = _BB * np.exp(_BR * ((geo.kL * H + xc) - (geo.lL + b1) * H))
        if hi > b1:
            S[:, b1 - lo:] = (mu * sc[None, :]) @ dec[:, :hi - b1]
        Bv[:, lo:hi] += _product(Cs[:, a0:a1], S, np.empty((Cs.shape[0], hi - lo)))
        if hi < K:
            Bv[:, hi:] += ((Cs[:, a0:a1] @ mu) * sc[None, :]) @ dec[:, hi - b1:K - b1]
        cur = (a0, a1, S, lo, hi, b0, b1)
        if prev is not None:
            _stencil_errors(prev, cur, q, cmid, D, dec, K, H, err)
        prev = cur
    _stencil_errors(prev, None, q, cmid, D, dec, K, H, err)
    err *= _interp_bound(q)
    err += (q * _ROUND) * Bv[2]
    Bn = Bv[0]
    err[q // 2:K - q // 2] += np.abs(np.diff(Bn, n=q)) * _interp_bound(q)
    err = _maxfilter(err, q)
    B = _eval_at_scores(z, geo, Bn)
    out = np.multiply(c, rS, out=out)
    out -= B
    Bp = _eval_at_scores(z, geo, Bv[1])
    Bm = np.subtract(Bp, B, out=B)
    del B
    # the rules' tails (comment above _BR)
    trunc = 2.0 * _LEBESGUE * float(Cs[2] @ tails) * (1.0 + 1e-6)
    if not math.isfinite(trunc):
        raise NotImplementedError("node-matrix VJP: a rule's tail not bounded")
    return _certify(z, c, rS, Bp, Bm, err, trunc, out, geo, K)


def _stencil_errors(cur, nxt, q, cmid, D, dec, K, H, err):
    """Adds to ``err`` the first argument's interpolation estimate (before the factor
    ``_interp_bound``) of the stencils starting at rows ``a0 .. a1 - 1`` of block ``cur``
    (rows ``i .. i + q``: this block's and the first of ``nxt``): within the union
    of the two blocks' bands from their segments, beyond it from the Bernoulli moments
    (module docstring), below it nothing."""
    a0, a1, S, lo, hi, b0, b1 = cur
    i1 = min(a1, D.shape[1])
    if i1 <= a0:
        return
    need = i1 + q - a1                     # rows wanted from the next block
    u0, u1 = b0, b1
    if need > 0:
        _, _, Sn, lon, _, nb0, nb1 = nxt
        # the union of the two bands (each segment covers its neighbours' bands)
        u0, u1 = min(b0, nb0), max(b1, nb1)
        R = np.concatenate([S[:, u0 - lo:u1 - lo], Sn[:need, u0 - lon:u1 - lon]], axis=0)
    else:
        R = S[:i1 + q - a0, u0 - lo:u1 - lo]
    if u1 > u0:
        EQ = np.abs(_product(_diff_matrix(q, i1 - a0), R, np.empty((i1 - a0, u1 - u0))))
        err[u0:u1] += _product(cmid[None, a0:i1], EQ, np.empty((1, u1 - u0)))[0]
    if u1 < K:
        # every row of these stencils is in its Bernoulli region from column u1 on
        E = (D[:, a0:i1] * np.exp(_BR[:, None] * (np.arange(i1 - a0) * H)[None, :])) @ cmid[a0:i1]  # (8,)
        err[u1:] += (np.abs(_BB) * E) @ dec[:, u1 - a0:K - a0]


_DIFF: dict = {}


def _diff_matrix(q, m):
    """``(m, m + q)`` matrix of the ``q``-th forward difference (``np.diff(x, n=q)`` of
    ``m + q`` rows as one product: the same weights, ``2^q`` ulps of rounding either way)."""
    key = (q, m)
    Dm = _DIFF.get(key)
    if Dm is None:
        Dm = np.zeros((m, m + q))
        w = np.array([(-1.0) ** (q - j) * math.comb(q, j) for j in range(q + 1)])
        for i in range(m):
            Dm[i, i:i + q + 1] = w
        Dm.flags.writeable = False
        Dm = _DIFF.setdefault(key, Dm)
    return Dm


def _certify(z, c, rS, Bp, Bm, err, trunc, out, geo, K):
    """The decline rule of the node matrix (:mod:`numeric._gumbel_min_vjp`: its lower
    bounds of each entry's sum of |terms| against the estimate ``err`` at the nearest
    node, the rules' relative accuracy and their tails ``trunc``)."""

    def chunk(c0):
        sl = slice(c0, c0 + _CHUNK)
        cc, rs, bp, bm = c[sl], rS[sl], Bp[sl], Bm[sl]
        near = np.clip(np.rint((z[sl] - geo.lo) * geo.invH - geo.lL).astype(np.intp), 0, K - 1)
        ba = np.abs(bp) + np.abs(bm)                         # sum_i |c_i| Q(z_i, z_k)
        cr = np.abs(cc) * rs
        est = _REL * (cr + ba) + err[near] + trunc
        lo = np.maximum(np.abs(out[sl]), np.where(cc >= 0.0, bm, bp) - est)
        np.maximum(lo, cr - np.abs(cc) - ba - est, out=lo)
        np.maximum(lo, ba - cr - est, out=lo)
        return est, lo

    floor = 1e-200 * math.fsum(float(chunk(c0)[1].sum()) for c0 in range(0, z.size, _CHUNK))
    for c0 in range(0, z.size, _CHUNK):
        est, lo = chunk(c0)
        bad = np.flatnonzero(est > np.maximum(_LIMIT * lo, floor))
        if bad.size:
            k = int(bad[0])
            raise NotImplementedError(f"node-matrix VJP: error estimate {est[k]:.2g} above 1e-10 of "
                                      f"entry {c0 + k}'s lower bound {lo[k]:.2g} of its sum of |terms|")
    if not np.all(np.isfinite(out)):
        raise NotImplementedError("VJP: a term overflowed float64")
    return out
