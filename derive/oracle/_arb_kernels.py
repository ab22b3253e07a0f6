"""Ball-arithmetic kernels (python-flint ``arb``/``acb``) of the noise families.

Private helper of :mod:`derive.oracle.certified`.  Every kernel works on the
standard form (location 0, scale 1).  A kernel offers

* ``pdf(z, analytic, branch)`` / ``cdf(z, analytic, branch)`` on complex balls
  (``acb``), for :func:`flint.acb.integral`.  When ``analytic`` is true the
  kernel must *prove* that the formula it uses is holomorphic on the whole
  ball, and returns a non-finite ball otherwise (``acb.integral`` then
  bisects).  ``branch`` selects one elementary expression of a piecewise
  family (``None`` for analytic families); each branch expression is an
  entire function, so the piece it is used on only has to be right on the
  real segment.
* ``cdf_real(x)`` / ``sf_real(x)`` on real balls (``arb``): rigorous
  enclosures of ``Phi(x)`` and ``1 - Phi(x)`` over the whole ball, used by
  the tail bounds.  ``sf`` is evaluated without cancellation.

Formulas (all standard):

* normal: ``Phi(z) = erfc(-z/sqrt2)/2``, ``phi(z) = exp(-z^2/2)/sqrt(2 pi)``
  (entire).
* gumbel: ``Phi = exp(-exp(-z))``, ``phi = exp(-z - exp(-z))`` (entire);
  ``1 - Phi = -expm1(-exp(-x))``.  gumbel_min mirrors it.
* logistic: ``Phi = 1/(1+exp(-z))`` (meromorphic: poles give non-finite
  balls by themselves).
* cauchy: ``Phi = 1/2 + atan(z)/pi``.  ``atan`` has cuts on the imaginary
  axis ``|Im z| >= 1``; on ``Re z < 0`` we use the identity
  ``atan(z) + atan(1/z) = -pi/2`` so ``Phi = -atan(1/z)/pi`` (no
  cancellation in the left tail, and ``1/z`` stays in the left half plane,
  away from the cut); on ``Re z > 0`` the plain formula is off the cut; a
  ball crossing ``Re z = 0`` must have ``|Im z| < 1``.
* student_t, integer ``nu`` (Abramowitz & Stegun 26.7.3-4), with
  ``t = z/sqrt(nu)``, ``c = 1/(1+t^2)`` (= cos^2 theta, theta = atan t):
  odd nu:  ``Phi = 1/2 + (atan t + t c sum_{k<(nu-1)/2} a_k c^k)/pi``,
  ``a_0 = 1, a_k = a_{k-1} 2k/(2k+1)``;
  even nu: ``Phi = 1/2 + t sqrt(c)/2 sum_{k<nu/2} b_k c^k``,
  ``b_0 = 1, b_k = b_{k-1} (2k-1)/(2k)``.  ``sqrt`` is called with the
  ``analytic`` flag (cut of ``sqrt(1+t^2)``: ``t = i y, |y| >= 1``).
* laplace (branches ``"L"`` for ``u < 0``, ``"R"`` for ``u >= 0``),
  exponential (one branch, ``u >= 0``), uniform (branches ``"lin"`` on
  ``[0, 1]`` and ``"one"`` for ``u >= 1``).
"""

from __future__ import annotations

from flint import acb, arb

__all__ = ["kernel"]


def _nan() -> acb:
    return acb(arb.nan())


def _sign(x: arb) -> int:
    """+1 / -1 if the real ball is certainly positive / negative, else 0."""
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


class _Kernel:
    name = ""
    symmetric = False  # Phi(-x) = 1 - Phi(x)
    support = (None, None)  # standard support ends (None = infinite)

    def pdf(self, z, analytic, branch):  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf(self, z, analytic, branch):  # pragma: no cover - abstract
        raise NotImplementedError

    def cdf_real(self, x: arb) -> arb:
        return self.cdf(acb(x), False, None).real

    def sf_real(self, x: arb) -> arb:
        if self.symmetric:
            return self.cdf_real(-x)
        raise NotImplementedError  # pragma: no cover


class _Normal(_Kernel):
    name = "normal"
    symmetric = True

    def pdf(self, z, analytic, branch):
        return (-(z * z) / 2).exp() / (2 * arb.pi()).sqrt()

    def cdf(self, z, analytic, branch):
        return (-z / arb(2).sqrt()).erfc() / 2

    def cdf_real(self, x):
        return (-x / arb(2).sqrt()).erfc() / 2


class _Gumbel(_Kernel):
    name = "gumbel"

    def pdf(self, z, analytic, branch):
        return (-z - (-z).exp()).exp()

    def cdf(self, z, analytic, branch):
        return (-((-z).exp())).exp()

    def cdf_real(self, x):
        return (-((-x).exp())).exp()

    def sf_real(self, x):
        # 1 - exp(-w) = -expm1(-w) with w = exp(-x): no cancellation for large x
        return -((-((-x).exp())).expm1())


class _GumbelMin(_Kernel):
    name = "gumbel_min"

    def pdf(self, z, analytic, branch):
        return (z - z.exp()).exp()

    def cdf(self, z, analytic, branch):
        return -((-(z.exp())).expm1())

    def cdf_real(self, x):
        return -((-(x.exp())).expm1())

    def sf_real(self, x):
        return (-(x.exp())).exp()


class _Logistic(_Kernel):
    name = "logistic"
    symmetric = True

    def pdf(self, z, analytic, branch):
        # exp(-|z|)/(1+exp(-|z|))^2 written per half plane (same meromorphic function)
        w = (-z).exp() if z.real > 0 else z.exp()
        return w / (1 + w) ** 2

    def cdf(self, z, analytic, branch):
        if z.real < 0:
            w = z.exp()
            return w / (1 + w)
        return 1 / (1 + (-z).exp())

    def cdf_real(self, x):
        if x < 0:
            w = x.exp()
            return w / (1 + w)
        return 1 / (1 + (-x).exp())


def _half_atan_over_pi(z, analytic):
    """``1/2 + atan(z)/pi`` with a proof of holomorphy on the ball ``z``."""
    s = _sign(z.real)
    if s < 0:
        # atan(z) + atan(1/z) = -pi/2 on Re z < 0; 1/z stays in Re < 0 (off the cut)
        return -((1 / z).atan()) / arb.pi()
    if s == 0 and analytic and not (z.imag.abs_upper() < 1):
        return _nan()  # the ball may touch the cut i*[1, inf) or -i*[1, inf)
    return arb(0.5) + z.atan() / arb.pi()


class _Cauchy(_Kernel):
    name = "cauchy"
    symmetric = True

    def pdf(self, z, analytic, branch):
        return 1 / (arb.pi() * (1 + z * z))

    def cdf(self, z, analytic, branch):
        return _half_atan_over_pi(z, analytic)

    def cdf_real(self, x):
        if x < 0:
            return -((1 / x).atan()) / arb.pi()
        return arb(0.5) + x.atan() / arb.pi()


class _StudentTInt(_Kernel):
    name = "student_t"
    symmetric = True

    def __init__(self, nu: int):
        self.nu = nu
        self.rt = arb(nu).sqrt()
        # normalising constant Gamma((nu+1)/2) / (sqrt(nu pi) Gamma(nu/2))
        self.const = (arb(nu + 1) / 2).gamma() / ((arb(nu) * arb.pi()).sqrt() * (arb(nu) / 2).gamma())
        coef = [arb(1)]
        if nu % 2:
            for k in range(1, (nu - 1) // 2):
                coef.append(coef[-1] * (2 * k) / (2 * k + 1))
        else:
            for k in range(1, nu // 2):
                coef.append(coef[-1] * (2 * k - 1) / (2 * k))
        self.coef = coef

    def _poly(self, c):
        acc = 0
        for a in reversed(self.coef):
            acc = acc * c + a
        return acc

    def pdf(self, z, analytic, branch):
        t = z / self.rt
        q = 1 + t * t
        m = (self.nu + 1) // 2
        if self.nu % 2:
            return self.const / q**m  # (1+t^2)^(-(nu+1)/2), integer power
        r = q.sqrt(analytic=analytic)
        return self.const / (q ** (self.nu // 2) * r)

    def cdf(self, z, analytic, branch):
        return self.cdf_t(z / self.rt, analytic)

    def cdf_t(self, t, analytic):
        """Phi(sqrt(nu) t) from the closed form in t."""
        c = 1 / (1 + t * t)
        if self.nu % 2:
            if self.nu == 1:
                return _half_atan_over_pi(t, analytic)
            # 1/2 + atan(t)/pi + t c P(c)/pi
            return _half_atan_over_pi(t, analytic) + t * c * self._poly(c) / arb.pi()
        r = (1 + t * t).sqrt(analytic=analytic)
        return arb(0.5) + t / (2 * r) * self._poly(c)

    def cdf_inv_t(self, s, positive: bool, analytic):
        """Phi(sqrt(nu) t) written in s = 1/t, on the side sign(Re t) = +-1.

        With atan t = +-pi/2 - atan s, t/(1+t^2) = s/(1+s^2),
        1/(1+t^2) = s^2/(1+s^2) and t/sqrt(1+t^2) = +-1/sqrt(1+s^2):
        odd nu:  Phi = [1 or 0] - (atan s - s/(1+s^2) P(s^2/(1+s^2)))/pi,
        even nu: Phi = 1/2 +- P(s^2/(1+s^2)) / (2 sqrt(1+s^2)).
        Holomorphic near s = 0, i.e. at t = +-infinity.
        """
        q = 1 + s * s
        if self.nu % 2:
            if analytic and not (s.real > 0 or s.real < 0 or s.imag.abs_upper() < 1):
                return _nan()  # atan's cut i*[1, inf) and -i*[1, inf)
            g = s.atan()
            if self.nu > 1:
                g = g - s / q * self._poly(s * s / q)
            return (1 - g / arb.pi()) if positive else (-g / arb.pi())
        h = self._poly(s * s / q) / (2 * q.sqrt(analytic=analytic))
        return (arb(0.5) + h) if positive else (arb(0.5) - h)

    def cdf_real(self, x):
        t = x / self.rt
        c = 1 / (1 + t * t)
        if self.nu % 2:
            head = _Cauchy().cdf_real(t)
            if self.nu == 1:
                return head
            return head + t * c * self._poly(c) / arb.pi()
        return arb(0.5) + t / (2 * (1 + t * t).sqrt()) * self._poly(c)


class _Laplace(_Kernel):
    name = "laplace"
    symmetric = True

    def pdf(self, z, analytic, branch):
        return (z.exp() if branch == "L" else (-z).exp()) / 2

    def cdf(self, z, analytic, branch):
        return z.exp() / 2 if branch == "L" else 1 - (-z).exp() / 2

    def cdf_real(self, x):
        s = _sign(x)
        lo = x.exp() / 2
        hi = 1 - (-x).exp() / 2
        if s < 0:
            return lo
        if s > 0:
            return hi
        return lo.union(hi)  # the ball straddles the kink: both branches


class _Exponential(_Kernel):
    name = "exponential"
    support = (0, None)

    def pdf(self, z, analytic, branch):
        return (-z).exp()

    def cdf(self, z, analytic, branch):
        return -((-z).expm1())

    def cdf_real(self, x):
        return -((-(x.nonnegative_part())).expm1())

    def sf_real(self, x):
        return (-(x.nonnegative_part())).exp()


class _Uniform(_Kernel):
    name = "uniform"
    support = (0, 1)

    def pdf(self, z, analytic, branch):
        return acb(1)

    def cdf(self, z, analytic, branch):
        return z if branch == "lin" else acb(1)

    def cdf_real(self, x):
        return x.nonnegative_part().min(arb(1))

    def sf_real(self, x):
        return 1 - self.cdf_real(x)


class _StudentTGeneral(_Kernel):
    """student_t with any real nu > 0 (``nu`` an arb ball) via 2F1.

    central (|Re z| <= 1):  Phi = 1/2 + c z 2F1(1/2, (nu+1)/2; 3/2; -z^2/nu),
    left tail (Re z < -1):  Phi = I_w(nu/2, 1/2)/2 with w = nu/(nu+z^2),
                            = w^(nu/2) 2F1(nu/2, 1/2; nu/2+1; w) / (nu B(nu/2, 1/2)),
    right tail (Re z > 1):  Phi = 1 - (left tail at -z)   (no cancellation).
    2F1(a,b;c;.) is holomorphic off [1, inf): the argument ball is checked to
    have real part < 1; ``w^(nu/2) = exp(nu/2 log w)`` uses log's analytic flag.
    pdf = c exp(-(nu+1)/2 log(1 + z^2/nu)).
    """

    name = "student_t"
    symmetric = True

    def __init__(self, nu: arb):
        self.nu = nu
        half = arb(1) / 2
        self.const = ((nu + 1) / 2).gamma() / ((nu * arb.pi()).sqrt() * (nu / 2).gamma())
        beta = arb.pi().sqrt() * (nu / 2).gamma() / ((nu + 1) / 2).gamma()  # B(nu/2, 1/2)
        self.tail_const = 1 / (nu * beta)
        self.central = (half, (nu + 1) / 2, 3 * half)
        self.tail = (nu / 2, half, nu / 2 + 1)

    def pdf(self, z, analytic, branch):
        q = 1 + z * z / self.nu
        return self.const * (-(self.nu + 1) / 2 * q.log(analytic=analytic)).exp()

    def _left(self, z, analytic):
        w = self.nu / (self.nu + z * z)
        if analytic and not (w.real < 1):
            return _nan()
        a, b, c = self.tail
        f = w.hypgeom_2f1(a, b, c, ac=True)
        return (self.nu / 2 * w.log(analytic=analytic)).exp() * f * self.tail_const

    def cdf(self, z, analytic, branch):
        if z.real < -1:
            return self._left(z, analytic)
        if z.real > 1:
            return 1 - self._left(-z, analytic)
        zeta = -(z * z) / self.nu
        if analytic and not (zeta.real < 1):
            return _nan()
        a, b, c = self.central
        return arb(1) / 2 + self.const * z * zeta.hypgeom_2f1(a, b, c, ac=True)

    def cdf_real(self, x):
        return self.cdf(acb(x), False, None).real


_SIMPLE = {
    "normal": _Normal,
    "gumbel": _Gumbel,
    "gumbel_min": _GumbelMin,
    "logistic": _Logistic,
    "cauchy": _Cauchy,
    "laplace": _Laplace,
    "exponential": _Exponential,
    "uniform": _Uniform,
}


def kernel(name: str, nu=None) -> _Kernel:
    """The ball-arithmetic kernel of a registry family (standard form).

    ``nu`` (student_t): a Python int (closed form) or an arb ball (2F1).
    """
    if name == "student_t":
        if isinstance(nu, int):
            return _StudentTInt(nu)
        return _StudentTGeneral(nu)
    return _SIMPLE[name]()
