"""The oracle's heavy tails: two scores d apart, student_t and cauchy noise.

For two scores the loser wins with ``p_lo = P[e_lo - e_hi > d]``, the tail
of the difference of two iid noises.  References, all independent of the
oracle's code:

* cauchy: the difference is Cauchy(0, 2): ``p_lo = 1/2 - atan(d/2)/pi``.
* student_t with odd nu = 2m + 1: the characteristic function is
  ``e^{-s} P_m(s)``, ``s = sqrt(nu) |t|``,
  ``P_m(s) = m!/(2m)! sum_k (2m-k)!/(k! (m-k)!) (2s)^k``, so the difference
  has ``e^{-2s} P_m(s)^2`` and (Gil-Pelaez, termwise)
  ``p_lo = 1/2 - (1/pi) [atan(d/b) + sum_{j>=1} c_j (j-1)! Im (b - i d)^-j]``
  with ``b = 2 sqrt(nu)`` and ``c_j`` the coefficients of ``P_m(s)^2`` in
  ``t``; evaluated with enough digits for the cancellation (p ~ d^-nu).
* nu > 2, d >> nu: the subexponential expansion
  ``P[X - Y > d] = E S(d + Y) = 2 S(d) - sigma^2 phi'(d) + ...``
  (each of the two regions -- Y in its body, X in its tail, and the
  mirror image -- contributes ``S(d) - sigma^2 phi'(d)/2``), i.e.
  ``p_lo = 2 S(d) (1 + c_1)``, ``c_1 ~ nu (nu+1) sigma^2 / (2 d^2)``,
  ``sigma^2 = nu/(nu-2)``; the next term is O(c_1^2).  Checked against
  the exact odd-nu values below.
* otherwise: mpmath ``quad`` (tanh-sinh) of ``int phi(x + d) Phi(x) dx``
  with mpmath's own incomplete beta, split at both scores and
  geometrically away from them, at 20 more digits.

Default tier: the regression of issue 18 (nu = 30, d = 1e5: one of the two
tail regions was lost, p came out halved) and a few representative points.
The sweep over nu in {0.5 ... 1000} and d up to 1e8 is in the slow tier.
"""

from __future__ import annotations

import math

import mpmath as mp
import pytest

from derive import oracle


def _S(nu, d):
    """P[t_nu > d] = I_{nu/(nu+d^2)}(nu/2, 1/2) / 2 (d > 0)."""
    nu, d = mp.mpf(nu), mp.mpf(d)
    return mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + d * d), regularized=True) / 2


def _cauchy_exact(d):
    return mp.atan(2 / mp.mpf(d)) / mp.pi  # = 1/2 - atan(d/2)/pi


def _odd_nu_exact(nu, d):
    m = (nu - 1) // 2
    d = mp.mpf(d)
    with mp.workdps(40 + int((nu + 2) * math.log10(float(d) + 10))):
        rt = mp.sqrt(nu)
        P = [mp.factorial(m) / mp.factorial(2 * m) * mp.factorial(2 * m - k)
             / (mp.factorial(k) * mp.factorial(m - k)) * 2 ** k for k in range(m + 1)]
        Q = [mp.fsum(P[i] * P[j - i] for i in range(max(0, j - m), min(j, m) + 1)) for j in range(2 * m + 1)]
        b = 2 * rt
        z = mp.mpc(b, -d)
        tot = mp.atan(d / b)
        for j in range(1, 2 * m + 1):
            tot += Q[j] * rt ** j * mp.factorial(j - 1) * (z ** -j).imag
        return +(mp.mpf(1) / 2 - tot / mp.pi)


def _asymptotic(nu, d):
    """(2 S(d) (1 + c_1), c_1) for nu > 2."""
    nu, d = mp.mpf(nu), mp.mpf(d)
    c1 = nu * (nu + 1) * (nu / (nu - 2)) / (2 * d * d)
    return 2 * _S(nu, d) * (1 + c1), c1


def _quad(nu, d, dps):
    """int phi(x + d) Phi(x) dx by mpmath.quad, relative to its largest sample."""
    with mp.workdps(dps + 20):
        nu, d = mp.mpf(nu), mp.mpf(d)
        c = mp.exp(mp.loggamma((nu + 1) / 2) - mp.loggamma(nu / 2)) / mp.sqrt(nu * mp.pi)
        pdf = lambda x: c * (1 + x * x / nu) ** (-(nu + 1) / 2)  # noqa: E731

        def cdf(y):
            if y <= 0:
                return mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + y * y), regularized=True) / 2
            return 1 - cdf(-y)

        f = lambda x: pdf(x + d) * cdf(x)  # noqa: E731
        pts = {mp.mpf(k) for k in range(-8, 9)} | {-d + k for k in range(-8, 9)} | {-d / 2}
        # geometric points out to where the outer tail (~ |x|^-nu relative) is below
        # 10^-(dps + 10): the end pieces to +-inf then only hold a negligible rest
        reach = (d + 10) * mp.mpf(10) ** max(6, (dps + 10) / nu)
        k = 4
        while 2 ** k < reach:
            pts |= {mp.mpf(2) ** k, -d - 2 ** k}
            if 2 ** k < d / 2:
                pts |= {-mp.mpf(2) ** k, -d + 2 ** k}
            k += 1
        pts = sorted(pts)
        top = max(f(p) for p in pts)
        v, err = mp.quad(lambda x: f(x) / top, [-mp.inf] + pts + [mp.inf], error=True)
        assert err < mp.mpf(10) ** -(dps + 5) * v, "reference quadrature did not converge"
        return v * top


def _oracle_lo(nu, d, dps):
    if nu == "cauchy":
        p = oracle.probs([0, -d], "cauchy", dps=dps)
    else:
        p = oracle.probs([0, -d], "student_t", dps=dps, nu=nu)
    assert abs(mp.fsum(p) - 1) < mp.mpf(10) ** -(dps - 1)
    return p[1]


def _check(nu, d, dps=20):
    got = _oracle_lo(nu, d, dps)
    with mp.workdps(dps + 20):
        if nu == "cauchy" or nu == 1:
            ref, tol = _cauchy_exact(d), mp.mpf(10) ** -(dps - 2)
        elif isinstance(nu, int) and nu % 2 == 1 and nu <= 5:
            ref, tol = _odd_nu_exact(nu, d), mp.mpf(10) ** -(dps - 2)
        else:
            ref, c1 = _asymptotic(nu, d) if nu > 2 else (None, 1)
            if c1 < 1e-4:
                tol = 50 * c1 ** 2 + mp.mpf(10) ** -(dps - 2)
            else:
                ref, tol = _quad(nu, d, dps), mp.mpf(10) ** -(dps - 2)
        assert abs(got / ref - 1) < tol, (nu, d, got, ref)


def test_issue_18_student_t_nu30_both_tail_regions():
    # 2 P[t_30 > 1e5] (1 + c_1), c_1 ~ 5e-8; the lost-region value was half of it
    got = _oracle_lo(30, 1e5, 30)
    with mp.workdps(50):
        ref, c1 = _asymptotic(30, 1e5)
        assert mp.nstr(ref, 5) == "2.0729e-129"
        assert abs(got / ref - 1) < 50 * c1 ** 2


def test_second_order_expansion_matches_the_exact_odd_nu_value():
    # the asymptotic reference used for even/large nu, checked where an exact one exists
    with mp.workdps(60):
        for nu, d in ((3, 1e4), (5, 1e3), (5, 1e6)):
            ref, c1 = _asymptotic(nu, d)
            exact = _odd_nu_exact(nu, d)
            assert abs(ref / exact - 1) < 50 * c1 ** 2, (nu, d)
            assert abs(2 * _S(nu, d) / exact - 1) > c1 / 2  # the 1/d^2 term is really there


@pytest.mark.parametrize("nu, d", [("cauchy", 1e8), (3, 1e5), (5, 1e3)])
def test_heavy_tail_representative_points(nu, d):
    _check(nu, d)


_NUS = [0.5, 1, 2, 3, 5, 10, 30, 60, 100, 300, 1000]
_SPREADS = [1e3, 1e5, 1e8]


@pytest.mark.slow
@pytest.mark.parametrize("d", _SPREADS)
@pytest.mark.parametrize("nu", _NUS + ["cauchy"])
def test_heavy_tail_sweep(nu, d):
    _check(nu, d)


# ---------------------------------------------------------------------------
# Entries far below 10^-dps: the sum check cannot see them, the survival form
# (rule C, a different integrand on a staggered partition) must agree.
# References independent of the oracle: exact two-point forms (normal:
# Phi(-d/sqrt 2); gumbel_min: the logistic 1/(1 + e^d); cauchy: atan(2/d)/pi;
# odd nu: the Gil-Pelaez sum above) and the second-order tail expansion.
# ---------------------------------------------------------------------------

def _two_point_exact(family, d):
    d = mp.mpf(d)
    if family == "normal":
        return mp.ncdf(-d / mp.sqrt(2))
    if family == "gumbel_min":
        return 1 / (1 + mp.exp(d))
    if family == "cauchy":
        return _cauchy_exact(d)
    raise ValueError(family)


def _tiny_check(family, d, dps=30, **params):
    p = oracle.probs([0, -d], family, dps=dps, **params)
    with mp.workdps(dps + 20):
        if family == "student_t":
            nu = params["nu"]
            if nu % 2 == 1 and nu <= 7:
                ref, tol = _odd_nu_exact(nu, d), mp.mpf(10) ** -(dps - 2)
            else:
                ref, c1 = _asymptotic(nu, d)
                tol = 50 * c1 ** 2 + mp.mpf(10) ** -(dps - 2)
        else:
            ref, tol = _two_point_exact(family, d), mp.mpf(10) ** -(dps - 2)
        assert abs(p[1] / ref - 1) < tol, (family, params, d, mp.nstr(p[1], 20), mp.nstr(ref, 20))
    return p[1]


@pytest.mark.parametrize("family, d, size", [("normal", 60.5, "1e-400"), ("gumbel_min", 921.0, "1e-400"),
                                             ("normal", 21.2, "1e-50")])
def test_tiny_entries_exact_two_point(family, d, size):
    got = _tiny_check(family, d)
    assert mp.mpf(size) / 10 < got < mp.mpf(size) * 10


@pytest.mark.slow
@pytest.mark.parametrize("family, d, params", [
    ("gumbel_min", 115.0, {}),            # 1e-50
    ("cauchy", 6.4e49, {}),               # 1e-50
    ("cauchy", 1e120, {}),                # 6e-121
    ("student_t", 1e10, {"nu": 5}),       # ~1e-48, exact odd nu
    ("student_t", 1e20, {"nu": 7}),       # ~1e-138, exact odd nu
    ("student_t", 1e5, {"nu": 30}),       # 2e-129, the issue-18 case at 30 digits
    ("student_t", 1e4, {"nu": 100}),      # ~1e-361, expansion to c_1^2 ~ 3e-9
])
def test_tiny_entries_heavy_and_light_tails(family, d, params):
    _tiny_check(family, d, **params)


@pytest.mark.slow
def test_rule_c_catches_a_region_lost_by_both_max_cdf_rules(monkeypatch):
    """A max-CDF integrand that drops the region x < -d/2 (as the issue-18 oracle did for
    student_t, nu = 30, d = 1e5: p halved) passes rules A and B and the sum check -- the
    entry, ~2 P[t_30 > 1e3] ~ 1e-69, is far below 10^-dps -- and is caught by the survival form."""
    from derive.oracle import _core

    def lossy(make):
        def factory(kern, D, mult, targets, cut):
            ev = make(kern, D, mult, targets, cut)

            def evaluate(xs):
                rows = ev(xs)
                return [[mp.mpf(0) if x < -500 else v for v in row] for x, row in zip(xs, rows)]
            return evaluate
        return factory

    monkeypatch.setattr(_core, "_evaluator", lossy(_core._make_mp_evaluator))
    with pytest.raises(oracle.OracleError, match="survival form"):
        oracle.probs([0, -1e3], "student_t", dps=20, nu=30)


def _t3_quad(mu, dps, which):
    """p of the scores ``which`` for student_t(3) noise by mpmath.quad of the max-CDF form
    ``int phi(x - d_u) prod_{v != u} Phi(x - d_v) dx`` at ``dps`` digits, with the
    closed form of the nu = 3 CDF (A&S 26.7.4): for y < 0, ``a = sqrt(3)/|y|``,
    ``Phi(y) = (atan a - a/(1 + a^2))/pi`` (evaluated 2 log10|y| digits deeper: the
    two terms cancel to ``2 a^3/3``), ``phi(y) = 6 sqrt(3) / (pi (3 + y^2)^2)``.
    Split at every score and geometrically away from each one (tails at every scale
    up to the spread)."""
    with mp.workdps(dps + 2 * int(math.log10(max(abs(m) for m in mu) + 10)) + 10):
        s3 = mp.sqrt(3)
        top = max(mp.mpf(m) for m in mu)
        d = [mp.mpf(m) - top for m in mu]

        def pdf(y):
            return 6 * s3 / (mp.pi * (3 + y * y) ** 2)

        def cdf(y):
            if y == 0:
                return mp.mpf(1) / 2
            a = s3 / abs(y)
            left = (mp.atan(a) - a / (1 + a * a)) / mp.pi
            return left if y < 0 else 1 - left

        # beyond 2^12 spread from every score the end pieces are centred where
        # mpmath's [b, inf) map puts its scale (|b| ~ the distance to every score)
        reach = int(math.log2(max(abs(m) for m in mu) + 10)) + 12
        # unit-scale points around every score, geometric ones around the two ends of
        # the row (the scores of a cluster share theirs beyond a few units)
        pts = sorted({c + s * mp.mpf(2) ** k for c in d for s in (1, -1) for k in range(-3, 3)}
                     | {c + s * mp.mpf(2) ** k for c in (min(d), max(d)) for s in (1, -1) for k in range(3, reach)}
                     | set(d))
        out = []
        for u in which:
            def f(x, u=u):
                v = pdf(x - d[u])
                for w in range(len(d)):
                    if w != u:
                        v *= cdf(x - d[w])
                return v
            # mpmath's error estimate is absolute: integrate f / (its largest sample)
            top_f = max(f(p) for p in pts)
            v, err = mp.quad(lambda x: f(x) / top_f, [-mp.inf] + pts + [mp.inf], error=True)
            assert err < mp.mpf(10) ** -(dps + 5) * v, "reference quadrature did not converge"
            out.append(v * top_f)
        return out


@pytest.mark.slow
def test_rule_c_left_tail_beyond_the_max_cdf_cut():
    """student_t(3), mu = (1e10, 0, 0.5, -1): the three low entries are ~1.5e-30, below
    what the sum check sees, so rule C (the survival form) checks them.  Its left tail
    beyond the max-CDF form's cut (d_min - 26534) holds 3e-27 of each entry; a map of
    that end piece scaled by |x| ~ 1e10 has no node within 1e5 of the cut, so rule C's
    partition must continue geometrically there, or it disagrees at 26 digits and the
    oracle refuses a correct entry.  Reference: mpmath.quad of the max-CDF form with the
    closed-form nu = 3 CDF at 50 digits; every entry to dps - 3 digits (README)."""
    mu = [1e10, 0, 0.5, -1]
    dps = 30
    got = oracle.probs(mu, "student_t", dps=dps, nu=3)
    ref = _t3_quad(mu, 50, [1, 2, 3])
    with mp.workdps(50):
        ref = [1 - mp.fsum(ref)] + ref
        assert mp.nstr(ref[3], 5) == "1.2312e-30"
        for k, (g, r) in enumerate(zip(got, ref)):
            assert abs(g / r - 1) < mp.mpf(10) ** -(dps - 3), (k, mp.nstr(g, 35), mp.nstr(r, 35))
