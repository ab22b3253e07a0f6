"""Non-elementary functions used by closed forms, as sympy Functions.

``OwenT(h, a)`` is Owen's T function

    T(h, a) = 1/(2 pi) * Integral_0^a exp(-h^2 (1 + x^2) / 2) / (1 + x^2) dx,

evaluated with mpmath at any precision (``evalf``) and printed as
``T(h, a)`` in LaTeX.  It gives the bivariate normal orthant probability
that the normal n = 3 closed form needs::

    >>> import sympy as sp
    >>> OwenT(0, 1).evalf(20)       # T(0, a) = atan(a) / (2 pi)
    0.12500000000000000000
"""

from __future__ import annotations

import mpmath
import sympy as sp

__all__ = ["OwenT", "owens_t_mp", "bivariate_normal_cdf"]


def owens_t_mp(h, a):
    """Owen's T(h, a) with mpmath at the current working precision."""
    h = mpmath.mpf(h)
    a = mpmath.mpf(a)
    if a == 0:
        return mpmath.mpf(0)
    if a < 0:
        return -owens_t_mp(h, -a)
    f = lambda x: mpmath.exp(-h * h * (1 + x * x) / 2) / (1 + x * x)
    return mpmath.quad(f, [0, a]) / (2 * mpmath.pi)


class OwenT(sp.Function):
    """Owen's T function T(h, a) (sympy Function with mpmath evaluation)."""

    nargs = 2

    @classmethod
    def eval(cls, h, a):
        if a.is_zero:
            return sp.Integer(0)
        if h.is_zero:
            return sp.atan(a) / (2 * sp.pi)
        if a.could_extract_minus_sign():
            return -cls(h, -a)
        if h.could_extract_minus_sign():
            return cls(-h, a)
        return None

    def _eval_evalf(self, prec):
        h, a = self.args
        if not (h.is_number and a.is_number):
            return None
        dps = mpmath.libmp.prec_to_dps(prec) + 5
        with mpmath.workdps(dps):
            hv = mpmath.mpf(sp.N(h, dps)._mpf_) if h.is_real else None
            av = mpmath.mpf(sp.N(a, dps)._mpf_) if a.is_real else None
            if hv is None or av is None:
                return None
            v = owens_t_mp(hv, av)
        return sp.Float(v, dps)

    def fdiff(self, argindex=1):
        h, a = self.args
        if argindex == 2:
            return sp.exp(-h**2 * (1 + a**2) / 2) / (2 * sp.pi * (1 + a**2))
        # dT/dh = -h/(2 pi) Integral_0^a exp(-h^2(1+x^2)/2) dx = -phi(h) erf(a h / sqrt 2) / 2
        return -sp.exp(-h**2 / 2) / sp.sqrt(2 * sp.pi) * sp.erf(a * h / sp.sqrt(2)) / 2

    def _latex(self, printer):
        h, a = self.args
        return r"T\left(%s,\, %s\right)" % (printer._print(h), printer._print(a))


def _std_normal_cdf(x):
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


def bivariate_normal_cdf(h, k, rho):
    """P[X <= h, Y <= k] for standard normals with correlation ``rho`` (sympy).

    Owen (1956): for h, k != 0,

        Phi2(h, k; rho) = Phi(h)/2 + Phi(k)/2 - T(h, a_h) - T(k, a_k) - beta,
        a_h = (k - rho h) / (h sqrt(1 - rho^2)),  a_k = (h - rho k) / (k sqrt(1 - rho^2)),
        beta = 0 if h k > 0 or (h k = 0 and h + k >= 0), else 1/2,

    returned as a Piecewise on the sign pattern of (h, k); h = k = 0 gives
    1/4 + asin(rho)/(2 pi).
    """
    h, k, rho = map(sp.sympify, (h, k, rho))
    r = sp.sqrt(1 - rho**2)
    base = _std_normal_cdf(h) / 2 + _std_normal_cdf(k) / 2
    general = base - OwenT(h, (k - rho * h) / (h * r)) - OwenT(k, (h - rho * k) / (k * r))
    # h -> 0: T(h, (k - rho h)/(h r)) -> sign(k)/4 and the 1/2 jump cancels it, leaving
    # Phi2(0, k; rho) = Phi(k)/2 - T(k, -rho/r)  (and symmetrically for k = 0).
    return sp.Piecewise(
        (general, h * k > 0),
        (general - sp.Rational(1, 2), h * k < 0),
        (_std_normal_cdf(k) / 2 - OwenT(k, -rho / r), sp.Eq(h, 0)),
        (_std_normal_cdf(h) / 2 - OwenT(h, -rho / r), True),
    )
