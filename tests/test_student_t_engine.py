"""student_t noise in numeric's "auto" path.

Student's t with ``nu = 1`` is the Cauchy distribution (same density
``1 / (pi (1 + x^2))``), so it takes the cauchy engines: results equal
``family="cauchy"`` bit for bit, and agree with the 30-digit oracle evaluated
with the *student_t* kernels (``derive.oracle``: incomplete-beta CDF), an
independent reference.  From ``n = 256`` real ``nu`` in ``[1, 6]`` take the O(n)
engine (``numeric._fast_cauchy``'s near field and multipole far field, with the
family's complex hazard: ``numeric.families._t_int_hazard_c`` at integer ``nu``, the
segment form ``_t_seg_hazard`` between): tested below against the quadrature (itself
oracle-tested) and, in the slow tier, the 30-digit oracle.
"""

import math

import numpy as np
import pytest

import numeric
from derive import oracle


def test_nu_one_is_cauchy_bitwise():
    rng = np.random.default_rng(0)
    for shape in ((3,), (4, 10), (2, 300)):
        x = 2.0 * rng.normal(size=shape)
        g = rng.normal(size=shape)
        assert np.array_equal(numeric.probs(x, "student_t"), numeric.probs(x, "cauchy"))
        assert np.array_equal(numeric.log_probs(x, "student_t", nu=1.0, scale=0.5),
                              numeric.log_probs(x, "cauchy", scale=0.5))
        assert np.array_equal(numeric.probs_vjp(x, g, "student_t"), numeric.probs_vjp(x, g, "cauchy"))
        assert np.array_equal(numeric.log_probs_vjp(x, g, "student_t"), numeric.log_probs_vjp(x, g, "cauchy"))


@pytest.mark.parametrize("nu, mu", [
    (1.0, [0.7, -3.0]),
    pytest.param(1.0, [0.7, -3.0, 12.0, 11.5, -40.0], marks=pytest.mark.slow),
    pytest.param(2.5, [0.7, -3.0, 12.0, 11.5, -40.0], marks=pytest.mark.slow),
])
def test_student_t_vs_oracle(nu, mu):
    lp = numeric.log_probs(np.array(mu), "student_t", nu=nu)
    ref = np.array([float(v) for v in oracle.log_probs(mu, "student_t", nu=nu, dps=30)])
    assert np.all(np.abs(lp - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
    big = ref >= math.log(1e-300)
    assert np.all(np.abs(np.expm1(lp[big] - ref[big])) <= 1e-13)


def test_other_nu_is_not_cauchy():
    x = np.array([0.0, -2.0, 1.0])
    assert not np.allclose(numeric.probs(x, "student_t", nu=1.5), numeric.probs(x, "cauchy"), atol=1e-6)


# --- integer nu: the elementary CDF (numeric.families._t_int_tail) --------------------

def _mp_logcdf(nu, x):
    """log P[T < x] from mpmath's regularized incomplete beta (40 digits):
    P[T < -a] = I_{nu/(nu+a^2)}(nu/2, 1/2) / 2."""
    import mpmath as mp
    with mp.workdps(40):
        nu, x = mp.mpf(nu), mp.mpf(x)
        t = mp.betainc(nu / 2, mp.mpf(1) / 2, 0, nu / (nu + x * x), regularized=True) / 2
        return mp.log(t) if x < 0 else mp.log1p(-t)


def _logcdf_errors(nu, xs):
    """Worst relative error of log F on the left (x < 0) and right (x >= 0) side; on the
    right, where |log F| is below the normal range, the absolute error over 1e-300."""
    import mpmath as mp
    lc = numeric.get_family("student_t", nu=nu).logcdf(xs)
    left = right = 0.0
    for x, v in zip(xs, lc):
        ref = _mp_logcdf(nu, x)
        if abs(ref) < 1e-300:
            e = abs(v - float(ref)) / 1e-300
        else:
            e = float(abs((mp.mpf(float(v)) - ref) / ref))
        if x < 0:
            left = max(left, e)
        else:
            right = max(right, e)
    return left, right


@pytest.mark.parametrize("nu", [2.0, 3.0, 5.0, 30.0])
def test_integer_nu_logcdf_vs_mpmath(nu):
    mags = 10.0 ** np.arange(-300, 301, 37.0)
    xs = np.concatenate([-mags, mags, np.linspace(-30.0, 30.0, 25), [0.0, -np.sqrt(nu), np.sqrt(nu)]])
    left, right = _logcdf_errors(nu, xs)
    assert left <= 1e-15 and right <= 2e-15, (left, right)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 30.0, 64.0])
def test_integer_nu_logcdf_vs_mpmath_dense(nu):
    mags = 10.0 ** np.arange(-300, 301, 7.3)
    xs = np.concatenate([-mags, mags, np.linspace(-40.0, 40.0, 321)])
    left, right = _logcdf_errors(nu, xs)
    assert left <= 1e-15 and right <= 2e-15, (left, right)


def test_integer_nu_logcdf_where_a_power_leaves_the_float_range():
    # even nu: nu^(nu/2) a^-nu with a^-nu below 1e-308 while Q is still a normal float
    # (nu = 64 from a ~ 6.5e4, Q ~ 1e-250; nu = 40, 60 likewise), and on both sides of it
    for nu, a in ((64.0, (5e4, 7e4, 9e4, 1.2e5)), (60.0, (2e5,)), (40.0, (5e6,))):
        left, _ = _logcdf_errors(nu, -np.array(a))
        assert left <= 1e-15, (nu, left)


def test_integer_nu_logcdf_ends():
    for nu in (1.0, 2.0, 3.0, 5.0, 30.0):
        lc = numeric.get_family("student_t", nu=nu).logcdf(np.array([-np.inf, np.inf, 0.0]))
        assert lc[0] == -np.inf and lc[1] == 0.0 and lc[2] == -math.log(2.0)
        left, right = _logcdf_errors(nu, np.array([-1e308, 1e308, -5e-324, 5e-324]))
        assert left <= 1e-15 and right <= 2e-15, (left, right)


# --- the small-n route (numeric._batch's kernel, student_t) ---------------------------

def _rows(rng, n, m):
    """s * N(0, 1) rows (s = 1, 2, 5), a clustered row with ties, a wide row."""
    out = [s * rng.normal(size=n) for s in (1.0, 2.0, 5.0) for _ in range(m)]
    c = np.repeat(rng.normal(size=(n + 2) // 3), 3)[:n] + 1e-9 * rng.integers(0, 2, size=n)
    c[: n // 2] -= 30.0
    out.append(c)
    out.append(np.linspace(0.0, -1e3, n))
    return np.array(out)


def _check_log_probs(lp, ref):
    assert np.all(np.abs(lp - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
    big = ref >= math.log(1e-300)
    assert np.all(np.abs(np.expm1(lp[big] - ref[big])) <= 1e-13)


@pytest.mark.parametrize("nu", [3.0, 2.5])
def test_small_route_vs_quadrature(nu):
    rng = np.random.default_rng(int(nu * 10))
    x = _rows(rng, 7, 1)
    lp = numeric.log_probs(x, "student_t", nu=nu)
    ref = numeric.log_probs(x, "student_t", nu=nu, method="quadrature")
    _check_log_probs(lp, ref)


def test_small_route_vs_oracle():
    mu = [0.7, -3.0, 12.0, 11.5]
    lp = numeric.log_probs(np.array(mu), "student_t", nu=3.0)
    ref = np.array([float(v) for v in oracle.log_probs(mu, "student_t", nu=3.0, dps=30)])
    _check_log_probs(lp, ref)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0, 5.0, 2.5, 30.0])
@pytest.mark.parametrize("n", [3, 10, 60, 255])
def test_small_route_vs_quadrature_slow(nu, n):
    rng = np.random.default_rng(n + int(nu * 100))
    x = _rows(rng, n, 2)
    x = np.concatenate([x, [np.linspace(0.0, -1e8, n)]])
    _check_vs_quadrature(x, nu, n32=3)


def _check_vs_quadrature(x, nu, n32):
    """log p of the rows ``x`` against the quadrature, and the first ``n32`` rows as float32
    input (computed in float64 from the float32 values, returned in float32)."""
    lp = numeric.log_probs(x, "student_t", nu=nu)
    ref = numeric.log_probs(x, "student_t", nu=nu, method="quadrature")
    _check_log_probs(lp, ref)
    x32 = x[:n32].astype(np.float32)
    p32 = numeric.probs(x32, "student_t", nu=nu)
    assert p32.dtype == np.float32
    ref32 = numeric.probs(x32.astype(np.float64), "student_t", nu=nu, method="quadrature")
    assert np.allclose(p32, ref32, rtol=1e-6, atol=1e-30)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [3.0, 2.5])
def test_small_route_vs_oracle_slow(nu):
    for mu in ([0.0, 0.0, 0.0, -1.0, 2.0], [1e3, 0.0, -0.5, 0.25], [0.1, -7.0, 5.0, 5.0 + 1e-9, -60.0, 3.0]):
        lp = numeric.log_probs(np.array(mu), "student_t", nu=nu)
        ref = np.array([float(v) for v in oracle.log_probs(mu, "student_t", nu=nu, dps=30)])
        _check_log_probs(lp, ref)


def _check_vjp(v, ref):
    # README: each entry within 1e-10 of the terms it sums; here relative to the row's scale
    scale = np.abs(ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(v - ref) <= 1e-10 * scale + 1e-300)


def _vjp_cases(rng, x):
    dense = rng.normal(size=x.shape)
    onehot = np.zeros(x.shape)
    onehot[np.arange(x.shape[0]), rng.integers(0, x.shape[1], size=x.shape[0])] = 1.0
    return dense, onehot


def test_small_route_vjp_vs_quadrature():
    rng = np.random.default_rng(5)
    x = _rows(rng, 6, 1)[[0, 2, 3]]
    for g in _vjp_cases(rng, x):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            _check_vjp(fn(x, g, "student_t", nu=3.0), fn(x, g, "student_t", nu=3.0, method="quadrature"))


@pytest.mark.slow
@pytest.mark.parametrize("nu", [2.0, 3.0, 5.0, 2.5, 30.0])
@pytest.mark.parametrize("n", [3, 17, 120])
def test_small_route_vjp_vs_quadrature_slow(nu, n):
    rng = np.random.default_rng(7 * n + int(nu * 10))
    x = _rows(rng, n, 1)
    for g in _vjp_cases(rng, x):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            _check_vjp(fn(x, g, "student_t", nu=nu), fn(x, g, "student_t", nu=nu, method="quadrature"))


def test_small_route_rows_independent_of_batch():
    # each row's bits depend on that row only (linear mode or log mode alike)
    rng = np.random.default_rng(9)
    x = _rows(rng, 9, 1)
    whole = numeric.log_probs(x, "student_t", nu=3.0)
    for r in range(x.shape[0]):
        assert np.array_equal(whole[r], numeric.log_probs(x[r:r + 1], "student_t", nu=3.0)[0])


@pytest.mark.parametrize("nu", [3.0, 5.0, 30.0])
def test_small_kernel_certifies_wide_rows(nu):
    # the kernel's student_t core map reaches far enough (right reach from the family's
    # own tail) that s = 5 rows certify instead of falling back to the quadrature
    from numeric import _batch
    rng = np.random.default_rng(int(nu))
    x = 5.0 * rng.normal(size=(8, 50))
    lp, ok = _batch.batch_log_probs(x - x.max(axis=1, keepdims=True), numeric.get_family("student_t", nu=nu))
    assert ok.all()
    ref = numeric.log_probs(x[:1], "student_t", nu=nu, method="quadrature")
    _check_log_probs(lp[:1], ref)


# --- the small-n kernel's linear parts (numeric.families._t_lin_parts) ------------------

def _parts_errors(nu, d):
    """Worst relative errors of ``(Phi, phi / K_nu)`` from the linear parts against mpmath
    (40 digits: the regularized incomplete beta and the density's power), over the
    points ``d`` with ``Phi >= 1e-280`` (the kernel's nodes stay there: the clip at
    ``-A`` has ``Phi ~ 1e-300``), resp. ``phi >= 1e-300``."""
    import mpmath as mp
    from numeric.families import _t_lin_parts
    parts, _ = _t_lin_parts(nu)
    with np.errstate(all="ignore"):
        P, ph = parts(d.copy())
    eP = eph = 0.0
    with mp.workdps(40):
        for x, p, f in zip(d, P, ph):
            x = mp.mpf(x)
            q = mp.betainc(mp.mpf(nu) / 2, mp.mpf(1) / 2, 0, nu / (nu + x * x), regularized=True) / 2
            ref = q if x < 0 else 1 - q
            if ref >= 1e-280:
                eP = max(eP, float(abs(mp.mpf(p) / ref - 1)))
            ref = (1 + x * x / nu) ** (-(mp.mpf(nu) + 1) / 2)
            if ref >= 1e-300:
                eph = max(eph, float(abs(mp.mpf(f) / ref - 1)))
    return eP, eph


@pytest.mark.parametrize("nu", [2.0, 3.0, 4.0, 5.0, 6.0])
def test_linear_parts_vs_mpmath(nu):
    # both far-form switch points, zero, and a log grid out to the left tail the kernel reaches
    rng = np.random.default_rng(int(nu))
    mags = 10.0 ** rng.uniform(-3.0, 8.0, 24)
    d = np.concatenate([-mags, mags, np.linspace(-30.0, 30.0, 13),
                        [0.0, -math.sqrt(nu), math.sqrt(nu), -3.17, -2.24]])
    eP, eph = _parts_errors(nu, d)
    assert eP <= 3e-15 and eph <= 2e-15, (eP, eph)


@pytest.mark.slow
@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 30.0])
def test_linear_parts_vs_mpmath_dense(nu):
    rng = np.random.default_rng(100 + int(nu))
    mags = 10.0 ** rng.uniform(-6.0, 12.0, 400)
    d = np.concatenate([-mags, mags, np.linspace(-40.0, 40.0, 321)])
    eP, eph = _parts_errors(nu, d)
    assert eP <= 3e-15 and eph <= 5e-15, (eP, eph)


def _wide_rows(rng, n):
    """Rows whose power-law prediction of ``-log p_min`` exceeds the linear mode's limit
    (620) while the proven bound PMIN admits them: s = 5 and 8 normal rows, a clustered
    row with ties far below the top, a linear spread of 60."""
    out = [s * rng.normal(size=n) for s in (5.0, 8.0)]
    c = np.repeat(rng.normal(size=(n + 2) // 3), 3)[:n]
    c[: n // 2] -= 40.0
    out.append(c)
    out.append(np.linspace(0.0, -60.0, n))
    return np.array(out)


@pytest.mark.parametrize("nu", [2.0, 3.0, 5.0])
def test_small_route_wide_rows_vs_quadrature(nu):
    # n = 90: every row in the linear mode (PMIN), log p and both VJPs (dense and one-hot
    # cotangents) against the quadrature, float32 input
    from numeric import _batch
    rng = np.random.default_rng(int(nu) + 60)
    x = _wide_rows(rng, 90)
    fam = numeric.get_family("student_t", nu=nu)
    y = x - x.max(axis=1, keepdims=True)
    if nu >= 3.0:      # (nu = 2: the power-law prediction admits them already)
        assert (fam.small.lin_pred(y, y.min(axis=1)) > 620.0).all()
    assert _batch._Plan(y, fam).lin.all()
    _check_vs_quadrature(x, nu, n32=1)
    for g in _vjp_cases(rng, x[[0, 2]]):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            _check_vjp(fn(x[[0, 2]], g, "student_t", nu=nu),
                       fn(x[[0, 2]], g, "student_t", nu=nu, method="quadrature"))


# --- the O(n) route (n >= 256, integer nu = 2..6) ---------------------------------------

def _large_rows(rng, n):
    """s * N(0, 1) rows (s = 1, 2, 5), tight clusters with exact ties (tied maximum),
    a linear spread of 60, one score 40 above a N(0, 1) bulk."""
    out = [s * rng.normal(size=n) for s in (1.0, 2.0, 5.0)]
    c = np.repeat(3.0 * rng.normal(size=4), -(-n // 4))[:n] + 1e-3 * rng.normal(size=n)
    c[rng.integers(0, n, size=n // 4)] = c[0]
    c[1] = c.max()
    c[2] = c.max()
    out.append(c)
    out.append(np.linspace(-30.0, 30.0, n))
    out.append(np.r_[40.0, rng.normal(size=n - 1)])
    return np.array(out)


def test_fast_route_serves_nu_1_to_6():
    for nu in (1.05, 1.5, 2.0, 2.5, 3.0, 4.75, 6.0):
        assert numeric._route(numeric.get_family("student_t", nu=nu), 300, "auto") == "fast"
    for nu in (0.7, 6.5, 8.0, 30.0):      # not served: quadrature
        assert numeric._route(numeric.get_family("student_t", nu=nu), 300, "auto") == "row"


def test_fast_route_non_integer_nu_vs_quadrature():
    # non-integer nu: the engine's circles take h from the segment form about their
    # centres (numeric.families._t_seg_hazard); s * N(0, 1) rows, clusters with ties,
    # and float32 input against the quadrature
    rng = np.random.default_rng(47)
    x = _large_rows(rng, 256)[[0, 3]]
    _check_vs_quadrature(x, 2.5, n32=1)


@pytest.mark.parametrize("nu", [3.0, 6.0])
def test_fast_route_vs_quadrature(nu):
    rng = np.random.default_rng(int(nu) + 40)
    x = _large_rows(rng, 300)
    _check_vs_quadrature(x, nu, n32=2)


def test_fast_route_vjp_vs_quadrature():
    rng = np.random.default_rng(44)
    x = _large_rows(rng, 260)[[1, 3]]
    for g in _vjp_cases(rng, x):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            _check_vjp(fn(x, g, "student_t", nu=3.0), fn(x, g, "student_t", nu=3.0, method="quadrature"))


def test_fast_route_rows_independent_of_batch():
    rng = np.random.default_rng(45)
    x = _large_rows(rng, 256)
    g = rng.normal(size=x.shape)
    whole = numeric.log_probs(x, "student_t", nu=5.0)
    vjp = numeric.log_probs_vjp(x, g, "student_t", nu=5.0)
    for r in (0, 3, 5):
        assert np.array_equal(whole[r], numeric.log_probs(x[r], "student_t", nu=5.0))
        assert np.array_equal(vjp[r], numeric.log_probs_vjp(x[r], g[r], "student_t", nu=5.0))


@pytest.mark.slow
@pytest.mark.parametrize("nu, n", [(nu, n) for nu in (2.0, 3.0, 4.0, 5.0, 6.0) for n in (256, 1000, 4000)]
                         + [(nu, n) for nu in (1.05, 1.5, 2.0001, 3.5, 5.99) for n in (256, 1000)])
def test_fast_route_vs_quadrature_slow(nu, n):
    rng = np.random.default_rng(n + int(nu))
    x = _large_rows(rng, n)
    lp = numeric.log_probs(x, "student_t", nu=nu)
    ref = numeric.log_probs(x, "student_t", nu=nu, method="quadrature")
    _check_log_probs(lp, ref)
    for g in _vjp_cases(rng, x[[0, 3, 5]]):
        for fn in (numeric.probs_vjp, numeric.log_probs_vjp):
            _check_vjp(fn(x[[0, 3, 5]], g, "student_t", nu=nu),
                       fn(x[[0, 3, 5]], g, "student_t", nu=nu, method="quadrature"))


@pytest.mark.slow
@pytest.mark.parametrize("nu, kind", [(3.0, 1), (6.0, 3), (2.0, 5), (1.5, 3)])
def test_fast_route_vs_oracle_slow(nu, kind):
    # one row of n = 256 against the 30-digit oracle (~30 s each)
    x = _large_rows(np.random.default_rng(46), 256)[kind]
    lp = numeric.log_probs(x, "student_t", nu=nu)
    ref = np.array([float(v) for v in oracle.log_probs(list(x), "student_t", nu=nu, dps=30)])
    _check_log_probs(lp, ref)
