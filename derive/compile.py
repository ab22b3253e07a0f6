"""Compile a derive :class:`~derive.families.Family` to numpy/scipy kernels for ``numeric``.

``to_numeric(fam)`` returns a :class:`numeric.families.NumericFamily` whose
``logcdf`` / ``logpdf`` are sympy expressions lambdified to numpy and
``scipy.special`` (``numeric`` itself never imports sympy).  Registry
families map to numeric's own kernels.  A user CDF ``F`` is compiled in two
forms, each free of cancellation where it is used:

* left of the median, ``log F`` from ``F`` with ``erf(a) -> erfc(-a) - 1``
  and, for ``a < 0``, ``atan(a) -> -pi/2 - atan(1/a)`` (so
  ``(1 + erf(z))/2 = erfc(-z)/2`` and ``1/2 + atan(x)/pi = -atan(1/x)/pi``
  keep full relative precision in the left tail), ``log`` expanded
  (``log exp(-x^-2) = -x^-2``);
* right of the median, ``log F = log1p(-S)`` with ``S = 1 - F`` written with
  ``erf(a) -> 1 - erfc(a)`` and ``atan(a) -> pi/2 - atan(1/a)``;

and sympy's C99 rewriting turns ``log(1 + t)``, ``exp(t) - 1`` into
``log1p`` / ``expm1``.  The density is compiled as ``log phi`` with its
logarithm expanded.  The kernels are *verified*: at ~250 points spread
geometrically from the median into both tails (and towards finite support
ends) they must match the CDF and density evaluated by mpmath (to 35 digits,
at the precision the user's expression needs) to ``1e-13 * max(1, |log F|)``
wherever ``F >= 1e-300`` (likewise ``log phi``).  Where a form misses, two
fallbacks for cancellation are tried (:func:`_kernels`): other printings of
the same form (exponentials merged, so ``1 - e^(1/2) e^(-e^x/2)`` becomes
``-expm1(-expm1(x)/2)``; ``cos(t) - 1 -> cosm1(t)``), and next to a finite
support end the density in the distance from the end with the mass from its
integral (:func:`_end_mass`).  What still misses raises :class:`CompileError`
naming the point and the error, so a family is never handed to ``numeric``
with kernels that would silently cost accuracy.  A family that is a
location-scale transform of a registry family (sympy.stats StudentT, Normal,
...) is not compiled: it runs on that family's engine
(:func:`registry_equivalent`).

>>> import numpy as np, sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> nf = derive.family_from_cdf(sp.exp(-x**-2), x, sp.Interval(0, sp.oo), name="frechet2").to_numeric()
>>> float(nf.logcdf(np.array([0.01]))[0])     # log F(0.01) = -1e4, far below float64's F
-10000.0
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp
from scipy import special
from sympy.codegen.cfunctions import log1p
from sympy.codegen.rewriting import ReplaceOptim, cosm1_opt, expm1_opt, optimize, optims_c99

__all__ = ["to_numeric", "registry_equivalent", "CompileError"]

#: tolerance of the verification: |log F_compiled - log F| <= TOL * max(1, |log F|)
TOL = 1e-13


class CompileError(ValueError):
    """The compiled kernels of a family do not reach the promised accuracy (or cannot be built)."""


#: erfc that sympy does not rewrite (its erfc(-a) becomes 2 - erfc(a), the cancelling form)
_ERFC = sp.Function("erfc_")


def _left_form(e):
    """``F`` rewritten for its left tail (small values kept without cancellation)."""
    e = e.replace(sp.erfc, lambda a: _ERFC(a))
    e = e.replace(sp.erf, lambda a: _ERFC(-a) - 1)
    e = e.replace(lambda t: isinstance(t, sp.atan) and t.args[0].is_negative is not True,
                  lambda t: -sp.pi / 2 - sp.atan(1 / t.args[0]))
    return sp.expand(e) if not e.has(sp.Piecewise) else e


def _right_form(e):
    """``S = 1 - F`` rewritten for the right tail."""
    s = 1 - e.replace(sp.erfc, lambda a: _ERFC(a))
    s = s.replace(sp.erf, lambda a: 1 - _ERFC(a))
    s = s.replace(lambda t: isinstance(t, sp.atan), lambda t: sp.pi / 2 - sp.atan(1 / t.args[0]))
    return sp.expand(s) if not s.has(sp.Piecewise) else sp.piecewise_fold(s)


def _log_of(e, x, lo):
    """``log e`` with products and powers split (no ``log`` of an underflowing product).

    On a support inside ``[0, oo)`` the variable is positive, which lets
    sympy split ``log(x^-3 exp(-x^-2))`` exactly; elsewhere the split is
    forced, unless that produces ``log(-1)`` (a negative factor), when the
    logarithm is left whole.
    """
    if lo.is_finite and bool(lo >= 0):
        xp = sp.Dummy("xp", positive=True)
        out = sp.expand_log(sp.log(e.subs(x, xp)), force=True).subs(xp, x)
    else:
        out = sp.expand_log(sp.log(e), force=True)
    if out.has(sp.I) or out.has(sp.zoo, sp.nan):
        out = sp.expand_log(sp.log(e))
    return sp.expand(out) if not out.has(sp.Piecewise) else out


#: ``log(1 + u) -> log1p(u)`` literally.  sympy's ``log1p_opt`` factors the argument first,
#: which turns ``log(1 + e^-x)`` into ``log1p(e^x) - x``: exact in exact arithmetic, but e^x
#: overflows beyond x = 709 where the original form is 0 to full precision
_LOG1P_LITERAL = ReplaceOptim(
    lambda e: isinstance(e, sp.log) and e.args[0].is_Add and sp.S.One in e.args[0].args,
    lambda e: log1p(e.args[0] - 1))

#: how a sympy form is printed for numpy, tried in this order per kernel (see :func:`_choose`):
#: sympy's C99 rewriting as is; exponentials merged first (``1 - e^a e^b -> -expm1(a + b)``,
#: and inside ``a + b`` again ``c - c e^g -> -c expm1(g)``); merged, with ``cos(t) - 1 -> cosm1(t)``
#: and the literal log1p rule
_VARIANTS = (
    lambda e: optimize(e, optims_c99),
    lambda e: optimize(sp.powsimp(e, deep=True, combine="exp"), optims_c99),
    lambda e: optimize(sp.powsimp(e, deep=True, combine="exp"), (expm1_opt, cosm1_opt, _LOG1P_LITERAL)),
)


def _hyper(ap, bq, z):
    """sympy's ``hyper(ap, bq, z)`` for numpy: the generalized hypergeometric functions
    scipy.special has, ``2F1`` (``hyp2f1``), ``1F1`` (``hyp1f1``) and ``0F1`` (``hyp0f1``);
    other orders raise (:class:`CompileError` then names the expression).  scipy's values
    are not trusted: the compiled kernels are verified against mpmath like every other
    form (:func:`_kernels`).

    >>> round(float(_hyper((0.5, 0.5), (1.5,), 0.25)), 15) == round(2 * math.asin(0.5), 15)
    True
    """
    if len(ap) == 2 and len(bq) == 1:
        return special.hyp2f1(ap[0], ap[1], bq[0], z)
    if len(ap) == 1 and len(bq) == 1:
        return special.hyp1f1(ap[0], bq[0], z)
    if not ap and len(bq) == 1:
        return special.hyp0f1(bq[0], z)
    raise NotImplementedError(f"hyper with {len(ap)} upper and {len(bq)} lower parameters "
                              "(scipy.special has 2F1, 1F1, 0F1)")


def _numpy(expr, x, variant=0):
    expr = _VARIANTS[variant](expr)
    try:
        f = sp.lambdify(x, expr, modules=[{"erfc_": special.erfc, "hyper": _hyper}, "numpy", "scipy"])
        # functions numpy/scipy lack (meijerg, hyper of other orders, ...) are printed by name and
        # fail only when called
        with np.errstate(all="ignore"):
            f(np.array([0.5]))
    except (NameError, TypeError, KeyError, NotImplementedError, AttributeError) as exc:
        raise CompileError(f"cannot compile {expr} to numpy/scipy: {exc}") from exc
    return f


def _call(f, x):
    with np.errstate(all="ignore"):
        v = f(x)
    return np.broadcast_to(np.asarray(v, dtype=np.float64) if not np.iscomplexobj(v) else
                           np.where(np.abs(np.imag(v)) <= 1e-300, np.real(v), np.nan), x.shape)


def _clean_pieces(e, x):
    """A CDF with Min / Max / Piecewise written as one simplified expression per interval.

    sympy.stats writes the triangular CDF as ``Min(1,x)^2 - 2 Min(1,x) -
    Min(2,x)^2/2 + 2 Min(2,x)``, which is ``x^2/2`` on ``[0, 1]`` but
    cancels catastrophically near 0 in floating point; resolving the branch
    on each interval between kinks and simplifying there removes that.
    """
    if not e.has(sp.Piecewise, sp.Min, sp.Max, sp.Abs, sp.Heaviside):
        return e
    from .closed import _resolve_on_segment
    from .routes.piecewise import breakpoints

    e = e.rewrite(sp.Piecewise)
    try:
        bps = breakpoints(e, x)
    except ValueError:
        return e
    edges = [-sp.oo] + bps + [sp.oo]
    branches = []
    for a, b in zip(edges, edges[1:]):
        mid = (a + b) / 2 if a.is_finite and b.is_finite else (b - 1 if a == -sp.oo else a + 1)
        piece = sp.simplify(_resolve_on_segment(e, x, {x: mid}))
        branches.append((piece, x < b if b.is_finite else True))
    return sp.Piecewise(*branches)


#: Gauss-Legendre rule on [0, 1] for the mass next to a finite support end (see :func:`_end_mass`)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(40)
_GL_X, _GL_W = (_GL_X + 1) / 2, _GL_W / 2
#: log(2 w W) of the rule after the substitution s = t w^2
_GL_LOGW = np.log(2 * _GL_X * _GL_W)


def _end_mass(log_pdf_end):
    """``log int_0^t f(end + direction s) ds`` as a function of the distance ``t > 0`` from a finite
    end, ``log_pdf_end(s)`` the compiled ``log f(end + direction s)``.

    Where ``F`` (at the lower end) or ``S = 1 - F`` (at the upper end) cancels in every closed
    form sympy offers (Erlang: ``1 - (1 + x + x^2/2) e^-x ~ x^3/6``; Maxwell; the raised cosine;
    the arcsine law's ``1 - 2 asin(sqrt x)/pi`` near 1) the mass is the integral of the
    density, written in the distance ``s`` from the end (so ``log(1 - x)`` at ``x = 1 - s`` is
    ``log s``, not the log of a rounded difference), whose logarithm has no cancellation.  With
    ``s = t w^2``,

        int_0^t f(end + s) ds = int_0^1 f(end + t w^2) 2 t w dw,

    which is smooth in ``w`` when ``f ~ c s^k`` (integer k) or ``f ~ c s^(-1/2)`` (arcsine) at
    the end; a 40-point Gauss-Legendre rule of positive terms summed in log space keeps
    the full relative precision of ``f``.  Its error for an integrand analytic inside the
    Bernstein ellipse E_rho is O(rho^-80): the radius where it is used is chosen at most half
    the distance to the median, and the result is verified against mpmath like every kernel.
    """
    def mass(t):
        with np.errstate(all="ignore"):
            L = _call(log_pdf_end, t[:, None] * (_GL_X**2)[None, :]) + _GL_LOGW[None, :] + np.log(t)[:, None]
            L = np.where(np.isnan(L), -np.inf, L)
            m = L.max(axis=1)
            m = np.where(np.isfinite(m), m, 0.0)
            return np.log(np.exp(L - m[:, None]).sum(axis=1)) + m
    return mass


def _assemble(plain, log_left, log_s, log_pdf, lo_f, hi_f, ends=(None, None)):
    """``(logcdf, logpdf)`` numpy kernels from compiled forms (see the module docstring);
    ``ends[0] = (r, log_pdf_end)``: within ``r`` of the finite lower end ``log F`` is
    :func:`_end_mass`, likewise ``log S`` near the upper end with ``ends[1]``."""
    # a point inside the support: the sympy forms are evaluated there for t outside (result discarded)
    inner = ((lo_f + hi_f) / 2 if math.isfinite(lo_f + hi_f) else
             (lo_f + 1 if math.isfinite(lo_f) else (hi_f - 1 if math.isfinite(hi_f) else 0.0)))
    ends = tuple(e or (0.0, None) for e in ends)
    r_lo, mass_lo = ends[0][0], (_end_mass(ends[0][1]) if ends[0][1] else None)
    r_hi, mass_hi = ends[1][0], (_end_mass(ends[1][1]) if ends[1][1] else None)

    def clamped(t):
        """``(t, inside, u)``: t as float64, the mask of the open support, t with the outside at ``inner``."""
        t = np.asarray(t, dtype=np.float64)
        inside = (t > lo_f) & (t < hi_f)
        return t, inside, np.where(inside, t, inner)

    def logcdf(t):
        t, inside, u = clamped(t)
        with np.errstate(all="ignore"):
            F = _call(plain, u)
            left = _call(log_left, u)
            ls = _call(log_s, u)
            use_left = F <= 0.5
            if mass_lo is not None:
                near = inside & (u - lo_f < r_lo)
                if near.any():
                    left = left.copy()
                    left[near] = mass_lo(u[near] - lo_f)
                    use_left = use_left | near
            if mass_hi is not None:
                near = inside & (hi_f - u < r_hi)
                if near.any():
                    ls = ls.copy()
                    ls[near] = mass_hi(hi_f - u[near])
                    use_left = use_left & ~near
            right = np.log1p(-np.exp(ls))
            out = np.where(use_left, left, right)
            # a form undefined at a point (1/a at a = 0, ...) falls back to the other one
            out = np.where(np.isnan(out), np.where(use_left, right, left), out)
        out = np.where(inside, out, np.where(t >= hi_f, 0.0, -np.inf))
        return out

    def logpdf(t):
        t, inside, u = clamped(t)
        with np.errstate(all="ignore"):
            v = _call(log_pdf, u)
            # near a finite end the density in the distance from it (fl(u - end) is exact to
            # 1.1e-16 relative, the form has no cancellation there)
            for (r, form), end, sign in ((ends[0], lo_f, 1.0), (ends[1], hi_f, -1.0)):
                near = inside & (sign * (u - end) < r) if form is not None else None
                if near is not None and near.any():
                    v = v.copy()
                    v[near] = _call(form, sign * (u[near] - end))
        return np.where(inside, np.where(np.isnan(v), -np.inf, v), -np.inf)

    return logcdf, logpdf


def _references(fam, e, pdf, pts, lo, hi):
    """``(log F, log f)`` at the probe points by mpmath to 35 digits (None where not checked:
    outside the support, values below 1e-300, or where mpmath cannot evaluate the form).

    The user's expression may cancel (Erlang's ``1 - (1 + x + x^2/2) e^-x`` is 1e-36 at
    x = 1e-12): a value counts once two evaluations at 40 and 80 digits, or at doubled
    precisions up to 1280 digits, agree to 1e-35 relative."""
    from .oracle._mpfamily import _CLAMPED

    x = fam.symbol
    # exp(v) = 0 below v = -2^30 (erfc above 2^30): a nested exponential (Gompertz's e^(-e^x) far
    # right) would otherwise make mpmath compute ln 2 to as many bits as v's exponent has
    F = sp.lambdify(x, e, [_CLAMPED, "mpmath"])
    f = sp.lambdify(x, pdf, [_CLAMPED, "mpmath"])

    out = ([None] * len(pts), [None] * len(pts))
    for k, t in enumerate(pts):
        if not (lo.is_infinite or t > float(lo)) or not (hi.is_infinite or t < float(hi)):
            continue
        for ref, g in zip(out, (F, f)):
            v = _settled(g, mpmath.mpf(float(t)))
            if v is not None and v > mpmath.mpf(10) ** -300:
                with mpmath.workdps(40):
                    ref[k] = mpmath.log(v)
    return out


def _settled(g, t, digits=35, max_dps=1280):
    """``g(t)`` by mpmath once two evaluations at ``d`` and ``2 d`` digits (d = 40, 80, ...,
    up to ``max_dps``) agree to ``10^-digits`` relative; None when they never do, or
    where mpmath cannot evaluate ``g``."""
    def value(dps):
        with mpmath.workdps(dps):
            try:
                v = mpmath.mpmathify(g(t))
            except (ZeroDivisionError, ValueError, OverflowError):
                return None
            return v.real if isinstance(v, mpmath.mpc) else v

    dps, v = 40, value(40)
    while v is not None and dps < max_dps:
        w = value(2 * dps)
        if w is None:
            return None
        with mpmath.workdps(2 * dps):
            if abs(w - v) <= mpmath.mpf(10) ** -digits * abs(w):
                return w
        dps, v = 2 * dps, w
    return None


def _failures(got, refs):
    """Indices where ``got`` misses its reference by more than ``TOL * max(1, |ref|)``, with the errors."""
    bad = []
    with mpmath.workdps(40):
        for k, ref in enumerate(refs):
            if ref is None:
                continue
            err = abs(mpmath.mpf(got[k]) - ref) if math.isfinite(got[k]) else mpmath.inf
            if err > TOL * max(1, abs(ref)):
                bad.append((k, err))
    return bad


def _choose(form, x, check):
    """The first of :data:`_VARIANTS` whose compiled ``form`` passes ``check`` (number of
    failures), else the one with the fewest failures."""
    best, first_exc = None, None
    for v in range(len(_VARIANTS)):
        try:
            f = _numpy(form, x, v)
        except CompileError as exc:
            first_exc = first_exc or exc
            continue
        n_bad = check(f)
        if best is None or n_bad < best[0]:
            best = (n_bad, f)
        if n_bad == 0:
            break
    if best is None:
        raise first_exc
    return best[1]


def _kernels(fam):
    """Compiled and verified ``(logcdf, logpdf)`` of a user family.

    Each of the three forms (``log F`` left of the median, ``log S`` right of it, ``log f``)
    is printed for numpy in the first of :data:`_VARIANTS` that matches mpmath at every
    probe point of its range.  Where ``log F`` still misses near a finite lower end (or
    ``log S`` near a finite upper end) -- a cancellation no rewriting removes -- the mass
    there is taken from the density (:func:`_end_mass`) out to 64 times the farthest
    failing probe (at most half the way to the median).  The assembled kernels must
    then match at every probe point, else :class:`CompileError`.
    """
    from .routes._common import cdf_on_support

    x = fam.symbol
    e, lo, hi = cdf_on_support(fam)
    e = _clean_pieces(e, x)
    pdf = sp.diff(e, x)
    lo_f = float(lo) if lo.is_finite else -math.inf
    hi_f = float(hi) if hi.is_finite else math.inf
    pts, med = _probe_points(fam, lo, hi)
    ref_F, ref_f = _references(fam, e, pdf, pts, lo, hi)
    plain = _numpy(e, x)
    inside = (pts > lo_f) & (pts < hi_f)
    with np.errstate(all="ignore"):
        left_range = inside & (_call(plain, np.where(inside, pts, med)) <= 0.5)

    def on(mask, refs):
        return [r if m else None for r, m in zip(refs, mask)]

    def check_left(f):
        with np.errstate(all="ignore"):
            return len(_failures(_call(f, pts), on(left_range, ref_F)))

    def check_right(f):
        with np.errstate(all="ignore"):
            return len(_failures(np.log1p(-np.exp(_call(f, pts))), on(inside & ~left_range, ref_F)))

    def check_pdf(f):
        with np.errstate(all="ignore"):
            return len(_failures(_call(f, pts), on(inside, ref_f)))

    log_left = _choose(_log_of(_left_form(e), x, lo), x, check_left)
    log_s = _choose(_log_of(_right_form(e), x, lo), x, check_right)
    log_pdf = _choose(_log_of(pdf, x, lo), x, check_pdf)
    ends = [None, None]
    for attempt in range(2):
        logcdf, logpdf = _assemble(plain, log_left, log_s, log_pdf, lo_f, hi_f, ends)
        bad = {"log CDF": _failures(logcdf(pts), ref_F), "log density": _failures(logpdf(pts), ref_f)}
        if not bad["log CDF"] and not bad["log density"]:
            return logcdf, logpdf, e, pdf, (lo, hi)
        if attempt == 0:
            # failures near a finite end: the density in the distance from the end, and the mass from it
            radii = [0.0, 0.0]
            for k, _ in bad["log CDF"] + bad["log density"]:
                t = pts[k]
                if math.isfinite(lo_f) and t < med:
                    radii[0] = max(radii[0], min(64 * (t - lo_f), (med - lo_f) / 2))
                elif math.isfinite(hi_f) and t > med:
                    radii[1] = max(radii[1], min(64 * (hi_f - t), (hi_f - med) / 2))
                else:
                    radii = None
                    break
            if radii is not None:
                d = sp.Dummy("s", positive=True)
                for j, (end, sign) in enumerate(((lo, 1), (hi, -1))):
                    if radii[j] > 0:
                        # f(end + sign s) against the density's references at the probes near the end
                        # (their distances from the end are exact: Sterbenz)
                        near = inside & ((pts < med) if j == 0 else (pts > med))
                        dist = (pts - lo_f) if j == 0 else (hi_f - pts)

                        def check_end(f, near=near, dist=dist):
                            with np.errstate(all="ignore"):
                                return len(_failures(_call(f, np.where(near, dist, 1.0)), on(near, ref_f)))

                        form = _log_of(pdf.subs(x, end + sign * d), d, sp.S.Zero).subs(d, x)
                        ends[j] = (radii[j], _choose(form, x, check_end))
                continue
        name = "log CDF" if bad["log CDF"] else "log density"
        k, err = bad[name][0]
        ref = (ref_F if name == "log CDF" else ref_f)[k]
        raise CompileError(
            f"family {fam.name!r}: the compiled {name} is off by {mpmath.nstr(err, 3)} at x = {pts[k]!r} "
            f"(reference {mpmath.nstr(ref, 17)}); numeric would lose accuracy there")


def _probe_points(fam, lo, hi):
    """~250 points from the median geometrically into both tails / towards finite ends, and the median."""
    from .routes._common import quantile_points

    q1, med, q3 = (float(v) for v in quantile_points(fam, (0.25, 0.5, 0.75)))
    s = max(q3 - q1, 1e-300)
    ks = np.linspace(-4, 6, 60)
    pts = [med + s * np.linspace(-1, 1, 21)]
    if lo.is_finite:
        pts.append(float(lo) + (med - float(lo)) * 10.0 ** -np.linspace(0, 12, 60))
    else:
        pts.append(med - s * 10.0**ks)
    if hi.is_finite:
        pts.append(float(hi) - (float(hi) - med) * 10.0 ** -np.linspace(0, 12, 60))
    else:
        pts.append(med + s * 10.0**ks)
    return np.unique(np.concatenate(pts)), med


def _tail_exponent(f):
    """``nu`` with ``F(-x) ~ C x^-nu`` (a power-law left tail), or None.

    For a Student t tail ``F(-x) = C x^-nu (1 + c/x + O(x^-2))``, the slope of ``log F``
    against ``log x`` over [x, 10 x] is ``-nu + O(1/x)``; from the slopes over [1e4, 1e5] and
    [1e5, 1e6] one Richardson step leaves O(1e-10) (each value to 20 digits at the precision it
    needs, :func:`_settled`).  Light tails make the user's expression
    cancel beyond any precision tried (normal: ``F(-1e4) = 10^(-2e7)``), and give None."""
    def slope(x1, x2):
        a = _settled(f, -mpmath.mpf(x1), digits=20)
        b = _settled(f, -mpmath.mpf(x2), digits=20)
        if a is None or b is None or not (a > 0 and b > 0):
            return None
        with mpmath.workdps(30):
            return -(mpmath.log(b) - mpmath.log(a)) / mpmath.log(mpmath.mpf(x2) / x1)

    s1, s2 = slope(10**4, 10**5), slope(10**5, 10**6)
    if s1 is None or s2 is None:
        return None
    # a location shift adds c/x to the slope (x^-2 without one): one Richardson step removes it
    nu = s2 + (s2 - s1) / 9
    return nu if 0 < nu < 200 else None


def _t_cdf(nu, t):
    """Student t CDF by mpmath's regularized incomplete beta (both tails without cancellation)."""
    tail = mpmath.betainc(nu / 2, mpmath.mpf(1) / 2, 0, nu / (nu + t * t), regularized=True) / 2
    return tail if t < 0 else 1 - tail


def _quantile(F, q, x0=0):
    """``x`` with ``F(x) = q`` (bracketed by doubling, then Anderson-Bjorck at the working precision)."""
    lo, hi, step = mpmath.mpf(x0) - 1, mpmath.mpf(x0) + 1, 1
    while F(lo) > q:
        step *= 2
        lo -= step
    step = 1
    while F(hi) < q:
        step *= 2
        hi += step
    return mpmath.findroot(lambda t: F(t) - q, (lo, hi), solver="anderson")


def registry_equivalent(fam):
    """``(name, params)`` of a registry family G with ``F(x) = G(a x + b)`` (params: G's
    shape and ``scale = 1/a``), or None.

    The location-scale route's test (:func:`derive.routes.location_scale.match`: ``G^{-1}(F(x))``
    affine at 50 digits, the slope with an exact form) for the registry families with an
    elementary quantile; then Student t: ``nu`` from the power-law tail
    (:func:`_tail_exponent`, made exact by ``nsimplify``), and ``F(x) = T_nu(a x + b)`` when
    the quantiles 0.1, 0.3, ..., 0.9 of F and of ``T_nu`` (mpmath's incomplete beta) are
    affine images of each other (slopes equal to 1e-30 at 50 digits).  Since ``p(mu; F) = p(a mu; G)`` (the location drops out), numeric
    then computes with G's engine at scale ``1/a`` (sympy.stats ``StudentT("X", 3)``,
    whose CDF sympy writes with a hypergeometric function, takes numeric's student_t, any nu).

    >>> import sympy as sp
    >>> from sympy.stats import StudentT
    >>> from derive import family_from_sympy_stats
    >>> registry_equivalent(family_from_sympy_stats(StudentT("X", 3)))
    ('student_t', {'nu': 3.0, 'scale': 1.0})
    """
    from .routes import location_scale
    from .routes._common import DPS, cdf_on_support, mp_function

    m = location_scale.match(fam)
    if isinstance(m, tuple):
        return m[0], {"scale": float(1 / m[1])}
    e, lo, hi = cdf_on_support(fam)
    if lo.is_finite or hi.is_finite or e.has(sp.Piecewise):
        return None
    nu = _tail_exponent(mp_function(e, fam.symbol))
    if nu is None:
        return None
    nu = sp.nsimplify(sp.Float(nu, 15), rational=True, tolerance=1e-6)
    F = mp_function(e, fam.symbol)
    with mpmath.workdps(DPS):
        nu_mp = mpmath.mpf(sp.Float(nu, DPS))
        qs = [mpmath.mpf(q) / 10 for q in (1, 3, 5, 7, 9)]
        try:
            xF = [_quantile(lambda t: mpmath.re(F(t)), q) for q in qs]
            xG = [_quantile(lambda t: _t_cdf(nu_mp, t), q) for q in qs]
        except (ArithmeticError, ValueError, TypeError, ZeroDivisionError):
            return None
        slopes = [(xG[k + 1] - xG[k]) / (xF[k + 1] - xF[k]) for k in range(len(qs) - 1)]
        a = slopes[0]
        if not a > 0 or any(abs(v - a) > mpmath.mpf(10) ** -30 * a for v in slopes):
            return None
        return "student_t", {"nu": float(nu), "scale": float(1 / a)}


_CACHE: dict = {}


def to_numeric(fam):
    """The ``numeric`` family of a derive Family (registry kernels, or compiled and verified user kernels).

    Registry families return ``numeric.get_family(name, scale=..., nu=...)``, and so do
    user families that are a location-scale transform of one (:func:`registry_equivalent`:
    sympy.stats Normal, Logistic, Cauchy, Laplace, Gumbel, Exponential, Uniform, StudentT
    at any location and scale), which then run on that family's engines.
    Other user families are compiled once per family (cached) and passed to
    ``numeric.family_from_logcdf`` (numeric's constructor for user families, which runs
    its own grid validation).  Raises :class:`CompileError` when a kernel
    cannot be lambdified to numpy/scipy or misses the accuracy check.
    """
    from numeric.families import family_from_logcdf, get_family

    if not fam.custom:
        return get_family(fam.name, **{k: float(v) for k, v in fam.params.items()})
    if fam in _CACHE:
        return _CACHE[fam]
    same = registry_equivalent(fam)
    if same is not None:
        _CACHE[fam] = get_family(same[0], **same[1])
        return _CACHE[fam]
    logcdf, logpdf, e, pdf, (lo, hi) = _kernels(fam)
    kinks = tuple(float(b) for b in fam.breakpoints)
    # numeric's own grid validation (CDF within 1e-6 of 1 at 60 units) would reject heavy tails such as
    # exp(-x^-2); the check above is stronger (every kernel value against mpmath at 40 digits)
    nf = family_from_logcdf(logcdf, logpdf, (float(lo), float(hi)), breakpoints=kinks, name=fam.name,
                            validate=False)
    _CACHE[fam] = nf
    return nf
