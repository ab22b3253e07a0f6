"""Fast path for heavy (Cauchy) tails: near field on a grid, far field by multipoles.

With Cauchy noise the maximum of n draws sits near ``n / pi`` and
``F(x) = prod_j Phi(x - z_j)`` approaches 1 like ``1 - n / (pi x)``, so the
integrands ``h(x - m) F(x)`` of ``g(m) = int h(x - m) F(x) dx`` live on every
scale up to ``~n`` and decay only like ``1/x^2``.  Split the line at
``c +- B`` (``c`` the centre of the scores, ``a`` their half range,
``B = 4 a + 8``):

* near field ``|x - c| <= B``: ``log F`` on the uniform grid of
  ``numeric._fast`` (Taylor spreading + direct convolution), interpolated
  (16-point Lagrange) at Gauss-Legendre nodes, 12 per panel of width 1/2
  (the integrand's nearest singularities are at distance 1 from the axis:
  ``Phi`` and ``h`` are singular at ``+-i``; the panel error is then
  ~``(4 + sqrt 17)^-24 < 1e-21``);
* far field ``x = c +- B e^s``, ``0 <= s <= 60``, 12 Gauss-Legendre nodes per
  unit panel of ``s``; there ``|z_j - c| <= a <= |x - c| / 4``, so

      log F(x) = sum_r a_r(x - c) (-1)^r mu_r,      mu_r = sum_j (z_j - c)^r,

  converges like ``4^-r`` (32 terms; ``f = log Phi`` is analytic in the
  disc of radius ``|x - c \\pm i| >= |x - c|``), with ``a_r`` from Cauchy's
  formula on a circle of radius ``|x - c| / 2``;
* beyond ``X = c + B e^60``: ``F(x) = 1`` to 1e-20 (checked), so the
  dropped mass is ``int_X^inf h(x - m) dx ~ int_X^inf phi(x - m) dx =
  atan(1 / (X - m)) / pi``, added in log space; on the left
  ``F(c - B e^60) < (pi B e^60)^-n``, negligible (checked: the integrand at
  the far-left node is below ``e^-45`` of its peak).

Only log-probabilities (no VJP).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from scipy.special import logsumexp

from ._fast_kernels import taylor_tables

_GLX, _GLW = np.polynomial.legendre.leggauss(12)
_RM = 32            # multipole order
_S_MAX = 60.0       # far field: x = c +- B e^s, 0 <= s <= S_MAX
_TAIL = 45.0


def _gl_nodes(a, b, width):
    """Composite 12-point Gauss-Legendre nodes/weights on [a, b], panels <= width."""
    npan = max(1, int(math.ceil((b - a) / width)))
    edges = np.linspace(a, b, npan + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    x = (mid[:, None] + half[:, None] * _GLX[None, :]).ravel()
    w = (half[:, None] * _GLW[None, :]).ravel()
    return x, w


def _multipole_moments(z, c):
    mu = np.zeros(_RM + 1)
    for c0 in range(0, z.size, 8192):
        d = z[c0:c0 + 8192] - c
        pw = np.ones_like(d)
        mu[0] += d.size
        for r in range(1, _RM + 1):
            pw *= d
            mu[r] += pw.sum()
    return mu


_FAR = {}
_FAR_LOCK = threading.Lock()


def _far_field_tables(fam, B):
    """(s nodes, weights, t = B e^s, Taylor rows a_r(+-t)) for a quantized B;
    built once per B under a lock, read only afterwards."""
    with _FAR_LOCK:
        hit = _FAR.get(B)
        if hit is None:
            s, ws = _gl_nodes(0.0, _S_MAX, 1.0)
            t = B * np.exp(s)
            rows = []
            for side in (1.0, -1.0):
                A, _ = taylor_tables(fam, side * t, _RM, rho=0.5 * t, ncirc=64)
                A.flags.writeable = False
                rows.append(A)
            hit = (t, ws * t, rows[0], rows[1])
            _FAR[B] = hit
        return hit


def cauchy_node_log_g(z, fam, geo, LF, spec, interp_points):
    """log g at the m nodes ``m_l = lo + l H`` (increasing l) for Cauchy noise."""
    H = spec.H
    lo = geo.lo
    hi = float(z.max())
    c = 0.5 * (lo + hi)
    a = 0.5 * (hi - lo)
    # B >= 4 a + 8, quantized to 2^(k/4) so the far-field tables can be cached
    B = 2.0 ** (math.ceil(4.0 * math.log2(4.0 * a + 8.0)) / 4.0)
    # near field
    x_in, w_in = _gl_nodes(c - B, c + B, 0.5)
    pos = (x_in - lo) / H - geo.kL
    lf_in = interp_points(LF, pos)
    # far field (both sides share the s nodes)
    t, w_out, A_right, A_left = _far_field_tables(fam, B)      # dx = B e^s ds
    mu = _multipole_moments(z, c)
    sign = (-1.0) ** np.arange(_RM + 1)
    lf_side = [np.einsum("ir,r->i", A, sign * mu) for A in (A_right, A_left)]
    x_all = np.concatenate([x_in, c + t, c - t])
    lf_all = np.concatenate([lf_in, lf_side[0], lf_side[1]])
    logw = np.log(np.concatenate([w_in, w_out, w_out]))
    if not np.all(np.isfinite(lf_all)):
        raise NotImplementedError("non-finite log F in the cauchy fast path")
    # beyond X the integrand is h(x - m) (F = 1 to ~n / (pi X) < 1e-20)
    X = c + t[-1]
    if lf_side[0][-1] < -1e-20:
        raise NotImplementedError("F not yet 1 at the end of the far field")
    base = lf_all + logw
    m = lo + H * np.arange(geo.lL, geo.lR + 1, geo.ms)
    out = np.empty(m.size)
    blk = max(1, 200_000 // x_all.size)
    for i0 in range(0, m.size, blk):
        mm = m[i0:i0 + blk]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            L = fam.loghazard(x_all[None, :] - mm[:, None]) + base[None, :]
        peak = L.max(axis=1)
        # ends of the near/far node sets: the far-left end must have decayed
        if np.any(L[:, -1] > peak - _TAIL):
            raise NotImplementedError("cauchy integrand not decayed at the left end")
        tail = np.log(np.arctan(1.0 / (X - mm)) / np.pi)
        out[i0:i0 + blk] = np.logaddexp(logsumexp(L, axis=1), tail)
    return out
