"""Fast evaluation of the oracle integrand with python-flint (optional).

The quadrature rules, nodes, weights, error estimates and checks stay in
mpmath (:mod:`._quadrature`); only the log-kernels ``log Phi``, ``log phi``
and the exponential are evaluated with arb (C, ~10x faster than mpmath's
``erfc``), at the same working precision, and the weighted sums are
accumulated in arb and converted back to mpf once per piece.  The formulas
are the same tail-safe ones as in :mod:`._mpfamily`.  Used for registry
families when python-flint is importable; otherwise (and for user families)
the mpmath kernels are used.
"""

from __future__ import annotations

import bisect
import math

import mpmath as mp

try:
    import flint
    from flint import arb
except ImportError:  # pragma: no cover - optional dependency
    flint = None

from ._mpfamily import sympy_to_mpf
from .errors import OracleError

__all__ = ["make_evaluator", "make_survival_evaluator", "to_arb", "to_mpf", "available"]

available = flint is not None


def to_arb(x):
    """mpf -> exact arb."""
    if mp.isinf(x):
        return arb.pos_inf() if x > 0 else arb.neg_inf()
    sign, man, exp, _ = x._mpf_  # mpf.man_exp drops the sign
    if sign:
        man = -man
    return arb((man, exp))


def to_mpf(a):
    """Midpoint of an arb -> mpf (exact)."""
    man, exp = a.mid().man_exp()
    return mp.mpf((int(man), int(exp)))


def _neg(y):
    return y.mid() < 0


def _kernels(name, params, prec):
    """(logcdf, logpdf) on arb; None stands for -inf."""
    log2 = arb(2).log()
    # Gumbel beyond e^(1e6): Phi (gumbel, y < -1e6) or phi (both kinds) is below
    # exp(-e^(1e6)), 0 to any precision (arb's exp of such an argument is not finite)
    far = arb(10) ** 6
    if name == "gumbel":
        return ((lambda y: None if y < -far else -((-y).exp())),
                (lambda y: None if y < -far else -y - (-y).exp()))
    if name == "gumbel_min":
        big = arb(4 * prec)

        tiny = arb(-(prec + 8) * 0.6931471805599453)

        def lc(y):
            # y < -(prec + 8) ln 2: log(1 - e^-E) = y - E/2 + ... = y to 2^-(prec+8)
            # absolute; arb's exp of a huge negative y loses relative accuracy
            if y < tiny:
                return y
            E = y.exp()
            if E < big:
                return (-((-E).expm1())).log()
            return arb(0)  # -exp(-E) with E > 4 prec: below the absolute accuracy

        return lc, (lambda y: None if y > far else y - y.exp())
    if name == "normal":
        r2 = arb(2).sqrt()
        c = (2 * arb.pi()).log() / 2

        big = arb(10) ** 4
        eps = arb(2) ** -(prec + 8)

        def asym(y):
            # log Phi(-|y|) for |y| > 1e4 (arb's erfc returns nan beyond ~1e6):
            # Phi(-|y|) = phi(y)/|y| sum_k (-1)^k (2k-1)!!/y^(2k), an alternating
            # series with decreasing terms here, remainder below the first omitted term
            y2 = y * y
            term, acc, k = arb(1), arb(1), 0
            while abs(term.mid()) > eps:
                k += 1
                term = -term * (2 * k - 1) / y2
                acc += term
            return -y2 / 2 - abs(y).log() - c + acc.log()

        def lc(y):
            if abs(y.mid()) > big:
                la = asym(y)
                return la if _neg(y) else -(la.exp())
            if _neg(y):
                return ((-y / r2).erfc() / 2).log()
            return (-((y / r2).erfc() / 2)).log1p()

        return lc, (lambda y: -y * y / 2 - c)
    if name == "logistic":
        # log sigma(y) = -log1p(e^-y) = y - log1p(e^y): the form whose exp cannot overflow
        return (lambda y: -((-y).exp().log1p()) if not _neg(y) else y - y.exp().log1p()), \
            (lambda y: -abs(y) - 2 * (-abs(y)).exp().log1p())
    if name == "laplace":
        def lc(y):
            if _neg(y):
                return y - log2
            return (-((-y).exp() / 2)).log1p()

        return lc, (lambda y: -abs(y) - log2)
    if name == "exponential":
        def lc(y):
            return (-((-y).expm1())).log() if y.mid() > 0 else None

        def lp(y):
            return -y if y.mid() >= 0 else None

        return lc, lp
    if name == "uniform":
        def lc(y):
            m = y.mid()
            if m <= 0:
                return None
            return y.log() if m < 1 else arb(0)

        def lp(y):
            m = y.mid()
            return arb(0) if 0 <= m <= 1 else None

        return lc, lp
    if name == "cauchy":
        pi = arb.pi()
        lpi = pi.log()

        def lc(y):
            m = y.mid()
            if m < 0:
                return ((-1 / y).atan() / pi).log()
            if m == 0:
                return -log2
            return (-((1 / y).atan() / pi)).log1p()

        return lc, (lambda y: -lpi - (y * y).log1p())
    if name == "student_t":
        nu = to_arb(sympy_to_mpf(params["nu"], prec))
        a, b = nu / 2, arb(1) / 2
        logc = ((nu + 1) / 2).lgamma() - (nu / 2).lgamma() - (nu * arb.pi()).log() / 2

        def tail(y):
            # Phi(y), y <= 0: I_x(nu/2, 1/2) / 2 with x = nu / (nu + y^2).  For |y| < 1
            # x is close to 1, where arb's beta_lower returns NaN once x rounds to 1
            # (|y| ~ 1e-30); there the complement 1/2 - I_{1-x}(1/2, nu/2) / 2 with
            # 1 - x = y^2 / (nu + y^2) is used, which cancels at most a factor 4
            # (Phi(-1) > Phi_normal(-1) > 1/8 for every nu).
            y2 = y * y
            if y2.mid() < 1:
                return (1 - (y2 / (nu + y2)).beta_lower(b, a, regularized=True)) / 2
            return (nu / (nu + y2)).beta_lower(a, b, regularized=True) / 2

        def lc(y):
            if y.mid() <= 0:
                return tail(y).log()
            return (-tail(-y)).log1p()

        return lc, (lambda y: logc - (nu + 1) / 2 * (y * y / nu).log1p())
    return None


def _tight(f, prec):
    """``f`` (a log-kernel on arb) with its ball as narrow as the working precision.

    The integrand is ``exp`` of a sum of log-kernels, so the absolute error of
    each one is a relative error of the integrand; only the midpoint of the
    ball is used afterwards.  Some arb functions lose far more than the
    working precision in places (``beta_lower(500, 1/2, 0.9)`` at 164 bits:
    radius 4e-25), so a ball wider than ``2^-(prec - 16) max(1, |mid|)``, or a
    non-finite one, is recomputed (unless it lies below ``-2^40``, where the
    integrand is 0 to every digit) with 64, 128, ... more bits.  If it stays
    wide, :class:`OracleError` is raised rather than a midpoint of unknown
    accuracy used.
    """
    tol = arb(2) ** -(prec - 16)
    # a log-kernel below -2^40 makes the integrand exp(-2^40) (every other term
    # is at most 0, plus log(1 + |x|) < 710 in the cut test): its error is moot
    moot = -arb(2) ** 40

    def ok(v):
        return v is None or (v.is_finite() and (v < moot or v.rad() <= tol * max(arb(1), abs(v.mid()))))

    def g(y):
        v = f(y)
        if ok(v):
            return v
        saved = flint.ctx.prec
        try:
            for extra in (64, 128, 256, 512):
                flint.ctx.prec = prec + extra
                v = f(y)
                if ok(v):
                    return v
        finally:
            flint.ctx.prec = saved
        raise OracleError(f"arb kernel not accurate at y = {y.mid().str(10)}: {v}")

    return g


def _negligible_from(kern, bits):
    """Smallest y (float) with log(1 - Phi(y)) < -bits ln 2, so that
    |log Phi(y')| < 2^-bits for y' >= y (float bisection on logsf; +1 margin)."""
    target = -bits * math.log(2.0)
    lo, hi = 0.0, 1.0
    import numpy as np

    with np.errstate(all="ignore"):
        f = lambda y: float(np.asarray(kern.flogsf(np.array([y]))).ravel()[0])
        while not f(hi) < target:
            hi *= 2.0
            if hi > 1e300:
                return math.inf
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if f(mid) < target:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-9 * hi:
                break
    return hi + 1.0


def _setup(kern, D, cut):
    """(prec, tight logcdf, tight logpdf, scores, cuts) as arb at the working precision,
    or None when arb has no kernels for the family."""
    prec = mp.mp.prec
    old = flint.ctx.prec
    flint.ctx.prec = prec
    try:
        ks = _kernels(kern.name, getattr(kern, "params", {}), prec)
        if ks is None:
            return None
        Da = [to_arb(d) for d in D]
        cuts = [to_arb(mp.mpf(c)) for c in cut]
    finally:
        flint.ctx.prec = old
    lc_f, lp_f = (_tight(f, prec) for f in ks)
    return prec, lc_f, lp_f, Da, cuts


def make_evaluator(kern, D, mult, targets, cut):
    """An ``evaluate(xs)`` returning arb values, or None when not applicable."""
    if flint is None or kern.custom:
        return None
    setup = _setup(kern, D, cut)
    if setup is None:
        return None
    prec, lc_f, lp_f, Da, cuts = setup
    U = len(D)
    Df = [float(d) for d in D]  # ascending (the scores are sorted)
    y_skip = _negligible_from(kern, prec + 12 + max(1, sum(mult)).bit_length())
    min_cut = min(cuts, key=lambda c: c.mid()) if cuts else arb(0)
    zero = arb(0)

    def evaluate(xs):
        saved = flint.ctx.prec
        flint.ctx.prec = prec
        try:
            out = []
            for x in xs:
                xa = to_arb(x)
                lx = (1 + abs(xa)).log()
                # Classes with x - d_v > y_skip have |log Phi| < 2^-(prec+12)/n: 0.
                k = bisect.bisect_left(Df, float(x) - y_skip) if y_skip != math.inf else 0
                lcs = [zero] * U
                ninf = 0
                S = arb(0)
                most_neg = arb(0)
                dead = False
                # Largest scores first: in the left tail their log Phi are the most
                # negative; stop once no class can come above the cut, using
                # l_t <= log phi_max + (S - one term) and log phi_max <= 0 for
                # every registry density (all bounded by 1).
                for cnt, v in enumerate(range(U - 1, k - 1, -1)):
                    val = lc_f(xa - Da[v])
                    lcs[v] = val
                    if val is None or not val.is_finite():
                        ninf += mult[v]
                        continue
                    S += val * mult[v] if mult[v] != 1 else val
                    if val.mid() < most_neg.mid():
                        most_neg = val
                    if ninf == 0 and cnt % 8 == 7 and (S - most_neg + lx).mid() < min_cut.mid():
                        dead = True
                        break
                if dead or ninf > 1:
                    out.append([None] * len(targets))
                    continue
                row = []
                for j, t in enumerate(targets):
                    lct = lcs[t]
                    if lct is None or not lct.is_finite():
                        other, rest = ninf - 1, S
                    else:
                        other, rest = ninf, S - lct
                    if other > 0:
                        row.append(None)
                        continue
                    lp = lp_f(xa - Da[t])
                    if lp is None:
                        row.append(None)
                        continue
                    e = lp + rest
                    row.append(e.exp() if (e + lx).mid() > cuts[j].mid() else None)
                out.append(row)
            return out
        finally:
            flint.ctx.prec = saved

    evaluate.arb = True
    evaluate.prec = prec
    return evaluate


#: registry families with a symmetric density: log S(y) = log Phi(-y)
_SYMMETRIC = frozenset({"normal", "logistic", "laplace", "cauchy", "student_t"})


def make_survival_evaluator(kern, D, mult, targets, cut):
    """The survival-form integrand of ``_core._make_survival_evaluator`` with arb
    kernels (symmetric registry families, ``log S(y) = log Phi(-y)``), or None."""
    if flint is None or kern.custom or kern.name not in _SYMMETRIC:
        return None
    setup = _setup(kern, D, cut)
    if setup is None:
        return None
    prec, lc_f, lp_f, Da, cuts = setup
    U = len(D)

    def evaluate(xs):
        saved = flint.ctx.prec
        flint.ctx.prec = prec
        try:
            out = []
            for x in xs:
                xa = to_arb(x)
                lx = (1 + abs(xa)).log()
                ys = [xa - d for d in Da]
                lcs = [lc_f(y) for y in ys]
                lps = [lp_f(y) for y in ys]
                r = [(p - c).exp() if c is not None and p is not None else None for p, c in zip(lps, lcs)]
                row = []
                for j, t in enumerate(targets):
                    m = list(mult)
                    m[t] -= 1
                    zeros = [v for v in range(U) if m[v] and lcs[v] is None]
                    lsf = lc_f(-ys[t])
                    if lsf is None or len(zeros) > 1 or (zeros and m[zeros[0]] > 1):
                        row.append(None)
                        continue
                    S = arb(0)
                    for v in range(U):
                        if m[v] and lcs[v] is not None:
                            S += lcs[v] * m[v]
                    if zeros:
                        w = zeros[0]
                        e = lps[w] + S + lsf if lps[w] is not None else None
                    else:
                        H = arb(0)
                        for w in range(U):
                            if m[w] and r[w] is not None:
                                H += r[w] * m[w]
                        e = H.log() + S + lsf if H.mid() > 0 else None
                    row.append(e.exp() if e is not None and (e + lx).mid() > cuts[j].mid() else None)
                out.append(row)
            return out
        finally:
            flint.ctx.prec = saved

    evaluate.arb = True
    evaluate.prec = prec
    return evaluate
