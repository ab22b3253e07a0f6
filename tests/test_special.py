"""Special functions used by the closed forms, against independent values.

Owen's T is compared with the bivariate normal probability it stands for,
``T(h, a) = P[X > h, 0 < Y < a X]`` (X, Y independent standard normals,
h, a >= 0), i.e. ``Integral_h^oo phi(x) (Phi(a x) - 1/2) dx``: a different
integral (over x, not over the angle variable of T's definition), done by
mpmath with panels at ``h + 2^k / h`` where ``phi`` decays, at 50 digits.
scipy's float64 ``owens_t`` is a sanity check where it is accurate.
erf and atan (the other non-elementary functions of the closed forms) are
checked against quadratures of their derivatives.
"""

import math

import mpmath
import pytest
import sympy as sp
from scipy import special as ss

from derive.special import OwenT, bivariate_normal_cdf, owens_t_mp

H_GRID = ("0.1", "0.5", "1", "2.5", "7", "21.213203435596425732", "40")
A_GRID = ("0.001", "0.03", "0.5", "1", "1.7320508075688772935", "12", "1000")


def _reference_t(h, a, dps=50):
    """P[X > h, 0 < Y < a X] = Integral_h^oo phi(x) erf(a x / sqrt 2) / 2 dx, for h > 0, a > 0.

    Written as phi(h) * Integral_0^oo exp(-h y - y^2/2) erf(a (h + y) / sqrt 2) / 2 dy (x = h + y):
    mpmath's quadrature judges convergence in absolute terms, so the integrand is kept O(1).
    """
    with mpmath.workdps(dps):
        h, a = mpmath.mpf(h), mpmath.mpf(a)
        f = lambda y: mpmath.exp(-h * y - y * y / 2) * mpmath.erf(a * (h + y) / mpmath.sqrt(2)) / 2
        w = 1 / max(h, mpmath.mpf(1))
        pts = [0] + [w * 2**k for k in range(0, 9)] + [mpmath.inf]
        return mpmath.npdf(h) * mpmath.quad(f, pts)


def _check_owens_t(h, a):
    with mpmath.workdps(30):
        # the same binary inputs for both sides (T is sensitive to h: d log T / dh ~ -h)
        hv, av = mpmath.mpf(h), mpmath.mpf(a)
        got = owens_t_mp(hv, av)
        got_neg = owens_t_mp(-hv, -av)
    ref = _reference_t(hv, av)
    with mpmath.workdps(50):
        assert abs(got - ref) <= mpmath.mpf(10) ** -29 * ref, (h, a, got, ref)
        assert abs(got_neg + ref) <= mpmath.mpf(10) ** -29 * ref, (h, a)


def test_owens_t_matches_bivariate_normal_probability_diagonal():
    # every h and every a of the grid at least once (the full grid is the slow test below)
    for k, h in enumerate(H_GRID):
        _check_owens_t(h, A_GRID[(3 * k) % len(A_GRID)])


@pytest.mark.slow
@pytest.mark.parametrize("h", H_GRID)
def test_owens_t_matches_bivariate_normal_probability_full_grid(h):
    for a in A_GRID:
        _check_owens_t(h, a)


def test_owens_t_issue_value_and_normal_n3_entry():
    # the issue's example: T(30/sqrt 2, sqrt 3) is 1.4% off with one tanh-sinh rule over [0, a]
    with mpmath.workdps(50):
        ref = _reference_t(30 / mpmath.sqrt(2), mpmath.sqrt(3))
    with mpmath.workdps(40):
        v = OwenT(30 / sp.sqrt(2), sp.sqrt(3)).evalf(35)
        assert abs(mpmath.mpf(v) - ref) < mpmath.mpf(10) ** -33 * ref
    # normal n = 3, mu = (30, 0, -30): p_2 = 2 T(30/sqrt 2, sqrt 3) = Phi(-30/sqrt 2) to ~1e-390
    with mpmath.workdps(40):
        assert abs(2 * ref - mpmath.ncdf(-30 / mpmath.sqrt(2))) < mpmath.mpf(10) ** -35 * ref


def test_owens_t_symmetries_and_limits():
    with mpmath.workdps(30):
        for h, a in (("1.5", "0.25"), ("3", "4")):
            v = owens_t_mp(h, a)
            assert owens_t_mp("-" + h, a) == v
            assert owens_t_mp(h, "-" + a) == -v
        assert mpmath.almosteq(owens_t_mp(0, 3), mpmath.atan(3) / (2 * mpmath.pi), rel_eps=1e-29)
        assert owens_t_mp(2, 0) == 0
        assert mpmath.almosteq(owens_t_mp(2, mpmath.inf), mpmath.erfc(2 / mpmath.sqrt(2)) / 4, rel_eps=1e-29)
    assert OwenT(sp.Symbol("h"), sp.oo) == sp.erfc(sp.Abs(sp.Symbol("h")) / sp.sqrt(2)) / 4


def test_owens_t_agrees_with_scipy_where_scipy_is_accurate():
    for h in (0.0, 0.3, 1.0, 3.0, 8.0):
        for a in (0.01, 0.5, 1.0, 2.0, 50.0):
            with mpmath.workdps(20):
                v = float(owens_t_mp(h, a))
            assert v == pytest.approx(ss.owens_t(h, a), rel=1e-13, abs=1e-300)


def test_bivariate_normal_cdf_against_quadrature():
    # Phi2(h, k; 1/2) = Integral_-oo^h phi(x) Phi((k - x/2)/sqrt(3/4)) dx
    for h, k in ((0.7, -1.2), (-2.0, -3.0), (0, 1.1), (1.3, 0), (-0.4, 2.5)):
        expr = bivariate_normal_cdf(sp.nsimplify(h), sp.nsimplify(k), sp.Rational(1, 2))
        with mpmath.workdps(40):
            got = mpmath.mpf(sp.N(expr, 30))
            hv, kv = mpmath.mpf(str(h)), mpmath.mpf(str(k))
            f = lambda x: mpmath.npdf(x) * mpmath.ncdf((kv - x / 2) / mpmath.sqrt(mpmath.mpf(3) / 4))
            ref = mpmath.quad(f, [-mpmath.inf, hv - 3, hv])
            assert abs(got - ref) < mpmath.mpf(10) ** -28 * ref, (h, k)


def test_erf_and_atan_against_quadrature_of_their_derivatives():
    # Phi(x) = erfc(-x / sqrt 2) / 2 = phi(x) Integral_0^oo exp(x y - y^2 / 2) dy  (x < 0, an O(1)
    # integrand: mpmath's quadrature converges in absolute terms); atan(x) = Integral_0^x 1/(1+t^2)
    with mpmath.workdps(40):
        for x in ("-30", "-3.5", "-0.25"):
            xv = mpmath.mpf(x)
            v = mpmath.mpf(sp.N(sp.erfc(-sp.Rational(x) / sp.sqrt(2)) / 2, 32))
            ref = mpmath.npdf(xv) * mpmath.quad(lambda y: mpmath.exp(xv * y - y * y / 2), [0, 1, mpmath.inf])
            assert abs(v - ref) < mpmath.mpf(10) ** -30 * ref
        for x in ("-30", "0.25", "6"):
            xv = mpmath.mpf(x)
            v = mpmath.mpf(sp.N(sp.atan(sp.Rational(x)), 32))
            ref = mpmath.quad(lambda t: 1 / (1 + t * t), [0, xv])
            assert abs(v - ref) < mpmath.mpf(10) ** -30 * abs(ref)
    assert math.isclose(float(sp.erf(sp.Rational(1, 2))), ss.erf(0.5), rel_tol=1e-15)
