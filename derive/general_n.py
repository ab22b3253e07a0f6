"""Symbolic-n derivations beyond Gumbel: inclusion-exclusion as a sum over subsets.

For noises whose CDF factors become exponentials after a substitution, the product
``prod_{j != i} (1 - x_j)`` expands over the subsets ``S`` of ``[n] minus {i}``
(``sum_S (-1)^|S| prod_{j in S} x_j``) and every term integrates in closed form:

* gumbel_min: ``u = e^eps`` turns (the integral for p_i) into
  ``Integral_0^oo e^{-u} prod_{j != i} (1 - exp(-u e^{mu_i - mu_j})) du`` and
  ``p_i = sum_S (-1)^|S| / (1 + sum_{j in S} e^{mu_i - mu_j})``;
* exponential: ``x = mu_i + eps``; the integrand vanishes below ``M = max_j mu_j`` and
  ``p_i = sum_S (-1)^|S| e^{mu_i + sum_{j in S} mu_j - (|S| + 1) M} / (|S| + 1)``.

Every step is checked like the Gumbel derivation: the steps sympy cannot decide for
symbolic ``n`` are compared at 30 digits at random points with ``n`` and ``i`` replaced by
small integers (the subset sums written out, the integrals done by quadrature); the
recorded check names the number of points.

>>> from derive import derive
>>> derive("gumbel_min", "general").status
'closed'
"""

from __future__ import annotations

import sympy as sp

from .derivation import Card, InSum, MaxOver, SubsetSum, product_except

__all__ = ["continue_general"]

_U = sp.Symbol("u", positive=True)
_X = sp.Symbol("x", real=True)
_S = sp.Symbol("S")


def _gumbel_min(d, sm):
    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    c = sp.exp(mu[i] - mu[j])
    d.step(sp.Integral(sp.exp(-_U) * product_except(1 - sp.exp(-_U * c), j, i, n), (_U, 0, sp.oo)),
           "substitute $u=e^{\\varepsilon}$: $\\Phi(\\mu_i-\\mu_j+\\varepsilon)=1-\\exp(-u\\,e^{\\mu_i-\\mu_j})$",
           checks=("numeric",), substitution=(eps, _U, sp.exp(eps)))
    body = (-1) ** Card(_S) * sp.exp(-_U * (1 + InSum(c, j, _S)))
    d.step(sp.Integral(SubsetSum(body, _S, i, n), (_U, 0, sp.oo)),
           "expand the product over the subsets $S$ of $[n]\\setminus\\{i\\}$ (inclusion-exclusion)",
           checks=("numeric",))
    d.step(SubsetSum((-1) ** Card(_S) / (1 + InSum(c, j, _S)), _S, i, n),
           "integrate each exponential: $\\int_0^\\infty e^{-u a}du=1/a$, $a=1+\\sum_{j\\in S}e^{\\mu_i-\\mu_j}\\geq1$",
           checks=("numeric",))
    d.status = "closed"
    d.reason = ("for every n: $p_i=\\sum_{S\\subseteq[n]\\setminus\\{i\\}}(-1)^{|S|}/(1+\\sum_{j\\in S}e^{\\mu_i-\\mu_j})$ "
                "($2^{n-1}$ terms), derived above for symbolic n.")
    return True


def _exponential(d, sm, fam):
    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    M = sp.Symbol("M", real=True)
    d.definitions[M] = MaxOver(mu[j], j, n)
    # sympy folds a Piecewise CDF out of a symbolic-n Product (its conditions then hold the
    # product's index j, which is wrong): write the CDF and density without Piecewise, and
    # confirm they are the family's at 30 digits before using them
    y = sp.Symbol("y", real=True)
    cdf = sp.Lambda(y, (1 - sp.exp(-y)) * (1 + sp.sign(y)) / 2)
    pdf = sp.Lambda(y, sp.exp(-y) * (1 + sp.sign(y)) / 2)
    for v in (sp.Rational(-7, 3), sp.Rational(1, 5), sp.Rational(13, 4)):
        for mine, theirs in ((cdf(v), fam.cdf(v)), (pdf(v), fam.pdf(v))):
            if abs(sp.N(mine - theirs, 40)) > sp.Float(10) ** -30:
                return False
    d.steps[1:] = []
    d.step(sp.Integral(pdf(eps) * product_except(cdf(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
           "exponential noise: $\\Phi(x)=1-e^{-x}$, $\\phi(x)=e^{-x}$ for $x>0$, both 0 below (written with $\\operatorname{sign}$)",
           subs=lambda e: e.replace(sm.Phi, cdf).replace(sm.phi, pdf), checks=("identical", "simplify"))
    d.step(sp.Integral(pdf(_X - mu[i]) * product_except(cdf(_X - mu[j]), j, i, n), (_X, -sp.oo, sp.oo)),
           "substitute $x=\\mu_i+\\varepsilon$", checks=("numeric",), substitution=(eps, _X, eps + mu[i]))
    d.step(sp.Integral(sp.exp(-(_X - mu[i])) * product_except(1 - sp.exp(-(_X - mu[j])), j, i, n), (_X, M, sp.oo)),
           "the density and every CDF factor vanish below $M=\\max_j\\mu_j$; above it they are "
           "$e^{-(x-\\mu_i)}$ and $1-e^{-(x-\\mu_j)}$", checks=("numeric",))
    body = (-1) ** Card(_S) * sp.exp(mu[i] + InSum(mu[j], j, _S) - (Card(_S) + 1) * _X)
    d.step(sp.Integral(SubsetSum(body, _S, i, n), (_X, M, sp.oo)),
           "expand the product over the subsets $S$ of $[n]\\setminus\\{i\\}$", checks=("numeric",))
    d.step(SubsetSum((-1) ** Card(_S) * sp.exp(mu[i] + InSum(mu[j], j, _S) - (Card(_S) + 1) * M) / (Card(_S) + 1),
                     _S, i, n),
           "integrate each exponential from $M$ to $\\infty$", checks=("numeric",))
    d.status = "closed"
    d.reason = ("for every n: $p_i=\\sum_{S}(-1)^{|S|}e^{\\mu_i+\\sum_{j\\in S}\\mu_j-(|S|+1)M}/(|S|+1)$ with "
                "$M=\\max_j\\mu_j$ ($2^{n-1}$ terms), derived above for symbolic n; entries far below the top are "
                "$e^{-(M-\\mu_i)}$-small, never exactly 0.")
    return True


def continue_general(d, fam) -> bool:
    """Append the symbolic-n steps after the family's CDF step of ``d``; False when no such route exists."""
    from . import softmax as sm

    if fam.custom:
        return False
    if fam.name == "gumbel_min":
        return _gumbel_min(d, sm)
    if fam.name == "exponential":
        return _exponential(d, sm, fam)
    return False
