"""Non-elementary functions used by closed forms, as sympy Functions.

``OwenT(h, a)`` is Owen's T function

    T(h, a) = 1/(2 pi) * Integral_0^a exp(-h^2 (1 + x^2) / 2) / (1 + x^2) dx,

evaluated with mpmath to the requested precision for every real ``h`` and
``a`` (``evalf``, :func:`owens_t_mp`) and printed as ``T(h, a)`` in LaTeX.
It gives the bivariate normal orthant probability that the normal n = 3
closed form needs::

    >>> import sympy as sp
    >>> OwenT(0, 1).evalf(20)       # T(0, a) = atan(a) / (2 pi)
    0.12500000000000000000
    >>> OwenT(30 / sp.sqrt(2), sp.sqrt(3)).evalf(15)   # the integrand's peak is 1/h = 0.047 wide
    1.80324854311280e-100
"""

from __future__ import annotations

import mpmath
import sympy as sp

__all__ = ["OwenT", "OwenTc", "owens_t_mp", "owens_tc_mp", "bivariate_normal_cdf", "normal_sf_mp"]

#: guard bits carried inside owens_t_mp on top of the caller's working precision
_GUARD_BITS = 24


def normal_sf_mp(x):
    """Q(x) = 1 - Phi(x) = erfc(x / sqrt 2) / 2 at the current mpmath precision (no cancellation for x > 0)."""
    return mpmath.erfc(x / mpmath.sqrt(2)) / 2


def _owens_t_integral(h, a):
    """T(h, a) for h > 0, 0 < a <= 1 by the defining integral, split where the integrand decays.

    T = e^{-h^2/2}/(2 pi) * Integral_0^a g(x) dx with g(x) = e^{-h^2 x^2/2}/(1 + x^2) > 0:
    g falls by e^{-1/2} over the first 1/h and by e^{-2^(2k-1)} over [2^(k-1)/h, 2^k/h],
    so panels [0, 1/h], [1/h, 2/h], [2/h, 4/h], ... each hold a smooth, resolved piece.
    A single tanh-sinh rule over [0, a] misses a peak of width 1/h << a (h = 21, a = sqrt 3:
    1.4% low).  The integrand is positive, so the relative error of the sum is that of
    the panels; mpmath's error estimate is checked against the target.
    """
    pts = [mpmath.mpf(0)]
    w = 1 / h
    x = w
    while x < a:
        pts.append(x)
        x *= 2
    pts.append(a)
    g = lambda t: mpmath.exp(-h * h * t * t / 2) / (1 + t * t)
    val, err = mpmath.quad(g, pts, error=True)
    if not err <= val * mpmath.ldexp(1, -(mpmath.mp.prec - _GUARD_BITS // 2)):
        raise ArithmeticError(f"Owen's T({mpmath.nstr(h, 8)}, {mpmath.nstr(a, 8)}): quadrature error "
                              f"{mpmath.nstr(err / val, 3)} (relative) above the working precision")
    return mpmath.exp(-h * h / 2) * val / (2 * mpmath.pi)


def owens_t_mp(h, a):
    """Owen's T(h, a) at the current mpmath precision, for every real ``h`` and ``a`` (``a = +-inf`` too).

    Regions:

    * ``T(h, -a) = -T(h, a)``, ``T(-h, a) = T(h, a)``, ``T(h, 0) = 0``, ``T(0, a) = atan(a)/(2 pi)``,
      ``T(h, inf) = Q(|h|)/2`` with ``Q = 1 - Phi``;
    * ``0 < a <= 1``: the defining integral split at ``1/h, 2/h, 4/h, ...`` (see
      :func:`_owens_t_integral`), a positive integrand, so no cancellation;
    * ``a > 1``: Owen's (1956) reflection
      ``T(h, a) = (Q(h) + Q(a h))/2 - Q(h) Q(a h) - T(a h, 1/a)`` (h >= 0), whose
      ``T(a h, 1/a)`` has ``1/a < 1``.  The result is at least ``Q(h)/2 - Q(h)^2/2`` scaled
      by ``atan(a)``-like factors while each subtracted term is at most ``Q(a h) <= Q(h)``,
      so the identity loses a few bits at most (carried by ``_GUARD_BITS``).

    The work is done with ``_GUARD_BITS`` extra bits; the returned value is rounded to the
    caller's precision.

    >>> import mpmath
    >>> with mpmath.workdps(25):
    ...     print(mpmath.nstr(owens_t_mp(mpmath.mpf(40), mpmath.mpf('0.001')), 15))
    5.83604544141069e-352
    """
    prec = mpmath.mp.prec
    with mpmath.workprec(prec + _GUARD_BITS):
        h = abs(mpmath.mpmathify(h))
        a = mpmath.mpmathify(a)
        if mpmath.isnan(h) or mpmath.isnan(a) or mpmath.isinf(h):
            if mpmath.isinf(h) and not mpmath.isnan(a):
                return mpmath.mpf(0)
            raise ValueError(f"owens_t_mp: h and a must be real numbers, got h={h}, a={a}")
        sign = 1
        if a < 0:
            sign, a = -1, -a
        if a == 0:
            return mpmath.mpf(0)
        if mpmath.isinf(a):
            v = normal_sf_mp(h) / 2
        elif h == 0:
            v = mpmath.atan(a) / (2 * mpmath.pi)
        elif a <= 1:
            v = _owens_t_integral(h, a)
        else:
            qh, qah = normal_sf_mp(h), normal_sf_mp(a * h)
            v = (qh + qah) / 2 - qh * qah - _owens_t_integral(a * h, 1 / a)
    return +(sign * v)


def owens_tc_mp(h, a):
    """Complementary Owen's T, ``Tc(h, a) = T(h, oo) - T(h, a) = 1/(2 pi) Integral_a^oo e^{-h^2(1+x^2)/2}/(1+x^2) dx``.

    Positive for every real a, and computed without cancellation:

    * ``a < 0``: ``Q(|h|)/2 + T(h, -a)``, a sum of positive terms;
    * ``a >= 0``: with ``x = a + y`` the integral is
      ``e^{-h^2(1+a^2)/2}/(2 pi) Integral_0^oo e^{-h^2(a y + y^2/2)}/(1 + (a+y)^2) dy``, a positive
      integrand of size O(1) whose decay length is ``w = min(1/h, 1/(h^2 a))``: panels at
      ``w 2^k`` resolve it (the same argument as for T); ``h = 0`` gives ``atan(1/a)/(2 pi)``.

    Closed forms that subtract T from ``Q/2`` to get a tiny probability (normal n = 3 for the
    lowest class) use Tc instead.

    >>> import mpmath
    >>> with mpmath.workdps(20):
    ...     print(mpmath.nstr(owens_tc_mp(3, 0.5), 15), mpmath.nstr(mpmath.erfc(3 / mpmath.sqrt(2)) / 4 - owens_t_mp(3, 0.5), 15))
    6.98276372298524e-5 6.98276372298524e-5
    """
    prec = mpmath.mp.prec
    with mpmath.workprec(prec + _GUARD_BITS):
        h = abs(mpmath.mpmathify(h))
        a = mpmath.mpmathify(a)
        if mpmath.isnan(h) or mpmath.isnan(a):
            raise ValueError(f"owens_tc_mp: h and a must be real numbers, got h={h}, a={a}")
        if mpmath.isinf(a):
            return mpmath.mpf(0) if a > 0 else +normal_sf_mp(h)
        if a < 0:
            return +(normal_sf_mp(h) / 2 + owens_t_mp(h, -a))
        if h == 0:
            return +((mpmath.pi / 2 - mpmath.atan(a)) / (2 * mpmath.pi))
        w = 1 / h if a == 0 else min(1 / h, 1 / (h * h * a))
        pts = [mpmath.mpf(0)]
        y = w
        # beyond y = Y the integrand is below e^{-h^2 Y^2 / 2} < 2^-(prec + 64) of its value at 0
        Y = mpmath.sqrt(2 * (mpmath.mp.prec + 64) * mpmath.ln2) / h
        while y < Y:
            pts.append(y)
            y *= 2
        pts.append(mpmath.inf)
        g = lambda t: mpmath.exp(-h * h * (a * t + t * t / 2)) / (1 + (a + t) ** 2)
        val, err = mpmath.quad(g, pts, error=True)
        if not err <= val * mpmath.ldexp(1, -(mpmath.mp.prec - _GUARD_BITS // 2)):
            raise ArithmeticError(f"complementary Owen's T({mpmath.nstr(h, 8)}, {mpmath.nstr(a, 8)}): quadrature "
                                  f"error {mpmath.nstr(err / val, 3)} (relative) above the working precision")
        v = mpmath.exp(-h * h * (1 + a * a) / 2) * val / (2 * mpmath.pi)
    return +v


def _mp(x, dps):
    """A real sympy number as an mpf at ``dps`` digits."""
    return mpmath.mpf(sp.Float(sp.N(x, dps), dps)._mpf_)


class OwenTc(sp.Function):
    """Complementary Owen's T, ``T(h, oo) - T(h, a)``, printed as ``\\bar T(h, a)`` (see :func:`owens_tc_mp`)."""

    nargs = 2

    @classmethod
    def eval(cls, h, a):
        if h.could_extract_minus_sign():
            return cls(-h, a)
        return None

    def _eval_evalf(self, prec):
        h, a = self.args
        if not (h.is_number and a.is_number and h.is_real and a.is_real):
            return None
        dps = mpmath.libmp.prec_to_dps(prec) + 5
        with mpmath.workdps(dps):
            v = owens_tc_mp(_mp(h, dps), _mp(a, dps))
        return sp.Float(v, dps)

    def _eval_rewrite_as_OwenT(self, h, a, **kw):
        return sp.erfc(sp.Abs(h) / sp.sqrt(2)) / 4 - OwenT(h, a)

    def _latex(self, printer):
        h, a = self.args
        return r"\bar{T}\left(%s,\, %s\right)" % (printer._print(h), printer._print(a))


class OwenT(sp.Function):
    """Owen's T function T(h, a) (sympy Function with mpmath evaluation)."""

    nargs = 2

    @classmethod
    def eval(cls, h, a):
        if a.is_zero:
            return sp.Integer(0)
        if a is sp.oo:
            return sp.erfc(sp.Abs(h) / sp.sqrt(2)) / 4
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
            hv = _mp(h, dps) if h.is_real else None
            av = _mp(a, dps) if a.is_real else None
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
