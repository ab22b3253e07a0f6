"""Helpers shared by the route modules: the CDF on its support, numeric quantiles."""

from __future__ import annotations

import mpmath
import sympy as sp

#: working precision (digits) of the numeric structure tests of the routes
DPS = 50


def cdf_on_support(fam):
    """``(expr, lo, hi)``: the CDF in ``fam.symbol`` with its support-clamping Piecewise removed.

    Registry and user CDFs outside their support are the constants 0 / 1;
    inside they are ``expr`` (which may itself be a Piecewise with kinks).
    The branch active at an interior point is taken: the support clamp has
    conditions only at the support ends.
    """
    x = fam.symbol
    e = fam.cdf(x)
    lo, hi = fam.support.start, fam.support.end
    if isinstance(e, sp.Piecewise) and (lo.is_finite or hi.is_finite):
        mid = (lo + hi) / 2 if lo.is_finite and hi.is_finite else (lo + 1 if lo.is_finite else hi - 1)
        for val, cond in e.args:
            c = cond if cond in (sp.true, sp.false, True, False) else cond.subs(x, mid)
            if bool(c):
                e = val
                break
    return e, lo, hi


def custom_match(route, fam, detect, registry_reason):
    """``detect(fam)`` for a user family; a ``NotApplicable`` of ``route`` for a registry family
    (``registry_reason``) or when ``detect`` returns its reason (a string) instead of a match."""
    from . import NotApplicable

    if not fam.custom:
        return NotApplicable(route, registry_reason)
    m = detect(fam)
    return NotApplicable(route, m) if isinstance(m, str) else m


def mp_function(expr, x):
    """An mpmath callable of ``expr`` (a function of ``x``)."""
    return sp.lambdify(x, expr, "mpmath")


def quantile_points(fam, qs=(0.1, 0.25, 0.5, 0.75, 0.9)):
    """mpf points ``x_q`` with ``F(x_q) = q`` (bisection at :data:`DPS` digits).

    The bracket starts at the support ends (or +-1 doubled outwards until
    it holds the quantile), so any scale and location is found.
    """
    e, lo, hi = cdf_on_support(fam)
    f = mp_function(e, fam.symbol)
    out = []
    with mpmath.workdps(DPS):
        for q in qs:
            q = mpmath.mpf(q)
            a = to_mpf(lo) if lo.is_finite else None
            b = to_mpf(hi) if hi.is_finite else None
            step = mpmath.mpf(1)
            if a is None:
                a = (b if b is not None else mpmath.mpf(0)) - step
                while _real(f(a)) > q:
                    step *= 2
                    a -= step
                    if step > 2**200:
                        raise ArithmeticError("no left bracket for a quantile")
            step = mpmath.mpf(1)
            if b is None:
                b = a + step
                while _real(f(b)) < q:
                    step *= 2
                    b += step
                    if step > 2**200:
                        raise ArithmeticError("no right bracket for a quantile")
            for _ in range(4 * DPS):
                m = (a + b) / 2
                if _real(f(m)) < q:
                    a = m
                else:
                    b = m
            out.append((a + b) / 2)
    return out


def to_mpf(value):
    """A finite sympy number as an mpf at the current precision."""
    return mpmath.mpf(sp.Float(sp.N(value, DPS + 5), DPS + 5)._mpf_)


def _real(v):
    v = mpmath.mpmathify(v)
    return v.real if isinstance(v, mpmath.mpc) else v
