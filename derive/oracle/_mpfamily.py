"""Log-space kernels of the noise families for the oracle.

Two sets per family, both in the *standard form* (location 0, scale 1; the
oracle divides the scores by the scale first, ``p(mu; s) = p(mu/s; 1)``):

* ``logcdf``, ``logpdf``, ``logsf`` in mpmath, accurate to the working
  precision in both tails (no cancellation: each tail uses its own formula);
* the same in float64 numpy (``flogcdf``, ...), used only to *locate* the
  mass of the integrands (modes, widths, tail cuts), never for values.

A user family from :func:`derive.family_from_cdf` is evaluated through
``sympy.lambdify(..., "mpmath")`` at doubled working precision (the user's
expression may cancel in a tail; the oracle's second rule runs at higher
precision and flags what is lost).

>>> import mpmath as mp
>>> k = kernels_for(__import__("derive").family("normal"))
>>> mp.nstr(k.logcdf(mp.mpf(-40)), 15)
'-804.608442013754'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import mpmath as mp
import numpy as np
import sympy as sp
from scipy import special

__all__ = ["Kernels", "kernels_for", "sympy_to_mpf"]


def sympy_to_mpf(value, prec: int | None = None):
    """A sympy number as an mpmath mpf at ``prec`` bits (default: current)."""
    prec = prec or mp.mp.prec
    v = sp.sympify(value)
    if v.is_Integer:
        return mp.mpf(int(v))
    if v.is_Rational:
        with mp.workprec(prec + 10):
            r = mp.mpf(int(v.p)) / int(v.q)
        return r
    dps = int(prec * 0.30103) + 10
    return mp.mpf(sp.N(v, dps)._to_mpmath(prec + 10))


@dataclass
class Kernels:
    """mpmath and float64 log-kernels of one standard noise family.

    ``lo``/``hi`` are the support ends (mpf or +-inf), ``breakpoints`` the
    finite kinks (mpf), ``name``/``label`` identify the family in messages.
    ``end_power``: the power ``k`` of the map ``x = end +- L s^k`` on pieces next
    to a kink ``d_v + lo`` (first) or ``d_v + hi`` (second), 1 for none (see
    :func:`end_power` and :class:`derive.oracle._quadrature.PowerPiece`).
    """

    name: str
    label: str
    logcdf: Callable
    logpdf: Callable
    logsf: Callable
    flogcdf: Callable
    flogpdf: Callable
    flogsf: Callable
    lo: object
    hi: object
    breakpoints: tuple
    custom: bool = False
    params: dict = None
    end_power: tuple = (1, 1)


def _sym(fn):
    """logsf(y) = logcdf(-y) for a symmetric density."""
    return lambda y: fn(-y)


# --------------------------------------------------------------------------
# mpmath kernels (standard form).  ``y`` is an mpf; results are mpf or -inf.
# --------------------------------------------------------------------------


def _flog1mexpm(z):
    """float64 log(1 - exp(-e^z)); for z < -30 it is z - e^z/2 + O(e^{2z})
    (the direct form underflows to -inf for z < -745)."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        direct = np.log(-np.expm1(-np.exp(np.maximum(z, -30.0))))
        return np.where(z < -30.0, z - 0.5 * np.exp(np.minimum(z, -30.0)), direct)


def _gumbel():
    # Phi = exp(-e^{-y}):  log Phi = -e^{-y};  log(1-Phi) = log(-expm1(-e^{-y}))
    lc = lambda y: -mp.exp(-y)
    lp = lambda y: -y - mp.exp(-y)

    def ls(y):
        # log(1 - exp(-E)), E = e^{-y}; for E > 4 prec it is -e^{-E}, below any
        # absolute accuracy we need, and exp(-E) itself would cost ~E bits.
        E = mp.exp(-y)
        return mp.log(-mp.expm1(-E)) if E < 4 * mp.mp.prec else -mp.exp(-min(E, 8 * mp.mp.prec))
    flc = lambda y: -np.exp(-y)
    flp = lambda y: -y - np.exp(-y)
    fls = lambda y: _flog1mexpm(-y)
    return lc, lp, ls, flc, flp, fls


def _gumbel_min():
    # Phi = 1 - exp(-e^{y}):  log Phi = log(-expm1(-e^y)) (no cancellation for small e^y)
    def lc(y):
        # log(1 - exp(-E)), E = e^y; guarded as in the gumbel survival function.
        # y < -(prec + 8) ln 2: log(1 - e^-E) = y + log1p(-E/2 + ...) = y to within
        # E/2 < 2^-(prec+8) absolute (and e^y of a huge |y| costs ~log2|y| extra bits)
        if y < -(mp.mp.prec + 8) * 0.6931471805599453:
            return +y
        E = mp.exp(y)
        return mp.log(-mp.expm1(-E)) if E < 4 * mp.mp.prec else -mp.exp(-min(E, 8 * mp.mp.prec))

    lp = lambda y: y - mp.exp(y)
    ls = lambda y: -mp.exp(y)
    flc = lambda y: _flog1mexpm(y)
    flp = lambda y: y - np.exp(y)
    fls = lambda y: -np.exp(y)
    return lc, lp, ls, flc, flp, fls


def _normal():
    # y < 0: Phi = erfc(-y/sqrt2)/2 (relative accuracy in the left tail);
    # y > 0: log Phi = log1p(-erfc(y/sqrt2)/2)
    def lc(y):
        # |y| > 1e50: Phi(-|y|) = phi(y)/|y| sum_k (-1)^k (2k-1)!!/y^(2k) (alternating
        # asymptotic series with decreasing terms, remainder below the first
        # omitted one); mpmath's erfc overflows a float for |y| > ~1e154.
        if abs(y) > 1e50:
            y2 = y * y
            term, k, acc = mp.mpf(1), 0, mp.mpf(1)
            eps = mp.mpf(2) ** -(mp.mp.prec + 8)
            while abs(term) > eps:
                k += 1
                term = -term * (2 * k - 1) / y2
                acc += term
            la = -y2 / 2 - mp.log(abs(y)) - mp.log(2 * mp.pi) / 2 + mp.log(acc)
            return la if y < 0 else -mp.exp(la)
        if y < 0:
            return mp.log(mp.erfc(-y / mp.sqrt(2)) / 2)
        return mp.log1p(-mp.erfc(y / mp.sqrt(2)) / 2)

    lp = lambda y: -y * y / 2 - mp.log(2 * mp.pi) / 2
    c = 0.5 * math.log(2 * math.pi)
    return lc, lp, _sym(lc), special.log_ndtr, (lambda y: -0.5 * y * y - c), (lambda y: special.log_ndtr(-y))


def _logistic():
    # log sigma(y) = -log1p(e^{-y}); pdf symmetric: -|y| - 2 log1p(e^{-|y|})
    lc = lambda y: -mp.log1p(mp.exp(-y))
    lp = lambda y: -abs(y) - 2 * mp.log1p(mp.exp(-abs(y)))
    flc = lambda y: -np.logaddexp(0.0, -y)
    flp = lambda y: -np.abs(y) - 2 * np.log1p(np.exp(-np.abs(y)))
    return lc, lp, _sym(lc), flc, flp, (lambda y: flc(-y))


def _laplace():
    # y < 0: Phi = e^y/2;  y >= 0: log Phi = log1p(-e^{-y}/2)
    def lc(y):
        if y < 0:
            return y - mp.log(2)
        return mp.log1p(-mp.exp(-y) / 2)

    lp = lambda y: -abs(y) - mp.log(2)
    l2 = math.log(2.0)

    def flc(y):
        with np.errstate(over="ignore"):
            return np.where(y < 0, y - l2, np.log1p(-0.5 * np.exp(-np.abs(y))))

    return lc, lp, _sym(lc), flc, (lambda y: -np.abs(y) - l2), (lambda y: flc(-y))


def _exponential():
    def lc(y):
        return mp.log(-mp.expm1(-y)) if y > 0 else mp.ninf

    def lp(y):
        return -y if y >= 0 else mp.ninf

    def ls(y):
        return -y if y > 0 else mp.mpf(0)

    def flc(y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, np.log(-np.expm1(-np.maximum(y, 0.0))), -np.inf)

    flp = lambda y: np.where(y >= 0, -y, -np.inf)
    fls = lambda y: np.where(y > 0, -y, 0.0)
    return lc, lp, ls, flc, flp, fls


def _uniform():
    def lc(y):
        if y <= 0:
            return mp.ninf
        return mp.log(y) if y < 1 else mp.mpf(0)

    def lp(y):
        return mp.mpf(0) if 0 <= y <= 1 else mp.ninf

    def ls(y):
        if y >= 1:
            return mp.ninf
        return mp.log1p(-y) if y > 0 else mp.mpf(0)

    def flc(y):
        with np.errstate(divide="ignore"):
            return np.log(np.clip(y, 0.0, 1.0))

    def fls(y):
        with np.errstate(divide="ignore"):
            return np.log1p(-np.clip(y, 0.0, 1.0))

    flp = lambda y: np.where((y >= 0) & (y <= 1), 0.0, -np.inf)
    return lc, lp, ls, flc, flp, fls


def _cauchy():
    # y < 0: Phi = atan(-1/y)/pi (no cancellation); y > 0: log1p(-atan(1/y)/pi)
    def lc(y):
        if y < 0:
            return mp.log(mp.atan(-1 / y) / mp.pi)
        if y == 0:
            return -mp.log(2)
        return mp.log1p(-mp.atan(1 / y) / mp.pi)

    lp = lambda y: -mp.log(mp.pi) - mp.log1p(y * y)

    def flc(y):
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / y
            out = np.where(y < 0, np.log(np.arctan(-inv)) - math.log(math.pi), np.log1p(-np.arctan(inv) / np.pi))
        return np.where(y == 0, -math.log(2.0), out)

    def flp(y):
        a = np.abs(y)
        with np.errstate(over="ignore", divide="ignore"):
            return np.where(a > 1e150, -2.0 * np.log(a), -np.log1p(a * a)) - math.log(math.pi)

    return lc, lp, _sym(lc), flc, flp, (lambda y: flc(-y))


def _student_t(nu):
    # y < 0: Phi = I_{nu/(nu+y^2)}(nu/2, 1/2) / 2 (regularized incomplete beta);
    # y > 0: log Phi = log1p(-Phi(-y)).  pdf = c (1 + y^2/nu)^{-(nu+1)/2}.
    nuf = float(nu)

    def tail(y):  # Phi(y) for y <= 0 (the complement form for |y| < 1, see _flint_eval)
        y2 = y * y
        if y2 < 1:
            return (1 - mp.betainc(mp.mpf(1) / 2, nu / 2, 0, y2 / (nu + y2), regularized=True)) / 2
        return mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + y2), regularized=True) / 2

    def lc(y):
        if y <= 0:
            return mp.log(tail(y))
        return mp.log1p(-tail(-y))

    if isinstance(nu, float):
        logc = None  # float path: only the numpy kernels below are used
    else:
        logc = mp.loggamma((nu + 1) / 2) - mp.loggamma(nu / 2) - mp.log(nu * mp.pi) / 2

    def lp(y):
        return logc - (nu + 1) / 2 * mp.log1p(y * y / nu)

    lognorm = special.gammaln((nuf + 1) / 2) - special.gammaln(nuf / 2) - 0.5 * math.log(nuf * math.pi)

    a_, b_ = nuf / 2, 0.5
    log_ab = math.log(a_) + special.betaln(a_, b_) + math.log(2.0)

    def flc(y):
        # Below 1e-280, stdtr would underflow (nu = 1000, y = -1000: Phi ~ 1e-1502)
        # and hide the mass of an integrand from the reconnaissance: there
        # Phi(y) = I_x(nu/2, 1/2) / 2 = x^a (1-x)^b 2F1(a+b, 1; a+1; x) / (2 a B(a, b)),
        # x = nu / (nu + y^2), taken in logs (log x without forming y^2).
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            yl = np.minimum(y, 0.0)
            p = special.stdtr(nuf, yl)
            left = np.log(p)
            small = p < 1e-280
            if np.any(small):
                ys = np.abs(yl[small])
                lx = math.log(nuf) - 2.0 * np.log(ys) - np.log1p(nuf / ys / ys)
                x = np.exp(lx)
                left[small] = (a_ * lx + b_ * np.log1p(-x) - log_ab
                               + np.log(special.hyp2f1(a_ + b_, 1.0, a_ + 1.0, x)))
            right = np.log1p(-special.stdtr(nuf, -np.maximum(y, 0.0)))
        return np.where(y < 0, left, right)

    def flp(y):
        a = np.abs(y)
        with np.errstate(over="ignore", divide="ignore"):
            l1 = np.where(a > 1e150, 2.0 * np.log(a) - math.log(nuf), np.log1p(a * a / nuf))
        return lognorm - 0.5 * (nuf + 1) * l1

    return lc, lp, _sym(lc), flc, flp, (lambda y: flc(-y))


_REGISTRY = {
    "gumbel": (_gumbel, (-mp.inf, mp.inf), ()),
    "gumbel_min": (_gumbel_min, (-mp.inf, mp.inf), ()),
    "normal": (_normal, (-mp.inf, mp.inf), ()),
    "logistic": (_logistic, (-mp.inf, mp.inf), ()),
    "laplace": (_laplace, (-mp.inf, mp.inf), (0,)),
    "exponential": (_exponential, (0, mp.inf), (0,)),
    "uniform": (_uniform, (0, 1), (0, 1)),
    "cauchy": (_cauchy, (-mp.inf, mp.inf), ()),
}


class _NuParam:
    """nu held as a sympy number, converted to mpf at the current precision."""

    def __init__(self, nu):
        self.nu = nu

    def __call__(self):
        return sympy_to_mpf(self.nu)


def _student_t_kernels(nu_sym):
    # mpf conversion at call time so the kernel follows the working precision
    nu_conv = _NuParam(nu_sym)
    cache = {}

    def nu():
        key = mp.mp.prec
        if key not in cache:
            cache[key] = nu_conv()
        return cache[key]

    base = {}

    def parts():
        key = mp.mp.prec
        if key not in base:
            base[key] = _student_t(nu())
        return base[key]

    fl = _student_t(float(nu_sym))
    lc = lambda y: parts()[0](y)
    lp = lambda y: parts()[1](y)
    ls = lambda y: parts()[2](y)
    return lc, lp, ls, fl[3], fl[4], fl[5]


def _log_expr(e):
    """``log(e)`` with products, powers and ``log(exp(a)) = a`` expanded (branch by branch).

    The expansion is what keeps nested exponentials finite: for the Gumbel
    CDF ``exp(-exp(-x/2))`` it gives ``-exp(-x/2)``, which mpmath evaluates
    at any x, whereas the CDF itself at x = -1e300 asks mpmath for
    ``exp(-e^(5e299))`` (a shift by ~7e299 bits: MemoryError, or gigabytes for
    milder arguments).  ``force=True`` splits ``log(a b)`` even where a
    factor is negative; the real part is unchanged (``Re log(a) + Re log(b) =
    log|ab|``) and the imaginary part, an odd multiple of pi exactly when
    the value is negative, is read by :func:`_custom`.
    """
    if isinstance(e, sp.Piecewise):
        return sp.Piecewise(*[(_log_expr(v), c) for v, c in e.args])
    if e == 0:
        return sp.S.NegativeInfinity
    return sp.expand_log(sp.log(e), force=True)


def _log1mexp(v):
    """``log(1 - e^v)`` for ``v <= 0`` without forming ``e^v`` where that is out of reach.

    For ``v < -2^30``, ``e^v < e^(-1e9)``: ``log(1 - e^v) = -e^v`` is 0 to
    within 1e-400000000, far below any working precision in log space,
    and mpmath's ``exp`` of a huge argument would allocate its shifted
    mantissa (the failure :func:`_log_expr` avoids).
    """
    if v == mp.ninf or v < -(2**30):
        return mp.mpf(0)
    if v >= 0:
        return mp.ninf
    return mp.log(-mp.expm1(v))


def _exp_clamped(v):
    """mpmath ``exp`` with ``e^v = 0`` for real ``v < -2^30``.

    A nested exponential the log expansion cannot remove (Gompertz: ``log(1 - e^{eta - eta e^x})``)
    asks at large x for ``e^v`` with ``v ~ -e^x``: mpmath first computes ln 2 to as many bits as
    ``v`` has in its exponent (minutes, then memory).  ``e^v < e^(-1e9)`` is 0 at any working precision.
    """
    if isinstance(v, mp.mpf) and v < -(2**30):
        return mp.mpf(0)
    return mp.exp(v)


def _erfc_clamped(v):
    """mpmath ``erfc`` with ``erfc(v) = 0`` for real ``v > 2^30`` (``erfc(v) < e^(-v^2)``): Moyal's
    ``erfc(e^(-x/2) / sqrt 2)`` far left asks for erfc of ~e^(x/2), whose series mpmath would
    run out of memory on (see :func:`_exp_clamped`)."""
    if isinstance(v, mp.mpf) and v > 2**30:
        return mp.mpf(0)
    return mp.erfc(v)


#: the mpmath namespace of user expressions: far-tail values that are 0 at any precision are 0
_CLAMPED = {"exp": _exp_clamped, "erfc": _erfc_clamped}


def _custom(fam):
    x = fam.symbol
    # the kernels are logs: evaluate log F and log f directly (see _log_expr)
    logcdf_f = sp.lambdify(x, _log_expr(fam.cdf(x)), [_CLAMPED, "mpmath"])
    logpdf_f = sp.lambdify(x, _log_expr(fam.pdf(x)), [_CLAMPED, "mpmath"])

    def guarded(f, what):
        # The user's expression may cancel (1 - exp(-t) near 0, ...): evaluate
        # it at twice the working precision.  A complex log is the log of a
        # negative rounding residue (imaginary part an odd multiple of pi,
        # see _log_expr): the value is <= 0 there, its log -inf.
        def g(y):
            with mp.workprec(2 * mp.mp.prec + 20):
                try:
                    v = mp.mpmathify(f(y))
                except (ZeroDivisionError, ValueError, OverflowError):
                    v = mp.nan
                if isinstance(v, mp.mpc):
                    v = mp.ninf if int(mp.nint(v.imag / mp.pi)) % 2 else v.real
            if mp.isnan(v):
                raise ArithmeticError(f"custom family {fam.name!r}: {what} is NaN at {mp.nstr(y, 10)}")
            return v

        return g

    lc = guarded(logcdf_f, "CDF")
    lp = guarded(logpdf_f, "density")
    # log S from the symbolic complement 1 - F (expanded branch by branch, then _log_expr):
    # for a super-exponential upper tail (Gompertz: 1 - F = e^eta e^(-eta e^(b y))) it gives
    # log S = eta - eta e^(b y) at any y, where log F rounds to exactly 0 at 2x the working
    # precision as soon as S < 2^-(2 prec) and log(1 - e^(log F)) is then -inf.
    cdf = fam.cdf(x)
    if isinstance(cdf, sp.Piecewise):
        comp = sp.Piecewise(*[(sp.expand(1 - v), c) for v, c in cdf.args])
    else:
        comp = sp.expand(1 - cdf)
    logsf_sym = guarded(sp.lambdify(x, _log_expr(comp), [_CLAMPED, "mpmath"]), "survival function")

    def ls(y):
        # log(1 - e^(log F)) keeps full relative precision while log F != 0 (it carries S's
        # digits); only when log F is exactly 0 (S below the precision of F) is the
        # symbolic complement needed.  Written with cancellation it rounds to 0 there as
        # well (log S = -inf, as before); the survival form is a cross-check only (rule C
        # must agree with rules A/B), so a poor value can raise OracleError, never pass.
        v = lc(y)
        if v == 0:
            return logsf_sym(y)
        return _log1mexp(v)

    def vec(f):
        def fv(y):
            y = np.asarray(y, dtype=np.float64)
            out = np.empty_like(y)
            with mp.workprec(53):
                for idx, t in np.ndenumerate(y):
                    if not math.isfinite(t):
                        out[idx] = np.nan
                        continue
                    try:
                        v = f(mp.mpf(float(t)))
                        out[idx] = float(v)
                    except (ArithmeticError, ValueError, OverflowError):
                        out[idx] = np.nan
            return out

        return fv

    return lc, lp, ls, vec(lc), vec(lp), vec(ls)


#: an end exponent ``a`` is taken as rational ``j / k - 1`` (k up to this bound) when
#: ``k (a + 1)`` is within ``_RATIONAL_TOL`` of an integer; its estimate below is off by ~1e-45
_MAX_DENOMINATOR = 64
_RATIONAL_TOL = 1e-25
#: for other exponents, ``k (a + 1)`` at least this: the piece's leading term is ``s^(>= 24)``
_SMOOTH_ORDER = 25


def end_power(logpdf, end, sign, width):
    """The power ``k`` of the oracle's end map at a finite support end (1: none needed).

    The density's exponent at the end, ``phi(end + sign h) ~ C h^a (1 + c1 h + ...)``,
    is read from two values at ``h1 = w 2^-300`` and ``h2 = w 2^-150``
    (``w = min(1, width)``): ``a = (log phi(h1) - log phi(h2)) / log(h1 / h2)``,
    off by ``|c1| h2 / log(h2 / h1) ~ 1e-47 |c1| w``.  An integer ``a >= 0`` (a
    density analytic at the end: uniform, triangular, integer Beta) and a
    density vanishing faster than every power (``e^(-1/h)``: Frechet, Levy)
    need no map (``k = 1``).  Otherwise ``k`` is the smallest with ``k (a + 1)`` an
    integer (``a = -1/2``: 2, ``a = -7/10``: 10), so every power of ``h`` in the
    integrand becomes an integer power of ``s`` (see ``PowerPiece``); for
    other ``a``, ``k = ceil(25 / (a + 1))``.

    >>> import mpmath as mp
    >>> end_power(lambda y: -mp.log(y) / 2 - mp.log(1 - y) / 2, mp.mpf(0), 1, 1)
    2
    >>> end_power(lambda y: -mp.log(mp.pi) - mp.log1p(y * y), mp.mpf(0), 1, 1)
    1
    """
    with mp.workprec(1200):
        w = min(mp.mpf(1), mp.mpf(width))
        h1, h2 = w * mp.ldexp(1, -300), w * mp.ldexp(1, -150)
        try:
            l1 = logpdf(mp.fadd(end, sign * h1, exact=True))
            l2 = logpdf(mp.fadd(end, sign * h2, exact=True))
        except (ArithmeticError, ValueError):
            return 1
        if not (mp.isfinite(l1) and mp.isfinite(l2)):
            return 1
        a = (l1 - l2) / mp.log(h1 / h2)
        if not (-1 < a < _SMOOTH_ORDER):
            return 1
        for k in range(1, _MAX_DENOMINATOR + 1):
            r = k * (a + 1)
            if abs(r - mp.nint(r)) < _RATIONAL_TOL:
                return k
        return int(mp.ceil(_SMOOTH_ORDER / (a + 1)))


def kernels_for(fam) -> Kernels:
    """The standard-form kernels of a derive :class:`~derive.families.Family`."""
    if fam.custom:
        lc, lp, ls, flc, flp, fls = _custom(fam)
        sup = fam.support
        lo = mp.ninf if sup.start.is_infinite else sympy_to_mpf(sup.start)
        hi = mp.inf if sup.end.is_infinite else sympy_to_mpf(sup.end)
        bps = tuple(sorted({sympy_to_mpf(b) for b in fam.breakpoints}))
        width = hi - lo if mp.isfinite(lo) and mp.isfinite(hi) else 1
        powers = tuple(end_power(lp, e, sg, width) if mp.isfinite(e) else 1 for e, sg in ((lo, 1), (hi, -1)))
        return Kernels(fam.name, f"custom family {fam.name!r}", lc, lp, ls, flc, flp, fls, lo, hi, bps, True,
                       end_power=powers)
    name = fam.name
    if name == "student_t":
        lc, lp, ls, flc, flp, fls = _student_t_kernels(fam.params["nu"])
        lo, hi, bps = mp.ninf, mp.inf, ()
    else:
        maker, (lo, hi), bps = _REGISTRY[name]
        lc, lp, ls, flc, flp, fls = maker()
        lo, hi = mp.mpf(lo), mp.mpf(hi)
        bps = tuple(mp.mpf(b) for b in bps)
    label = name + "".join(f", {k}={v}" for k, v in sorted(fam.params.items()))
    return Kernels(name, label, lc, lp, ls, flc, flp, fls, lo, hi, bps, False, dict(fam.params))
