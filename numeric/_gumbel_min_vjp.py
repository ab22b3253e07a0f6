"""Dense VJPs of ``log p`` of gumbel_min rows by a node matrix of posterior expectations.

Notation of :mod:`numeric._fast`: standardized scores ``z``, ``F = prod_j Phi(x - z_j)``,
``h = (log Phi)'``, ``g(m) = int h(x - m) F dx`` (``p_i = g(z_i)``), and the posterior
of entry ``i``, the probability density ``rho_i(x) = h(x - z_i) F(x) / p_i``.  With
``K_kj = int h_k h_j F = p_k E_k[h_j] = p_j E_j[h_k]`` (``E_i`` the expectation under
``rho_i``) the VJP of ``log p`` with cotangent ``c`` is

    (J^T c)_k = sum_{j != k} (c_k / p_k - c_j / p_j) K_kj
              = c_k E_k[S] - B(z_k),      S = sum_j h_j = (log F)',
    B(y) = sum_i c_i Q(z_i, y),           Q(m, y) = E_{rho_m}[h(x - y)]  in [0, 1],

and ``E_k[S] = (log g)'(z_k)`` (by parts, ``g'(m) = int h(x - m) F S``): the engine's
derivative of its interpolant of ``log g``.  No weight ``1 / p_i`` appears: the per-row
engine's ``Gamma = sum_j (c_j / p_j) h_j`` spans ``e^(10^5)`` and more on wide rows
(entries with ``log p ~ -10^5``), and ``log(F Gamma)`` turns between dominating terms
within ``1 / #above``, finer than its grid.  ``Q`` is smooth in both arguments
(``rho_m`` moves with ``m`` like its mean, about ``m + log #above``; ``h`` is analytic in
``|Im t| < pi/2``), so both are interpolated with the engine's q-point stencils on
nodes ``m_a`` at every grid step (not the engine's node stride: the q-th differences are
then ``2^q`` times smaller, which the error estimate below needs on long rows):
``Q[a, b] = Q(m_a, m_b)``, ``C_a = sum_i c_i L_a(z_i)`` (``L_a(z_i)`` the weight of node
``a`` in the engine's interpolant at ``z_i``: its transpose), ``B_b = sum_a C_a Q[a, b]``,
and ``B`` at the scores by that interpolant.

``Q[a, .]`` comes from the rule the engine uses for ``g(m_a)``, normalized by its own
sum (``rho_a`` integrates to 1): the trapezoid rule on the x grid where it resolves
``rho_a`` (second difference of ``log rho_a`` at the peak <= 0.35: >= 1.7 samples per
standard deviation, rule error < 1e-24), otherwise (``sigma ~ 1 / sqrt(#above)``, narrow)
the local rule of :func:`numeric._fast._refine_rows` -- step ``sigma / 4`` on ``+-12
sigma`` (widened x4 up to 768 sigma to span the grid rows within ``e^-45`` of the peak
and until the integrand has decayed by ``e^-45`` at both ends), ``log F`` interpolated
by 16-point stencils, agreement with the rule of step ``sigma / 2`` to 1e-8 required --
moved onto the grid:
``h(x_p - m_b)`` at its points is the 16-point interpolant of ``h(x_k - m_b)``, whose
error, ``|h^(16)| (H/2)^16``-sized, is below 1e-20 where ``h`` is not negligible
(analytic in a strip of half width ``pi/2``: ``16! (H / 0.5)^16 e^(e^t 0.12)`` relative
to ``h(t)``, 5e-13 at ``t = 4.6`` where ``h ~ 1e-42``).  So every rule has the
``Q[a, b] = sum_k W[a, k] h(x_k - m_b)`` form, a matrix product against ``h`` on the grid
offsets, taken over the band of ``b`` where some row of the rule has ``-2 <= x_k - m_b
<= 6.6``.  Above it (``x_k - m_b < -2`` on every row) ``h(t) = t' / (e^t' - 1)``
(``t' = e^t``) is its Bernoulli series ``sum_r (B_r / r!) e^(r t)`` (radius ``t' < 2 pi``)
through ``r = 12``, off by less than ``1e-23``, so ``Q[a, b] = sum_r (B_r / r!)
e^(r (x_c - m_b)) sum_k W[a, k] e^(r (x_k - x_c))``: eight products; below it ``h <
e^-700`` and ``Q[a, b] = 0``.

Error control, per entry, against the README's ``1e-10`` of its sum of |terms|
``T_k = sum_{j != k} |c_k E_k[h_j] - c_j E_j[h_k]|``.  The estimate: ``1e-14`` of ``|c_k|
E_k[S]`` and of ``B_+(z_k) + B_-(z_k)`` (the parts of ``B`` from the positive and the
negative entries of ``c``: the rules' and interpolants' relative accuracy) plus the
interpolation errors of ``Q`` along its first argument (its q-th differences, weighted
by ``|c L|`` near each node), the rounding of the signed Lagrange sums (``q`` ulps of
``sum |c L| Q``) and the interpolation error of ``B`` (its q-th differences), the
largest over the score's stencil.  Lower bounds of ``T_k``: ``|(J^T c)_k|``; the
terms of the entries of the other sign, ``B_-+(z_k)`` (``|c_k E_k[h_j] - c_j E_j[h_k]|
>= |c_j| E_j[h_k]`` when ``c_j c_k < 0``); ``|c_k| (E_k[S] - 1) - B_+ - B_-``
(``E_k[h_k] <= 1``); and ``B_+ + B_- - |c_k| E_k[S]`` (all of ``T_k`` when ``c_k = 0``).  A row where an estimate exceeds ``1e-10`` of its entry's lower
bound (or, below ``1e-200`` of the row's total, that size) is declined
(``NotImplementedError``) and the caller uses the per-row engine.

The engine's kernel, numeric._gumbel_min_dense.dense_log_vjp_row, forms ``Q`` by
blocks of its band and bounds the rules' tails as well; this module holds the parts it
shares (rules on the grid, ``h``, the transposed interpolation, the constants):

>>> import numpy as np
>>> from numeric.families import get_family
>>> from numeric._fast import _cache_for
>>> from numeric._gumbel_min_dense import dense_log_vjp_row
>>> fam = get_family("gumbel_min")
>>> z = np.linspace(-4.0, 4.0, 400); c = np.cos(z)
>>> v = dense_log_vjp_row(z, c, fam, fam.fast, _cache_for(fam))
>>> bool(abs(v.sum()) < 1e-12 * abs(v).sum())
True
"""

from __future__ import annotations

import math

import numpy as np

from ._exp import exp_terms
from ._fast_grid import _MAGIC_BITS, _fine_weights, _split_lattice
from ._fast import _CHUNK, _TAIL, _checked_peaks

_BLOCK = 32     # nodes per block (a block's rows share one band of second-argument nodes)
# h(t) = t' / (e^t' - 1), t' = e^t: its Bernoulli series sum_r (B_r / r!) e^(r t) (radius
# t' < 2 pi) through r = 12 (B_odd = 0 beyond r = 1) is used where t <= -_FAR: the rest
# is below sum_(k >= 7) 2 (e^-_FAR / 2 pi)^(2k) < 1e-23; h < e^-700 where t > _ZERO
_BERN = ((0, 1.0), (1, -0.5), (2, 1.0 / 12.0), (4, -1.0 / 720.0), (6, 1.0 / 30240.0),
         (8, -1.0 / 1209600.0), (10, 1.0 / 47900160.0), (12, -691.0 / 1307674368000.0))
_FAR = 2.0
_ZERO = 6.6
_REL = 1e-14    # relative accuracy of the rules, interpolants and products
_ROUND = 2.3e-16  # one rounding step, relative
# bound of sum_m |coefficient of node m| of the engine's interpolant (its Lebesgue
# function, < 3 in the central interval of the 16-point stencil; the fine tables'
# Taylor terms add < 1e-3 of it)
_LEBESGUE = 3.0
_LIMIT = 1e-10  # the README's bound
_MACS = 1 << 18


def _grid_rules(win, LFv, a0, a1, A, B):
    """Trapezoid weights (rows normalized, columns A..B-1) of nodes a0..a1-1 (row index of
    ``win``), the peak index, curvature, the three samples around the peak, and the first
    and last grid rows within ``_TAIL`` of the peak."""
    L = win[a0:a1, A:B] + LFv[None, A:B]
    kmax, peak, curv = _checked_peaks(L)
    r = np.arange(a1 - a0)
    trip = np.stack([L[r, kmax - 1], peak, L[r, kmax + 1]], axis=1)
    above = L >= (peak - _TAIL)[:, None]
    first = np.argmax(above, axis=1) + A
    last = B - 1 - np.argmax(above[:, ::-1], axis=1)
    L -= peak[:, None]
    exp_terms(L, out=L)
    L /= L.sum(axis=1, keepdims=True)
    return L, kmax + A, curv, trip, first, last


def _product(A, B, out):
    """``out = A @ B`` in column blocks of at most ``_MACS`` multiply-adds, so that
    OpenBLAS stays on one thread (its worker threads spin on a loaded machine and
    cost many times the work)."""
    cols = max(1, _MACS // max(1, A.shape[0] * A.shape[1]))
    for j in range(0, B.shape[1], cols):
        np.matmul(A, B[:, j:j + cols], out=out[:, j:j + cols])
    return out


def _h(t):
    """``h(t) = e^t / expm1(e^t)``: 1 where ``e^t`` underflows, 0 where ``expm1`` overflows
    (``h(t) < e^-700`` for ``t > 6.6``), relative accuracy a few ulps in between."""
    v = np.exp(t)
    with np.errstate(over="ignore", invalid="ignore"):
        out = v / np.expm1(v)
    out[v == 0.0] = 1.0
    return out


def _lagrange_pos(s, q):
    """First stencil point and the q Lagrange weights at positions ``s`` (in units of
    a unit-spaced grid; barycentric form)."""
    j0 = np.floor(s).astype(np.intp) - (q // 2 - 1)
    u = s - j0
    k = np.arange(q)
    bw = np.array([(-1.0) ** i * math.comb(q - 1, i) for i in range(q)])
    d = u[:, None] - k[None, :]
    exact = d == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = bw[None, :] / d
        W = t / t.sum(axis=1, keepdims=True)
    hit = exact.any(axis=1)
    if hit.any():
        W[hit] = exact[hit].astype(np.float64)
    return j0, W


def _spread_scores(z, cs, geo):
    """The transpose of :func:`numeric._fast_grid._eval_at_scores` (the engine's interpolant
    of node values at the scores) applied to each vector of ``cs``: ``C_a = sum_i c_i
    L_a(z_i)`` with ``L_a(z_i)`` the coefficient of node value ``a`` in the interpolant at
    ``z_i``; and ``sum |c_i|`` over the scores whose stencil holds node ``a`` (of
    ``|cs[0]|``).  The interpolant at a score in fine row ``r`` (interval ``i``, sub-row
    ``s``) with offset ``delta`` is ``v_b + sum_j delta^j sum_m W[m, j S + s] (v_(i + m) - v_b)``
    (``b = i + q/2 - 1``), so only the moments ``sum c delta^j`` per fine row are needed
    (``d + 1`` bincounts), then one product with ``W``."""
    S, d, q, K = geo.fine_S, geo.fine_d, geo.q, geo.K
    nint = K - q + 1
    off = (q // 2 - 1) * S
    rows = off + nint * S
    a = S * geo.invH / geo.ms
    r0 = round((geo.lo + geo.lL * (1.0 / geo.invH)) * a)
    if int(np.rint(geo.zmin * a)) - r0 < off or int(np.rint(geo.zmax * a)) - r0 >= rows:
        raise NotImplementedError("interpolation stencil leaves the node grid")
    kbits = _MAGIC_BITS + r0
    mom = np.zeros((len(cs), d + 1, rows))
    cabs = np.zeros(rows)
    m = min(_CHUNK, z.size)
    t, tmp, r = np.empty(m), np.empty(m), np.empty(m, dtype=np.int64)
    for c0 in range(0, z.size, _CHUNK):
        k = min(_CHUNK, z.size - c0)
        tt, rr = t[:k], r[:k]
        _split_lattice(z[c0:c0 + k], a, kbits, tt, tmp[:k], rr)
        cabs += np.bincount(rr, weights=np.abs(cs[0][c0:c0 + k]), minlength=rows)
        for v, c in enumerate(cs):
            w = np.array(c[c0:c0 + k], dtype=np.float64)
            for j in range(d + 1):
                if j:
                    w *= tt
                mom[v, j] += np.bincount(rr, weights=w, minlength=rows)
    WmT = _fine_weights(q, S, d).T                     # ((d + 1) S, q)
    out = []
    part = np.empty((nint, q))
    for v in range(len(cs)):
        # coefficient of v_(i + m): one product per power j, the S fine rows of interval
        # i a row of the moments' view (no transposed copy of the moments)
        E = np.zeros((nint, q))
        for j in range(d + 1):
            E += _product(mom[v, j, off:].reshape(nint, S), WmT[j * S:(j + 1) * S], part)
        C = np.zeros(K)
        for j in range(q):
            C[j:j + nint] += E[:, j]
        C[q // 2 - 1:q // 2 - 1 + nint] += mom[v, 0, off:].reshape(nint, S).sum(axis=1) - E.sum(axis=1)
        out.append(C)
    per = cabs[off:].reshape(nint, S).sum(axis=1)
    near = np.zeros(K)
    for j in range(q):
        near[j:j + nint] += per
    return out, near


def _maxfilter(v, q):
    """Max of ``v`` over every window of q + 2 nodes centred on each node."""
    pad = q // 2 + 1
    vp = np.concatenate([np.full(pad, v[0]), v, np.full(pad, v[-1])])
    return np.lib.stride_tricks.sliding_window_view(vp, 2 * pad + 1).max(axis=1)
