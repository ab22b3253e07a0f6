"""numeric._batch, normal noise: the a-priori step, the erfcx-based linear parts, the
row reach and the tail certificate of the fast small-n kernel.

References are independent of the kernel: mpmath at 40 digits (Phi, exp, trapezoid
sums), ``derive.oracle.log_probs`` (30 digits).  Accuracy bounds are issue 6's:
p relative error <= 1e-13 for p >= 1e-300 (plus 2 ulp of log p, the floor of carrying
p as its logarithm -- the convention of test_numeric_batch), log error <=
1e-12 max(1, |log p|).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

from numeric import _batch as B
from numeric.families import get_family

NORMAL = get_family("normal")


def _oracle(y):
    from derive import oracle
    return oracle.log_probs([float(v) for v in y], "normal")


def _check(lp, ref):
    for i, r in enumerate(ref):
        assert abs(mp.mpf(float(lp[i])) - r) <= 1e-12 * max(1, abs(r)), (i, lp[i], r)
        if r >= mp.log(mp.mpf("1e-300")):
            rel = abs(mp.exp(mp.mpf(float(lp[i])) - r) - 1)
            assert rel <= 1e-13 + 2 * np.spacing(abs(float(r))), (i, float(rel), r)


def test_linear_parts_match_mpmath():
    # Phi(d) = exp(-d^2/2) erfcx(|d|/sqrt 2)/2 (d <= 0), 1 - ... (d > 0); E = exp(-d^2/2)
    mp.mp.dps = 40
    rng = np.random.default_rng(1)
    d = np.concatenate([np.linspace(-37.0, 12.0, 1501), rng.uniform(-37.0, 12.0, 500),
                        [0.0, -0.0, 1e-300, -1e-300, 8.3, 8.5]])
    P, E = B._normal_parts(d.copy())
    for v, p, e in zip(d, P, E):
        x = mp.mpf(float(v))
        assert abs(p / mp.ncdf(x) - 1) <= 1e-13, (v, p)
        assert abs(e / mp.exp(-x * x / 2) - 1) <= 1e-13 * max(1.0, v * v), (v, e)


@pytest.mark.parametrize("name", ["logistic", "gumbel_min"])
def test_separable_parts_match_mpmath(name):
    # SmallSpec.split: (Phi(d), h(d) = phi(d) / Phi(d)) at d = x - y from e^{-+x} e^{+-y},
    # against mpmath at 40 digits on the differences the linear modes meet (nodes down to
    # the clip at -700, scores down to -650): relative error of Phi and h a few ulps;
    # where the nodes act clipped (x < -700) every node term is below ~1e-301 of its
    # weight (Phi of the top score, y = 0, below e^-700), and h is 0 exactly where the
    # gumbel_min flush (t = e^d > 700) applies.  gumbel_min's h = t e^-t / Phi carries
    # the rounding of t (~2 ulps) times t in e^-t, as its unsplit form e^(d - t) does
    mp.mp.dps = 40
    sm = get_family(name).small
    rng = np.random.default_rng(4)
    x = np.concatenate([np.linspace(-60.0, 60.0, 81), rng.uniform(-700.0, 60.0, 20), [-700.0, -800.0]])
    y = np.concatenate([[0.0, -1e-3, -0.7, -3.0, -30.0], rng.uniform(-650.0, 0.0, 6)])
    P, H = sm.split(x[None, :], y[:, None])
    worst = 0.0
    for j, yj in enumerate(y):
        for k, xk in enumerate(x):
            if xk < -700.0:
                assert (yj != 0.0 or P[j, k] <= 1e-300) and H[j, k] <= 1.0 + 1e-300 * (name == "logistic")
                continue
            d = mp.mpf(float(xk)) - mp.mpf(float(yj))
            if name == "logistic":
                Pr, Hr = 1 / (1 + mp.exp(-d)), 1 / (1 + mp.exp(d))
            else:
                t = mp.exp(d)
                Pr, Hr = -mp.expm1(-t), t * mp.exp(-t) / -mp.expm1(-t)
            worst = max(worst, abs(P[j, k] / Pr - 1))
            if name == "gumbel_min" and t > 700:
                assert H[j, k] == 0.0
            elif Hr > mp.mpf("1e-300"):
                cond = 1 + (t if name == "gumbel_min" else 0)
                worst = max(worst, abs(H[j, k] / Hr - 1) / cond)
    assert worst <= 8 * np.finfo(float).eps, float(worst)


@pytest.mark.parametrize("n", [2, 3, 10, 30, 100])
def test_a_priori_step_on_the_worst_integrand(n):
    # the bound is attained by a Gaussian of variance 1/n (an entry far below n - 1 tied
    # scores); its trapezoid sum with step h(n), at any offset, is within 2e-15
    mp.mp.dps = 40
    h = mp.mpf(B._normal_step(n))
    exact = mp.sqrt(2 * mp.pi / n)
    for off in (0, 0.3, 0.5):
        s = h * mp.fsum(mp.exp(-n * ((k + off) * h) ** 2 / 2) for k in range(-400, 401))
        err = abs(s / exact - 1)
        assert err <= B._N_DISC
        assert err >= B._N_DISC / 100         # and not needlessly small (the step is tight)


def test_scalar_reach_equals_vectorised_reach():
    # the lean single-row path computes the row's grid with Python floats: same bits
    rng = np.random.default_rng(2)
    for n in (2, 3, 7, 10, 33, 100, 255):
        g = B._grid(NORMAL.small, n)
        Y = rng.standard_normal((300, n)) * np.exp(rng.uniform(-6, 5, (300, 1)))
        Y[:40] = np.round(Y[:40])             # ties
        Y[40:50] = 0.0                        # all tied
        Y -= Y.max(axis=1, keepdims=True)
        kL, lin = B._normal_rows(Y, g)
        for r in range(Y.shape[0]):
            assert B._normal_row(Y[r].tolist(), g) == (kL[r], lin[r])


@pytest.mark.parametrize("n", [3, 10, pytest.param(30, marks=pytest.mark.slow)])
def test_worst_case_rows_match_oracle(n):
    # clumps (the integrands the step and reach rules are built on) and random rows
    rng = np.random.default_rng(n)
    rows = [np.zeros(n), np.r_[np.zeros(n - 1), -9.0], np.r_[np.zeros(n - 1), -35.0],
            np.r_[0.0, np.full(n - 1, -4.5)], np.r_[0.0, np.full(n - 1, -40.0)],
            np.linspace(-4.5, 0.0, n), -np.abs(rng.standard_normal(n)) * 20.0,
            -rng.uniform(0.0, 0.01, n)]
    Y = np.array([r - r.max() for r in rows])
    lp, ok = B.batch_log_probs(Y, NORMAL)
    assert ok.all()
    for r in range(Y.shape[0]):
        _check(lp[r], _oracle(Y[r]))
        one, ok1 = B.row_log_probs(Y[r], NORMAL)
        assert ok1
        np.testing.assert_array_equal(one, lp[r])


def test_wide_rows_log_mode_match_oracle():
    # entries below TINY (linear mode impossible): the log mode on the same grid
    Y = np.array([[0.0, -70.0, -3.0], [0.0, -200.0, -100.0], [0.0, -0.5, -80.0]])
    lp, ok = B.batch_log_probs(Y, NORMAL)
    assert ok.all()
    for r in range(Y.shape[0]):
        _check(lp[r], _oracle(Y[r]))


def test_cut_reach_is_declined_not_wrong(monkeypatch):
    # with reaches far too short the tail certificate must refuse the rows (NaN, ok
    # False) -- a silently truncated integral would be wrong by up to ~100%
    monkeypatch.setattr(B, "_GRIDS", {})
    monkeypatch.setattr(B, "_N_REACH", -60.0)
    monkeypatch.setattr(B, "_N_PAD", -8.0)
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((40, 6)) * 2.0
    Y -= Y.max(axis=1, keepdims=True)
    lp, ok = B.batch_log_probs(Y, NORMAL)
    assert (~ok).sum() >= 30
    assert np.isnan(lp[~ok]).all()
    for r in np.flatnonzero(ok)[:3]:
        _check(lp[r], _oracle(Y[r]))
    # a right end cut short: refused as well
    monkeypatch.setattr(B, "_GRIDS", {})
    monkeypatch.setattr(B, "_normal_right_reach", lambda n, h: 3.0)
    monkeypatch.setattr(B, "_N_REACH", 40.0)
    monkeypatch.setattr(B, "_N_PAD", 6.3)
    lp, ok = B.batch_log_probs(Y, NORMAL)
    assert not ok.any() and np.isnan(lp).all()


def test_node_budget():
    # cost guard (issue 6 item 4: n = 10 normal in a few microseconds): the n = 10 row
    # linspace(-4.5, 0) needs <= 66 nodes (the even/odd-certified grid used 105)
    g = B._grid(NORMAL.small, 10)
    kL, lin = B._normal_row(np.linspace(-4.5, 0.0, 10).tolist(), g)
    assert lin and kL + g.kR + 1 <= 66
    assert math.isclose(g.hh, math.pi * math.sqrt(2.0 / (10 * math.asinh(1.0 / B._N_DISC))))
