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
logarithm expanded.  The kernels are then *verified*: at ~250 points
spread geometrically from the median into both tails (and towards finite
support ends) they must match the CDF and density evaluated by mpmath at 40
digits to ``1e-13 * max(1, |log F|)`` wherever ``F >= 1e-300`` (likewise
``log phi``); otherwise ``ValueError`` names the point and the error, so a
family is never handed to ``numeric`` with kernels that would silently
cost accuracy.

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
from sympy.codegen.rewriting import optimize, optims_c99

__all__ = ["to_numeric", "CompileError"]

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


def _numpy(expr, x):
    expr = optimize(expr, optims_c99)
    try:
        f = sp.lambdify(x, expr, modules=[{"erfc_": special.erfc}, "numpy", "scipy"])
        # functions numpy/scipy lack (hyper, meijerg, ...) are printed by name and fail only when called
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


def _kernels(fam):
    from .routes._common import cdf_on_support

    x = fam.symbol
    e, lo, hi = cdf_on_support(fam)
    e = _clean_pieces(e, x)
    pdf = sp.diff(e, x)
    log_left = _numpy(_log_of(_left_form(e), x, lo), x)
    log_s = _numpy(_log_of(_right_form(e), x, lo), x)
    plain = _numpy(e, x)
    log_pdf = _numpy(_log_of(pdf, x, lo), x)
    lo_f = float(lo) if lo.is_finite else -math.inf
    hi_f = float(hi) if hi.is_finite else math.inf

    # a point inside the support: the sympy forms are evaluated there for t outside (result discarded)
    inner = ((lo_f + hi_f) / 2 if math.isfinite(lo_f + hi_f) else
             (lo_f + 1 if math.isfinite(lo_f) else (hi_f - 1 if math.isfinite(hi_f) else 0.0)))

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
            right = np.log1p(-np.exp(_call(log_s, u)))
            out = np.where(F <= 0.5, left, right)
            # a form undefined at a point (1/a at a = 0, ...) falls back to the other one
            out = np.where(np.isnan(out), np.where(F <= 0.5, right, left), out)
        out = np.where(inside, out, np.where(t >= hi_f, 0.0, -np.inf))
        return out

    def logpdf(t):
        t, inside, u = clamped(t)
        with np.errstate(all="ignore"):
            v = _call(log_pdf, u)
        return np.where(inside, np.where(np.isnan(v), -np.inf, v), -np.inf)

    return logcdf, logpdf, e, pdf, (lo, hi)


def _probe_points(fam, lo, hi):
    """~250 points from the median geometrically into both tails / towards finite ends."""
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
    return np.unique(np.concatenate(pts))


def _verify(fam, logcdf, logpdf, e, pdf, lo, hi):
    from .oracle._mpfamily import _exp_clamped

    x = fam.symbol
    # exp(v) = 0 below v = -2^30: a nested exponential (Gompertz's e^(-e^x) far right) would
    # otherwise make mpmath compute ln 2 to as many bits as v's exponent has
    F = sp.lambdify(x, e, [{"exp": _exp_clamped}, "mpmath"])
    f = sp.lambdify(x, pdf, [{"exp": _exp_clamped}, "mpmath"])
    pts = _probe_points(fam, lo, hi)
    lc, lp = logcdf(pts), logpdf(pts)
    with mpmath.workdps(40):
        for k, t in enumerate(pts):
            if not (lo.is_infinite or t > float(lo)) or not (hi.is_infinite or t < float(hi)):
                continue
            for name, g, got in (("log CDF", F, lc[k]), ("log density", f, lp[k])):
                try:
                    v = mpmath.mpmathify(g(mpmath.mpf(float(t))))
                except (ZeroDivisionError, ValueError, OverflowError):
                    continue
                if isinstance(v, mpmath.mpc):
                    v = v.real
                if not v > mpmath.mpf(10) ** -300:
                    continue
                ref = mpmath.log(v)
                err = abs(mpmath.mpf(got) - ref) if math.isfinite(got) else mpmath.inf
                if err > TOL * max(1, abs(ref)):
                    raise CompileError(
                        f"family {fam.name!r}: the compiled {name} is off by {mpmath.nstr(err, 3)} at x = {t!r} "
                        f"(reference {mpmath.nstr(ref, 17)}); numeric would lose accuracy there")


_CACHE: dict = {}


def to_numeric(fam):
    """The ``numeric`` family of a derive Family (registry kernels, or compiled and verified user kernels).

    Registry families return ``numeric.get_family(name, scale=..., nu=...)``.
    User families are compiled once per family (cached) and passed to
    ``numeric.family_from_logcdf`` (numeric's constructor for user families, which runs
    its own grid validation).  Raises :class:`CompileError` when a kernel
    cannot be lambdified to numpy/scipy or misses the accuracy check.
    """
    from numeric.families import family_from_logcdf, get_family

    if not fam.custom:
        return get_family(fam.name, **{k: float(v) for k, v in fam.params.items()})
    if fam in _CACHE:
        return _CACHE[fam]
    logcdf, logpdf, e, pdf, (lo, hi) = _kernels(fam)
    _verify(fam, logcdf, logpdf, e, pdf, lo, hi)
    kinks = tuple(float(b) for b in fam.breakpoints)
    # numeric's own grid validation (CDF within 1e-6 of 1 at 60 units) would reject heavy tails such as
    # exp(-x^-2); the check above is stronger (every kernel value against mpmath at 40 digits)
    nf = family_from_logcdf(logcdf, logpdf, (float(lo), float(hi)), breakpoints=kinks, name=fam.name,
                            validate=False)
    _CACHE[fam] = nf
    return nf
