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


def _sorted_sampler(sm, gap=0.8):
    """Random n in 2..5, i in 1..n, mu_1 >= mu_2 >= ... (exact rationals, gaps up to ``gap``)."""
    def sample(rng):
        N = rng.randint(2, 5)
        env = {sm.n: N, sm.i: rng.randint(1, N)}
        v = sp.Rational(rng.randint(-1000, 1000), 1000)
        for k in range(1, N + 1):
            env[sm.mu[k]] = v
            v -= sp.Rational(rng.randint(1, int(1000 * gap)), 1000)
        return env

    return sample


def _uniform(d, sm, fam):
    """Uniform noise on [0, 1], mu_1 >= ... >= mu_n: p_i as a sum of integrals of polynomials.

    For x in [mu_1, mu_i + 1] (the only place where the density of eps_i = x - mu_i and every
    CDF factor are positive) the factors are ``x - mu_j`` for the higher classes j < i and
    ``min(x - mu_j, 1)`` for the lower ones; the lower factors saturate at ``x = mu_k + 1``,
    so splitting at the breakpoints ``b_k = max(mu_1, min(mu_i + 1, mu_k + 1))`` leaves, on
    ``[b_{k+1}, b_k]``, the polynomial ``prod_{j <= k, j != i} (x - mu_j)``.
    """
    from .derivation import Derivation

    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    k = sp.Symbol("k", integer=True, positive=True)
    y = sp.Symbol("y", real=True)
    # without Piecewise (sympy would fold it out of the symbolic-n Product); confirmed below
    cdf = sp.Lambda(y, sp.Min(1, sp.Max(0, y)))
    pdf = sp.Lambda(y, (sp.sign(y) - sp.sign(y - 1)) / 2)
    for v in (sp.Rational(-7, 3), sp.Rational(1, 5), sp.Rational(13, 4)):
        for mine, theirs in ((cdf(v), fam.cdf(v)), (pdf(v), fam.pdf(v))):
            if abs(sp.N(mine - theirs, 40)) > sp.Float(10) ** -30:
                return False
    start = d.steps[0]
    new = Derivation(start.expr.lhs, start.rhs, start.reason + " with $\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$",
                     title=d.title, sampler=_sorted_sampler(sm), points=3)
    new.step(sp.Integral(pdf(eps) * product_except(cdf(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
             "uniform noise: $\\Phi(x)=\\min(1,\\max(0,x))$, $\\phi(x)=1$ on $(0,1)$, 0 outside",
             subs=lambda e: e.replace(sm.Phi, cdf).replace(sm.phi, pdf), checks=("identical", "simplify"))
    new.step(sp.Integral(pdf(_X - mu[i]) * product_except(cdf(_X - mu[j]), j, i, n), (_X, -sp.oo, sp.oo)),
             "substitute $x=\\mu_i+\\varepsilon$", checks=("numeric",), substitution=(eps, _X, eps + mu[i]))
    top = sp.Max(mu[1], mu[i] + 1)
    body = sp.Product(_X - mu[j], (j, 1, i - 1)) * sp.Product(sp.Min(_X - mu[j], 1), (j, i + 1, n))
    new.step(sp.Integral(body, (_X, mu[1], top)),
             "the integrand is positive only on $[\\mu_1,\\mu_i+1]$; there $\\Phi(x-\\mu_j)=x-\\mu_j$ for $j<i$ "
             "and $\\min(x-\\mu_j,1)$ for $j>i$", checks=("numeric",))
    b = lambda q: sp.Max(mu[1], sp.Min(mu[i] + 1, mu[q] + 1))
    poly = product_except(_X - mu[j], j, i, k)
    split = (sp.Sum(sp.Integral(poly, (_X, b(k + 1), b(k))), (k, i, n - 1))
             + sp.Integral(product_except(_X - mu[j], j, i, n), (_X, mu[1], b(n))))
    new.step(split, "split at the breakpoints $b_k=\\max(\\mu_1,\\min(\\mu_i+1,\\mu_k+1))$ where the $k$-th "
             "CDF reaches 1: on $[b_{k+1},b_k]$ the integrand is the polynomial $\\prod_{j\\leq k,\\,j\\neq i}(x-\\mu_j)$",
             checks=("numeric",))
    d.steps[:] = new.steps
    d.sampler = new.sampler
    d.status = "closed"
    d.assumptions = "$\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$ (other orderings by relabelling)"
    d.reason = ("for every n, sorted $\\mu$: $p_i$ is a sum over $k\\geq i$ of integrals of the polynomials "
                "$\\prod_{j\\leq k,\\,j\\neq i}(x-\\mu_j)$ between consecutive clamped breakpoints (derived above for "
                "symbolic n); classes more than 1 behind the top get exactly 0.")
    return True


def _laplace(d, sm, fam):
    """Laplace noise, mu_1 >= ... >= mu_n: split the line at every mu_j.

    On the segment ``(mu_{k+1}, mu_k)`` (``mu_0 = oo``, ``mu_{n+1} = -oo``) every factor is one
    exponential branch: ``Phi(x - mu_j) = e^{x - mu_j}/2`` for ``j <= k`` (x below mu_j) and
    ``1 - e^{-(x - mu_j)}/2`` for ``j > k``; the density is ``e^{-|x - mu_i|}/2``.
    """
    from .derivation import Derivation, ProductExcept

    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    k = sp.Symbol("k", integer=True, positive=True)
    y = sp.Symbol("y", real=True)
    cdf = sp.Lambda(y, sp.Rational(1, 2) + sp.sign(y) * (1 - sp.exp(-sp.Abs(y))) / 2)
    pdf = sp.Lambda(y, sp.exp(-sp.Abs(y)) / 2)
    for v in (sp.Rational(-7, 3), sp.Rational(1, 5), sp.Rational(13, 4)):
        for mine, theirs in ((cdf(v), fam.cdf(v)), (pdf(v), fam.pdf(v))):
            if abs(sp.N(mine - theirs, 40)) > sp.Float(10) ** -30:
                return False
    start = d.steps[0]
    new = Derivation(start.expr.lhs, start.rhs, start.reason + " with $\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$",
                     title=d.title, sampler=_sorted_sampler(sm, gap=1.5), points=3)
    new.step(sp.Integral(pdf(eps) * product_except(cdf(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
             "Laplace noise: $\\Phi(x)=\\tfrac12+\\tfrac12\\operatorname{sign}(x)(1-e^{-|x|})$, $\\phi(x)=e^{-|x|}/2$",
             subs=lambda e: e.replace(sm.Phi, cdf).replace(sm.phi, pdf), checks=("identical", "simplify"))
    new.step(sp.Integral(pdf(_X - mu[i]) * product_except(cdf(_X - mu[j]), j, i, n), (_X, -sp.oo, sp.oo)),
             "substitute $x=\\mu_i+\\varepsilon$", checks=("numeric",), substitution=(eps, _X, eps + mu[i]))

    def seg(kk, lo, hi):
        # the empty products (above the top score, below the lowest) are left out
        below = 1 if kk == 0 else product_except(sp.exp(_X - mu[j]) / 2, j, i, kk)
        above = 1 if kk == n else ProductExcept((1 - sp.exp(mu[j] - _X) / 2) ** (1 - sp.KroneckerDelta(i, j)),
                                                (j, kk + 1, n))
        return sp.Integral(sp.exp(-sp.Abs(_X - mu[i])) / 2 * below * above, (_X, lo, hi))

    split = (seg(0, mu[1], sp.oo) + sp.Sum(seg(k, mu[k + 1], mu[k]), (k, 1, n - 1)) + seg(n, -sp.oo, mu[n]))
    new.step(split, "split the line at every $\\mu_k$: on $(\\mu_{k+1},\\mu_k)$ the CDF factors are $e^{x-\\mu_j}/2$ "
             "for $j\\leq k$ and $1-e^{-(x-\\mu_j)}/2$ for $j>k$", checks=("numeric",))
    d.steps[:] = new.steps
    d.sampler = new.sampler
    d.status = "closed"
    d.assumptions = "$\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$ (other orderings by relabelling)"
    d.reason = ("for every n, sorted $\\mu$: $p_i$ is a sum over the $n+1$ segments between consecutive scores of "
                "integrals of products of exponentials (derived above for symbolic n); each expands into "
                "exponential-polynomial terms, as the concrete-n derivations show.")
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
    if fam.name == "uniform":
        return _uniform(d, sm, fam)
    if fam.name == "laplace":
        return _laplace(d, sm, fam)
    return False
