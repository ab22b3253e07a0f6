"""Certified oracle: rigorous enclosures of the argmax probabilities.

For scores ``mu`` and iid noise with CDF ``Phi`` and density ``phi``
(scale ``s``)::

    p_i = int phi(e) prod_{j != i} Phi(mu_i - mu_j + e) de         (eq:pi)

:func:`probs_certified` returns python-flint ``arb`` balls that provably
contain every ``p_i``, with relative radius below ``10^-(dps-5)``.

Certified families (:data:`CERTIFIED_FAMILIES`): gumbel, gumbel_min, normal,
logistic, cauchy, student_t (integer ``nu``: elementary closed-form CDF;
any other real ``nu > 0``: Gauss hypergeometric 2F1 form, slower), laplace,
exponential and uniform, with any scale that is an integer, a rational or a
(binary) float; other closed-form sympy scales (``sqrt(2)``, ``pi``...) are
evaluated in ball arithmetic for all families except uniform (whose support
ends must be exact).  Custom families raise :class:`OracleError`.

Method
------
1. Exact set-up.  Each ``mu_j`` is an exact binary number; with the scale
   ``s = P/Q`` (``Q`` a positive integer, ``P`` exact binary, or a ball for
   an irrational scale) the variable ``y = Q (x - max mu)`` turns (eq:pi)
   into ``p_i = int g_i(y) dy`` with ``M_j = Q (mu_j - max mu)`` *exact*::

       g_i(y) = phi((y - M_i)/P)/P * prod_{j != i} Phi((y - M_j)/P).

   All kinks of the piecewise families (laplace: ``y = M_j``; exponential:
   support starts at ``max M``; uniform: ``M_j`` and ``M_j + P``) are then
   exact points, so the integration range is split exactly there and on
   each piece every factor is one entire elementary expression (a
   *branch*), which makes ``acb.integral``'s holomorphy requirement hold.
   Analytic families have one piece; their kernels check holomorphy
   themselves (cauchy / student_t ``atan``, ``sqrt``, ``log`` and 2F1 cuts).
   Heavy tails: cauchy and student_t with integer ``nu`` are integrated in
   ``theta`` with ``e = sqrt(nu) tan(theta)``: ``phi(e) de`` becomes
   ``c sqrt(nu) cos^(nu-1)(theta) dtheta`` and each CDF factor, written in
   ``1/t`` near ``theta = +-pi/2``, is analytic on the closed interval, so
   the integral is one finite analytic integral with no tail at all.
   student_t with non-integer ``nu`` is integrated in ``t`` with
   ``y = c + P sinh(t)`` (entire change of variable; tails decay
   exponentially in ``t``) plus the tail bounds of step 3.
2. Rigorous integration of every finite piece with ``acb.integral``
   (Gauss-Legendre with error bounds from the analytic continuation,
   adaptive bisection), tolerance relative to an estimate of ``p_i``
   (so tiny probabilities, e.g. 1e-400, keep full relative accuracy).
3. Proven tail enclosures for the other infinite pieces (light-tailed
   families, laplace, exponential, non-integer-nu student_t), truncated
   at ``a`` (left) and ``b`` (right).  With ``u_j(y) = (y - M_j)/P`` and ``Phi``
   non-decreasing:

   * left:  for ``y <= a`` every factor ``Phi(u_j(y)) <= Phi(u_j(a))``, so
     ``0 <= int_{-inf}^a g_i <= prod_{j != i} Phi(u_j(a)) *
     int_{-inf}^a phi(u_i)/P dy = Phi(u_i(a)) prod_{j != i} Phi(u_j(a))``;
   * right: for ``y >= b`` the product lies in
     ``[prod_{j != i} Phi(u_j(b)), 1]``, so
     ``int_b^inf g_i in [S prod_{j != i} Phi(u_j(b)), S]`` with
     ``S = 1 - Phi(u_i(b))`` (computed without cancellation).

   Each tail enters as a ball over its interval; ``a`` and ``b`` are moved
   outwards (doubling steps, then bisection) until the interval width is
   below the tolerance.  This needs only monotonicity of ``Phi``, so it
   holds for every family (for the sinh route the cut points are balls
   ``c + P sinh(t)``, and the bounds are evaluated on those balls).
4. Check: the summed ball must have relative radius below
   ``10^-(dps-5)``; otherwise the precision is raised and the tolerance
   re-based on the computed value, and after a few attempts
   :class:`OracleError` is raised.  Nothing unverified is returned.

Example::

    >>> import math, mpmath, derive
    >>> b = probs_certified([mpmath.mpf(1), mpmath.mpf(0)], derive.family("cauchy"), 30)
    >>> abs(float(b[0].mid()) - (0.5 + math.atan(0.5) / math.pi)) < 1e-15   # 1/2 + atan(D/2)/pi
    True
    >>> b[0].rad() < 1e-25 * b[0]
    True
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp
from flint import acb, arb, ctx

from ._arb_kernels import kernel
from .errors import OracleError

__all__ = ["CERTIFIED_FAMILIES", "probs_certified"]

#: Registry families :func:`probs_certified` certifies (every registry family).
CERTIFIED_FAMILIES = (
    "gumbel",
    "gumbel_min",
    "normal",
    "logistic",
    "cauchy",
    "student_t",
    "laplace",
    "exponential",
    "uniform",
)

_ANALYTIC = ("gumbel", "gumbel_min", "normal", "logistic", "cauchy", "student_t")
_HEAVY = ("cauchy", "student_t")
_MAX_ATTEMPTS = 4
#: Largest standardized spread certified for these families (OracleError beyond).
#: normal: the loser's peak, one unit wide, sits ~spread/2 from the scores with
#: log g ~ -spread^2/4, where acb.integral's complex erfc is slow; measured: 1e4
#: certified in seconds, 1e6 not within 40 s (logistic 1e6: a non-finite ball;
#: laplace 1e6: not within 40 s).
_MAX_SPREAD = {"normal": 10**4, "logistic": 10**4, "laplace": 10**4}
_MAX_DOUBLINGS = 2000


# ---------------------------------------------------------------------------
# exact conversions
# ---------------------------------------------------------------------------


def _mpf_fraction(x) -> Fraction:
    """The exact value of a finite mpmath mpf (or raw mpf tuple) as a Fraction.

    Works on the raw ``(sign, man, exp, bc)`` tuple: ``mpf(x)`` would round
    ``x`` to the current ``mp.prec``.
    """
    if isinstance(x, tuple):
        t = x
    else:
        if not isinstance(x, mpmath.mpf):
            with mpmath.workprec(max(mpmath.mp.prec, 64)):
                x = mpmath.mpf(x)
        t = x._mpf_
    sign, man, exp, _ = t
    if not man and exp:  # inf / nan encodings
        raise OracleError(f"certified oracle: mu must be finite, got {x}")
    v = Fraction(int(man)) * (Fraction(2) ** int(exp))
    return -v if sign else v


def _arb_exact(q: Fraction) -> arb:
    """A dyadic Fraction as an exact arb (no rounding whatever ctx.prec is)."""
    den = q.denominator
    k = den.bit_length() - 1
    if den != 1 << k:
        raise AssertionError(f"not a dyadic rational: {q}")  # pragma: no cover
    return arb((q.numerator, -k))


def _clipped_float(q: Fraction) -> float:
    """float(q), saturated at +-1e300 (only used for the float estimate)."""
    if abs(q) > Fraction(10) ** 300:
        return 1e300 if q > 0 else -1e300
    return float(q)


def _dyadic(x: float) -> Fraction:
    return Fraction(x)  # a float is exactly dyadic


def _sympy_to_arb(e) -> arb:
    """Rigorous ball for a closed-form positive sympy constant (scale)."""
    e = sp.sympify(e)
    if e.is_Integer:
        return arb(int(e))
    if e.is_Rational:
        return arb(int(e.p)) / arb(int(e.q))
    if e.is_Float:
        return _arb_exact(_mpf_fraction(e._mpf_))  # exact binary value
    if e is sp.pi:
        return arb.pi()
    if e is sp.E:
        return arb(1).exp()
    if isinstance(e, sp.Add):
        return sum((_sympy_to_arb(a) for a in e.args), arb(0))
    if isinstance(e, sp.Mul):
        out = arb(1)
        for a in e.args:
            out = out * _sympy_to_arb(a)
        return out
    if isinstance(e, sp.Pow):
        base = _sympy_to_arb(e.base)
        ex = e.exp
        if ex.is_Integer:
            return base ** int(ex)
        if ex.is_Rational and base > 0:
            return (arb(int(ex.p)) / arb(int(ex.q)) * base.log()).exp()
    if isinstance(e, sp.exp):
        return _sympy_to_arb(e.args[0]).exp()
    if isinstance(e, sp.log):
        return _sympy_to_arb(e.args[0]).log()
    raise OracleError(f"certified oracle: cannot evaluate the parameter {e} rigorously")


def _scale_parts(s):
    """``s = P / Q``: (Q int, P as exact Fraction or None, P as float)."""
    s = sp.sympify(s)
    if s.is_Integer:
        return 1, Fraction(int(s)), float(s)
    if s.is_Rational:
        return int(s.q), Fraction(int(s.p)), float(s.p)
    if s.is_Float:
        p = _mpf_fraction(s._mpf_)
        return 1, p, float(p)
    if s.free_symbols:
        raise OracleError(f"certified oracle: the scale must be a number, got {s}")
    return 1, None, float(s.evalf(30))


# ---------------------------------------------------------------------------
# per-entry set-up: pieces with branch labels
# ---------------------------------------------------------------------------


def _pieces(name, i, M, P):
    """Integration pieces ``(lo, hi, branches)`` for entry ``i`` (y-units).

    ``lo``/``hi`` are exact Fractions or None (infinite); ``branches[k]`` is
    the branch label of factor ``k`` (the density for ``k == i``).
    Returns [] when ``p_i`` is exactly 0.
    """
    n = len(M)
    if name in _ANALYTIC:
        return [(None, None, None)]
    top = max(M)
    if name == "exponential":
        # phi(u_i) = 0 for y < M_i and Phi(u_j) = 0 for y < M_j:
        # g_i vanishes below max M; above it every factor is the u >= 0 branch.
        return [(top, None, None)]
    if name == "laplace":
        kinks = sorted(set(M))
        out = [(None, kinks[0], tuple("L" for _ in range(n)))]
        for lo, hi in zip(kinks, kinks[1:]):
            mid = (lo + hi) / 2
            out.append((lo, hi, tuple("L" if mid < m else "R" for m in M)))
        out.append((kinks[-1], None, tuple("R" for _ in range(n))))
        return out
    if name == "uniform":
        # g_i > 0 only on [max M, M_i + P]; inside, Phi(u_j) = u_j until M_j + P, then 1.
        lo, hi = top, M[i] + P
        if hi <= lo:
            return []
        cuts = sorted({lo, hi} | {M[j] + P for j in range(n) if j != i and lo < M[j] + P < hi})
        out = []
        for a, b in zip(cuts, cuts[1:]):
            mid = (a + b) / 2
            out.append((a, b, tuple("lin" if mid < M[j] + P else "one" for j in range(n))))
        return out
    raise AssertionError(name)  # pragma: no cover


# ---------------------------------------------------------------------------
# float estimate of p_i and of where its mass is
# ---------------------------------------------------------------------------


def _estimate(fam_num, d):
    """(log p_est, e_center) from a float64 log-space grid (only a guide).

    ``d``: the standardized differences ``(M_i - M_j) / P`` of the other
    entries, each rounded from its exact value (so a cluster far below the
    top keeps its own spread).  Correctness never depends on the estimate:
    the cut points are chosen by proven bounds, and a bad estimate only
    costs a retry.  It is always finite (sums of exponentials are taken
    relative to their largest term: at spread 1e10 the log-integrand,
    ~ -1e19, has float ulps of ~2e3).
    """
    lo = min(0.0, float(np.min(-d))) - 12.0
    hi = max(0.0, float(np.max(-d))) + 12.0
    slo, shi = fam_num.support
    if slo is not None and np.isfinite(slo):
        lo = max(lo, float(slo))
    if shi is not None and np.isfinite(shi):
        hi = min(hi, float(shi))

    def logg(e):
        with np.errstate(all="ignore"):
            v = fam_num.logpdf(e) + np.sum(fam_num.logcdf(e[None, :] + d[:, None]), axis=0)
        return np.where(np.isnan(v), -np.inf, v)

    e = np.linspace(lo, hi, 513)
    v = logg(e)
    k = int(np.argmax(v))
    if not np.isfinite(v[k]):
        return None, 0.5 * (lo + hi)
    # the peak can be far narrower than the grid step (spread 1e4 -> step 20,
    # width 0.7): golden-section search between the neighbours of the best
    # grid point (exact for log-concave integrands, a fair guess otherwise)
    a, b = e[max(k - 1, 0)], e[min(k + 1, e.size - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        x1, x2 = b - g * (b - a), a + g * (b - a)
        f1, f2 = logg(np.array([x1, x2]))
        if f1 < f2:
            a = x1
        else:
            b = x2
    mode = 0.5 * (a + b)
    top = float(logg(np.array([mode]))[0])
    if not np.isfinite(top):
        mode, top = float(e[k]), float(v[k])
    # width from the curvature, then a local trapezoid sum around the mode
    h = 1e-3 * max(1.0, abs(mode)) ** 0.5
    fm, fp = logg(np.array([mode - h, mode + h]))
    curv = -(fm - 2 * top + fp) / (h * h)
    width = 1.0 / math.sqrt(curv) if np.isfinite(curv) and curv > 1e-12 else 1.0
    ef = np.linspace(mode - 8 * width, mode + 8 * width, 257)
    ef = ef[(ef >= lo) & (ef <= hi)]
    if ef.size < 2:
        return top, mode
    vf = logg(ef)
    m, step = float(np.max(vf)), float(ef[1] - ef[0])
    if not (math.isfinite(m) and step > 0):  # step 0: a width below the float spacing at |mode|
        return top, mode
    logp = m + math.log(float(np.sum(np.exp(vf - m))) * step)
    return (float(logp) if math.isfinite(logp) else top), mode


# ---------------------------------------------------------------------------
# rigorous pieces
# ---------------------------------------------------------------------------


class _Entry:
    """Everything needed to integrate ``g_i`` in ball arithmetic."""

    def __init__(self, ker, i, Marb, Parb):
        self.ker, self.i, self.M, self.P = ker, i, Marb, Parb
        self.invP = 1 / Parb
        self.others = [j for j in range(len(Marb)) if j != i]

    def integrand(self, branches):
        ker, M, invP, i, others = self.ker, self.M, self.invP, self.i, self.others
        bi = branches[i] if branches else None

        def f(z, analytic):
            out = ker.pdf((z - M[i]) * invP, analytic, bi) * invP
            for j in others:
                if not out.is_finite():
                    return out
                out = out * ker.cdf((z - M[j]) * invP, analytic, branches[j] if branches else None)
            return out

        return f

    def theta_integrand(self):
        ker, M, invP, i = self.ker, self.M, self.invP, self.i
        nu = ker.nu
        rt = ker.rt
        delta = [(M[i] - M[j]) * invP / rt for j in self.others]
        # phi where t_j = +1/2 and -1/2: right of the first the s-form (t > 0)
        # is used, left of the second the s-form (t < 0), in between t itself
        upper = [2 * (arb(0.5) - dl).atan() / arb.pi() for dl in delta]
        lower = [2 * (arb(-0.5) - dl).atan() / arb.pi() for dl in delta]
        const = ker.const * rt * arb.pi() / 2  # c sqrt(nu) dtheta/dphi

        def f(phi, analytic):
            h = phi / 2
            c, s = h.cos_pi(), h.sin_pi()
            out = const * c ** (nu - 1) if nu > 1 else acb(const)
            for dl, up, lo in zip(delta, upper, lower):
                if not out.is_finite():
                    return out
                den = s + dl * c  # t_j = den / c
                if phi.real > up:
                    out = out * ker.cdf_inv_t(c / den, True, analytic)
                elif phi.real < lo:
                    out = out * ker.cdf_inv_t(c / den, False, analytic)
                else:
                    out = out * ker.cdf_t(den / c, analytic)
            return out

        return f

    def left_tail(self, a: arb) -> arb:
        """Ball containing int_{-inf}^a g_i (see the module docstring)."""
        ub = self.ker.cdf_real((a - self.M[self.i]) * self.invP)
        for j in self.others:
            ub = ub * self.ker.cdf_real((a - self.M[j]) * self.invP)
        return arb(0).union(ub)

    def right_tail(self, b: arb) -> arb:
        """Ball containing int_b^inf g_i (see the module docstring)."""
        S = self.ker.sf_real((b - self.M[self.i]) * self.invP)
        prod = arb(1)
        for j in self.others:
            prod = prod * self.ker.cdf_real((b - self.M[j]) * self.invP)
        lo = (S * prod).lower()
        return lo.union(S.upper())


def _log2_lower(x: arb) -> float:
    """log2 of the lower end of a positive ball (a float, any exponent)."""
    man, exp = x.lower().mid().man_exp()
    man = int(man)
    return math.log2(man) + int(exp) if man.bit_length() < 1000 else man.bit_length() + int(exp)


def _width(x: arb) -> arb:
    return 2 * x.rad()


def _cut(entry, point, side: int, tol: arb):
    """Smallest (up to bisection) exact ``step`` whose tail ball at ``point(step)``
    is narrower than ``tol``; returns (step, tail ball)."""
    tail = entry.left_tail if side < 0 else entry.right_tail
    step, prev = Fraction(1), Fraction(0)
    for _ in range(_MAX_DOUBLINGS):
        t = tail(point(step))
        if t.is_finite() and _width(t) < tol:
            break
        prev, step = step, step * 2
    else:
        raise OracleError("certified oracle: could not bound the integration tail")
    # shrink the cut point: bisection between the last failing and the passing step
    for _ in range(6):
        mid = (prev + step) / 2
        t = tail(point(mid))
        if t.is_finite() and _width(t) < tol:
            step = mid
        else:
            prev = mid
    return step, tail(point(step))


def _integrate(f, a: Fraction, b: Fraction, goal_bits: int, abs_tol: arb) -> arb:
    r = acb.integral(f, _arb_exact(a), _arb_exact(b), rel_tol=arb(2) ** (-goal_bits), abs_tol=abs_tol)
    if not r.is_finite():
        raise OracleError("certified oracle: acb.integral returned a non-finite ball")
    if not r.imag.contains(0):  # pragma: no cover - the integrand is real on the real line
        raise OracleError("certified oracle: the integral has a non-zero imaginary part")
    return r.real


def _entry_ball(entry, pieces, center: Fraction, P_f, goal_bits, abs_target: arb, heavy) -> arb:
    """Sum of the piece integrals and the tail balls for one entry."""
    total = arb(0)
    n_inf = sum((lo is None) + (hi is None) for lo, hi, _ in pieces)
    tol_each = abs_target / (len(pieces) + n_inf)
    unit = _dyadic(P_f)
    if heavy == "theta":
        # Integer nu (cauchy = nu 1): e = (y - M_i)/P = sqrt(nu) tan(pi phi/2),
        # phi in [-1, 1].  phi(e) de = c sqrt(nu) cos^(nu-1)(theta) dtheta with
        # theta = pi phi/2, and Phi(e + d_j) = F(t_j), t_j = tan(theta) + delta_j,
        # delta_j = d_j/sqrt(nu).  Where t_j > 1/2, F is written in
        # s_j = 1/t_j = cos/(sin + delta_j cos) (holomorphic through
        # theta = pi/2), where t_j < -1/2 likewise, and in between in t_j
        # itself.  The whole integral is one finite, analytic integral: no
        # tails at all.
        return _integrate(entry.theta_integrand(), Fraction(-1), Fraction(1), goal_bits, abs_target)
    if heavy:
        # Heavy (polynomial) tails: substitute y = c + P sinh(t).  sinh is
        # entire, so holomorphy is unchanged, and the tails decay like
        # exp(-|t|) in t: cut points |t| ~ 100 instead of |y| ~ 1e20.  The
        # cut points y(t) are balls; the tail bounds are evaluated on those
        # balls, so they still contain the bound at the true cut point.
        (lo, hi, br), = pieces
        c = _arb_exact(center)
        P = _arb_exact(unit)

        def y_of(t):
            return c + P * _arb_exact(t).sinh()

        ta, left = _cut(entry, lambda st: y_of(-st), -1, tol_each)
        tb, right = _cut(entry, lambda st: y_of(st), +1, tol_each)
        f = entry.integrand(br)

        def ft(t, analytic):
            return f(c + P * t.sinh(), analytic) * P * t.cosh()

        return left + right + _integrate(ft, -ta, tb, goal_bits, tol_each)
    for lo, hi, br in pieces:
        if lo is None:
            start = center if hi is None else min(center, hi)
            step, tail = _cut(entry, lambda st: _arb_exact(start - st * unit), -1, tol_each)
            lo = start - step * unit
            total += tail
        if hi is None:
            start = max(center, lo)
            step, tail = _cut(entry, lambda st: _arb_exact(start + st * unit), +1, tol_each)
            hi = start + step * unit
            total += tail
        if hi > lo:
            sub = _graded(lo, hi, center, unit)
            for a, b in sub:
                total += _integrate(entry.integrand(br), a, b, goal_bits, tol_each / len(sub))
    return total


def _graded(lo: Fraction, hi: Fraction, center: Fraction, unit: Fraction):
    """[lo, hi] split at ``center +- unit 2^k`` when it is longer than 64 units.

    After the tails are cut, [lo, hi] can be 1e9 units long around a peak one
    unit wide (normal, spread 1e10: the peak of g_i sits half-way between the
    scores); acb.integral's bisection from the whole interval runs out of
    evaluations before it isolates the peak, while on pieces that double in
    length away from the peak each far piece is bounded at once by one ball
    evaluation.  All points are exact dyadics.
    """
    if hi - lo <= 64 * unit:
        return [(lo, hi)]
    c = min(max(center, lo), hi)
    pts = {lo, hi, c}
    step = unit
    while c + step < hi or c - step > lo:
        for x in (c + step, c - step):
            if lo < x < hi:
                pts.add(x)
        step *= 2
    pts = sorted(pts)
    return list(zip(pts[:-1], pts[1:]))


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------


def _check_family(fam):
    if getattr(fam, "custom", False):
        raise OracleError(
            f"certified oracle: custom family {fam.name!r} is not certified; "
            f"certified families: {', '.join(CERTIFIED_FAMILIES)}"
        )
    if fam.name not in CERTIFIED_FAMILIES:
        raise OracleError(f"certified oracle: family {fam.name!r} is not certified")
    nu = None
    if fam.name == "student_t":
        nu = sp.sympify(fam.params.get("nu", 1))
        if nu.free_symbols or not nu.is_positive:
            raise OracleError(f"certified oracle: student_t needs a positive numeric nu, got {nu}")
        if nu.is_Integer or (nu.is_Float and nu == int(nu)):
            nu = int(nu)
    return nu


def probs_certified(mu, fam, dps) -> list:
    """Rigorous enclosures of ``p_i`` (eq:pi) as python-flint ``arb`` balls.

    ``mu``: finite mpmath mpf (exact binary values), ``len(mu) >= 2``;
    ``fam``: a registry :class:`derive.families.Family`; ``dps``: digits.
    Every ball contains the exact ``p_i`` and has radius below
    ``10^-(dps-5) |p_i|`` (an exact zero -- uniform noise, ``mu_i`` more
    than one scale below the top -- is returned as the exact ball 0).

    Raises :class:`OracleError` for families/parameters that are not
    certified and when the enclosure stays too wide after raising the
    working precision.

    >>> import mpmath, derive
    >>> mu = [mpmath.mpf("0.3"), mpmath.mpf("0.1"), mpmath.mpf(0)]
    >>> [round(float(b.mid()) * 6000, 6) for b in probs_certified(mu, derive.family("uniform"), 20)]
    [3443.0, 1577.0, 980.0]
    """
    nu = _check_family(fam)
    n = len(mu)
    if n < 2:
        raise ValueError(f"mu must have at least 2 entries, got {n}")
    dps = int(dps)
    name = fam.name
    Q, P_exact, P_f = _scale_parts(fam.params.get("scale", 1))
    if P_exact is None and name == "uniform":
        raise OracleError(
            "certified oracle: uniform needs a rational or binary-float scale "
            f"(its support ends must be exact), got {fam.params.get('scale')}"
        )
    if not (P_f > 0 and math.isfinite(P_f)):
        raise OracleError(f"certified oracle: scale out of range: {fam.params.get('scale')}")
    mu_q = [_mpf_fraction(m) for m in mu]
    top = max(mu_q)
    M = [Q * (m - top) for m in mu_q]  # exact dyadic, max M = 0

    # float guide for the estimates (standard units e = (y - M_i)/P)
    from numeric.families import get_family

    fam_num = get_family(name, nu=float(nu)) if name == "student_t" else get_family(name)

    goal_digits = dps + 2
    goal_bits = int(math.ceil(goal_digits * math.log2(10))) + 8
    accept = mpmath.mpf(10) ** (-(dps - 5))
    accept_arb = arb(10) ** (-(dps - 5))

    # y - M_j must keep goal_bits below 1 (in scale units) even when the
    # scores span a huge range: add the bit length of max |M| / P.
    span = max(abs(m) for m in M) / _dyadic(P_f)
    span_bits = int(span).bit_length()
    if name in _MAX_SPREAD and span > _MAX_SPREAD[name]:
        raise OracleError(
            f"certified oracle: family {name} is certified for score spreads up to "
            f"{_MAX_SPREAD[name]:g} scale units, got max |mu_i - max mu| / scale ~ {float(span):.3g} "
            "(certified=False gives the checked, non-certified value)"
        )
    if span_bits > 600 and name != "uniform":
        raise OracleError(
            f"certified oracle: scores spanning more than 2^600 scale units are not supported "
            f"(family {name}, max |mu_i - max mu| / scale ~ 2^{span_bits})"
        )

    out = []
    old_prec = ctx.prec
    try:
        for i in range(n):
            pieces = _pieces(name, i, M, P_exact)
            if not pieces:
                out.append(arb(0))  # exactly zero (uniform support is empty)
                continue
            d_f = np.array([_clipped_float(M[i] - M[j]) for j in range(n) if j != i]) / P_f
            logp, e_c = _estimate(fam_num, d_f)
            center = M[i] + _dyadic(e_c) * _dyadic(P_f)
            log2p = (logp / math.log(2)) if logp is not None else -4000.0
            extra = 0
            result = None
            for attempt in range(_MAX_ATTEMPTS):
                # |log p| up to ~2^k needs k more bits for the exponent of g_i (normal, spread
                # 1e10: log p ~ -2.5e19, 65 bits) to keep goal_bits relative in p
                ctx.prec = goal_bits + 40 + span_bits + int(abs(log2p)).bit_length() + extra
                heavy = name in _HEAVY
                if name == "cauchy" or isinstance(nu, int):
                    heavy = "theta" if heavy else False
                if name == "cauchy":
                    ker = kernel("student_t", 1)  # the same distribution, in theta form
                else:
                    ker = kernel(name, nu if (nu is None or isinstance(nu, int)) else _sympy_to_arb(nu))
                Parb = _arb_exact(P_exact) if P_exact is not None else _sympy_to_arb(fam.params["scale"]) * Q
                entry = _Entry(ker, i, [_arb_exact(m) for m in M], Parb)
                target = arb(2) ** (int(math.floor(log2p)) - goal_bits - 4)
                result = _entry_ball(
                    entry, pieces, center, P_f, goal_bits + extra // 2, target, heavy
                )
                if result.is_finite() and result > 0 and result.rad() <= accept_arb * result.lower():
                    break
                # re-base the tolerance on the computed value and raise the precision
                if result.is_finite() and result > 0:
                    log2p = min(log2p, _log2_lower(result))
                else:
                    log2p -= 64
                extra += 64
            else:
                raise OracleError(
                    f"certified oracle: enclosure of p_{i} too wide for family {name} "
                    f"(mu={[mpmath.nstr(m, 17) for m in mu]}, dps={dps}): {result}; "
                    f"relative radius must be below {mpmath.nstr(accept, 3)}"
                )
            out.append(result)
    except OracleError:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:
        # a numerical failure inside the ball arithmetic or the float guide (an
        # exponent out of range, ...): reported as what it is, no value returned
        raise OracleError(
            f"certified oracle: could not certify p_{i} for family {name} "
            f"(mu={[mpmath.nstr(m, 17) for m in mu]}, dps={dps}): {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        ctx.prec = old_prec
    return out
