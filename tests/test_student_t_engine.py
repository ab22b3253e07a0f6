"""student_t noise in numeric's "auto" path.

Student's t with ``nu = 1`` is the Cauchy distribution (same density
``1 / (pi (1 + x^2))``), so it takes the cauchy engines: results equal
``family="cauchy"`` bit for bit, and agree with the 30-digit oracle evaluated
with the *student_t* kernels (``derive.oracle``: incomplete-beta CDF), an
independent reference.  Other ``nu`` keep the student_t quadrature.
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
