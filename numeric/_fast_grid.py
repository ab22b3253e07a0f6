"""Lattice helpers shared by the O(n) engines (numeric._fast, numeric._fast_cauchy).

Scores ``z_j`` sit on the lattice of a power-of-two step ``H`` with origin ``lo``
(a multiple of ``H``): :func:`_split_lattice` splits ``z / H`` exactly into a bin
(an integer) and an offset in ``[-1/2, 1/2]``; :func:`_bin_moments` sums the
offsets' powers per bin, ``M[r, b] = sum_{j in b} u_j^r``; :func:`_spread_convolve`
turns them into ``sum_j k(x - z_j)`` on a grid through Taylor tables of the kernel
``k`` (``log Phi`` or the hazard), ``sum_b sum_r M[r, b] k^(r)((x - c_b)) (-u H)^r / r!``;
:func:`_fine_tables` and :func:`_eval_at_scores` interpolate values given on a
node lattice at the scores (a ``q``-point Lagrange stencil re-expanded into short
Taylor polynomials, evaluated by ``take`` + Horner).  Only array operations
(sort, segmented sums, products, ``take``) that also exist in torch.

>>> import numpy as np
>>> z = np.array([0.3, 0.31, 1.0])
>>> M = _bin_moments(z, 0.0, 4.0, 5, 2)      # H = 1/4: bins 1, 1, 4
>>> M[0].tolist()
[0.0, 2.0, 0.0, 0.0, 1.0]
>>> bool(np.allclose(M[1, 1], (0.3 * 4 - 1) + (0.31 * 4 - 1)))
True
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ._exp import exp_terms

_CHUNK = 16384  # scores per pass (temporaries stay in cache and off the mmap path)


def _lagrange_monomials(q):
    """Lagrange basis of the nodes ``s_j = j - q/2 + 1/2`` (``j = 0..q-1``) in the
    variable ``w = s / q``, as exact monomial coefficients: ``L[j][k]`` is the
    coefficient of ``w^k`` in the basis polynomial of node ``j``."""
    nodes = [Fraction(2 * j - q + 1, 2 * q) for j in range(q)]
    out = []
    for j in range(q):
        poly = [Fraction(1)]
        denom = Fraction(1)
        for i in range(q):
            if i == j:
                continue
            # multiply by (w - nodes[i])
            new = [Fraction(0)] * (len(poly) + 1)
            for k, c in enumerate(poly):
                new[k + 1] += c
                new[k] -= c * nodes[i]
            poly = new
            denom *= nodes[j] - nodes[i]
        out.append([c / denom for c in poly])
    return out


def _bin_moments(z, lo, invH, P, R, weights=None, absolute=False):
    """``M[r, b] = sum_{j in bin b} wt_j u_j^r`` with ``z_j = lo + (b + u_j) H``,
    ``|u_j| <= 1/2`` (``wt = 1`` when ``weights`` is None); with ``absolute`` (and
    ``weights``) returns ``(M, W)`` with ``W[b] = sum_{j in bin b} |wt_j|`` too, from
    the same pass.

    One bincount per order over the scores in their own order, in cache-sized
    chunks: no sort, no reordering of the weights (a comparison sort of the
    scores costs several times all the bincounts together).  Each bin's sum
    runs over its scores in row order (chunk by chunk), a sequential sum of
    terms of one sign for even orders.
    """
    M = np.zeros((R + 1, P))
    W = np.zeros(P) if absolute else None
    m = min(_CHUNK, z.size)
    v, tmp, b = np.empty(m), np.empty(m), np.empty(m, dtype=np.int64)
    kb = _MAGIC_BITS + int(lo * invH)
    for c0 in range(0, z.size, _CHUNK):
        k = min(_CHUNK, z.size - c0)
        vk, bk = v[:k], b[:k]
        _split_lattice(z[c0:c0 + k], invH, kb, vk, tmp[:k], bk)
        if weights is None:
            M[0] += np.bincount(bk, minlength=P)
            pw = vk.copy()
        else:
            pw = np.array(weights[c0:c0 + k], dtype=np.float64)
            M[0] += np.bincount(bk, weights=pw, minlength=P)
            if absolute:
                W += np.bincount(bk, weights=np.abs(pw), minlength=P)
            pw *= vk
        for r in range(1, R + 1):
            if r > 1:
                pw *= vk
            M[r] += np.bincount(bk, weights=pw, minlength=P)
    return (M, W) if absolute else M


# 1.5 * 2^52: for |v| < 2^51, v + _MAGIC lies in [2^52, 2^53) where the spacing of
# doubles is 1, so the addition rounds v to the nearest integer (ties to even) and
# the low bits of the sum are that integer (offset by the constant's own bits)
_MAGIC = 6755399441055744.0
_MAGIC_BITS = int(np.float64(_MAGIC).view(np.int64))
_LATTICE_MAX = 2.0 ** 40    # |z| bound for the lattice split (|v| = |z| / spacing < 2^51)


def _split_lattice(z, inv, kbits, frac, tmp, idx):
    """Exact split of ``v = z * inv`` (``inv`` a power of two >= 1, so ``v`` is exact)
    into ``rint(v)`` and ``frac = v - rint(v)`` in ``[-1/2, 1/2]``; writes
    ``idx = rint(v) + _MAGIC_BITS - kbits`` (an int64 index: ``kbits`` carries the
    lattice offset of the grid origin).

    ``s = v + 1.5 * 2^52`` is ``rint(v)`` plus the constant, exactly, and so is its
    bit pattern read as an integer; ``s - 1.5 * 2^52`` is ``rint(v)`` exactly, and
    ``v - rint(v)`` is exact (the fraction bits of ``v``).  Five passes, no
    rounding anywhere -- where ``(z - lo) / H`` formed in floating point would
    lose half an ulp of ``z - lo`` and move ``log p`` by its slope times that.
    Requires ``|z| * inv < 2^51`` (callers keep ``|z| <= 2^40``).
    """
    np.multiply(z, inv, out=frac)
    np.add(frac, _MAGIC, out=tmp)
    np.subtract(tmp.view(np.int64), kbits, out=idx)
    tmp -= _MAGIC
    frac -= tmp


def _lattice_exponent(N, tmax):
    """The largest ``e`` with ``N tmax 2^e <= 2^52``: a table ``|T| <= tmax`` rounded to the
    lattice ``2^-e`` (:func:`_on_lattice`) and integer weights summing (in modulus) to
    ``N`` have every product and partial sum an integer multiple of ``2^-e`` below
    ``2^53``, so their dot product is exact in any summation order."""
    return math.floor(math.log2(2.0 ** 52 / (N * tmax)))


def _on_lattice(T, e):
    """``T`` rounded to the nearest multiples of ``2^-e`` (``|T - T_hi| <= 2^-e-1``)."""
    return np.rint(T * 2.0 ** e) * 2.0 ** -e

def _spread_convolve(M, kL, kR, spec, cache, table="A", stride=1, extra=None):
    """``sum_b sum_r M[r, b] T_r((k - b) H) (-H)^r`` for ``k = kL, kL + stride, ..
    <= kR``: the sum over scores of the shifted kernel (``log Phi`` for table A,
    ``h`` for B).  ``extra`` (stride 1: one value per row) is added with the ``r >= 1``
    corrections, before the bulk (so the sum carries one rounding at its own scale)."""
    R = M.shape[0] - 1               # the moments' order (the cache holds at least as many)
    H = spec.H
    P = M.shape[1]
    s_lo = kL - (P - 1)
    s_top = min(kR, cache.s_hi)                     # zero beyond the right cut
    s0, A, B = cache.get(s_lo, s_top)               # (rows s_lo .. s_top at least)
    T = A if table == "A" else B
    # zero-padded table slice for s = s_lo .. kR (rows beyond s_hi are zero),
    # one contiguous row per order r
    Tsl = np.zeros((R + 1, kR - s_lo + 1))
    if s_top >= s_lo:        # else the whole slice lies beyond the cut: all zero
        Tsl[:, :s_top - s_lo + 1] = T[s_lo - s0: s_top - s0 + 1, :R + 1].T
    # Mr[r, j] = M[r, b] (-H)^r with j = P - 1 - b (exact: H a power of two), so that
    # row k' = k - kL of the sum is sum_j Tsl[r, k' + j] Mr[r, j]
    Mr = M[:, ::-1] * ((-H) ** np.arange(R + 1))[:, None]
    if stride != 1:
        # coarse rows (for the integrand windows): one pass over a strided view
        Gc = (kR - kL) // stride + 1
        st = Tsl.strides
        W3 = as_strided(Tsl, shape=(R + 1, Gc, P), strides=(st[0], stride * st[1], st[1]), writeable=False)
        return np.einsum("rkj,rj->k", W3, Mr)
    G = kR - kL + 1
    # r >= 1 (small corrections): direct convolutions over exactly the rows
    # asked for ("valid" mode), summed in order; their rounding is relative to
    # their own (small) size.  Table B (the VJPs' Gamma) takes its bulk r = 0 the same
    # way: a dot product of P terms is within P eps <= 4e-13 (P <= 3200 bins) of the
    # sum of their moduli -- of itself for positive weights, of the scale of signed
    # ones (numeric._fast._signed_T2) -- far inside the VJPs' 1e-10
    corr = np.zeros(G) if extra is None else np.array(extra, dtype=np.float64)
    for r in range(R, 0 if table == "A" else -1, -1):
        corr += np.convolve(Mr[r, ::-1], Tsl[r], mode="valid")
    if table != "A":
        return corr
    m0 = Mr[0]
    N = float(np.abs(m0).sum())
    T0max = float(np.abs(Tsl[0]).max())
    if N * T0max > 0.0 and np.array_equal(m0, np.rint(m0)):
        # r = 0 with integer weights (bin counts): T0 = T0_hi + T0_lo, T0_hi on the lattice
        # 2^-e with N max|T0| 2^e <= 2^52, so every product and partial sum of m0 . T0_hi
        # is an integer multiple of 2^-e below 2^53: exact in any order; |T0_lo| <= 2^-e-1
        # adds at most P u N 2^-e-1 <= 2 P N^2 max|T0| u^2 of rounding (2e-16 at
        # N = 1e6, P = 1e3, max|T0| = 10).  The bulk then carries one rounding of
        # |log F|, not O(log P)
        e = _lattice_exponent(N, T0max)
        hi = _on_lattice(Tsl[0], e)
        out = np.convolve(m0[::-1], hi, mode="valid")
        out += np.convolve(m0[::-1], Tsl[0] - hi, mode="valid") + corr
        return out
    # r = 0 (the bulk, up to |log F|): a Toeplitz product summed pairwise
    # along contiguous rows, so the rounding grows like log P, not P
    win = sliding_window_view(Tsl[0], P)
    out = np.empty(G)
    blk = max(1, 1_000_000 // P)
    for k0 in range(0, G, blk):
        k1 = min(G, k0 + blk)
        out[k0:k1] = (win[k0:k1] * m0).sum(axis=1)
    out += corr
    return out


def _fine_tables(node_values, q, S, d):
    """Degree-``d`` Taylor tables about ``S`` points per node interval.

    On node interval ``l .. l + 1`` the ``q``-point interpolant through nodes
    ``l - q/2 + 1 .. l + q/2`` is, about the point ``l + s / S`` (row ``s``
    serves ``pos = l + (s + delta) / S``, ``|delta| <= 1/2``: rows sit on the
    lattice of spacing ``1/S``, so a position splits into row and offset exactly),

        base + sum_j e_j delta^j,    e_j = sum_m W[s, j, m] (v_m - base),

    with ``base = v_l`` and weights ``W`` = the Taylor coefficients of the
    Lagrange basis there, computed exactly in rationals and rounded once
    (:func:`_fine_weights`).  Each ``e_j`` is then a short sum of differences
    with weights of size ~1 (``sum_m |W[s, 0, m]|`` is the Lebesgue function,
    < 3 in the central interval), so its rounding is a few ulps of the
    differences, not of ``|log g|``; the only rounding at the scale of
    ``|log g|`` is ``e_0 += base``.  (Going through monomial coefficients of the
    whole stencil instead loses ~10 ulps of ``log p`` to cancellation.)
    Truncation at ``j = d`` drops ``O((1/2S)^(d+1))`` times the ``(d+1)``-th
    derivative in node units: ``S = 16``, ``d = 4`` stay at rounding level
    (<= 6e-16 of ``max(1, |log g|)``, normal and logistic, n = 1e3..1e5,
    spreads 2..30) where ``d = 3`` gave 5e-14.  Returns ``(d + 1, rows)`` with
    row ``r = l S + s`` (rows before the first interval are unused zeros).
    ``node_values`` of shape (..., K) (several rows of nodes) gives
    ``(..., d + 1, rows)``: all intervals of all rows go through products of
    exactly ``blk`` rows (the last zero-padded), whose rounding depends on each
    row's own data only.
    """
    win = sliding_window_view(node_values, q, axis=-1)   # win[..., i, :] = values[..., i : i + q]
    base = win[..., q // 2 - 1]
    lead, nint = base.shape[:-1], base.shape[-1]
    off = (q // 2 - 1) * S                          # row of interval i = 0, s = 0
    tab = np.zeros(lead + (d + 1, off + nint * S))
    # e[i, j S + s] = sum_m W[s, j, m] (win[i, m] - base[i]): a (nint, q) x (q, (d+1) S)
    # product, in blocks small enough (< 2^18 multiply-adds) that OpenBLAS stays
    # on one thread
    Wm = _fine_weights(q, S, d)
    if lead:
        # the products in blocks of exactly _FINE_ROWS intervals of all rows (the last
        # zero-padded: a row's entries do not depend on its batch), then moved into the
        # table's layout by one strided copy
        blkj = _FINE_ROWS
        N = base.size
        diff = np.zeros((N + (-N) % blkj, q))
        np.subtract(win.reshape(-1, q), base.reshape(-1, 1), out=diff[:N])
        e = np.empty((diff.shape[0], (d + 1) * S))
        for i0 in range(0, diff.shape[0], blkj):
            np.matmul(diff[i0:i0 + blkj], Wm, out=e[i0:i0 + blkj])
        tab2 = tab.reshape(-1, d + 1, tab.shape[-1])
        rows = tab2.shape[0]
        # e[(row, i), (j, s)] -> tab2[row, j, off + i S + s]
        tab2[:, :, off:].reshape(rows, d + 1, nint, S)[...] = e[:N].reshape(rows, nint, d + 1, S).transpose(0, 2, 1, 3)
        tab2[:, 0, off:].reshape(rows, nint, S)[...] += base.reshape(rows, nint, 1)
        return tab
    blk = max(1, (1 << 18) // (q * (d + 1) * S))
    e = np.empty((nint, (d + 1) * S))
    for i0 in range(0, nint, blk):
        i1 = min(nint, i0 + blk)
        np.matmul(win[i0:i1] - base[i0:i1, None], Wm, out=e[i0:i1])
    e = e.reshape(nint, d + 1, S)
    e[:, 0, :] += base[:, None]
    tab[:, off:].reshape(d + 1, nint, S)[...] = np.moveaxis(e, 0, 1)
    return tab


_FINE_ROWS = 128   # intervals per product of the row-batched tables (few rows pad little)
_FINE_W = {}
_FINE_W_LOCK = threading.Lock()


def _fine_weights(q, S, d):
    """``W[s, j, m]``: coefficient of ``delta^j`` in the Lagrange basis polynomial
    of stencil node ``m`` about the point ``l + s / S`` (exact, rounded once),
    returned as the ``(q, (d + 1) S)`` matrix ``W[s, j, m]`` at ``[m, j S + s]``."""
    key = (q, S, d)
    W = _FINE_W.get(key)
    if W is None:
        L = _lagrange_monomials(q)
        W = np.zeros((S, d + 1, q))
        for s in range(S):
            ws = Fraction(2 * s - S, 2 * S * q)            # (s / S - 1/2) / q
            for j in range(d + 1):
                scale = Fraction(1, S * q) ** j
                for m in range(q):
                    W[s, j, m] = float(scale * sum(math.comb(k, j) * ws ** (k - j) * L[m][k]
                                                   for k in range(j, q)))
        W = np.ascontiguousarray(W.transpose(2, 1, 0).reshape(q, (d + 1) * S))
        W.flags.writeable = False
        with _FINE_W_LOCK:
            _FINE_W.setdefault(key, W)
        W = _FINE_W[key]
    return W


def _eval_at_scores(z, geo, node_values, out=None, deriv=None, shift=None):
    """Interpolate node values at the scores (chunked); returns an (n,) array.

    Per score: ``t = S * (node position)`` split exactly into the fine row
    ``r = rint(t)`` and ``delta = t - r`` in ``[-1/2, 1/2]`` (:func:`_split_lattice`:
    ``t = z * S / (ms H)`` up to an integer, the grid origin being on the H
    lattice), then Horner in ``delta`` over the ``d + 1`` table columns (one
    ``take`` each); ``S``, ``d`` from the family's ``_Spec``.  With ``deriv``
    (an (n,) array) the derivative with respect to the score is written there
    too (the same Horner pass, ``dt/dz = S / (ms H)``).  With ``shift`` returns
    ``(out, sum exp(out - shift))``, summed chunk by chunk while in cache.
    """
    S, d = geo.fine_S, geo.fine_d
    tab = _fine_tables(node_values, geo.q, S, d)
    out = np.empty_like(z) if out is None else out
    a = S * geo.invH / geo.ms                       # a power of two
    # fine row r <-> node position r / S, node l = lL + ms j at position j:
    # r = rint(z a) - (lo + lL H) a, an integer (lo on the H lattice)
    r0 = round((geo.lo + geo.lL * (1.0 / geo.invH)) * a)
    kbits = _MAGIC_BITS + r0
    # the rows needed are those whose stencil lies inside the node grid (checked once)
    r_lo = int(np.rint(geo.zmin * a)) - r0
    r_hi = int(np.rint(geo.zmax * a)) - r0
    if r_lo < (geo.q // 2 - 1) * S or r_hi >= tab.shape[1]:
        raise NotImplementedError("interpolation stencil leaves the node grid")
    m = min(_CHUNK, z.size)
    t = np.empty(m)
    ri = np.empty(m, dtype=np.int64)
    tmp = np.empty(m)
    tot = 0.0
    for c0 in range(0, z.size, _CHUNK):
        zc = z[c0:c0 + _CHUNK]
        k = zc.size
        tt, rr, tm = t[:k], ri[:k], tmp[:k]
        # exact row and offset: log p moves by (d log p / dz) * dz, and a lost
        # half ulp of z - lo (1.8e-15 at a range of 17) cost up to ~10 ulps of log p
        _split_lattice(zc, a, kbits, tt, tm, rr)
        acc = out[c0:c0 + k]
        np.take(tab[d], rr, out=acc, mode="wrap")
        if deriv is not None:
            dacc = deriv[c0:c0 + k]
            dacc[...] = acc
        for j in range(d - 1, -1, -1):
            acc *= tt
            np.take(tab[j], rr, out=tm, mode="wrap")
            acc += tm
            if deriv is not None and j > 0:
                # p' = sum_j j e_j delta^(j-1): Horner alongside the value
                dacc *= tt
                dacc += acc
        if deriv is not None:
            dacc *= a
        if shift is not None:
            np.subtract(acc, shift, out=tm)
            exp_terms(tm, out=tm)
            tot += float(tm.sum())
    return out if shift is None else (out, tot)


def _signed_logadd(l1, n1, l2, n2):
    """``(l, neg)`` with ``(-1)^neg e^l = (-1)^n1 e^l1 + (-1)^n2 e^l2`` (elementwise; an
    exact cancellation gives ``-inf``).  The sum's rounding is a few ulps of the larger
    magnitude: relative to the sum of the moduli, as the signed spreads' own."""
    hi = np.maximum(l1, l2)
    big_neg = np.where(l1 >= l2, n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.exp(np.minimum(l1, l2) - hi)
        l = hi + np.where(n1 == n2, np.log1p(d), np.log1p(-d))
    return np.where(np.isfinite(hi), l, -np.inf), big_neg
