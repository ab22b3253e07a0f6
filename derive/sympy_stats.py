"""Noise families from sympy.stats distributions.

``family_from_sympy_stats(X)`` takes a continuous univariate sympy.stats
random variable (``Weibull("X", 1, 2)``) or its distribution
(``X.pspace.distribution``) with numeric parameters and returns a
:class:`~derive.families.Family` built by :func:`derive.family_from_cdf`
from ``sympy.stats``' CDF on the distribution's support (so it is checked
like any user CDF).  Where sympy.stats writes the CDF with incomplete
gamma / beta functions (Erlang, Beta with integer parameters),
``expand_func`` or an integration of the density gives the elementary form,
kept only when it agrees with the original at 30 digits.

>>> from sympy.stats import Weibull
>>> f = family_from_sympy_stats(Weibull("X", 1, 2))
>>> f.name, f.cdf(1)
('Weibull(1, 2)', 1 - exp(-1))
"""

from __future__ import annotations

import sympy as sp

from .families import Family, _x, family_from_cdf

__all__ = ["family_from_sympy_stats"]

#: seconds the integration of a density into an elementary CDF may take (then the special-function CDF is kept)
INTEGRATE_SECONDS = 30

_SPECIAL = (sp.lowergamma, sp.uppergamma, sp.betainc, sp.betainc_regularized, sp.Integral, sp.hyper, sp.meijerg)


def _distribution(X):
    from sympy.stats.crv import SingleContinuousDistribution
    from sympy.stats.rv import RandomSymbol

    if isinstance(X, SingleContinuousDistribution):
        return X
    if isinstance(X, RandomSymbol):
        dist = getattr(X.pspace, "distribution", None)
        if isinstance(dist, SingleContinuousDistribution):
            return dist
        from sympy.stats.drv import SingleDiscreteDistribution
        from sympy.stats.frv import SingleFiniteDistribution

        kind = type(dist).__name__ if dist is not None else type(X.pspace).__name__
        if isinstance(dist, (SingleDiscreteDistribution, SingleFiniteDistribution)):
            raise ValueError(f"X must be a continuous distribution; {X} is discrete ({kind}): "
                             "an argmax of discrete noise has ties with positive probability")
        raise ValueError(f"X must be a univariate continuous random variable; {X} has {kind} "
                         "(multivariate / joint distributions are not iid noise)")
    if isinstance(X, sp.Basic) and X.atoms(RandomSymbol):
        raise ValueError(f"X must be a random variable itself, not an expression of one ({X}); "
                         "write the transformed noise's CDF and use derive.family_from_cdf")
    raise TypeError(f"X must be a sympy.stats continuous random variable or distribution, got {type(X).__name__}")


def _elementary(cdf, pdf, lo, x):
    """An elementary form of ``cdf`` (incomplete gamma/beta expanded), checked numerically; else ``cdf``."""
    if not cdf.has(*_SPECIAL):
        return cdf
    from .routes._common import TimeLimit, time_limit

    candidates = [sp.expand_func(cdf)]
    if lo.is_finite:
        t = sp.Dummy("t", real=True)
        try:
            # bounded: sympy's integrate may not terminate on a density without an elementary CDF
            with time_limit(INTEGRATE_SECONDS, "sympy's integral of the density"):
                candidates.append(sp.integrate(pdf.subs(x, t), (t, lo, x), conds="none"))
        except (NotImplementedError, ValueError, TypeError, TimeLimit):  # pragma: no cover - sympy gaps
            pass
    for c in candidates:
        if c.has(*_SPECIAL):
            continue
        pts = [lo + sp.Rational(k, 7) if lo.is_finite else sp.Rational(k - 3, 2) for k in range(1, 6)]
        if all(_close(c.subs(x, p), cdf.subs(x, p)) for p in pts):
            return sp.piecewise_fold(c)
    return cdf


def _tight_support(cdf, support, x):
    """``support`` narrowed to where ``cdf`` is strictly between 0 and 1.

    sympy.stats gives some distributions a wider set than their density's
    (Kumaraswamy: ``[0, oo)``, while its CDF is the Piecewise ``1 - (1 - x^a)^b`` up
    to 1 and 1 beyond).  A CDF is monotone, so a kink ``b`` of the Piecewise with
    ``F(b) = 1`` exactly ends the support there (and ``F(b) = 0`` starts it)."""
    from .routes.piecewise import breakpoints

    try:
        kinks = breakpoints(cdf, x)
    except ValueError:
        return support
    lo, hi = support.start, support.end
    for b in kinks:
        if bool(lo < b) and bool(b < hi):
            value = sp.simplify(cdf.subs(x, b))
            if value == 1:
                hi = b
            elif value == 0:
                lo = b
    return sp.Interval(lo, hi)


def _close(a, b):
    diff = sp.N(a - b, 30)
    return diff.is_number and not diff.has(sp.nan, sp.zoo) and bool(abs(diff) < 1e-25)


def family_from_sympy_stats(X: sp.Basic, *, name: str | None = None) -> Family:
    """A noise :class:`~derive.families.Family` from a sympy.stats continuous random variable.

    ``X``: a ``sympy.stats`` random variable (``Gumbel("X", 2, 0)``) or a
    ``SingleContinuousDistribution``; every parameter must be a number.
    ``name`` defaults to ``"<Distribution>(<params>)"``.  Raises
    ``ValueError`` for discrete, multivariate or symbolic-parameter input
    and when sympy.stats has no closed CDF.

    >>> from sympy.stats import Exponential
    >>> family_from_sympy_stats(Exponential("X", 3)).support
    Interval(0, oo)
    """
    dist = _distribution(X)
    free = set().union(*(sp.sympify(a).free_symbols for a in dist.args)) if dist.args else set()
    if free:
        raise ValueError(f"X's parameters must be numbers; {type(dist).__name__} has symbols "
                         f"{sorted(map(str, free))} (substitute values first)")
    label = type(dist).__name__.replace("Distribution", "")
    label = name or f"{label}({', '.join(str(a) for a in dist.args)})"
    support = dist.set
    if not isinstance(support, sp.Interval):
        if support == sp.Reals:
            support = sp.Interval(-sp.oo, sp.oo)
        else:
            raise ValueError(f"X's support must be an interval, got {support}")
    x = _x
    try:
        cdf = dist.cdf(x)
    except (NotImplementedError, ValueError, TypeError) as exc:
        raise ValueError(f"sympy.stats has no CDF for {label}: {exc}") from exc
    pdf = dist.pdf(x)
    cdf = _elementary(sp.sympify(cdf), sp.sympify(pdf), support.start, x)
    support = _tight_support(cdf, support, x)
    if cdf.has(sp.Integral):
        raise ValueError(f"sympy.stats leaves the CDF of {label} as an unevaluated integral")
    return family_from_cdf(cdf, x, support, name=label)
