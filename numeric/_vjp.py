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

VJP_RTOL = 1e-13


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
    lp, row = quadrature_log_probs(y, fam, return_row=True)
    m = len(row.vals)
    inv = row.inverse
    # per unique value: G_u = sum_{j in u} g_j   (log=True: g_j = c_j / p_j)
    Gsum = np.zeros(m)
    np.add.at(Gsum, inv, g)
    lG, sG = _signed_log(Gsum)
    lpu = np.empty(m)
    lpu[inv] = lp
    if log:
        lG = lG - lpu
    logc = np.log(row.counts)

    def integrand(u):
        x = np.sinh(u)
        lF = row.log_F(x)
        lh = row.log_h(x)
        dead = np.isneginf(lh) | np.isneginf(lF)[None, :]
        lh = np.where(dead, -np.inf, lh)
        lS = logsumexp(lh + logc[:, None], axis=0)
        # Gamma = sum_u G_u h_u, signed, formed around its largest term
        t = lh + lG[:, None]
        mx = np.max(t, axis=0)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        gam = np.sum(sG[:, None] * np.exp(t - mx[None, :]), axis=0)
        with np.errstate(divide="ignore"):
            lGam = np.log(np.abs(gam)) + mx
        sGam = np.sign(gam)
        base = lh + lF[None, :]
        with np.errstate(invalid="ignore"):
            L1 = base + lS[None, :]
            L2 = base + lGam[None, :]
        L1 = np.where(np.isnan(L1), -np.inf, L1)
        L2 = np.where(np.isnan(L2), -np.inf, L2)
        L = np.concatenate([L1, L2], axis=0)
        S = np.concatenate([np.ones_like(L1), np.broadcast_to(sGam, L2.shape)], axis=0)
        return L, S

    if row.edges is None:
        # all scores tied (p = 1/n needed no quadrature): integrate T1, T2 on the default domain
        from ._quadrature import _domain
        edges, _ = _domain(row)
    else:
        edges = row.edges
    lI, sI, lA, _ = integrate_components(integrand, 2 * m, edges,
                                         lambda lA: np.full(lA.shape, VJP_RTOL), what="vector-Jacobian product")
    lT1, lT2, sT2 = lI[:m], lI[m:], sI[m:]
    lg_k, sg_k = _signed_log(g)
    if log:
        lg_k = lg_k - lp
    with np.errstate(over="ignore", invalid="ignore"):
        out = sg_k * np.exp(lg_k + lT1[inv]) - sT2[inv] * np.exp(lT2[inv])
    return out, lp
