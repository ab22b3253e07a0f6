"""Route (f): CDFs exponential-polynomial in ``u = e^{b x}`` (Gompertz type: a Gumbel-min truncated to a half-line).

If, on a support ``[s, oo)`` (or the whole line, ``s = -oo``), ``F(x) = G(e^{b x})``
with ``b > 0`` and ``G(u) = sum_k a_k u^{m_k} e^{lambda_k u}`` (real ``lambda_k <= 0``),
then with ``c_j = e^{-b mu_j}`` a shift becomes a scale, ``e^{b (x - mu_j)} = c_j u``,
the factors vanish below ``u_0 = e^{b (s + max_j mu_j)}`` and ``f(x - mu_1) dx =
c_1 G'(c_1 u) du``, so (eq:pi) in the form ``x = mu_1 + eps`` is

    p_1 = Int_{u_0}^oo c_1 G'(c_1 u) prod_{j>1} G(c_j u) du.

Expanded, the integrand is a sum of ``A u^M e^{Lambda u}`` with ``Lambda = sum_j lambda_{k_j} c_j``;
when every term of ``G'`` has ``lambda < 0`` each ``Lambda`` is negative (the ``c_j`` are positive)
and ``Int_{u_0}^oo u^M e^{Lambda u} du = -e^{Lambda u_0} sum_{r=0}^{M} (-1)^r M!/(M-r)!
u_0^{M-r} / Lambda^{r+1}`` (the antiderivative, differentiated, telescopes to ``u^M e^{Lambda u}``).
Gompertz, ``F = 1 - e^{eta (1 - e^{b x})}`` on ``[0, oo)``, is ``G(u) = 1 - e^{eta} e^{-eta u}``:
``p_1`` is an inclusion-exclusion over the subsets S of the other classes,

    p_1 = sum_S (-e^eta)^|S| e^eta c_1/(c_1 + sum_S c_j) e^{-eta (c_1 + sum_S c_j) u_0}

(for ``s = -oo``, ``u_0 = 0``, this is the Gumbel-min's formula).  Exact for every concrete n
(``k^n`` terms for ``k`` terms of ``G``); no symbolic-n formula.

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> detect(derive.family_from_cdf(1 - sp.exp(sp.Rational(1, 2) - sp.exp(x) / 2), x, sp.Interval(0, sp.oo)))[0]
1
"""

from __future__ import annotations

import itertools
import math
from functools import reduce

import sympy as sp

from . import NotApplicable
from ._common import cdf_on_support, concrete_match
from .piecewise import exppoly_terms

NAME = "double_exponential"

_V = sp.Dummy("v", positive=True)


def detect(fam):
    """``(b, s, G terms, G' terms)`` with ``F(x) = G(e^{b x})`` on ``[s, oo)``, else a reason string."""
    e, lo, hi = cdf_on_support(fam)
    if hi.is_finite:
        return "the support is bounded above"
    x = fam.symbol
    rates = []
    for a in e.atoms(sp.exp):
        for inner in a.args[0].atoms(sp.exp):
            arg = sp.expand(inner.args[0])
            if arg.has(x) and arg.is_polynomial(x) and sp.degree(arg, x) == 1:
                k = sp.nsimplify(arg.coeff(x, 1))
                if k.is_Rational and k > 0:
                    rates.append(k)
    if not rates:
        return "no $e^{-c\\,e^{bx}}$ in the CDF"
    b = sp.Rational(reduce(math.gcd, [int(r.p) for r in rates]),
                    reduce(lambda p, q: p * q // math.gcd(p, q), [int(r.q) for r in rates]))
    G = sp.powsimp(sp.expand(sp.expand_power_exp(e.subs(x, sp.log(_V) / b))), combine="exp")
    terms = None if G.has(x) else exppoly_terms(G, _V)
    if terms is None:
        return f"$F$ is not a finite sum of $u^m e^{{\\lambda u}}$ in $u=e^{{{sp.latex(b)}x}}$"
    dterms = exppoly_terms(sp.diff(G, _V), _V)
    if any(lam > 0 for _, _, lam in terms) or any(lam >= 0 for _, _, lam in dterms):
        return ("in $u=e^{bx}$ the density has a term without decay $e^{\\lambda u}$, $\\lambda<0$ "
                "(the integrals at $u\\to\\infty$ are not all finite termwise)")
    return b, lo, terms, dterms


def _tail_integral(M, Lam, u0):
    """``Int_{u0}^oo u^M e^{Lam u} du`` for ``Lam < 0`` (``u0 = 0`` allowed: ``M!/(-Lam)^(M+1)``)."""
    s = sp.Add(*[(-1) ** r * sp.factorial(M) / sp.factorial(M - r) * u0 ** (M - r) / Lam ** (r + 1)
                 for r in range(M + 1)])
    return -sp.exp(Lam * u0) * s


def attempt(fam, n):
    from .. import closed

    m = concrete_match(NAME, fam, n, detect, "the inclusion-exclusion is carried out per concrete n")
    if isinstance(m, NotApplicable):
        return m
    b, s, terms, dterms = m
    x = closed._X
    syms = closed.mu_symbols(n)
    u = sp.Symbol("u", positive=True)
    y = fam.symbol
    d = closed._new(fam, syms)
    closed._to_x_form(d, syms[0])
    F_on, f_on = cdf_on_support(fam)[0], sp.diff(cdf_on_support(fam)[0], y)
    body = f_on.subs(y, x - syms[0]) * sp.Mul(*[F_on.subs(y, x - mj) for mj in syms[1:]])
    top = sp.Max(*syms)
    if s.is_finite:
        d.step(sp.Integral(body, (x, top + s, sp.oo)),
               f"every factor vanishes below its support, $x<\\mu_j+{sp.latex(s)}$: integrate from "
               f"$\\max_j\\mu_j+{sp.latex(s)}$, where each factor is its expression on the support",
               checks=("pointwise", "numeric"))
    else:
        d.step(sp.Integral(body, (x, -sp.oo, sp.oo)), "each factor is its expression on the whole line",
               checks=("numeric",))
    cs = [sp.exp(-b * mj) for mj in syms]
    G = sp.Add(*[a * _V**k * sp.exp(lam * _V) for a, k, lam in terms])
    g = sp.Add(*[a * _V**k * sp.exp(lam * _V) for a, k, lam in dterms])
    u0 = sp.exp(b * (top + s)) if s.is_finite else sp.Integer(0)
    integrand = cs[0] * g.subs(_V, cs[0] * u) * sp.Mul(*[G.subs(_V, c * u) for c in cs[1:]])
    lt = "" if b == 1 else sp.latex(b)
    d.step(sp.Integral(integrand, (u, u0, sp.oo)),
           f"substitute $u=e^{{{lt}x}}$: $F(x-\\mu_j)=G(c_j u)$ with $c_j=e^{{-{lt}\\mu_j}}$, "
           f"$G(u)={sp.latex(G.subs(_V, u))}$, and $\\phi(x-\\mu_1)\\,dx=c_1G'(c_1u)\\,du$",
           checks=("numeric",), substitution=(x, u, sp.exp(b * x)))
    # expand the product: one term per choice of a term in every factor
    combos = []
    for pick in itertools.product(dterms, *[terms] * (n - 1)):
        coef, M, Lam = cs[0], 0, sp.Integer(0)
        for (a, k, lam), c in zip(pick, cs):
            coef, M, Lam = coef * a * c**k, M + k, Lam + lam * c
        combos.append((coef, M, Lam))
    d.step(sp.Integral(sp.Add(*[cf * u**M * sp.exp(Lam * u) for cf, M, Lam in combos]), (u, u0, sp.oo)),
           "expand the product: a sum of $A\\,u^M e^{\\Lambda u}$, $\\Lambda=\\sum_j\\lambda_j c_j<0$",
           checks=("numeric",))
    value = sp.Add(*[cf * _tail_integral(M, Lam, u0) for cf, M, Lam in combos])
    d.step(value, "integrate each term from $u_0$ to $\\infty$: $\\int_{u_0}^\\infty u^M e^{\\Lambda u}du="
           "-e^{\\Lambda u_0}\\sum_{r\\le M}(-1)^r\\frac{M!}{(M-r)!}u_0^{M-r}\\Lambda^{-r-1}$ ($\\Lambda<0$)",
           checks=("numeric",))
    d.symbols = syms
    d.closed_form = closed._by_symmetry(value, syms)
    d.status = "closed"
    d.extra["terms"] = len(combos)
    d.reason = (f"exponential-polynomial in $u=e^{{{lt}x}}$ (Gompertz type): a shift is a scale $c_j=e^{{-{lt}\\mu_j}}$, "
                f"the integrand a sum of {len(combos)} terms $A u^M e^{{\\Lambda u}}$ from "
                f"$u_0={sp.latex(u0)}$ to $\\infty$; elementary for every concrete n.")
    return d
