"""numeric.families kernels against mpmath, far tails included; user-family validation."""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric
from numeric.families import family_from_logcdf, get_family



@pytest.fixture(scope="module", autouse=True)
def _forty_digits():
    """The mpmath references of this module are evaluated at 40 digits."""
    with mp.workdps(40):
        yield


def _mp_cdf_pdf(name, nu=None):
    if name == "gumbel":
        return lambda x: mp.exp(-mp.exp(-x)), lambda x: mp.exp(-x - mp.exp(-x))
    if name == "gumbel_min":
        return lambda x: -mp.expm1(-mp.exp(x)), lambda x: mp.exp(x - mp.exp(x))
    if name == "normal":
        return lambda x: mp.ncdf(x), lambda x: mp.npdf(x)
    if name == "logistic":
        return lambda x: 1 / (1 + mp.exp(-x)), lambda x: mp.exp(-abs(x)) / (1 + mp.exp(-abs(x))) ** 2
    if name == "laplace":
        return (lambda x: mp.exp(x) / 2 if x < 0 else 1 - mp.exp(-x) / 2), lambda x: mp.exp(-abs(x)) / 2
    if name == "exponential":
        return (lambda x: -mp.expm1(-x) if x > 0 else mp.mpf(0)), (lambda x: mp.exp(-x) if x >= 0 else mp.mpf(0))
    if name == "uniform":
        return (lambda x: min(max(x, mp.mpf(0)), mp.mpf(1))), (lambda x: mp.mpf(1) if 0 <= x <= 1 else mp.mpf(0))
    if name == "cauchy":
        # left tail as atan(-1/x)/pi: the same function without the cancellation of 1/2 + atan(x)/pi
        return (lambda x: mp.atan(-1 / x) / mp.pi if x < 0 else mp.mpf(1) / 2 + mp.atan(x) / mp.pi), \
            lambda x: 1 / (mp.pi * (1 + x * x))
    if name == "student_t":
        nu = mp.mpf(nu)
        c = mp.gamma((nu + 1) / 2) / (mp.sqrt(nu * mp.pi) * mp.gamma(nu / 2))
        pdf = lambda x: c * (1 + x * x / nu) ** (-(nu + 1) / 2)  # noqa: E731

        def cdf(x):
            # Phi(x) = 1 - I_{nu/(nu+x^2)}(nu/2, 1/2)/2 for x > 0 (regularized incomplete beta)
            t = nu / (nu + x * x)
            tail = mp.betainc(nu / 2, mp.mpf(1) / 2, 0, t, regularized=True) / 2
            return tail if x < 0 else 1 - tail
        return cdf, pdf
    raise KeyError(name)


GRIDS = {
    "gumbel": [-6.5, -3, -0.5, 0, 1, 5, 30, 700],
    "gumbel_min": [-700, -40, -30.5, -5, -0.5, 0, 1, 3, 6],
    "normal": [-1e4, -300, -38, -20, -5, -0.5, 0, 0.5, 3, 8, 20, 37],
    "logistic": [-700, -40, -5, -0.5, 0, 0.5, 5, 36, 700],
    "laplace": [-700, -40, -0.5, 0, 0.5, 5, 36, 700],
    "exponential": [1e-300, 1e-10, 0.5, 5, 30, 36, 700],
    "uniform": [1e-300, 1e-8, 0.25, 0.5, 0.999999, 1.0],
    "cauchy": [-1e300, -1e20, -1e5, -30, -1, 0, 1, 30, 1e5, 1e15],
    "student_t": [-1e200, -1e6, -30, -1, 0, 1, 30, 1e6, 1e9],
}


def _rel(a, b):
    b = mp.mpf(b)
    return float(abs(mp.mpf(float(a)) - b) / max(abs(b), mp.mpf(1e-300)))


@pytest.mark.parametrize("name", numeric.FAMILY_NAMES)
@pytest.mark.parametrize("nu", [None])
def test_logcdf_logpdf_loghazard_match_mpmath(name, nu):
    nus = [0.5, 3.0, 30.0] if name == "student_t" else [None]
    for nu in nus:
        fam = get_family(name, nu=nu) if nu else get_family(name)
        cdf, pdf = _mp_cdf_pdf(name, nu)
        xs = np.array(GRIDS[name], dtype=np.float64)
        lc = fam.logcdf(xs)
        lp = fam.logpdf(xs)
        lh = fam.loghazard(xs)
        lsf = fam.logsf(xs)
        worst = []
        for x, a, b, c, d in zip(xs, lc, lp, lh, lsf):
            # 40 digits here whatever other test modules set globally (1 - C at x = 1e9)
            with mp.workdps(40):
                xm = mp.mpf(float(x))
                C, P = cdf(xm), pdf(xm)
                refs = (("logcdf", a, mp.log(C)), ("logpdf", b, mp.log(P)),
                        ("loghazard", c, mp.log(P) - mp.log(C)), ("logsf", d, mp.log(1 - C)))
            for what, got, ref in refs:
                # log-space accuracy: absolute error relative to max(1, |value|)
                err = float(abs(mp.mpf(float(got)) - ref) / max(1, abs(ref)))
                worst.append((err, what, float(x)))
        worst.sort(reverse=True)
        tol = 2e-13 if name == "student_t" else 5e-15
        assert worst[0][0] <= tol, f"{name} nu={nu}: worst {worst[:3]}"


def test_custom_family_roundtrip_and_validation():
    from scipy.special import log_ndtr
    fam = family_from_logcdf(log_ndtr, lambda x: -x * x / 2 - 0.5 * math.log(2 * math.pi), name="my_normal")
    got = numeric.probs([0.0, -1.0, 0.5], fam)
    ref = numeric.probs([0.0, -1.0, 0.5], "normal", method="quadrature")
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    # not a CDF: decreasing
    with pytest.raises(ValueError, match="not a CDF"):
        family_from_logcdf(lambda x: -log_ndtr(x) * 0 + log_ndtr(-x), lambda x: -x * x / 2, name="bad")
    # pdf not the derivative of the cdf
    with pytest.raises(ValueError, match="derivative"):
        family_from_logcdf(log_ndtr, lambda x: -x * x / 8 - 0.5 * math.log(8 * math.pi), name="bad2")
    with pytest.raises(TypeError):
        family_from_logcdf("not callable", log_ndtr)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_scale(bad):
    with pytest.raises(ValueError, match="scale"):
        numeric.probs([0.0, 1.0], "normal", scale=bad)


@pytest.mark.parametrize("bad", [0, -2.0, float("nan")])
def test_bad_nu(bad):
    with pytest.raises(ValueError, match="nu"):
        numeric.probs([0.0, 1.0], "student_t", nu=bad)


def test_unknown_family_lists_names():
    with pytest.raises(ValueError, match="gumbel.*normal"):
        numeric.probs([0.0, 1.0], "gauss")
    with pytest.raises(ValueError, match="nu"):
        numeric.probs([0.0, 1.0], "normal", nu=3)
    with pytest.raises(TypeError):
        numeric.probs([0.0, 1.0], 3)


def _mp_t_hazard(nu, z):
    """student_t ``phi / Phi`` at complex ``z`` from mpmath's 2F1 form of the CDF (40 digits):
    ``Phi(z) = 1/2 + z K 2F1(1/2, (nu+1)/2; 3/2; -z^2/nu)``, principal branch (cuts on
    the imaginary axis beyond ``+-i sqrt(nu)``, which the test points avoid)."""
    with mp.workdps(40):
        nu = mp.mpf(nu)
        K = mp.gamma((nu + 1) / 2) / (mp.sqrt(nu * mp.pi) * mp.gamma(nu / 2))
        z = mp.mpc(z.real, z.imag)
        cdf = mp.mpf(1) / 2 + z * K * mp.hyp2f1(mp.mpf(1) / 2, (nu + 1) / 2, mp.mpf(3) / 2, -z * z / nu)
        return complex(K * (1 + z * z / nu) ** (-(nu + 1) / 2) / cdf)


@pytest.mark.parametrize("nu", [2.0, 3.0, 4.0, 5.0, 6.0])
def test_student_t_complex_hazard_matches_mpmath(nu):
    # the O(n) engine's Taylor circles: radius 1/4 around any real point, radius 0.6 t
    # around +-t (the far field); both forms (left / right half plane) and the series
    fam = get_family("student_t", nu=nu)
    assert fam.fast is not None and fam.kernel_key == ("student_t", ("nu", nu))
    rng = np.random.default_rng(int(nu))
    pts = []
    for t in (-300.0, -25.0, -3.0, -0.6, -0.1, 0.0, 0.05, 0.8, 4.0, 30.0, 500.0):
        for rad in (0.25, 0.6 * abs(t)):
            if rad:
                pts.extend(t + rad * np.exp(2j * np.pi * rng.random(2)))
    pts = np.array(pts)
    got = fam.hazard_c(pts)
    for z, v in zip(pts, got):
        ref = _mp_t_hazard(nu, z)
        assert abs(v - ref) <= 1e-14 * abs(ref), (nu, z, v, ref)


def _mp_t_hazard_beta(nu, z):
    """student_t ``phi / Phi`` at complex ``z`` from mpmath's incomplete beta (40 digits),
    ``Phi(z) = I_x(nu/2, 1/2) / 2`` for ``Re z < 0`` and ``1 - I_x(nu/2, 1/2) / 2`` else,
    ``x = nu / (nu + z^2)``: no cancellation in either tail (the 2F1 form of
    :func:`_mp_t_hazard` subtracts two halves at ``z = -3e5``)."""
    with mp.workdps(40):
        nu = mp.mpf(nu)
        z = mp.mpc(z.real, z.imag)
        K = mp.gamma((nu + 1) / 2) / (mp.sqrt(nu * mp.pi) * mp.gamma(nu / 2))
        q = mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + z * z), regularized=True) / 2
        cdf = q if z.real < 0 else 1 - q
        return complex(K * (1 + z * z / nu) ** (-(nu + 1) / 2) / cdf)


@pytest.mark.parametrize("nu", [1.5, 4.5] + [pytest.param(nu, marks=pytest.mark.slow) for nu in (1.05, 2.0001, 5.5)])
def test_student_t_segment_hazard_matches_mpmath(nu):
    # non-integer nu: h(t + d) about each circle's centre (numeric.families._t_seg_hazard)
    # on the engine's circles, radius 1/4 about any t and 0.6 |t| about |t| >= 4, out to
    # the far field's |t| ~ 1e6; the error includes the real kernel's h(t) (a factor common
    # to a circle)
    fam = get_family("student_t", nu=nu)
    rng = np.random.default_rng(int(10 * nu))
    for t in (-3e5, -300.0, -25.0, -3.0, -0.6, 0.0, 0.8, 4.0, 30.0, 500.0, 4e6):
        rad = 0.6 * abs(t) if abs(t) >= 4.0 else 0.25
        d = rad * np.exp(2j * np.pi * rng.random(2))
        got = fam.hazard_about(np.array(t), d)
        for dd, v in zip(d, got):
            ref = _mp_t_hazard_beta(nu, t + dd)
            assert abs(v - ref) <= 6e-14 * abs(ref), (nu, t, dd, v, ref)
    # hazard_c(z): the vertical segment from Re z
    z = np.array([-40.0 + 20.0j, 3.0 - 0.2j, 100.0 + 50.0j])
    assert np.allclose(fam.hazard_c(z), [_mp_t_hazard_beta(nu, v) for v in z], rtol=6e-14, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [1.05, 2.5, 5.5])
def test_student_t_cdf_has_no_zero_where_the_engine_takes_h(nu):
    # argument principle: the winding number of Phi along the boundary of
    # |Im z| <= max(0.3, 0.75 |Re z|), |Re z| <= 1.6e6 (it holds every Taylor circle of the
    # O(n) engine there) is 0, so h = phi / Phi is analytic on them.  Phi(z) / Phi(Re z)
    # from the density's integral up the vertical segment (32-point Gauss-Legendre; the
    # segments keep away from +-i sqrt(nu))
    fam = get_family("student_t", nu=nu)
    xg, wg = np.polynomial.legendre.leggauss(32)
    X = 1.6e6
    xs = np.concatenate([-np.geomspace(X, 0.4, 20000), np.linspace(-0.4, 0.4, 2000), np.geomspace(0.4, X, 20000)])
    top = np.maximum(0.3, 0.75 * np.abs(xs))
    side = 1j * np.linspace(0.75 * X, -0.75 * X, 4000)
    path = np.concatenate([xs + 1j * top, X + side, xs[::-1] - 1j * top[::-1], -X - side, xs[:1] + 1j * top[:1]])
    x, y = path.real, path.imag
    h = np.exp(fam.loghazard(x))
    # f(w) / f(x) = ((nu + w^2) / (nu + x^2))^(-(nu+1)/2)
    integral = sum(w * ((nu + (x + 0.5j * (1.0 + s) * y) ** 2) / (nu + x * x)) ** (-0.5 * (nu + 1.0))
                   for s, w in zip(xg, wg))
    ratio = 1.0 + h * 0.5j * y * integral
    step = np.abs(np.angle(ratio[1:] / ratio[:-1]))
    assert step.max() < 0.1                       # the phase is resolved along the path
    assert abs(np.unwrap(np.angle(ratio))[-1] - np.angle(ratio[0])) < 1e-6


def test_student_t_segment_hazard_agrees_with_closed_form():
    # at nu = 3 the segment form against the closed form of _t_int_hazard_c on whole circles
    from numeric.families import _t_int_hazard_c, _t_seg_hazard
    about, _ = _t_seg_hazard(3.0)
    w = np.exp(2j * np.pi * np.arange(64) / 64)
    for t, rad in ((np.linspace(-350.0, 350.0, 141), 0.25),
                   (np.geomspace(4.0, 1e9, 40), None), (-np.geomspace(4.0, 1e9, 40), None)):
        d = (0.6 * np.abs(t)[:, None] if rad is None else rad) * w[None, :]
        ref = _t_int_hazard_c(3)(t[:, None] + d)
        assert np.all(np.abs(about(t[:, None], d) - ref) <= 6e-14 * np.abs(ref))


def test_engine_knowledge_lives_on_the_family():
    # the O(n) engine's spec and complex hazard come from the family object
    for name in ("normal", "logistic", "gumbel_min", "cauchy"):
        fam = get_family(name)
        assert fam.fast is not None and fam.hazard_c is not None and fam.kernel_key == name
        x = np.array([-3.0, 0.0, 2.5])
        assert np.allclose(fam.hazard_c(x + 0j).real, np.exp(fam.loghazard(x)), rtol=1e-14)
    for name, params in (("laplace", {}), ("student_t", {"nu": 0.7}), ("student_t", {"nu": 8.0})):
        assert get_family(name, **params).fast is None
    # student_t: the closed form at integer nu, the segment form between
    assert get_family("student_t", nu=3.0).hazard_about is None
    assert get_family("student_t", nu=2.5).fast is not None and get_family("student_t", nu=2.5).hazard_about
    assert get_family("student_t", nu=3.0).fast.heavy and not get_family("normal").fast.heavy
