"""numeric._uniform region planning (session 11, H3, second task).

The planner skips forming a group's cut (an O(groups) sum of logs) when the previous
region start's log G already bounds it below the current one; the compensated sum of
log G(a) keeps only its last entry; the far moments of long rows are formed one power
at a time.  Checked against independent values: 50-digit sums (rows whose plan jumps
over negligible stretches), math.fsum, and the cut formed at every region start.
"""

import math

import numpy as np
import pytest

from numeric._uniform import _Wide, _fsum, _log1m, _moments, _pow_rows, _wide_groups, _wide_row_log_probs


def _two_tied_groups(w0, m, delta):
    """``w0`` scores at 0, ``m`` at ``-delta``: log p at 50 digits (one-signed binomial sum)."""
    import mpmath as mp
    x = np.r_[np.zeros(w0), np.full(m, -delta)]
    with mp.workdps(50):
        d = -mp.mpf(float(x[-1]))
        e = 1 - d
        pd = mp.fsum(mp.binomial(m - 1, k) * d ** (m - 1 - k) * e ** (w0 + k + 1) / (w0 + k + 1) for k in range(m))
        ref = np.array([float(mp.log((1 - m * pd) / w0))] * w0 + [float(mp.log(pd))] * m)
    return x, ref


@pytest.mark.parametrize("w0,m,delta", [(400, 3, 0.5), (2000, 50, 0.3), (300, 300, 0.6)])
def test_plan_jumps_to_a_far_group_exact(w0, m, delta):
    # G(a) = (1 - a)^w0 falls below the top group's cut well before -delta: the plan jumps
    # to the deep group's breakpoint (the cut formed there, not skipped)
    x, ref = _two_tied_groups(w0, m, delta)
    d, w, _, _ = _wide_groups(x)
    W = _Wide(d, w)
    starts = [a for a, H, _, _ in W.regions]
    assert any(a == d[1] for a in starts)
    lp, ok = _wide_row_log_probs(x)
    assert ok
    assert np.max(np.abs(lp - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-13


def _clustered(rng, n):
    k = 4
    c = 3.0 * rng.normal(size=k)
    x = c[rng.integers(0, k, size=n)] + 1e-3 * rng.normal(size=n)
    cp = x[rng.integers(0, n, size=n)]
    return np.where(rng.random(n) < 0.25, cp, x)


@pytest.mark.parametrize("seed", range(4))
def test_every_region_start_is_above_its_cut(seed):
    # the decision the skipped cuts must not change: a region (not the end region) is
    # planned at a only if log G(a) (compensated sum, formed independently here) exceeds
    # the cut of the last group at or below a, formed at every start
    rng = np.random.default_rng(seed)
    x = _clustered(rng, 20000) if seed < 2 else rng.normal(size=3000) * (0.2 if seed == 2 else 0.05)
    d, w, _, _ = _wide_groups(x)
    W = _Wide(d, w)
    assert W.ok
    for a, H, jf, phi in W.regions:
        if H is None or jf >= d.size:
            continue
        lg = math.fsum(w[:jf] * _log1m(a - d[:jf], (1.0 - a) + d[:jf]))
        assert abs(phi - lg) <= 8 * np.finfo(float).eps * max(1.0, abs(lg))
        assert lg > W._cut(jf - 1)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 300001])
def test_fsum_vs_math_fsum(n):
    rng = np.random.default_rng(n)
    t = -rng.exponential(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)
    s = _fsum(t)
    assert abs(s - math.fsum(t)) <= 4 * np.finfo(float).eps * abs(s)


@pytest.mark.parametrize("n", [5, 2048, 2049, 200000])
def test_moments_vs_fsum_and_table(n):
    rng = np.random.default_rng(n)
    q = 1.0 / (1.0 + rng.random(n))
    c = rng.integers(1, 4, size=n).astype(float)
    R = 9
    Q = _moments(q, R, c)
    ref = [math.fsum(c * q ** (r + 1)) for r in range(R + 1)]
    assert np.allclose(Q, ref, rtol=1e-14, atol=0)
    # the same products and the same pairwise row sums as the (R + 1) x n table
    assert np.array_equal(Q, _pow_rows(q, R, c, shift=True).sum(axis=1))
