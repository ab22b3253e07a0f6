"""Vector-Jacobian products of probs and log_probs by quadrature.

Differentiating ``p_i = int phi(x - mu_i) prod_{j != i} Phi(x - mu_j) dx``:
for i != k, ``dp_i/dmu_k = -int h_i h_k F``; the diagonal follows from
``sum_i p_i = 1``: ``dp_k/dmu_k = int h_k F (S - h_k)``.  Hence, with
``S = sum_j h_j`` and ``Gamma = sum_j g_j h_j``,

    (J^T g)_k = int h_k F (g_k S - Gamma) dx = g_k T1_k - T2_k,
    T1_k = int h_k F S dx  (> 0),     T2_k = int h_k F Gamma dx  (signed).

Both are integrated by the same adaptive log-space Gauss-Kronrod engine
as the probabilities (O(n G)).  ``sum_k (J^T g)_k = int F S Gamma - int F S Gamma = 0``.

For log_probs, ``d log p_i = dp_i / p_i``: the same formula with
``g_j = c_j / p_j``.  The products are formed in log space
(``log h_j - log p_j``), so entries with p_j far below 1e-300 are fine.
Under the Gumbel closed form: ``J^T g = p * (g - <g, p>)`` and
``J_log^T c = c - p * sum(c)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from ._quadrature import Row, integrate_components, quadrature_log_probs

__all__ = ["quadrature_vjp", "softmax_vjp", "softmax_log_vjp"]

VJP_RTOL = 1e-12


def _row_without_probs(y, fam):
    from ._quadrature import Row, _domain
    y = y - y.max()
    g = -y
    far = g > 1e6
    if far.any():
        # same float64-range screening as the probabilities (p below e^-1.8e308 -> 0)
        return quadrature_log_probs(y, fam, return_row=True)
    row = Row(y, fam)
    row.subset = None
    row.edges = _domain(row)[0]
    return None, row


def softmax_vjp(lp, g):
    """J^T g for p = softmax: p * (g - sum(g p)) (rows of (m, n) arrays)."""
    p = np.exp(lp)
    gm = np.where(p > 0, g, 0.0)
    return p * (g - np.sum(gm * p, axis=-1, keepdims=True))


def softmax_log_vjp(lp, c):
    """J^T c for log_softmax: c - p * sum(c)."""
    p = np.exp(lp)
    return c - p * np.sum(c, axis=-1, keepdims=True)


def _signed_log(v):
    with np.errstate(divide="ignore"):
        return np.log(np.abs(v)), np.sign(v)


def quadrature_vjp(y, g, fam, *, log=False):
    """(J^T g)_k for one finite standardized row ``y`` (derivative w.r.t. ``y``).

    ``log=False``: Jacobian of p; ``log=True``: Jacobian of log p.
    """
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if log:
        lp, row = quadrature_log_probs(y, fam, return_row=True)
    else:
        # probs VJP needs no probabilities: integrate T-terms on the initial domain
        # (its ends bound the dropped mass of F' by F(X_L) and sf(X_R)^2 scales)
        lp, row = _row_without_probs(y, fam)
    if row.subset is not None:
        # entries with p below the float64 range (log p = -inf): zero gradient, cotangent dropped
        out = np.zeros(y.shape)
        sub, _ = quadrature_vjp(y[row.subset], g[row.subset], fam, log=log)
        out[row.subset] = sub
        return out, lp
    m = len(row.vals)
    inv = row.inverse
    # per unique value: G_u = sum_{j in u} g_j   (log=True: g_j = c_j / p_j)
    Gsum = np.zeros(m)
    np.add.at(Gsum, inv, g)
    lG, sG = _signed_log(Gsum)
    lpu = np.zeros(m)
    if log:
        lpu[inv] = lp
    if log:
        # entries with p = 0 (bounded supports) have log p = -inf locally constant:
        # their cotangents drop out and their gradient is 0
        zero = np.isneginf(lpu)
        lG = np.where(zero, -np.inf, lG - np.where(zero, 0.0, lpu))
        sG = np.where(zero, 0.0, sG)
    logc = np.log(row.counts)

    tied = np.flatnonzero(row.counts > 1)

    def integrand(u):
        x = np.sinh(u)
        lF = row.log_F(x)
        lh = row.log_h(x)
        dead = np.isneginf(lh) | np.isneginf(lF)[None, :]
        lh = np.where(dead, -np.inf, lh)
        cols = np.arange(x.size)
        # S_{-u} = S - c_u h_u (own group left out: T1 = int h_u F S alone diverges where
        # h blows up at a support end).  For u not the largest term, c_u h_u <= S/2 and
        # the subtraction is exact to 2 eps; the largest term's complement is summed directly.
        a = lh + logc[:, None]
        lS = logsumexp(a, axis=0)
        top = np.argmax(a, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lSm = lS[None, :] + np.log1p(-np.exp(a - lS[None, :]))
        a_top_out = a.copy()
        a_top_out[top, cols] = -np.inf
        lSm[top, cols] = logsumexp(a_top_out, axis=0)
        # Gamma_{-u} = sum_{v != u} G_v h_v (signed), same leave-one-out device
        with np.errstate(invalid="ignore"):
            b = lh + lG[:, None]
        b = np.where(np.isnan(b), -np.inf, b)
        mx = np.max(b, axis=0)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        e = sG[:, None] * np.exp(b - mx[None, :])
        tot = e.sum(axis=0)
        gm = tot[None, :] - e
        btop = np.argmax(b, axis=0)
        e[btop, cols] = 0.0
        gm[btop, cols] = e.sum(axis=0)
        with np.errstate(divide="ignore"):
            lGm = np.log(np.abs(gm)) + mx[None, :]
        sGm = np.sign(gm)
        base = lh + lF[None, :]
        with np.errstate(invalid="ignore"):
            L1 = base + lSm
            L2 = base + lGm
            L3 = base[tied] + lh[tied]
        L = np.concatenate([L1, L2, L3], axis=0)
        L = np.where(np.isnan(L), -np.inf, L)
        S = np.concatenate([np.ones_like(L1), sGm, np.ones_like(L3)], axis=0)
        return L, S

    if row.edges is None:
        # all scores tied (p = 1/n needed no quadrature): integrate on the default domain
        from ._quadrature import _domain
        edges, _ = _domain(row)
    else:
        edges = row.edges
    ncomp = 2 * m + tied.size
    lI, sI, lA, _ = integrate_components(integrand, ncomp, edges,
                                         lambda lA: np.full(lA.shape, VJP_RTOL),
                                         what="vector-Jacobian product")
    # (J^T g)_k = g_k (A'_u + (c_u - 1) D_u) - E_u - (G_u - g_k) D_u,  u = group of k
    with np.errstate(over="ignore", invalid="ignore"):
        A = np.exp(lI[:m])
        E = sI[m:2 * m] * np.exp(lI[m:2 * m])
        D = np.zeros(m)
        D[tied] = np.exp(lI[2 * m:])
        if log:
            # g = c / p formed in log space: g_k X = c_k exp(log X - log p_k)
            lpz = np.where(np.isneginf(lpu), 0.0, lpu)
            Aw = np.exp(lI[:m] - lpz)
            Dw = np.zeros(m)
            Dw[tied] = np.exp(lI[2 * m:] - lpz[tied])
            cnt = row.counts
            csum = np.zeros(m)
            np.add.at(csum, inv, g)
            out = g * (Aw[inv] + (cnt[inv] - 1.0) * Dw[inv]) - E[inv] - (csum[inv] - g) * Dw[inv]
            out = np.where(np.isneginf(lp), 0.0, out)
        else:
            out = g * (A[inv] + (row.counts[inv] - 1.0) * D[inv]) - E[inv] - (Gsum[inv] - g) * D[inv]
    return out, lp
