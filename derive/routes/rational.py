"""Route (d): CDFs rational after the substitution ``u = e^{-lambda x}`` (logistic type).

If ``F(x) = R(e^{-lambda x})`` with ``R`` a rational function (the rate
``lambda`` is the gcd of the rates of the exponentials in F), then
``F(mu_1 - mu_j + eps) = R(c_j u)`` with ``c_j = e^{lambda (mu_j - mu_1)}``
and ``phi(eps) d eps = R'(u) du``, so (eq:pi) becomes

    p_1 = Int_0^oo -R'(u) prod_{j>1} R(c_j u) du,

a rational integral: partial fractions in u (for distinct ``mu``), termwise
antiderivatives (logarithms and rational terms), evaluated between 0 and
oo (the ``log u`` terms at infinity must cancel, which sympy checks).  At
ties the forms have removable singularities: for n <= 3 the closed form
carries sympy's limits per tie pattern as Piecewise branches ahead of the
general form (``derive.closed._logistic_tie_limits``); beyond that
``Derivation.evaluate`` takes the limit.  The registry logistic (``R(u) =
1/(1 + u)``) goes through this route like user families such as the type-I
generalised logistic ``(1 + e^{-x})^{-k}``.

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> detect(derive.family_from_cdf((1 + sp.exp(-x)) ** -2, x))
(1, (_u + 1)**(-2))
"""

from __future__ import annotations

import math
from functools import reduce

import sympy as sp

from . import NotApplicable
from ._common import TimeLimit, cdf_on_support, concrete_match, limit_at_infinity, termwise_limit, time_limit

NAME = "rational"

_U = sp.Dummy("u", positive=True)


def detect(fam):
    """``(lambda, R(u))`` with ``F(x) = R(e^{-lambda x})``, else a reason string."""
    e, lo, hi = cdf_on_support(fam)
    if lo.is_finite or hi.is_finite:
        return "the support is not the whole line"
    x = fam.symbol
    rates = []
    for a in e.atoms(sp.exp):
        arg = sp.expand(a.args[0])
        if not arg.has(x):
            continue
        if not arg.is_polynomial(x) or sp.degree(arg, x) != 1:
            return "an exponential's argument is not linear in x"
        k = sp.nsimplify(arg.coeff(x, 1))
        if not k.is_Rational:
            return "the rates of the exponentials are not rational multiples of each other"
        rates.append(abs(k))
    if not rates:
        return "no exponential of x in the CDF"
    lam = sp.Rational(reduce(math.gcd, [int(r.p) for r in rates]), reduce(lambda a, b: a * b // math.gcd(a, b),
                                                                         [int(r.q) for r in rates]))
    R = sp.simplify(sp.powsimp(sp.expand_power_exp(e.subs(x, -sp.log(_U) / lam)), combine="all", force=True))
    if R.has(x) or not R.is_rational_function(_U):
        return f"$F$ is not rational in $u=e^{{-{sp.latex(lam)}x}}$"
    return lam, R


def attempt(fam, n):
    from .. import closed

    m = concrete_match(NAME, fam, n, detect, "partial fractions are carried out per concrete n")
    if isinstance(m, NotApplicable):
        return m
    lam, R = m
    syms = closed.mu_symbols(n)
    eps = closed._EPS
    cs = [sp.Symbol(f"c_{k + 1}", positive=True) for k in range(1, n)]
    defs = {c: sp.exp(lam * (mu - syms[0])) for c, mu in zip(cs, syms[1:])}
    d = closed._new(fam, syms, definitions=defs)
    d.symbols = syms
    u = sp.Symbol("u", positive=True)
    Ru = R.subs(_U, u)
    # the rate as a LaTeX factor (none for the standard rate 1)
    lt = "" if lam == 1 else sp.latex(lam)
    cj = f"c_j=e^{{{lt}(\\mu_j-\\mu_1)}}" if lt else "c_j=e^{\\mu_j-\\mu_1}"
    d.step(sp.Integral(fam.pdf(eps) * sp.Mul(*[Ru.subs(u, c * sp.exp(-lam * eps)) for c in cs]), (eps, -sp.oo, sp.oo)),
           f"$F(x)=R(e^{{-{lt}x}})$ with $R(u)={sp.latex(Ru)}$, so "
           f"$\\Phi(\\mu_1-\\mu_j+\\varepsilon)=R(c_j e^{{-{lt}\\varepsilon}})$, "
           f"${cj}$", checks=("numeric",))
    integrand = -sp.diff(Ru, u) * sp.Mul(*[Ru.subs(u, c * u) for c in cs])
    d.step(sp.Integral(integrand, (u, 0, sp.oo)),
           f"substitute $u=e^{{-{lt}\\varepsilon}}$: $\\phi(\\varepsilon)\\,d\\varepsilon=R'(u)\\,du$, "
           "a rational integrand", checks=("numeric",), substitution=(eps, u, sp.exp(-lam * eps)))
    frac = sp.apart(sp.together(integrand), u)
    d.step(sp.Integral(frac, (u, 0, sp.oo)), "partial fractions in $u$ (distinct $\\mu$)", checks=("numeric",))
    F = closed._antiderivative(frac, u)
    try:
        with time_limit(closed.SYMPY_SECONDS, "sympy's limits of the antiderivative"):
            value = limit_at_infinity(F, u) - termwise_limit(F, u)
            # simplify merges the logarithms (and feeds the tie limits); on the form of n >= 4 it runs
            # for minutes (as do cancel / factor of its log coefficients), so the termwise value is kept
            if n <= closed.MAX_TIE_LIMIT_N:
                value = sp.simplify(value)
        # simplify merges logarithms into log(c_2^a c_3^b ...); split again (the c_j are
        # positive, so this is exact), the written-out form has k (mu_j - mu_1) where
        # log(e^(k (mu_j - mu_1)) ...) would stand, and the tie limits need no cancellation
        # inside a logarithm
        value = sp.expand_log(value)
    except ValueError as exc:
        return NotApplicable(NAME, f"the logarithms at $u\\to\\infty$ do not cancel for sympy ({exc})")
    except TimeLimit as exc:
        return NotApplicable(NAME, f"time limit: {exc}")
    if value.has(sp.Limit, sp.nan, sp.zoo) or value.is_finite is False:
        return NotApplicable(NAME, "sympy cannot take the limits of the antiderivative")
    d.step(value, "termwise antiderivatives, evaluated between $u=0$ and $u=\\infty$", checks=("numeric",))
    d.step(value.xreplace(defs), "write out $c_j$", checks=("identical",))
    guarded = closed._logistic_tie_limits(value, cs, defs, syms)
    d.closed_form = closed._by_symmetry(guarded if guarded is not None else d.result, syms)
    d.status = "closed"
    if guarded is not None:
        d.extra["tie_limits"] = True
    d.assumptions = ("distinct $\\mu_j$ in the steps; the closed form holds the limits at ties" if guarded is not None
                     else "distinct $\\mu_j$ (at ties the limit; the forms have removable singularities)")
    d.reason = (f"rational in $u=e^{{-{lt}x}}$: partial fractions give logarithms and rational terms "
                f"in ${cj}$; removable singularities at ties.")
    return d
