"""Route (a): location-scale reduction ``F(x) = G(a x + b)`` to a registry family G.

If ``F(x) = G(a x + b)`` with ``a > 0``, then ``phi_F(x) = a g(a x + b)``
and the substitution ``t = a eps + b`` turns (eq:pi) for F at ``mu`` into
(eq:pi) for G at ``a mu``::

    p_i(mu; F) = Int a g(a eps + b) prod_j G(a(mu_i - mu_j + eps) + b) d eps
               = Int g(t) prod_j G(t + a mu_i - a mu_j) dt = p_i(a mu; G).

The location ``b`` drops out (the map ignores a common shift).  G is found
by testing that ``G^{-1}(F(x))`` is affine: it is evaluated at 50 digits at
five quantiles of F, the slopes between them must agree to 1e-35, and the
slope ``a`` must have an exact form (``nsimplify`` with pi, e; checked to
1e-40).  The identity ``F(x) = G(a x + b)`` itself is then a derivation step,
verified at 30 digits at random points like every other step.  At symbolic n the last step
is G's symbolic-n result at the scores ``a mu`` (:func:`reduce_general`).  At concrete n a
piecewise exponential-polynomial F is left to the piecewise route (one max/min formula for
every ordering, where the registry's uniform and Laplace write a Piecewise over the n!
orderings).

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> match(derive.family_from_cdf(1 - sp.exp(-3 * x), x, sp.Interval(0, sp.oo)))[:2]
('exponential', 3)
"""

from __future__ import annotations

import mpmath
import sympy as sp

from . import NotApplicable
from ._common import DPS, cdf_on_support, custom_match, mp_function, quantile_points

NAME = "location_scale"


def _mp(name):
    """mpmath quantile of the standard registry family ``name``."""
    log = mpmath.log
    return {
        "gumbel": lambda p: -log(-log(p)),
        "gumbel_min": lambda p: log(-mpmath.log1p(-p)),
        "logistic": lambda p: log(p) - mpmath.log1p(-p),
        "normal": lambda p: mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1),
        "laplace": lambda p: log(2 * p) if p < 0.5 else -log(2 * (1 - p)),
        "exponential": lambda p: -mpmath.log1p(-p),
        "uniform": lambda p: p,
        "cauchy": lambda p: mpmath.tan(mpmath.pi * (p - mpmath.mpf(1) / 2)),
    }[name]


def _sym(name, p):
    """Symbolic quantile of the standard registry family ``name`` at ``p`` (a sympy number)."""
    if name == "laplace":
        return sp.log(2 * p) if bool(p < sp.Rational(1, 2)) else -sp.log(2 * (1 - p))
    return {
        "gumbel": lambda: -sp.log(-sp.log(p)),
        "gumbel_min": lambda: sp.log(-sp.log(1 - p)),
        "logistic": lambda: sp.log(p / (1 - p)),
        "normal": lambda: sp.sqrt(2) * sp.erfinv(2 * p - 1),
        "exponential": lambda: -sp.log(1 - p),
        "uniform": lambda: p,
        "cauchy": lambda: sp.tan(sp.pi * (p - sp.Rational(1, 2))),
    }[name]()


#: targets in the order they are tested (support type must match F's)
TARGETS = ("gumbel", "logistic", "gumbel_min", "normal", "laplace", "cauchy", "exponential", "uniform")


def _exact(value, tol_digits=40):
    """An exact sympy number equal to the mpf ``value`` to ``tol_digits`` digits, or None."""
    f = sp.Float(value, DPS)
    for consts in ([], [sp.pi], [sp.E], [sp.sqrt(2), sp.sqrt(3)], [sp.log(2), sp.log(3)]):
        try:
            v = sp.nsimplify(f, consts, tolerance=sp.Float(10) ** -(tol_digits + 2), rational=False)
        except (ValueError, TypeError, NotImplementedError):
            continue
        if v.is_number and abs(sp.N(v - f, DPS)) < sp.Float(10) ** -tol_digits * max(1, abs(f)):
            return v
    return None


def match(fam, targets=TARGETS):
    """``(G, a, b)`` with ``F(x) = G(a x + b)`` for the first matching registry ``G``, else a reason string."""
    from ..families import family

    e, lo, hi = cdf_on_support(fam)
    x = fam.symbol
    try:
        xs = quantile_points(fam)
    except (ArithmeticError, ValueError, TypeError, ZeroDivisionError) as exc:
        return f"could not locate the quantiles of F ({exc})"
    f = mp_function(e, x)
    tried = []
    for name in targets:
        g_sup = family(name).support
        if g_sup.start.is_finite != lo.is_finite or g_sup.end.is_finite != hi.is_finite:
            continue
        q = _mp(name)
        with mpmath.workdps(DPS):
            try:
                h = [q(mpmath.mpf(f(t))) for t in xs]
            except (ValueError, ZeroDivisionError, TypeError):
                continue
            slopes = [(h[k + 1] - h[k]) / (xs[k + 1] - xs[k]) for k in range(len(xs) - 1)]
            a_num = slopes[0]
            if a_num <= 0 or any(abs(s - a_num) > mpmath.mpf(10) ** -35 * abs(a_num) for s in slopes):
                tried.append(name)
                continue
            a = _exact(a_num)
            if a is None:
                tried.append(f"{name} (slope {mpmath.nstr(a_num, 15)} has no exact form)")
                continue
            b_num = h[2] - a_num * xs[2]
            x0 = sp.Integer(0) if bool(lo < 0) and bool(hi > 0) else ((lo + hi) / 2 if hi.is_finite else lo + 1)
            b = None
            try:
                cand = sp.simplify(_sym(name, e.subs(x, x0)) - a * x0)
                if cand.is_number and abs(sp.N(cand, DPS) - sp.Float(b_num, DPS)) < 1e-40 * max(1, abs(b_num)):
                    b = cand
            except (TypeError, ValueError, NotImplementedError):
                b = None
            if b is None:
                b = _exact(b_num) if abs(b_num) > 1e-45 else sp.Integer(0)
            if b is None:
                b = sp.Float(b_num, 45)
            for end, g_end in ((lo, g_sup.start), (hi, g_sup.end)):
                if end.is_finite and abs(sp.N(a * end + b - g_end, DPS)) > 1e-40:
                    break
            else:
                return name, a, b
            tried.append(f"{name} (support ends do not map)")
    return ("$G^{-1}(F(x))$ is not affine in x for any registry family G"
            + (f" (tried {', '.join(tried)})" if tried else ""))


def reduce_derivation(fam, n, name, a, b, why):
    """The derivation ``p(mu; F) = p(a mu; G)`` for concrete n (G = registry family ``name``)."""
    from .. import closed
    from ..families import family

    G = family(name)
    syms = closed.mu_symbols(n)
    eps, t = closed._EPS, closed._T
    # random check points with a*mu in [-3, 3]: the 30-digit quadrature of (eq:pi) for G stays well resolved
    d = closed._new(fam, syms, sampler=closed._concrete_sampler(syms, spread=float(min(3, 3 / a))))
    d.symbols = syms
    g_int = sp.Mul(*[G.cdf(a * (syms[0] - m + eps) + b) for m in syms[1:]])
    d.step(sp.Integral(a * G.pdf(a * eps + b) * g_int, (eps, -sp.oo, sp.oo)),
           f"{why}: $F(x)=G({sp.latex(a * sp.Symbol('x') + b)})$ with $G$ the standard {name} CDF, so "
           f"$\\phi_F(x)={sp.latex(a)}\\,g({sp.latex(a * sp.Symbol('x') + b)})$", checks=("numeric",))
    d.step(sp.Integral(G.pdf(t) * sp.Mul(*[G.cdf(t + a * syms[0] - a * m) for m in syms[1:]]), (t, -sp.oo, sp.oo)),
           f"substitute $t={sp.latex(a * eps + b)}$: (eq:pi) for {name} noise at the scores "
           f"${sp.latex(a)}\\mu$ (the location drops out)", checks=("numeric",),
           substitution=(eps, t, a * eps + b))
    base = closed.derive(name, n)
    scaled = {m: a * m for m in syms}
    d.extra.update(reduced_to=name, a=a, b=b, base=base)
    if base.closed_form is None:
        d.status = "none"
        d.reason = (f"location-scale of the {name} family ($p(\\mu;F)=p({sp.latex(a)}\\mu;\\,${name}$)$), which has "
                    f"no closed form at n = {n}: {base.reason}")
        return d
    form = [e.xreplace(scaled) for e in base.closed_form]
    d.step(form[0], f"the {name} derivation (derive('{name}', {n})) at the scores ${sp.latex(a)}\\mu$",
           checks=("numeric",))
    d.closed_form = form
    d.status = base.status
    d.assumptions = base.assumptions
    d.reason = (f"location-scale of the {name} family: $p(\\mu;F)=p({sp.latex(a)}\\mu;\\,\\mathrm{{{name}}})$; "
                + base.reason)
    return d


def at_scaled_scores(expr, mu, a):
    """``expr`` (written with the scores ``mu[k]``) at the scores ``a mu``: every ``mu[k]`` -> ``a mu[k]``
    (the uniform's breakpoints ``b_q`` carry the factor as their fourth argument).

    >>> from derive import softmax as sm
    >>> at_scaled_scores(sm.mu[sm.i] - sm.mu[1], sm.mu, 3)
    -3*mu[1] + 3*mu[i]
    """
    from ..general_n import Breakpoint

    e = expr.replace(lambda t: isinstance(t, sp.Indexed) and t.base == mu, lambda t: a * t)
    return e.replace(lambda t: isinstance(t, Breakpoint),
                     lambda t: Breakpoint(*t.args[:3], a * (t.args[3] if len(t.args) > 3 else 1)))


def reduce_general(fam, name, a, b, why):
    """Symbolic n: ``p(mu; F) = p(a mu; G)``, G's symbolic-n derivation carried over as one step.

    The chain: (eq:pi) with abstract ``Phi``, ``phi``; F written as ``G(a x + b)`` (G's CDF
    and density without Piecewise, :func:`derive.general_n.free_forms`, confirmed against
    F at 30 digits); the substitution ``t = a eps + b``; then G's symbolic-n result at the
    scores ``a mu`` (:func:`derive.derive` ``(G, "general")``, every step of it verified),
    checked against the previous line at random n, i and scores.
    """
    from .. import closed
    from .. import softmax as sm
    from ..derivation import Derivation, product_except
    from ..families import family
    from ..general_n import _confirmed, free_forms

    G = family(name)
    n, i, j, mu, eps, t = sm.n, sm.i, sm.j, sm.mu, sm.eps, sm.t
    base = closed.derive(name, "general")
    start = sp.Integral(sm.phi(eps) * product_except(sm.Phi(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo))

    def sampler(rng):
        # G's points (sorted scores where G's result needs them) at mu = nu / a: a mu lies where G was checked
        env = (base.sampler or sm._sampler)(rng)
        return {k: (v / a if isinstance(k, sp.Indexed) and k.base == mu else v) for k, v in env.items()}

    d = Derivation(sm.p_i, start, f"(eq:pi) for symbolic n with {fam.name} noise", title=f"{fam.name}, symbolic n",
                   sampler=sampler, points=3)
    d.symbols = (mu,)
    d.closed_form = None
    d.extra.update(reduced_to=name, a=a, b=b, base=base)
    forms = free_forms(G)
    y = sp.Symbol("y", real=True)
    ax_b = sp.latex(a * sp.Symbol("x") + b)
    if forms is not None:
        cdf_g, pdf_g = forms
        cdf_f, pdf_f = sp.Lambda(y, cdf_g(a * y + b)), sp.Lambda(y, a * pdf_g(a * y + b))
        if _confirmed(fam, cdf_f, pdf_f):
            d.step(sp.Integral(pdf_f(eps) * product_except(cdf_f(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
                   f"{why}: $F(x)=G({ax_b})$ with $G$ the standard {name} CDF, $\\phi_F(x)={sp.latex(a)}\\,g({ax_b})$",
                   subs=lambda e: e.replace(sm.Phi, cdf_f).replace(sm.phi, pdf_f), checks=("identical", "simplify"))
            d.step(sp.Integral(pdf_g(t) * product_except(cdf_g(t + a * mu[i] - a * mu[j]), j, i, n),
                               (t, -sp.oo, sp.oo)),
                   f"substitute $t={sp.latex(a * eps + b)}$: (eq:pi) for {name} noise at the scores "
                   f"${sp.latex(a)}\\mu$ (the location drops out)", checks=("numeric",),
                   substitution=(eps, t, a * eps + b))
    if base.status == "none" or len(d.steps) < 3 or base.result.has(sp.Integral):
        d.status = "none"
        d.reason = (f"location-scale of the {name} family ($p(\\mu;F)=p({sp.latex(a)}\\mu;\\,\\mathrm{{{name}}})$): "
                    + (base.reason if base.status == "none" else
                       f"{name} has a symbolic-n result but its CDF could not be written without Piecewise."))
        return d
    d.definitions.update({k: at_scaled_scores(v, mu, a) for k, v in base.definitions.items()})
    d.step(at_scaled_scores(base.result, mu, a),
           f"the symbolic-n {name} derivation (derive('{name}', 'general'), {len(base.steps) - 1} verified steps) "
           f"at the scores ${sp.latex(a)}\\mu$", checks=("numeric",))
    d.status = base.status
    d.assumptions = base.assumptions
    d.reason = (f"location-scale of the {name} family: $p(\\mu;F)=p({sp.latex(a)}\\mu;\\,\\mathrm{{{name}}})$ for "
                f"every n, by {name}'s symbolic-n derivation, whose result reads, with $\\mu$ standing for the "
                f"scores ${sp.latex(a)}\\mu$: " + base.reason)
    return d


def reduce_to(fam, n, name, a, b, why):
    """``p(mu; F) = p(a mu; G)`` at ``n`` (an int, or ``"general"`` for symbolic n)."""
    if n == "general":
        return reduce_general(fam, name, a, b, why)
    return reduce_derivation(fam, n, name, a, b, why)


def attempt(fam, n):
    # a registry family is its own target: its hand route (derive.closed) is the reduction
    m = custom_match(NAME, fam, match, "registry family (the reduction is the identity)")
    if isinstance(m, NotApplicable):
        return m
    name, a, b = m
    if n != "general":
        from .piecewise import decompose

        if not isinstance(decompose(fam), str):
            # the registry's hand routes for uniform / Laplace write a Piecewise over the n! orderings
            # (minutes at n = 5); the piecewise route writes one max/min formula for all of them
            return NotApplicable(NAME, f"$F(x)=G({sp.latex(a * sp.Symbol('x') + b)})$ ({name}), but F is piecewise "
                                 "exponential-polynomial: the piecewise route derives it at concrete n directly "
                                 "(one max/min formula for every ordering); the reduction serves symbolic n")
    return reduce_to(fam, n, name, a, b, "location-scale")
