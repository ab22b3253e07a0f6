"""Route (e): n = 2 for any family, through the density of ``eps_2 - eps_1``.

``p_1 = P[eps_2 - eps_1 <= mu_1 - mu_2]``: either the direct integral
``p_2(a) = Int phi(e) F(e - a) de`` (``a = |Delta|``) or the density
``g(t) = Int phi(e) phi(t + e) de`` of the difference, integrated from
``p_1(0) = 1/2``, whichever integrand is in a class the route evaluates;
each value is checked at 30 digits against quadrature (the construction
is :func:`derive.closed._difference_route`, shared with the registry families).
"""

from __future__ import annotations

from . import NotApplicable

NAME = "difference"


def attempt(fam, n):
    if n != 2:
        return NotApplicable(NAME, "only n = 2 (the difference of two noises)")
    from .. import closed

    return closed._difference_route(fam, closed.mu_symbols(2))
