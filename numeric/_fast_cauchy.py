"""Fast path for heavy (algebraic) tails: near field on panels, far field by multipoles.

It serves the families whose engine spec says so (``NumericFamily.fast.heavy``: the
cauchy, and student_t with real ``nu`` in ``[1, 6]``, whose tails ``Phi(-t) ~ t^-nu`` make
the same structure pay); it reads the family only through ``logcdf``, ``loghazard``
and the complex hazard of its Taylor tables.  The numbers below are the cauchy's; for
student_t ``h`` is analytic in the wider strip ``|Im z| < sqrt(nu)`` (so every
truncation bound holds as stated) and ``F`` approaches 1 like ``1 - c n x^-nu``: the
far-field panels below are laid out in ``u = nu s`` (``FastSpec.tail``), where that rise,
``e^(-A e^(-u))``, is as wide as the cauchy's in ``s`` (panels of width ``1/2`` in ``s``
missed the sharper ``nu = 6`` rise by ``1e-12``, n = 1000 clusters).

With Cauchy noise the maximum of n draws sits near ``n / pi`` and
``F(x) = prod_j Phi(x - z_j)`` approaches 1 like ``1 - n / (pi x)``, so the
integrands ``h(x - m) F(x)`` of

    g(m) = int h(x - m) F(x) dx,      h = (log Phi)' = phi / Phi,

live on every scale up to ``~n`` and decay only like ``1/x^2``.  Split the
line at ``c +- T``: ``c`` the centre of the scores on the m-node lattice
``lo + j Delta`` (``Delta = ms H``), ``D`` the largest distance from ``c`` of
a score or an m node, ``T >= 2 D`` the level ``2^(k/4)`` rounded up to whole
near-field panels (so the far-field tables are cached per level).  All
node integrals are sums of *positive* terms in linear space after one
common shift ``exp(log F - s)``, so each is accurate to a few ulps.

* **far field** ``x = c +- t``, ``t = T e^s``, ``0 <= s <= 60``, 12 GL nodes on
  panels ``[0, 1/2], [1/2, 1], [1, 2], ..., [59, 60]`` of ``s`` (singularities
  at ``Re s <= -log 2`` and on ``Im s = +-pi/2``, where ``Phi(t)`` has its
  branch cuts: unit panels keep the Bernstein ellipse inside, ``6.2^-24``).
  There ``|z_j - c| <= T/2`` and ``|m - c| <= T/2``, so with ``d = m - c``,
  ``delta_j = z_j - c``

      log F(c +- t) = sum_r a_r(+-t) (-1)^r mu_r,     mu_r = sum_j delta_j^r
      h(+-t - d)    = sum_k b_k(+-t) (-d)^k

  (``a_r = f^(r)/r!``, ``b_k = h^(k)/k!``; both converge like ``2^-r``, 64
  terms: ``f`` and ``h`` are analytic in the disc of radius ``|t +- i| > t``).
  The second series separates m from x: the far field of every node is
  ``sum_k (-d)^k C_k``, ``C_k = sum_i w_i F_i b_k(+-t_i)``, one moment vector
  per call.  ``mu_r`` comes from the bin moments ``M`` of ``numeric._fast_grid``
  (``z_j = c_b + u_j H``): ``mu_r = sum_b sum_{k<=R} C(r, k) (c_b - c)^(r-k)
  H^k M[k, b]`` (the dropped ``k > R`` terms are ``(H / 2t)^(R+1)`` relative,
  the spreading's own truncation).  Taylor rows from Cauchy's formula on
  circles of radius ``0.6 t`` (128 points: aliasing ``0.6^128``).  So the
  node step reads the scores only through ``M``: its cost does not grow with n.
* **near field** ``|x - c| <= T``: Gauss-Legendre panels of width ``w = r Delta
  ~ 1/4`` with edges on the lattice, ``ng = 8`` nodes each (``h`` and ``F`` are
  singular at distance 1 from the axis, ``+-i``: panel error ``rho^-2ng``,
  ``rho = 2/w + sqrt(4/w^2 + 1) = 16.06``, ``< 1e-19``; measured: ``ng = 5``
  is still at rounding level).  ``log F`` at the GL nodes by one fixed
  16-point Lagrange filter per abscissa (the grid offsets repeat from panel
  to panel).  As nodes and panel edges share the lattice, ``h(x_pj - m_l)``
  depends on ``(p r - l, j)`` only: the panel sum is a correlation with a
  cached table ``T_j[s] = h(s Delta + w (1 + xi_j) / 2)`` (``r`` phases) --
  no transcendental per (node, panel) pair.  Since ``F`` increases,
  ``F <= F(c + T)`` on the near field: when ``F(c + T)`` times the kernel mass
  is below 1e-20 of the far field (many scores: ``F(c + T) ~ e^{-n/(pi T)}``),
  the near field and the log F grid are skipped altogether; else leading
  panels of negligible mass (below 1e-30) are dropped.
* beyond ``X = c + T e^60``: ``F = 1`` to 1e-20 (checked), so the dropped mass
  is ``int_X^inf h(x - m) dx = -log Phi(X - m)`` (exactly, ``h = (log Phi)'``);
  on the left ``F(c - t) < (pi (t - T/2))^-n``, below 1e-20 of ``g`` (checked).

**VJP.**  ``rho_Y(m) = int h F Y / int h F`` for ``S = sum_j h(x - z_j)`` and
``Gamma = sum_j gc_j h(x - z_j)``: the same sums with the extra factor ``Y``,
on the near field from their grids (table B of the spreading, built only
when the near field is needed), on the far field from the
multipoles ``Y(c +- t) = sum_k b_k(+-t) (-1)^k mu_Y,k`` (``gc``-weighted bin
moments for Gamma).  Note ``rho_S = (log g)'`` (``F S = F'``, then parts).

**Many rows** (:func:`heavy_log_probs_rows`, :func:`heavy_vjp_rows`, the public entry
points' path): the same integrals for all rows of one padded bin count at once, every
table of the node step shared by those rows and applied as matrix products in fixed
blocks of rows (see "many rows at once" below); :class:`_Row` serves the rows they leave
(the per-row engine, ``numeric._fast``).

>>> import numpy as np
>>> from numeric import _fast
>>> from numeric.families import get_family
>>> lp = _fast.fast_log_probs(np.zeros((1, 1000)), get_family("cauchy"))
>>> bool(np.abs(lp + np.log(1000)).max() < 1e-13)
True
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ._exp import exp_terms
from ._fast_grid import (_MAGIC, _MAGIC_BITS, _bin_moments, _eval_at_scores, _fine_tables, _lattice_exponent,
                         _on_lattice, _spread_convolve)
from ._fast_kernels import taylor_tables

__all__ = ["cauchy_node_log_g", "cauchy_nodes", "cauchy_node_rhos", "fast_cauchy_vjp_row", "heavy_log_probs_rows",
           "heavy_vjp_rows"]

_RM = 64            # multipole order (ratio <= 1/2: 2^-65 truncation)
_S_MAX = 60.0       # far field: x = c +- T e^s, 0 <= s <= S_MAX
_QF = 16            # Lagrange stencil for log F (and S, Gamma) at the GL nodes
_NG_FAR = 12
# far-field panels in s: halves near s = 0 (nearest singularity at Re s <= -log 2)
_S_EDGES = np.concatenate(([0.0, 0.5], np.arange(1.0, _S_MAX + 0.5)))

_LOCK = threading.Lock()
_FAR: dict = {}
_NEAR: dict = {}


def _gl_panels(edges, ng, rule=None):
    """GL nodes/weights on consecutive panels ``[edges[i], edges[i+1]]``."""
    x, w = np.polynomial.legendre.leggauss(ng) if rule is None else rule
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()


def _near_ng(w):
    """GL points per near panel of width ``w``: ``rho^-2ng < 1e-19`` with the
    Bernstein ellipse through the singularities at distance 1 (``+-i``)."""
    L = 0.5 * w
    rho = 1.0 / L + math.sqrt(1.0 / (L * L) + 1.0)
    return max(4, int(math.ceil(19.0 * math.log(10.0) / (2.0 * math.log(rho)))))


# --- cached tables (built once, read only) -----------------------------------

def _far_tables(fam, T):
    """(t, weights for dx, a0+, a0-, Bhat+, Bhat-, a0T, BT) for the far field of
    half width ``T``: ``a0 = log Phi(+-t_i)``, ``Bhat[i, k] = b_k(+-t_i) T^k``
    (``k = 0.._RM``), and the same at ``t = T`` (the right end of the near
    field).  ``a_r = b_(r-1) / r`` gives the log F rows; 0.75 MB per level."""
    key = (fam.kernel_key, T, _RM)
    hit = _FAR.get(key)
    if hit is not None:
        return hit
    with _LOCK:
        hit = _FAR.get(key)
        if hit is None:
            # panels in u = tail s: F's rise e^(-n c x^-tail) = e^(-A e^(-u)) has the same
            # (unit) width in u whatever the tail index, and the tail x^-tail has decayed
            # by e^-60 at u = 60 (beyond: the exact -log Phi(X - m))
            s, ws = _gl_panels(_S_EDGES / fam.fast.tail, _NG_FAR)
            t = T * np.exp(s)
            out = [t, ws * t]
            scale = T ** np.arange(_RM + 1)
            rows = []
            for side in (1.0, -1.0):
                tt = side * np.concatenate(([T], t))
                A, B = taylor_tables(fam, tt, _RM, rho=0.6 * np.abs(tt), ncirc=128)
                rows.append((A[:, 0], B * scale))
            out += [rows[0][0][1:], rows[1][0][1:], rows[0][1][1:], rows[1][1][1:],
                    rows[0][0][:1], rows[0][1][:1]]
            out = [np.ascontiguousarray(a) for a in out]
            for arr in out:
                arr.flags.writeable = False
            hit = tuple(out)
            _FAR[key] = hit
        return hit


def _near_table(fam, dm, r, ng, s_need):
    """``(s0, Tab)`` with ``Tab[j, s - s0] = h(s dm + w (1 + xi_j) / 2)``, ``w = r dm``,
    covering ``|s| <= s_need`` (grown by doubling under the lock)."""
    key = (fam.kernel_key, dm, r, ng)
    hit = _NEAR.get(key)
    if hit is not None and -hit[0] >= s_need:
        return hit
    with _LOCK:
        hit = _NEAR.get(key)
        if hit is None or -hit[0] < s_need:
            S = max(s_need, 256 if hit is None else -2 * hit[0])
            xi, _ = np.polynomial.legendre.leggauss(ng)
            w = r * dm
            tt = np.arange(-S, S + 1)[None, :] * dm + (0.5 * w * (1.0 + xi))[:, None]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                tab = np.exp(fam.loghazard(tt.ravel())).reshape(tt.shape)
            tab.flags.writeable = False
            hit = (-S, tab)
            _NEAR[key] = hit
        return hit


def _lagrange_weights(theta):
    """Weights of the ``_QF``-point Lagrange interpolant on nodes 0..QF-1 at
    ``theta`` (one row per theta): ``w_t = prod_{u != t} (theta - u) / (t - u)``."""
    theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    nodes = np.arange(_QF, dtype=np.float64)
    diff = np.broadcast_to(theta[:, None, None] - nodes[None, None, :], (theta.size, _QF, _QF)).copy()
    den = np.where(np.eye(_QF, dtype=bool), 1.0, nodes[:, None] - nodes[None, :])
    diff[:, np.eye(_QF, dtype=bool)] = 1.0
    return (diff / den[None]).prod(axis=2)


_GL_CACHE: dict = {}


def _near_consts(ng, r, ms):
    """GL abscissae/weights on [-1, 1], and the 16-point filters for
    ``log F`` at the abscissae of a panel starting on a grid point (grid
    offset ``r ms (1 + xi_j) / 2 = floor_j + theta_j``): ``(xi, w, floor, filters)``."""
    key = (ng, r, ms)
    hit = _GL_CACHE.get(key)
    if hit is None:
        xi, wj = np.polynomial.legendre.leggauss(ng)
        off = 0.5 * r * ms * (1.0 + xi)
        fl = np.floor(off).astype(np.intp)
        filt = _lagrange_weights(off - fl + (_QF // 2 - 1))
        for a in (xi, wj, fl, filt):
            a.flags.writeable = False
        hit = (xi, wj, fl, filt)
        with _LOCK:
            _GL_CACHE[key] = hit
    return hit


def _binomials(R):
    """``(k, r, C(r, k))`` over the pairs ``k <= R``, ``k <= r <= _RM``, k major."""
    key = ("binom", R)
    hit = _GL_CACHE.get(key)
    if hit is None:
        pairs = [(k, r) for k in range(R + 1) for r in range(k, _RM + 1)]
        kk = np.array([k for k, _ in pairs], dtype=np.intp)
        rr = np.array([r for _, r in pairs], dtype=np.intp)
        cb = np.array([math.comb(r, k) for k, r in pairs], dtype=np.float64)
        hit = (kk, rr, cb)
        for a in hit:
            a.flags.writeable = False
        with _LOCK:
            _GL_CACHE[key] = hit
    return hit


# --- one row ------------------------------------------------------------------

class _Plan:
    """Near/far geometry of one row (see the module docstring).

    m node j sits at ``lo + (l0 + j) dm``; the centre ``c = lo + Ec dm`` and the
    near-field ends ``c +- T`` lie on that lattice (``T`` a multiple of the
    panel width ``w = r dm``), so the near field is ``2 T / w`` whole panels
    ``[lo + (E0 + p r) dm, lo + (E0 + (p + 1) r) dm]``.
    """

    def __init__(self, geo, spec):
        H = spec.H
        self.dm = dm = geo.ms * H
        self.l0 = geo.lL // geo.ms
        self.K = K = geo.K
        lo = geo.lo
        self.r = r = max(1, int(round(0.25 / dm)))
        self.w = w = r * dm
        self.ng = _near_ng(w)
        half = 0.5 * (geo.P - 1) * H                 # scores in [lo, lo + 2 half + H/2]
        self.Ec = Ec = int(round(half / dm))
        self.c = c = lo + Ec * dm
        D = max(c - (lo + self.l0 * dm), lo + (self.l0 + K - 1) * dm - c,
                lo + (geo.P - 0.5) * H - c, c - lo)
        # T >= 2 D (multipole ratio <= 1/2), >= 4: the 2^(k/4) level rounded up to whole panels
        k = math.ceil(4.0 * math.log2(max(2.0 * D, 4.0)))
        self.T = T = w * math.ceil(2.0 ** (k / 4.0) / w - 1e-9)
        self.D = D
        self.npan = npan = int(round(2.0 * T / w))
        self.E0 = E0 = Ec - int(round(T / dm))
        xi, wj, fl, self.filt = _near_consts(self.ng, r, geo.ms)
        self.wj = 0.5 * w * wj
        # 16-point filters for the GL nodes: grid position
        # (E0 + p r) ms + r ms (1 + xi_j) / 2 - kL = integer part + theta_j
        self.base = E0 * geo.ms - geo.kL + fl - (_QF // 2 - 1)   # stencil start per j (p = 0)
        self.step = r * geo.ms

    def check_grid(self, size, p0=0):
        """The stencils of panels ``p0..npan-1`` lie on a grid of ``size`` points from kL."""
        last = int(self.base.max()) + (self.npan - 1) * self.step + _QF
        if self.base.min() + p0 * self.step < 0 or last > size:
            raise NotImplementedError("cauchy near field leaves the log F grid")

    def near_values(self, Y, p0=0, off=0):
        """``Y`` at the GL nodes of panels ``p0..npan-1``, shape ``(npan - p0, ng)``;
        ``Y[k]`` is the grid value at ``x_(kL + off + k)``."""
        idx = (self.base - off)[None, :] + self.step * np.arange(p0, self.npan)[:, None]
        # (as_strided: the window view without sliding_window_view's per-call overhead)
        win = as_strided(Y, shape=(Y.size - _QF + 1, _QF), strides=(Y.strides[0],) * 2, writeable=False)
        return np.einsum("pjq,jq->pj", win[idx], self.filt)


def _power_rows(x, N):
    """``E[r, j] = x_j^r`` for ``r = 0..N-1`` by doubling: with rows ``0..k-1`` done,
    rows ``k..2k-1`` are those times ``x^k = x^(k-1) x`` (``log2 N`` whole-block
    products; each power carries at most ``2 log2 r`` roundings)."""
    E = np.empty((N, x.size))
    E[0] = 1.0
    k = 1
    while k < N:
        m = min(k, N - k)
        np.multiply(E[:m], E[k - 1] * x, out=E[k:k + m])
        k *= 2
    return E


def _bin_multipoles(M, lo, H, c, T):
    """``mu_r / T^r = sum_j ((z_j - c) / T)^r`` (r = 0.._RM) from bin moments
    ``M[k, b] = sum_{j in b} u_j^k`` (k = 0..R), ``z_j = lo + (b + u_j) H``."""
    R = M.shape[0] - 1
    P = M.shape[1]
    E = _power_rows((lo + H * np.arange(P) - c) / T, _RM + 1)                  # (RM + 1, P)
    Q = E @ M.T        # (small products: one OpenBLAS thread, see _far)
    # mu_r = sum_{k <= min(r, R)} C(r, k) (H / T)^k Q[r - k, k]: one weighted bincount
    # over the pairs (k, r), k major (each mu_r summed in increasing k)
    kk, rr, Cb = _binomials(R)
    return np.bincount(rr, weights=Cb * (H / T) ** kk * Q[rr - kk, kk], minlength=_RM + 1)


# near-field panels whose mass (times max h) stays below this share of the
# smallest node integral are dropped (F is astronomically small there for
# large n); for the VJP the dropped share of int h F S is at most this times
# max S / rho_S <~ 0.7 n / (1 / n) < 1e14 for n <= 1e7, still < 1e-16
_DROP = 1e-30


_VD: dict = {}


def _powers(K, j_c, dm, T):
    """``V[j, k] = (-(j - j_c) dm / T)^k`` for ``j = 0..K-1``: rows of one table per
    ``(dm, T)`` holding every offset ``|j - j_c| dm <= T/2`` (a node lies within ``D <=
    T/2`` of the centre), so rows of any geometry at that level are a slice of it."""
    J = int(T / (2.0 * dm)) + 1
    if j_c < K - 1 - J or j_c > J:
        raise NotImplementedError("m node farther than T/2 from the centre")
    key = (dm, T)
    V = _VD.get(key)
    if V is None:
        d = np.arange(-J, J + 1) * (dm / T)                     # |d| <= 1/2 (+ dm / T)
        V = np.vander(-d, _RM + 1, increasing=True)
        V.flags.writeable = False
        with _LOCK:
            if len(_VD) >= 64:
                _VD.pop(next(iter(_VD)))
            _VD[key] = V
    return V[J - j_c: J - j_c + K]


def _cut_panels(fam, counts, geo, spec, pl, log_floor):
    """Number of leading near-field panels whose total mass is provably below
    ``exp(log_floor)`` per unit kernel and length: with the scores of block
    ``B`` (bins ``b in B``) at or above ``a_B``, ``log F(x) <= sum_B N_B log Phi(x - a_B)``
    (``Phi`` increasing, ``log Phi <= 0``), and ``F`` increases, so panels
    ``0..p-1`` carry at most ``F(x_p) p w`` (``x_p`` the right edge of panel ``p - 1``)."""
    P = counts.size
    size = max(1, -(-P // 32))                       # at most 32 blocks
    nb = -(-P // size)
    N = np.add.reduceat(counts, np.arange(0, P, size))
    a = geo.lo + (np.arange(nb) * size - 0.5) * spec.H
    keep = N > 0
    N, a = N[keep], a[keep]
    stride = max(1, -(-pl.npan // 64))               # at most ~64 test edges
    p = np.arange(stride, pl.npan + 1, stride)
    xp = geo.lo + (pl.E0 + p * pl.r) * pl.dm
    with np.errstate(divide="ignore"):
        ub = np.einsum("pb,b->p", fam.logcdf(xp[:, None] - a[None, :]), N) + np.log(p * 1.0)
    ok = np.flatnonzero(ub < log_floor)
    # ub increases with p: the panels before the last edge that passes are negligible
    return min(int(p[ok[-1]]), pl.npan - 1) if ok.size and ok[-1] == ok.size - 1 else 0


class _Row:
    """Node integrals of one row; keeps what the VJP ratios reuse.

    ``Row(fam, geo, spec, M, grid).logg`` is log g at the m nodes (increasing l);
    ``grid`` is log F on the x grid of ``geo``, or a callable ``grid(k_from, k_to)``
    returning it on the grid points ``k_from..k_to`` (called only when the near
    field carries weight, with ``k_from`` past the panels that provably do not).  ``rho(Ysrc, MY)`` is
    ``int h F Y / int h F`` at the nodes for ``Y = sum_j w_j h(x - z_j)``:
    ``Ysrc`` gives Y on the grid (array or callable like ``grid``, used only
    with the near field), ``MY`` the ``w``-weighted bin moments (far field
    ``Y(c +- t) = sum_k b_k(+-t) (-1)^k mu_Y,k``).
    """

    def __init__(self, fam, geo, spec, M, grid):
        self.fam, self.geo, self.spec, self.M = fam, geo, spec, M
        H = spec.H
        self.pl = pl = _Plan(geo, spec)
        c, T, K, r = pl.c, pl.T, pl.K, pl.r
        t, wt, a0p, a0m, self.Bp, self.Bm, a0T, BT = _far_tables(fam, T)
        self.nt = nt = t.size
        self.sign = sign = (-1.0) ** np.arange(_RM + 1)
        mu = _bin_multipoles(M, geo.lo, H, c, T)
        self.smu = smu = sign * mu
        # far field: log F(c +- t) = a_0 mu_0 + sum_{r >= 1} a_r (-1)^r mu_r with
        # a_r T^r = Bhat[:, r - 1] T / r; on both sides and at x = c + T
        va = np.zeros(_RM + 1)
        va[:_RM] = smu[1:] * (T / np.arange(1, _RM + 1))
        lf_far = np.concatenate([a0p * mu[0] + self.Bp @ va, a0m * mu[0] + self.Bm @ va])
        lf_T = float(a0T[0] * mu[0] + np.dot(BT[0], va))
        if not (np.all(np.isfinite(lf_far)) and math.isfinite(lf_T)):
            raise NotImplementedError("non-finite log F in the cauchy far field")
        if lf_far[nt - 1] < -1e-20:
            raise NotImplementedError("F not yet 1 at the end of the far field")
        # F is increasing, so log F <= lf_T on the whole near field: one shift for all
        self.smax = smax = max(float(lf_far.max()), lf_T)
        self.Wf = Wf = np.concatenate([wt, wt]) * np.exp(lf_far - smax)
        self.Vd = _powers(K, pl.Ec - pl.l0, pl.dm, T)
        # beyond X = c + t_e (F = 1): int_X^inf h(x - m) dx = -log Phi(X - m), h = (log Phi)';
        # taken at m = c for every node: over |m - c| <= D <= T/2 it moves by
        # D max h / -log Phi <~ nu D / (X - D) <= nu e^-60 of itself (algebraic tails).
        # One logcdf call also gives the near field's kernel bound -log Phi(-(T + D)):
        # int_{c-T}^{c+T} h(x - m) F(x) dx <= F(c + T) (-log Phi(-(T + D)))
        # for every node (|m - c| <= D); skip the near field (and the log F grid) when that
        # is below 1e-20 / n^2 of the far field, as for many scores (F(c + T) ~
        # e^{-n/(pi T)}).  The n^2 covers the VJP ratios: there the factor is
        # S <= 0.7 n on the near field against rho_S = (log g)' >~ 1/n.
        u = T + pl.D
        beyond, kernel_mass = -fam.logcdf(np.array([t[-1], -u]))
        tot = self._far(Wf) + float(beyond) * math.exp(-smax)
        self.need_near = (lf_T - smax + math.log(float(kernel_mass)) + 2.0 * math.log(max(mu[0], 1.0))
                          > math.log(1e-20) + float(np.log(tot).min()))
        if self.need_near:
            # near-field table slice: s = E0 - l0 + p r - l for p < npan, l < K
            s_lo = pl.E0 - pl.l0 - (K - 1)
            s_hi = pl.E0 - pl.l0 + (pl.npan - 1) * r
            s0, tab = _near_table(fam, pl.dm, r, pl.ng, max(-s_lo, s_hi) + 1)
            V = tab[:, s_lo - s0: s_hi - s0 + 1]
            hmax = float(V.max())
            hmin = float(V.min())
            if not hmin > 0:
                raise NotImplementedError("cauchy near-field kernel underflows")
            floor_ = math.log(_DROP) + float(np.log(tot).min()) + smax
            # leading panels 0..pc-1 are dropped unseen when an upper bound of log F
            # says their mass is negligible, so log F is needed from panel pc on only
            pc = _cut_panels(fam, M[0], geo, spec, pl, floor_ - math.log(hmax * pl.w))
            self.k_from = k_from = geo.kL + int(pl.base.min()) + pc * pl.step
            # the last grid point a stencil of the last panel reads (the x grid runs on to
            # kR; a stencil beyond kR is declined by check_grid, as on the whole grid)
            self.k_to = min(geo.kR, geo.kL + int(pl.base.max()) + (pl.npan - 1) * pl.step + _QF - 1)
            LF = grid(k_from, self.k_to) if callable(grid) else grid[k_from - geo.kL:]
            pl.check_grid(LF.size + (k_from - geo.kL), pc)
            lf_in = pl.near_values(LF, pc, k_from - geo.kL)
            if not np.all(np.isfinite(lf_in)):
                raise NotImplementedError("non-finite log F in the cauchy near field")
            W_in = pl.wj[None, :] * np.exp(lf_in - smax)
            # then drop further leading panels of negligible mass
            cum = np.cumsum(W_in.sum(axis=1)) * hmax
            p0 = pc + int(np.searchsorted(cum, _DROP * float(np.min(tot + W_in.max() * hmin)), side="right"))
            self.p0 = p0 = min(p0, pl.npan - 1)
            npe = pl.npan - p0
            # nodes l = phi + r lam: table index (E0 - l0 - phi + r p0) + r (p' - lam)
            self.phases = []
            for phi in range(min(r, K)):
                Kp = (K - 1 - phi) // r + 1
                start = (pl.E0 - pl.l0 - phi + r * p0) - r * (Kp - 1) - s_lo
                # U[j, i + p'] = h at GL node j of panel p0 + p' seen from node lam = Kp - 1 - i
                self.phases.append((phi, np.ascontiguousarray(V[:, start: start + r * (npe + Kp - 1): r])))
            self.W_use = W_in[p0 - pc:]
            tot = tot + self._near(self.W_use)
        self.tot = tot
        self.logg = logg = smax + np.log(tot)
        if not np.all(np.isfinite(logg)):
            raise NotImplementedError("non-finite cauchy node integral")
        # beyond the left end x < c - t_e the integrand is h F <= (1/t) F(c - t_e) (t_e/t)^n,
        # so the dropped mass is below F(c - t_e) / n: require it below 1e-20 of every g
        if lf_far[-1] - math.log(max(mu[0], 1.0)) > math.log(1e-20) + float(logg.min()):
            raise NotImplementedError("cauchy integrand not decayed at the left end")

    def _far(self, Wfar):
        # sum_i Wfar_i h(+-t_i - d) = sum_k (-d)^k C_k,  C_k = sum_i Wfar_i b_k(+-t_i) T^k
        nt = self.nt
        # (matrix-vector products of ~5e4 multiply-adds: OpenBLAS keeps them on one thread
        # -- process CPU time stays below wall time -- and they beat einsum's loop 2-4x)
        C = Wfar[:nt] @ self.Bp + Wfar[nt:] @ self.Bm
        return self.Vd @ C

    def _near(self, Win):
        # node lam = Kp - 1 - i of phase phi: sum_j sum_p' U[j, i + p'] Win[p', j], one
        # correlation per GL abscissa j; each sum is good to its length times an ulp of
        # its sum of |terms| (of itself for log g, whose terms are positive)
        r = self.pl.r
        out = np.empty(self.pl.K)
        Wt = np.ascontiguousarray(Win.T)
        for phi, U in self.phases:
            acc = np.correlate(U[0], Wt[0], "valid")
            for j in range(1, U.shape[0]):
                acc += np.correlate(U[j], Wt[j], "valid")
            out[phi::r] = acc[::-1]
        return out

    def rho(self, Ysrc, MY):
        pl = self.pl
        smuY = self.smu if MY is self.M else self.sign * _bin_multipoles(MY, self.geo.lo, self.spec.H, pl.c, pl.T)
        y_far = np.concatenate([self.Bp @ smuY, self.Bm @ smuY])
        # beyond X: int h F Y with Y ~ n / (pi x^2) is O(n X^-3), dropped
        num = self._far(self.Wf * y_far)
        if self.need_near:
            k_from, kL = self.k_from, self.geo.kL
            Y = Ysrc(k_from, self.k_to) if callable(Ysrc) else Ysrc[k_from - kL:]
            num += self._near(self.W_use * pl.near_values(Y, self.p0, k_from - kL))
        return num / self.tot


_CB = 8             # fine bins per coarse bin (coarse width H_c = 8 H)
_JN = 6             # band: coarse bins with |q - B| <= _JN (rows k = 8 q + rho) at full order
_RC = 21            # coarse order (truncation bound: _spread_heavy)
_QB = 16            # coarse rows per block product (< 2^18 multiply-adds: one BLAS thread)
# below this many fine bins the band (13 coarse bins) is most of the row and the plain
# convolution is as fast (on the near field's trimmed grids the two cross near 240 bins)
_P_COARSE = 240
_P_COARSE_R1 = 288   # ... and with the r = 0 bulk kept on the fine bins (see below)
# families whose log Phi the coarse table may carry at r = 0: the coarse sum reads the
# kernel at 8x fewer points than the plain spreading, so the kernel's own rounding
# averages less.  student_t's logcdf is off by up to 5.5e-16 relative at t = 4..10
# (nu = 3, against 30-digit mpmath), which gave log F within 4.0e-16 max(1, |log F|) by
# coarse bins against 2.2e-16 by the plain spreading (four clusters, n = 1000); the
# cauchy's kernels leave both at <= 1.8e-16.  Other families keep the plain r = 0 bulk
# (every fine bin's own kernel value) and take only the corrections r >= 1 by coarse bins
_COARSE_KERNELS = ("cauchy",)
_COARSE: dict = {}
_SPLIT: dict = {}


def _coarse_table(cache, table, d_lo, d_hi):
    """``(D0, Yc)`` with ``Yc[D - D0, r, rho] = k_r((8 D + rho - 3.5) H) (-H)^r`` for
    ``|D| > _JN`` and 0 for ``|D| <= _JN`` (``k_r`` the Taylor coefficients of ``log Phi``
    (table A) or ``h`` (B); both built together), covering ``d_lo <= D <= d_hi`` (grown by
    doubling).  Circles of radius ``0.3 |t|`` (64 points), half the radius ``0.6 |t|`` of
    the largest disc about ``t`` inside ``|Im z| <= 0.75 |Re z|``, where the engine's
    families are analytic (``numeric.families``): aliasing ``2^-64``."""
    fam, H = cache._fam, cache.H
    key = (fam.kernel_key, H)
    hit = _COARSE.get(key)
    if hit is None or hit[0] > d_lo or hit[0] + hit[1].shape[0] <= d_hi:
        with _LOCK:
            hit = _COARSE.get(key)
            if hit is None or hit[0] > d_lo or hit[0] + hit[1].shape[0] <= d_hi:
                D = max(64, -d_lo, d_hi, 0 if hit is None else -2 * hit[0])
                d = np.arange(-D, D + 1)
                far = np.abs(d) > _JN
                t = ((_CB * d[far, None] + np.arange(_CB)[None, :] - 0.5 * (_CB - 1)) * H).ravel()
                tabs = taylor_tables(fam, t, _RC, rho=0.3 * np.abs(t), ncirc=64)
                hit = [-D]
                for T in tabs:
                    Y = np.zeros((d.size, _CB, _RC + 1))
                    Y[far] = (T * (-H) ** np.arange(_RC + 1)).reshape(-1, _CB, _RC + 1)
                    Y = np.ascontiguousarray(Y.transpose(0, 2, 1))
                    Y.flags.writeable = False
                    hit.append(Y)
                hit = tuple(hit)
                _COARSE[key] = hit
    return hit[0], hit[1 if table == "A" else 2]


def _band_table(cache, table, R):
    """``Yn[e, (r, beta), rho] = k_r((8 (_JN - e) + rho - beta) H) (-H)^r`` from the
    spreading's own tables (the band at full order ``R``)."""
    key = (cache._fam.kernel_key, cache.H, table, R, "band")
    hit = _COARSE.get(key)
    if hit is None:
        s_lo = -_CB * _JN - (_CB - 1)
        s0, A, B = cache.get(s_lo, -s_lo)
        T = (A if table == "A" else B)[:, :R + 1] * (-cache.H) ** np.arange(R + 1)
        e = np.arange(2 * _JN + 1)
        s = _CB * (_JN - e)[None, :, None] + np.arange(_CB)[None, None, :] - np.arange(_CB)[:, None, None]
        # s[beta, e, rho]; T rows s - s0
        hit = np.ascontiguousarray(T[s - s0].transpose(1, 3, 0, 2).reshape(2 * _JN + 1, -1, _CB))
        hit.flags.writeable = False
        with _LOCK:
            _COARSE[key] = hit
    return hit


def _coarse_binom(R):
    """``Cf[r, (k, beta)] = C(r, k) (beta - 3.5)^(r - k)`` for ``k <= min(r, R)``: the
    moments of a coarse bin about its centre from those of its fine bins (in units of H)."""
    key = ("cbinom", R)
    hit = _COARSE.get(key)
    if hit is None:
        dl = np.arange(_CB) - 0.5 * (_CB - 1)
        Cf = np.zeros((_RC + 1, R + 1, _CB))
        for r in range(_RC + 1):
            for k in range(min(r, R) + 1):
                Cf[r, k] = math.comb(r, k) * dl ** (r - k)
        hit = Cf.reshape(_RC + 1, -1)
        hit.flags.writeable = False
        with _LOCK:
            _COARSE[key] = hit
    return hit


def _split_tables(cache, Yn, Yc, e):
    """Table A's ``r = 0`` entries split as ``T0 = T0_hi + T0_lo``, ``T0_hi`` on the lattice
    ``2^-e`` (entrywise, so independent of the range the tables cover): ``(band hi as
    ((beta, e), rho), band with T0_lo, coarse hi (D, rho), coarse with T0_lo)``."""
    key = (cache._fam.kernel_key, cache.H, e, Yn.shape[1])
    hit = _SPLIT.get(key)
    if hit is None or hit[0] is not Yc:
        Ynhi = _on_lattice(Yn[:, :_CB], e)                    # (e, beta, rho)
        Ynlo = Yn.copy()
        Ynlo[:, :_CB] -= Ynhi
        Ychi = _on_lattice(Yc[:, 0], e)
        Yclo = Yc.copy()
        Yclo[:, 0] -= Ychi
        Ynhi = np.ascontiguousarray(Ynhi.transpose(1, 0, 2).reshape(-1, _CB))
        hit = (Yc, Ynhi, Ynlo, Ychi, Yclo)
        with _LOCK:
            if len(_SPLIT) >= 64:
                _SPLIT.pop(next(iter(_SPLIT)))
            _SPLIT[key] = hit
    return hit[1:]


def _spread_heavy(M, kL, kR, spec, cache, table="A"):
    """``_spread_convolve(M, kL, kR, spec, cache, table)`` with the bins far from a row
    taken in coarse bins.  Rows ``k = 8 q + rho``; fine bins ``b = 8 B + beta``.  Coarse bins
    ``|q - B| <= _JN`` (the band, ``|k - b| <= 8 _JN + 7``) go through the fine moments at
    the spreading's full order ``R``, the others through coarse moments about the coarse
    centres ``C_B = (8 B + 3.5) H`` at order ``_RC``.  Rows of fewer than ``_P_COARSE``
    bins (``_P_COARSE_R1`` below) and table A with non-integer counts take the plain spreading; kernels not in
    ``_COARSE_KERNELS`` take its ``r = 0`` bulk and the rest from fine moments of order
    ``>= 1`` (their coarse re-expansion holds term by term as below).

    Coarse moments ``Mc[r, B] = sum_(j in B) ((z_j - C_B) / H)^r`` from the fine ones by the
    binomial theorem, exact up to fine order ``R``; the fine moments' own truncation is the
    fine spreading's (re-expanding ``sum_r k_r(x - C_B) (-(z - C_B))^r`` about ``c_b``
    returns the fine series term by term), so the coarse sum is the fine one except for
    its truncation at ``_RC``.  Truncation bound: ``|z_j - C_B| <= 4 H = 1/4``, and a far row
    is ``|t| >= (8 (_JN + 1) - 3.5) H = 3.28`` from ``C_B``; the disc of radius ``0.6 |t|``
    about ``t`` lies in ``|Im z| <= 0.75 |Re z|``, where the kernels are analytic, so by
    Cauchy's estimate term ``r`` of a score is at most ``max|k| (0.25 / (0.6 |t|))^r <=
    max|k| 0.127^r`` (``max`` over that circle) and the terms beyond ``_RC = 21`` sum to
    ``<= 2.2e-20 max|k|``.  With tails ``|log Phi| ~ |t|^-nu``, ``h ~ |t|^-(nu+1)`` the
    circle's maximum (at ``0.4 |t|``) is at most ``~2.5^(nu+1) <= 610`` times ``|k(t)|``
    (``nu <= 6``; logarithmic on the left), so the truncation is ``< 1.4e-17`` of each
    score's own share of the sum.  The band keeps the fine spreading's bound.

    Table A (``log F``): the ``r = 0`` products with the integer bin counts are split as in
    ``_spread_convolve`` (``T0 = T0_hi + T0_lo``, ``T0_hi`` on the lattice ``2^-e``,
    ``N max|T0| 2^e <= 2^52``), so the bulk is exact in any summation order (BLAS
    included) and carries one rounding of ``|log F|``.
    """
    R = M.shape[0] - 1
    P = M.shape[1]
    if P < _P_COARSE or (table == "A" and not np.array_equal(M[0], np.rint(M[0]))):
        # (table A's exact bulk below needs integer bin counts, as _spread_convolve's)
        return _spread_convolve(M, kL, kR, spec, cache, table=table)
    if cache._fam.kernel_key not in _COARSE_KERNELS:
        if P < _P_COARSE_R1:
            return _spread_convolve(M, kL, kR, spec, cache, table=table)
        # the r = 0 bulk by the plain spreading (every fine bin's own kernel value), the
        # corrections r >= 1 through band and coarse bins (fine moments of order >= 1 only)
        M1 = M.copy()
        M1[0] = 0.0
        return _spread_convolve(M[:1], kL, kR, spec, cache, table=table,
                                extra=_coarse_sum(M1, kL, kR, cache, table, False))
    return _coarse_sum(M, kL, kR, cache, table, table == "A")


def _coarse_sum(M, kL, kR, cache, table, exact):
    """The sum of :func:`_spread_heavy` by band and coarse bins; ``exact``: table A's
    ``r = 0`` bulk split hi/lo (integer counts in ``M[0]``)."""
    R = M.shape[0] - 1
    P = M.shape[1]
    Pc = -(-P // _CB)
    q_lo, q_hi = kL // _CB, kR // _CB
    Gq = q_hi - q_lo + 1
    nblk = -(-Gq // _QB)
    Mf = np.zeros((R + 1, Pc * _CB))
    Mf[:, :P] = M
    Mq = Mf.reshape(R + 1, Pc, _CB)
    # band: Mp[B - (q_lo - JN), (r, beta)] for B = q_lo - JN .. q_hi + JN (zero outside);
    # rows q read B = q - JN + e, e = 0 .. 2 JN: one product per e over contiguous rows
    nB = Gq + 2 * _JN
    Mp = np.zeros((nB, R + 1, _CB))
    b0 = q_lo - _JN
    lo_, hi_ = max(0, b0), min(Pc, b0 + nB)
    if hi_ > lo_:
        Mp[lo_ - b0: hi_ - b0] = Mq[:, lo_:hi_, :].transpose(1, 0, 2)
    Mp = Mp.reshape(nB, -1)
    Yn = _band_table(cache, table, R)
    # far: Mc (RC + 1, Pc); rows q0 + q' of a block read Mc[:, q - D] for D = q0 - Pc + 1 + i
    Mc = _coarse_binom(R) @ Mq.transpose(0, 2, 1).reshape(-1, Pc)
    L = Pc + _QB - 1
    McR = np.zeros((_RC + 1, Pc + 2 * (_QB - 1)))
    McR[:, _QB - 1:_QB - 1 + Pc] = Mc[:, ::-1]
    Xf = np.ascontiguousarray(sliding_window_view(McR, L, axis=1)[:, ::-1, :].transpose(1, 2, 0))  # (q', i, r)
    D0, Yc = _coarse_table(cache, table, q_lo - Pc + 1, q_lo + nblk * _QB - 1)
    a0 = q_lo - Pc + 1 - D0
    span = slice(a0, a0 + nblk * _QB + Pc - 1)       # the offsets D the rows read
    out = np.zeros((nblk * _QB, _CB))
    if exact:
        N = float(Mq[0].sum())
        y0max = max(float(np.abs(Yn[:, :_CB]).max()), float(np.abs(Yc[span, 0]).max()))
        e = _lattice_exponent(N, y0max) if N * y0max > 0 else 0
        Ynhi, Yn, Ychi, Yc = _split_tables(cache, Yn, Yc, e)
        hi = np.zeros_like(out)
        # the band's counts, (q, (beta, e)), in one product
        hi[:Gq] = sliding_window_view(Mp[:, :_CB], 2 * _JN + 1, axis=0).reshape(Gq, -1) @ Ynhi
        Xf0 = np.ascontiguousarray(Xf[:, :, 0])
        Ychi = Ychi[span]
    Yc = Yc[span]
    Xf = Xf.reshape(_QB, -1)
    acc = out[:Gq]
    for j in range(2 * _JN + 1):
        acc += Mp[j:j + Gq] @ Yn[j]
    for i in range(nblk):
        rows = slice(i * _QB, (i + 1) * _QB)
        a = i * _QB
        if exact:
            hi[rows] += Xf0 @ Ychi[a:a + L]
        out[rows] += Xf @ Yc[a:a + L].reshape(-1, _CB)
    if exact:
        out += hi
    off = kL - _CB * q_lo
    return out.ravel()[off: off + kR - kL + 1]


def _moments(z, geo, spec, weights=None, R=None):
    return _bin_moments(z, geo.lo, geo.invH, geo.P, spec.R if R is None else R, weights=weights)


def _grid(M, geo, spec, cache, table="A", k_from=None, k_to=None):
    """Table A (log F) or B (sum of h) on the x grid points ``k_from..k_to`` (default
    ``kL..kR``)."""
    return _spread_heavy(M, geo.kL if k_from is None else k_from, geo.kR if k_to is None else k_to,
                         spec, cache, table=table)


def cauchy_node_log_g(z, fam, geo, LF, spec, M=None):
    """log g at the m nodes ``m_l = lo + l H`` (increasing l) for Cauchy noise.

    ``g(m) = int h(x - m) F(x) dx``; ``LF`` is log F on the grid of ``geo`` (an
    array, or a callable ``LF(k_from, k_to)`` returning it on grid points
    ``k_from..k_to``, called only when the near field carries weight), ``M`` the
    bin moments of the scores (recomputed from ``z`` when None).
    """
    if M is None:
        M = _moments(z, geo, spec)
    return _Row(fam, geo, spec, M, LF).logg


def cauchy_nodes(z, fam, geo, M, spec, cache):
    """``(log g at the m nodes, state)``: like :func:`cauchy_node_log_g`, but
    builds log F on the grid (:func:`_spread_heavy`) only when
    the near field carries weight (not for n >~ 100 T: ``F(c + T) ~ e^{-n/(pi T)}``).
    ``state`` is opaque: hand it to :func:`fast_cauchy_vjp_row` (as its ``LF``).

    >>> import numpy as np
    >>> from numeric import _fast
    >>> from numeric.families import get_family
    >>> z = np.linspace(-3.0, 3.0, 20000)
    >>> fam = get_family("cauchy")
    >>> spec = fam.fast
    >>> geo = _fast._Geo(z, spec)
    >>> M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
    >>> logg, state = cauchy_nodes(z, fam, geo, M, spec, _fast._cache_for(fam))
    >>> state.need_near
    False
    """
    box = []

    def lf(k_from, k_to):
        box.append(_grid(M, geo, spec, cache, k_from=k_from, k_to=k_to))
        return box[0]

    row = _Row(fam, geo, spec, M, lf)
    row.LF = box[0] if box else None
    return row.logg, row


def cauchy_node_rhos(fam, geo, LF, S, Gam, spec, M, Mg):
    """``(log g, rho_S, rho_Gamma)`` at the m nodes (increasing l):

        rho_Y(m) = int h(x - m) F(x) Y(x) dx / int h(x - m) F(x) dx,
        S = sum_j h(x - z_j),   Gamma = sum_j gc_j h(x - z_j),

    ``LF``, ``S``, ``Gam`` on the grid of ``geo`` (arrays, or callables
    ``Y(k_from, k_to)`` giving grid points ``k_from..k_to``, called only when the near
    field carries weight; S and Gamma are table B of
    :func:`_spread_heavy`), ``M`` the bin moments, ``Mg`` the ``gc``-weighted
    bin moments (order >= 5 when the near field is negligible, else the
    spreading's R).  Note ``rho_S = (log g)'``.
    """
    row = _Row(fam, geo, spec, M, LF)
    return row.logg, row.rho(S, M), row.rho(Gam, Mg)


def fast_cauchy_vjp_row(z, g, fam, spec, cache, geo, M, LF, p, out=None):
    """``(J^T g)_i = p_i (g_i rho_S(z_i) - rho_Gamma(z_i))``, ``Gamma = sum_j g_j h_j``,
    for one row of Cauchy scores (into ``out`` when given), from the
    probabilities ``p`` and the parts of their computation: ``LF``
    is the state returned by :func:`cauchy_nodes` (reused: no node integral
    is redone), or log F on the grid, or None.  ``g`` comes shifted by the
    caller (a shift leaves ``J^T g`` unchanged but sets the size of the terms
    that cancel).

    ``rho_S = (log g)'`` (by parts), but the derivative of the interpolant of
    ``log g`` is ~1e-12 off here (log g varies on the scale of the tails, not
    of the node spacing), so ``rho_S`` gets its own integrals, like
    ``rho_Gamma``.  The far field needs only the multipoles of ``g``: its
    bin moments to order 5 suffice there (truncation ``(H / 2T)^6 <= 128^-6
    = 2e-13`` of Gamma); the near field (few scores) needs the grid
    ``Gamma`` and so order ``spec.R``.
    """
    row = LF if isinstance(LF, _Row) else None
    if row is None:
        grid = LF if LF is not None else (lambda k, k1: _grid(M, geo, spec, cache, "A", k, k1))
        row = _Row(fam, geo, spec, M, grid)
    Mg = _moments(z, geo, spec, weights=g, R=spec.R if row.need_near else 5)
    rG = row.rho(lambda k, k1: _grid(Mg, geo, spec, cache, "B", k, k1), Mg)
    rS = row.rho(lambda k, k1: _grid(M, geo, spec, cache, "B", k, k1), M)
    a = _eval_at_scores(z, geo, rS, out=out)
    a *= g
    b = _eval_at_scores(z, geo, rG)
    a -= b
    del b
    a *= p
    return a


# --- many rows at once ----------------------------------------------------------
#
# Rows of one padded bin count Pq (a multiple of _PQ) share every table of the node step:
# with the centre c = lo + (Pq / 2) H the near-field half width T, the panels, the node
# offsets from c and the bins' offsets from c depend on Pq only (the row's geometry taken
# as if its top bin were Pq - 1; the empty bins beyond its own P add nothing), so
#
#   mu / T^r   = Mflat G          G[(k, b), r] = C(r, k) (H/T)^k ((b - Ec) H / T)^(r - k)
#   log F grid = Mflat W          W[(r, b), k] = A_r((k0 + k - b) H) (-H)^r  (Toeplitz; rows of
#                                 >= _P_COARSE bins: _spread_heavy row by row)
#   near sums  = W_in U           U[(p, j), l] = h(x_pj - m_l)
#   far sums   = (Wf Bhat) Vd^T
#
# are products of a row's own data with matrices built once per (family, Pq, n) and
# shared by the rows and calls.  Every product runs on blocks of exactly _MB rows
# (zero-padded) with one column blocking fixed by the shapes, so each entry's rounding
# depends on its own row only: a row gives the same bits alone or among any batch mates.

_PQ = 16            # bin counts rounded up to a multiple of this (one plan per multiple)
_MB = 4             # rows per matrix product (fixed: bits independent of the batch)
_MM_MACS = 900_000     # multiply-adds per product: OpenBLAS stays on one thread (threaded, its
                        # workers spin on a loaded machine: 5-30x the CPU time)
_ROW_ELEMS = 1 << 18   # scores per block of rows (per-score temporaries ~20 MB)
_N_ROWS_MAX = 1 << 16  # longer rows: the per-row engine (cache-sized chunks, less memory)
# longer rows' VJPs: the per-row engine (its shift needs no sort of the row: per-row costs
# are a small part there, and one argsort per row made the batched VJP 2x slower at 32000)
_N_VJP_MAX = 1 << 12
_PB = 32            # near-field sums of wide rows start on a multiple of this many panels
_PLANS: dict = {}
_PLANS_BYTES = 96 << 20


def _mm(A, B):
    """``A @ B`` in products of exactly ``_MB`` rows of ``A`` (the last zero-padded) by
    the column blocks ``B`` (:func:`_col_blocks`, or one matrix): each entry's rounding
    depends on its own row only, and every product stays below OpenBLAS's threading
    threshold (its worker threads spin on a loaded machine)."""
    if isinstance(B, np.ndarray):
        B = (B,)
    m, k = A.shape
    out = np.empty((m, sum(b.shape[1] for b in B)))
    pad = (-m) % _MB
    if pad:
        A = np.concatenate([A, np.zeros((pad, k))])
    j0 = 0
    for Bj in B:
        j1 = j0 + Bj.shape[1]
        t = np.empty((_MB, j1 - j0))
        for i in range(0, m, _MB):
            np.matmul(A[i:i + _MB], Bj, out=t)
            out[i:i + _MB, j0:j1] = t[:min(_MB, m - i)]
        j0 = j1
    return out


# entries below this modulus are set to 0 in the shared matrices and the weights exp(...)
# (powers (d / T)^r of small offsets, far tails of F): subnormal operands slow a matrix
# product 10-50x, and each such term is below 1e-280 of a sum of terms of order <= n
_TINY = 1e-280


def _bucket_blocks(B, width):
    """Per start ``q``: the column blocks of ``B[:, q width:]``, as the blocks of the
    segments of ``width`` columns from ``q`` on (each segment blocked once, so a column's
    block, and its rounding, is the same whatever the start)."""
    segs = [_col_blocks(B[:, j:j + width]) for j in range(0, B.shape[1], width)]
    return [tuple(b for seg in segs[q:] for b in seg) for q in range(len(segs))]


def _col_blocks(B):
    """``B`` as contiguous read-only column blocks of at most ``_MM_MACS / (_MB k)`` columns
    (entries below ``_TINY`` set to 0)."""
    k = max(1, B.shape[0])
    cols = max(1, _MM_MACS // (_MB * k))
    out = tuple(np.array(B[:, j:j + cols], order="C") for j in range(0, B.shape[1], cols))
    for a in out:
        a[np.abs(a) < _TINY] = 0.0
    for a in out:
        a.flags.writeable = False
    return out


class _RowsPlan:
    """The node step's geometry and shared matrices for rows of ``Pq`` bins (see above).

    Node ``j`` (``0 <= j < K``) sits at ``lo + (j - 7) H``, bin ``b`` at ``lo + b H``,
    the centre at ``c = lo + Ec H``; the near field is ``npan`` panels from
    ``c - T``, whose 16-point stencils read the grid points ``k0 .. k0 + Gn - 1``
    (in bins, from ``lo``).  The near field's matrices are built on first use
    (:meth:`near`): rows of many scores never need them."""

    def __init__(self, fam, spec, cache, Pq, n):
        H = spec.H
        self.fam, self.spec, self.cache, self.n = fam, spec, cache, n
        self.Pq = Pq
        self.l0 = l0 = -(spec.q // 2 + 1)                      # ms = 1
        self.K = K = Pq - 1 - l0 + spec.q // 2 + 1
        self.Ec = Ec = Pq // 2
        self.r = r = max(1, int(round(0.25 / H)))
        self.w = w = r * H
        self.ng = ng = _near_ng(w)
        # farthest node or bin from c (bins up to Pq - 1/2), as _Plan
        self.D = D = max(Ec - l0, l0 + K - 1 - Ec, Pq - 0.5 - Ec, Ec) * H
        k = math.ceil(4.0 * math.log2(max(2.0 * D, 4.0)))
        self.T = T = w * math.ceil(2.0 ** (k / 4.0) / w - 1e-9)
        self.npan = npan = int(round(2.0 * T / w))
        self.E0 = E0 = Ec - int(round(T / H))
        xi, wj, fl, self.filt = _near_consts(ng, r, 1)
        self.wj = 0.5 * w * wj
        flo = int(fl.min())
        self.k0 = E0 + flo - (_QF // 2 - 1)
        self.Gn = (npan - 1) * r + int(fl.max()) - flo + _QF
        # stencil start of GL node j of panel p in the grid k0.. : p r + fl_j - flo
        self.idx = (r * np.arange(npan)[:, None] + (fl - flo)[None, :])
        tabs = _far_tables(fam, T)
        self.t, self.wt, a0p, a0m, Bp, Bm, a0T, BT = tabs
        self.nt = self.t.size
        self.a0 = np.concatenate([a0p, a0m])
        self.a0T = float(a0T[0])
        self.BT = _col_blocks(BT[0][:, None])
        self.Bt = _col_blocks(np.concatenate([Bp, Bm]).T)        # (RM + 1, 2 nt)
        self.Bs = _col_blocks(np.concatenate([Bp, Bm]))          # (2 nt, RM + 1)
        self.Vd = _col_blocks(_powers(K, Ec - l0, H, T).T)       # (RM + 1, K)
        # moments -> multipoles (as _bin_multipoles): Q[k, r] = sum_b M[k, b] x_b^r with
        # x_b = (b - Ec) H / T the same for every row, then mu_r / T^r = sum_(k <= r)
        # C(r, k) (H / T)^k Q[k, r - k], each mu_r summed in increasing k (pairs r major)
        R = spec.R
        x = (np.arange(Pq) - Ec) * (H / T)
        self.E = _col_blocks(_power_rows(x, _RM + 1).T)              # (Pq, RM + 1)
        pairs = [(k, r) for r in range(_RM + 1) for k in range(min(r, R) + 1)]
        self.qidx = np.array([k * (_RM + 1) + (r - k) for k, r in pairs], dtype=np.intp)
        self.qcoef = np.array([math.comb(r, k) * (H / T) ** k for k, r in pairs])
        self.qseg = np.flatnonzero(np.diff([-1] + [r for _, r in pairs]))
        # far-field beyond X and the near field's kernel bound (as _Row)
        beyond, kmass = -fam.logcdf(np.array([self.t[-1], -(T + D)]))
        self.beyond, self.kmass = float(beyond), float(kmass)
        self.plain = Pq < _P_COARSE
        self._near = None
        for a in vars(self).values():
            if isinstance(a, np.ndarray):
                a.flags.writeable = False

    def near(self):
        """``(hmin, hmax, U, W, Whi, cut)``: the near-field kernel's extremes, ``U``
        and the log F grid's ``W`` (``W0_hi`` apart; None for wide rows) as lists of
        column blocks per ``_PB`` panels, and the cut's tables."""
        if self._near is not None:
            return self._near
        fam, spec, cache = self.fam, self.spec, self.cache
        H, R, Pq, K, r, ng, npan = spec.H, spec.R, self.Pq, self.K, self.r, self.ng, self.npan
        E0, l0, k0, Gn = self.E0, self.l0, self.k0, self.Gn
        # near-field table slice: s = E0 - l0 + p r - l (p < npan, l < K)
        s_lo = E0 - l0 - (K - 1)
        s_hi = E0 - l0 + (npan - 1) * r
        s0, tab = _near_table(fam, H, r, ng, max(-s_lo, s_hi) + 1)
        V = tab[:, s_lo - s0: s_hi - s0 + 1]
        hmin, hmax = float(V.min()), float(V.max())
        s = (E0 - l0 - s_lo) + r * np.arange(npan)[:, None, None] - np.arange(K)[None, None, :]
        nq = -(-npan // _PB)
        W = Whi = None
        if not self.plain:
            # wide rows: the sums as correlations per phase phi and abscissa j, one row at
            # a time (as _Row._near: the expanded U below is npan ng K entries, ~10 MB at
            # P ~ 500, and a product reading it for a few rows at a time is bound by
            # memory); U[q]: (phi, table) for panels from _PB q on, nodes l = phi + r lam
            U = []
            for q in range(nq):
                p0 = q * _PB
                npe = npan - p0
                ph = []
                for phi in range(min(r, K)):
                    Kp = (K - 1 - phi) // r + 1
                    start = (E0 - l0 - phi + r * p0) - r * (Kp - 1) - s_lo
                    ph.append((phi, np.ascontiguousarray(V[:, start: start + r * (npe + Kp - 1): r])))
                U.append(ph)
        else:
            U = V[np.arange(ng)[None, :, None], s].reshape(npan * ng, K)
            # U's rows from panel _PB q on, one tuple of column blocks per start q
            # (views of one set of column blocks: no copies)
            Ub = _col_blocks(U)
            U = [tuple(b[q * _PB * ng:] for b in Ub) for q in range(nq)]
            # log F on the near field's grid points by the plain spreading as a Toeplitz
            # product (rows of >= _P_COARSE bins: _spread_heavy per row)
            s_lo = k0 - (Pq - 1)
            s_top = min(k0 + Gn - 1, cache.s_hi)
            c0, A, _ = cache.get(s_lo, s_top)
            Tsl = np.zeros((R + 1, Gn + Pq - 1))
            if s_top >= s_lo:
                Tsl[:, :s_top - s_lo + 1] = A[s_lo - c0: s_top - c0 + 1, :R + 1].T
            Tsl *= ((-H) ** np.arange(R + 1))[:, None]
            # W[r, b, k] = Tsl[r, k + Pq - 1 - b]
            Wf = sliding_window_view(Tsl, Gn, axis=1)[:, ::-1, :]
            Wf = np.ascontiguousarray(Wf).reshape((R + 1) * Pq, Gn)
            # r = 0 with the bin counts (integers summing to n): W0 = W0_hi + W0_lo, W0_hi
            # on the lattice 2^-e with n max|W0| 2^e <= 2^52, so counts . W0_hi is exact in
            # any order (see numeric._fast_grid._spread_convolve); W0_lo joins the r >= 1
            # corrections
            t0max = float(np.abs(Wf[:Pq]).max())
            e = _lattice_exponent(float(self.n), t0max) if t0max > 0 else 0
            hi = _on_lattice(Wf[:Pq], e)
            Wf[:Pq] -= hi
            # grid columns from q _PB r on (the stencils of panels from q _PB)
            W, Whi = _bucket_blocks(Wf, _PB * r), _bucket_blocks(hi, _PB * r)
        # leading panels provably negligible (:func:`_cut_panels`, for all rows at once):
        # bins in at most 32 blocks, log F(x_p) <= sum_B N_B log Phi(x_p - a_B) at <= 64
        # panel edges x_p; both relative to c, so the table log Phi(x_p - a_B) is shared
        size = max(1, -(-Pq // 32))
        nb = -(-Pq // size)
        stride = max(1, -(-npan // 64))
        cut_p = np.arange(stride, npan + 1, stride)
        xp = (E0 + cut_p * r) * H
        a = (np.arange(nb) * size - 0.5) * H
        with np.errstate(divide="ignore"):
            cut_L = np.ascontiguousarray(fam.logcdf(xp[None, :] - a[:, None]))   # (nb, edges)
        cut = (size, cut_p, cut_L, np.log(cut_p * 1.0))
        with _LOCK:
            if self._near is None:
                self._near = (hmin, hmax, U, W, Whi, cut)
        return self._near

    def near_b(self):
        """Table B's Toeplitz matrix (``sum_j w_j h``, the plain spreading: no exact split,
        the weights are not integers) per start of ``_PB`` panels, as column blocks."""
        hit = getattr(self, "_near_b", None)
        if hit is not None:
            return hit
        spec, cache = self.spec, self.cache
        H, R, Pq, k0, Gn = spec.H, spec.R, self.Pq, self.k0, self.Gn
        s_lo = k0 - (Pq - 1)
        s_top = min(k0 + Gn - 1, cache.s_hi)
        c0, _, B = cache.get(s_lo, s_top)
        Tsl = np.zeros((R + 1, Gn + Pq - 1))
        if s_top >= s_lo:
            Tsl[:, :s_top - s_lo + 1] = B[s_lo - c0: s_top - c0 + 1, :R + 1].T
        Tsl *= ((-H) ** np.arange(R + 1))[:, None]
        Wf = sliding_window_view(Tsl, Gn, axis=1)[:, ::-1, :]
        Wf = np.ascontiguousarray(Wf).reshape((R + 1) * Pq, Gn)
        hit = _bucket_blocks(Wf, _PB * self.r)
        self._near_b = hit
        return hit

    def nbytes(self):
        """Bytes held (views of one array counted once)."""
        seen = {}

        def walk(a):
            if isinstance(a, np.ndarray):
                base = a if a.base is None else a.base
                seen[id(base)] = base.nbytes if isinstance(base, np.ndarray) else a.nbytes
            elif isinstance(a, (tuple, list)):
                for b in a:
                    walk(b)
        for a in vars(self).values():
            walk(a)
        return sum(seen.values())


def _rows_plan(fam, spec, cache, Pq, n):
    # n sets the lattice exponent of the exact bulk only when the log F grid is a product
    key = (fam.kernel_key, spec.H, Pq, n if Pq < _P_COARSE else 0)
    hit = _PLANS.get(key)
    if hit is None:
        hit = _RowsPlan(fam, spec, cache, Pq, n)
        with _LOCK:
            _PLANS[key] = hit
            while len(_PLANS) > 1 and sum(p.nbytes() for p in _PLANS.values()) > _PLANS_BYTES:
                _PLANS.pop(next(iter(_PLANS)))
    return hit


def heavy_log_probs_rows(x, fam, spec, cache, check_cost=True):
    """log p of the rows of standardized scores ``x`` (m, n) by the heavy-tailed engine,
    all rows of one padded bin count at once: ``(log p, ok)``; rows with ``ok`` False
    (NaN) are left to the caller (the per-row engine: scores beyond ``2^40``, rows its cost
    model or a check declines).  Same integrals, tables and checks as :class:`_Row`,
    with the leading panels of negligible mass kept (their terms are positive and add
    nothing) and log F on every grid point the near field's stencils read.

    >>> import numpy as np
    >>> from numeric import _fast
    >>> from numeric.families import get_family
    >>> fam = get_family("cauchy")
    >>> x = np.random.default_rng(0).normal(size=(3, 500))
    >>> lp, ok = heavy_log_probs_rows(x, fam, fam.fast, _fast._cache_for(fam))
    >>> bool(ok.all()), bool(np.abs(np.exp(lp).sum(axis=1) - 1).max() < 1e-14)
    (True, True)
    >>> bool(np.array_equal(heavy_log_probs_rows(x[1:2], fam, fam.fast, _fast._cache_for(fam))[0][0], lp[1]))
    True
    """
    m, n = x.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if n > _N_ROWS_MAX or spec.ms != 1:
        return out, ok
    H = spec.H
    invH = 1.0 / H
    zmin, zmax = x.min(axis=1), x.max(axis=1)
    good = (np.maximum(-zmin, zmax) <= 2.0 ** 40) & (zmax - zmin <= 200.0)
    lo_i = np.floor(np.where(good, zmin, 0.0) * invH)
    P = np.rint(np.where(good, zmax, 0.0) * invH) - lo_i + 1
    if check_cost:
        # the per-row engine's cost model (numeric._fast._Geo): rows it would decline
        rng_ = zmax - lo_i * H
        pad = np.ceil((spec.pad_left + spec.pad_factor * rng_) * invH)
        G = P + 2 * pad
        K = P + spec.q + 2
        fast = 650 + 0.04 * K * (1.2 * rng_ + 2.5) + 0.0001 * (spec.R + 1) * P * (P + G) + 0.03 * n
        good &= fast <= 500 + spec.quad_us * n
    Pq = (_PQ * np.ceil(P / _PQ)).astype(np.int64)
    for pq in np.unique(Pq[good]):
        rows = np.flatnonzero(good & (Pq == pq))
        plan = _rows_plan(fam, spec, cache, int(pq), n)
        # rows per block: the per-score temporaries and the rows' node tables (fine
        # tables K S (d + 1), near-field stencils npan ng 16) stay near _ROW_ELEMS each
        per_row = plan.K * spec.fine_S * (spec.fine_d + 1) + plan.npan * plan.ng * _QF
        step = max(1, min(_ROW_ELEMS // n, 16 * _ROW_ELEMS // per_row))
        for i0 in range(0, rows.size, step):
            sel = rows[i0:i0 + step]
            out[sel], ok[sel] = _plan_rows(x[sel], lo_i[sel], plan, fam, spec, cache)
    return out, ok


def _plan_rows(z, lo_i, pl, fam, spec, cache):
    """:func:`heavy_log_probs_rows` for rows ``z`` (mr, n) of one plan."""
    st = _plan_nodes(z, lo_i, pl, fam, spec, cache)
    acc, bad, tm = _eval_rows(st["logg"], z, lo_i, pl, spec, st["bad"])
    mx = st["logg"].max(axis=1)
    np.subtract(acc, mx[:, None], out=tm)
    exp_terms(tm, out=tm)
    acc -= (mx + np.log(tm.sum(axis=1)))[:, None]
    np.minimum(acc, 0.0, out=acc)
    ok = ~bad
    acc[~ok] = np.nan
    return acc, ok


def _bin_rows(z, lo_i, Pq, H):
    """Flat bin index (row r's bins from r Pq) and offset ``u`` in ``[-1/2, 1/2]`` of each
    score (the exact lattice split of numeric._fast_grid._split_lattice)."""
    mr = z.shape[0]
    t = z * (1.0 / H)
    tmp = t + _MAGIC
    b = tmp.view(np.int64) - (_MAGIC_BITS + lo_i.astype(np.int64))[:, None]
    b += (np.arange(mr) * Pq)[:, None]
    tmp -= _MAGIC
    t -= tmp
    return b.ravel(), t.ravel()


def _moments_of(b, u, mr, Pq, R, weights=None):
    """``M[row, r, b] = sum_(j in bin b) wt_j u_j^r``: one bincount per order over the rows'
    scores in row order (each bin's sum runs over its own row's scores in their order)."""
    M = np.empty((mr, R + 1, Pq))
    if weights is None:
        M[:, 0] = np.bincount(b, minlength=mr * Pq).reshape(mr, Pq)
        pw = u.copy()
    else:
        pw = np.array(weights, dtype=np.float64).ravel()
        M[:, 0] = np.bincount(b, weights=pw, minlength=mr * Pq).reshape(mr, Pq)
        pw *= u
    for r in range(1, R + 1):
        if r > 1:
            pw *= u
        M[:, r] = np.bincount(b, weights=pw, minlength=mr * Pq).reshape(mr, Pq)
    return M


def _multipoles_rows(M, pl):
    """``mu_r / T^r`` (r = 0.._RM) of each row from its bin moments (as _bin_multipoles)."""
    mr, R1, Pq = M.shape
    Q = _mm(M.reshape(mr * R1, Pq), pl.E).reshape(mr, -1)         # Q[row, (k, r)]
    return np.add.reduceat(Q[:, pl.qidx] * pl.qcoef, pl.qseg, axis=1)


def _near_grid(MY, rows, pb, pl, spec, cache, table):
    """Table A (log F) or B (``sum_j w_j h``) at the GL nodes of the near field for the
    near rows ``rows`` (their panels from ``pb`` on; earlier panels -inf (A) or 0 (B))."""
    hmin, hmax, U, W, Whi, cut = pl.near()
    k0, Gn, r, npan = pl.k0, pl.Gn, pl.r, pl.npan
    out = np.empty((rows.size, npan, pl.ng))
    for q in np.unique(pb // _PB):
        sub = np.flatnonzero(pb == q * _PB)
        rr = rows[sub]
        a0 = q * _PB * r
        if pl.plain and table == "A":
            G = _mm(MY[rr, 0], Whi[q])
            G += _mm(MY[rr].reshape(rr.size, -1), W[q])
        elif pl.plain:
            G = _mm(MY[rr].reshape(rr.size, -1), pl.near_b()[q])
        else:
            # wide rows: coarse bins (_spread_heavy), one row at a time
            G = np.empty((rr.size, Gn - a0))
            for i, row in enumerate(rr):
                G[i] = _spread_heavy(MY[row], k0 + a0, k0 + Gn - 1, spec, cache, table)
        win = as_strided(G, shape=(rr.size, G.shape[1] - _QF + 1, _QF),
                         strides=(G.strides[0], G.strides[1], G.strides[1]), writeable=False)
        out[sub, q * _PB:] = np.einsum("mpjq,jq->mpj", win[:, pl.idx[q * _PB:] - a0], pl.filt)
        out[sub, :q * _PB] = -np.inf if table == "A" else 0.0
    return out


def _near_sums(Wn, rows, pb, pl, tot):
    """``tot[rows] += sum_(p, j) Wn[., p, j] h(x_pj - m_l)`` at every node ``l`` (panels
    from each row's ``pb``)."""
    U = pl.near()[2]
    r = pl.r
    for q in np.unique(pb // _PB):
        sub = np.flatnonzero(pb == q * _PB)
        if pl.plain:
            tot[rows[sub]] += _mm(Wn[sub, q * _PB:].reshape(sub.size, -1), U[q])
            continue
        for i, row in zip(sub, rows[sub]):
            # node lam = Kp - 1 - i' of phase phi: sum_j sum_p' U[j, i' + p'] W[p', j]
            Wt = np.ascontiguousarray(Wn[i, q * _PB:].T)
            for phi, Uq in U[q]:
                acc = np.correlate(Uq[0], Wt[0], "valid")
                for j in range(1, Uq.shape[0]):
                    acc += np.correlate(Uq[j], Wt[j], "valid")
                tot[row, phi::r] += acc[::-1]


def _plan_nodes(z, lo_i, pl, fam, spec, cache):
    """The node integrals of rows ``z`` of one plan (as :class:`_Row`): a dict with
    ``logg``, ``bad`` (rows declined) and what the VJP reuses."""
    mr, n = z.shape
    R, H, Pq = spec.R, spec.H, pl.Pq
    b, u = _bin_rows(z, lo_i, Pq, H)
    M = _moments_of(b, u, mr, Pq, R)
    # far field (as _Row): multipoles, log F at the far nodes and at c + T
    mu = _multipoles_rows(M, pl)
    T, nt = pl.T, pl.nt
    va = np.zeros((mr, _RM + 1))
    va[:, :_RM] = mu[:, 1:] * ((-1.0) ** np.arange(1, _RM + 1) * (T / np.arange(1, _RM + 1)))
    with np.errstate(over="ignore", invalid="ignore"):
        lf_far = _mm(va, pl.Bt)
        lf_far += mu[:, :1] * pl.a0
        lf_T = pl.a0T * mu[:, 0] + _mm(va, pl.BT)[:, 0]
    bad = ~(np.isfinite(lf_far).all(axis=1) & np.isfinite(lf_T))
    bad |= lf_far[:, nt - 1] < -1e-20          # F not yet 1 at the end of the far field
    lf_far[bad] = -1.0
    lf_T[bad] = -1.0
    smax = np.maximum(lf_far.max(axis=1), lf_T)
    Wf = lf_far - smax[:, None]
    Wf[Wf < math.log(_TINY)] = -np.inf
    np.exp(Wf, out=Wf)
    Wf *= np.concatenate([pl.wt, pl.wt])
    tot = _mm(_mm(Wf, pl.Bs), pl.Vd)
    tot += pl.beyond * np.exp(-smax)[:, None]
    n0 = np.maximum(mu[:, 0], 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ltot_min = np.log(tot).min(axis=1)
    need = (lf_T - smax + math.log(pl.kmass) + 2.0 * np.log(n0) > math.log(1e-20) + ltot_min) & ~bad
    nr = np.flatnonzero(need)
    pb = np.zeros(0, dtype=np.intp)
    W_use = None
    if nr.size:
        hmin, hmax, U, W, Whi, (csize, cut_p, cut_L, cut_lp) = pl.near()
        if not hmin > 0:
            bad[nr] = True
            nr = nr[:0]
    if nr.size:
        # leading panels 0..pc-1 dropped unseen (:func:`_cut_panels`): with the scores of
        # bin block B at or above a_B, log F(x) <= sum_B N_B log Phi(x - a_B) and F
        # increases, so panels before edge p carry at most F(x_p) p w; the row's log F grid
        # and sums start at panel pb = _PB floor(pc / _PB), fixed by the row itself (the
        # panels pb..pc-1 are kept: positive terms, below 1e-30 of the node integrals)
        Nb = np.add.reduceat(M[nr, 0], np.arange(0, Pq, csize), axis=1)
        ub = Nb @ cut_L + cut_lp
        floor_ = (math.log(_DROP) + ltot_min[nr] + smax[nr]) - math.log(hmax * pl.w)
        passed = ub < floor_[:, None]
        # ub increases with p: the panels before the last edge of an unbroken passing
        # run from the first edge are negligible
        run = np.cumprod(passed, axis=1).sum(axis=1)
        pc = np.where(run > 0, np.minimum(cut_p[np.maximum(run - 1, 0)], pl.npan - 1), 0)
        pb = (pc // _PB) * _PB
        lf_in = _near_grid(M, nr, pb, pl, spec, cache, "A")
        fin = ~np.isnan(lf_in).any(axis=(1, 2)) & np.isfinite(lf_in[:, -1]).all(axis=1)
        fin &= (lf_in < np.inf).all(axis=(1, 2))
        lf_in[~fin] = -np.inf
        bad[nr[~fin]] = True
        lf_in -= smax[nr, None, None]
        lf_in[lf_in < math.log(_TINY)] = -np.inf
        np.exp(lf_in, out=lf_in)
        lf_in *= pl.wj
        _near_sums(lf_in, nr, pb, pl, tot)
        W_use = lf_in
    with np.errstate(divide="ignore", invalid="ignore"):
        logg = smax[:, None] + np.log(tot)
    bad |= ~np.isfinite(logg).all(axis=1)
    # beyond the left end: the dropped mass below F(c - t_e) / n, < 1e-20 of every g
    bad |= lf_far[:, -1] - np.log(n0) > math.log(1e-20) + np.where(bad, 0.0, logg.min(axis=1))
    logg[bad] = 0.0
    return dict(logg=logg, bad=bad, b=b, u=u, M=M, mu=mu, Wf=Wf, tot=tot, nr=nr, pb=pb, W_use=W_use)


def _eval_rows(values, z, lo_i, pl, spec, bad, deriv=False):
    """``(values at the scores, bad, scratch)``: the node values of each row interpolated
    at its scores (numeric._fast_grid._eval_at_scores, all rows at once); rows whose
    stencils leave the node grid are added to ``bad``."""
    mr = z.shape[0]
    S, d, q, H = spec.fine_S, spec.fine_d, spec.q, spec.H
    tab = _fine_tables(values, q, S, d)                            # (mr, d + 1, rows)
    nrows = tab.shape[-1]
    a = S / H
    r0 = (lo_i.astype(np.int64) + pl.l0) * S                        # lo a + l0 S, exact
    zr_lo = np.rint(z.min(axis=1) * a).astype(np.int64) - r0
    zr_hi = np.rint(z.max(axis=1) * a).astype(np.int64) - r0
    bad = bad | (zr_lo < (q // 2 - 1) * S) | (zr_hi >= nrows)
    tt = z * a
    tm = tt + _MAGIC
    ri = tm.view(np.int64) - (_MAGIC_BITS + r0)[:, None]
    tm -= _MAGIC
    tt -= tm
    ri += (np.arange(mr) * nrows)[:, None]
    np.clip(ri, 0, mr * nrows - 1, out=ri)
    tab = tab.transpose(1, 0, 2).reshape(d + 1, -1)
    acc = np.take(tab[d], ri)
    for j in range(d - 1, -1, -1):
        acc *= tt
        np.take(tab[j], ri, out=tm)
        acc += tm
    return acc, bad, tm


def heavy_vjp_rows(x, g, fam, spec, cache, log=False, check_cost=True):
    """VJP of ``p`` (``log=False``) or ``log p`` of the rows ``x`` with cotangents ``g`` by
    the heavy-tailed engine, all rows of one plan at once: ``(vjp, ok)``, rows with ``ok``
    False (NaN) left to the caller.  Per row as :func:`fast_cauchy_vjp_row` after
    numeric._fast._row_vjp's shift: ``(J^T g')_k = p_k (g'_k rho_S(z_k) - rho_Gamma(z_k))``
    with ``g' = g - s`` (``(c - s p) / p`` for log p; ``s`` a p-weighted median), the
    ratios ``rho_Y = int h F Y / int h F`` at the nodes from the node step's own weights
    (far field by multipoles of ``M`` and of the ``g'``-weighted moments at order R, near
    field from the table B grids at the GL nodes), interpolated at the scores; a row that
    does not sum to 0 within 1e-12 of its absolute sum is declined.

    >>> import numpy as np
    >>> from numeric import _fast
    >>> from numeric.families import get_family
    >>> fam = get_family("cauchy")
    >>> x = np.random.default_rng(0).normal(size=(3, 400)); c = np.ones_like(x)
    >>> v, ok = heavy_vjp_rows(x, c, fam, fam.fast, _fast._cache_for(fam))
    >>> bool(ok.all()), bool(np.abs(v).max() < 1e-15)
    (True, True)
    """
    m, n = x.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if n > _N_VJP_MAX or spec.ms != 1:
        return out, ok
    for pq, rows, lo_i in _plan_groups(x, spec, check_cost):
        plan = _rows_plan(fam, spec, cache, pq, n)
        per_row = plan.K * spec.fine_S * (spec.fine_d + 1) + plan.npan * plan.ng * _QF
        step = max(1, min(_ROW_ELEMS // n, 16 * _ROW_ELEMS // per_row))
        for i0 in range(0, rows.size, step):
            sel = rows[i0:i0 + step]
            out[sel], ok[sel] = _plan_vjp(x[sel], g[sel], lo_i[i0:i0 + step], plan, fam, spec, cache, log)
    return out, ok


def _plan_groups(x, spec, check_cost):
    """``(Pq, rows, lo_i)`` per plan of the rows the engine takes (as heavy_log_probs_rows)."""
    n = x.shape[1]
    H = spec.H
    invH = 1.0 / H
    zmin, zmax = x.min(axis=1), x.max(axis=1)
    good = (np.maximum(-zmin, zmax) <= 2.0 ** 40) & (zmax - zmin <= 200.0)
    lo_i = np.floor(np.where(good, zmin, 0.0) * invH)
    P = np.rint(np.where(good, zmax, 0.0) * invH) - lo_i + 1
    if check_cost:
        rng_ = zmax - lo_i * H
        pad = np.ceil((spec.pad_left + spec.pad_factor * rng_) * invH)
        G = P + 2 * pad
        K = P + spec.q + 2
        fast = 650 + 0.04 * K * (1.2 * rng_ + 2.5) + 0.0001 * (spec.R + 1) * P * (P + G) + 0.03 * n
        good &= fast <= 500 + spec.quad_us * n
    Pq = (_PQ * np.ceil(P / _PQ)).astype(np.int64)
    for pq in np.unique(Pq[good]):
        rows = np.flatnonzero(good & (Pq == pq))
        yield int(pq), rows, lo_i[rows]


def _plan_vjp(z, g, lo_i, pl, fam, spec, cache, log):
    mr, n = z.shape
    st = _plan_nodes(z, lo_i, pl, fam, spec, cache)
    logg = st["logg"]
    lp, bad, tm = _eval_rows(logg, z, lo_i, pl, spec, st["bad"])
    mx = logg.max(axis=1)
    np.subtract(lp, mx[:, None], out=tm)
    exp_terms(tm, out=tm)
    lp -= (mx + np.log(tm.sum(axis=1)))[:, None]
    np.minimum(lp, 0.0, out=lp)
    p = np.exp(lp, out=lp)
    del lp, tm
    # the shift (numeric._fast._row_vjp): a p-weighted median of g (of c / p for log p)
    # over the entries with p >= 1e-9 max p (the rest weigh < 1e-4 of it)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gg = g / p if log else np.array(g, dtype=np.float64)
    pw = np.where(p >= 1e-9 * p.max(axis=1, keepdims=True), p, 0.0)
    o = np.argsort(gg, axis=1, kind="stable")
    cw = np.cumsum(np.take_along_axis(pw, o, axis=1), axis=1)
    k = np.minimum((cw < 0.5 * cw[:, -1:]).sum(axis=1), n - 1)
    shift = np.take_along_axis(gg, np.take_along_axis(o, k[:, None], axis=1), axis=1)
    del o, cw, pw
    shift[~np.isfinite(shift)] = 0.0
    if log:
        v = g - shift * p
        v /= p
    else:
        v = g - shift
    del gg
    # the rho ratios: far field by multipoles, near field from the table B grids
    Mg = _moments_of(st["b"], st["u"], mr, pl.Pq, spec.R, weights=v)
    sign = (-1.0) ** np.arange(_RM + 1)
    nr, pb, W_use, Wf, tot = st["nr"], st["pb"], st["W_use"], st["Wf"], st["tot"]
    res = []
    for MY, muY in ((st["M"], st["mu"]), (Mg, None)):
        if muY is None:
            muY = _multipoles_rows(MY, pl)
        num = _mm(_mm(Wf * _mm(sign * muY, pl.Bt), pl.Bs), pl.Vd)
        if nr.size:
            Yin = _near_grid(MY, nr, pb, pl, spec, cache, "B")
            Yin *= W_use
            _near_sums(Yin, nr, pb, pl, num)
        num /= tot
        res.append(num)
    rS, rG = res
    rS[bad] = 0.0
    rG[bad] = 0.0
    eS, bad, _ = _eval_rows(rS, z, lo_i, pl, spec, bad)
    eG, bad, _ = _eval_rows(rG, z, lo_i, pl, spec, bad)
    eS *= v
    eS -= eG
    eS *= p
    fin = np.isfinite(eS).all(axis=1)
    bad |= ~fin
    eS[~fin] = 0.0
    # J^T 1 = 0 (numeric._fast._checked_row_vjp): a row off by more than its rounding
    # is declined
    bad |= ~(np.abs(eS.sum(axis=1)) <= 1e-12 * np.abs(eS).sum(axis=1) + n * 5e-324)
    ok = ~bad
    eS[bad] = np.nan
    return eS, ok
