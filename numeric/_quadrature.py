"""Accurate max-CDF quadrature in log space (one score vector at a time).

With ``F(x) = prod_j Phi(x - y_j)`` and the reverse hazard ``h = phi/Phi``,

    p_i = int h(x - y_i) F(x) dx                                   (max-CDF form)

Every integrand is handled through its logarithm
``L_i(x) = log h(x - y_i) + log F(x)`` so entries far below 1e-300 keep
full relative precision.  ``log F`` costs O(n) per node and is shared by
all entries, so one sweep over G nodes costs O(n G).

Integration variable: ``x = c + sinh(u)`` around the top score ``c`` (rows are not
shifted: see :class:`Row`).
Algebraic tails (cauchy, student_t) become exponential in ``u``; light
tails become double-exponential.  Scores in clusters (at most
``SPLIT_WIDTH`` wide, split at gaps > ``SPLIT_WIDTH``) get one such map per cluster (``x = c_k + sinh(u - o_k)``,
see :class:`Row`), so features near scores ~1e300 apart are resolved.  The u-axis is cut at the images of all
kinks ``y_j + b`` (``b`` = family breakpoints, support ends), so every
panel holds an analytic integrand (for a density unbounded at a finite support end, after a
map of each panel by a power of the distance to its ends, the power read from the density's
exponent: :meth:`Row.nodes`), and integrated with an adaptive
Gauss-Kronrod (7, 15) rule, vectorised over all entries: a panel is
bisected while its QUADPACK error estimate is a significant share of some
entry's tolerance.  Infinite ends are truncated with a proven bound on the
dropped mass (left: ``F(X_L)``; right: the mass ``sf(X_R - y_i)`` is added
and its uncertainty ``sf * (1 - F(X_R))`` is charged to the error budget).
When the budget cannot be met :class:`QuadratureError` is raised -- never
a silently wrong number.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

__all__ = ["QuadratureError", "quadrature_log_probs", "integrate_components", "entry_tolerance"]


class QuadratureError(ArithmeticError):
    """The adaptive quadrature could not certify its tolerance.

    Raised (never warned) by ``numeric.probs``/``log_probs``/``*_vjp`` when
    the error estimate of some entry stays above its tolerance after the
    refinement budget is spent, or when the truncated tails cannot be
    bounded (e.g. a pathological user family, student_t with tiny ``nu``).
    """


# ---------------------------------------------------------------------------
# Gauss-Kronrod (7, 15) rule on [-1, 1]
# ---------------------------------------------------------------------------
# Gauss nodes from numpy; the 8 Kronrod nodes are the zeros of the Stieltjes
# polynomial E_8 (Kronrod 1964, tabulated in QUADPACK).  The 15 Kronrod
# weights follow from exactness on Legendre polynomials P_0..P_14.
_GX, _GW = np.polynomial.legendre.leggauss(7)
_KX_EXTRA = np.array([0.991455371120812639206854697526329, 0.864864423359769072789712788640926,
                      0.586087235467691130294144838258730, 0.207784955007898467600689403773245])
_KX = np.sort(np.concatenate([_GX, _KX_EXTRA, -_KX_EXTRA]))


def _kronrod_weights(nodes):
    v = np.polynomial.legendre.legvander(nodes, len(nodes) - 1).T  # v[d, k] = P_d(x_k)
    rhs = np.zeros(len(nodes))
    rhs[0] = 2.0
    return np.linalg.solve(v, rhs)


_KW = _kronrod_weights(_KX)
_GMASK = np.isin(np.round(_KX, 15), np.round(_GX, 15))
_GW_ON_K = np.zeros(15)
_GW_ON_K[_GMASK] = _GW[np.argsort(_GX)]
assert _GMASK.sum() == 7

_CHUNK_ELEMS = 1 << 19        # ~4 MB of float64 per temporary matrix
MAX_PANELS = 20000
MAX_ROUNDS = 60


def logsumexp(a, axis=None, b=None):
    """log sum b e^a (b >= 0), like scipy.special.logsumexp without its per-call overhead."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.max(a, axis=axis, keepdims=True) if a.size else np.zeros((1,) * a.ndim)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(a - m)
        if b is not None:
            e = e * b
        out = np.log(np.sum(e, axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else float(out.reshape(()))


def _log_cosh(u):
    a = np.abs(u)
    return a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)


def entry_tolerance(log_ref, rtol=2e-14):
    """Relative tolerance per entry: ``rtol`` for p >= 1e-300, else the
    log-accuracy target ``1e-13 * |log p|`` (capped at 1e-2).  Beyond
    ``|log p| > 1e12`` the node values carry a rounding noise of ``eps |log p|``
    and more (the ulp of log p exceeds 1e-4), which no refinement removes; the
    contract there (log p within ``1e-12 |log p| >= 1``) allows a factor e in p,
    so the tolerance is 1.  It is not infinite: the estimate must still pass the
    QUADPACK test, ``|K15 - G7| <= 0.004 A`` with the 3/4 share of the budget
    (:func:`integrate_components`), which fails when one node carries the panel
    -- a mass narrower than the nodes, next to a kink (Gompertz noise at
    mu = (30, 0, 0): the losers' integrands fall by e^(5.3e12) per unit of x
    right of the kink at 30, their mass lies within 2e-13 of it; without the
    test the panel's outermost node, 0.002 away, gave log p 1.06e10 too low)."""
    log_ref = np.asarray(log_ref, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        loose = np.minimum(1e-2, 1e-13 * np.abs(log_ref))
    tol = np.where(log_ref >= -690.0, rtol, np.maximum(loose, rtol))
    return np.where(log_ref < -1e12, 1.0, tol)


# ---------------------------------------------------------------------------
# a row: unique standardized scores, counts, log F
# ---------------------------------------------------------------------------


# A score more than SPLIT_WIDTH below its cluster's top starts a new cluster with its own
# map (see Row).  Under x = c + sinh(u) an O(1)-wide feature at distance d from c is
# 1/d wide in u; the initial 0.5-spaced u-grid then spans 0.5 d in x around it.  At
# d ~ 3e3 the adaptive rule's error estimate was fooled by a close pair of heavy-tailed
# scores (student_t nu=2.5, [3e3, 0, -0.25]: log p off by 1.3e-13; [1e6, 0, -0.25]:
# 4.8e-6, with no error raised); within 1e3 of a center it stays below 2e-14.
SPLIT_WIDTH = 1e3
# A value tied this often makes F steep (log-slope count * h): the top cluster's map is
# then centred where the maximum's mass is (F = 1/2) instead of at the top score.  The
# nodes' rounding is relative to their distance from the centre, and with slope k h a
# rounding of 1e-16 at distance 1 moves the integrand by k h 1e-16 (uniform, 9999 tied
# at 0 below a top at 0.01: F = x^9999 near x = 1, the probabilities 1e-12 off); near
# the centre the nodes are exact to 1e-16 of their (small) distance, and the rounding
# of ``x - y`` itself is corrected by :meth:`Row._tie_correction`.  For families with
# kinks (support ends, where the density may jump) the centre is then moved to the
# nearest kink ``y_j + b`` within one scale unit: a panel ending at a kink at distance
# d from the centre ends ulp(d) away from it, and an integrand that jumps there by J
# loses ~ulp(d) J of an entry p_i (uniform, 0 and 100 scores tied at -0.999: a centre
# at F = 1/2, x = 0.5, would end the panel ~1e-16 off the kink 0.001, where p_2 = 5e-7
# has J = 1e-3, an error of 2e-13 in log p_2; at the kink itself the panel ends are exact).
_TIE_RECENTER = 16
_LOG2 = math.log(2.0)


class Row:
    """One finite standardized score vector (not shifted: see below).

    ``vals``/``counts``: unique scores and multiplicities (ties share
    one integrand); ``inverse`` maps entries to unique values.

    Nodes are given as pairs ``(c, s)`` with ``x = c + s`` never formed:
    ``x - y_j = s + (c - y_j)``.  That difference is exact for scores of the
    node's own cluster whatever their size, which is why rows are not shifted
    by their maximum: ``(1e17, 0, 0.5) - 1e17`` would round ``0.5 - 1e17`` to
    ``-1e17`` and tie two scores whose probabilities differ by 16% (cauchy).  The integration variable is piecewise,
    one segment per cluster of scores (a cluster ends at a gap
    > ``SPLIT_WIDTH`` or before a score > ``SPLIT_WIDTH`` below its top): on segment k, ``x = c_k + sinh(u - o_k)`` with
    ``c_k`` the cluster's top score.  A single ``x = sinh u`` map cannot
    resolve O(1)-wide features at |x| ~ 1e300 (the ulp of u is 1e-13,
    i.e. 1e287 in x); with one center per cluster every feature sits
    near some center.  The offsets ``o_k`` make u -> x continuous and
    increasing (o_0 = 0 with c_0 = 0: rows without huge gaps keep
    ``x = sinh u``).  Segment k covers x between the midpoints of the
    gaps around cluster k.  ``recenter=False`` keeps the top score as the first
    centre even for heavy ties (see ``_TIE_RECENTER`` and :func:`_kink_bias`).
    """

    def __init__(self, y, fam, recenter=True):
        y = np.asarray(y, dtype=np.float64)
        self.fam = fam
        self.recenter = recenter
        self.vals, self.inverse, self.counts = np.unique(y, return_inverse=True, return_counts=True)
        self.vals = self.vals[::-1].copy()          # descending
        self.counts = self.counts[::-1].copy().astype(np.float64)
        self.inverse = (len(self.vals) - 1 - self.inverse).ravel()
        self.n = y.size
        self.top = float(self.vals[0])
        self._segments()

    def _segments(self):
        v = self.vals
        with np.errstate(over="ignore"):
            gaps = v[:-1] - v[1:]
        cut = np.flatnonzero(gaps > SPLIT_WIDTH)         # cluster k ends at index cut[k]
        if v.size > 1 and v[0] - v[-1] > SPLIT_WIDTH:
            # greedy: a new cluster also where a score lies > SPLIT_WIDTH below the current top
            cuts, top = [], v[0]
            gap_cut = np.zeros(v.size, dtype=bool)
            gap_cut[cut] = True
            for i in range(1, v.size):
                if gap_cut[i - 1] or top - v[i] > SPLIT_WIDTH:
                    cuts.append(i - 1)
                    top = v[i]
            cut = np.asarray(cuts, dtype=np.intp)
        starts = np.concatenate([[0], cut + 1])
        ends = np.concatenate([cut, [v.size - 1]])
        self.tops = v[starts].copy()                     # top score of each cluster
        self.centers = self.tops.copy()                  # the maps' centres
        if self.recenter and self.counts.max() >= _TIE_RECENTER:
            self.centers[0] = self._snap_to_kink(self._median_of_max(), v[starts[0]:ends[0] + 1])
        self.lows = v[ends].copy()                       # bottom score of each cluster
        K = starts.size
        # boundary x-value between cluster k-1 and k, stored relative to both centers
        # (midpoint of the gap; differences of floats <= 1.8e308 apart, halved first)
        self.b_hi = np.full(K, np.inf)      # upper end of segment k, as s = x - c_k
        self.b_lo = np.full(K, -np.inf)     # lower end of segment k, as s = x - c_k
        for k in range(1, K):
            half = 0.5 * self.lows[k - 1] - 0.5 * self.centers[k]       # > 0
            self.b_lo[k - 1] = (self.lows[k - 1] - self.centers[k - 1]) - half
            self.b_hi[k] = half
        self.offsets = np.zeros(K)
        for k in range(1, K):
            self.offsets[k] = (self.offsets[k - 1] + math.asinh(self.b_lo[k - 1])
                               - math.asinh(self.b_hi[k]))
        # u of the boundary between segment k-1 and k, ascending for searchsorted
        self.u_cuts = (self.offsets[1:] + np.arcsinh(self.b_hi[1:]))[::-1].copy()

    def _snap_to_kink(self, c, vals):
        """The kink ``y_j + b`` (``y_j`` among ``vals``, ``b`` a breakpoint of the family)
        nearest to ``c`` when one lies within 1 of it, else ``c`` (see _TIE_RECENTER)."""
        bps = np.asarray(self.fam.breakpoints, dtype=np.float64)
        if not bps.size:
            return c
        kinks = (vals[:, None] + bps[None, :]).ravel()
        kinks = kinks[np.isfinite(kinks)]
        if not kinks.size:
            return c
        k = float(kinks[np.argmin(np.abs(kinks - c))])
        return k if abs(k - c) <= 1.0 else c

    def _median_of_max(self):
        """A float ``x`` with ``F(x)`` near 1/2 (two 33-point scans of ``log F``), where
        the mass of the maximum -- and so of every integrand -- lies."""
        top = self.top
        lo, hi = top - 1.0, top + 1.0
        for _ in range(60):
            lF = self.log_F(np.array([lo, hi]))
            if lF[0] < -_LOG2 and lF[1] >= -_LOG2:
                break
            lo, hi = (lo - (hi - lo), hi) if lF[0] >= -_LOG2 else (lo, hi + (hi - lo))
        else:
            return top
        for _ in range(2):
            xs = np.linspace(lo, hi, 33)
            i = int(np.searchsorted(self.log_F(xs), -_LOG2))
            lo, hi = xs[max(i - 1, 0)], xs[min(i, 32)]
        return float(hi) if math.isfinite(hi) else top

    #: initial panel edges carrying the end map (see :meth:`nodes`); None: no map
    knots = None

    def nodes(self, u):
        """``(c, s, log dx/du)`` for an array of u values.

        With :attr:`knots` set (a density unbounded at a finite support end, see
        :func:`_end_map_orders`), the integration variable ``v`` is mapped first on each
        initial panel ``[k_j, k_{j+1}]`` of width ``L``, ``t = (v - k_j) / L``, by a power
        of the distance to the nearer knot: ``u = k_j + (L/2) (2t)^p`` for ``t <= 1/2`` and
        ``u = k_{j+1} - (L/2) (2 - 2t)^q`` beyond, ``p``, ``q`` the orders of the two knots
        (``du/dv = p (2t)^(p-1)``, resp. ``q (2 - 2t)^(q-1)``; the midpoints are panel edges
        too, see :func:`_domain`, so no panel straddles the change of formula).  Every
        kink ``y_m + b`` is a knot, so a factor ``(x - kink)^a (analytic)`` of the
        integrand becomes ``(2t)^(p (a + 1) - 1)`` times a function analytic in ``t``, and a
        CDF factor ``(x - kink)^(a+1)`` a power ``(2t)^(p (a + 1))``.
        :func:`_end_map_orders` gives a kink at a singular end the order ``p`` with
        ``p (a + 1)`` an integer where ``a`` has a small denominator (``a = -1/2``,
        arcsine: 2; ``a = -7/10``, Beta(3/10, 1): 10), so the integrand is analytic in
        ``t`` and Gauss-Kronrod converges geometrically; every other knot has order 2.
        A pure power keeps the analytic factor free of nearby singularities (a
        polynomial map such as ``I_t(p, q)`` would put the zeros of its cofactor, raised
        to the power ``a``, close to the panel).  Outside ``[k_0, k_last]``
        (pushed-out infinite ends) ``u = v``.

        The singular factor must see ``x - kink`` to relative precision, but the knot
        ``asinh(kink - c)`` is rounded: through ``c + sinh(u)`` the singular point would
        move by ~1e-16 off the knot and the integrand ``(t^2 L + 1e-16)^(-1/2) t`` is no
        longer analytic (adaptive bisection then fails near every kink).  So a node in
        the half of its panel next to a kink knot is returned as ``c = y_m``,
        ``s = b + (sinh(w) - sinh(w_k))`` with ``sinh(w) - sinh(w_k) =
        2 cosh((w + w_k)/2) sinh((w - w_k)/2)`` and ``w - w_k`` taken from ``t`` directly
        (``(L/2) (2t)^p``, or ``-(L/2) (2 - 2t)^q`` from the right knot): ``x - y_m = b +
        offset`` holds the offset exactly (b = 0) or to one rounding of ``b + offset``.
        This moves x by a rounding of the kink (<= 1 ulp) against the plain map, a jump at
        ``t = 1/2`` where the integrand is bounded; ``dx/du = cosh(w)`` is unchanged.
        """
        u = np.asarray(u, dtype=np.float64)
        if self.knots is None:
            return self._sinh_nodes(u)
        k = self.knots
        j = np.clip(np.searchsorted(k, u, side="right") - 1, 0, k.size - 2)
        a, L = k[j], k[j + 1] - k[j]
        inside = (u >= k[0]) & (u <= k[-1])
        t = np.where(inside, (u - a) / L, 0.5)
        left = t < 0.5
        order = np.where(left, self.knot_order[j], self.knot_order[np.minimum(j + 1, k.size - 1)])
        tau = np.where(left, 2.0 * t, 2.0 - 2.0 * t)         # 2 x distance to the nearer knot
        du = np.where(left, 0.5, -0.5) * L * tau ** order   # u - nearer knot
        uu = np.where(inside, np.where(left, a, k[j + 1]) + du, u)
        c, s, lj = self._sinh_nodes(uu)
        with np.errstate(divide="ignore"):
            lj = lj + np.where(inside, np.log(order) + (order - 1) * np.log(tau), 0.0)
        near = np.where(left, j, j + 1)
        kink = inside & np.isfinite(self.knot_y[near])
        if kink.any():
            kn = near[kink]
            seg = self._segment_of(uu[kink])
            wk = k[kn] - self.offsets[seg]
            du = du[kink]
            off = 2.0 * np.cosh(wk + 0.5 * du) * np.sinh(0.5 * du)
            b = self.knot_b[kn]
            # x - y_m = fl(b + off) rounds off by up to half an ulp of b (1e-16 for b = 1):
            # next to the kink that is a relative error r / d of the distance d, and the
            # singular factor d^a moves by a r / d (1e-10 at d = 1e-6).  Instead the node
            # moves onto the float: off' = fl(b + off) - b (exact, Sterbenz), and t, the
            # Jacobian with it, by one Newton step of off(du) = off' (off'(du) = cosh(w))
            # and of du(tau) = du' (|du| = (L/2) tau^m); the step's error is
            # O((r / d)^2).  The rule then samples its analytic integrand at t' = t + O(r /
            # (dx/dt)) instead of t: an error O(r) in p, not O(r / d).
            snapped = (b + off) - b
            du2 = du + (snapped - off) / np.cosh(wk + du)
            # |du| = (L/2) tau^m: d|du|/dtau = m |du| / tau, so tau moves by (|du2| / |du| - 1) tau / m
            ok, tk = order[kink], tau[kink]
            with np.errstate(invalid="ignore", divide="ignore"):
                tk = tk * (1.0 + (du2 / du - 1.0) / ok)
            c = c.copy()
            s = s.copy()
            c[kink] = self.knot_y[kn]
            s[kink] = b + snapped
            with np.errstate(divide="ignore"):
                lj[kink] = _log_cosh(wk + du2) + np.log(ok) + (ok - 1) * np.log(tk)
        return c, s, lj

    def set_knots(self, edges, orders):
        """Use the end map (see :meth:`nodes`) on the panels between ``edges``; knots that
        are kinks ``y_m + b`` at a singular end ``b`` (a key of ``orders``, matched as
        their u within the 1e-13 merge tolerance of :func:`_domain`) remember ``(y_m, b)``
        and take the order ``orders[b]``, the others the order 2.  Only the singular
        factor needs ``x - kink`` to relative precision: a node held relative to another
        kink ``y_m + b`` (``b != 0``) would see every other score's distance to one
        rounding of ``b``, a relative error ``1e-16 / d`` at a distance ``d``."""
        self.knots = edges.copy()
        self.knot_y = np.full(edges.size, np.nan)
        self.knot_b = np.zeros(edges.size)
        self.knot_order = np.full(edges.size, 2, dtype=np.int64)
        bps = np.asarray(sorted(orders), dtype=np.float64)
        if not bps.size:
            return
        seg = self._segment_of(edges)
        for i, (e, g) in enumerate(zip(edges, seg)):
            with np.errstate(over="ignore", invalid="ignore"):
                ku = self.to_u((self.vals - self.centers[g])[:, None] + bps[None, :], g)
            hit = np.argwhere(np.abs(ku - e) <= 1e-13 * max(1.0, abs(e)))
            if hit.size:
                m, b = hit[0]
                self.knot_y[i], self.knot_b[i] = self.vals[m], bps[b]
                self.knot_order[i] = max(orders[float(bps[b])] for b in hit[:, 1])

    def _segment_of(self, u):
        K = self.centers.size
        return K - 1 - np.searchsorted(self.u_cuts, u, side="right")

    def _sinh_nodes(self, u):
        if self.centers.size == 1:
            return np.full(u.shape, self.centers[0]), np.sinh(u), _log_cosh(u)
        seg = self._segment_of(u)
        w = u - self.offsets[seg]
        return self.centers[seg], np.sinh(w), _log_cosh(w)

    def to_u(self, s, k):
        """u of the point ``x = c_k + s`` (s an array) on segment k."""
        return self.offsets[k] + np.arcsinh(s)

    def _diff(self, c, s, vals):
        # x - y_j = s + (c - y_j): exact for nearby j, relative rounding otherwise
        with np.errstate(over="ignore", invalid="ignore"):
            return s[:, None] + (c[:, None] - vals[None, :])

    def log_F(self, c, s=None):
        """``sum_j log Phi(x - y_j)`` at nodes ``x = c + s`` (1-d arrays, chunked).

        Called with one argument, it is ``x`` itself (``c = 0``)."""
        if s is None:
            c, s = np.zeros(np.shape(c)), np.asarray(c, dtype=np.float64)
        c = np.broadcast_to(np.asarray(c, dtype=np.float64), s.shape)
        out = np.empty(s.shape, dtype=np.float64)
        m = len(self.vals)
        step = max(1, _CHUNK_ELEMS // max(m, 1))
        tied = np.flatnonzero(self.counts > 1)
        for i in range(0, s.size, step):
            d = self._diff(c[i:i + step], s[i:i + step], self.vals)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                lc = np.asarray(self.fam.logcdf(d), dtype=np.float64)
                if tied.size:
                    lc[:, tied] += self._tie_correction(c[i:i + step], s[i:i + step], d[:, tied], tied)
                out[i:i + step] = (lc * self.counts).sum(axis=1) if m > 1 else lc[:, 0] * self.counts[0]
        if np.isnan(out).any():
            bad = np.flatnonzero(np.isnan(out))[0]
            raise QuadratureError(f"family {self.fam.name!r}: logcdf returned nan at a quadrature node "
                                  f"x = {float(c[bad]) + float(s[bad]):.6g} (shifted scores)")
        return out

    def _tie_correction(self, c, s, d, cols):
        """First-order correction ``h(d) err`` of ``log Phi`` for the rounding ``err`` of
        ``d = fl(s + fl(c - y))`` against ``x - y = s + c - y`` (both roundings exact by
        TwoSum), for the tied values ``cols`` (``d`` their columns).

        A rounding error of the difference is a fixed fraction of the ulp for all nodes
        near a score (it depends on the low bits of ``c - y``), so it is a bias, not
        noise; a value tied ``k`` times carries it ``k`` times in ``log F``: uniform,
        (0 x 9999, 0.01): without it ``F = x^9999`` is 9999 x 1e-16 = 1e-12 off near x = 1,
        and so are the probabilities.  With the correction the residual is ``O(h' err^2 k)``."""
        y = self.vals[cols][None, :]
        a, b = c[:, None], -y
        e = a + b                                   # fl(c - y), TwoSum error e_err
        bb = e - a
        e_err = (a - (e - bb)) + (b - bb)
        s2 = s[:, None]
        bb = d - s2                                 # d = fl(s + e), TwoSum error d_err
        d_err = (s2 - (d - bb)) + (e - bb)
        lh = np.asarray(self.fam.loghazard(d), dtype=np.float64)
        corr = np.exp(lh) * (d_err + e_err)
        return np.where(np.isfinite(corr), corr, 0.0)

    def log_h(self, c, s=None):
        """``log h(x - y_u)`` for all unique values u: shape (m, len(x))."""
        if s is None:
            c, s = np.zeros(np.shape(c)), np.asarray(c, dtype=np.float64)
        c = np.broadcast_to(np.asarray(c, dtype=np.float64), s.shape)
        d = self._diff(c, s, self.vals).T
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return np.asarray(self.fam.loghazard(d), dtype=np.float64)


# ---------------------------------------------------------------------------
# generic vectorised adaptive Gauss-Kronrod on the u-axis
# ---------------------------------------------------------------------------


def _signed_lse(L, S, logw, axis):
    """log|sum w s e^L| and its sign, plus log sum w e^L (the L1 scale)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        Lw = L + logw
        m = np.max(Lw, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(Lw - m)
        tot = np.sum(e * S, axis=axis)
        l1 = np.sum(e, axis=axis)
        m = np.squeeze(m, axis=axis)
        return np.log(np.abs(tot)) + m, np.sign(tot), np.log(l1) + m


class _Panels:
    def __init__(self, ncomp):
        self.a = np.empty(0)
        self.b = np.empty(0)
        self.lK = np.empty((0, ncomp))
        self.sK = np.empty((0, ncomp))
        self.lA = np.empty((0, ncomp))
        self.lE = np.empty((0, ncomp))


def _eval_panels(a, b, integrand, ncomp):
    """K15 value (log|.|, sign), L1 (log) and QUADPACK error (log) per panel and component."""
    P = a.size
    half = 0.5 * (b - a)
    mid = 0.5 * (b + a)
    u = (mid[:, None] + half[:, None] * _KX[None, :]).ravel()          # (P*15,)
    lhalf = np.log(half)
    lK = np.empty((P, ncomp))
    sK = np.empty((P, ncomp))
    lA = np.empty((P, ncomp))
    lE = np.empty((P, ncomp))
    step = max(1, _CHUNK_ELEMS // (15 * max(ncomp, 1)))
    for s in range(0, P, step):
        sl = slice(s, s + step)
        us = u[s * 15:(s + step) * 15]
        L, S = integrand(us)                       # (ncomp, k), Jacobian dx/du included
        k = L.shape[1] // 15
        L = L.reshape(ncomp, k, 15)
        if np.isnan(L).any() or (L == np.inf).any():
            raise QuadratureError("integrand is +inf or nan at a quadrature node "
                                  "(the family's logcdf/logpdf returned nan or +inf inside the support)")
        # one exp per node: E = e^{L - max}, then K, G and the L1 scale A by matmul
        mx = L.max(axis=2)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        E = np.exp(L - mx[:, :, None])
        A = E @ _KW
        if S is not None:
            E *= np.asarray(S).reshape(ncomp, k, 15)
            Kv = E @ _KW
        else:
            Kv = A
        Gv = E @ _GW_ON_K
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            la = np.log(A) + mx
            lk = np.log(np.abs(Kv)) + mx
            sk = np.sign(Kv)
            # |K - G| relative to the panel's L1 scale A; QUADPACK: err = A * min(1, (200 d)^1.5)
            d = np.abs(Kv - Gv) / A
            d = np.where(A > 0, d, 0.0)
            le = la + np.minimum(0.0, 1.5 * np.log(200.0 * d))
        lK[sl] = lk.T + lhalf[sl, None]
        sK[sl] = sk.T
        lA[sl] = la.T + lhalf[sl, None]
        lE[sl] = le.T + lhalf[sl, None]
    return lK, sK, lA, lE


def integrate_components(integrand, ncomp, edges, tol_fn, *, tails=None, what="integral", floor=None):
    """Adaptive GK15 of ``ncomp`` integrands over u, given initial panel edges.

    ``integrand(u) -> (L, S)``: log|f| (ncomp, k) and sign (or None for
    positive integrands) at nodes ``u``, including the Jacobian of the
    map u -> x (see :meth:`Row.nodes`).  ``tol_fn(logA) -> rtol`` per component, ``logA`` the
    log L1 norm.  ``tails(panels_total) -> (extra_log, extra_err_log)``
    optional callback returning an additive tail term and its error
    bound per component (log scale, sign +).
    ``floor(logA) -> (log abs_floor, log rel_floor)`` per component (optional;
    a single array means ``rel_floor`` alone): a component is accepted once
    its error is below ``max(rtol * A, abs_floor, rel_floor)``.
    ``abs_floor`` is a bound fixed in advance (e.g. half the smallest
    subnormal of the result): it applies to each component once that
    component is resolved (to 1e-3, or to the rounding noise of huge logs,
    :func:`_resolved`).  ``rel_floor`` is derived from the estimates
    themselves (e.g. 1e-212 of the result's scale) and applies only once
    every component is resolved (see :func:`_trusted_floor`).  Accepted
    components keep their error estimate in the returned ``log err``.
    Returns ``(log|I|, sign, log L1, log err)`` per component.
    """
    edges = np.asarray(edges, dtype=np.float64)
    pn = _Panels(ncomp)
    pn.a, pn.b = edges[:-1].copy(), edges[1:].copy()
    keep = pn.b > pn.a
    pn.a, pn.b = pn.a[keep], pn.b[keep]
    pn.lK, pn.sK, pn.lA, pn.lE = _eval_panels(pn.a, pn.b, integrand, ncomp)
    for _ in range(MAX_ROUNDS):
        lI, sI, lA_tot = _signed_lse(pn.lK, pn.sK, 0.0, axis=0)
        lerr = logsumexp(pn.lE, axis=0)
        lerr_panels = lerr
        if tails is not None:
            # the truncation bounds are the caller's business (it pushes the ends out);
            # the panels must meet 3/4 of the tolerance, the caller checks tails <= 1/4
            t_val, t_err = tails
            lI, sI, lA_tot = _add_positive(lI, sI, lA_tot, t_val)
            lerr = np.logaddexp(lerr, t_err)
        with np.errstate(invalid="ignore"):
            ltol = np.log(tol_fn(lA_tot)) + lA_tot
            if tails is not None:
                ltol = ltol + math.log(0.75)
            if floor is not None:
                ltol = np.maximum(ltol, _trusted_floor(floor, lA_tot, lerr_panels))
        bad = (lerr_panels > ltol) & np.isfinite(lA_tot)
        if not bad.any():
            return lI, sI, lA_tot, lerr
        P = pn.a.size
        thr = ltol[bad] - math.log(P)
        sel = (pn.lE[:, bad] > thr[None, :]).any(axis=1)
        width = pn.b - pn.a
        tiny = width <= 1e-13 * (1.0 + np.maximum(np.abs(pn.a), np.abs(pn.b)))
        sel &= ~tiny
        if not sel.any() or P + sel.sum() > MAX_PANELS:
            break
        a, b = pn.a[sel], pn.b[sel]
        m = 0.5 * (a + b)
        na = np.concatenate([a, m])
        nb = np.concatenate([m, b])
        lK, sK, lA, lE = _eval_panels(na, nb, integrand, ncomp)
        keep = ~sel
        pn.a = np.concatenate([pn.a[keep], na])
        pn.b = np.concatenate([pn.b[keep], nb])
        pn.lK = np.concatenate([pn.lK[keep], lK])
        pn.sK = np.concatenate([pn.sK[keep], sK])
        pn.lA = np.concatenate([pn.lA[keep], lA])
        pn.lE = np.concatenate([pn.lE[keep], lE])
    lI, sI, lA_tot = _signed_lse(pn.lK, pn.sK, 0.0, axis=0)
    lerr = logsumexp(pn.lE, axis=0)
    with np.errstate(invalid="ignore"):
        ltol = np.log(tol_fn(lA_tot)) + lA_tot
        if floor is not None:
            ltol = np.maximum(ltol, _trusted_floor(floor, lA_tot, lerr))
        excess = lerr - ltol
    worst = int(np.nanargmax(np.where(np.isfinite(lA_tot), excess, -np.inf)))
    raise QuadratureError(
        f"{what}: adaptive quadrature did not reach its tolerance "
        f"(component {worst}: estimated relative error {math.exp(min(700, lerr[worst] - lA_tot[worst])):.2e}, "
        f"{pn.a.size} panels); the integrand is not smooth enough to integrate reliably"
    )


def _resolved(lA, lerr):
    """Components whose error estimate is within their resolvable accuracy.

    That is 1e-3 relative, or the rounding noise of ``e^L`` when the logs are
    huge: node values ``L ~ lA`` carry an absolute rounding error ~ a few
    ``eps |lA|``, i.e. a relative noise ``eta = 10 eps |lA|`` in ``e^L``,
    which the QUADPACK estimate turns into ``(200 eta)^1.5`` (capped at 1).
    It matters from ``|lA| ~ 5e7`` on (normal [0, 0, -1e7]: terms ~ e^-1.25e13,
    ulp of L ~ 2e-3: no refinement can resolve them to 1e-3).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        eta = 10.0 * 2.220446049250313e-16 * np.abs(lA)
        allow = np.maximum(1e-3, np.minimum(1.0, (200.0 * eta) ** 1.5))
        return ~(lerr - lA > np.log(allow))


def _trusted_floor(floor, lA, lerr):
    """The error floor, applied only to components already resolved.

    ``floor(lA)`` returns ``(abs_floor, rel_floor)`` or ``rel_floor`` alone.
    An unresolved integrand (a peak missed by every node: estimate ~ error ~
    tiny) would otherwise look negligible, so a floor is applied to a
    component only once its estimate is resolved (:func:`_resolved`; further
    refinement finds the peak first).  ``abs_floor`` is fixed in advance
    (e.g. below the float64 range of the result): it is applied to each
    resolved component on its own.  ``rel_floor`` is scaled by the estimates
    themselves (e.g. 1e-212 of the result's L1 scale), so it is trusted only
    once every weighted component is resolved.
    """
    fl = floor(lA)
    if isinstance(fl, tuple):
        fl_abs, fl = fl
    else:
        fl_abs = np.full(np.shape(lA), -np.inf)
    relevant = fl < np.inf                      # +inf: the component is not used at all
    resolved = _resolved(lA, lerr)
    if not resolved[relevant].all():
        fl = np.where(relevant, -np.inf, fl)
    return np.maximum(fl, np.where(resolved | (fl_abs == np.inf), fl_abs, -np.inf))


def _add_positive(lI, sI, lA, t):
    """(lI, sI) + e^t with t a positive term; also add to the L1 scale."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.maximum(lI, t)
        m = np.where(np.isfinite(m), m, 0.0)
        v = sI * np.exp(lI - m) + np.exp(t - m)
        return np.log(np.abs(v)) + m, np.sign(v), np.logaddexp(lA, t)


# ---------------------------------------------------------------------------
# domain of integration for one row
# ---------------------------------------------------------------------------


_TAIL_REACH_CACHE = {}


def _tail_reach(fam):
    """(qL, qR): logcdf(-qL) <= -40 and logsf(qR) <= -40 (capped at 1e300).

    Standard form (scale 1), so registry families are cached by name and nu."""
    if not fam.custom:
        key = (fam.name, tuple(sorted((k, float(v)) for k, v in fam.params.items() if k != "scale")))
        hit = _TAIL_REACH_CACHE.get(key)
        if hit is None:
            hit = _TAIL_REACH_CACHE.setdefault(key, _tail_reach_uncached(fam))
        return hit
    return _tail_reach_uncached(fam)


def _tail_reach_uncached(fam):
    def first(f):
        q = 4.0
        while q < 1e300:
            if f(q) <= -40.0:
                return q
            q *= 2.0
        return 1e300
    lo, hi = fam.support
    qL = 0.0 if math.isfinite(lo) else first(lambda q: float(np.asarray(fam.logcdf(np.array([-q])))[0]))
    qR = 0.0 if math.isfinite(hi) else first(lambda q: float(fam.logsf(np.array([q]))[0]))
    return qL, qR


_KINK_MARGIN = math.log(1e-30)


def _relevant_kinks(row, k, kinks):
    """Drop kinks (``x - c_k`` values) where every integrand is negligible.

    For families whose reverse hazard is bounded, ``h = phi / Phi <= 1``
    (``NumericFamily.hazard_at_most_one``; laplace).  With ``h <= 1``:
    ``h(x - y_i) F(x) <= F(x)``, and ``F`` increases, while every entry has
    ``p_i >= F(X) sf(X - y_i) >= F(X) sf(X - ymin)`` for any X
    (``int_X^inf h_i F >= F(X) int_X^inf phi_i``).  A kink at x with
    ``log F(x) < max_X [log F(X) + log sf(X - ymin)] + log 1e-30`` lies where
    every integrand is below 1e-30 of its own entry's probability: a panel
    there contributes far below the tolerance whether or not it is split,
    and the adaptive rule still checks it.  Without this, the n kinks of
    a laplace row cost O(n) panels for each of the n entries (O(n^2));
    with it only the kinks near the top scores remain.  The threshold is
    found by bisection on the sorted kinks (F is monotone): O(n log n).
    """
    fam = row.fam
    if not fam.hazard_at_most_one or kinks.size < 64:
        return kinks
    c = row.centers[k]
    ymin = float(row.vals[-1])
    X = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # x = top + X (the row is not shifted)
        lb = np.max(row.log_F(np.full(X.shape, row.top), X)
                    + np.asarray(fam.logsf((row.top - ymin) + X), dtype=np.float64))
    if not np.isfinite(lb):
        return kinks
    thr = lb + _KINK_MARGIN
    ks = np.sort(kinks)
    lo, hi = 0, ks.size                  # find first kink with log F >= thr
    while lo < hi:
        mid = (lo + hi) // 2
        if row.log_F(np.array([c]), ks[mid:mid + 1])[0] >= thr:
            hi = mid
        else:
            lo = mid + 1
    return ks[max(lo - 1, 0):]


_SCORE_EDGES = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])


def _segment_edges(row, k, sL, sR, bps):
    """u-edges of segment k over ``x - c_k`` in [sL, sR] (see :func:`_domain`)."""
    c = row.centers[k]
    uL, uR = row.to_u(max(sL, -1e300), k), row.to_u(min(sR, 1e300), k)
    # 0.5-spaced panels over the core (the cluster's scores +- 8), 2-spaced in the far
    # tails (smooth in u: the adaptive rule splits them if needed)
    cL = max(uL, row.to_u(row.lows[k] - c - 8.0, k))
    cR = min(uR, row.to_u(8.0, k))
    if not cR > cL:
        cL = cR = min(max(cL, uL), uR)
    pts = [np.linspace(cL, cR, max(2, int(math.ceil((cR - cL) / 0.5)) + 1)), [uL, uR]]
    if uL < cL:
        pts.append(np.linspace(uL, cL, max(2, int(math.ceil((cL - uL) / 2.0)) + 1)))
    if cR < uR:
        pts.append(np.linspace(cR, uR, max(2, int(math.ceil((uR - cR) / 2.0)) + 1)))
    if not row.fam.log_concave:
        # With a log-concave density (NumericFamily.log_concave) every integrand
        # phi_i prod_{j != i} Phi_j is log-concave (a product of log-concave functions), so
        # it has one peak, which the adaptive rule finds from the nodes around it.  Without
        # a log-concave density the integrand h_i F can peak near every score (F rises by
        # O(1) across each Phi(x - y_j)): both heavy tails of a far score carry
        # mass (student_t [0, -200]: half of p_low sits at x ~ -200).  There an O(1)
        # feature is 1/|y - c| wide in u, far below the 0.5-spaced core panels, and the
        # adaptive rule cannot see what no node touches: panel edges at
        # y + (-8, -4, -2, -1, 0, 1, 2, 4, 8) around every score (on the unit lattice,
        # merged) more than 8 from the centre put nodes on each such feature.
        inside = (row.vals <= row.tops[k]) & (row.vals >= row.lows[k])
        far = np.unique(np.round(row.vals[inside] - c))
        far = far[np.abs(far) > 8.0]
        if far.size:
            near = (far[:, None] + _SCORE_EDGES[None, :]).ravel()
            pts.append(row.to_u(near[(near > sL) & (near < sR)], k))
    if bps.size:
        inside = (row.vals <= row.tops[k]) & (row.vals >= row.lows[k])
        kinks = ((row.vals[inside] - c)[:, None] + bps[None, :]).ravel()
        kinks = kinks[(kinks > sL) & (kinks < sR)]
        kinks = _relevant_kinks(row, k, kinks)
        pts.append(row.to_u(kinks, k))
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in pts])


def _domain(row):
    """Initial u-edges: support ends, kinks y_j + b, and a 0.5-spaced grid per cluster."""
    fam = row.fam
    lo, hi = fam.support
    qL, qR = _tail_reach(fam)
    # F(x) = 0 below top + lo; phi(x - y_i) = 0 above y_i + hi <= top + hi; unbounded
    # support: truncated at qL below the lowest score of a cluster, qR above the top
    xL_top = lo                                   # x - top (finite lo only)
    xR_top = hi if math.isfinite(hi) else qR      # x - top
    bps = np.asarray(fam.breakpoints, dtype=np.float64)
    K = row.centers.size
    pts = []
    for k in range(K):
        c = row.centers[k]
        dtop = row.top - c            # exact for k = 0 and for clusters near the top
        # segment range in s = x - c_k, clipped to [xL, xR]
        with np.errstate(over="ignore"):
            sL = max(row.b_lo[k], (dtop + xL_top) if math.isfinite(lo) else (row.lows[k] - c) - qL)
            sR = min(row.b_hi[k], dtop + xR_top)
        if k < K - 1 and not math.isfinite(lo) and sL > row.b_lo[k]:
            sL = row.b_lo[k]                      # interior segments meet at the boundary
        if not sR > sL:
            continue
        pts.append(_segment_edges(row, k, sL, sR, bps))
    edges = np.unique(np.concatenate(pts))
    # kinks closer than 1e-13 of their own magnitude are one point for the rule: merge
    # them.  The tolerance is relative only: near u = 0 a panel of width 2^-52 is well
    # resolved by the rule's nodes and can hold all of an entry's mass (uniform,
    # (0, -(1 - 2^-52)): p_2 = e^-72.8 lives on [0, 2^-52])
    keep = np.concatenate([[True], np.diff(edges) > 1e-13 * np.abs(edges[1:])])
    keep[-1] = True
    edges = edges[keep]
    if edges.size >= 3 and not edges[-1] - edges[-2] > 1e-13 * abs(edges[-1]):
        edges = np.delete(edges, -2)
    orders = _end_map_orders(fam)
    if orders:
        row.set_knots(edges, orders)
        # the end map changes formula at each panel's midpoint: an edge as well
        edges = np.sort(np.concatenate([edges, 0.5 * (edges[:-1] + edges[1:])]))
    return edges, (math.isfinite(lo), math.isfinite(hi))


#: the end map's orders per user family (see :func:`_end_map_orders`)
_END_MAP_ORDERS = weakref.WeakKeyDictionary()


def _end_map_orders(fam):
    """``{end: order}`` of :meth:`Row.nodes`' end map at the finite support ends where the
    density is unbounded, or ``{}`` (no map).  Computed once per family.

    Test: ``log phi`` at ``1e-10`` from the end exceeds its value at ``1e-5`` by more
    than 1.  A power law ``phi ~ d^a`` differs there by ``-a ln 1e5 = -11.5 a``, so every
    ``a <= -0.087`` is caught; a bounded analytic density changes by ``O(1e-5)``
    (registry families have bounded densities and are not probed).  The same two values
    give the exponent, ``a = (log phi(1e-5) - log phi(1e-10)) / ln 1e5`` (off by
    ``O(1e-5)``: the density's analytic factor).  The order is the smallest ``p`` of
    2..12 with ``p (a + 1)`` within 0.01 of an integer (then every power of the distance
    to the kink becomes an integer power of ``t``), else the smallest with
    ``p (a + 1) >= 3`` (a ``t^(>= 2)`` endpoint term).

    Orders above 2 only at an end at 0: the rule's node next to a kink ``y_m + b``
    sees ``x - y_m = b + offset`` rounded to an ulp of ``b`` (see :meth:`Row.nodes`), and
    with order ``p`` the 15-point rule's outermost node (``tau = 2 t = 0.0086``) lies at an
    offset ``~ 0.0086^p / 2`` of the panel: above ``3e-5`` for ``p = 2``, below the ulp of 1
    for ``p = 10``.  A steeper end than ``(x - b)^(-1/2)`` at ``b != 0`` keeps order 2,
    where ``t^(2 a + 1)`` is unbounded and the adaptive rule raises
    :class:`QuadratureError` (the density's float64 argument cannot resolve the mass
    next to such an end).

    >>> import numpy as np, numeric
    >>> arcsine = numeric.family_from_logcdf(
    ...     lambda x: np.log(2 / np.pi * np.arcsin(np.sqrt(x))),
    ...     lambda x: -np.log(np.pi) - 0.5 * np.log(x * (1 - x)), (0.0, 1.0), name="arcsine")
    >>> beta = numeric.family_from_logcdf(lambda x: 2 / 3 * np.log(np.clip(x, 0, 1)),
    ...     lambda x: np.where(x < 1, np.log(2 / 3) - np.log(x) / 3, -np.inf), (0.0, 1.0), name="beta(2/3, 1)")
    >>> _end_map_orders(arcsine), _end_map_orders(beta), _end_map_orders(numeric.families.get_family("uniform"))
    ({0.0: 2, 1.0: 2}, {0.0: 3}, {})
    """
    if not fam.custom:
        return {}
    hit = _END_MAP_ORDERS.get(fam)
    if hit is None:
        hit = _END_MAP_ORDERS.setdefault(fam, _end_map_orders_uncached(fam))
    return hit


def _end_map_orders_uncached(fam):
    lo, hi = fam.support
    probe = []
    if math.isfinite(lo):
        probe.append((lo, (lo + 1e-10 * max(1.0, abs(lo)), lo + 1e-5 * max(1.0, abs(lo)))))
    if math.isfinite(hi):
        probe.append((hi, (hi - 1e-10 * max(1.0, abs(hi)), hi - 1e-5 * max(1.0, abs(hi)))))
    orders = {}
    with np.errstate(all="ignore"):
        for end, (near, far) in probe:
            lp = np.asarray(fam.logpdf(np.array([near, far])), dtype=np.float64)
            if not lp[0] > lp[1] + 1.0:
                continue
            power = max(1.0 - (lp[0] - lp[1]) / math.log(1e5), 1e-3)        # a + 1
            orders[end] = 2
            if end == 0.0:
                orders[end] = next((p for p in range(2, 13) if p * power >= 0.99
                                    and abs(p * power - round(p * power)) < 0.01),
                                   max(2, math.ceil(3.0 / power)))
    return orders


# ---------------------------------------------------------------------------
# log-probabilities
# ---------------------------------------------------------------------------


def _probs_integrand(row):
    def integrand(u):
        c, s, ljac = row.nodes(u)
        lF = row.log_F(c, s)
        lh = row.log_h(c, s)
        with np.errstate(invalid="ignore"):
            L = lh + (lF + ljac)[None, :]
        L = np.where(np.isneginf(lF)[None, :] | np.isneginf(lh), -np.inf, L)
        return L, None
    return integrand


def _tail_terms(row, edges, bounded):
    """Right-tail mass added analytically, and the bounds of what is dropped."""
    m = len(row.vals)
    val = np.full(m, -np.inf)
    err_l = np.full(m, -np.inf)
    err_r = np.full(m, -np.inf)
    fam = row.fam
    if not bounded[0]:
        lFl = row.log_F(*row.nodes(edges[:1])[:2])[0]
        # dropped left mass of entry i: int_{-inf}^{X_L} phi_i prod_{j!=i} Phi_j <= F(X_L)
        err_l = np.full(m, lFl)
    if not bounded[1]:
        cr, sr, _ = row.nodes(edges[-1:])
        lFr = row.log_F(cr, sr)[0]
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            lsf = np.asarray(fam.logsf(row._diff(cr, sr, row.vals)[0]), dtype=np.float64)
        # int_{X_R}^inf phi(x - y_i) prod_{j != i} Phi(x - y_j) dx lies in [F(X_R) sf, sf]:
        # add F(X_R) sf, charge sf (1 - F(X_R)) to the error budget
        val = lsf + lFr
        with np.errstate(divide="ignore"):
            err_r = lsf + math.log(-math.expm1(lFr)) if lFr < 0 else np.full(m, -np.inf)
    return val, err_l, err_r


def quadrature_log_probs(y, fam, *, rtol=2e-14, return_row=False):
    """log p for one finite standardized row ``y`` (any order, any ties).

    >>> import numpy as np; from numeric.families import get_family
    >>> lp = quadrature_log_probs(np.array([0.0, -1.0]), get_family("normal"))
    >>> round(float(np.exp(lp[0])), 12)     # Phi(1/sqrt 2)
    0.760249938907
    """
    y = np.asarray(y, dtype=np.float64)
    # (not shifted by the maximum: see Row)
    # entries whose probability is provably below the float64 range of log p are exactly
    # -inf: p_i <= P[eps_i - eps_k > g] <= sf(g/2) + cdf(-g/2) for the top entry k, gap g
    with np.errstate(over="ignore"):
        g = y.max() - y
    far = g > 1e6
    if far.any():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            bound = np.logaddexp(np.asarray(fam.logsf(g[far] / 2), dtype=np.float64),
                                 np.asarray(fam.logcdf(-g[far] / 2), dtype=np.float64))
        dead = np.zeros(y.shape, dtype=bool)
        dead[far] = ~(bound > -np.inf)
        if dead.any():
            out = np.full(y.shape, -np.inf)
            if return_row:
                sub, row = quadrature_log_probs(y[~dead], fam, rtol=rtol, return_row=True)
                out[~dead] = sub
                row.subset = ~dead
                return out, row
            out[~dead] = quadrature_log_probs(y[~dead], fam, rtol=rtol)
            return out
    row = Row(y, fam)
    row.subset = None
    m = len(row.vals)
    if m == 1:
        out = np.full(y.shape, -math.log(y.size))
        row.edges = None
        return (out, row) if return_row else out
    # a map recentred at heavy ties (see _TIE_RECENTER) may hold a kink that bounds some
    # entry's mass far from its centre (see _kink_bias): then the top score as the centre
    # too, each entry from the map whose bias bound is smaller (both integrate the same
    # p_i; the normalisation is of the combined values)
    attempts = []
    recentred = bool(np.any(row.centers != row.tops))
    for recenter in (True, False) if recentred else (True,):
        r = row if recenter else Row(y, fam, recenter=False)
        r.subset = None
        try:
            lI, edges = _unique_log_probs(r, rtol)
        except QuadratureError:
            if recenter and recentred:
                continue
            raise
        r.edges = edges
        ratio = _kink_bias(r, edges, lI, rtol)
        attempts.append((lI, ratio, r))
        if not (ratio > 0).any():
            break
    if len(attempts) == 2:
        pick = attempts[1][1] < attempts[0][1]
        lI = np.where(pick, attempts[1][0], attempts[0][0])
        ratio = np.minimum(attempts[0][1], attempts[1][1])
        row = attempts[int(attempts[1][1].max() < attempts[0][1].max())][2]
    else:
        lI, ratio, row = attempts[0]
    if (ratio > 0).any():
        raise QuadratureError("probabilities: an entry's mass lies in an interval next to a jump of the "
                              "density too narrow for the float64 integration variable at its distance "
                              "from the map's centre")
    total = logsumexp(lI, b=row.counts)
    lu = lI - total
    lp = lu[row.inverse]
    return (lp, row) if return_row else lp


def _kink_bias(row, edges, lI, rtol):
    """log(bias bound / allowed) per unique entry (``lI`` the entries' log integrals) for
    the placement of nodes and panel edges in ``u``: the entry is accurate enough where
    it is <= 0.

    ``u`` is a float: at ``|w| ~ 1`` (``w = u - o``) a node or an edge lies up to
    ``du = ulp(w)/2 + ulp(s)/cosh(w)`` (half an ulp for rounding u, one for sinh and the
    difference, ``s = sinh(w)``) from where the rule puts it, i.e. ~1e-16 in x.  An entry
    whose mass lies in a narrow interval of width ``W`` there, ending at a jump ``g`` of
    its integrand (``g/p ~ 1/W``), moves by ``du g / p``: at an edge the rule misses or
    adds the sliver between the edge and the kink, inside the interval the integrand
    changes by ``g du`` per node, both unseen by the error estimate (a deterministic
    bias, or a noise that the estimate ``(200 |K - G| / A)^1.5`` shrinks below the
    tolerance).  Uniform, 70 scores tied at 0 and 70 at -(1 - 1e-6), centred at the kink
    1 (F = 1/2 there, see _TIE_RECENTER): ``p_deep = int_0^1e-6 x^70 (x + 1 - 1e-6)^69 dx``
    came out 4e-9 off in log p.  The bound sums ``du |g+ - g-|`` over all edges, the
    integrand read 64 ulps to either side of each (smooth pieces move by
    ``O(64 ulp g')`` between the two).  It is a worst case (roundings of either sign,
    each at most an ulp: on uniform rows of 2000 clustered scores it is 2.5 times the
    allowance where the error is 5e-14), so the allowance is 16 times the entry's
    tolerance (3.2e-13 relative, resp. 1.6e-12 |log p|).  Families without breakpoints
    and rows with the end map (it holds nodes next to a kink relative to it:
    :meth:`Row.nodes`) have no such jumps."""
    if row.knots is not None or not np.asarray(row.fam.breakpoints).size:
        return np.full(lI.shape, -np.inf)
    e = edges
    eps = 64.0 * np.spacing(np.abs(e))
    integrand = _probs_integrand(row)
    Lm, Lp = integrand(e - eps)[0], integrand(e + eps)[0]
    w = e - row.offsets[row._segment_of(e)]
    du = 0.5 * np.spacing(np.abs(w)) + np.spacing(np.abs(np.sinh(w))) / np.cosh(w)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        hi, lo = np.maximum(Lm, Lp), np.minimum(Lm, Lp)
        ljump = np.where(np.isneginf(hi), -np.inf, hi + np.log(-np.expm1(lo - hi)))
        lbias = logsumexp(ljump + np.log(du)[None, :], axis=1)
        allowed = np.log(16.0 * entry_tolerance(lI, rtol)) + lI
        return np.where(np.isneginf(lbias) | ~np.isfinite(lI), -np.inf, lbias - allowed)


def _unique_log_probs(row, rtol):
    """log p of the row's unique values (m >= 2, not renormalised: their weighted
    sum is 1 within 1e-9) and the final u-edges."""
    m = len(row.vals)
    edges, bounded = _domain(row)
    tol_fn = lambda lA: entry_tolerance(lA, rtol)   # noqa: E731
    for _ in range(12):
        val, err_l, err_r = _tail_terms(row, edges, bounded)
        lI, _, lA, lerr = integrate_components(_probs_integrand(row), m, edges, tol_fn,
                                               tails=(val, np.logaddexp(err_l, err_r)),
                                               what="probabilities")
        # are the truncation bounds within tolerance?  if not, push the ends out
        with np.errstate(invalid="ignore"):
            ltol = np.log(tol_fn(lA)) + lA - math.log(4.0)
        need_l = bool((err_l > ltol).any())
        need_r = bool((err_r > ltol).any())
        if not (need_l or need_r):
            break
        grown = False
        ubot = row.offsets[-1] - 700.0          # s = -5e303 on the bottom segment
        if need_l and edges[0] > ubot:
            edges = np.concatenate([[max(edges[0] - 4.0, ubot)], edges]); grown = True
        if need_r and edges[-1] < 700:
            edges = np.concatenate([edges, [min(edges[-1] + 4.0, 700.0)]]); grown = True
        if not grown:
            raise QuadratureError("probabilities: the noise tails are too heavy to truncate within "
                                  "float64 range at the requested accuracy")
    else:  # pragma: no cover - 12 extensions reach the float64 range
        raise QuadratureError("probabilities: tail truncation did not converge")
    # sum p = int F' = 1 exactly: a large defect means the integrand was missed somewhere
    total = logsumexp(lI, b=row.counts)
    if not abs(total) < 1e-9:
        raise QuadratureError(f"probabilities: quadrature total {math.exp(total):.17g} differs from 1 "
                              "(the family's logpdf is not the derivative of its logcdf?)")
    return lI, edges
