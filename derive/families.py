"""Noise families, defined once symbolically.

A :class:`Family` holds the CDF ``Phi`` and density ``phi`` of one iid noise
distribution as sympy expressions, its support and its parameters.  The
registry (:data:`FAMILY_NAMES`: gumbel, gumbel_min, normal, logistic, laplace,
exponential, uniform, cauchy, student_t) is defined here; every family
takes ``scale > 0`` and ``student_t`` also takes ``nu > 0``::

    >>> from derive import family
    >>> family("logistic").cdf(0)
    1/2
    >>> family("normal", scale=2).support
    Reals

A user brings their own noise with :func:`family_from_cdf`, which checks that
the expression really is a CDF (limits 0 and 1 at the ends of the support,
non-negative derivative where sympy can decide it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

# Names accepted by :func:`family`, in the registry's order: one
# list for both sides (numeric.families holds it; derive may import numeric).
from numeric.families import FAMILY_NAMES, NumericFamily

__all__ = [
    "Family",
    "FAMILY_NAMES",
    "family",
    "family_from_cdf",
]

_x = sp.Symbol("x", real=True)


@dataclass(frozen=True)
class Family:
    """One noise distribution: CDF, density and support as sympy objects.

    ``cdf(x)`` and ``pdf(x)`` accept any sympy expression (or number) and
    return sympy expressions; the standard form (scale 1) is ``cdf(x*scale)``.

    Attributes
    ----------
    name : str
        Registry name (or the user's name for a custom family).
    params : dict
        Parameter values as sympy numbers/symbols, e.g. ``{"scale": 1}``.
    support : sympy.Interval
        Where the density is positive.
    breakpoints : tuple
        Finite points where the density is not analytic (support ends and
        kinks, e.g. 0 for laplace); empty for analytic families.
    """

    name: str
    params: dict
    support: sp.Interval
    _cdf_expr: sp.Expr = field(repr=False)
    _pdf_expr: sp.Expr = field(repr=False)
    breakpoints: tuple = ()
    custom: bool = False

    @property
    def symbol(self) -> sp.Symbol:
        """The variable in which the stored expressions are written."""
        return _x

    def cdf(self, x: sp.Expr | float) -> sp.Expr:
        """The CDF ``Phi(x)`` (a sympy expression)."""
        return self._cdf_expr.subs(_x, sp.sympify(x))

    def pdf(self, x: sp.Expr | float) -> sp.Expr:
        """The density ``phi(x) = Phi'(x)`` (a sympy expression)."""
        return self._pdf_expr.subs(_x, sp.sympify(x))

    @property
    def scale(self):
        return self.params.get("scale", sp.Integer(1))

    @property
    def is_analytic(self) -> bool:
        """True when the density is analytic on the whole real line."""
        return not self.breakpoints and self.support == sp.Reals

    def with_params(self, **params: object) -> "Family":
        """The same family with other parameter values (registry families)."""
        if self.custom:
            raise ValueError("with_params: custom families have fixed parameters")
        merged = dict(self.params)
        merged.update(params)
        return family(self.name, **merged)

    def to_numeric(self) -> NumericFamily:
        """This family as a ``numeric`` family: ``numeric.probs(mu, family=fam)`` calls this.

        Registry families map to numeric's kernels; user families are
        compiled to numpy/scipy and verified (:func:`derive.compile.to_numeric`).
        """
        from .compile import to_numeric

        return to_numeric(self)

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.params.items(), key=str)), self._cdf_expr))


# ---------------------------------------------------------------------------
# registry: standard forms (scale 1), written in the variable _x
# ---------------------------------------------------------------------------


def _student_t_expressions(nu):
    # pdf: Gamma((nu+1)/2) / (sqrt(nu*pi) Gamma(nu/2)) (1 + x^2/nu)^(-(nu+1)/2)
    # cdf: 1/2 + x Gamma((nu+1)/2) 2F1(1/2,(nu+1)/2;3/2;-x^2/nu) / (sqrt(pi nu) Gamma(nu/2))
    c = sp.gamma((nu + 1) / 2) / (sp.sqrt(nu * sp.pi) * sp.gamma(nu / 2))
    pdf = c * (1 + _x**2 / nu) ** (-(nu + 1) / 2)
    cdf = sp.Rational(1, 2) + _x * c * sp.hyper(
        (sp.Rational(1, 2), (nu + 1) / 2), (sp.Rational(3, 2),), -(_x**2) / nu
    )
    return cdf, pdf


def _standard(name: str, nu=None):
    """(cdf, pdf, support, breakpoints) of the scale-1 family."""
    x = _x
    if name == "gumbel":
        cdf = sp.exp(-sp.exp(-x))
        return cdf, sp.exp(-x - sp.exp(-x)), sp.Reals, ()
    if name == "gumbel_min":
        cdf = 1 - sp.exp(-sp.exp(x))
        return cdf, sp.exp(x - sp.exp(x)), sp.Reals, ()
    if name == "normal":
        cdf = (1 + sp.erf(x / sp.sqrt(2))) / 2
        return cdf, sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi), sp.Reals, ()
    if name == "logistic":
        cdf = 1 / (1 + sp.exp(-x))
        return cdf, sp.exp(-x) / (1 + sp.exp(-x)) ** 2, sp.Reals, ()
    if name == "laplace":
        cdf = sp.Piecewise((sp.exp(x) / 2, x < 0), (1 - sp.exp(-x) / 2, True))
        return cdf, sp.exp(-sp.Abs(x)) / 2, sp.Reals, (sp.Integer(0),)
    if name == "exponential":
        cdf = sp.Piecewise((0, x < 0), (1 - sp.exp(-x), True))
        pdf = sp.Piecewise((0, x < 0), (sp.exp(-x), True))
        return cdf, pdf, sp.Interval(0, sp.oo), (sp.Integer(0),)
    if name == "uniform":
        cdf = sp.Piecewise((0, x < 0), (x, x <= 1), (1, True))
        pdf = sp.Piecewise((0, x < 0), (1, x <= 1), (0, True))
        return cdf, pdf, sp.Interval(0, 1), (sp.Integer(0), sp.Integer(1))
    if name == "cauchy":
        return sp.Rational(1, 2) + sp.atan(x) / sp.pi, 1 / (sp.pi * (1 + x**2)), sp.Reals, ()
    if name == "student_t":
        cdf, pdf = _student_t_expressions(nu)
        return cdf, pdf, sp.Reals, ()
    raise AssertionError(name)


_PARAMS = {name: ("scale",) for name in FAMILY_NAMES}
_PARAMS["student_t"] = ("scale", "nu")


def _positive_param(name: str, value, family_name: str):
    """Sympify ``value`` and check it is a positive real (or a positive symbol)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive real number, got a bool ({value!r})")
    if isinstance(value, complex):
        raise ValueError(f"{name} must be real and > 0 (family {family_name!r}), got {value!r}")
    try:
        v = sp.sympify(value)
    except (sp.SympifyError, TypeError) as exc:
        raise TypeError(f"{name} must be a positive real number, got {value!r}") from exc
    if isinstance(value, float) and value != value:  # NaN
        raise ValueError(f"{name} must be > 0 (family {family_name!r}), got nan")
    if v is sp.nan or v.has(sp.nan) or v.has(sp.zoo):
        raise ValueError(f"{name} must be > 0 (family {family_name!r}), got {value!r}")
    if v.is_real is False or (v.is_number and not v.is_extended_real):
        raise ValueError(f"{name} must be real and > 0 (family {family_name!r}), got {value!r}")
    if v.is_positive is False:
        raise ValueError(f"{name} must be > 0 (family {family_name!r}), got {value!r}")
    if v.is_infinite:
        raise ValueError(f"{name} must be finite and > 0 (family {family_name!r}), got {value!r}")
    if v.is_number and not v.is_positive:
        raise ValueError(f"{name} must be > 0 (family {family_name!r}), got {value!r}")
    if isinstance(value, float):
        v = sp.Float(value, 30) if value != int(value) else sp.Integer(int(value))
    return v


def family(name: str | Family, **params: object) -> Family:
    """Look up a registry noise family and bind its parameters.

    ``family(name, scale=s)`` has CDF ``Phi(x / s)``; ``student_t`` also
    takes ``nu`` (degrees of freedom, default 1).  A :class:`Family` passed
    as ``name`` is returned as it is (parameters, if given, rebind it).

    >>> family("gumbel").cdf(0)
    exp(-1)
    >>> family("student_t", nu=3).params["nu"]
    3
    """
    if isinstance(name, Family):
        return name.with_params(**params) if params else name
    if not isinstance(name, str):
        raise TypeError(f"family must be a registry name (str) or a Family, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in FAMILY_NAMES:
        raise ValueError(f"unknown family {name!r}; valid names: {', '.join(FAMILY_NAMES)}")
    allowed = _PARAMS[key]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"family {key!r} takes parameters {', '.join(allowed)}; got unexpected {', '.join(unknown)}"
        )
    bound = {"scale": _positive_param("scale", params.get("scale", 1), key)}
    nu = None
    if key == "student_t":
        nu = _positive_param("nu", params.get("nu", 1), key)
        bound["nu"] = nu
    cdf0, pdf0, support0, kinks0 = _standard(key, nu)
    s = bound["scale"]
    cdf = cdf0.subs(_x, _x / s)
    pdf = pdf0.subs(_x, _x / s) / s
    support = sp.Interval(support0.start * s, support0.end * s) if support0 != sp.Reals else sp.Reals
    kinks = tuple(k * s for k in kinks0)
    return Family(key, bound, support, cdf, pdf, kinks)


# ---------------------------------------------------------------------------
# user families
# ---------------------------------------------------------------------------


def _numeric_approach(e, x, point, side: str):
    """Values of ``e`` at 60 digits at points approaching ``point`` from ``side``.

    Infinite ends: ``x = +-10^k``, k = 3, 6, 12, 24, 48; finite ends:
    ``point +- 10^-k (1 + |point|)``.  mpmath keeps exponents unbounded, so
    ``exp(-1e96)`` is a tiny positive number, not an underflow.  Returns
    the list of real values (None for a point where ``e`` is not a finite
    real number).
    """
    import mpmath

    from .derivation import _safe_exp

    # exp of arguments beyond 2^14 clamped (0 or a huge number): a double
    # exponential like exp(-exp(-x)) at x = -1e6 would otherwise exhaust memory
    f = sp.lambdify(x, e, [{"exp": _safe_exp}, "mpmath"])
    out = []
    with mpmath.workdps(60):
        for k in (3, 6, 12, 24, 48):
            if point.is_infinite:
                t = mpmath.mpf(10) ** k * (1 if point == sp.oo else -1)
            else:
                c = mpmath.mpf(sp.N(point, 70)._mpf_) if not point.is_Integer else mpmath.mpf(int(point))
                t = c + (1 if side == "+" else -1) * mpmath.mpf(10) ** (-k) * (1 + abs(c))
            try:
                v = mpmath.mpmathify(f(t))
            except (ZeroDivisionError, ValueError, OverflowError, TypeError, MemoryError):
                out.append(None)
                continue
            if isinstance(v, mpmath.mpc):
                v = v.real if abs(v.imag) <= mpmath.mpf(10) ** -40 * max(1, abs(v)) else None
            out.append(v if v is not None and mpmath.isfinite(v) else None)
    return out


def _symbolic_limits(e, x, point, side):
    """sympy's limit of ``e`` and of ``e`` with erf written through erfc (candidates, may be None)."""
    forms = [e]
    if e.has(sp.erf):
        forms.append(e.rewrite(sp.erfc))
    for g in forms:
        try:
            v = sp.limit(g, x, point, side)
        except (NotImplementedError, ValueError, TypeError, RecursionError):  # pragma: no cover - sympy gaps
            v = None
        if v is not None:
            v = sp.simplify(v)
        yield v


def _end_value(e, x, point, side: str, end: str, target: int):
    """Check that the CDF ``e`` tends to ``target`` at the support end ``point`` (a limit from ``side``).

    sympy's limit is not trusted alone: it fails on some forms
    (``(1 + erf((x - 3/10)/(2 sqrt 2)))/2`` at ``-oo`` comes back as 1) and
    returns nan where the expression is undefined at a finite end
    (``exp(-x**-2)`` at 0).  Each candidate (``limit`` of ``e``, of ``e``
    rewritten with erfc) is accepted only when ``e`` evaluated at 60 digits
    on points approaching the end agrees with it (last point within 1e-6, or
    the distance to it shrinking strictly at every point and at least halved,
    for slowly converging forms such as ``t**(1/100)`` at 0); when no candidate agrees, the numeric
    values decide: the CDF is accepted if they reach ``target`` within
    1e-20 (and approach it monotonically), which for an expression of
    elementary and special functions evaluated at ``10^48`` is a limit to
    that accuracy.  Otherwise ``ValueError`` says what the limit is.
    """
    import mpmath

    vals = _numeric_approach(e, x, point, side)
    good = [v for v in vals if v is not None]
    where = f"the {end} end of the support ({point})"
    dist = [abs(v - target) for v in good]
    for cand in _symbolic_limits(e, x, point, side):
        if cand is None or not cand.is_number or cand.has(sp.nan, sp.zoo) or not cand.is_finite:
            continue
        c = complex(cand.evalf(30))
        if abs(c.imag) > 1e-25:
            continue
        if good and abs(good[-1] - mpmath.mpf(c.real)) > 1e-6:
            # far from sympy's value at 10^-48 from the end: trusted only when the
            # values approach it strictly (t^(1/100) at 0 is still 0.33 there)
            dc = [abs(v - mpmath.mpf(c.real)) for v in good]
            if not (len(dc) >= 3 and all(a > b for a, b in zip(dc, dc[1:])) and dc[-1] < dc[0] / 2):
                continue  # sympy's limit contradicts the values near the end: not trusted
        if abs(c.real - target) > 1e-25:
            raise ValueError(f"not a CDF: expr must tend to {target} at {where}, but the limit is {cand}")
        return
    if len(good) >= 3 and dist[-1] < mpmath.mpf(10) ** -20 and all(a >= b for a, b in zip(dist, dist[1:])):
        return
    if good:
        raise ValueError(f"not a CDF: expr must tend to {target} at {where}; sympy finds no limit and its "
                         f"values there approach {mpmath.nstr(good[-1], 8)}")
    raise ValueError(f"not a CDF: expr has no finite real value near {where}")


def _inner_kinks(expr, x, lo, hi) -> set:
    """Points strictly inside the support where a Piecewise / Abs / Min / Max of ``expr`` switches.

    Only conditions linear in ``x`` give points (a kink of a CDF built from
    pieces, e.g. the mode of a triangular CDF); the oracle and the routes
    split their integrals there.
    """
    from .routes.piecewise import breakpoints

    try:
        pts = breakpoints(expr.rewrite(sp.Piecewise), x)
    except (ValueError, TypeError):
        return set()
    return {p for p in pts if bool(p > lo) and bool(p < hi)}


def family_from_cdf(expr: sp.Expr | str, x: sp.Symbol, support: sp.Interval | tuple | None = None, *,
                    name: str = "custom", breakpoints: tuple | list = ()) -> Family:
    """Build a :class:`Family` from a user's CDF expression.

    ``expr`` is a sympy expression in the symbol ``x`` that is a CDF on
    ``support`` (a sympy Interval, default the real line).  It is checked:
    ``expr -> 0`` at the left end and ``-> 1`` at the right end of the
    support (limits, also at finite ends: ``exp(-x**-2)`` on ``(0, oo)`` is
    undefined at 0 but tends to 0; sympy's limit is cross-checked against
    60-digit values near the end), and ``d expr/dx >= 0`` (symbolically
    where sympy can decide, otherwise at 64 points spread over the
    support).  A failed check raises ``ValueError`` saying which condition
    failed.  Kinks of a piecewise CDF inside the support (Piecewise, Min,
    Max, Abs with linear conditions) are added to ``breakpoints``.

    >>> import sympy as sp
    >>> t = sp.Symbol("t", real=True)
    >>> f = family_from_cdf(1 - sp.exp(-t**2), t, sp.Interval(0, sp.oo), name="rayleigh")
    >>> f.pdf(1)
    2*exp(-1)
    """
    if not isinstance(x, sp.Symbol):
        raise TypeError(f"x must be a sympy Symbol, got {type(x).__name__}")
    try:
        expr = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as exc:
        raise TypeError(f"expr must be a sympy expression in {x}, got {expr!r}") from exc
    if not isinstance(expr, sp.Expr):
        raise TypeError(f"expr must be a sympy expression in {x}, got {type(expr).__name__}")
    extra = expr.free_symbols - {x}
    if extra:
        raise ValueError(f"expr must depend only on {x}; it also contains {sorted(map(str, extra))}")
    if support is None:
        support = sp.Reals
    if not isinstance(support, sp.Interval) or support.measure == 0:
        raise ValueError(f"support must be a sympy Interval of positive length, got {support!r}")
    lo, hi = support.start, support.end
    e = expr.subs(x, _x)
    xr = _x

    # limits at both ends, finite ends included (the expression may be undefined there: exp(-x**-2) at 0)
    _end_value(e, xr, lo, "+", "left", 0)
    _end_value(e, xr, hi, "-", "right", 1)

    pdf = sp.diff(e, xr)
    decided = None
    try:
        pos = sp.ask(sp.Q.nonnegative(pdf), sp.Q.real(xr))
        decided = pos
    except Exception:  # pragma: no cover - ask is best effort
        decided = None
    if decided is False:
        raise ValueError("not a CDF: its derivative is negative somewhere on the support")
    if decided is None:
        rng = random.Random(12345)
        a = float(lo) if lo.is_finite else None
        b = float(hi) if hi.is_finite else None
        pts = []
        for k in range(64):
            if a is not None and b is not None:
                pts.append(a + (b - a) * (k + 0.5) / 64)
            elif a is not None:
                pts.append(a + 10 ** rng.uniform(-3, 2))
            elif b is not None:
                pts.append(b - 10 ** rng.uniform(-3, 2))
            else:
                pts.append(rng.choice((-1, 1)) * 10 ** rng.uniform(-3, 2))
        f = sp.lambdify(xr, pdf, "mpmath")
        for p in pts:
            try:
                val = f(p)
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            val = complex(val)
            if abs(val.imag) > 1e-12 * max(1.0, abs(val.real)):
                raise ValueError(f"not a CDF: its derivative is not real at x = {p:g}")
            if val.real < -1e-12:
                raise ValueError(f"not a CDF: its derivative is negative at x = {p:g} (value {val.real:.3g})")
    if support != sp.Reals:
        # the ends themselves take the limit values 0 and 1 (expr may be undefined there: exp(-x**-2) at 0)
        cdf = sp.Piecewise((0, xr <= lo), (e, xr < hi), (1, True)) if hi.is_finite else sp.Piecewise((0, xr <= lo), (e, True))
        pdf = sp.Piecewise((0, xr <= lo), (pdf, xr < hi), (0, True)) if hi.is_finite else sp.Piecewise((0, xr <= lo), (pdf, True))
    else:
        cdf = e
    ends = tuple(v for v in (lo, hi) if v.is_finite)
    kinks = tuple(sorted(set(ends) | {sp.sympify(b) for b in breakpoints} | _inner_kinks(e, xr, lo, hi), key=float))
    return Family(str(name), {}, support, cdf, pdf, kinks, custom=True)
