"""The oracle on a super-exponential tail: sympy.stats Gompertz(b = 1, eta = 1/2).

F(y) = 1 - exp(-eta (e^(b y) - 1)) on y >= 0, f(y) = eta b e^(b y) exp(-eta (e^(b y) - 1)).
For mu = (13.2, 0) the loser's integrand (shifted so that max mu = 0)

    f(x + 13.2) F(x) ~ x exp(-eta e^13.2 e^x),   x >= 0,

rises from 0 and decays over a length 1 / (eta e^13.2) ~ 3.7e-6: its mass is far narrower than
the reconnaissance grid (spacing 0.02), and log p ~ -2.7e5.  Independent reference: the
closed form as a finite sum of exponentials (tests/test_user_family_numeric.py).
"""

import mpmath
import pytest
import sympy as sp
from sympy import stats as S

import derive
import derive.oracle
from test_user_family_numeric import _gompertz_exact  # noqa: E402


def _family():
    return derive.family_from_sympy_stats(S.Gompertz("X", 1, sp.Rational(1, 2)))


@pytest.mark.slow
def test_narrow_mode_at_support_end_vs_closed_form():
    p = derive.oracle.probs([13.2, 0], _family(), dps=30)
    ref = _gompertz_exact([13.2, 0], 1, "0.5", 60)
    assert mpmath.log(ref[1]) < -2.6e5  # the regime under test
    for a, b in zip(p, ref):
        assert abs(a - b) <= mpmath.mpf(10) ** -28 * b


def test_custom_logsf_beyond_the_precision_of_F():
    # S(13.2) = e^(1/2 - e^13.2 / 2) is below 2^-(2 prec): log F rounds to 0, log S must not be -inf
    from derive.oracle._mpfamily import kernels_for

    kern = kernels_for(_family())
    with mpmath.workdps(40):
        y = mpmath.mpf("13.2")
        want = mpmath.mpf(1) / 2 - mpmath.exp(y) / 2
        assert abs(kern.logsf(y) - want) <= mpmath.mpf(10) ** -35 * abs(want)


@pytest.mark.slow
@pytest.mark.parametrize("mu", [[13.2, 0, 5], [13.2, 6.6, 0], [13.2, 13.2, 0], [0, 0.11, 13.2, 0.22]])
def test_vs_closed_form_sum(mu):
    p = derive.oracle.probs(mu, _family(), dps=30)
    ref = _gompertz_exact(mu, 1, "0.5", 60)
    with mpmath.workdps(40):
        for a, b in zip(p, ref):
            assert abs(a - b) <= mpmath.mpf(10) ** -28 * b, (mu, a, b)
