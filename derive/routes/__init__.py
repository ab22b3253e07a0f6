"""Closed-form routes chosen by the structure of the CDF, not by a family name.

Every route is one module with one interface::

    attempt(fam, n) -> Derivation | NotApplicable

``fam`` is a :class:`~derive.families.Family` in standard form (scale 1
for registry families; user families as given), ``n`` an int >= 2 or
``"general"``.  A route either returns a :class:`~derive.derivation.Derivation`
whose steps were each verified while it was built (it raises
:class:`~derive.derivation.DerivationError` otherwise), or a
:class:`NotApplicable` saying why the CDF does not have the structure it
needs.  :func:`run` tries them in the order of :data:`ORDER`:

======================  ============================================================
``max_stable``          ``log(-log F)`` affine in x: ``F = exp(-c e^{-x/s})`` is
                        Gumbel; ``p = softmax(mu/s)`` at every n, symbolic n too
``location_scale``      ``F(x) = G(a x + b)`` for a registry family G (found by
                        testing that ``G^{-1}(F(x))`` is affine): ``p(mu; F) =
                        p(a mu; G)``, G's derivation at ``a mu``
``piecewise``           on finitely many intervals a finite sum of
                        ``x^k e^{lambda x}``: the integrand of (eq:pi) is a sum of
                        such products on intervals bounded by ``mu_j + b_k``;
                        sympy integrates each, the limits are Max/Min of the ends
``rational``            ``u = e^{-x/s}`` makes the integrand rational in u:
                        partial fractions (logistic type)
``double_exponential``  ``F(x) = G(e^{b x})`` with G a sum of ``u^m e^{lambda u}``
                        (Gompertz type): a shift is a scale of u, the integrand a
                        sum of ``u^M e^{Lambda u}`` integrated termwise
``difference``          n = 2 only: ``p_1`` is the CDF of ``eps_2 - eps_1``
======================  ============================================================

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> d = run(derive.family_from_cdf(sp.exp(-sp.exp(-x / 2)), x), 3)[0]
>>> d.closed_form[0]
exp(mu_1/2)/(exp(mu_1/2) + exp(mu_2/2) + exp(mu_3/2))
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

__all__ = ["NotApplicable", "ORDER", "run"]

#: route modules in the order they are tried
ORDER = ("max_stable", "location_scale", "piecewise", "rational", "double_exponential", "difference")


@dataclass(frozen=True)
class NotApplicable:
    """A route's answer when the CDF lacks the structure it needs."""

    route: str
    reason: str

    def __str__(self):
        return f"{self.route}: {self.reason}"


def run(fam, n):
    """Try the routes in order: ``(derivation or None, [NotApplicable / status-none notes])``.

    The first derivation with status ``closed`` or ``special`` is returned.
    A route that applies but ends in status ``none`` (e.g. location-scale
    of the normal at n = 4) is kept as the answer when no later route
    does better; its reason says what was reduced to what.
    """
    from ..derivation import DerivationError

    tried = []
    fallback = None
    for name in ORDER:
        mod = import_module(f".{name}", __name__)
        try:
            out = mod.attempt(fam, n)
        except DerivationError as exc:
            tried.append(NotApplicable(name, f"a step failed its check ({exc})"))
            continue
        if isinstance(out, NotApplicable):
            tried.append(out)
            continue
        if out.status in ("closed", "special"):
            out.extra.setdefault("route", name)
            out.extra.setdefault("routes_tried", [str(t) for t in tried])
            return out, tried
        if fallback is None:
            out.extra.setdefault("route", name)
            fallback = out
        tried.append(NotApplicable(name, out.reason))
    if fallback is not None:
        fallback.extra.setdefault("routes_tried", [str(t) for t in tried])
    return fallback, tried
