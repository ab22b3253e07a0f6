"""Numeric noise families: log-space kernels (numpy + scipy only).

Each family is held in its standard form (location 0, scale 1); a scale
``s`` enters the engine as ``p(mu; s) = p(mu / s; 1)``.  All kernels take
and return float64 arrays and are written in log space so that far tails keep
full relative precision (``log Phi(-40)`` is ``-804.6...``, not ``-inf``).

>>> f = get_family("normal")
>>> round(float(f.logcdf(np.array([-40.0]))[0]), 10)   # log Phi(-40)
-804.6084420138
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from ._fast_kernels import FastSpec, RowsSpec
from ._gumbel_min_tail import TailSpread as _GumbelMinSpread
# the small-n kernel's spec type and linear-space parts, and the n = 2 closed forms: the
# engines read them from the family (NumericFamily.small / .pair); numeric._batch and
# numeric._closed import nothing of this module at import time, so no cycle
from ._batch import (SmallSpec, _cauchy_split, _gumbel_min_split, _gumbel_parts, _logistic_ratio,
                     _logistic_split, _normal_parts, _upper_reach, pmin_algebraic, pmin_exponential)
from ._closed import (_log_c_cauchy, _log_c_gumbel, _log_c_normal, _log_c_uniform, _log_g_cauchy,
                      _log_g_exponential, _log_g_laplace, _log_g_logistic_sigmoid, _log_g_normal,
                      _log_g_uniform, _log_c_laplace, _log_c_exponential)

__all__ = ["NumericFamily", "family_from_logcdf", "FAMILY_NAMES", "get_family"]

FAMILY_NAMES = (
    "gumbel",
    "gumbel_min",
    "normal",
    "logistic",
    "laplace",
    "exponential",
    "uniform",
    "cauchy",
    "student_t",
)

# the parameters each registry family takes (scale: every family)
_PARAMS = {"student_t": frozenset({"scale", "nu"})}


def registry_params(key: str) -> frozenset:
    """The parameter names the registry family ``key`` takes.

    >>> sorted(registry_params("student_t")), sorted(registry_params("normal"))
    (['nu', 'scale'], ['scale'])
    """
    return _PARAMS.get(key, frozenset({"scale"}))

_LOG2 = math.log(2.0)
_LOGPI = math.log(math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class NumericFamily:
    """Log-space kernels of one standard noise distribution.

    ``logcdf(x)``, ``logpdf(x)`` act elementwise on float64 arrays of the
    *standardized* variable; ``support`` is ``(lo, hi)`` (may be infinite);
    ``breakpoints`` lists the finite points where the density is not
    analytic (support ends, kinks); ``scale`` (and ``nu``) are the bound
    parameters; ``dist`` is the frozen standard ``scipy.stats`` distribution
    (used for sampling and quantiles) or None for user families without one.
    """

    name: str
    logcdf: Callable[[np.ndarray], np.ndarray]
    logpdf: Callable[[np.ndarray], np.ndarray]
    support: tuple = (-math.inf, math.inf)
    breakpoints: tuple = ()
    params: dict = field(default_factory=dict)
    dist: object = None
    ppf: Callable | None = None
    custom: bool = False
    loghazard_fn: Callable | None = None
    # the O(n) engine's knowledge of this family (numeric._fast): ``h`` on complex
    # arguments (Taylor tables by Cauchy's formula, numeric._fast_kernels) and the
    # grid / circle spec; None where the engine has no kernels for the family
    hazard_c: Callable | None = None
    # ``hazard_about(t, d) = h(t + d)`` for real centres ``t`` and complex offsets ``d``
    # (broadcast), where a form relative to the centre is more accurate than ``hazard_c``
    # (numeric._fast_kernels prefers it for its circles); None: ``hazard_c(t + d)``
    hazard_about: Callable | None = None
    fast: FastSpec | None = None
    # ``spread(M, spec, cache)(kL, kR, stride=1)``: log F on grid rows of the O(n) engine
    # from one row's bin moments, in place of the plain spreading (numeric._fast_grid.
    # _spread_convolve), where the family has a faster exact form (gumbel_min:
    # numeric._gumbel_min_tail)
    spread: Callable | None = None
    # the small-n kernel's constants and kernels (numeric._batch.SmallSpec) and the n = 2
    # closed form (numeric._closed): ``(log G, log G')``, G the CDF of the difference of
    # two noises; None where the family has none
    small: SmallSpec | None = None
    pair: tuple | None = None
    # what the engines may assume of the density (each registry family sets these in
    # ``_TRAITS`` with its reason; False, the safe value, for user families):
    # ``log_concave``: each integrand ``phi_i prod_(j != i) Phi_j`` has one peak
    # (numeric._quadrature then adds no panel edges around far scores);
    # ``hazard_at_most_one``: ``h = phi / Phi <= 1`` (numeric._quadrature drops kinks
    # where F is negligible); ``symmetric``: ``Phi(-x) = 1 - Phi(x)`` (``logsf``);
    # ``softmax``: ``p = softmax(mu / scale)`` exactly (the "softmax" route);
    # ``piecewise``: served by the O(n) engine numeric._piecewise at n >= 3
    log_concave: bool = False
    hazard_at_most_one: bool = False
    symmetric: bool = False
    softmax: bool = False
    piecewise: bool = False

    @property
    def kernel_key(self):
        """The family's identity for cached kernel tables: its name, with the shape
        parameters (not the scale: the engines see standardized scores)."""
        shape = tuple(sorted((k, v) for k, v in self.params.items() if k != "scale"))
        return self.name if not shape else (self.name,) + shape

    @property
    def scale(self) -> float:
        return float(self.params.get("scale", 1.0))

    @property
    def is_analytic(self) -> bool:
        return not self.breakpoints and self.support == (-math.inf, math.inf)

    def loghazard(self, x: ArrayLike) -> np.ndarray:
        """``log h(x) = log(phi(x)/Phi(x))``, the log of ``d log Phi / dx``.

        Built-in families use a dedicated cancellation-free kernel; user
        families fall back to ``logpdf - logcdf`` (``-inf`` where the
        density vanishes).
        """
        x = np.asarray(x, dtype=np.float64)
        if self.loghazard_fn is not None:
            return self.loghazard_fn(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.asarray(self.logpdf(x), dtype=np.float64)
            out = lp - np.asarray(self.logcdf(x), dtype=np.float64)
        return np.where(lp == -np.inf, -np.inf, out)

    def logsf(self, x: ArrayLike) -> np.ndarray:
        """``log(1 - Phi(x))``: ``log Phi(-x)`` for the symmetric registry families (exact
        however deep the right tail: ``-expm1(log Phi)`` underflows once the tail is below
        1e-308, e.g. student_t nu = 1000 at 1e8), else accurate in the right tail when
        ``logcdf`` is."""
        x = np.asarray(x, dtype=np.float64)
        if self.symmetric:
            return np.asarray(self.logcdf(-x), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(-np.expm1(np.asarray(self.logcdf(x), dtype=np.float64)))


# ---------------------------------------------------------------------------
# standard kernels
# ---------------------------------------------------------------------------


def _gumbel_logcdf(x):
    with np.errstate(over="ignore"):
        return -np.exp(-x)


def _gumbel_logpdf(x):
    with np.errstate(over="ignore"):
        return -x - np.exp(-x)


def _gumbel_min_logcdf(x):
    # Phi = 1 - exp(-t), t = e^x.
    #   x < -35: log(1 - e^{-t}) = x + log(1 - t/2 + t^2/6 ...) = x - t/2 + O(t^2)
    #            (t < 1e-15: the remainder is below 1e-31 relative)
    #   x > 0:   log1p(-e^{-t}) is accurate when e^{-t} is small
    #   else:    log(-expm1(-t))
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        t = np.exp(x)
        out = np.where(x > 0, np.log1p(-np.exp(-t)), np.log(-np.expm1(-t)))
    return np.where(x < -35, x - 0.5 * t, out)


def _gumbel_min_logpdf(x):
    with np.errstate(over="ignore"):
        return x - np.exp(x)


def _normal_logcdf(x):
    return special.log_ndtr(x)


def _normal_logpdf(x):
    return -0.5 * np.square(x) - _LOG_SQRT_2PI


def _logistic_logcdf(x):
    # log sigma(x) = -log(1 + e^{-x}) = -logaddexp(0, -x)
    return -np.logaddexp(0.0, -x)


def _logistic_logpdf(x):
    # phi = e^{-|x|} / (1 + e^{-|x|})^2  (symmetric)
    a = np.abs(x)
    return -a - 2.0 * np.log1p(np.exp(-a))


def _laplace_logcdf(x):
    # x < 0: e^x / 2;   x >= 0: 1 - e^{-x}/2
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.where(x < 0, x - _LOG2, np.log1p(-0.5 * np.exp(-np.abs(x))))


def _laplace_logpdf(x):
    return -np.abs(x) - _LOG2


def _exponential_logcdf(x):
    # log(1 - e^{-x}): log(-expm1(-x)) for x <= log 2, log1p(-e^{-x}) beyond (no cancellation)
    x = np.asarray(x, dtype=np.float64)
    xp = np.maximum(x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(xp > _LOG2, np.log1p(-np.exp(-xp)), np.log(-np.expm1(-xp)))
    return np.where(x > 0, out, -np.inf)


def _exponential_logpdf(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, -x, -np.inf)


def _uniform_logcdf(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(np.clip(x, 0.0, 1.0))


def _uniform_logpdf(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where((x >= 0) & (x <= 1), 0.0, -np.inf)


def _cauchy_logcdf(x):
    # For x < 0: 1/2 + atan(x)/pi = atan(-1/x)/pi  (no cancellation in the left tail)
    # For x > 0: 1 - atan(1/x)/pi  -> log1p(-atan(1/x)/pi)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / x
        left = np.log(np.arctan(-inv)) - _LOGPI
        right = np.log1p(-np.arctan(inv) / np.pi)
    out = np.where(x < 0, left, right)
    return np.where(x == 0, -_LOG2, out)


def _cauchy_logpdf(x):
    # -log(pi) - log(1 + x^2); for |x| > 1e150 x^2 overflows: use -2 log|x|
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    with np.errstate(over="ignore", divide="ignore"):
        small = -np.log1p(np.square(a))
        big = -2.0 * np.log(a)
    return np.where(a > 1e150, big, small) - _LOGPI


def _log_betacf(a, b, x, iters=400):
    """log of the continued fraction of the regularized incomplete beta function,
    ``I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * cf`` (modified Lentz; Numerical
    Recipes ``betacf``), vectorised over ``x``.  It converges fast for
    ``x < (a + 1) / (a + b + 2)``; the caller's ``x`` lies far below that (the
    tail is below 1e-280 there).  Each entry stops at its own first step that
    changes ``cf`` by at most 2 ulps (its ``h`` is frozen from then on: the entries
    reach that step at different iterations, and rounding keeps later steps of a
    converged entry near, not at, 1); an entry that never does raises
    ``FloatingPointError``."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < tiny, tiny, d)
    d = 1.0 / d
    c = np.ones_like(x)
    h = d.copy()
    done = np.zeros(h.shape, dtype=bool)
    for m in range(1, iters + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1.0 / d
            step = d * c
            h = np.where(done, h, h * step)
        done |= np.abs(step - 1.0) <= 4e-16
        if done.all():
            return np.log(h)
    raise FloatingPointError("student_t tail: incomplete beta continued fraction did not converge")


# integer nu with an elementary CDF (:func:`_t_int_tail`): even nu up to 64 (the
# polynomials grow like nu, and so would the cost) and nu = 1, 3, 5 (the odd form
# cancels by a factor growing like 2^(nu/2) where a < sqrt(nu)); other nu take stdtr
_T_INT = (1, 3, 5) + tuple(range(2, 65, 2))


@functools.lru_cache(maxsize=None)
def _t_int_coefficients(nu: int):
    """Float coefficients of the integer-``nu`` t tail (see :func:`_t_int_tail`), from
    exact rationals.  Even ``nu = 2m``: ``(P, R)``, ``P_k = (2k-1)!!/(2k)!!`` (k < m)
    and ``R = (1 - (1-x) P(x)^2) / x^m``, a polynomial (``P`` is the Taylor polynomial
    of ``(1-x)^{-1/2}`` to order m-1, so the numerator vanishes to order m) with m
    positive coefficients.  Odd ``nu = 2K+1``: ``(P, E)``, ``P_k = (2k)!!/(2k+1)!!``
    (k < K) and ``E_i = kappa e_(K+i) / pi`` (i <= 13), the Taylor coefficients of
    ``Q`` in ``phi`` (``Q = phi^nu sum_i E_i phi^(2i)``): with
    ``kappa = (2K)!!/(2K-1)!!``, ``Q = kappa / pi int_0^phi sin^2K``, and
    ``int_0^phi sin^2K = 2^-2K (C(2K, K) phi + sum_(l=1..K) (-1)^l C(2K, K-l) sin(2 l phi) / l)``
    ``= sum_j e_j phi^(2j+1)`` (``e_j = 0`` for ``j < K``)."""
    from fractions import Fraction

    if nu % 2 == 0:
        m = nu // 2
        P = [Fraction(1)]
        for k in range(1, m):
            P.append(P[-1] * Fraction(2 * k - 1, 2 * k))
        num = [Fraction(0)] * (2 * m)        # 1 - (1 - x) P(x)^2
        num[0] = Fraction(1)
        for i, a in enumerate(P):
            for j, b in enumerate(P):
                num[i + j] -= a * b
                num[i + j + 1] += a * b
        assert not any(num[:m]) and all(v > 0 for v in num[m:])
        return np.array([float(v) for v in P]), np.array([float(v) for v in num[m:]])
    K = (nu - 1) // 2
    P = [Fraction(1)]
    for k in range(K - 1):
        P.append(P[-1] * Fraction(2 * k + 2, 2 * k + 3))
    kappa = Fraction(1)
    for i in range(1, K + 1):
        kappa *= Fraction(2 * i, 2 * i - 1)
    E = []
    for j in range(K, K + 14):
        e = sum(Fraction((-1) ** (l + j) * math.comb(2 * K, K - l) * (2 * l) ** (2 * j + 1),
                         l * math.factorial(2 * j + 1)) for l in range(1, K + 1)) / 4 ** K
        if j == 0:
            e += 1
        E.append(float(kappa * e) / math.pi)
    return np.array([float(v) for v in P[:K]]), np.array(E)


def _horner(coef, x):
    """``sum_k coef[k] x^k`` (Horner; a scalar for one coefficient)."""
    if len(coef) == 1:
        return coef[0]
    out = coef[-1] * x
    out += coef[-2]
    for c in coef[-3::-1]:
        out *= x
        out += c
    return out


@functools.lru_cache(maxsize=None)
def _t_int_series(nu: int):
    """``(P, C, phi0)``: :func:`_t_int_coefficients` with the odd-``nu`` series ``C``
    cut to the terms it needs on its side ``phi <= phi0`` (the dropped ones below
    ``2^-55`` of the sum at ``phi0``).  Far side: ``a >= sqrt(nu)`` (even nu; odd nu:
    ``phi <= pi/4``), for nu = 3 ``phi <= 1/2`` (the near form cancels by at most 6.3
    there too, and the series needs fewer terms)."""
    P, C = _t_int_coefficients(nu)
    phi0 = 0.5 if nu == 3 else math.pi / 4.0
    if nu % 2 and nu > 1:
        mags = np.abs(C) * phi0 ** (2.0 * np.arange(C.size))
        total = float(np.dot(C, phi0 ** (2.0 * np.arange(C.size))))
        C = C[: int(np.flatnonzero(np.cumsum(mags[::-1])[::-1] > 2.0 ** -55 * total)[-1]) + 1]
    return P, C, phi0


def _t_int_tail(nu: int):
    """``(Q, log_Q)``: ``Q(a) = P[T > a]`` and ``log Q(a)`` for ``a >= 0`` (float64
    arrays) and integer ``nu`` in ``_T_INT``.

    With ``theta = atan(a / sqrt(nu))``, ``s = sin theta = a / sqrt(nu + a^2)``,
    ``c = cos theta``, ``x = c^2 = nu / (nu + a^2)``, the t CDF is elementary
    (Abramowitz & Stegun 26.7.3-4); written without cancellation:

    * even ``nu = 2m``: ``1 - 2 Q = s P(x)``, ``P(x) = sum_(k<m) (2k-1)!!/(2k)!! x^k``,
      so ``2 Q = 1 - s P = (1 - s^2 P^2) / (1 + s P) = x^m R(x) / (1 + s P(x))``
      with ``R`` a polynomial with positive coefficients
      (:func:`_t_int_coefficients`): all terms positive.  ``Q = (1 - s P) / 2``
      where ``s P <= 1/2`` (Q >= 1/4: no cancellation either);
    * odd ``nu = 2K + 1``, ``phi = atan(sqrt(nu) / a)``: for ``phi > phi0``
      ``Q = (phi - s c P(x)) / pi``, ``P(x) = sum_(k<K) (2k)!!/(2k+1)!! x^k``, which
      cancels by at most ``phi / (pi Q) <= 6.7`` there (``phi0 = pi/4``, nu = 5;
      ``phi0 = 1/2``, nu = 3: 6.3; the factor grows like 2^(nu/2), hence the limit
      on odd nu); for ``phi <= phi0`` the Taylor series
      ``Q = phi^nu sum_i E_i phi^(2i)`` (alternating, sum of magnitudes <= 1.8 times
      the sum, the terms kept: dropped ones below 2^-55 of it at ``phi0``).

    Powers are formed from the exact ``a``, never from a rounded ``a / sqrt(nu)`` (a
    power ``k`` multiplies that rounding by ``k``): for ``a >= sqrt(nu)``,
    ``c^nu = nu^(nu/2) a^-nu (1 + nu/a^2)^(-nu/2)`` and
    ``phi^nu = nu^(nu/2) a^-nu (atan(r)/r)^nu``, ``r = sqrt(nu) / a``.  ``log_Q``
    writes the same in logs (no underflow however large ``a``) and is meant for
    ``Q`` below the normal float range (``phi`` tiny: the series' first terms).  Measured against mpmath (40 digits) over
    ``|a|`` in 1e-300..1e300 and a fine grid on [-40, 40]: relative error of
    ``log F`` below 2e-15 (left tail below 1e-15), nu = 1..64.
    """
    P, C, phi0 = _t_int_series(nu)
    sq = math.sqrt(nu)
    even = nu % 2 == 0
    m = nu // 2
    half_lognu = 0.5 * math.log(nu)
    nu_half = nu ** (0.5 * nu)
    a2_far = float(nu) if even or nu == 1 else nu / math.tan(phi0) ** 2

    def parts(a):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            a2 = a * a
            big = a2 >= a2_far
            if even:
                w = np.where(big, nu / a2, a2 / nu)      # nu / a^2 or a^2 / nu
                opw = 1.0 + w
                x = np.where(big, w / opw, 1.0 / opw)
                s = np.where(big, 1.0 / np.sqrt(opw), np.sqrt(w / opw))
                sp = s * _horner(P, x)
                return big, w, x, sp
            r = sq / a
            at = np.arctan(r)                            # phi
            ratio = np.where(r == 0.0, 1.0, at / r)      # atan(r) / r, -> 1 as r -> 0
            return big, a2, at, ratio

    def tail(a):
        big, u, v, t = parts(a)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            if even:
                # nu_half a^-nu in two halves: a^-nu alone leaves the normal range (a > 10^(308/nu))
                # long before the tail does (nu = 64: from Q ~ 1e-250 on), and its subnormal
                # bits cost up to 1e-7 of Q
                lead = a ** (-0.5 * nu)
                lead = np.where(big, (nu_half * lead) * lead, 1.0)
                w, x, sp = u, v, t
                far = 0.5 * lead * np.exp(-m * np.log1p(w)) * _horner(C, x) / (1.0 + sp)
                return np.where(sp <= 0.5, 0.5 - 0.5 * sp, far)
            a2, at, ratio = u, v, t
            if nu == 1:
                return np.arctan2(1.0, a) / math.pi
            # nu = 3, 5: a^-nu by products (a few roundings, no pow call); phi = atan(r)
            # with r = sqrt(nu) / a rounded: harmless in the near form (cancellation <= 6.7)
            far = ratio * ratio
            far *= ratio if nu == 3 else far * ratio
            far *= nu_half
            far /= a2 * a if nu == 3 else a2 * a2 * a
            far *= _horner(C, at * at)
            nn = a2 + nu
            near = a * sq
            near /= nn                                   # s c
            if P.size > 1:
                near *= _horner(P, nu / nn)
            np.subtract(at, near, out=near)
            near *= 1.0 / math.pi
            return np.where(big, far, near)

    def log_tail(a):
        # a >= sqrt(nu) here (Q < 1e-290): the far forms in logs
        big, u, v, t = parts(a)
        lead = nu * (half_lognu - np.log(a))
        with np.errstate(divide="ignore"):
            if even:
                w, x, sp = u, v, t
                return lead - m * np.log1p(w) + np.log(_horner(C, x)) - _LOG2 - np.log1p(sp)
            at, ratio = v, t
            return lead + nu * np.log(ratio) + np.log(_horner(C, at * at))

    return tail, log_tail


def _log_gamma_half_ratio(z: float) -> float:
    """``log Gamma(z + 1/2) - log Gamma(z)``.  The difference of two ``gammaln`` values
    of size ``z log z`` keeps only their absolute rounding (1.9e-9 at z = 5e6, 3 at
    z = 5e14); for z >= 20 the Stirling series of the ratio (DLMF 5.11.8 with
    h = 1/2 and h = 0: terms ``(B_k(1/2) - B_k) / (k (k - 1) z^(k-1))``) is used instead:
    ``1/2 log z - 1/(8z) + 1/(192 z^3) - 1/(640 z^5) + 17/(14336 z^7) - 31/(18432 z^9)``,
    truncation below 1e-16 at z = 20 (next term ~4e-3 z^-11)."""
    if z < 20.0:
        return float(special.gammaln(z + 0.5) - special.gammaln(z))
    w = 1.0 / (z * z)
    series = -1 / 8 + w * (1 / 192 + w * (-1 / 640 + w * (17 / 14336 + w * (-31 / 18432))))
    return 0.5 * math.log(z) + series / z


# the deep left tail of student_t at nu >= _T_MILLS_NU: Gauss-Laguerre (see _log_t_mills)
_T_MILLS_NU = 1e6
_T_MILLS_RULE = np.polynomial.laguerre.laggauss(16)


def _log_t_mills(a, nu: float):
    """``log(Q(a) / f(a))``, ``Q(a) = P[T > a]``, ``f`` the t density, for ``a > 35``
    and ``nu >= 1e6`` (float64 arrays ``a``).

    ``Q(a) / f(a) = int_0^inf f(a + s) / f(a) ds`` and ``f(a + s) / f(a) = e^-z`` with
    ``z = (nu + 1)/2 log1p(s (2a + s) / (nu + a^2))``: with ``k = 2 / (nu + 1)``,
    ``E = expm1(k z)``, ``w = nu / a^2``, ``s (2a + s) = a^2 (1 + w) E`` and

        Q / f = int_0^inf e^-z s'(z) dz,  s'(z) = a (1 + w) k (1 + E) / (2 sqrt(1 + (1 + w) E)),

    by the 16-point Gauss-Laguerre rule.  ``s'`` is ``e^(kz)`` (entire, Taylor
    coefficients ``k^j / j!``) times ``(1 + z/c)^(-1/2)`` up to ``O(k z)``, with
    ``c = 1 / ((1 + w) k) = (nu + 1) a^2 / (2 (nu + a^2)) >= min(a^2, nu + 1) / 4``;
    the rule's error ``(n!)^2 / (2n)! |s'^(2n)|`` is then below ``(16!)^2 / c^32``
    relative, < 1e-50 at ``c >= 300`` (a > 35, nu >= 1e6), and every term is
    positive.  The beta continued fraction (:func:`_log_betacf`) needs ``1 - x`` with
    ``x = nu / (nu + a^2)`` to relative precision, which ``x`` itself loses for
    ``a^2 / nu`` below an ulp (it stops converging at nu ~ 1e20); no normal
    substitute either: ``log F_t - log Phi ~ a^4 / (4 nu)`` is 0.25 at nu = 1e20,
    a = 1e5."""
    z, wts = _T_MILLS_RULE
    a = np.asarray(a, dtype=np.float64)[..., None]
    k = 2.0 / (nu + 1.0)
    w = (nu / a) / a
    E = np.expm1(k * z)
    ds = a * ((1.0 + w) * k) * (1.0 + E) / (2.0 * np.sqrt(1.0 + (1.0 + w) * E))
    return np.log(ds @ wts)


def _student_t_kernels(nu: float):
    half = _log_gamma_half_ratio(nu / 2.0)
    lognorm = half - 0.5 * math.log(nu * math.pi)
    # log P[T < -a] = log(1/2) + log I_x(nu/2, 1/2), x = nu / (nu + a^2), written in logs:
    # I_x(p, q) = x^p (1 - x)^q cf / (p B(p, q)), log x = log nu - log(nu + a^2),
    # log(1 - x) = 2 log a - log(nu + a^2); cf from _log_betacf;
    # log B(nu/2, 1/2) = log Gamma(1/2) - (log Gamma(nu/2 + 1/2) - log Gamma(nu/2))
    lconst = -math.log(2.0) - math.log(nu / 2.0) - 0.5 * math.log(math.pi) + half

    def log_left_tail(a):
        # used where stdtr is below 1e-280 (subnormal or 0: for nu = 300, a = 200 the
        # tail is e^-737 and stdtr keeps ~14 bits; for nu = 100, a = 3e4 it is 0); at
        # nu >= 1e6 the t tail lies above the normal one, so a > 35 (Phi(-35.7) ~ 1e-280)
        if nu >= _T_MILLS_NU:
            return logpdf(-a) + _log_t_mills(a, nu)
        la = np.log(a)
        with np.errstate(over="ignore"):
            l_nu_a2 = np.where(a > 1e150, 2.0 * la + np.log1p(nu / np.square(np.minimum(a, 1e150))),
                               np.log(nu + np.square(a)))
        # log x enters times nu/2: as log nu - log(nu + a^2) it carries nu/2 ulps of
        # log nu (2e-11 absolute at nu = 1e5); -log1p(a^2 / nu) is exact to an ulp of itself
        lx = np.where(a > 1e150, math.log(nu) - l_nu_a2, -np.log1p(np.square(np.minimum(a, 1e150)) / nu))
        l1x = 2.0 * la - l_nu_a2
        return lconst + 0.5 * nu * lx + 0.5 * l1x + _log_betacf(nu / 2.0, 0.5, np.exp(lx))

    def _stdtr_logcdf(x):
        # stdtr is accurate in the left tail (relative) down to ~1e-280; on the right use
        # log1p(-left tail); one stdtr call: s = F(-|x|), the tail on the side of x
        x = np.asarray(x, dtype=np.float64)
        ax = np.abs(x)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
            s = special.stdtr(nu, -ax)
            deep = (s < 1e-280) & np.isfinite(ax)
            left = np.log(s)
            if deep.any():
                left = np.where(deep, 0.0, left)
                left[deep] = log_left_tail(ax[deep])
            right = np.where(deep, -np.exp(left), np.log1p(-s))
        out = np.where(x < 0, left, right)
        # x = -inf: log 0; x = +inf: log 1
        return np.where(np.isneginf(x), -np.inf, np.where(np.isposinf(x), 0.0, out))

    if nu in _T_INT:
        tail, log_tail = _t_int_tail(int(nu))

        def logcdf(x):
            # x < 0: log Q(-x); x >= 0: log1p(-Q(x)) (Q <= 1/2: no cancellation); Q below
            # 1e-290 (normal floats keep full relative precision above): log_tail
            x = np.asarray(x, dtype=np.float64)
            a = np.abs(x)
            q = tail(a)
            with np.errstate(divide="ignore"):
                out = np.where(x < 0, np.log(q), np.log1p(-q))
            deep = (q < 1e-290) & (x < 0)
            if deep.any():
                out[deep] = log_tail(a[deep])
            return out
    else:
        logcdf = _stdtr_logcdf

    def logpdf(x):
        x = np.asarray(x, dtype=np.float64)
        a = np.abs(x)
        # log(1 + x^2/nu): for huge |x| use 2 log|x| - log nu to avoid overflow
        with np.errstate(over="ignore", divide="ignore"):
            l1 = np.where(a > 1e150, 2.0 * np.log(a) - math.log(nu), np.log1p(np.square(a) / nu))
        return lognorm - 0.5 * (nu + 1) * l1

    return logcdf, logpdf


@functools.lru_cache(maxsize=None)
def _t_hazard_c(nu: float):
    """:func:`_t_int_hazard_c`, built once per ``nu``."""
    return _t_int_hazard_c(int(nu))


_T_SEG_NG = 16   # Gauss-Legendre nodes on the segment t -> t + d


@functools.lru_cache(maxsize=64)
def _t_seg_hazard(nu: float):
    """``(hazard_about, hazard_c)`` of student_t for any ``nu``: ``h(t + d)`` for real
    ``t``, complex ``d``, relative to the centre,

        h(t + d) = h(t) r(d) / (1 + h(t) d int_0^1 r(s d) ds),
        r(d) = f(t + d) / f(t) = ((nu + (t + d)^2) / (nu + t^2))^(-(nu+1)/2),

    since ``F(t + d) = F(t) + d int_0^1 f(t + s d) ds`` along the segment and
    ``h(t) = f(t) / F(t)``.  ``h(t)`` is the real kernel's (``logpdf - logcdf``);
    ``r`` is a power of a ratio of size ~1 formed without cancellation (``nu + z^2``
    stays away from 0 off the singularities), so every circle point carries a few
    ulps of rounding, and the error of ``h(t)`` is one factor common to the
    circle (an analytic perturbation: it moves the Taylor coefficients by the same
    relative amount, it is not noise the FFT spreads over them).  ``f`` is analytic
    off ``+-i sqrt(nu)``; on the circles of numeric._fast_kernels (radius 1/4 about
    any ``t``, ``0.6 |t|`` about ``|t| >= 4``) the segment keeps at least 2.6 half
    lengths from them (``1 <= nu <= 6``, ``|t| >= 4``; ``(sqrt(nu) - 1/4) / (1/8) >= 6``
    on the small circles), so the 16-point rule errs below ``5^-32``.  ``h`` itself is
    analytic on those circles: they lie in ``|Im z| <= max(0.3, 0.75 |Re z|)``, where
    ``Phi`` has no zero -- the argument principle on that region's boundary out to
    ``|Re z| = 1.6e6`` gives winding number 0 for ``nu = 1.05, 1.5, 2.5, 3.5, 4.5, 5.5``
    (tests/test_numeric_families.py), and beyond, ``Phi`` tends to ``c |z|^-nu`` on the
    left and to 1 on the right.
    ``hazard_c(z)`` takes ``t = Re z``, ``d = i Im z`` (the vertical segment).
    Measured against mpmath's incomplete beta (40 digits) on both circles for
    ``nu = 2.5, 3, 5.5`` and against :func:`_t_int_hazard_c` at ``nu = 3``
    (tests/test_numeric_families.py).

    >>> about, _ = _t_seg_hazard(2.5)
    >>> bool(abs(about(np.array(0.0), np.array(0.0j)) - 2 * math.exp(_student_t_parts(2.5)[1](np.array(0.0)))) < 1e-15)
    True
    """
    logcdf, logpdf, _ = _student_t_parts(nu)
    xi, wi = np.polynomial.legendre.leggauss(_T_SEG_NG)
    sj, wj = 0.5 * (xi + 1.0), 0.5 * wi
    a = -0.5 * (nu + 1.0)

    def about(t, d):
        t = np.asarray(t, dtype=np.float64)
        d = np.asarray(d, dtype=np.complex128)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            tf = t.ravel()
            h = np.exp(logpdf(tf) - logcdf(tf)).reshape(t.shape)
            den = 1.0 / (nu + t * t)
            integral = np.zeros(np.broadcast(t, d).shape, dtype=np.complex128)
            for s, w in zip(sj, wj):
                z = t + s * d
                integral += w * np.exp(a * np.log((nu + z * z) * den))
            z = t + d
            r = np.exp(a * np.log((nu + z * z) * den))
            return h * r / (1.0 + h * d * integral)

    def hazard(z):
        z = np.asarray(z, dtype=np.complex128)
        return about(z.real, 1j * z.imag)

    return about, hazard


@functools.lru_cache(maxsize=64)
def _student_t_parts(nu: float):
    """``(logcdf, logpdf, frozen scipy.stats.t)`` for one ``nu``, built once: building
    them (the frozen distribution above all) costs far more than a short row's
    probabilities, and every public call resolves its family."""
    return _student_t_kernels(nu) + (stats.t(nu),)


# ---------------------------------------------------------------------------
# log reverse hazards  log h = log(phi/Phi), written without cancellation
# ---------------------------------------------------------------------------


def _gumbel_loghazard(x):
    # log Phi = -e^{-x}  =>  h = (log Phi)' = e^{-x}
    return -np.asarray(x, dtype=np.float64)


def _gumbel_min_loghazard(x):
    # h = e^x e^{-t} / (1 - e^{-t}) = e^x / expm1(t),  t = e^x
    #   t <= 700: log h = x - log(expm1(t)) (expm1 to an ulp, so the log is off by about
    #             an ulp of itself; three transcendentals, the hot loop of the O(n) engine's
    #             narrow-integrand rules)
    #   t > 700:  expm1 overflows; log expm1(t) = t + log1p(-e^{-t}) = t (e^{-t} < 1e-304)
    #   x < -30:  log expm1(t) = x + log(expm1(t)/t) = x + t/2 + O(t^2)   => log h = -t/2
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        t = np.exp(x)
        v = np.log(np.expm1(np.minimum(t, 700.0)))
        out = np.where(t > 700.0, x - t, x - v)
    return np.where(x < -30, -0.5 * t, out)


def _normal_loghazard(x):
    # x < 0: Phi(x) = erfcx(-x/sqrt2) e^{-x^2/2} / 2  =>  h = sqrt(2/pi) / erfcx(-x/sqrt2)
    #        (no exp(-x^2/2) ever formed, valid down to -1e308)
    # x >= 0: logpdf - log_ndtr, log_ndtr(x) ~ -sf(x) tiny, no cancellation
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        neg = 0.5 * math.log(2.0 / math.pi) - np.log(special.erfcx(-np.minimum(x, 0.0) / math.sqrt(2.0)))
        pos = _normal_logpdf(np.maximum(x, 0.0)) - special.log_ndtr(np.maximum(x, 0.0))
    return np.where(x < 0, neg, pos)


def _logistic_loghazard(x):
    # h = phi/Phi = sigma(-x)
    return -np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def _laplace_loghazard(x):
    # x < 0: phi = Phi = e^x/2 => h = 1;  x >= 0: h = e^{-x}/(2 - e^{-x})
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        pos = -x - np.log(2.0 - np.exp(-np.maximum(x, 0.0)))
    return np.where(x < 0, 0.0, pos)


def _exponential_loghazard(x):
    # x > 0: h = e^{-x}/(1 - e^{-x}) = 1/expm1(x);  x > 30: -x - log1p(-e^{-x})
    # x <= 0: Phi = 0 (outside the support): +inf (the engine masks it with log F = -inf)
    x = np.asarray(x, dtype=np.float64)
    xp = np.maximum(x, 1e-300)
    with np.errstate(over="ignore", divide="ignore"):
        small = -np.log(np.expm1(xp))
        big = -xp - np.log1p(-np.exp(-xp))
    out = np.where(xp > 30, big, small)
    return np.where(x > 0, out, np.inf)


def _uniform_loghazard(x):
    # 0 < x <= 1: h = 1/x;  x > 1: phi = 0;  x <= 0: Phi = 0 (+inf, masked by the engine)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        inside = -np.log(np.clip(x, 1e-320, 1.0))
    return np.where(x > 1, -np.inf, np.where(x > 0, inside, np.inf))


_HAZARD = {
    "gumbel": _gumbel_loghazard,
    "gumbel_min": _gumbel_min_loghazard,
    "normal": _normal_loghazard,
    "logistic": _logistic_loghazard,
    "laplace": _laplace_loghazard,
    "exponential": _exponential_loghazard,
    "uniform": _uniform_loghazard,
}


# ---------------------------------------------------------------------------
# the O(n) engine's knowledge: h on complex arguments, grid and circle specs
# ---------------------------------------------------------------------------
#
# numeric._fast_kernels takes the Taylor coefficients b_r(t) = h^(r)(t) / r! from
# Cauchy's formula on a circle of radius rho (N points) around each real t; its
# aliasing error b_(r+N) rho^N is small when rho is well inside the disc where h is
# analytic.  The radius of that disc, per family: the normal >= 2.8 (nearest zero of
# Phi at 1.92 +- 2.82 i), the logistic pi (poles of sigma at +-i pi), the cauchy 1
# (z = +-i), the gumbel_min pi/2 (e^z = 2 pi i k), student_t sqrt(nu) (below).  So
# rho = 1/2, N = 32 (normal, logistic), rho = 1/4, N = 32 (gumbel_min) and rho = 1/4,
# N = 64 (cauchy, student_t) leave < 1e-20.


def _normal_hazard_c(z):
    # h = phi / Phi = exp(-z^2/2 - log sqrt(2 pi) - log Phi(z)); log_ndtr is complex-capable.
    return np.exp(-0.5 * z * z - _LOG_SQRT_2PI - special.log_ndtr(z))


def _logistic_hazard_c(z):
    # h = sigma(-z) = 1 / (1 + e^z); for Re z > 0 write e^{-z} / (1 + e^{-z}) (no overflow).
    pos = z.real > 0
    with np.errstate(over="ignore"):
        e = np.exp(np.where(pos, -z, z))
    return np.where(pos, e / (1.0 + e), 1.0 / (1.0 + e))


def _cauchy_hazard_c(z):
    # Phi = 1/2 + atan(z)/pi; for Re z < 0 use atan(-1/z)/pi (no cancellation, the
    # identity atan(z) + atan(1/z) = -pi/2 holds on the open left half plane).
    left = z.real < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf = np.where(left, np.arctan(-1.0 / z) / np.pi, 0.5 + np.arctan(z) / np.pi)
    pdf = 1.0 / (np.pi * (1.0 + z * z))
    return pdf / cdf


def _gumbel_min_hazard_c(z):
    # Phi = 1 - exp(-y), y = e^z: h = y / expm1(y) = y e^-y / (-expm1(-y)); the
    # second form for Re y > 1 (no overflow of exp(y)).  Poles where
    # expm1(y) = 0, y = 2 pi i k: Im z = +-pi/2, so rho = 1/4 keeps aliasing < 1e-25.
    y = np.exp(z)
    big = y.real > 1.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        small_form = y / np.expm1(y)
        big_form = y * np.exp(-y) / (-np.expm1(-y))
    return np.where(big, big_form, small_form)


def _ipow(z, k: int):
    """``z^k`` for an integer ``k >= 1`` by repeated squaring (complex ``**`` goes
    through exp and log: several times slower, and not exact for real powers)."""
    out = None
    while True:
        if k & 1:
            out = z if out is None else out * z
        k >>= 1
        if not k:
            return out
        z = z * z


def _t_int_hazard_c(nu: int):
    """``h = phi / Phi`` of student_t with integer ``nu`` in ``_T_INT``, on complex ``z``
    with ``|Im z| < sqrt(nu)``, from the elementary forms of :func:`_t_int_tail`
    continued analytically; ``Phi(z) = Q(-z)`` for ``Re z < 0`` and ``1 - Q(z)``
    else, ``a`` the argument of ``Q`` (``Re a >= 0``), ``r = sqrt(nu + a^2)``
    (principal root: ``nu + a^2`` stays off the negative axis for ``|Im a| <
    sqrt(nu)``), ``x = nu / r^2``, ``phi(a) = K x^((nu+1)/2)``:

    * even ``nu = 2m``: ``2 Q = x^m R(x) / (1 + s P(x))``, ``s = a / r``; in the
      left tail ``h = 2 K sqrt(x) (1 + s P) / R(x)`` (the ``x^m`` cancels: no
      underflow however far out);
    * odd ``nu``: ``sin(phi) = sqrt(nu) / r``, ``cos(phi) = a / r`` with ``phi =
      atan(sqrt(nu) / a)`` taken as ``pi/2 - atan(a / sqrt(nu))`` for ``|a| <
      sqrt(nu)`` (the principal ``atan`` of ``sqrt(nu) / a`` has its cut there);
      ``Q = (phi - sin cos P(sin^2)) / pi``, or the series ``phi^nu E(phi^2)``
      for ``|phi| <= phi0``, where the left-tail hazard is
      ``K (sin phi / phi)^nu sin phi / E(phi^2)`` (no underflow).

    Singularities of ``h``: the density's poles / branch points at ``+-i sqrt(nu)``
    and the zeros of ``Phi``.  Newton's method from a grid over ``|Re z| <= 40,
    0 < Im z <= 40``, each root checked with mpmath's 2F1 form of ``Phi``, finds no
    zero for ``nu <= 10`` (so for the served ``nu = 2..6``); for larger ``nu`` the
    nearest lie off the strip, e.g. ``-338 +- 4096 i`` (``nu = 12``), ``-3.4 +- 15.6 i``
    (``nu = 64``, ``1.95 sqrt(nu)``).  So ``h`` is analytic in ``|Im z| < sqrt(nu)``:
    a circle of radius 1/4 around any real point (``N = 64``: aliasing ``< 4^-64``),
    and around ``+-t`` in the disc of radius ``sqrt(t^2 + nu) > t`` that the far
    field of numeric._fast_cauchy needs (multipole ratio ``<= 1/2``, circle radius
    ``0.6 t``).  Tested against mpmath on both circles (tests/test_numeric_families.py):
    within 1e-14 relative.
    """
    P, C = _t_int_coefficients(nu)
    sq = math.sqrt(nu)
    lognorm = _log_gamma_half_ratio(nu / 2.0) - 0.5 * math.log(nu * math.pi)
    K = math.exp(lognorm)
    even = nu % 2 == 0
    m = nu // 2
    phi0 = 0.5 if nu == 3 else math.pi / 4.0

    def hazard(z):
        z = np.asarray(z, dtype=np.complex128)
        left = z.real < 0
        a = np.where(left, -z, z)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            r = np.sqrt(nu + a * a)
            x = nu / (r * r)
            if even:
                sP = (a / r) * _horner(P, x)
                Rx = _horner(C, x)
                sqx = sq / r
                h_left = 2.0 * K * sqx * (1.0 + sP) / Rx
                xm = _ipow(x, m)
                q = xm * Rx / (2.0 * (1.0 + sP))
                h_right = K * xm * sqx / (1.0 - q)
                return np.where(left, h_left, h_right)
            sn, cs = sq / r, a / r
            far = np.abs(a) >= sq
            phi = np.empty_like(a)                       # (complex atan: one branch per point)
            phi[far] = np.arctan(sq / a[far])
            phi[~far] = 0.5 * math.pi - np.arctan(a[~far] / sq)
            series = np.abs(phi) <= phi0
            E = _horner(C, phi * phi)
            near = phi - sn * cs * (_horner(P, sn * sn) if P.size else 0.0)
            near /= math.pi
            q = np.where(series, _ipow(phi, nu) * E, near)
            snp = _ipow(sn, nu + 1)
            h_left = np.where(series, K * _ipow(sn / phi, nu) * sn / E, K * snp / near)
            h_right = K * snp / (1.0 - q)
            return np.where(left, h_left, h_right)

    return hazard


def _normal_gamma_rho(t):
    """Cauchy-formula radius for the normal's hazard Taylor tables out to ``t = 37``
    (``FastSpec.gamma_log``): 1/2 up to ``t = 4``, then ``2 / t``.  On the circle
    ``|h| <~ e^(t rho) h(t)``, so the FFT's rounding (1e-16 of max |h| on the circle)
    enters ``b_r delta^r`` as ``1e-16 e^(t rho) (delta / rho)^r <= 7.4e-16 0.58^r``
    (``delta <= H/2 = 1/32``); aliasing ``(t rho)^(r + 64) / (r + 64)! <= 2^64 / 64!``
    is negligible.

    >>> _normal_gamma_rho(np.array([1.0, 8.0])).tolist()
    [0.5, 0.25]
    """
    return np.where(t > 4.0, 2.0 / np.maximum(t, 4.0), 0.5)


# grid and circle specs (numeric._fast_kernels.FastSpec)
# VJPs' Gamma tables (FastSpec.gamma: cut t_c, orders R, circle rho and N points): h has
# fallen to e^-74 / e^-93 / e^-85 at t_c (normal / logistic / gumbel_min).  Truncation of
# one term at bin offset |delta| <= H/2, relative to the term h(t), t <= t_c:
#   normal (b_r / h ~ He_r(t) / r!):      (t_c H/2)^(R+1) / (R+1)! e^(t_c H/2) = 7e-16
#   logistic (h ~ e^-t: b_r / h <= 1/r!):  (H/2)^(R+1) / (R+1)!                 = 6e-15
#   gumbel_min (h ~ e^(t - e^t)):          (e^t_c H/2)^(R+1) / (R+1)!           = 3e-17
# The circle of radius rho and N points aliases b_(r+N) rho^N into b_r: relative to h that
# is (t rho)^(r+N) / (r+N)! (normal, 6^65 / 65! ~ 1e-40), (e^t rho)^(r+N) / (r+N)!
# (gumbel_min, 2.8^53 / 53!); the FFT's rounding, 1e-16 of max |h| on the circle
# (e^(e^t rho) = 16 times h for the gumbel_min), enters b_r delta^r times (delta / rho)^r
# <= 2^-r.  On the left (t < 0) h is smooth and at most |t| + 1.
# The log-p VJP's weights 1/p_j of low entries make the tails of h_j far above z_j
# matter: with the normal's cut at 12 nearly every term of such a row is a far term,
# summed one by one in log space (n = 1e5, spread 45: ~1e8 terms).  Its tables for
# log p (FastSpec.gamma_log) are cut at t_c = 37 instead (h(37) ~ e^-690, so weights up
# to e^600 per band leave the far terms below the float range of the near ones), with
# R = 16: truncation (t delta)^(R+1) / (R+1)! e^(t delta) relative to the term,
# delta <= H/2, is 1e-13 at t = 37 and 5e-17 at t = 24.
# vjp_refine_span: VJP rows the grid cannot resolve (gumbel_min: weights 1/p_j of entries
# far below the top; normal: blocks of ~1e4 near-tied scores) are redone on a finer grid
# when their standardized spread is at most this (numeric._fast._REFINE).
_FAST = {
    # normal: f ~ -phi(t)/t on the right, |f| < 1e-40 for t > 13.3; the top
    # entry's integrand is below e^-45 p for x < max z - 10.5 (n <= 1e7).
    # m nodes every 2 grid steps with a 16-point stencil: at rounding level
    # against ms = 1 (<= 4.4e-16 of max(1, |log p|), n = 300..1e5, spreads 0.3..20;
    # q = 12: 3e-15)
    # Row-batched engine (RowsSpec): the dense VJPs' Gamma tables span every bin and column
    # ((R + 1) P x (P + pads) entries: 16 MB at P = 320 for the normal, 14 MB at P = 160
    # for the logistic, whose pads are 64 units), so they take rows of at most p_max
    # bins, log p and the one-hot VJPs rows of up to p_wide.  Longest rows: beyond
    # n_max_probs the per-row engine is as fast on rows of distinct scores and faster on
    # the rows this one would decline after most of its work (normal: blocks of thousands
    # of near-tied scores make integrands narrower than the grid; gumbel_min: the
    # integrands of scores below many others are ~1/sqrt(#above) wide, so nearly every row
    # from n ~ 1000 on); the VJPs run in column chunks and take long rows up to n_max_vjp
    # (normal, gumbel_min: beyond 2^16 the integrands of low nodes become narrower than the
    # grid -- log F curves like the number of scores above -- and most rows fail the
    # half-step check, which the per-row engine's local refinement serves).  Tilts: the
    # normal's log h(t) + c t peaks near t = c, so the tilt nearest a node's peak offset
    # t* keeps its terms within ~(t* - c)^2 of 1; the logistic's (log h)' lies in (-1, 0)
    # and h F <= 1 needs no tilt, nor does the gumbel_min's (h(t) = u / (e^u - 1) < 1).
    "normal": FastSpec(H=0.0625, R=8, pad_left=11.5, pad_right=11.5, t_right=13.5, ms=2, q=16,
                       gamma=(12.0, 12, 0.5, 64), gamma_log=(37.0, 16, _normal_gamma_rho, 64),
                       vjp_refine_span=14.0,
                       rows=RowsSpec(p_max=320, p_wide=768, n_max_probs=1 << 14, n_max_vjp=1 << 16,
                                     tilts=tuple(range(0, 57, 8)))),
    # logistic: f ~ -e^{-t}, |f| < 1e-40 for t > 92; F(x) <= e^{x - max z}
    # (left pad 45 + log n) and h(t) = e^{-t} (right pad 45 + log n).
    "logistic": FastSpec(H=0.125, R=7, pad_left=64.0, pad_right=64.0, t_right=93.0,
                         gamma=(93.0, 7, 0.5, 32),
                         rows=RowsSpec(p_max=160, p_wide=384, n_max_probs=1 << 16, n_max_vjp=1 << 21)),
    # gumbel_min: f = log(1 - exp(-e^t)) ~ -exp(-e^t), |f| < 1e-40 for t > 4.52;
    # its derivatives grow like e^(r t) times that, so a finer grid (H = 1/32);
    # R = 8 agrees with R = 10 to the last bit (n = 300..1e5, spreads 0.05..20;
    # R = 7 within 4e-16, R = 5 off by 6e-13); h ~ e^(t - e^t) on the
    # right (pad 6), F <= e^(n (x - max z)) on the left (pad 12, n >= 16).
    # (m nodes every 2 grid steps: <= 8e-16 of max(1, |log p|) against ms = 1)
    # Row-batched: rows up to p_wide bins of 1/32 (10 units of spread): further below the
    # top the integrands of low nodes, h(x - m) F with log h(t) ~ t - e^t, become narrower
    # than the grid resolves (second difference ~ e^(x - m) H^2 > 0.35); dense VJPs of rows
    # within p_max mostly fail the T2 checks (narrow, shifting peaks of h F Gamma), so the
    # per-row engine, which refines on local grids, serves them without a batched attempt;
    # narrow integrands take the Gaussian half-step bound (numeric._fast_rows._half_tol).
    # VJP rows refined (numeric._fast._REFINE) up to a spread of 48: the log-p VJP of
    # s * N(0, 1) rows, s >= 3, needs the finer grid (log(F Gamma) bends on the scale
    # 1 / sqrt(#scores above) of the low entries' integrands, below H for n ~ 1000), whose
    # cost grows like the spread squared and stays below the quadrature's for n >= 1000
    # up to that spread (the quadrature's grows like n); rows whose finer grids cost more
    # than the quadrature's estimate (few scores) are declined by the cost model of _Geo.
    "gumbel_min": FastSpec(H=0.03125, R=8, pad_left=12.0, pad_right=6.0, t_right=4.6, rho=0.25,
                           quad_us=300.0, ms=2, gamma=(4.5, 20, 0.03125, 32), vjp_refine_span=48.0,
                           node_vjp=True,
                           rows=RowsSpec(p_max=160, p_wide=320, n_max_probs=1 << 10, n_max_vjp=1 << 16,
                                         dense=False, gauss_agree=True)),
    # cauchy: the grid is only the near field |x - c| <= 4a + 8 (numeric._fast_cauchy);
    # f = log Phi never drops below 1e-40 on the grid, so no right cut: t_right bounds the
    # offsets x - z_j the grid can hold, |x - z_j| <= 1.7 (max z - min z) + 5 + H <= 345.1
    # (pads 5 + 0.7 times the range, ranges <= 200), and the tables stop there; the
    # poles of h at +-i need a small circle (rho = 1/4, 64 points).
    "cauchy": FastSpec(H=0.0625, R=10, pad_left=5.0, pad_right=5.0, t_right=350.0,
                       pad_factor=0.7, rho=0.25, ncirc=64, ms=1, q=12, heavy=True),
}
# student_t: cauchy's spec (algebraic tails, the near field on the grid, multipoles
# beyond): h is analytic in |Im z| < sqrt(nu) >= 1, so every truncation bound of the
# cauchy (singularities at distance 1) holds as it stands.  The rounding does not: the
# far field takes b_k(t) from a circle of radius 0.6 t, where the right tail
# h ~ t^-(nu+1) reaches 2.5^(nu+1) times h(t), and the FFT's rounding (1e-16 of that
# maximum) comes back in h(t - d) for d up to -t/2 amplified by up to 3.75^(nu+1):
# 2e-14 at nu = 3, 4e-12 at nu = 8.  Measured against quadrature (n = 300..400: s N(0,1)
# rows s = 1..10, a linear spread of 60, ties, one score 40 above the rest): |error of
# log p| <= 7e-15 for nu <= 6, 1.7e-13 at nu = 8, 4.5e-10 at nu = 12.  So the engine
# serves real nu in [1, 6] (nu = 1 is the cauchy itself; below 1 the strip |Im z| <
# sqrt(nu) is narrower than the cauchy's, which the near field's panels and the
# spreading's orders are sized for): integer nu with the closed-form hazard
# (_t_int_hazard_c), the others with the segment form about each circle's centre
# (_t_seg_hazard; its rounding on the far field's right-tail circles is that of the closed
# form, and log p against quadrature at n = 300 for nu = 1.05, 1.2, 1.5, 2.0001, 2.5, 3.5,
# 5.5 on the rows above was within 7.2e-16 max(1, |log p|), p within 1.4e-14; VJPs at
# nu = 1.05, 1.5, 2.5, 4.5 within 1.9e-14 of the row scale).  The far-field panels are
# laid out in u = nu s (FastSpec.tail): F's rise there, e^(-n c x^-nu), is as sharp in u
# for every nu.
_T_FAST = (1.0, 6.0)


@functools.lru_cache(maxsize=None)
def _t_fast(nu: float) -> FastSpec:
    """student_t's spec: the cauchy's, with its tail index (far-field panels scale by 1/nu)."""
    return dataclasses.replace(_FAST["cauchy"], tail=float(nu))
# log F on the O(n) engine's grid with the far scores in closed form (NumericFamily.spread)
_SPREAD = {"gumbel_min": _GumbelMinSpread}
_HAZARD_C = {
    "gumbel_min": _gumbel_min_hazard_c,
    "normal": _normal_hazard_c,
    "logistic": _logistic_hazard_c,
    "cauchy": _cauchy_hazard_c,
}

# the small-n kernel's specs (numeric._batch.SmallSpec).  grid: pass 1 puts normal rows on
# the shared grid x_k = k h(n) (a-priori step, no core), the other families on row-placed
# core maps; pass 2: x = c_i + s_i map(t), map MAP, step HH2, reach XL/XR.
# core: HH is the step at n <= 10 (x' ~ 1: the node spacing on the core), scaled by
# (10 / n)^HX (default 0.27: F's n factors grow off the real axis like a power n); the
# steps are the largest that certified every row of s * N(0, 1) scores (s = 1, 2, 5) and
# of clustered rows with ties at n = 3 .. 255, less a margin; PL(n): left reach below the
# lowest score; XR: right reach (times spread^XRP).
# PMIN (logistic): h(d) = 1 / (1 + e^d) >= e^-d / 2 on [0, 1] (numeric._batch._lin_rows).


def _cauchy_small_step(n: int) -> float:
    """The cauchy core step of the small-n kernel for rows of length ``n``:
    ``0.085 (10/n)^0.1`` up to n = 100, then ``0.0675 (100/n)^0.53``.

    Two limits meet here.  On s N(0, 1) rows (s = 1, 2, 5) and clustered rows with ties,
    the even/odd disagreement at 1.25 times ``0.085 (10/n)^0.2`` stays at rounding level
    (<= 3.6e-15, against AGREE = 3e-14) from n = 30 on (1.5 times: 1.9e-12 at n = 30,
    2.4e-14 at n = 100), so the step may grow like ``(10/n)^0.1``.  Tight rows (s <= 0.3)
    at large n are stricter: their mass sits near the maximum of n Cauchy draws, ``x ~ n/pi``,
    on the exponential part of the map, where ``F = e^(-n/(pi x))`` rises like a Gumbel
    density in u whose growth off the axis increases with n; there the largest certifying
    step falls faster (measured: 0.063 declines most rows at n = 200, 0.0446 23 of 160
    at n = 255), and ``(100/n)^0.53`` meets ``0.085 (10/n)^0.2`` at n = 200 and stays below it
    beyond (0.041 at n = 255).  Measured with this step on 270 rows per n (s = 0.01 .. 20,
    clusters, ties; n = 3 .. 255): disagreement <= 2.5e-15, no row declined."""
    n = max(n, 10)
    if n <= 100:
        return 0.085 * (10.0 / n) ** 0.1
    return 0.085 * 0.1 ** 0.1 * (100.0 / n) ** 0.53


_SMALL = {
    "normal": SmallSpec(
        grid=dict(MAP="soft", XL=4.0e3, HH2=0.25, LO=-37.0, HI=37.5, LIN_MAX=math.inf),
        parts=_normal_parts, log_c0=_LOG_SQRT_2PI),
    "logistic": SmallSpec(
        grid=dict(MAP="sinh", XL=60.0, XR=60.0, HH2=0.033, LO=-700.0, LIN_MAX=600.0,
                  SC_N=512, PMIN=lambda s, n: s + 1.0 + (n + 1) * _LOG2),
        core=dict(HH=0.15, HX=0.2, CL=2.0, CR=3.0, SL=1.5, SR=1.5, XR=60.0, XLMAX=math.inf,
                  PL=lambda n: 3.0 + 42.0 / n, RATIO=_logistic_ratio),
        split=_logistic_split, lin_pred=pmin_exponential),
    "gumbel": SmallSpec(
        grid=dict(MAP="expr", XL=8.0, XR=46.0, HH2=0.095, LO=-6.5, LIN_MAX=600.0),
        core=dict(HH=0.1, CL=1.0, CR=3.0, SL=None, SR=1.0, XR=46.0, XLMAX=4.0,
                  PL=lambda n: 4.0),
        parts=_gumbel_parts),
    # gumbel_min core XR: beyond X = 4.5 (top score 0) entry i drops at most
    # int_X phi(x - y_i) <= e^{-e^D}, D = X - y_i >= X, while its integral is at least
    # F_{-i}(X - 1) int_{X-1}^X phi(x - y_i) (F increasing, F_{-i}(X - 1) >=
    # (1 - e^{-e^{3.5}})^n ~ 1): a share <= e^{-e^D (1 - 1/e)} <= e^-57 of it
    "gumbel_min": SmallSpec(
        grid=dict(MAP="expl", XL=60.0, XR=6.0, HH2=0.056, LO=-700.0, HI=700.0,
                  LIN_MAX=600.0, SC_N=320),
        core=dict(HH=0.085, HX=0.4, CL=2.0, CR=None, SL=1.0, SR=None, XR=4.5, XLMAX=math.inf,
                  PL=lambda n: 3.0 + 42.0 / n),
        split=_gumbel_min_split, lin_pred=pmin_exponential),
    "cauchy": SmallSpec(
        grid=dict(MAP="sinh", XL=1e19, XR=1e19, HH2=0.05, LIN_MAX=math.inf, SC_N=512,
                  # log(pi (1 + d^2)), d = s + 1 >= 1, as 2 log d + log1p(d^-2): no
                  # overflow of d^2 for spreads up to the float64 range
                  PMIN=lambda s, n: (n * _LOG2 + _LOGPI + 2.0 * np.log1p(s)
                                     + np.log1p((1.0 / (s + 1.0)) ** 2))),
        # CL = CR = 1 (was 2): 10% fewer nodes; no row of s N(0, 1) (s = 0.01 .. 1e3),
        # clusters or ties at n = 3 .. 255 newly declined by the even/odd certificate (0.5 still
        # certifies them, 0 declines most: the map must grow beyond the scores' features)
        core=dict(HH=_cauchy_small_step, CL=1.0, CR=1.0, SL=0.35, SR=0.35, XR=1e19, XRP=1.0,
                  XLMAX=math.inf, PL=lambda n: 10.0 ** min(300.0, 20.0 / n + 1.0),
                  # right tail e^{w + DE softplus(w - log(DE0/SR))^2} (numeric._batch: ~35%
                  # fewer nodes at n = 10; DE 0.4 or DE0 100 decline rows of spread ~40)
                  DE=0.2, DE0=1e3),
        split=_cauchy_split, log_c0=_LOGPI, lin_pred=pmin_algebraic),
}


def _t_lin_parts(nu: float):
    """``(parts, A)``: linear parts ``d -> (Phi(d), phi(d) / K_nu)`` of student_t with
    integer ``nu`` in ``_T_INT`` (in place of ``d``), ``K_nu`` the density's constant,
    and the clipping bound ``A`` (``Q(A) ~ 1e-300``); None for other ``nu``.

    ``Phi(d) = Q(-d)`` for ``d < 0``, ``1 - Q(d)`` else (``Q = P[T > a]`` from
    :func:`_t_int_tail`: a few ulps, relative, however deep the tail; ``Q <= 1/2`` so
    ``1 - Q`` does not cancel), in linear space with fewer passes than :func:`_t_int_tail`
    (even ``nu <= 6``: one all-positive form for every ``a``; odd ``nu``: the far
    series from the rounded ``phi``): a few ulps, relative.  ``phi(d) / K_nu =
    (1 + d^2/nu)^(-(nu+1)/2) = x^((nu+1)/2)``, ``x = nu / (nu + d^2)``, by products and
    one square root (``nu`` even), relative error ~``nu`` ulps.  The caller clips ``d`` at ``-A`` (``SmallSpec.grid["LO"]``):
    ``Phi`` stays a normal float, and a clipped factor bounds its terms by ``1e-300``,
    far below ``1e-18`` of the smallest entry the linear mode certifies (``TINY``)."""
    if nu not in _T_INT:
        return None
    k = int(nu)
    tail, log_tail = _t_int_tail(k)
    # A with log Q(A) = log 1e-300 (Q ~ a^-nu: secant steps from 10^(300/nu))
    A = 10.0 ** min(300.0 / nu, 300.0)
    for _ in range(3):
        A = min(A * math.exp((float(log_tail(np.array([A]))[0]) + 300.0 * math.log(10.0)) / nu), 1e300)
    P, C, phi0 = _t_int_series(k)
    sq = math.sqrt(nu)
    half = (k + 1) // 2          # (nu + 1) / 2 = half (+ 1/2 for even nu)
    R2 = 0.5 * C                 # even nu: Q = x^m (R / 2)(x) / (1 + s P(x))

    # (in place wherever possible: every fresh temporary of a chunk's size costs page
    # faults, measured comparable to the arithmetic itself)
    def parts(d):
        # a = 0: sqrt(nu) / a = inf, atan = pi/2; nu = 1, d = -A = -1e300: d^2 = inf, x = 0
        with np.errstate(divide="ignore", over="ignore"):
            return _parts(d)

    def _parts(d):
        # d finite (clipped at -A by the caller); x = nu / (nu + d^2) = cos^2 theta
        pos = d >= 0.0
        a = np.abs(d)
        x = np.multiply(d, d, out=d)
        x += nu
        if k % 2 == 0 and k <= 6:
            # even nu = 2m: one all-positive form for every a, 2Q = x^m R(x) / (1 + s P(x)),
            # s = a / sqrt(nu + a^2): x^m carries m times the rounding of x, a few ulps for m <= 3
            r = np.sqrt(x)
            a /= r
            np.divide(nu, x, out=x)
            Q = _ipow(x, half)         # nu = 2: x itself (x is not read after Q changes)
            if P.size > 1:
                a *= _horner(P, x)
            a += 1.0
            ph = np.multiply(Q, np.sqrt(x, out=r), out=r)     # x^m sqrt(x)
            Q *= _horner(R2, x)
            Q /= a
            scratch = a
        elif k % 2 == 0:
            np.divide(nu, x, out=x)
            Q = tail(a)
            ph = _ipow(x, half)
            ph *= np.sqrt(x, out=a)
            scratch = a
        elif k == 1:
            np.divide(1.0, x, out=x)
            ph = x
            Q = np.arctan(np.divide(1.0, a, out=a), out=a)
            Q *= 1.0 / math.pi
            scratch = np.empty_like(Q)
        else:
            # odd nu: Q = (phi - s c P(x)) / pi, phi = atan(sqrt(nu) / a), s c = a x / sqrt(nu);
            # for phi <= phi0 the series phi^nu sum C_i phi^2i (:func:`_t_int_tail`; phi^nu
            # from the rounded phi: nu times its few ulps)
            np.divide(nu, x, out=x)
            at = np.divide(sq, a)
            np.arctan(at, out=at)
            Q = np.multiply(a, x, out=a)
            Q *= 1.0 / sq
            if P.size > 1:
                Q *= _horner(P, x)
            np.subtract(at, Q, out=Q)
            Q *= 1.0 / math.pi
            # the series only where it is needed, phi <= phi0 on the left (d < 0), where Phi =
            # Q must be accurate relative to itself; on the right Phi = 1 - Q needs Q to an
            # absolute ulp, which the near form gives (its error is a few ulps of phi / pi)
            idx = np.flatnonzero((at <= phi0) & ~pos)
            if idx.size:
                t = at.ravel()[idx]
                t2 = t * t
                far = _horner(C, t2)
                far *= t
                for _ in range(k // 2):
                    far *= t2
                Q.ravel()[idx] = far
            scratch = at
            ph = _ipow(x, half)
        # Phi(d) = Q(-d) for d < 0 and 1 - Q(d) = Q + (1 - 2Q) else (Q <= 1/2: 2Q exact, two
        # roundings of numbers <= 1, so within an ulp of 1 - Q; for d < 0 the added term is
        # exactly 0)
        np.multiply(Q, -2.0, out=scratch)
        scratch += 1.0
        scratch *= pos
        Q += scratch
        return Q, ph

    return parts, A


def pmin_power(nu: float):
    """Predicted ``-log p_min`` of rows with power-law left tails ``Phi(-a) ~ a^-nu``
    (student_t): ``nu sum_j log(1 + y_j - ymin)`` (see numeric._batch._lin_rows)."""
    def pred(y, ymin):
        return nu * np.add.reduce(np.log1p(y - ymin[:, None]), axis=1)
    return pred


@functools.lru_cache(maxsize=None)
def _t_small(nu: float) -> SmallSpec:
    """student_t's small-n spec.  Tails |x|^-nu: pass 2 reaches 1e-20^(1/nu), capped
    (a larger reach: the pass declines).  Core map: right reach P[T > XR] <= 1e-22 (the
    top entry's last term is about hh x' phi(XR) <~ nu hh P[T > XR]), grown by
    spread^1.5 for entries far below the top (smaller integrals, the same end terms); a
    reach beyond the node budget is declined.  Step 0.1 (10/n)^0.1 for nu <= 5, 0.05
    above (near-normal integrands narrow with n); on s * N(0, 1) rows (s = 1, 2, 5) and
    clustered rows with ties (n = 3..200, nu = 2, 3, 5) the even/odd disagreement stays
    <= 1.3e-15 at steps up to 0.106 for n <= 10, 0.103 at n = 30 and 0.094 at n = 100
    (this step: 0.1, 0.090, 0.079), while 0.128 fails at n <= 10 (1e-13 .. 6e-13), 0.120
    at n = 30 and 0.107 at n = 100.  Left tail F ~ |x|^{-nu n}.  The core is built when first
    used (its reach is a bisection on the tail).

    Integer ``nu`` in ``_T_INT`` has linear parts (:func:`_t_lin_parts`): the
    kernel's linear mode for rows whose smallest entry is predicted above ``TINY``
    (the power-law prediction of :func:`pmin_power`, or the proven bound ``PMIN``:
    with algebraic tails ``p_min`` stays far above ``TINY`` unless the spread is
    astronomical), and its scaled linear mode for the others (n <= 512: the mantissa
    product stays normal).  The scaled mode needs
    ``h = phi / Phi`` unflushed wherever an integrand matters: here ``h(d) ~ nu / |d|``
    on the left and ``phi`` is a reciprocal of a power, which overflows to give
    ``h = 0`` only for ``|d| > 1e308^(1/(nu+1))`` -- at least ``1e44`` for ``nu <= 6``,
    far beyond the left reach ``10^(20/(nu n) + 1)`` below the lowest score, and where
    it does happen (rows of spread ``>~ 1e44``) ``F <= (c |x|^-nu)^n`` has dropped the
    integrand below ``e^-300`` of its value at the top score.  Other ``nu``: log mode
    only."""
    X = min(1e300, 10.0 ** (20.0 / nu)) if nu > 0.07 else 1e300
    heavy = nu <= 5.0
    logcdf = _student_t_parts(nu)[0]

    def core():
        XR = max(_upper_reach(lambda x: logcdf(-x), 1e-22), 40.0)
        # long right tails (XR >> DE0) take the cauchy's double-exponential right tail
        # (numeric._batch): the poles y_j +- i sqrt(nu) are farther off the axis than the
        # cauchy's +- i; 13% fewer nodes at n = 10 (nu = 3), 29% (nu = 1.5), no row newly
        # declined (s N(0, 1), s = 0.01 .. 1e3, clusters, ties, n = 3 .. 100)
        de = dict(DE=0.2, DE0=1e3) if XR >= 1e5 else {}
        return dict(HH=0.1 if heavy else 0.05, HX=0.1 if heavy else 0.0, CL=2.0, CR=2.0,
                    SL=0.5, SR=0.5, XR=XR, XRP=1.5, XLMAX=math.inf,
                    PL=lambda n: 10.0 ** min(300.0, 20.0 / (nu * n) + 1.0), **de)

    grid = dict(MAP="sinh", XL=max(X, 40.0), XR=max(X, 40.0), HH2=0.05, LIN_MAX=-1.0)
    lin = _t_lin_parts(nu)
    if lin is None:
        return SmallSpec(grid=grid, core=core)
    parts, A = lin
    log_norm = _log_gamma_half_ratio(nu / 2.0) - 0.5 * math.log(nu * math.pi)

    def pmin(s, n):
        # proven: on x in [0, 1] every factor Phi(x - y_j) >= 1/2 and h >= phi, so
        # -log p_min <= n log 2 - log phi(1 + s), -log phi(t) = -log K + (nu+1)/2 log(1 + t^2/nu)
        # (as 2 log t - log nu + log1p(nu / t^2): no overflow)
        t = s + 1.0
        return (n * _LOG2 - log_norm
                + 0.5 * (nu + 1.0) * (2.0 * np.log(t) - math.log(nu) + np.log1p(nu / np.square(t))))

    grid.update(LIN_MAX=math.inf, LO=-A, SC_N=512, PMIN=pmin)
    return SmallSpec(grid=grid, core=core, parts=parts, log_c0=-log_norm, lin_pred=pmin_power(nu))


# n = 2 closed forms (numeric._closed): (log G, log G') of the difference of two noises
_PAIR = {
    "normal": (_log_g_normal, _log_c_normal),
    "cauchy": (_log_g_cauchy, _log_c_cauchy),
    "gumbel": (_log_g_logistic_sigmoid, _log_c_gumbel),
    "gumbel_min": (_log_g_logistic_sigmoid, _log_c_gumbel),
    "laplace": (_log_g_laplace, _log_c_laplace),
    "exponential": (_log_g_exponential, _log_c_exponential),
    "uniform": (_log_g_uniform, _log_c_uniform),
}

_STANDARD = {
    "gumbel": (_gumbel_logcdf, _gumbel_logpdf, (-math.inf, math.inf), (), stats.gumbel_r),
    "gumbel_min": (_gumbel_min_logcdf, _gumbel_min_logpdf, (-math.inf, math.inf), (), stats.gumbel_l),
    "normal": (_normal_logcdf, _normal_logpdf, (-math.inf, math.inf), (), stats.norm),
    "logistic": (_logistic_logcdf, _logistic_logpdf, (-math.inf, math.inf), (), stats.logistic),
    "laplace": (_laplace_logcdf, _laplace_logpdf, (-math.inf, math.inf), (0.0,), stats.laplace),
    "exponential": (_exponential_logcdf, _exponential_logpdf, (0.0, math.inf), (0.0,), stats.expon),
    "uniform": (_uniform_logcdf, _uniform_logpdf, (0.0, 1.0), (0.0, 1.0), stats.uniform),
    "cauchy": (_cauchy_logcdf, _cauchy_logpdf, (-math.inf, math.inf), (), stats.cauchy),
}


# each registry family's NumericFamily traits (see there), the reason on its line
_TRAITS = {
    # log phi = -x - e^-x is concave; argmax_i (mu_i + G_i), G_i Gumbel, is softmax(mu) (Gumbel-max)
    "gumbel": dict(log_concave=True, softmax=True),
    "gumbel_min": dict(log_concave=True),                   # log phi = x - e^x is concave
    "normal": dict(log_concave=True, symmetric=True),       # log phi = -x^2/2 + const
    "logistic": dict(log_concave=True, symmetric=True),     # log phi = -|x| - 2 log1p(e^-|x|)
    # log phi = -|x| - log 2 (piecewise linear); h = 1 below 0, e^-x / (2 - e^-x) < 1 above
    "laplace": dict(log_concave=True, hazard_at_most_one=True, symmetric=True, piecewise=True),
    # log phi = -x on x >= 0 (piecewise linear; h = 1 / (e^x - 1) is unbounded at 0)
    "exponential": dict(log_concave=True, piecewise=True),
    "uniform": dict(log_concave=True, piecewise=True),      # log phi = 0 on [0, 1]; h = 1/x unbounded
    # log phi = -log(1 + x^2) is convex for |x| > 1: not log-concave
    "cauchy": dict(symmetric=True),
    # log phi = -(nu+1)/2 log(1 + x^2/nu) is convex for |x| > sqrt(nu): not log-concave
    "student_t": dict(symmetric=True),
}


def _check_positive(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a positive real number, got {value!r}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a positive real number, got complex {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a positive real number, got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def get_family(family: str | NumericFamily = "gumbel", **params: float) -> NumericFamily:
    """Resolve a registry name (or a :class:`NumericFamily`) and bind parameters.

    ``scale > 0`` for every family, ``nu > 0`` for ``student_t`` (default 1).
    Unknown names raise ``ValueError`` listing the valid ones.  Any other
    object with a ``to_numeric()`` method (a ``derive.Family``, compiled to
    numpy/scipy kernels on the derive side) is converted by it first.
    """
    if not isinstance(family, (str, NumericFamily)) and callable(getattr(family, "to_numeric", None)):
        user = getattr(family, "custom", False)
        family = family.to_numeric()
        if not isinstance(family, NumericFamily):
            raise TypeError(f"to_numeric() must return a numeric.NumericFamily, got {type(family).__name__}")
        if user and not family.custom and params:
            # a user family served by a registry engine (F(x) = G(x / s0 + b)): like any user
            # family it takes only 'scale', which is in the user's unit, so G's scale is s0 * scale
            unknown = sorted(set(params) - {"scale"})
            if unknown:
                raise ValueError(f"custom family {family.name!r} takes only 'scale'; got {', '.join(unknown)}")
            params = {"scale": family.scale * _check_positive("scale", params.get("scale", 1.0))}
    if isinstance(family, NumericFamily):
        if not params:
            return family
        bound = dict(family.params)
        bound.update(params)
        if family.custom:
            unknown = sorted(set(params) - {"scale"})
            if unknown:
                raise ValueError(f"custom family {family.name!r} takes only 'scale'; got {', '.join(unknown)}")
            bound["scale"] = _check_positive("scale", bound.get("scale", 1.0))
            return NumericFamily(family.name, family.logcdf, family.logpdf, family.support,
                                 family.breakpoints, bound, family.dist, family.ppf, True,
                                 family.loghazard_fn)
        return get_family(family.name, **bound)
    if not isinstance(family, str):
        raise TypeError(
            f"family must be a registry name (str) or a numeric.NumericFamily, got {type(family).__name__}"
        )
    key = family.strip().lower()
    if key not in FAMILY_NAMES:
        raise ValueError(f"unknown family {family!r}; valid names: {', '.join(FAMILY_NAMES)}")
    allowed = registry_params(key)
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"family {key!r} takes parameters {', '.join(sorted(allowed))}; got unexpected {', '.join(unknown)}"
        )
    bound = {"scale": _check_positive("scale", params.get("scale", 1.0))}
    if key == "student_t":
        nu = _check_positive("nu", params.get("nu", 1.0))
        bound["nu"] = nu
        logcdf, logpdf, dist = _student_t_parts(nu)
        fast = _T_FAST[0] <= nu <= _T_FAST[1]
        about, hz = None, None
        if nu in _T_INT:
            hz = _t_hazard_c(nu)
        elif fast:
            about, hz = _t_seg_hazard(nu)
        return NumericFamily(key, logcdf, logpdf, (-math.inf, math.inf), (), bound, dist, dist.ppf,
                             hazard_c=hz, hazard_about=about, fast=_t_fast(nu) if fast else None,
                             small=_t_small(nu), **_TRAITS[key])
    logcdf, logpdf, support, kinks, dist = _STANDARD[key]
    return NumericFamily(key, logcdf, logpdf, support, kinks, bound, dist, dist.ppf,
                         loghazard_fn=_HAZARD.get(key), hazard_c=_HAZARD_C.get(key), fast=_FAST.get(key), spread=_SPREAD.get(key),
                         small=_SMALL.get(key), pair=_PAIR.get(key), **_TRAITS[key])


def family_from_logcdf(logcdf: Callable[[np.ndarray], np.ndarray], logpdf: Callable[[np.ndarray], np.ndarray],
                       support: tuple[float, float] = (-math.inf, math.inf), *, breakpoints: tuple | list = (),
                       name: str = "custom", ppf: Callable[[np.ndarray], np.ndarray] | None = None,
                       scale: float = 1.0, validate: bool = True) -> NumericFamily:
    """A user noise family from numeric callables (standard form).

    ``logcdf(x)`` and ``logpdf(x)`` must accept float64 arrays; ``support``
    is ``(lo, hi)``.  With ``validate=True`` the kernels are checked on a
    grid: ``logcdf`` non-decreasing, tending to ``-inf``/0 at the support
    ends, ``exp(logpdf)`` integrating the CDF increments; a failed check
    raises ``ValueError`` naming it.

    >>> import numpy as np
    >>> from scipy.special import log_ndtr
    >>> f = family_from_logcdf(log_ndtr, lambda x: -x**2/2 - 0.5*np.log(2*np.pi), name="my_normal")
    """
    if not callable(logcdf) or not callable(logpdf):
        raise TypeError("logcdf and logpdf must be callables taking float64 arrays")
    try:
        lo, hi = (float(v) for v in support)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"support must be a pair (lo, hi) of floats, got {support!r}") from exc
    if not lo < hi or math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"support must satisfy lo < hi, got {support!r}")
    kinks = tuple(sorted({float(b) for b in breakpoints} | {v for v in (lo, hi) if math.isfinite(v)}))
    fam = NumericFamily(str(name), logcdf, logpdf, (lo, hi), kinks,
                        {"scale": _check_positive("scale", scale)}, None, ppf, True)
    if validate:
        _validate_user_family(fam)
    return fam


def _probe_max(fam: NumericFamily, xs: np.ndarray, sign: float = 1.0) -> float:
    """``max(sign * logcdf(xs))`` over the probes where it is not NaN (-inf if none)."""
    try:
        with np.errstate(all="ignore"):
            v = sign * np.asarray(fam.logcdf(xs), dtype=np.float64)
    except (ArithmeticError, ValueError):       # no evidence of the limit: the check fails
        return -math.inf
    v = v[~np.isnan(v)]
    return float(v.max()) if v.size else -math.inf


def _validate_user_family(fam: NumericFamily) -> None:
    lo, hi = fam.support
    a = lo if math.isfinite(lo) else -60.0
    b = hi if math.isfinite(hi) else 60.0
    if math.isfinite(lo) and not math.isfinite(hi):
        b = lo + 60.0
    if math.isfinite(hi) and not math.isfinite(lo):
        a = hi - 60.0
    xs = np.linspace(a, b, 4001)
    inner = xs[1:-1]
    try:
        lc = np.asarray(fam.logcdf(inner), dtype=np.float64)
        lp = np.asarray(fam.logpdf(inner), dtype=np.float64)
    except Exception as exc:
        raise ValueError(f"family {fam.name!r}: logcdf/logpdf failed on a float64 array: {exc}") from exc
    if lc.shape != inner.shape or lp.shape != inner.shape:
        raise ValueError(f"family {fam.name!r}: logcdf/logpdf must be elementwise (same shape out as in)")
    if np.isnan(lc).any() or np.isnan(lp).any():
        raise ValueError(f"family {fam.name!r}: logcdf/logpdf return NaN inside the support")
    if (lc > 1e-12).any():
        raise ValueError(f"family {fam.name!r}: not a CDF: logcdf > 0 (CDF > 1) somewhere")
    if (np.diff(lc) < -1e-12 * np.maximum(1.0, np.abs(lc[1:]))).any():
        i = int(np.argmax(np.diff(lc) < 0))
        raise ValueError(f"family {fam.name!r}: not a CDF: logcdf decreases near x = {inner[i]:g}")
    # the limits at an infinite end: a heavy tail reaches them far beyond the grid (Cauchy's
    # 1 - F(60) = 5.3e-3, Frechet(2)'s 2.8e-4, Lomax(1.5)'s 2e-3), so logcdf is also probed
    # at 10^2 .. 10^300 beyond the grid's end and the end passes if any probe is within 1e-6
    far = 10.0 ** np.arange(2.0, 301.0, 2.0)
    if (not math.isfinite(hi) and lc[-1] < math.log(1 - 1e-6)
            and not _probe_max(fam, b + far) >= math.log(1 - 1e-6)):
        raise ValueError(f"family {fam.name!r}: not a CDF: CDF does not tend to 1 at the right end")
    if (not math.isfinite(lo) and lc[0] > math.log(1e-6)
            and not -_probe_max(fam, a - far, -1.0) <= math.log(1e-6)):
        raise ValueError(f"family {fam.name!r}: not a CDF: CDF does not tend to 0 at the left end")
    # density = derivative of the CDF: compare CDF increments with the trapezoid of the density
    cdf = np.exp(lc)
    pdf = np.exp(lp)
    incr = np.diff(cdf)
    trap = 0.5 * (pdf[1:] + pdf[:-1]) * np.diff(inner)
    if np.max(np.abs(np.cumsum(incr) - np.cumsum(trap))) > 1e-3:
        raise ValueError(f"family {fam.name!r}: exp(logpdf) is not the derivative of exp(logcdf)")
