"""Symbolic-n derivations beyond Gumbel, each ending in an explicit formula for every n.

* gumbel_min: ``u = e^eps`` turns (the integral for p_i) into
  ``Integral_0^oo e^{-u} prod_{j != i} (1 - exp(-u e^{mu_i - mu_j})) du``; expanding the product
  over the subsets ``S`` of ``[n] minus {i}`` gives
  ``p_i = sum_S (-1)^|S| / (1 + sum_{j in S} e^{mu_i - mu_j})``;
* exponential: ``x = mu_i + eps``; the integrand vanishes below ``M = max_j mu_j`` and
  ``p_i = sum_S (-1)^|S| e^{mu_i + sum_{j in S} mu_j - (|S| + 1) M} / (|S| + 1)``;
* uniform (sorted ``mu``): a double sum of powers of clamped breakpoints weighted by elementary
  symmetric polynomials of the scores (:func:`_uniform`);
* laplace (sorted ``mu``): a two-sided sum of exponentials over the segments between the scores,
  weighted by elementary symmetric polynomials of ``e^{mu_j}`` (:func:`_laplace`);
* logistic (distinct ``mu``): partial fractions in ``u = e^{-eps}``, one residue per score
  (:func:`_logistic`).

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

from .derivation import (Card, ElementarySymmetric, ExpSegment, InSum, MaxOver, ProductExcept, SubsetSum,
                         product_except, sum_except)

__all__ = ["continue_general", "free_forms", "Breakpoint"]

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


def _confirmed(fam, cdf, pdf) -> bool:
    """``cdf`` / ``pdf`` (Lambdas without Piecewise) equal the family's at 30 digits at three points.

    sympy folds a Piecewise CDF out of a symbolic-n Product (its conditions then hold the
    product's index j, which is wrong), so the symbolic-n chains write CDF and density with
    sign / Min / Max / Abs instead and confirm them against the family before using them.
    """
    for v in (sp.Rational(-7, 3), sp.Rational(1, 5), sp.Rational(13, 4)):
        for mine, theirs in ((cdf(v), fam.cdf(v)), (pdf(v), fam.pdf(v))):
            if abs(sp.N(mine - theirs, 40)) > sp.Float(10) ** -30:
                return False
    return True


def free_forms(fam):
    """``(cdf, pdf)`` of the registry family ``fam`` (scale 1) as Lambdas without Piecewise, or None.

    Exponential, uniform and Laplace are written with sign / Min / Max / Abs (a
    Piecewise in a symbolic-n Product is folded wrongly, see :func:`_confirmed`), the
    others as the family writes them; each is confirmed against the family at 30 digits.

    >>> from derive.families import family
    >>> cdf, pdf = free_forms(family("uniform"))
    >>> cdf(sp.Rational(1, 3)), pdf(sp.Rational(1, 3)), cdf(2)
    (1/3, 1, 1)
    """
    y = sp.Symbol("y", real=True)
    forms = {
        "exponential": ((1 - sp.exp(-y)) * (1 + sp.sign(y)) / 2, sp.exp(-y) * (1 + sp.sign(y)) / 2),
        "uniform": (sp.Min(1, sp.Max(0, y)), (sp.sign(y) - sp.sign(y - 1)) / 2),
        "laplace": (sp.Rational(1, 2) + sp.sign(y) * (1 - sp.exp(-sp.Abs(y))) / 2, sp.exp(-sp.Abs(y)) / 2),
    }
    cdf, pdf = forms.get(fam.name, (fam.cdf(y), fam.pdf(y)))
    if cdf.has(sp.Piecewise) or pdf.has(sp.Piecewise):
        return None
    cdf, pdf = sp.Lambda(y, cdf), sp.Lambda(y, pdf)
    return (cdf, pdf) if _confirmed(fam, cdf, pdf) else None


def _x_form(d, sm, cdf, pdf, family_text):
    """Append the family's CDF and density (``family_text``) and the substitution ``x = mu_i + eps``."""
    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    d.step(sp.Integral(pdf(eps) * product_except(cdf(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
           family_text, subs=lambda e: e.replace(sm.Phi, cdf).replace(sm.phi, pdf), checks=("identical", "simplify"))
    d.step(sp.Integral(pdf(_X - mu[i]) * product_except(cdf(_X - mu[j]), j, i, n), (_X, -sp.oo, sp.oo)),
           "substitute $x=\\mu_i+\\varepsilon$", checks=("numeric",), substitution=(eps, _X, eps + mu[i]))


def _sorted_chain(d, sm, gap):
    """A fresh chain from ``d``'s starting line for sorted scores (random sorted points, ties included)."""
    from .derivation import Derivation

    start = d.steps[0]
    return Derivation(start.expr.lhs, start.rhs, start.reason + " with $\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$",
                      title=d.title, sampler=_sorted_sampler(sm, gap), points=3)


def _adopt(d, new, reason):
    """``d`` takes the steps and points of ``new``: closed for sorted scores, with ``reason``."""
    d.steps[:] = new.steps
    d.sampler = new.sampler
    d.status = "closed"
    d.assumptions = "$\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$ (other orderings by relabelling)"
    d.extra["sorted_scores"] = True
    d.reason = reason
    return True


def _exponential(d, sm, fam):
    n, i, j, mu = sm.n, sm.i, sm.j, sm.mu
    M = sp.Symbol("M", real=True)
    forms = free_forms(fam)
    if forms is None:
        return False
    cdf, pdf = forms
    d.definitions[M] = MaxOver(mu[j], j, n)
    d.steps[1:] = []
    _x_form(d, sm, cdf, pdf, "exponential noise: $\\Phi(x)=1-e^{-x}$, $\\phi(x)=e^{-x}$ for $x>0$, both 0 below "
            "(written with $\\operatorname{sign}$)")
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
    """Random n in 2..5, i in 1..n, mu_1 >= mu_2 >= ... (exact rationals, gaps up to ``gap``, ties one time in four)."""
    def sample(rng):
        N = rng.randint(2, 5)
        env = {sm.n: N, sm.i: rng.randint(1, N)}
        v = sp.Rational(rng.randint(-1000, 1000), 1000)
        for k in range(1, N + 1):
            env[sm.mu[k]] = v
            if rng.random() < 0.75:
                v -= sp.Rational(rng.randint(1, int(1000 * gap)), 1000)
        return env

    return sample


class Breakpoint(sp.Function):
    """``b_q`` (``Breakpoint(q, n, i)``): where the uniform CDF factor of the q-th score reaches 1, clamped
    to the range ``[mu_1, mu_i + 1]`` of the integrand, ``max(mu_1, min(mu_i + 1, mu_q + 1))``;
    ``b_{n+1} = mu_1``.  Printed ``b_q``; its value appears once ``q``, ``n`` and ``i`` are integers.
    ``Breakpoint(q, n, i, a)`` is the same at the scores ``a mu`` (a location-scale image of the
    uniform): ``max(a mu_1, min(a mu_i + 1, a mu_q + 1))``."""

    nargs = (3, 4)

    @classmethod
    def eval(cls, q, n, i, a=None):
        if not (q.is_Integer and n.is_Integer and i.is_Integer):
            return None
        from .softmax import SYMBOLS

        s = 1 if a is None else a
        mu = SYMBOLS["mu"]
        return s * mu[1] if q == n + 1 else sp.Max(s * mu[1], sp.Min(s * mu[i] + 1, s * mu[q] + 1))

    def _latex(self, printer, exp=None):
        out = "b_{%s}" % printer._print(self.args[0])
        return out if exp is None else r"%s^{%s}" % (out, exp)


def _uniform(d, sm, fam):
    """Uniform noise on [0, 1], mu_1 >= ... >= mu_n: p_i in elementary symmetric polynomials.

    For x in [mu_1, mu_i + 1] (the only place where the density of eps_i = x - mu_i and every
    CDF factor are positive) the factors are ``x - mu_j`` for the higher classes j < i and
    ``min(x - mu_j, 1)`` for the lower ones; the lower factors saturate at ``x = mu_k + 1``,
    so splitting at the breakpoints ``b_k = max(mu_1, min(mu_i + 1, mu_k + 1))`` (``b_{n+1} =
    mu_1``) leaves, on ``[b_{k+1}, b_k]``, the polynomial ``prod_{j <= k, j != i} (x - mu_j) =
    sum_m (-1)^(k-1-m) e_{k-1-m} x^m`` (``e_r`` the elementary symmetric polynomials of those
    ``k - 1`` scores), integrated term by term::

        p_i = sum_{k=i}^{n} sum_{m=0}^{k-1} (-1)^(k-1-m) e_{k-1-m}(mu_j : j <= k, j != i)
              (b_k^(m+1) - b_{k+1}^(m+1)) / (m + 1).

    A class with ``mu_i <= mu_1 - 1`` has every ``b_k = mu_1``: ``p_i = 0`` exactly.
    """
    n, i, j, mu = sm.n, sm.i, sm.j, sm.mu
    k = sp.Symbol("k", integer=True, positive=True)
    m = sp.Symbol("m", integer=True, nonnegative=True)
    forms = free_forms(fam)
    if forms is None:
        return False
    cdf, pdf = forms
    new = _sorted_chain(d, sm, 0.8)
    _x_form(new, sm, cdf, pdf, "uniform noise: $\\Phi(x)=\\min(1,\\max(0,x))$, $\\phi(x)=1$ on $(0,1)$, 0 outside")
    top = sp.Max(mu[1], mu[i] + 1)
    body = sp.Product(_X - mu[j], (j, 1, i - 1)) * sp.Product(sp.Min(_X - mu[j], 1), (j, i + 1, n))
    new.step(sp.Integral(body, (_X, mu[1], top)),
             "the integrand is positive only on $[\\mu_1,\\mu_i+1]$; there $\\Phi(x-\\mu_j)=x-\\mu_j$ for $j<i$ "
             "and $\\min(x-\\mu_j,1)$ for $j>i$", checks=("numeric",))
    def segments(term):
        # segments k = i..n between b_{k+1} and b_k (b_{n+1} = mu_1)
        return sp.Sum(term(k, Breakpoint(k + 1, n, i), Breakpoint(k, n, i)), (k, i, n))

    new.step(segments(lambda q, lo, hi: sp.Integral(product_except(_X - mu[j], j, i, q), (_X, lo, hi))),
             "split at the breakpoints $b_k=\\max(\\mu_1,\\min(\\mu_i+1,\\mu_k+1))$, $b_{n+1}=\\mu_1$, where the $k$-th "
             "CDF reaches 1: on $[b_{k+1},b_k]$ the integrand is the polynomial $\\prod_{j\\leq k,\\,j\\neq i}(x-\\mu_j)$",
             checks=("numeric",))
    coeff = lambda q: (-1) ** (q - 1 - m) * ElementarySymmetric(q - 1 - m, mu[j], j, 1, q, i)
    new.step(segments(lambda q, lo, hi: sp.Integral(sp.Sum(coeff(q) * _X ** m, (m, 0, q - 1)), (_X, lo, hi))),
             "expand each product of the $k-1$ linear factors: $\\prod_{j\\leq k,\\,j\\neq i}(x-\\mu_j)="
             "\\sum_{m=0}^{k-1}(-1)^{k-1-m}e_{k-1-m}x^m$, $e_r$ the elementary symmetric polynomials of "
             "$\\{\\mu_j: j\\leq k,\\ j\\neq i\\}$", checks=("numeric",))
    new.step(segments(lambda q, lo, hi: sp.Sum(coeff(q) * (hi ** (m + 1) - lo ** (m + 1)) / (m + 1), (m, 0, q - 1))),
             "integrate the powers of $x$", checks=("numeric",))
    return _adopt(d, new, (
        "for every n, sorted $\\mu$: $p_i=\\sum_{k=i}^{n}\\sum_{m=0}^{k-1}(-1)^{k-1-m}e_{k-1-m}(\\mu_j: j\\leq k,"
        "\\,j\\neq i)\\,(b_k^{m+1}-b_{k+1}^{m+1})/(m+1)$ with the breakpoints "
        "$b_k=\\max(\\mu_1,\\min(\\mu_i+1,\\mu_k+1))$, $b_{n+1}=\\mu_1$ (derived above for symbolic n; ties "
        "allowed); classes more than 1 behind the top get exactly 0."))


def _laplace(d, sm, fam):
    """Laplace noise, mu_1 >= ... >= mu_n: a two-sided exponential sum.

    On the segment ``(mu_{k+1}, mu_k)`` (``mu_0 = oo``, ``mu_{n+1} = -oo``) every factor is one
    exponential branch: ``Phi(x - mu_j) = e^{x - mu_j}/2`` for ``j <= k`` (x below mu_j) and
    ``1 - e^{-(x - mu_j)}/2`` for ``j > k``; the density is ``e^{-|x - mu_i|}/2``.  The product
    of the upper factors expands with the elementary symmetric polynomials ``e_r`` of
    ``{e^{mu_j}: j > k, j != i}``: ``prod (1 - e^{mu_j - x}/2) = sum_r (-1/2)^r e_r e^{-r x}``,
    so each segment is a sum of ``e^{lam x}`` integrated by ``E_lam(a, b) = (e^{lam b} -
    e^{lam a})/lam`` (``b - a`` at ``lam = 0``).  With ``s_k = sum_{j <= k} mu_j``::

        p_i = sum_{k=0}^{i-1} 2^(-1-k) e^(mu_i - s_k) sum_{r=0}^{n-k-1} (-1/2)^r e_r E_{k-1-r}(mu_{k+1}, mu_k)
            + sum_{k=i}^{n}   2^(-k)   e^(-s_k)       sum_{r=0}^{n-k}   (-1/2)^r e_r E_{k-r}(mu_{k+1}, mu_k)

    (segments above ``mu_i`` first: there the density is ``e^{mu_i - x}/2``).
    """
    n, i, j, mu = sm.n, sm.i, sm.j, sm.mu
    k = sp.Symbol("k", integer=True, nonnegative=True)
    r = sp.Symbol("r", integer=True, nonnegative=True)
    forms = free_forms(fam)
    if forms is None:
        return False
    cdf, pdf = forms
    new = _sorted_chain(d, sm, 1.5)
    _x_form(new, sm, cdf, pdf, "Laplace noise: $\\Phi(x)=\\tfrac12+\\tfrac12\\operatorname{sign}(x)(1-e^{-|x|})$, "
            "$\\phi(x)=e^{-|x|}/2$")

    def seg(kk, lo, hi):
        # the empty products (above the top score, below the lowest) are left out
        below = 1 if kk == 0 else product_except(sp.exp(_X - mu[j]) / 2, j, i, kk)
        above = 1 if kk == n else ProductExcept((1 - sp.exp(mu[j] - _X) / 2) ** (1 - sp.KroneckerDelta(i, j)),
                                                (j, kk + 1, n))
        return sp.Integral(sp.exp(-sp.Abs(_X - mu[i])) / 2 * below * above, (_X, lo, hi))

    new.step(seg(0, mu[1], sp.oo) + sp.Sum(seg(k, mu[k + 1], mu[k]), (k, 1, n - 1)) + seg(n, -sp.oo, mu[n]),
             "split the line at every $\\mu_k$: on $(\\mu_{k+1},\\mu_k)$ the CDF factors are $e^{x-\\mu_j}/2$ "
             "for $j\\leq k$ and $1-e^{-(x-\\mu_j)}/2$ for $j>k$", checks=("numeric",))
    def parts(q, above):
        """(prefactor, (-1/2)^r e_r, exponent of e^x, last r) on segment q (above or below mu_i)."""
        s_q = sp.Sum(mu[j], (j, 1, q)) if q != 0 else 0
        e_r = (-sp.Rational(1, 2)) ** r * ElementarySymmetric(r, sp.exp(mu[j]), j, q + 1, n, i)
        if above:
            return sp.Integer(2) ** (-1 - q) * sp.exp(mu[i] - s_q), e_r, q - 1 - r, n - q - 1
        return sp.Integer(2) ** (-q) * sp.exp(-s_q), e_r, q - r, n - q

    def segments(term):
        # segments above mu_i (k < i: density e^{mu_i - x}/2), then below (k >= i: e^{x - mu_i}/2)
        return (term(parts(0, True), mu[1], sp.oo) + sp.Sum(term(parts(k, True), mu[k + 1], mu[k]), (k, 1, i - 1))
                + sp.Sum(term(parts(k, False), mu[k + 1], mu[k]), (k, i, n - 1))
                + term(parts(n, False), -sp.oo, mu[n]))

    def r_sum(f, last):
        # the lowest segment has one term (r = 0, e_0 = 1): written without the sum
        return f.subs(r, 0) if last == 0 else sp.Sum(f, (r, 0, last))

    new.step(segments(lambda c, lo, hi: sp.Integral(c[0] * r_sum(c[1] * sp.exp(c[2] * _X), c[3]), (_X, lo, hi))),
             "on each segment: $\\prod_{j>k,\\,j\\neq i}(1-e^{\\mu_j-x}/2)=\\sum_r(-\\tfrac12)^r e_r e^{-rx}$, "
             "$e_r$ the elementary symmetric polynomials of $\\{e^{\\mu_j}: j>k,\\ j\\neq i\\}$; the density is "
             "$e^{\\mu_i-x}/2$ above $\\mu_i$ ($k<i$) and $e^{x-\\mu_i}/2$ below", checks=("numeric",))
    new.step(segments(lambda c, lo, hi: c[0] * r_sum(c[1] * ExpSegment(c[2], lo, hi), c[3])),
             "integrate: $\\int_a^b e^{\\lambda x}dx=E_\\lambda(a,b)=(e^{\\lambda b}-e^{\\lambda a})/\\lambda$, "
             "$E_0(a,b)=b-a$ (on the half-lines $-e^{\\lambda\\mu_1}/\\lambda$ and $e^{\\lambda\\mu_n}/\\lambda$)",
             checks=("numeric",))
    return _adopt(d, new, (
        "for every n, sorted $\\mu$ (ties allowed), with $s_k=\\sum_{j\\leq k}\\mu_j$, $e_r$ the elementary symmetric "
        "polynomials of $\\{e^{\\mu_j}: j>k,\\,j\\neq i\\}$ and $E_\\lambda(a,b)=(e^{\\lambda b}-e^{\\lambda a})/\\lambda$ "
        "($b-a$ at $\\lambda=0$): $p_i=\\sum_{k=0}^{i-1}2^{-1-k}e^{\\mu_i-s_k}\\sum_{r=0}^{n-k-1}(-\\tfrac12)^r e_r"
        "E_{k-1-r}(\\mu_{k+1},\\mu_k)+\\sum_{k=i}^{n}2^{-k}e^{-s_k}\\sum_{r=0}^{n-k}(-\\tfrac12)^r e_r"
        "E_{k-r}(\\mu_{k+1},\\mu_k)$, $\\mu_0=\\infty$, $\\mu_{n+1}=-\\infty$ (derived above for symbolic n)."))


def _logistic(d, sm, fam):
    """Logistic noise, distinct scores: partial fractions in ``u = e^{-eps}``.

    With ``c_j = e^{mu_j - mu_i}`` (``c_i = 1``), ``Phi(mu_i - mu_j + eps) = 1/(1 + c_j u)`` and
    ``phi(eps) d eps = -du/(1 + u)^2``, so ``p_i = int_0^oo du / ((1 + u)^2 prod_{j != i} (1 + c_j u))``.
    For distinct ``c_j != 1`` the integrand is ``B/(1 + u)^2 + C/(1 + u) + sum_j A_j/(1 + c_j u)`` with
    ``B = 1/prod_{j != i}(1 - c_j)``, ``C = -B sum_{j != i} c_j/(1 - c_j)`` (the derivative of
    ``(1 + u)^2 f`` at ``u = -1``) and ``A_j = c_j^n / ((c_j - 1)^2 prod_{k != i, j}(c_j - c_k))`` (the
    residue at ``u = -1/c_j``).  Integrated to ``R``, the logarithms ``C log(1 + R) + sum_j (A_j/c_j)
    log(1 + c_j R)`` tend to ``sum_j (A_j/c_j) log c_j``: the integrand is ``O(u^-(n+1))``, so the
    coefficient ``C + sum_j A_j/c_j`` of ``log R`` is 0.  Hence::

        p_i = 1/prod_{j != i}(1 - c_j) + sum_{j != i} c_j^(n-1) (mu_j - mu_i) / ((c_j - 1)^2 prod_{k != i, j}(c_j - c_k)).

    At ties (``c_j = 1`` or ``c_j = c_k``) the terms are 0/0: the value is their limit.
    """
    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    k = sp.Symbol("k", integer=True, positive=True)
    c = sp.IndexedBase("c")
    d.definitions.update({c[j]: sp.exp(mu[j] - mu[i]), c[k]: sp.exp(mu[k] - mu[i])})
    d.step(sp.Integral(sp.exp(-eps) / ((1 + sp.exp(-eps)) ** 2 * product_except(1 + c[j] * sp.exp(-eps), j, i, n)),
                       (eps, -sp.oo, sp.oo)),
           "$\\Phi(\\mu_i-\\mu_j+\\varepsilon)=1/(1+c_j e^{-\\varepsilon})$ with $c_j=e^{\\mu_j-\\mu_i}$",
           checks=("numeric",))
    d.step(sp.Integral(1 / ((1 + _U) ** 2 * product_except(1 + c[j] * _U, j, i, n)), (_U, 0, sp.oo)),
           "substitute $u=e^{-\\varepsilon}$: a rational integrand", checks=("numeric",),
           substitution=(eps, _U, sp.exp(-eps)))
    B = 1 / product_except(1 - c[j], j, i, n)
    C = -B * sum_except(c[j] / (1 - c[j]), j, i, n)
    A = c[j] ** n / ((c[j] - 1) ** 2 * product_except(c[j] - c[k], k, i, n, j))
    d.step(sp.Integral(B / (1 + _U) ** 2 + C / (1 + _U) + sum_except(A / (1 + c[j] * _U), j, i, n), (_U, 0, sp.oo)),
           "partial fractions in $u$ (distinct scores): the double pole at $u=-1$ and a simple pole at each "
           "$u=-1/c_j$ with residue $c_j^n/((c_j-1)^2\\prod_{k\\neq i,j}(c_j-c_k))$", checks=("numeric",))
    d.step(B + sum_except(c[j] ** (n - 1) * sp.log(c[j]) / ((c[j] - 1) ** 2 * product_except(c[j] - c[k], k, i, n, j)),
                          j, i, n),
           "integrate from 0 to $R\\to\\infty$: $\\int_0^\\infty(1+u)^{-2}du=1$, and the logarithms leave "
           "$\\sum_j(A_j/c_j)\\log c_j$ (the coefficient of $\\log R$ is 0: the integrand is $O(u^{-n-1})$)",
           checks=("numeric",))
    d.step(B + sum_except(c[j] ** (n - 1) * (mu[j] - mu[i]) / ((c[j] - 1) ** 2 *
                                                                 product_except(c[j] - c[k], k, i, n, j)), j, i, n),
           "$\\log c_j=\\mu_j-\\mu_i$", checks=("numeric",))
    d.status = "closed"
    d.assumptions = "distinct scores (at ties the terms are 0/0 and $p_i$ is their limit)"
    d.reason = ("for every n with distinct scores: $p_i=1/\\prod_{j\\neq i}(1-c_j)+\\sum_{j\\neq i}c_j^{n-1}"
                "(\\mu_j-\\mu_i)/((c_j-1)^2\\prod_{k\\neq i,j}(c_j-c_k))$ with $c_j=e^{\\mu_j-\\mu_i}$ (derived above "
                "for symbolic n by partial fractions). It needs distinct scores: at a tie the terms are 0/0 and "
                "$p_i$ is their limit.")
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
    if fam.name == "logistic":
        return _logistic(d, sm, fam)
    return False
