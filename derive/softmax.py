"""The article's Gumbel -> softmax derivation, rebuilt and checked by sympy.

For symbolic ``n`` (``mu`` an IndexedBase, sums over ``j``), starting from

    (eq:pi)  p_i = Integral phi(eps) prod_{j != i} Phi(mu_i - mu_j + eps) d eps

with Gumbel noise ``Phi(x) = exp(-exp(-x))``, ``phi = Phi'``, the chain goes
through ``S_i = sum_j exp(mu_j - mu_i)`` and the substitution
``t = -exp(-eps)`` (performed by ``Integral.transform``) to
``p_i = exp(mu_i) / sum_j exp(mu_j)``.  Every step is verified when the
derivation is built (see :mod:`derive.derivation`)::

    >>> d = softmax_derivation()
    >>> d.result
    exp(mu[i])/Sum(exp(mu[j]), (j, 1, n))
"""

from __future__ import annotations

import functools

import sympy as sp

from .derivation import Derivation, product_except, sum_except

__all__ = ["softmax_derivation", "SYMBOLS"]

n = sp.Symbol("n", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
mu = sp.IndexedBase("mu", real=True)
eps = sp.Symbol("varepsilon", real=True)
t = sp.Symbol("t", real=True)
S_i = sp.Symbol("S_i", positive=True)
p_i = sp.Symbol("p_i")
Phi = sp.Function("Phi")
phi = sp.Function("phi")

#: the symbols the derivation is written in
SYMBOLS = {"n": n, "i": i, "j": j, "mu": mu, "eps": eps, "t": t, "S_i": S_i, "p_i": p_i, "Phi": Phi, "phi": phi}


def _sampler(rng):
    """Random n in 2..5, i in 1..n, mu_k exact rationals in [-3, 3]."""
    N = rng.randint(2, 5)
    env = {n: N, i: rng.randint(1, N)}
    for k in range(1, N + 1):
        env[mu[k]] = sp.Rational(rng.randint(-3000, 3000), 1000)
    return env


def _gumbel_cdf_pdf():
    y = sp.Symbol("y", real=True)
    return sp.Lambda(y, sp.exp(-sp.exp(-y))), sp.Lambda(y, sp.exp(-y - sp.exp(-y)))


def softmax_derivation() -> Derivation:
    """Derivation of softmax from (eq:pi) with Gumbel noise, for symbolic n.

    Returns a :class:`~derive.derivation.Derivation` whose ``.result`` is
    ``exp(mu[i]) / Sum(exp(mu[j]), (j, 1, n))`` and whose ``.conditions``
    hold the article's conditions 1-4 checked for that result.  Cached: the
    same object is returned on every call (treat it as read-only).
    """
    from .derivation import verification_level

    return _softmax_cached(verification_level())


@functools.lru_cache(maxsize=None)
def _softmax_cached(level: str) -> Derivation:
    from .conditions import check_conditions_symbolic_n
    from .families import family

    start = sp.Integral(phi(eps) * product_except(Phi(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo))
    d = Derivation(
        p_i,
        start,
        "the probability that class $i$ wins: fix $\\varepsilon_i=\\varepsilon$; each $\\varepsilon_j$, $j\\neq i$, independently stays below "
        "$\\mu_i-\\mu_j+\\varepsilon$",
        title="Gumbel noise gives softmax",
        definitions={S_i: sp.Sum(sp.exp(mu[j] - mu[i]), (j, 1, n))},
        sampler=_sampler,
    )
    cdf, pdf = _gumbel_cdf_pdf()

    # (2) put in the Gumbel CDF and density
    gumbel = sp.Integral(sp.exp(-eps - sp.exp(-eps)) * product_except(sp.exp(-sp.exp(-(mu[i] - mu[j] + eps))), j, i, n),
                         (eps, -sp.oo, sp.oo))
    d.step(gumbel, "Gumbel noise: $\\Phi(x)=e^{-e^{-x}}$, $\\phi(x)=\\Phi'(x)=e^{-x-e^{-x}}$",
           subs=lambda e: e.replace(Phi, cdf).replace(phi, pdf), checks=("identical", "simplify"))

    # (3) a product of exponentials is the exponential of the sum
    summed = sp.Integral(sp.exp(-eps - sp.exp(-eps)) * sp.exp(-sum_except(sp.exp(-eps + mu[j] - mu[i]), j, i, n)),
                         (eps, -sp.oo, sp.oo))
    d.step(summed, "a product of exponentials is the exponential of the sum", checks=("numeric",))

    # (4) factor e^{-eps} out of the exponent
    factored = sp.Integral(sp.exp(-eps) * sp.exp(-sp.exp(-eps) * (1 + sum_except(sp.exp(mu[j] - mu[i]), j, i, n))),
                           (eps, -sp.oo, sp.oo))
    d.step(factored, "collect $e^{-\\varepsilon}$ in the exponent", checks=("simplify", "numeric"))

    # (5) the j = i term of S_i is exp(0) = 1
    with_s = sp.Integral(sp.exp(-eps) * sp.exp(-S_i * sp.exp(-eps)), (eps, -sp.oo, sp.oo))
    d.step(with_s, "$S_i=\\sum_j e^{\\mu_j-\\mu_i}=1+\\sum_{j\\neq i}e^{\\mu_j-\\mu_i}$ (the $j=i$ term is 1)",
           checks=("numeric",))

    # (6) substitution t = -exp(-eps), done by sympy's change of variables
    substituted = with_s.transform(-sp.exp(-eps), t)
    d.step(substituted, "substitute $t=-e^{-\\varepsilon}$, $dt=e^{-\\varepsilon}d\\varepsilon$, "
           "$t$ runs from $-\\infty$ to $0$", checks=("doit", "numeric"),
           substitution=(eps, t, -sp.exp(-eps)))

    # (7) the integral itself
    d.step(substituted.doit(), "$\\int_{-\\infty}^{0}e^{S_i t}\\,dt=1/S_i$ since $S_i>0$", checks=("doit",))

    # (8) back to mu, (9) multiply numerator and denominator by exp(mu_i)
    d.step(1 / sp.Sum(sp.exp(mu[j] - mu[i]), (j, 1, n)), "write out $S_i$", checks=("identical", "simplify"))
    d.step(sp.exp(mu[i]) / sp.Sum(sp.exp(mu[j]), (j, 1, n)),
           "multiply numerator and denominator by $e^{\\mu_i}$: softmax", checks=("simplify", "numeric"))

    d.status = "closed"
    d.family = family("gumbel")
    d.n = n
    d.symbols = (mu,)
    d.conditions = check_conditions_symbolic_n(d.result, mu, i, j, n)
    return d
