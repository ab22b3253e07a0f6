"""probs_vjp is blind to a constant added to the cotangent: sum_k p_k = 1, so J^T 1 = 0.

Independent facts, not the code's own output: J^T (c 1) = 0 exactly, and
J^T (g + c 1) = J^T g.  A constant cotangent once made the quadrature's error
certificate refuse the row (its terms cancel to rounding noise).
"""

from __future__ import annotations

import numpy as np
import pytest

import numeric

FAMILIES = ("normal", "logistic", "cauchy", "student_t", "gumbel_min", "laplace", "exponential", "uniform")


@pytest.mark.parametrize("method", ["auto", "quadrature"])
@pytest.mark.parametrize("family", FAMILIES)
def test_constant_cotangent_gives_zero(family, method):
    rng = np.random.default_rng(7)
    for shape in ((4, 3), (3, 10), (1, 40)):
        for s in (1.0, 5.0):
            x = s * rng.normal(size=shape)
            for c in (0.3, -7.1, 1e5):
                v = numeric.probs_vjp(x, np.full(shape, c), family, method=method)
                assert np.all(np.abs(v) <= 1e-13 * abs(c)), (family, shape, s, c, np.abs(v).max())
                d = 1e-3 * rng.normal(size=shape)
                shifted = numeric.probs_vjp(x, c + d, family, method=method)
                plain = numeric.probs_vjp(x, d, family, method=method)
                # the README's VJP bound, 1e-10 of the terms' scale |c| + |d|
                assert np.abs(shifted - plain).max() <= 1e-10 * (abs(c) + 1e-3), (family, shape, s, c)
