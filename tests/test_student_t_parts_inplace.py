"""student_t linear parts (numeric.families._t_lin_parts) as the small-n kernel calls them:
on a fresh 3-D block ``d`` that they may overwrite and return (in place), the two outputs
never share memory (the kernel divides one by the other in place), and both match
mpmath's incomplete beta and density power on both sides, the series switch and zero."""
import math

import numpy as np
import pytest


@pytest.mark.parametrize("nu", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
def test_parts_in_place_block(nu):
    import mpmath as mp
    from numeric.families import _t_lin_parts
    parts, A = _t_lin_parts(nu)
    rng = np.random.default_rng(7 + int(nu))
    # the kernel's shape: (rows, n, nodes), d = node - score, clipped at -A
    d = np.concatenate([-(10.0 ** rng.uniform(-2, 6, 20)), 10.0 ** rng.uniform(-2, 6, 20),
                        [0.0, -3.17, -3.16, -2.24, 2.24, -math.sqrt(nu), -A]])
    d = np.resize(rng.permutation(d), (3, 4, 5))
    with np.errstate(all="ignore"):
        P, H = parts(d.copy())
    assert P.shape == H.shape == d.shape
    assert not np.shares_memory(P, H)
    with mp.workdps(40):
        for x, p, h in zip(d.ravel(), P.ravel(), H.ravel()):
            x = mp.mpf(x)
            q = mp.betainc(mp.mpf(nu) / 2, mp.mpf(1) / 2, 0, nu / (nu + x * x), regularized=True) / 2
            ref = q if x < 0 else 1 - q
            assert abs(mp.mpf(p) / ref - 1) < 1e-14, (nu, x)
            ref = (1 + x * x / nu) ** (-(mp.mpf(nu) + 1) / 2)
            if ref >= 1e-300:
                assert abs(mp.mpf(h) / ref - 1) < 1e-14, (nu, x)
