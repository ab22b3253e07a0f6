"""Helpers shared by the route modules: the CDF on its support, numeric quantiles,
the integrand classes the routes integrate, and a time limit for sympy calls."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

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
    return on_support(fam, fam.cdf(x)), fam.support.start, fam.support.end


def on_support(fam, e):
    """``e`` (a function of ``fam.symbol``) with the branches of its support clamps active inside the support
    (nested clamps too: a sympy.stats density is clamped by the distribution and again by the family)."""
    x = fam.symbol
    lo, hi = fam.support.start, fam.support.end
    if isinstance(e, sp.Piecewise) and (lo.is_finite or hi.is_finite):
        mid = (lo + hi) / 2 if lo.is_finite and hi.is_finite else (lo + 1 if lo.is_finite else hi - 1)
        for val, cond in e.args:
            c = cond if cond in (sp.true, sp.false, True, False) else cond.subs(x, mid)
            if bool(c):
                return on_support(fam, val)
    return _resolve_kinks_outside(e, x, lo, hi)


def _resolve_kinks_outside(e, x, lo, hi):
    """``e`` with every Min / Max / Heaviside / Abs / sign whose kinks all lie outside ``(lo, hi)``
    replaced by its branch there (decided at one interior point: the branch is constant between kinks).

    sympy.stats writes e.g. the raised-cosine density as ``cos(pi Min(1, x)) Heaviside(1 - x)/2 +
    ...``: on its support (-1, 1) that is ``cos(pi x)/2 + 1/2``.
    """
    from .piecewise import breakpoints

    kinky = (sp.Min, sp.Max, sp.Heaviside, sp.Abs, sp.sign)
    if not e.has(*kinky):
        return e
    mid = (lo + hi) / 2 if lo.is_finite and hi.is_finite else (lo + 1 if lo.is_finite else
                                                                (hi - 1 if hi.is_finite else sp.Integer(0)))
    subs = {}
    for f in e.atoms(*kinky):
        try:
            pts = breakpoints(f, x)
        except ValueError:
            continue
        if any((not lo.is_finite or p > lo) and (not hi.is_finite or p < hi) for p in pts):
            continue
        if isinstance(f, (sp.Min, sp.Max)):
            vals = [a.subs(x, mid) for a in f.args]
            pick = min if isinstance(f, sp.Min) else max
            subs[f] = f.args[vals.index(pick(vals, key=float))]
        elif isinstance(f, sp.Heaviside):
            subs[f] = sp.Integer(1) if f.args[0].subs(x, mid) > 0 else sp.Integer(0)
        else:
            arg = f.args[0]
            sgn = 1 if arg.subs(x, mid) > 0 else -1
            subs[f] = sgn * arg if isinstance(f, sp.Abs) else sp.Integer(sgn)
    return e.xreplace(subs) if subs else e


def integrand_class(h, var):
    """``"rational"``, ``"gaussian"`` or None: the classes of integrands whose integrals the routes evaluate.

    * ``"rational"``: a rational function of ``var`` (coefficients may hold
      other symbols): partial fractions give rational terms, logarithms and
      arctangents;
    * ``"gaussian"``: after writing sin / cos / sinh / cosh as exponentials,
      a finite sum of ``c x^k e^{q(x)}`` with ``q`` a polynomial of degree
      <= 2 in ``var`` (complex coefficients allowed): each term integrates
      to elementary functions (degree <= 1) or to ``erf`` (degree 2).

    Anything else (exponentials of non-polynomials such as ``e^{-1/x}`` or
    ``e^{-e^x}``, square roots, arcsin / arctan / erf of ``var``) is None:
    sympy's integrators have no decision procedure that terminates quickly
    there, so the routes say so instead of calling them.

    >>> x, t = sp.symbols("x t", real=True)
    >>> integrand_class(x * sp.exp(-x**2 - t * x), x), integrand_class(sp.exp(-1 / x), x)
    ('gaussian', None)
    """
    h = sp.sympify(h)
    if not h.has(var):
        return "rational"
    if h.is_rational_function(var):
        return "rational"
    trig = (sp.sin, sp.cos, sp.sinh, sp.cosh, sp.tan, sp.tanh)
    e = sp.expand(sp.powsimp(sp.expand(h.rewrite(sp.exp) if h.has(*trig) else h), combine="exp"))
    for term in sp.Add.make_args(e):
        for fac in sp.Mul.make_args(term):
            if not fac.has(var):
                continue
            if fac == var or (fac.is_Pow and fac.base == var and fac.exp.is_Integer and fac.exp > 0):
                continue
            if isinstance(fac, sp.exp) or (fac.is_Pow and fac.base == sp.E):
                arg = sp.expand(fac.exp if fac.is_Pow else fac.args[0])
                if arg.is_polynomial(var) and sp.degree(arg, var) <= 2:
                    continue
            return None
    return "gaussian"


def termwise_limit(expr, var):
    """``lim_{var -> 0+} expr`` one term at a time.

    After partial fractions every term is ``c g(var)`` with ``c`` free of
    ``var`` and ``g`` one of ``log(1 + a var)``, ``log(a + var)``, an atan or
    ``1 / (a + var)^k``: the value of ``g`` at ``var = 0`` is its limit
    unless it is undefined, and only then is sympy's ``limit`` called, on
    that ``g`` alone.  One ``limit`` of the whole sum makes sympy
    series-expand every term together (minutes for a logistic-type n = 4);
    the coefficients ``c`` are never expanded (their numerators are large
    polynomials in the other symbols).
    """
    out = []
    for term in sp.Add.make_args(expr):
        c, g = term.as_independent(var, as_Add=False)
        for part in sp.Add.make_args(sp.expand(g)):
            v = part.subs(var, 0)
            if v.has(sp.nan, sp.zoo, sp.AccumBounds) or v.is_finite is False:
                v = sp.limit(part, var, 0, "+")
            out.append(c * v)
    return sp.Add(*out)


def limit_at_infinity(F, var):
    """``lim_{var -> +oo} F`` for an antiderivative of a rational function (logarithms, atan, rational terms).

    With ``var = 1/w`` each ``log(p(1/w))`` is ``log(w^d p(1/w)) - d log w``;
    the ``log w`` terms must sum to 0 (else F diverges: ValueError) and the
    rest has a limit term by term (:func:`termwise_limit`).  Each term
    ``c g(var)`` is rewritten in its ``g`` only.
    """
    w = sp.Dummy("w", positive=True)
    rest, logw = [], []
    for term in sp.Add.make_args(F):
        c, g = term.as_independent(var, as_Add=False)
        gw = g.subs(var, 1 / w).replace(lambda e: isinstance(e, sp.log),
                                        lambda e: sp.log(sp.factor_terms(sp.together(e.args[0]))))
        gw = sp.expand(sp.expand_log(gw, force=True))
        k = gw.coeff(sp.log(w))
        logw.append(c * k)
        rest.append(c * (gw - k * sp.log(w)))
    total = sp.Add(*logw)
    if not _rational_zero(total):
        raise ValueError(f"the coefficient of log(1/{var}) is {total}")
    return termwise_limit(sp.Add(*rest), w)


def _rational_zero(c, points=3):
    """Whether ``c``, a rational function of its free symbols, is 0.

    Exact values at random rational points: a nonzero rational function
    vanishes on a set of measure zero, so three exact zeros at independent
    random rationals mean it is 0 (``simplify`` of the same coefficient at
    logistic-type n = 4 takes minutes; a wrong answer would in any case be
    caught by the numeric check of the step that uses the limit).
    """
    import random

    syms = sorted(c.free_symbols, key=str)
    rng = random.Random(len(syms))
    for _ in range(points):
        env = {s: sp.Rational(rng.randint(1, 10**6), rng.randint(1, 10**6)) for s in syms}
        v = c.xreplace(env)
        if not v.is_Rational:  # coefficients with irrational constants: 50 digits decide
            v = 0 if abs(sp.N(v, 50)) < sp.Float(10) ** -40 else v
        if v != 0:
            return False
    return True


class TimeLimit(BaseException):
    """A bounded sympy call ran out of time (a BaseException: sympy's own ``except Exception`` lets it through)."""


@contextlib.contextmanager
def time_limit(seconds, what, exc=None):
    """Raise :class:`TimeLimit` in the block after ``seconds`` (SIGALRM; the main thread only).

    ``exc``: raise this (a BaseException) instead -- a caller that bounds a whole
    computation containing bounded sympy calls needs its own class, so that the
    inner ``except TimeLimit`` of a route does not swallow the outer limit.

    The last resort for sympy calls that can run away on inputs inside a
    route's class (a partial-fraction limit, an erf integral).  An outer
    interval timer (the atlas's per-cell limit) is respected: when it fires
    first it is left alone, otherwise it is re-armed with what is left of
    it.  Off the main thread (no signals there) the block runs unbounded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    if outer and outer <= seconds:
        yield
        return

    def on_alarm(signum, frame):
        raise (exc or TimeLimit)(f"{what} did not finish within {seconds:g} s")

    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3), interval)


def custom_match(route, fam, detect, registry_reason):
    """``detect(fam)`` for a user family; a ``NotApplicable`` of ``route`` for a registry family
    (``registry_reason``) or when ``detect`` returns its reason (a string) instead of a match."""
    from . import NotApplicable

    if not fam.custom:
        return NotApplicable(route, registry_reason)
    m = detect(fam)
    return NotApplicable(route, m) if isinstance(m, str) else m


def concrete_match(route, fam, n, detect, general_reason):
    """``detect(fam)`` for a route that works per concrete n: a ``NotApplicable`` of
    ``route`` for ``n == "general"`` (``general_reason``) or when ``detect`` returns its
    reason (a string) instead of a match."""
    from . import NotApplicable

    if n == "general":
        return NotApplicable(route, general_reason)
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
