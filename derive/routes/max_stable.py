"""Route (b): max-stable noise of Gumbel type, ``F(x) = exp(-c e^{-x/s})`` in any algebraic form.

Test: ``L = -log F`` must satisfy ``L'/L = -1/s``, a negative constant
(sympy simplifies the ratio after ``expand_log``); then ``c = L e^{x/s}``
must simplify to a positive constant.  So ``log(-log F) = log c - x/s`` is
affine and ``F(x) = G(x/s - log c)`` with ``G(t) = exp(-e^{-t})`` the
standard Gumbel CDF; by the location-scale reduction
``p(mu; F) = softmax(mu / s)`` for every n (symbolic n included).

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> detect(derive.family_from_cdf(1 / sp.exp(3 * sp.exp(-x / 2)), x))
(2, 3)
"""

from __future__ import annotations

import sympy as sp

from . import NotApplicable
from ._common import cdf_on_support, custom_match
from .location_scale import reduce_to

NAME = "max_stable"


def detect(fam):
    """``(s, c)`` when ``F = exp(-c e^{-x/s})`` on the whole line, else a reason string."""
    e, lo, hi = cdf_on_support(fam)
    if lo.is_finite or hi.is_finite:
        return "the support is not the whole line"
    x = fam.symbol
    L = sp.expand_log(-sp.log(e), force=True)
    try:
        r = sp.simplify(sp.diff(L, x) / L)
    except (NotImplementedError, TypeError, ValueError, RecursionError):
        return "sympy cannot simplify $(\\log F)'/\\log F$"
    if r.has(x) or not r.is_number or not r.is_negative:
        return "$\\log(-\\log F)$ is not affine in x with negative slope"
    s = sp.nsimplify(-1 / r)
    c = sp.simplify(L * sp.exp(x / s))
    if c.has(x) or not c.is_positive:
        return "$-\\log F\\cdot e^{x/s}$ is not a positive constant"
    return s, c


def attempt(fam, n):
    m = custom_match(NAME, fam, detect, "registry family (gumbel has its own derivation)")
    if isinstance(m, NotApplicable):
        return m
    s, c = m
    a, b = 1 / s, -sp.log(c)
    why = f"max-stable: $\\log(-\\log F)={sp.latex(sp.log(c))}-x/{sp.latex(s)}$ is affine"
    d = reduce_to(fam, n, "gumbel", a, b, why)
    if n == "general":
        return d
    d.reason = f"max-stable (Gumbel type, $s={sp.latex(s)}$): softmax of $\\mu/{sp.latex(s)}$ for every n."
    return d
