"""Float64 reference for vector-Jacobian products of the perturbed argmax, written
independently of ``numeric`` (scipy special functions, Gauss-Legendre panels, log space).

``(J^T g)_k = sum_j (g_k - g_j) K_kj``,  ``K_kj = int h_k h_j F dx`` (``k != j``),
``h_j = (log Phi)'(x - z_j)``, ``F = prod_j Phi(x - z_j)``; for the derivative of
``log p`` the cotangent ``c`` enters as ``g = c / p``.  Only cotangents supported on a
few entries ``A`` are handled (one-hot, the k smallest, ...): then

    (J^T g)_k = g_k int h_k F S_{-k} - sum_{a in A, a != k} g_a K_ka
    terms_k  = sum_j |g_k - g_j| K_kj   (the entry's own sum of |terms|; for log p and
                                        k in A its upper bound |g_k| sum_j K_kj + sum_a |g_a| K_ka)

with ``S_{-k} = sum_{j != k} h_j``, all integrals of positive functions summed in log
space, so each is good to ~1e-14 relative wherever the panels resolve it.  Panels:
width 1/16 (8 Gauss-Legendre points each; the integrands' poles are >= 1 from the real
axis and their width >= 1/30 for n <= 1e3) over the scores +- 40, then panels growing by
1/8 of their distance out to 1e20 (Cauchy tails: the mass beyond is ~1e-20; the
functions are smooth on the scale of that distance there).
"""

import numpy as np
from scipy import special


def _log_cdf_pdf(name, t):
    if name == "normal":
        return special.log_ndtr(t), -0.5 * t * t - 0.5 * np.log(2 * np.pi)
    if name == "logistic":
        return -np.logaddexp(0.0, -t), -np.abs(t) - 2.0 * np.log1p(np.exp(-np.abs(t)))
    if name == "gumbel_min":
        with np.errstate(over="ignore"):
            e = np.exp(t)
        return np.log(-np.expm1(-e)), t - e
    if name == "cauchy":
        cdf = np.where(t < 0, np.arctan(-1.0 / np.where(t < 0, t, -1.0)) / np.pi, 0.5 + np.arctan(t) / np.pi)
        return np.log(cdf), -np.log(np.pi * (1.0 + t * t))
    raise KeyError(name)


def _nodes(z, name):
    lo, hi = float(z.min()) - 40.0, float(z.max()) + 40.0
    edges = np.arange(lo, hi + 1e-9, 1.0 / 16.0)
    if name == "cauchy":
        right, left = [hi], [lo]
        while right[-1] - hi < 1e20:
            right.append(right[-1] + max(1.0 / 16.0, (right[-1] - hi) / 8.0))
            left.append(left[-1] - max(1.0 / 16.0, (lo - left[-1]) / 8.0))
        edges = np.concatenate([left[::-1][:-1], edges, right[1:]])
    xg, wg = np.polynomial.legendre.leggauss(8)
    a, b = edges[:-1], edges[1:]
    x = (0.5 * (a + b))[:, None] + (0.5 * (b - a))[:, None] * xg[None, :]
    w = (0.5 * (b - a))[:, None] * wg[None, :]
    return x.ravel(), w.ravel()


def _lse(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(under="ignore", divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def reference_vjp(z, g_support, name, *, log=False):
    """``(vjp, terms, log_p)`` for scores ``z`` (standardized) and a cotangent given as
    ``{index: value}``.  With ``log=True`` the values are ``c`` (cotangent of log p)."""
    z = np.asarray(z, dtype=np.float64)
    x, w = _nodes(z, name)
    lw = np.log(w)
    n = z.size
    lF = np.zeros(x.size)
    lh = np.empty((n, x.size))
    for i0 in range(0, n, 256):
        t = x[None, :] - z[i0:i0 + 256, None]
        lc, lpdf = _log_cdf_pdf(name, t)
        lF += lc.sum(axis=0)
        lh[i0:i0 + 256] = lpdf - lc
    base = lF + lw
    lS = _lse(lh, axis=0)
    lp = _lse(lh + base[None, :], axis=1)
    A = np.array(sorted(g_support), dtype=np.intp)
    gA = np.array([g_support[a] for a in A], dtype=np.float64)
    # K[:, a] for a in A (the k = a entry is replaced below); for log p the cotangent
    # g_a = c_a / p_a is carried as K_ka / p_a, formed in log space
    lK = np.stack([_lse(lh + (lh[a] + base)[None, :], axis=1) for a in A], axis=1)   # (n, |A|)
    if log:
        lK -= lp[A][None, :]
    with np.errstate(under="ignore"):
        K = np.exp(lK)
    vjp = -(K * gA[None, :]).sum(axis=1)
    terms = (K * np.abs(gA)[None, :]).sum(axis=1)
    for i, a in enumerate(A):
        # S_{-a} = S - h_a, summed without it
        lSm = _lse(np.delete(lh, a, axis=0), axis=0)
        lT = float(_lse(lh[a] + base + lSm, axis=0))               # log sum_{j != a} K_aj
        T = float(np.exp(lT - lp[a])) if log else float(np.exp(lT))
        others = [j for j in range(A.size) if j != i]
        vjp[a] = gA[i] * T - sum(gA[j] * K[a, j] for j in others)
        KA = sum(K[a, j] for j in others)
        if log:
            # (columns carry different 1/p: the triangle bound of the same sum)
            terms[a] = abs(gA[i]) * T + sum(abs(gA[j]) * K[a, j] for j in others)
        else:
            terms[a] = abs(gA[i]) * (T - KA) + sum(abs(gA[i] - gA[j]) * K[a, j] for j in others)
    return vjp, terms, lp
