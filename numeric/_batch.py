"""Vectorised small-n kernel: log p for many short score rows at once.

For a row ``y`` (standardized, finite, maximum 0) and ``F(x) = prod_j Phi(x - y_j)``,

    p_i = int h(x - y_i) F(x) dx = int phi(x - y_i) F(x) / Phi(x - y_i) dx.

Rule: the trapezoid on a mapped variable ``x = map_r(u)``, nodes ``u_k`` a fixed
step ``hh`` apart.  For an integrand analytic in a strip around the real u-axis and
decaying at both ends the trapezoid error is ``O(exp(-2 pi d / hh))``.  Logistic,
gumbel_min and cauchy (and gumbel, student_t under method="batch") use row-placed
"core maps" (see that section): a linear core over the row's own scores, whatever
the spread, with exponential growth only beyond them, so every score's step of
``Phi`` is resolved on the family's unit scale.  The sum over the even nodes (step
``2 hh``) is the error estimate: when it agrees with the full sum to ``AGREE``
(3e-14) relative, the full sum (which converges much faster) is at least as
accurate, below the 1e-13 target.  The truncation is certified by requiring the
weighted terms at both ends of the row's nodes to be below ``1e-18`` of the sum
(the tails decay at least geometrically in u).  Logistic rows up to n ~ 100 take an
a-priori step instead (a proven bound on the trapezoid error through the core map,
see "a-priori core step"): no even/odd comparison, so the step is the one the full
sum needs (about 60% of the nodes at n = 10).

Normal noise has a certificate that needs no second grid: its integrands are entire
with a proven growth off the real axis, so the step ``h(n)`` bounds the trapezoid
error a priori (relative ``_N_DISC`` = 2e-15, every row of length n); they are
log-concave, so two terms at each end bound the dropped tails.  Its nodes are
``x_k = k h``, shared by all rows, each row's left end comes from a Gaussian model
of its integrands (:func:`_normal_rows`), and ``Phi`` comes from ``erfcx`` (a
tabulated piecewise polynomial, :func:`_half_erfcx`) and the ``exp(-d^2/2)`` that
``phi`` needs anyway.  See the "normal" section below.

Pass 1 (``_pass1``), vectorised over the rows of a chunk, in three modes:

* "lin": products of ``Phi`` and ``phi`` in linear space (elementary functions or the
  erfcx table instead of ``log_ndtr``; logistic and gumbel_min from ``e^{-+x} e^{+-y}``,
  no exponential per node and score: ``SmallSpec.split``).  Valid for entries whose
  integral is above ``TINY`` (1e-270): arguments are clipped where ``Phi``
  would underflow, which changes only terms below 1e-297 (negligible against
  ``1e-18 TINY``); smaller entries are not certified in this mode.
* "scaled" (logistic, gumbel_min, cauchy): the linear mode with each factor split
  exactly into mantissa and power of two, and each entry's terms rescaled by its own
  power of two, for rows with an entry below ``TINY`` (see :func:`_scaled_terms`).
* "log": the same nodes in log space (rows neither linear mode certifies).

Determinism: each row's nodes (normal: the shared grid from the left end ``k = -kL_r``
rounded up to a multiple of 4; core maps: the row's own map and node count, rounded up
on a ladder) depend on that row and ``n`` only (normal rows: :func:`_normal_row`
recomputes the vectorised reach bit for bit in scalar code); rows with the same node
count are computed together on (rows, n, nodes) arrays, products run over the entry
axis (sequential) and sums along each entry's own nodes, so a row's result never
depends on its batch mates (bit for bit; the lean single-row function
:func:`row_log_probs` does the same arithmetic on an (n, nodes) array).

Pass 2 (``own_grids=True``, method="batch" only): entries pass 1 cannot certify
(rows needing more than ``MAX_NODES`` nodes, ...) get their own grid centred
at the mode of their integrand (damped Newton, Laplace width); this pass groups
entries of different rows, so its last bits may depend on the batch.

Rows with an entry still uncertified, or whose probabilities do not sum to 1
within ``SUM_TOL`` (a further independent check), get ``ok = False`` and the
caller recomputes them with the adaptive quadrature.

>>> import numpy as np
>>> from numeric.families import get_family
>>> lp, ok = batch_log_probs(np.array([[0.0, -1.0]]), get_family("normal"))
>>> bool(ok[0]), round(float(np.exp(lp[0, 0])), 12)     # Phi(1/sqrt 2)
(True, 0.760249938907)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

from . import _batch_erfcx as _TAB

__all__ = ["batch_log_probs", "batch_vjp", "row_log_probs", "row_vjp", "SmallSpec", "N_MAX"]

N_MAX = 1024

# |T_2h / T_h - 1| accepted.  The trapezoid error decays like A q^(1/h) with an unknown
# A, so "T_h error ~ (T_2h - T_h)^2" is NOT safe (measured: disagreement 3.5e-10 with
# T_h off by 1.9e-12, logistic); the disagreement itself bounds the error of T_h.
AGREE = 3e-14
LOG_END = math.log(1e-18)   # end terms relative to the sum
END = 1e-18
# below log p = -1e13 the node values carry absolute rounding > 1e-3: leave to the caller
LOG_MIN = 1e13
SUM_TOL = 1e-13         # |sum p - 1| accepted before renormalising
TINY = 1e-270           # smallest integral the linear mode certifies
_CHUNK_ELEMS = 1 << 15  # (nodes x rows x n) elements per chunk temporary (256 kB: larger
# temporaries leave the allocator cache and cost page faults, measured 8x slower passes)
_CHUNK_BYTES = 12 * 2 ** 20  # pass 2 temporaries
_CHUNK_NORMAL = 24576   # normal linear mode (4 temporaries per element; measured best)
MAX_NODES = 4000        # longer grids (huge spreads): declined, the caller's quadrature runs

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN2 = math.log(2.0)
_SQRT_HALF = math.sqrt(0.5)

@dataclass(frozen=True, eq=False)
class SmallSpec:
    """A family's constants and kernels for this module, carried by the family
    (``NumericFamily.small``; the registry's specs and the reasons for their values are
    in numeric.families, next to the family's other kernels).  A family with a spec is
    served by :func:`batch_log_probs` / :func:`batch_vjp`; nothing here is keyed by
    family name.

    * ``grid``: pass 1's linear-mode bounds and pass 2's map: ``MAP`` (a key of
      ``_MAPS``), step ``HH2``, reach ``XL`` / ``XR``; ``LO`` / ``HI``: clipping
      bounds of the linear mode's differences; ``LIN_MAX``: widest spread tried in
      the linear mode; ``SC_N``: the scaled linear mode (see there) serves rows of
      length <= SC_N (absent: not served); ``PMIN(spread, n)``: a proven bound on
      ``-log p_min`` (see :func:`_lin_rows`).
    * ``core``: the row-placed core map's constants (see "core maps"), or a callable
      returning them (built when first needed: student_t's right reach is a bisection
      on its tail); None: the normal family's shared a-priori grid (see "normal").
    * ``parts``: ``d -> (Phi(d), phi(d) e^log_c0)`` in linear space, in place of ``d``
      (None: log mode only, the VJP in log space); ``log_c0``: the constant
      the parts leave out of ``phi`` (it goes into the node weights).
    * ``split``: in place of ``parts``, ``(x, y) -> (Phi(d), phi(d) e^log_c0 / Phi(d))``
      at ``d = x - y`` from the nodes and scores apart (new arrays), for families whose
      ``d`` enters through ``e^{+-d} = e^{+-x} e^{-+y}`` (no exponential per element) or
      whose ``h`` takes fewer operations formed with ``Phi`` (cauchy: one division).
    * ``lin_pred``: ``(y, ymin) -> `` a prediction of ``-log p_min`` per row (see
      :func:`_lin_rows`), or None.

    Instances are compared by identity: the node caches are keyed by the spec object.
    """

    grid: dict
    core: dict | Callable | None = None
    parts: Callable | None = None
    log_c0: float = 0.0
    split: Callable | None = None
    lin_pred: Callable | None = None

    @property
    def linear(self) -> bool:
        """The linear modes are available (``parts`` or ``split``)."""
        return self.parts is not None or self.split is not None

    @property
    def apriori(self) -> bool:
        """Rows on the normal family's shared grid with the a-priori step."""
        return self.core is None

    def core_spec(self) -> dict:
        return self.core() if callable(self.core) else self.core


def _small(fam):
    """The family's :class:`SmallSpec` (None for families without one)."""
    return getattr(fam, "small", None)


# pass-2 maps t -> (x - c) / s (entire, increasing): "soft" for gaussian tails, "sinh"
# for exponential/algebraic tails on both sides, "expr"/"expl" for an exponential tail on
# the right/left and a double-exponential one on the other side (gumbel / gumbel_min):
# a map that grows fast where the integrand decays doubly exponentially would make it
# blow up off the real axis and ruin the trapezoid's geometric convergence.
def _softplus(u):
    return np.logaddexp(0.0, u)


# "soft" (normal, pass 2): slope 1 up to ~T0, then 1 + B: the right tail phi(x - y_i)
# is wider than the left flank of F and needs fewer nodes (~13% fewer in all, measured
# n = 3..40); the kink is smoothed over S so the strip of analyticity (poles at
# t = T0 + i pi S (2k+1)) stays wide.
_SOFT_B, _SOFT_S, _SOFT_T0 = 1.0, 1.5, 3.0

_MAPS = {
    "soft": (lambda t: t + _SOFT_B * _SOFT_S * (_softplus((t - _SOFT_T0) / _SOFT_S)
                                                - _softplus(-_SOFT_T0 / _SOFT_S)),
             lambda t: 1.0 + _SOFT_B * special.expit((t - _SOFT_T0) / _SOFT_S)),
    "sinh": (np.sinh, np.cosh),
    "expr": (lambda t: t + np.expm1(t), lambda t: 1.0 + np.exp(t)),
    "expl": (lambda t: t - np.expm1(-t), lambda t: 1.0 + np.exp(-t)),
}


def _inverse(kind, x):
    """t with map(t) = x (scalar, by bisection; the maps are increasing)."""
    if kind == "sinh":
        return math.asinh(x)
    f = _MAPS[kind][0]
    lo = -abs(x) - 1.0 if kind == "expr" else -math.log(abs(x) + 2.0) - 1.0
    hi = abs(x) + 1.0 if kind == "expl" else math.log(abs(x) + 2.0) + 1.0
    if kind == "soft":
        lo, hi = -abs(x) - 10.0, abs(x) + 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(f(np.float64(mid))) < x:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------
# linear-space parts: (Phi(d), phi(d)) with d clipped so Phi(d) > 0
# ---------------------------------------------------------------------------

# exp(a) for a below about -700 leaves numpy's vectorised loop (a subnormal or zero result
# costs 7-40 times a normal one); those results are below e^-700 ~ 1e-304 and are set to
# 0: each node term then moves by less than 1e-304 w, far below 1e-18 of any entry the
# linear mode certifies (T >= TINY), and for the scaled mode see its SC_N bounds.
_EXP_MIN = -700.0


def _exp0(a):
    """``exp(a)`` in place, 0 where ``a < _EXP_MIN``."""
    keep = a >= _EXP_MIN
    np.maximum(a, _EXP_MIN, out=a)
    np.exp(a, out=a)
    a *= keep
    return a


# erfcx(t / sqrt 2) / 2 for t >= 0 from a piecewise-polynomial table (numeric._batch_erfcx,
# generated from mpmath): interval k of K holds u = K t / (t + c) in [k, k + 1) (fine
# intervals where erfcx curves, t < c; wide ones in its ~sqrt(2/pi)/t tail), a degree-P
# polynomial in s = u - k interpolates it at the Chebyshev points of [0, 1].  s is
# formed as ((K - k) t - k c) / (t + c): the rounding of (K - k) t, of relative size
# eps (K - k) t / (t + c) <= eps K in u, moves s by at most ~K eps near t = 0, where
# one unit of s spans t ~ c / K, and by (K - k) eps << 1 in the tail: less than one
# ulp of erfcx either way.  Interpolation error (40-digit check of every interval,
# tests/test_numeric_batch_erfcx.py) far below one ulp; with the Horner rounding the
# relative error is <= 3.5e-16 (measured ~2.3e-16; scipy's erfcx: 6.7e-16).  Gathers,
# multiplies and adds only, ~1/3 of scipy.special.erfcx's time per element.
_ERFCX_C = float(_TAB.C)
_ERFCX_K = int(_TAB.K)
_ERFCX_COEF = np.array([[float.fromhex(v) for v in row] for row in _TAB.COEF])
_ERFCX_COEF.flags.writeable = False


def _half_erfcx(t):
    """``erfcx(t / sqrt 2) / 2`` for ``t >= 0`` (a new array; finite for finite t;
    ``t`` is overwritten)."""
    tc = t + _ERFCX_C
    u = t / tc
    u *= _ERFCX_K
    k = u.astype(np.intp)
    kf = k.astype(np.float64)
    # s = ((K - k) t - k c) / (t + c) = u - k, without the cancellation of u - k
    np.subtract(_ERFCX_K, kf, out=u)
    u *= t
    kf *= _ERFCX_C
    u -= kf
    u /= tc
    coef = _ERFCX_COEF
    acc = coef[-1].take(k)
    for m in range(coef.shape[0] - 2, -1, -1):
        acc *= u
        acc += coef[m].take(k)      # (take with out= is slower: a buffered path)
    return acc


def _normal_parts(d):
    # E = exp(-d^2/2) = sqrt(2 pi) phi(d) (the constant goes into the node weights) and
    # Phi(d) = E erfcx(|d| / sqrt 2) / 2 for d <= 0, 1 - E erfcx(d / sqrt 2) / 2 for d > 0
    # (erfc(z) = exp(-z^2) erfcx(z)): E serves both.  d is clipped to [LO, HI] =
    # [-37, 37.5] by the caller, so E >= e^-703.2 stays a normal float (no slow
    # subnormal exp); at |d| > 37.4 phi is below 1e-304, negligible against 1e-18 TINY,
    # and Phi(d > 8.3) rounds to 1.  Measured against mpmath on d in [-37, 12]: max
    # relative error ~6e-14 from the rounding of d^2 / 2 inside the exponential
    # (eps d^2 / 2; erfcx's share is 3.5e-16).
    E = np.square(d)
    E *= -0.5
    np.exp(E, out=E)
    pos = d > 0.0
    np.abs(d, out=d)
    P = _half_erfcx(d)
    P *= E
    return np.where(pos, 1.0 - P, P), E


def _gumbel_parts(d):
    # e = e^{-d}: Phi = exp(-e), phi = e Phi
    np.negative(d, out=d)
    e = np.exp(d, out=d)
    P = np.exp(-e)
    e *= P
    return P, e


# Separable forms (SmallSpec.split): e^{-d} = e^{-x} e^{y} (logistic) and e^{d} = e^{x} e^{-y}
# (gumbel_min) take one product per element instead of an exponential, and no rounding of
# d = x - y enters the exponential (whose relative error grows like eps |d| there).  The
# nodes act clipped at _EXP_MIN = -700 (their exponential stays finite): there the top
# score's factor (y = 0) is below e^-700 ~ 1e-304 either way, so F and every node term
# (h <= 1, resp. h <= 1 + t) stay below ~1e-301 w, negligible against 1e-18 TINY, as for
# the clip of d at LO in the other forms; the scores of served rows are above -700 (the
# linear mode's LIN_MAX, the scaled mode's declined rows), so e^{-+y} is finite too.
def _logistic_split(x, y):
    # e = e^{-d}: Phi = 1/(1+e), h = phi/Phi = 1 - Phi = e Phi
    e = np.exp(np.negative(np.maximum(x, _EXP_MIN)))
    e = e * np.exp(y)
    P = e + 1.0
    np.reciprocal(P, out=P)
    e *= P
    return P, e


def _logistic_ratio(p, q):
    """``|Phi(w)| / Phi(Re w)`` for logistic ``Phi(d) = 1 / (1 + e^{-d})`` at ``w = +-p + i q``
    (the a-priori core step's RATIO; ``h(d) = Phi(-d)`` has the same): with ``t = e^{-p}``,
    ``|1 + t e^{-iq}|^2 = 1 + 2 t cos q + t^2``, so the ratio is
    ``(1 + t) / sqrt(1 + 2 t cos q + t^2)``, unchanged by ``t -> 1/t`` (``p -> -p``);
    infinite at the poles (``t = 1``, ``cos q = -1``).

    >>> round(float(_logistic_ratio(0.0, 1.0)), 12) == round(1 / math.cos(0.5), 12)
    True
    """
    t = np.exp(np.negative(p))
    return (1.0 + t) / np.sqrt(1.0 + 2.0 * t * np.cos(q) + t * t)


def _gumbel_min_split(x, y):
    # t = e^d: Phi = -expm1(-t), h = phi/Phi = t e^{-t} / Phi with e^{-t} flushed to 0 for
    # t > 700 (_exp0; d > 6.55)
    t = np.exp(np.maximum(x, _EXP_MIN))
    t = t * np.exp(np.negative(y))
    h = np.negative(t)
    P = np.expm1(h)
    np.negative(P, out=P)
    _exp0(h)
    h *= t
    h /= P
    return P, h


def _parts_at(x, y, sm, x0=-math.inf):
    """``(Phi(d), h(d) e^log_c0)`` (``h = phi / Phi``, new arrays) at ``d = x - y`` for
    nodes ``x`` and scores ``y`` (a trailing unit axis) broadcasting to (..., n, G):
    ``sm.split``, or ``sm.parts`` on ``d`` clipped where ``Phi`` would underflow (``LO``,
    only if reachable: ``x0`` bounds the nodes from below, and scores are <= 0) or
    overflow (``HI``): only terms below 1e-297 change (see module doc)."""
    if sm.split is not None:
        return sm.split(x, y)
    d = x - y
    lo, hi = sm.grid.get("LO"), sm.grid.get("HI")
    if (lo is not None and x0 < lo) or hi is not None:
        np.clip(d, lo, hi, out=d)
    P, H = sm.parts(d)
    H /= P
    return P, H


def _cauchy_split(x, y):
    # d = x - y; Phi = 1/2 + atan(d)/pi, written without cancellation for d << 0 as
    # t = atan(1/|d|)/pi (d < 0) and 1 - t (d >= 0; t <= 1/2, and 1/0 = inf gives t = 1/2):
    # relative error <= 2 eps from 1/|d| (eps/2, damped by atan's condition number <= 1),
    # atan and /pi (arctan is numpy's vectorised loop, ~3x faster than arctan2);
    # h = phi / Phi = 1 / (pi (1 + d^2) Phi) by one division (the 1/pi goes into the
    # weights; Phi scaled by pi would break F).  (Callers run under
    # np.errstate(divide="ignore"): 1/0 = inf is intended.)
    d = x - y
    pos = d >= 0.0
    P = np.abs(d)
    np.reciprocal(P, out=P)
    np.arctan(P, out=P)
    P *= 1.0 / math.pi
    P = np.where(pos, 1.0 - P, P)
    np.multiply(d, d, out=d)
    d += 1.0
    d *= P
    return P, np.reciprocal(d, out=d)


# ---------------------------------------------------------------------------
# the normal grid (cached per n; a deterministic function of n)
# ---------------------------------------------------------------------------

class _Grid:
    """Normal nodes ``x[j] = (j - kmax) h`` for ``k = -kmax .. kR``, linear and log
    weights; rows pick their left node count (see :func:`_normal_rows`)."""

    __slots__ = ("hh", "kmax", "kR", "x", "wlin", "logw", "pad", "XL", "spec", "xlist", "klin",
                 "kq")

    def kL_at(self, xL):
        """Left node counts for left ends ``xL``: the smallest ``k`` with ``x(-k) <= xL``,
        rounded up to a multiple of ``kq``; ``> kmax``: beyond the grid."""
        idx = np.searchsorted(self.x, xL, side="right") - 1
        k = self.kmax - idx
        return np.minimum(-(-k // self.kq) * self.kq, self.kmax + self.kq)


_GRIDS = {}
# left node counts are rounded up to multiples of _KQ_NORMAL: rows of a batch fall into
# few groups with identical grids (a group shares every node; no row sees another's)
_KQ_NORMAL = 4          # measured: 1 or 2 (fewer padded nodes) lose on small batches


def _grid(sm, n):
    """The normal grid for rows of length n (``sm``: the normal family's spec)."""
    key = (sm, n)
    g = _GRIDS.get(key)
    if g is not None:
        return g
    spec = sm.grid
    g = _Grid()
    g.spec, g.kq = spec, _KQ_NORMAL
    g.hh = _normal_step(n)
    g.pad = _N_PAD
    g.XL = spec["XL"]
    g.kR = int(math.ceil(_normal_right_reach(n, g.hh) / g.hh))
    g.kmax = min(MAX_NODES - g.kR, int(math.ceil(g.XL / g.hh)))
    g.kmax += (-g.kmax) % g.kq
    g.x = g.hh * np.arange(-g.kmax, g.kR + 1)
    g.logw = np.full(g.x.size, math.log(g.hh))
    # linear-mode weights carry the constant factor the parts leave out of phi
    g.wlin = np.exp(g.logw - sm.log_c0)
    # largest left count whose first node is >= LO (no clipping in the linear mode)
    g.klin = g.kmax - int(np.searchsorted(g.x, spec["LO"], side="left"))
    g.x.flags.writeable = False
    g.xlist = g.x.tolist()
    _GRIDS[key] = g
    return g


# ---------------------------------------------------------------------------
# core maps: row-placed nodes (logistic, gumbel_min, cauchy; gumbel and student_t
# under method="batch")
# ---------------------------------------------------------------------------
#
# Each integrand g_i = h(x - y_i) F(x) has its features (the steps of the factors
# Phi(x - y_j), the peak of h(x - y_i)) at the row's scores, on the family's unit
# scale, and decays beyond them: exponentially (logistic both sides, gumbel_min left,
# gumbel right: F ~ e^{n (x - ymin)} left of the lowest score), double-exponentially
# (gumbel_min right, gumbel left) or algebraically (cauchy: h(x) ~ 1/(pi x^2) right,
# F ~ prod_j 1/(pi |x - y_j|) left).  A map fixed per family cannot resolve every
# score of a wide row (sinh spacing near x is ~ |x| hh).  Row r gets its own map
#     x(u) = u - SL e^{(a_r - u)/SL} + SR e^{(u - b)/SR},
#     a_r = max(ymin_r, -XLMAX) - CL,   b = CR,
# (with SR, a_r is then moved left, by less than hh, onto the lattice b - m hh: every
# row's nodes are lattice points and read the right term from one table per core)
# linear on the core [a_r, b] that holds every score (there x' - 1 <= e^{-dist/S} at a
# distance dist from the core's ends) and exponential beyond it (SL or SR None: linear
# on that side too; double-exponential tails need no growth).  x is entire, x' >= 1,
# and x' vanishes only at u = b +- i pi SR (2k+1), a_r +- i pi SL (2k+1): with
# SL, SR >= 1/pi times the family's own strip half-width (the poles of h and Phi at
# y_j +- i for cauchy, y_j +- i pi for logistic, Im = pi/2 for gumbel_min) the map does
# not narrow the strip in which the trapezoid converges geometrically.  Nodes
# u_k = a_r + xiL + k hh, k = 0 .. G_r - 1: xiL (fixed per family and n) puts the first
# node at x = a_r + CL - PL(n) (the left reach), G_r reaches x >= XR on the
# right and is rounded up on a ladder of 8 steps per octave, so a batch falls into few
# groups; every node depends on its own row only (bit-identical results whatever the
# batch).  Certificate: the even-node sum (step 2 hh) agrees with the full sum to AGREE,
# and both end terms are below END of the sum (:func:`_certify`); with an a-priori step
# (core key RATIO, see "a-priori core step" below) only the end terms are tested.
# Each family's constants (CL, CR, SL, SR, step, reaches) are its ``SmallSpec.core``.
#
# Double-exponential right tail (core key DE = kappa > 0, DE0 = X1; cauchy).  With an
# algebraic right tail (h F ~ 1/(pi x^2)) the node terms of x = SR e^w decay like e^{-w}
# only, and a reach of XR ~ 1e19 costs log(XR / SR) SR / hh ~ 180 nodes at n = 10.  The
# right term becomes SR e^{v(w)}, w = (u - b)/SR,
#     v(w) = w + kappa softplus(w - w0)^2,   w0 = log(X1 / SR),
# v' = 1 + 2 kappa softplus(w - w0) expit(w - w0) >= 1 (so x' >= 1 still), v = w + O(e^{2(w-w0)})
# below w0 (the core and the first X1 units of the tail keep their map), v ~ kappa w^2
# beyond: the terms fall like a Gaussian in u of width SR / sqrt(2 kappa) (~0.3 >> hh) and
# XR is reached after w ~ sqrt(log(XR / SR) / kappa) instead of log(XR / SR).  softplus is
# analytic for |Im| < pi, beyond the strip |Im u| < pi SR / 2 in which x' has no zeros; on a
# line Im w = t the modulus of e^{-v} grows by at most e^{kappa t^2} (bounded), and the phase
# of SR e^{v} turns by about t (1 + 2 kappa (w - w0)), which cannot bring x near the
# integrand's singularities (within ~1 of the scores, all <= 0) while |SR e^{v}| >= X1 is far
# beyond the row's spread.  The certificate is unchanged (even/odd agreement, end terms
# below END): measured on 1150 rows (n = 3..255, s N(0, 1) for s = 0.01..100, clusters
# and ties, spreads 1e3 and 1e8), kappa = 0.2, X1 = 1e3 declines no row the plain map
# certifies (kappa 0.4 or X1 = 100 do, at spreads ~40), log p within 7e-16 max(1, |log p|)
# of the plain map's.  Reach: v(w) >= w0 + z + kappa z^2 at w = w0 + z (softplus(z) >= z),
# set to log(XR spread^XRP / SR) plus log(1 + 2 sqrt(kappa L)) (x' / x is larger by v' there,
# and so is the last node's term).
def _upper_reach(logsf, q):
    """Smallest ``x`` (within 1%, in [1, 1e300]) with ``P[eps > x] <= q`` (bisection in
    ``log x`` on the family's ``logsf``)."""
    lo, hi, lq = 1.0, 1e300, math.log(q)
    while hi > 1.01 * lo:
        mid = math.sqrt(lo) * math.sqrt(hi)      # (lo * hi overflows)
        if float(logsf(np.array([mid]))[0]) > lq:
            lo = mid
        else:
            hi = mid
    return hi


def _solve_tail(q):
    """``v`` with ``v + e^v = q`` (Newton from the right: the function is convex, increasing)."""
    v = math.log(q) if q > 1.0 else q
    for _ in range(60):
        ev = math.exp(v)
        step = (v + ev - q) / (1.0 + ev)
        v -= step
        if abs(step) <= 1e-15 * (1.0 + abs(v)):
            break
    return v


# a-priori core step (core key RATIO).  Write w = u + i b for the map's variable; the
# integrand of entry i is f(w) = g_i(x(w)) x'(w), g_i = h(x - y_i) prod_j Phi(x - y_j).
# Trefethen & Weideman (SIAM Rev. 56 (2014), Thm 5.1): if f is analytic in |Im w| < b
# and decays at both ends there, the trapezoid sum at step hh (any offset) is within
#     2 M / (e^{2 pi b / hh} - 1),   M = sup_{|b'| < b} int |f(u + i b')| du,
# of the integral.  Bound on M: with c = min(cos(b/SL), cos(b/SR)) > 0 (b < pi/2 min S)
# the real part X(u) = Re x(u + i b) = u - SL cos(b/SL) e^{(a-u)/SL} + SR cos(b/SR)
# e^{(u-b0)/SR} (b0: the core's right end) is increasing onto the real line, with
# X' = 1 + cos(b/SL) e^{(a-u)/SL} + cos(b/SR) e^{(u-b0)/SR} >= c |x'(u + i b)|, so
#     int |f| du <= (1/c) sup_u R(u) int g_i(X(u)) X'(u) du = (1/c) sup_u R(u) T_i,
# where R(u) bounds |g_i(x(w))| / g_i(Re x(w)), a product of n + 1 factor ratios
# (h = phi / Phi is such a factor for logistic: h(d) = Phi(-d)), each at most
# RATIO(p, q) at |Re(x - y_j)| = p, Im x = q; the VJP's integrands h_k h_j F have n + 2.
# So the relative error of every T_i (and of every K_kj = int h_k h_j F) is at most
#     2 (1/c) rho(b)^(n + 2) / (e^{2 pi b / hh} - 1) <= _C_DISC,
# rho(b) = sup_u of the worst RATIO over the scores' possible places.  Scores lie in
# [a + CL, b0 - CR] (the ladder only moves a further left); Im x(u + i b) = b + SL sin(b/SL)
# e^{(a-u)/SL} + SR sin(b/SR) e^{(u-b0)/SR} at a given distance from either core end is
# largest on the shortest core (one score at 0, a = -CL, b0 = CR), and the distance
# from Re x to the scores is smallest there, so rho(b) is evaluated on that core (scores
# filling longer cores give no larger rho: tests/test_numeric_batch_apriori.py): on
# u in [a - 40, b0 + 40] (beyond, Re x is >= 40 from every score and RATIO <= 1 + 3e^-40)
# at spacing 1/64 (RATIO varies on the unit scale of x, and near its maximum, over the
# scores, Im x is nearly constant; the grid maximum is raised by 1%), the worst score
# place for each u being the nearest one to Re x (RATIO decreases with |p|).  A pole (Re x
# at a score with |Im x| at a pole of Phi) makes rho infinite: that b is not used.  b runs
# over a grid of 64 values in (0, pi/2 min(SL, SR)); the sup over |b'| <= b is bounded by
# the running maximum up to the next grid value.  The family's certificate step is kept
# where it is larger (long rows: the bound's rho^n grows, the even/odd test is n-blind).
_C_DISC = 2e-15
_RHO = {}
_RHO_AT = {}


def _core_rho(ratio, c, b):
    """``rho`` of the a-priori core step (see above) at the strip half-widths ``b`` (an
    array), on the shortest core."""
    SL, SR, CL, CR = c["SL"], c["SR"], c["CL"], c["CR"]
    a, b0 = -CL, CR
    u = np.arange(a - 40.0, b0 + 40.0, 1.0 / 64.0)
    b = b[:, None]
    eL = SL * np.exp((a - u) / SL)
    eR = SR * np.exp((u - b0) / SR)
    re = u - eL * np.cos(b / SL) + eR * np.cos(b / SR)
    im = b + eL * np.sin(b / SL) + eR * np.sin(b / SR)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = ratio(np.abs(re), im)           # the scores: the single point 0
    r[np.isnan(r)] = np.inf
    return 1.01 * r.max(axis=1)


def _core_apriori_step(c, n):
    """The largest step with the a-priori relative trapezoid error <= _C_DISC for every
    entry and VJP integrand of rows of length n (see above); 0 when no b qualifies."""
    ratio, SL, SR = c["RATIO"], c["SL"], c["SR"]
    # (rho depends on the map's constants as well as on RATIO: cached per RATIO with the
    # constants it was computed for, recomputed when a spec with other constants asks)
    consts = (SL, SR, c["CL"], c["CR"])
    rhos = _RHO.get(ratio)
    if rhos is None or _RHO_AT.get(ratio) != consts:
        bs = (np.arange(1, 65) - 0.5) * (0.5 * math.pi * min(SL, SR) / 64)
        rho = np.maximum.accumulate(_core_rho(ratio, c, bs))
        rhos = _RHO[ratio] = (bs[:-1].tolist(), rho[1:].tolist())     # b with rho up to the next b
        _RHO_AT[ratio] = consts
    best = 0.0
    for b, rho in zip(*rhos):
        cb = min(math.cos(b / SL), math.cos(b / SR))
        if math.isfinite(rho) and cb > 0.0:
            # 2 M / (e^{2 pi b / hh} - 1) <= disc  <=>  2 pi b / hh >= log(1 + 2 M / disc)
            logm = math.log(2.0 / cb) + (n + 2) * math.log(rho) - math.log(_C_DISC)
            best = max(best, 2.0 * math.pi * b / (logm + math.log1p(math.exp(-logm))))
    return best


class _Core:
    """Core-map tables of one family and n: ``layout(ymin)`` -> ``(a, G)`` per row and
    ``nodes(a, G)`` -> ``(x, wlin, logw)`` of shape (rows, G) (see "core maps").
    ``agree``: the even/odd tolerance of the certificate, ``inf`` with the a-priori
    step, whose relative bound is then ``disc`` (None otherwise)."""

    __slots__ = ("hh", "SL", "SR", "b", "lo", "uR", "baseL", "jacL", "XLMAX", "CL", "c0",
                 "spec", "grow", "agree", "disc", "de", "logXR", "w0", "RT", "JR")

    def __init__(self, sm, n):
        c = sm.core_spec()
        self.spec = sm.grid
        # (HH: the step at n <= 10, or a function of n giving the step itself)
        self.hh = c["HH"](n) if callable(c["HH"]) else c["HH"] * (10.0 / max(n, 10)) ** c.get("HX", 0.27)
        self.agree, self.disc = AGREE, None
        if "RATIO" in c:
            h = _core_apriori_step(c, n)
            if h >= self.hh:
                self.hh, self.agree, self.disc = h, math.inf, _C_DISC
        self.SL, self.SR, self.CL, self.XLMAX = c["SL"], c["SR"], c["CL"], c["XLMAX"]
        self.b = c["CR"] if c["CR"] is not None else 0.0
        # algebraic right tails: an entry far below the top has T ~ 1/spread, so the
        # right reach grows like the spread (XR spread^XRP: u by SR XRP log spread)
        self.grow = self.SR * c.get("XRP", 0.0) if self.SR else 0.0
        # left: x(a + xiL) = a + CL - PL, i.e. xiL - SL e^{-xiL/SL} = CL - PL
        q = c["PL"](n) - c["CL"]
        xiL = -self.SL * _solve_tail(q / self.SL) if self.SL else -q
        # right: x(uR) = XR, i.e. w + e^w = (XR - b) / SR with uR = b + SR w (with the
        # double-exponential right tail, DE, per row in :meth:`layout`)
        self.de = c.get("DE") if self.SR else None
        self.logXR = math.log(c["XR"] / self.SR) if self.de else None
        self.w0 = math.log(c.get("DE0", 1.0) / self.SR) if self.de else None
        self.uR = (self.b + self.SR * _solve_tail((c["XR"] - self.b) / self.SR) if self.SR
                   else c["XR"])
        xi = xiL + self.hh * np.arange(MAX_NODES + 1)
        self.baseL = xi.copy()
        self.jacL = np.ones_like(xi)
        if self.SL:
            with np.errstate(over="ignore"):
                e = np.exp(-xi / self.SL)
            self.baseL -= self.SL * e
            self.jacL += e
        self.lo = xiL
        self.c0 = sm.log_c0
        # the right term and its derivative on the lattice u = b + xiL + j hh (|j| <= MAX_NODES),
        # where :meth:`layout` places every row's nodes: rows read them instead of evaluating
        # the map (a row's j runs from -m, its core end a = b - m hh, to its reach)
        self.RT = self.JR = None
        if self.SR:
            w = (xiL + self.hh * np.arange(-MAX_NODES, MAX_NODES + 1)) / self.SR
            # (entries beyond every row's reach overflow to inf or NaN: never read)
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                k = 1.0
                if self.de:
                    # v = w + kappa softplus(z)^2, v' = 1 + 2 kappa softplus(z) expit(z), z = w - w0
                    E = np.exp(w - self.w0)
                    sp = np.log1p(E)
                    k = 1.0 + 2.0 * self.de * sp * (E / (E + 1.0))
                    w = w + self.de * sp * sp
                e = np.exp(w)
                self.RT, self.JR = self.SR * e, e * k
            self.RT.flags.writeable = self.JR.flags.writeable = False

    def layout(self, ymin):
        """``(a, G)``: core left ends and node counts of rows with lowest scores ``ymin``
        (``G > MAX_NODES``: beyond the budget, declined)."""
        a = np.maximum(ymin, -self.XLMAX) - self.CL
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if self.SR:
                # on the lattice b - m hh (m an integer; at most hh further left)
                m = np.ceil((self.b - a) / self.hh)
                a = self.b - m * self.hh
            if self.de:
                # w0 + z with z + kappa z^2 = L (see "double-exponential right tail")
                L = self.logXR + (self.grow / self.SR) * np.log(np.maximum(1.0, -ymin)) - self.w0
                L += np.log1p(2.0 * np.sqrt(self.de * L))
                uR = self.b + self.SR * (self.w0 + (np.sqrt(1.0 + 4.0 * self.de * L) - 1.0) / (2.0 * self.de))
            else:
                uR = self.uR + self.grow * np.log(np.maximum(1.0, -ymin))
            G = np.ceil((uR - a - self.lo) / self.hh) + 1.0
        G = np.where(G <= MAX_NODES, G, MAX_NODES + 1.0).astype(np.int64)   # NaN, huge
        # ladder: 8 steps per octave (<= 12.5% extra nodes, few groups per batch); the
        # extra nodes extend the linear core to the left (the tails keep their reach)
        q = np.maximum(4, 1 << np.maximum(0, np.floor(np.log2(np.maximum(G, 1))).astype(np.int64) - 3))
        Gq = -(-G // q) * q
        with np.errstate(invalid="ignore", over="ignore"):
            a = self.b - (m + (Gq - G)) * self.hh if self.SR else a - (Gq - G) * self.hh
        return a, np.minimum(Gq, MAX_NODES + 1)

    def nodes(self, a, G, log=True):
        """Nodes ``x`` (rows, G), linear weights ``hh x' e^-log_c0`` (the parts' constant
        removed) and log weights ``log(hh x')`` (None unless ``log``) for rows with core
        left ends ``a`` (from :meth:`layout`)."""
        x = a[:, None] + self.baseL[None, :G]
        jac = self.jacL[:G]
        if not self.SR:
            jac = np.broadcast_to(jac, x.shape)
        else:
            # the right term from the lattice tables: node k of a row with a = b - m hh is
            # lattice point j = k - m, table entry MAX_NODES + j
            j0 = MAX_NODES - np.rint((self.b - a) / self.hh).astype(np.intp)
            if a.size == 1:
                at = (None, slice(int(j0[0]), int(j0[0]) + G))
            else:
                at = j0[:, None] + np.arange(G)
            x += self.RT[at]
            jac = jac + self.JR[at]
        wlin = jac * (self.hh * math.exp(-self.c0))
        return x, wlin, (np.log(jac) + math.log(self.hh) if log else None)


_CORES = {}


def _core(sm, n):
    key = (sm, n)
    c = _CORES.get(key)
    if c is None:
        c = _CORES[key] = _Core(sm, n)
    return c


# ---------------------------------------------------------------------------
# normal: a-priori step, row reach, tail certificate
# ---------------------------------------------------------------------------
#
# Step.  g_i(x) = phi(x - y_i) prod_{j != i} Phi(x - y_j) is entire, and on the line
# x = u + i a:  |phi(u + i a)| = e^{a^2/2} phi(u)  and  |Phi(u + i a)| <= e^{a^2/2} Phi(u)
# (integrate phi along the horizontal line from -inf), so
#     int |g_i(u + i a)| du <= e^{n a^2/2} T_i          (T_i = int g_i).
# The trapezoid theorem for the real line (Trefethen & Weideman, SIAM Rev. 56 (2014),
# Thm 5.1: |T_h - I| <= 2 M / (e^{2 pi a/h} - 1)) with a = 2 pi / (n h) gives the
# relative error bound  1 / sinh(Q),  Q = 2 pi^2 / (n h^2), for every entry of every row
# of length n, whatever its scores, at any node offset: the step h(n) below makes it
# _N_DISC.  (Tight: an entry far below n - 1 tied scores has a Gaussian integrand of
# variance ~1/n.  The even/odd comparison this replaces certified T_2h, so it needed
# nodes twice as dense as T_h does.)
#
# Tails.  Each g_i is log-concave (phi and Phi are), so beyond an end node with term
# e and inner neighbour f > e the dropped terms are at most e r / (1 - r), r = e / f
# (end terms below _TAIL_FREE T need no neighbour, see there).  Budget per entry:
# _N_DISC + 2 _N_TAIL = 3e-15 relative, plus rounding.
_N_DISC = 2e-15          # a-priori relative discretisation error
_N_TAIL = 5e-16          # dropped tail per side, relative
_N_Q = math.asinh(1.0 / _N_DISC)
# Row reach (left end): in the Gaussian model -log g_i ~ q_i(x) = (x - y_i)^2/2 +
# sum_{j != i} max(0, y_j - x)^2/2 (entry i's factor, the others' left tails), the
# lowest entry has the largest min q (q_low >= q_i pointwise, so log T_i >~ -min q_low),
# and left of every score all q_i equal Q(x) = sum_j max(0, y_j - x)^2/2.  Left end:
# Q(x_L) = min q_low + _N_REACH, but never left of -(s/2 + _N_PAD) (s = spread): every
# integrand peaks right of -s/2 (the top score's factor Phi(x) pushes it there) and
# falls at least like exp(-t^2) left of its peak (two Gaussian factors).  The tail
# certificate checks the result.  Measured on 8000 random, tied and clumped rows
# (n = 2..200, spreads 0.01..80): first refusals at _N_REACH = 25 and _N_PAD = 5.5, none
# at 30 and 6.3; 40 leaves ~10 units of log margin.
_N_REACH = 40.0
_N_PAD = 6.3
_N_QLIN = 600.0          # min q_low above this: the smallest entry is likely < TINY
# spreads above this are declined outright (log p < -2e11 there; keeps s^2 sums finite)
_N_SMAX = 1e6


def _normal_step(n):
    """Largest step with a-priori relative trapezoid error <= _N_DISC for rows of length n."""
    return math.pi * math.sqrt(2.0 / (n * _N_Q))


def _normal_right_reach(n, h):
    """Right end: the top entry (T >= 1/n, terms <= h phi(x)) drops < _N_TAIL / (2 n)."""
    x = 4.0
    while True:
        r = math.exp(-x * h + 0.5 * h * h)
        if h * math.exp(-0.5 * x * x - _LOG_SQRT_2PI) * r / (1.0 - r) <= 0.5 * _N_TAIL / n:
            return x
        x += 0.01


def _normal_rows(y, g):
    """``(kL, lin)`` for normal rows ``y`` (m, n), maximum 0: left node counts (see above)
    and whether the linear mode is expected to certify the row.

    Scores sorted descending ``z_0 = 0 >= .. >= z_{n-1} = -s``; ``S1_k, S2_k``: sums of
    the first k of them and of their squares (left to right: cumsum, so that
    :func:`_normal_row` reproduces every bit in scalar arithmetic).  On
    ``[z_k, z_{k-1}]`` (k scores above x) ``Q(x) = (k x^2 - 2 S1_k x + S2_k)/2`` and
    ``q_low(x) = Q(x) + (x + s)^2/2``; both are convex, and "first k" selections
    below match the scalar scan."""
    m, n = y.shape
    big = y.min(axis=1) < -_N_SMAX
    if big.any():                     # declined below; zeros keep the arithmetic finite
        y = np.where(big[:, None], 0.0, y)
    z = np.sort(y, axis=1)[:, ::-1]
    s = -z[:, -1]
    S1 = np.cumsum(z, axis=1)
    S2 = np.cumsum(z * z, axis=1)
    k = np.arange(1, n, dtype=np.float64)
    zk = z[:, 1:]
    # minimiser of q_low: first segment k whose lower end has slope <= 0
    D = (k + 1.0) * zk - (S1[:, :-1] - s[:, None])
    ks = np.argmax(D <= 0.0, axis=1) + 1
    ks[~(D <= 0.0).any(axis=1)] = n - 1
    r = np.arange(m)
    a1 = S1[r, ks - 1]
    xs = (a1 - s) / (ks + 1.0)
    xs = np.minimum(np.maximum(xs, z[r, ks]), z[r, ks - 1])
    xps = xs + s
    qmin = 0.5 * (xps * xps + (ks * xs - 2.0 * a1) * xs + S2[r, ks - 1])
    target = qmin + _N_REACH
    # left end: first segment whose lower end has Q >= target (else below all scores)
    Qb = 0.5 * ((k * zk - 2.0 * S1[:, :-1]) * zk + S2[:, :-1])
    hit = Qb >= target[:, None]
    kk = np.argmax(hit, axis=1) + 1
    kk[~hit.any(axis=1)] = n
    b = S1[r, kk - 1]
    disc = np.maximum(b * b - kk * (S2[r, kk - 1] - 2.0 * target), 0.0)
    xL = np.maximum((b - np.sqrt(disc)) / kk, -(0.5 * s + _N_PAD))
    kL = g.kL_at(xL)
    kL[big] = g.kmax + g.kq
    return kL, (qmin <= _N_QLIN) & (kL <= g.klin)


def _normal_row(ylist, g):
    """:func:`_normal_rows` for one row given as a list: the same operations in the same
    order on Python floats (IEEE double), hence the same ``(kL, lin)``."""
    n = len(ylist)
    z = sorted(ylist, reverse=True)
    s = -z[-1]
    if s > _N_SMAX:
        return g.kmax + g.kq, False
    # minimiser of q_low
    S1 = S2 = 0.0
    ks = n - 1
    c1 = [0.0] * n
    c2 = [0.0] * n
    for j in range(n):
        S1 += z[j]
        S2 += z[j] * z[j]
        c1[j] = S1
        c2[j] = S2
    for kk in range(1, n):
        if (kk + 1.0) * z[kk] - (c1[kk - 1] - s) <= 0.0:
            ks = kk
            break
    a1 = c1[ks - 1]
    xs = (a1 - s) / (ks + 1.0)
    xs = min(max(xs, z[ks]), z[ks - 1])
    xps = xs + s
    qmin = 0.5 * (xps * xps + (ks * xs - 2.0 * a1) * xs + c2[ks - 1])
    target = qmin + _N_REACH
    kk = n
    for k in range(1, n):
        zk = z[k]
        if 0.5 * ((k * zk - 2.0 * c1[k - 1]) * zk + c2[k - 1]) >= target:
            kk = k
            break
    b = c1[kk - 1]
    disc = max(b * b - kk * (c2[kk - 1] - 2.0 * target), 0.0)
    xL = max((b - math.sqrt(disc)) / kk, -(0.5 * s + _N_PAD))
    k = g.kmax - (bisect.bisect_right(g.xlist, xL) - 1)
    kL = min(-(-k // g.kq) * g.kq, g.kmax + g.kq)
    return kL, qmin <= _N_QLIN and kL <= g.klin


# Tail test without the neighbour: if e <= 1e-19 T, log-concavity through the largest
# term (>= T / nodes) bounds the ratio of the dropped terms by (1e-19 nodes)^(1/nodes)
# <= e^-0.0086 (nodes <= 4096), so they sum to < 1.2e-17 T.  This also covers end terms
# in the underflow range (T >= TINY in the linear mode, T >= 1 in the scaled log mode).
_TAIL_FREE = 1e-19


def _certify_tails(I):
    """``(T, certified)`` of node terms ``I`` (nodes last): the a-priori step (see above)
    and both dropped tails within _N_TAIL (:func:`_tails_ok`)."""
    T = np.add.reduce(I, axis=-1)
    return T, _tails_ok(I, T)


def _tails_ok(I, T):
    """``e (e/T) <= _N_TAIL (f - e)`` at both ends (end terms ``e``, inner neighbours
    ``f``: the dropped tail ``e r/(1-r)``, ``r = e/f``), or ``e <= _TAIL_FREE T``."""
    G = I.shape[-1]
    # both end terms, then their neighbours (G >= 5)
    return _tails_ok_ends(I[..., ::G - 1], I[..., 1::G - 3], T)


def _tails_ok_ends(e, f, T):
    """:func:`_tails_ok` given the end terms ``e`` (..., 2) and their neighbours ``f``."""
    u = e / T[..., None]
    f = np.subtract(f, e)
    f *= _N_TAIL
    ok = u <= _TAIL_FREE
    u *= e
    ok |= u <= f
    return np.logical_and.reduce(ok, axis=-1)


# ---------------------------------------------------------------------------
# pass 1
# ---------------------------------------------------------------------------

def _lin_terms(x, y, fam, w, x0):
    """Weighted linear-space node terms ``I = w h(d_i) F`` at ``d = x - y`` (nodes ``x``,
    scores ``y`` with a trailing unit axis: :func:`_parts_at`, ``x0`` the lowest node).

    ``d`` (..., n, G) node-minus-score differences (nodes last), ``w`` weights
    broadcasting against it.  ``F = prod_j Phi(d_j)`` runs over the entry axis (an
    outer axis: a sequential, vectorised product, the same bits for one row or many)."""
    P, I = _parts_at(x, y, fam.small, x0)
    F = np.multiply.reduce(P, axis=-2, keepdims=True)
    F *= w
    I *= F
    return I


# Scaled linear mode: rows with entries below TINY (where F and the linear node terms
# underflow) without the log mode's transcendentals.  Each factor is split exactly as
# Phi(d) = m 2^e (frexp: m in [1/2, 1), e an integer), so F = (prod m) 2^(sum e) with the
# exponent sum exact and the mantissa product >= 2^-n (no underflow for n <= SC_N <= 512);
# each entry's terms J_ik = w_k h_ik F_k are then written as mJ 2^(eJ + E_k) and rescaled
# by the entry's largest power of two, 2^-e_i (ldexp: exact).  Every operation is the
# linear mode's or an exact power-of-two scaling, so each node term carries the linear
# mode's relative rounding ((n + 4) eps) whatever its magnitude, and the certificates
# (relative to each entry's own sum) carry over unchanged; log T_i = log(sum) + e_i log 2.
# The factors must not be clipped on the left (a clipped Phi is not the true one at the
# scale of a tiny entry): rows whose lowest node is below LO are declined (log mode).
# Underflow of h = phi / Phi (F is scaled, h is not): the families served are those
# where the integrands are provably negligible wherever h is flushed to 0 (h < e^-700,
# see _exp0): logistic (h ~ e^-d is below e^-700 only for d > 700, i.e. x > 50 on rows
# of spread <= 650 (LO), where every integrand has decayed like e^-x below e^-50 of its
# peak near the top score); gumbel_min (h ~ t e^-t, t = e^d, is flushed for t > 700,
# d > 6.55; from d = 5 on h falls by e^{-(e^d - e^5)} while F grows at most like
# e^{n (x2 - x1)} (Phi(d + t) <= e^t Phi(d)), so past d = 6.55 each integrand is below
# e^{(n + 1) 1.56 - 551} <= e^-53 of its value at d = 5 for n <= SC_N = 320, and falls
# double-exponentially beyond); cauchy (h ~ 1/d^2, never flushed at the reach).  Normal
# rows are not served (h is flushed for d > 37.4, where a tiny entry's integrand can
# still peak: the log mode takes them).  The mantissa product needs n <= 512.
def _scaled_terms(x, y, fam, w, with_h=False):
    """``(I, e)``: node terms ``I_ik = w phi(d_i) F / Phi(d_i) 2^-e_i`` (largest term of
    each entry in [1/2, 1)) and the integer exponents ``e`` (..., n); ``x``, ``y`` as in
    :func:`_lin_terms` (d clipped at LO and HI; the caller declines rows clipped at LO).
    ``with_h``: also ``h / c0`` at the nodes (a third array)."""
    P, I = _parts_at(x, y, fam.small)
    m, e = np.frexp(P)
    F = np.multiply.reduce(m, axis=-2, keepdims=True)
    E = np.add.reduce(e, axis=-2, keepdims=True, dtype=e.dtype)    # |E| <= 1075 n: exact
    H = I.copy() if with_h else None
    F *= w
    I *= F
    mI, eI = np.frexp(I, out=(I, e))
    eI += E
    # (zero terms have exponent 0 from frexp: left out of each entry's largest exponent)
    top = np.max(eI, axis=-1, where=mI > 0.0, initial=np.iinfo(eI.dtype).min)
    eI -= top[..., None]
    np.ldexp(mI, eI, out=mI)
    return (mI, top, H) if with_h else (mI, top)


def _certify(I, agree=AGREE):
    """Per entry: ``(T, even-node sum, odd-node sum, certified)`` of node terms ``I`` (nodes
    last; node 0 has an even absolute index).  ``T_h = Se + So``, ``T_2h = 2 Se``: their
    disagreement bounds the error of ``T_h``; the end terms must be below ``END T``.
    ``agree``: the core's tolerance (``inf`` on a core with the a-priori step: the end
    terms alone are tested)."""
    Se = np.add.reduce(I[..., 0::2], axis=-1)
    So = np.add.reduce(I[..., 1::2], axis=-1)
    T = Se + So
    good = (np.abs(Se - So) <= agree * T) & (np.maximum(I[..., 0], I[..., -1]) <= END * T)
    return T, Se, So, good


# Linear mode only where every entry is predicted above TINY: log p_min of the lowest
# score is about -sum_j (y_j - ymin) for exponential left tails (F ~ prod_j e^{x - y_j}
# below the scores) and -sum_j log(1 + pi (y_j - ymin)) for cauchy's algebraic ones; a
# row the prediction misses is recomputed in the log mode (the linear mode refuses it).
# Where the spec has PMIN(spread, n), a proven bound -log p_min <= PMIN also admits the
# row: on x in [0, 1] (the top score is 0) every factor Phi(x - y_j) >= Phi(0) = 1/2, so
# p_min >= 2^-n min_{[0, 1]} h(x - ymin); logistic h(d) = 1 / (1 + e^d) >= e^-d / 2,
# cauchy h(d) >= phi(d) = 1 / (pi (1 + d^2)), with d <= spread + 1.
_LIN_LOGP = 620.0


def pmin_exponential(y, ymin):
    """Predicted ``-log p_min`` of rows with exponential left tails: ``sum_j (y_j - ymin)``."""
    return np.add.reduce(y, axis=1) - y.shape[1] * ymin


def pmin_algebraic(y, ymin):
    """Predicted ``-log p_min`` of rows with cauchy-like algebraic left tails:
    ``sum_j log(1 + pi (y_j - ymin))``."""
    return np.add.reduce(np.log1p(math.pi * (y - ymin[:, None])), axis=1)


def _lin_rows(y, ymin, fam, spec):
    """Rows tried in the linear mode (the others go straight to the log mode)."""
    lin = -ymin <= spec["LIN_MAX"]
    pred = fam.small.lin_pred
    if pred is not None:
        pred = pred(y, ymin)
        if "PMIN" in spec:
            pred = np.minimum(pred, spec["PMIN"](-ymin, y.shape[1]))
        lin &= pred <= _LIN_LOGP
    return lin


class _Plan:
    """Node sets of standardized rows ``y`` (maximum 0): normal rows on the shared grid
    (grouped by left node count), the others on their core maps (grouped by node count).
    ``lin``: rows for the linear mode; ``reach``: rows the node budget serves."""

    def __init__(self, y, fam):
        self.fam, self.n = fam, y.shape[1]
        sm = fam.small
        self.spec = sm.grid
        self.apriori = sm.apriori
        # the core's certificate (see _Core; the normal grid has its own, plan.apriori)
        self.agree, self.disc = AGREE, None
        if self.apriori:
            self.g = _grid(sm, self.n)
            if y.shape[0] == 1:
                # one row: the scalar reach (the same bits, a fraction of the numpy calls)
                kL, lin1 = _normal_row(y[0].tolist(), self.g)
                self.key, lin = np.array([kL]), np.array([lin1])
            else:
                self.key, lin = _normal_rows(y, self.g)
            self.reach = self.key <= self.g.kmax
        else:
            self.g = _core(sm, self.n)
            self.agree, self.disc = self.g.agree, self.g.disc
            ymin = y.min(axis=1)
            self.a, self.key = self.g.layout(ymin)
            self.reach = self.key <= MAX_NODES
            lin = _lin_rows(y, ymin, fam, self.spec) if sm.linear else False
        self.lin = lin & self.reach

    def size(self, k):
        return k + self.g.kR + 1 if self.apriori else k

    def chunks(self, rows, elems=_CHUNK_ELEMS):
        """``(rows, x, wlin, logw)``: groups of ``rows`` sharing a node count, ~``elems``
        (rows x n x nodes) elements each; ``x`` (G,) shared or (rows, 1, G) per row."""
        if rows.size == 0:
            return
        key = self.key[rows]
        if rows.size == 1 or key.min() == key.max():
            groups = ((int(key[0]), rows),)
        else:
            groups = ((k, rows[key == k]) for k in np.unique(key))
        for k, r in groups:
            step = max(1, elems // (self.n * self.size(int(k))))
            for a0 in range(0, r.size, step):
                sel = r[a0:a0 + step]
                yield (sel,) + self.nodes(sel, int(k))

    def nodes(self, sel, k):
        g = self.g
        if self.apriori:
            j0 = g.kmax - k
            return g.x[j0:], g.wlin[j0:], g.logw[j0:]
        x, wl, lw = g.nodes(self.a[sel], k)
        return x[:, None, :], wl[:, None, :], lw[:, None, :]


def _sum_entries(C):
    """``sum_j C[:, j, :]`` (keepdims) with compensated (Kahan) summation over the entry
    axis.  In the log mode ``log F = sum_j log Phi(x - y_j)`` adds n terms of up to
    hundreds each: plain summation leaves an error of eps |partial sums| per step, a
    relative noise in the node terms e^L of ~sqrt(n) 1e-13 at |log F| ~ 1000 that the
    even/odd test (3e-14) would refuse; compensated, the error is ~eps |log F|."""
    s = C[:, 0].copy()
    comp = np.zeros_like(s)
    for j in range(1, C.shape[1]):
        t = C[:, j] - comp
        u = s + t
        comp = (u - s) - t
        s = u
    return s[:, None]


def _pass1(y, x, wlin, logw, plan, mode, entries=False):
    """``(log p (m, n), ok (m,))`` for rows ``y`` (max 0) on the nodes ``x`` (see
    :meth:`_Plan.chunks`); arrays are (rows, n, nodes).
    ``entries=True``: the unnormalised ``(log T, certified)`` per entry instead."""
    fam = plan.fam
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        yv = y[:, :, None]
        if mode == "lin":
            I = _lin_terms(x, yv, fam, wlin, x[..., 0].min())
            T, good = _certify_tails(I) if plan.apriori else _certify(I, plan.agree)[::3]
            good &= T >= TINY
            if entries:
                return np.log(T), good
            return _normalise_lin(T, good)
        if mode == "scaled":
            lo = plan.spec.get("LO", -math.inf)
            unclipped = x[..., 0].reshape(-1) >= lo             # lowest node of each row
            I, e = _scaled_terms(x, yv, fam, wlin)
            T, good = _certify_tails(I) if plan.apriori else _certify(I, plan.agree)[::3]
            logT = np.log(T) + e * _LN2
            good &= np.isfinite(logT) & (logT > -LOG_MIN) & unclipped[:, None]
            return (logT, good) if entries else _normalise(logT, good)
        d = x - yv                                                     # (m, n, G)
        C = fam.logcdf(d)
        L = fam.logpdf(d)
        L -= C
        L += _sum_entries(C)
        L += logw
        L[np.isnan(L)] = -np.inf
        mx = L.max(axis=-1)
        mx[~np.isfinite(mx)] = 0.0
        L -= mx[..., None]
        I = np.exp(L, out=L)
        if plan.apriori:
            T, good = _certify_tails(I)
            logT = np.log(T) + mx
            good &= np.isfinite(logT) & (logT > -LOG_MIN)
            return (logT, good) if entries else _normalise(logT, good)
        T, Se, So, good = _certify(I, plan.agree)
        logT = np.log(T) + mx
        # node values carry rounding noise ~ eps |L|, which the even/odd disagreement of
        # entries with |log p| > 460 shows: there the targets are p to 2e-13 (p >= 1e-300,
        # half of it here) and below p = 1e-300 log p to 1e-12 |log p| (a tenth of it)
        tol = np.where(logT < -690.0, 1e-13 * np.abs(logT), 1e-13)
        deep = (~good & (logT < -460.0) & (np.abs(Se - So) <= tol * T)
                & (np.maximum(I[..., 0], I[..., -1]) <= END * T))
        good |= deep
        good &= np.isfinite(logT) & (logT > -LOG_MIN)
    return (logT, good) if entries else _normalise(logT, good)


def _lin_normal(y, plan, rows):
    """Linear mode of the normal rows ``y[rows]``: :func:`_pass1` with the row-wise steps
    (sums, tail test, normalisation) done once for all rows instead of per chunk
    (elementwise: the same bits)."""
    m, n = y.shape
    T = np.ones((m, n))
    ends = np.zeros((m, n, 2))
    inner = np.ones((m, n, 2))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for sel, x, wlin, _ in plan.chunks(rows, _CHUNK_NORMAL):
            I = _lin_terms(x, y[sel][:, :, None], plan.fam, wlin, x[0])
            G = I.shape[-1]
            T[sel] = np.add.reduce(I, axis=-1)
            ends[sel] = I[..., ::G - 1]
            inner[sel] = I[..., 1::G - 3]
        T, ends, inner = T[rows], ends[rows], inner[rows]
        good = _tails_ok_ends(ends, inner, T)
        good &= T >= TINY
        return _normalise_lin(T, good)


def _normalise(logT, good):
    """Rows: ``(log p, ok)`` with ``ok`` = all entries certified and ``|sum p - 1| <= SUM_TOL``
    (an independent check of the whole row)."""
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        top = logT.max(axis=1, keepdims=True)
        s = np.add.reduce(np.exp(logT - top), axis=1)
        lse = np.log(s) + top[:, 0]
        ok = good.all(axis=1) & (np.abs(np.expm1(lse)) <= SUM_TOL)
        lp = logT - lse[:, None]
    lp[~ok] = np.nan
    return lp, ok


def _normalise_lin(T, good):
    """:func:`_normalise` for linear-mode rows (every ``T >= TINY``): ``p = T / sum T``."""
    S = np.add.reduce(T, axis=-1)
    ok = good.all(axis=-1) & (np.abs(S - 1.0) <= SUM_TOL)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = np.log(T / S[..., None])
    lp[~ok] = np.nan
    return lp, ok


def _check(y, fam):
    if not hasattr(fam, "logcdf") or not hasattr(fam, "logpdf"):
        raise TypeError("fam must be a NumericFamily (numeric.families.get_family)")
    if _small(fam) is None or fam.custom or not fam.is_analytic:
        raise NotImplementedError(f"batch kernel: family {fam.name!r} not supported (no small-n "
                                  "kernel spec, NumericFamily.small)")
    if not isinstance(y, np.ndarray) or y.dtype != np.float64 or y.ndim != 2:
        raise TypeError("y must be a 2-d float64 ndarray of shape (m, n)")
    if y.shape[1] < 2:
        raise ValueError(f"y must have n >= 2 columns, got n = {y.shape[1]}")
    if y.shape[1] > N_MAX:
        raise ValueError(f"y must have n <= {N_MAX} columns, got n = {y.shape[1]}")
    if not np.isfinite(y).all():
        raise ValueError("y must be finite (handle -inf/+inf/nan rows before the batch kernel)")


def _setup(y, fam):
    """Validate standardized rows ``y`` (m, n); return them shifted to row maximum 0,
    their node plan (None when m = 0) and the NaN / False outputs ``(log p or v, ok)``."""
    _check(y, fam)
    m, n = y.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if m == 0:
        return y, None, out, ok
    y = y - y.max(axis=1, keepdims=True)
    return y, _Plan(y, fam), out, ok


def row_log_probs(y, fam, low=None):
    """One standardized finite row ``y`` (1-d, maximum exactly 0): ``(log p, ok)``.

    The lean path of ``numeric.probs`` for a single short vector: the linear mode
    on an (n, nodes) array, bit-identical to :func:`batch_log_probs` on that row
    (which it calls when the linear mode does not certify the row).  ``low``:
    ``y.min()`` when the caller knows it."""
    lp = _row_lean(y, fam, low)
    if lp is not None:
        return lp, True
    lp, ok = _batch_log_probs(y[None, :], fam)
    return lp[0], bool(ok[0])


def _row_lean(y, fam, low=None):
    """:func:`row_log_probs`' linear mode alone: ``log p``, or None when the row is not
    served or not certified there."""
    sm = _small(fam)
    nodes = None if sm is None else _row_nodes(y, fam, low)
    if nodes is None:
        return None
    x, wl = nodes
    if sm.apriori:
        # no floating-point warning is possible here (P > 0, exp underflow is
        # silent by default, log of T >= TINY): skip the errstate context
        return _row_lin(y, fam, x, wl, True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        return _row_lin(y, fam, x[0], wl[0], False, _core(sm, y.size).agree)


def _row_nodes(y, fam, low=None):
    """Linear-mode nodes of one standardized row ``y`` (1-d, maximum exactly 0) as
    :meth:`_Plan.chunks` gives them to that row: ``(x, wlin)``, (G,) slices of the
    normal family's shared grid or (1, G) core-map nodes; None when the linear mode
    does not take the row (the batch kernel then tries its other modes)."""
    n = y.size
    sm = fam.small
    if sm.apriori:
        g = _GRIDS.get((sm, n)) or _grid(sm, n)
        kL, lin = _normal_row(y.tolist(), g)
        if lin and kL <= g.kmax:
            j0 = g.kmax - kL
            return g.x[j0:], g.wlin[j0:]
    elif sm.linear:
        c = _CORES.get((sm, n)) or _core(sm, n)
        ymin = np.array([y.min() if low is None else low])
        a, G = c.layout(ymin)
        if G[0] <= MAX_NODES and _lin_rows(y[None, :], ymin, fam, c.spec)[0]:
            x, wl, _ = c.nodes(a, int(G[0]), log=False)
            return x, wl
    return None


def _row_lin(y, fam, x, wlin, apriori, agree=AGREE):
    """Linear mode on one row: :func:`_pass1` + :func:`_normalise_lin`; None if uncertified."""
    I = _lin_terms(x, y[:, None], fam, wlin, x[0])
    if apriori:
        # T >= TINY > 0 first: the tail test divides by T (no warnings possible)
        T = np.add.reduce(I, axis=-1)
        good = T.min() >= TINY and _tails_ok(I, T).all()
    else:
        T, _, _, good = _certify(I, agree)
        good = good.all() and T.min() >= TINY
    if good:
        S = np.add.reduce(T)
        if abs(S - 1.0) <= SUM_TOL:
            return np.log(T / S)
    return None


def batch_log_probs(y, fam, *, own_grids=False):
    """``(log p, ok)`` for every row of ``y`` (m, n) at once.

    ``log p[r, i] = log int h(x - y_ri) prod_j Phi(x - y_rj) dx`` (standard
    family, scores already divided by the scale), normalised so each row
    sums to 1.  ``ok[r]`` is True when row r is certified (relative error
    ~1e-15, log error <= 1e-13 |log p|); rows with ``ok`` False hold NaN and
    must be recomputed by the adaptive quadrature.  Without ``own_grids`` a
    row's result depends on that row only (bit for bit); ``own_grids=True``
    adds pass 2 (see module doc), which certifies more wide rows.

    >>> from numeric.families import get_family
    >>> lp, ok = batch_log_probs(np.array([[0.0, -60.0]]), get_family("normal"))
    >>> round(float(lp[0, 1]), 6)           # log Phi(-60 / sqrt 2)
    -904.667264
    """
    _check(y, fam)
    if y.shape[0] == 1 and not own_grids:
        # one row: the lean path (the same bits, without the batch bookkeeping)
        lp = _row_lean(y[0] - y[0].max(), fam)
        if lp is not None:
            return lp[None, :], np.ones(1, dtype=bool)
    return _batch_log_probs(y, fam, own_grids=own_grids)


def _batch_log_probs(y, fam, *, own_grids=False):
    """:func:`batch_log_probs` on the node plans of all rows."""
    y, plan, out, ok = _setup(y, fam)
    if plan is None:
        return out, ok
    m, n = y.shape
    lin, reach = plan.lin, plan.reach
    rows = np.flatnonzero(lin)
    if plan.apriori:
        out[rows], ok[rows] = _lin_normal(y, plan, rows)
    else:
        for sel, x, wl, lw in plan.chunks(rows):
            out[sel], ok[sel] = _pass1(y[sel], x, wl, lw, plan, "lin")
    # rows the linear mode cannot certify (an entry below TINY, ...) or was not tried on:
    # the scaled linear mode, then the log mode
    if n <= plan.spec.get("SC_N", 0):
        for sel, x, wl, lw in plan.chunks(np.flatnonzero(reach & ~ok)):
            out[sel], ok[sel] = _pass1(y[sel], x, wl, lw, plan, "scaled")
    for sel, x, wl, lw in plan.chunks(np.flatnonzero(reach & ~ok)):
        out[sel], ok[sel] = _pass1(y[sel], x, wl, lw, plan, "log")
    if own_grids:
        rows = np.flatnonzero(~ok)
        if rows.size:
            logT = np.full((rows.size, n), -np.inf)
            good = np.zeros((rows.size, n), dtype=bool)
            pos = np.full(m, -1)
            pos[rows] = np.arange(rows.size)
            for sel, x, wl, lw in plan.chunks(rows[reach[rows]]):
                logT[pos[sel]], good[pos[sel]] = _pass1(y[sel], x, wl, lw, plan, "log",
                                                        entries=True)
            rr, ii = np.nonzero(~good)
            if rr.size:
                lp2, g2 = _own_grids(y[rows[rr]], ii, fam, plan.spec)
                logT[rr, ii] = lp2
                good[rr, ii] = g2
            out[rows], ok[rows] = _normalise(logT, good)
    return out, ok


# ---------------------------------------------------------------------------
# pass 2 (method="batch"): own grid per uncertified entry
# ---------------------------------------------------------------------------

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


def _L_at(x, Y, ii, fam):
    """L_i(x) for entries (row Y[e], index ii[e]) at points x (E, P)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        d = x[:, :, None] - Y[:, None, :]                    # (E, P, n)
        C = fam.logcdf(d)
        di = np.take_along_axis(d, ii[:, None, None], axis=2)[:, :, 0]
        Ci = np.take_along_axis(C, ii[:, None, None], axis=2)[:, :, 0]
        return fam.logpdf(di) - Ci + C.sum(axis=2)


def _own_grids(Y, ii, fam, spec):
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
    kind = spec["MAP"]
    fwd, jacf = _MAPS[kind]
    hh = spec["HH2"]
    X = max(spec["XL"], spec.get("XR", 10.0))
    logp = np.full(E, -np.inf)
    good = np.zeros(E, dtype=bool)
    order = np.argsort(s)                    # similar widths share a chunk (similar node counts)
    a = 0
    while a < E:
        smin = s[order[a]]
        kL = int(math.ceil(-_inverse(kind, -X / smin) / hh))
        kR = int(math.ceil(_inverse(kind, X / smin) / hh))
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
        logp[sel] = lp
        good[sel] = (conv_ok & (ends - lp <= LOG_END) & np.isfinite(lp) & (lp > -LOG_MIN)
                     & conv[sel])
    return logp, good


# ---------------------------------------------------------------------------
# vector-Jacobian products (all rows at once, on the forward's nodes)
# ---------------------------------------------------------------------------
#
# Differentiating p_k = int h_k F dx (h_j = h(x - y_j), F = prod_j Phi(x - y_j)):
#     (J^T g)_k = int h_k F (g_k S - Gamma) dx,   S = sum_j h_j,  Gamma = sum_j g_j h_j,
# (the diagonal term -int h'_k F becomes int h_k F S by parts).  Since J^T 1 = 0, g is
# first centred, g' = g - sum_j p_j g_j, which removes its common part before it can
# cancel.  For log p the cotangent c becomes g = c / p (p >= TINY in the linear mode).
# The node terms I_k = w h_k F are the forward's, so the rule, its grid and its
# certificate carry over; per entry the error is bounded relative to the integral of
# |I_k (g'_k S - Gamma')| <= I_k (|g'_k| S + Gamma_abs) ("mass"): normal rows by the
# a-priori step bound (every h_k h_j F is entire with the growth bound of the module
# doc), other families by the even/odd-node disagreement of the signed sum (a core with
# the a-priori step: its bound, see "a-priori core step"); the end
# terms of the mass integrand must be below 1e-19 of its sum.  An entry whose bound
# exceeds VJP_RTOL of its value (beyond the floor 1e-200 of the row's mass, the
# README's) makes the row uncertified.  Rows the linear mode does not serve (an entry
# below TINY, c / p beyond _G_MAX) take the log-space form of :func:`_vjp_log_chunk`
# on the same nodes; rows neither certifies are left to the caller's quadrature.
VJP_RTOL = 1e-11
_VJP_FLOOR = 1e-200
_TERMS_DIRECT = 160     # longest rows whose sums of |terms| are formed as the double sum
_TERMS_SUBSET = 16      # (or when at most this many entries need them)
_G_MAX = 1e250          # larger cotangents (c / p): left to the caller


def batch_vjp(y, g, fam, *, log=False):
    """``(v, ok)``: ``v[r] = J^T g[r]`` of ``p`` (``log=True``: of ``log p``) for
    standardized finite rows ``y`` (m, n), with respect to ``y``; rows with ``ok``
    False hold NaN (the caller recomputes them).  A row's result depends on that
    row only.

    >>> from numeric.families import get_family
    >>> v, ok = batch_vjp(np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]),
    ...                   get_family("normal"))
    >>> bool(ok[0]), bool(abs(v[0].sum()) < 1e-15), bool(v[0, 0] > 0 > v[0, 1])
    (True, True, True)
    """
    y, plan, out, ok = _setup(y, fam)
    if plan is None:
        return out, ok
    n = y.shape[1]
    # (a family without linear parts has no linear-mode rows: the log-space form serves it)
    # the linear mode where the forward pass uses it (every entry above TINY); rows with
    # one nonzero cotangent (a loss on one entry) take the one-hot form
    lin = plan.lin & (np.abs(g).max(axis=1) <= _G_MAX)
    nnz = np.count_nonzero(g, axis=1)
    c0 = math.exp(-fam.small.log_c0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for sel, x, wlin, _ in plan.chunks(np.flatnonzero(lin & (nnz == 1)), _CHUNK_NORMAL):
            out[sel], ok[sel] = _onehot_chunk(y[sel], g[sel], x, wlin, plan, c0, log)
        for sel, x, wlin, _ in plan.chunks(np.flatnonzero(lin & (nnz != 1)), _CHUNK_NORMAL):
            out[sel], ok[sel] = _vjp_chunk(y[sel], g[sel], x, wlin, plan, c0, log)
        if n <= plan.spec.get("SC_N", 0):
            # one-hot rows with entries below TINY: the scaled linear mode
            for sel, x, wlin, _ in plan.chunks(np.flatnonzero(plan.reach & ~ok & (nnz == 1))):
                out[sel], ok[sel] = _onehot_chunk(y[sel], g[sel], x, wlin, plan, c0, log,
                                                  scaled=True)
            # the other rows with entries below TINY: the same ratio form as the log
            # space one below, on the scaled linear mode's node terms
            for sel, x, wlin, logw in plan.chunks(np.flatnonzero(plan.reach & ~ok), _CHUNK_ELEMS // 4):
                out[sel], ok[sel] = _vjp_log_chunk(y[sel], g[sel], x, logw, plan, log, wlin,
                                                   scaled=True)
        # the rest (entries below TINY, cotangents c / p beyond _G_MAX): log space
        for sel, x, _, logw in plan.chunks(np.flatnonzero(plan.reach & ~ok), _CHUNK_ELEMS // 4):
            out[sel], ok[sel] = _vjp_log_chunk(y[sel], g[sel], x, logw, plan, log)
    return out, ok


class _RowPlan:
    """What the VJP chunks read of a :class:`_Plan`, for :func:`row_vjp`'s one row."""

    __slots__ = ("fam", "spec", "apriori", "agree", "disc")

    def __init__(self, fam, n):
        self.fam, self.spec, self.apriori = fam, fam.small.grid, fam.small.apriori
        self.agree, self.disc = AGREE, None
        if not self.apriori:
            c = _core(fam.small, n)
            self.agree, self.disc = c.agree, c.disc


def row_vjp(y, g, fam, *, log=False, low=None):
    """One standardized finite row ``y`` (1-d, maximum exactly 0) and a finite
    cotangent ``g`` of its length: ``J^T g`` (of ``log p`` with ``log=True``), or None
    when the linear mode does not serve or certify the row.

    The lean path of ``numeric.probs_vjp`` / ``log_probs_vjp`` for a single short
    vector: the linear-mode chunk :func:`batch_vjp` runs on that row (dense, or the
    one-hot form for one nonzero cotangent), on the same nodes, without the batch
    bookkeeping: the same bits as :func:`batch_vjp`.  ``low``: ``y.min()`` when the
    caller knows it.

    >>> from numeric.families import get_family
    >>> v = row_vjp(np.array([0.0, -1.0, -2.0]), np.array([0.0, 1.0, 0.0]), get_family("logistic"))
    >>> bool(abs(v.sum()) < 1e-15), bool(v[0] < 0 < v[1])     # raising y_1 raises p_1
    (True, True)
    """
    sm = _small(fam)
    if sm is None or not sm.linear or not np.abs(g).max() <= _G_MAX:
        return None
    nodes = _row_nodes(y, fam, low)
    if nodes is None:
        return None
    chunk = _onehot_chunk if np.count_nonzero(g) == 1 else _vjp_chunk
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        v, ok = chunk(y[None, :], g[None, :], *nodes, _RowPlan(fam, y.size), math.exp(-sm.log_c0), log)
    return v[0] if ok[0] else None


def _vjp_log_chunk(y, c, x, logw, plan, log, wlin=None, scaled=False):
    """:func:`batch_vjp` in log space on rows sharing the node set ``x``.

    With ``e^{L_k} = w h_k F`` (the forward's log-mode node terms, shifted by each
    entry's largest term: ``E_k``, sum ``T_k``) and ``R_kj = int h_k F h_j / int h_k F``
    (so ``K_kj = int h_k h_j F = p_k R_kj``), ``(J^T g)_k = sum_j (g_k - g_j) K_kj``
    becomes, for ``log p`` (``g = c / p``), ``v = c (R 1) - R^T c``, and for ``p``,
    ``v_k = p_k (g_k (R 1)_k - (R g)_k)``, where over the nodes
    ``(R 1)_k = sum E_k S / T_k`` (``S = sum_j h_j``), ``(R^T c)_k = sum h_k W``
    (``W = sum_j c_j E_j / T_j``) and ``(R g)_k = sum E_k Gamma / T_k``
    (``Gamma = sum_j g_j h_j``): O(n G) per row, and every ``p`` that would over- or
    underflow cancels inside a ratio of node sums of the same entry.  The same sums
    over the even nodes (step 2 hh) give the error bound, as in :func:`_vjp_chunk`;
    the end terms of the integrands must be below END of their sums.

    ``scaled``: ``E`` from the scaled linear mode instead (each entry's terms times its
    own power of two, which cancels in the same ratios), rows clipped at LO declined."""
    fam = plan.fam
    if scaled:
        lo = plan.spec.get("LO")
        unclipped = x[..., 0].reshape(-1) >= (-math.inf if lo is None else lo)
        E, mx, H = _scaled_terms(x, y[:, :, None], fam, wlin, with_h=True)
        mx = mx * _LN2
        H *= math.exp(-fam.small.log_c0)                     # h_j at the nodes
    else:
        unclipped = True
        d = x - y[:, :, None]                                # (rows, n, G)
        C = fam.logcdf(d)
        logh = fam.logpdf(d)
        logh -= C
        L = logh + logw
        L += _sum_entries(C)
        L[np.isnan(L)] = -np.inf
        mx = L.max(axis=-1)
        mx[~np.isfinite(mx)] = 0.0
        E = np.exp(L - mx[..., None])                        # (rows, n, G)
        H = np.exp(logh)                                     # h_j at the nodes
    T = np.add.reduce(E, axis=-1)
    logT = np.log(T) + mx
    top = logT.max(axis=1, keepdims=True)
    lse = np.log(np.add.reduce(np.exp(logT - top), axis=1, keepdims=True)) + top
    p = np.exp(logT - lse)
    a = np.abs(c)

    def sums(E, H):
        """``(v, mass, end ratio)`` from the node sums over ``E``, ``H`` (all nodes or
        every other one; each ratio uses the sums of its own node set)."""
        Ts = np.add.reduce(E, axis=-1)
        S = np.add.reduce(H, axis=1)                         # (rows, G)
        ES = E * S[:, None, :]
        R1 = np.add.reduce(ES, axis=-1) / Ts
        if log:
            W = np.einsum("rj,rjg->rg", c / Ts, E)
            Wa = np.einsum("rj,rjg->rg", a / Ts, E)
            HW = H * Wa[:, None, :]
            v = c * R1 - np.einsum("rkg,rg->rk", H, W)
            mass = a * R1 + np.add.reduce(HW, axis=-1)
            ends = np.maximum(ES[..., 0] + HW[..., 0], ES[..., -1] + HW[..., -1])
            return v, mass, ends / np.maximum(ES.sum(axis=-1) + HW.sum(axis=-1), 1e-300)
        Gam = np.einsum("rj,rjg->rg", c, H)
        Ga = np.einsum("rj,rjg->rg", a, H)
        EG = E * Ga[:, None, :]
        v = p * (c * R1 - np.einsum("rkg,rg->rk", E, Gam) / Ts)
        mass = p * (a * R1 + np.add.reduce(EG, axis=-1) / Ts)
        ends = np.maximum(ES[..., 0] + EG[..., 0], ES[..., -1] + EG[..., -1])
        return v, mass, ends / np.maximum(ES.sum(axis=-1) + EG.sum(axis=-1), 1e-300)

    v, mass, endr = sums(E, H)
    if plan.disc is not None:
        # a core's a-priori step: every T_k and K_kj within disc relative, so each ratio
        # R_kj = K_kj / T_k within 2.01 disc, v_k = sum_j (c_k - c_j) R_kj within 2.01 disc
        # of its mass; for p also p_k (T_k / sum T, within 2.01 disc) and its product
        err = (3.0 * plan.disc + 1e-15) * mass
        if not log:
            err += 3.0 * plan.disc * np.abs(v)
    else:
        v2, _, _ = sums(E[..., ::2], H[..., ::2])
        err = np.abs(v - v2) + 1e-15 * mass
        if not log:
            T2 = 2.0 * np.add.reduce(E[..., ::2], axis=-1)
            err += np.abs(T2 / T - 1.0) * np.abs(v)         # the factor p_k's own error
    floor = _VJP_FLOOR * mass.sum(axis=1, keepdims=True)
    good = np.isfinite(lse[:, 0]) & (logT > -LOG_MIN).all(axis=1) & (endr <= END).all(axis=1)
    good &= unclipped
    good &= (err <= VJP_RTOL * np.abs(v) + floor).all(axis=1) & np.isfinite(v).all(axis=1)
    v[~good] = np.nan
    return v, good


_ALT = {}


def _alternating(G):
    """``(1, -1, 1, ...)`` of length G (cached, read-only)."""
    a = _ALT.get(G)
    if a is None:
        a = np.where(np.arange(G) % 2 == 0, 1.0, -1.0)
        a.flags.writeable = False
        if len(_ALT) < 4096:
            _ALT[G] = a
    return a


def _vjp_chunk(y, g, x, wlin, plan, c0, log):
    """:func:`batch_vjp` on rows sharing the node set ``x`` (weights ``wlin``)."""
    n = y.shape[1]
    P, hz = _parts_at(x, y[:, :, None], plan.fam.small, x[..., 0].min())    # (rows, n, G)
    F = np.multiply.reduce(P, axis=1, keepdims=True)         # hz: h / c0
    I = hz * (F * wlin)                                      # w h F (wlin carries c0)
    # a-priori relative bound of every K_kj (normal grid, or a core's a-priori step), or
    # None: the even/odd estimate
    disc = _N_DISC if plan.apriori else plan.disc
    if plan.apriori:
        T = np.add.reduce(I, axis=-1)
        good = (T.min(axis=1) >= TINY) & _tails_ok(I, T).all(axis=1)
    else:
        T, _, _, okc = _certify(I, plan.agree)
        good = (T.min(axis=1) >= TINY) & okc.all(axis=1)
    S = np.add.reduce(T, axis=1)
    good &= np.abs(S - 1.0) <= SUM_TOL
    p = T / S[:, None]
    gg = g / p if log else g
    gc = gg - np.einsum("rn,rn->r", p, gg)[:, None]
    agc = np.abs(gc)
    # node functions S = sum_j h_j, Gamma' = sum_j g'_j h_j, Gamma_abs = sum_j |g'_j| h_j:
    # one batched product (rows, 3, n) @ (rows, n, G)
    H = np.matmul(np.stack([np.ones_like(gc), gc, agc], axis=1), hz)
    H *= c0
    Sh, Gabs = H[:, 0], H[:, 2]
    # node sums of A = I (g'_k S - Gamma') and B = I (|g'_k| S + Gamma_abs) without
    # forming them: g'_k (I S) - (I Gamma') etc., one batched product of I with the node
    # functions (and, for the even/odd estimate, the same with alternating signs)
    G = I.shape[-1]
    if disc is None:
        H = np.concatenate([H, H[:, :2] * _alternating(G)], axis=1)
    Q = np.matmul(I, H.transpose(0, 2, 1))                   # (rows, n, 3 or 5)
    v = gc * Q[..., 0] - Q[..., 1]
    mass = agc * Q[..., 0] + Q[..., 2]
    ends = I[..., ::G - 1] * (agc[:, :, None] * Sh[:, None, ::G - 1] + Gabs[:, None, ::G - 1])
    good &= (ends.max(axis=-1) <= _TAIL_FREE * mass).all(axis=1)
    if disc is not None:
        err = (disc + 1e-15) * mass
    else:
        err = np.abs(gc * Q[..., 3] - Q[..., 4])             # |sum_even A - sum_odd A|
        err += 1e-15 * mass
    floor = _VJP_FLOOR * mass.sum(axis=1, keepdims=True)
    good &= np.isfinite(v).all(axis=1)
    okk = err <= VJP_RTOL * np.abs(v) + floor
    errok = okk.all(axis=1)
    # An entry far smaller than its terms (they cancel) cannot meet VJP_RTOL |v|; the
    # promise is relative to its own sum of |terms|, terms_k = sum_j |g_k - g_j| K_kj
    # (K_kj = sum over nodes of I_k h_j), which bounds the same error (err bounds the
    # error of every K_kj it sums, by the a-priori step or the even/odd disagreement, and
    # the rounding eps mass), and is >= |v_k|.  Computed for the entries that failed only:
    # the double sum over j (O(n G) each) for short rows or few entries, else
    # :func:`_abs_terms` (O(n G) per row after a sort).
    for r in np.flatnonzero(good & ~errok):
        k = np.flatnonzero(~okk[r])
        if n <= _TERMS_DIRECT or k.size <= _TERMS_SUBSET:
            A = np.einsum("kj,jg->kg", np.abs(gc[r, k, None] - gc[r, None, :]), hz[r])
        else:
            A = _abs_terms(gc[r:r + 1], hz[r:r + 1])[0, k]
        terms = np.einsum("kg,kg->k", I[r, k], A) * c0
        errok[r] = (err[r, k] <= VJP_RTOL * terms + floor[r]).all()
    good &= errok
    v /= S[:, None]
    v[~good] = np.nan
    return v, good


def _abs_terms(g, h):
    """``A[r, k, :] = sum_j |g[r, k] - g[r, j]| h[r, j, :]`` for cotangents ``g`` (rows, n)
    and node functions ``h >= 0`` (rows, n, G) in O(n log n + n G) per row instead of the
    double sum's O(n^2 G): with each row's ``g`` sorted ascending and prefix sums
    ``C0_m = sum_{j < m} h_j``, ``C1_m = sum_{j < m} g_j h_j`` in that order,
    ``A_k = g_k (C0_lo - (S - C0_hi)) - (C1_lo - (Gam - C1_hi))``, where ``lo`` / ``hi``
    count the ``g_j`` below / up to ``g_k`` (ties contribute 0) and ``S``, ``Gam`` are the
    full sums.  The brackets cancel where the ``g_j`` near ``g_k`` dominate, so the result
    carries an absolute rounding error of a few eps n (|g_k| S + sum_j |g_j| h_j)
    (measured <= 2e-15 of that at n = 100, 255); it is clipped at 0 (A >= 0).  The caller
    uses it as a tolerance only, VJP_RTOL A against an error bound that is at least 1e-15
    of that same scale (the rounding share of ``mass``), so such an error cannot loosen it.

    >>> g = np.array([[0.5, -1.0, 0.5, 2.0]]); h = np.arange(8.0).reshape(1, 4, 2)
    >>> bool(np.allclose(_abs_terms(g, h), np.einsum("rkj,rjg->rkg",
    ...      np.abs(g[:, :, None] - g[:, None, :]), h)))
    True
    """
    m, n, G = h.shape
    order = np.argsort(g, axis=1, kind="stable")
    gs = np.take_along_axis(g, order, axis=1)                            # (m, n)
    hs = np.take_along_axis(h, order[:, :, None], axis=1)                # (m, n, G)
    C0 = np.zeros((m, n + 1, G))
    np.cumsum(hs, axis=1, out=C0[:, 1:])
    C1 = np.zeros((m, n + 1, G))
    np.cumsum(hs * gs[:, :, None], axis=1, out=C1[:, 1:])
    lo = np.empty((m, n, 1), dtype=np.intp)
    hi = np.empty((m, n, 1), dtype=np.intp)
    for r in range(m):
        lo[r, :, 0] = np.searchsorted(gs[r], g[r], side="left")
        hi[r, :, 0] = np.searchsorted(gs[r], g[r], side="right")
    below = np.take_along_axis(C0, lo, axis=1) - (C0[:, n:] - np.take_along_axis(C0, hi, axis=1))
    gbelow = np.take_along_axis(C1, lo, axis=1) - (C1[:, n:] - np.take_along_axis(C1, hi, axis=1))
    A = g[:, :, None] * below
    A -= gbelow
    return np.maximum(A, 0.0, out=A)


# One-hot cotangent c at entry y (the gradient of -log p_y): for k != y,
#     d p_y / d y_k = -K_yk,   K_yk = int h_y h_k F dx > 0     (dF/dy_k = -h_k F),
# and d p_y / d y_y = sum_{k != y} K_yk (shift invariance), so
#     J^T g = c (sum_{k != y} K_yk e_y - sum_{k != y} K_yk e_k)        (p),
# and the same divided by T_y for log p_y: every entry is a sum of positive node terms
# I_y h_k (I_y = w h_y F, the forward's terms), with no cancellation however far
# apart the scores are (the centred dense form subtracts terms of size p_y S from
# each other).  Each K_yk is a trapezoid sum of the entire integrand h_y h_k F, so
# the forward's certificates apply term by term: normal rows the a-priori step bound
# (_N_DISC relative, growth e^{n a^2/2} as for h_i F) and the log-concave tail test,
# a core with the a-priori step its bound (n + 2 factors), the other families the
# even/odd disagreement |S_even - S_odd| >= |T_2h - T_h| and
# end terms below _TAIL_FREE of the sum.  An entry whose bound exceeds VJP_RTOL of
# K_yk, beyond the floor _VJP_FLOOR sum_k K_yk, makes the row uncertified.

def _onehot_chunk(y, g, x, wlin, plan, c0, log, scaled=False):
    """:func:`batch_vjp` for rows whose cotangent has one nonzero entry (see above);
    ``scaled``: the node terms of the scaled linear mode (each entry's terms and its
    K_yk carry the same power of two 2^-e_y, which cancels in K_yk / T_y and is put
    back by ldexp for p)."""
    m, n = y.shape
    if scaled:
        lo = plan.spec.get("LO")
        good = np.ones(m, dtype=bool)
        good &= x[..., 0].reshape(-1) >= (-math.inf if lo is None else lo)
        I, e, hz = _scaled_terms(x, y[:, :, None], plan.fam, wlin, with_h=True)
        T = np.add.reduce(I, axis=-1)
        logT = np.log(T) + e * _LN2
        top = logT.max(axis=1, keepdims=True)
        lse = np.log(np.add.reduce(np.exp(logT - top), axis=1)) + top[:, 0]
        good &= np.isfinite(lse) & (np.abs(np.expm1(lse)) <= SUM_TOL)
        good &= (logT > -LOG_MIN).all(axis=1)
        S = np.exp(lse)
    else:
        P, hz = _parts_at(x, y[:, :, None], plan.fam.small, x[..., 0].min())   # hz: h / c0
        F = np.multiply.reduce(P, axis=1, keepdims=True)
        I = hz * (F * wlin)                                  # w h F
        T = np.add.reduce(I, axis=-1)
        good = T.min(axis=1) >= TINY
        S = np.add.reduce(T, axis=1)
        good &= np.abs(S - 1.0) <= SUM_TOL
    if plan.apriori:
        good &= _tails_ok(I, T).all(axis=1)
    else:
        good &= _certify(I, plan.agree)[3].all(axis=1)
    r = np.arange(m)
    yi = np.argmax(g != 0.0, axis=1)
    c = g[r, yi]
    J = hz * I[r, yi][:, None, :]                            # w h_y h_k F / c0
    if plan.apriori:
        K, okK = _certify_tails(J)
        err = (_N_DISC + 1e-15) * K
    else:
        K, Se, So, _ = _certify(J)
        # the core's a-priori bound, or the even/odd disagreement
        err = (plan.disc * K if plan.disc is not None else np.abs(Se - So)) + 1e-15 * K
        G = J.shape[-1]
        okK = np.maximum(J[..., 0], J[..., G - 1]) <= _TAIL_FREE * K
    K[r, yi] = err[r, yi] = 0.0                              # K_yy: not part of J^T g
    tot = np.add.reduce(K, axis=1)
    floor = _VJP_FLOOR * tot
    okK |= K <= floor[:, None]
    okK[r, yi] = True
    good &= (okK & (err <= VJP_RTOL * K + floor[:, None])).all(axis=1) & np.isfinite(tot)
    v = np.negative(K, out=K)
    v[r, yi] = tot
    v *= (c * c0 / (T[r, yi] if log else S))[:, None]
    if scaled and not log:
        np.ldexp(v, e[r, yi][:, None], out=v)
    v[~good] = np.nan
    return v, good
