"""numeric._piecewise: the 10-, 12- and 14-point rules of the laplace panels in t = log u.

References are independent of the engine: the rules' model integrands in 40-digit
arithmetic against their closed integrals; ``derive.oracle.log_probs`` (30 digits)
for short rows; the adaptive quadrature (``method="quadrature"``, itself
oracle-tested) for log p and both VJPs of longer rows.
"""

import math

import mpmath as mp
import numpy as np
import pytest

import numeric._piecewise as pw
from derive import oracle
from numeric._piecewise import log_probs_rows
from numeric.families import get_family

from test_piecewise_engine import (_check_laplace_vs_quadrature, _check_log_probs,
                                   _laplace_kind_rows, _mp_gauss)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

L2 = math.log(2.0)


def _rel_err(npts, a, b, q):
    """Relative error of the ``npts``-point rule on ``[a, b]`` for
    ``e^(-q t) / (1 - e^t / 2)``: a simple pole ``log 2`` past ``t = 0`` (the kink),
    ``log G`` falling by ``q (b - a)`` across the panel."""
    with mp.workdps(40):
        xs, ws = _mp_gauss(npts)
        a, b = mp.mpf(a), mp.mpf(b)
        f = lambda t: mp.exp(-q * t) / (1 - mp.exp(t) / 2)
        quad = sum(w * (b - a) / 2 * f((a + b) / 2 + (b - a) / 2 * x) for x, w in zip(xs, ws))
        exact = mp.quad(f, [a, (a + b) / 2, b])
        return float(abs(quad / exact - 1))


def test_rules_at_40_digits():
    # 10 points: W <= log(2) / 2 (b / a <= 2^(1/2)), drop <= 5, pole d = log 2 past the end
    W = L2 / 2
    assert _rel_err(10, -W, 0, 0) < 1e-19
    assert _rel_err(10, -W, 0, 5 / W) < 5e-17
    # 12 points: W <= log 2 (b / a <= 2), drop <= 8
    W = L2
    assert _rel_err(12, -W, 0, 0) < 1e-18
    assert _rel_err(12, -W, 0, 8 / W) < 1e-17
    # 14 points on the former 16-point domain: W <= min(2 d, 3), drop <= 12 --
    # W = 2 d = 2 log 2, and W = 3 with d = 3/2 (the pole nearest a 3-wide panel)
    W = 2 * L2
    assert _rel_err(14, -W, 0, 0) < 1e-16
    assert _rel_err(14, -W, 0, 12 / W) < 1e-16
    lo = L2 - 1.5
    assert _rel_err(14, lo - 3.0, lo, 0) < 2e-16
    assert _rel_err(14, lo - 3.0, lo, 4.0) < 2e-16
    assert _rel_err(14, lo - 3.0, lo, 12 / 3.0) < 2e-16


def test_padded_rules_are_gauss_rules():
    # each row of the rule table: its used places integrate x^k on [0, 1] for
    # k <= 2 N - 1; unused places have weight 0
    for i, N in enumerate(pw._NPTS):
        x, w = pw._RULES_X[i], pw._RULES_W[i]
        used = pw._RULE_USED[i]
        assert used.sum() == N and (w[~used] == 0).all()
        for k in range(2 * N):
            assert abs(np.sum(w * x ** k) - 1.0 / (k + 1)) < 1e-14


def _rule_counts(Y, u_top=None):
    """Per-rule panel counts over the rows (the rule as nodes() picks it)."""
    row = pw._Row(Y, True)
    u, logw, ok, _ = row.nodes(u_top)
    E, lg, _ = row.panels(u_top)
    a, b = E[:, :-1], E[:, 1:]
    live = np.isfinite(b) & (b > a)
    lp_ = live & (a >= row._umin[:, None])
    nodes = np.isfinite(logw).sum(axis=1)
    return live, lp_, nodes


def test_new_rules_taken_and_fewer_nodes():
    rng = np.random.default_rng(5)
    Y = _laplace_kind_rows(rng, 30, 2)
    live, lp_, nodes = _rule_counts(Y)
    # every row's nodes: 16 per u panel, 8..14 per log panel, fewer than 14 on some
    assert (nodes <= 16 * (live & ~lp_).sum(axis=1) + 14 * lp_.sum(axis=1)).all()
    assert (nodes >= 16 * (live & ~lp_).sum(axis=1) + 8 * lp_.sum(axis=1)).all()
    assert (nodes < 16 * (live & ~lp_).sum(axis=1) + 14 * lp_.sum(axis=1)).any()


def _oracle_check(Y):
    lp, ok = log_probs_rows(Y, get_family("laplace"))
    assert ok.all()
    for y, l in zip(Y, lp):
        _check_log_probs(l, [float(v) for v in oracle.log_probs(list(y), "laplace", dps=30)])


def test_short_rows_vs_oracle():
    # s = 5 and float32-rounded rows (slow tier: every kind, n = 3 .. 20)
    rng = np.random.default_rng(107)
    _oracle_check(_laplace_kind_rows(rng, 6, 1)[[2, 5]])


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 7, 12, 20])
def test_short_rows_vs_oracle_slow(n):
    rng = np.random.default_rng(100 + n)
    _oracle_check(_laplace_kind_rows(rng, n, 1))


@pytest.mark.parametrize("n", [10, 40, 100])
def test_rows_vs_quadrature(n):
    # log p and both VJPs (dense and one-hot) against the adaptive quadrature:
    # n = 10, 40 the short-row kernel (_NearLaplace), n = 100 the panel engine
    rng = np.random.default_rng(200 + n)
    _check_laplace_vs_quadrature(_laplace_kind_rows(rng, n, 1), rng)


@pytest.mark.slow
@pytest.mark.parametrize("n", [5, 64, 65, 300, 1000])
def test_rows_vs_quadrature_slow(n):
    rng = np.random.default_rng(300 + n)
    _check_laplace_vs_quadrature(_laplace_kind_rows(rng, n, 1 if n >= 300 else 3), rng)


def _single_rows_vs_quadrature(Y, fam, rng):
    """Each row alone (m = 1: the closed-form far sums, _Eval.far_direct, where
    chosen): log p and both VJPs (dense and one-hot) against the adaptive quadrature."""
    from numeric._quadrature import quadrature_log_probs
    from test_piecewise_speed import _check_vjp, _vjp_refs
    f = get_family(fam)
    direct = [bool(pw._Eval(y[None], f).direct[0]) for y in Y]
    for i, y in enumerate(Y):
        lp, ok = log_probs_rows(y[None], f)
        assert ok.all()
        ref = quadrature_log_probs(y, f)
        _check_log_probs(lp[0], ref)
        assert np.max(np.abs(lp[0] - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-14
    for c, log, ref in _vjp_refs(Y, fam, rng):
        for i in range(len(Y)):
            v, ok = pw.probs_vjp_rows(Y[i:i + 1], c[i:i + 1], f, log=log)
            assert ok.all()
            _check_vjp(v, ref[i:i + 1])
    return direct


@pytest.mark.parametrize("fam, n", [("laplace", 100), ("exponential", 300)])
def test_closed_form_far_sums_vs_quadrature(fam, n):
    rng = np.random.default_rng(400 + n)
    Y = _laplace_kind_rows(rng, n, 1)
    direct = _single_rows_vs_quadrature(Y, fam, rng)
    assert any(direct)


@pytest.mark.slow
@pytest.mark.parametrize("fam, n", [("laplace", 65), ("laplace", 300), ("exponential", 129),
                                    ("exponential", 1000)])
def test_closed_form_far_sums_vs_quadrature_slow(fam, n):
    rng = np.random.default_rng(500 + n)
    _single_rows_vs_quadrature(_laplace_kind_rows(rng, n, 2), fam, rng)


@pytest.mark.parametrize("fam", ["laplace", "exponential"])
def test_closed_form_rows_independent_of_batch_mates(fam):
    # a block mixing rows that take the closed-form far sums with rows that take
    # Horner's rule: each row's log p and VJPs are the bits it gets alone
    rng = np.random.default_rng(77)
    f = get_family(fam)
    Y = _laplace_kind_rows(rng, 200, 1)
    d = pw._Eval(Y, f).direct
    assert d.any() and (fam == "exponential" or not d.all())     # exponential: every row
    g = rng.normal(size=Y.shape)
    lp, _ = log_probs_rows(Y, f)
    v, _ = pw.probs_vjp_rows(Y, g, f, log=True)
    for i in range(len(Y)):
        assert np.array_equal(log_probs_rows(Y[i:i + 1], f)[0][0], lp[i])
        assert np.array_equal(pw.probs_vjp_rows(Y[i:i + 1], g[i:i + 1], f, log=True)[0][0], v[i])
