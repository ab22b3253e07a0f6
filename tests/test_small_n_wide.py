"""The small-n kernel (numeric._batch) on wide short rows: row-placed core maps.

Rows of the families "auto" sends to the kernel (normal, logistic, cauchy,
gumbel_min; 3 <= n < 256) are served whatever their spread -- cauchy up to 1e3,
gumbel_min spreads 10-40 with entries near and below 1e-300, clusters, exact ties --
and must meet the README's Guarantees.  References are independent of the kernel:
``derive.oracle`` (mpmath, 30 digits), ``method="quadrature"`` (oracle-tested) and
tests/_vjp_reference.py (an independent log-space Gauss-Legendre VJP).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import numeric
from numeric import _batch
from numeric.families import get_family

sys.path.insert(0, str(Path(__file__).parent))
from _vjp_reference import reference_vjp  # noqa: E402
from test_numeric_small_n import _check, _oracle  # noqa: E402

FAMILIES = ["normal", "logistic", "cauchy", "gumbel_min"]


def _served(mu, name):
    """The kernel certifies this row itself (no quadrature fallback)."""
    y = np.asarray(mu, dtype=np.float64)[None, :]
    return bool(_batch.batch_log_probs(y - y.max(), get_family(name))[1][0])


WIDE = [  # (family, scores): every row is served by the kernel itself
    ("cauchy", [5.0, -250.0, -251.0, -20.0, 0.0]),
    ("cauchy", [0.0, -37.5, -12.0, -12.0, 3.0, -60.0]),
    ("gumbel_min", [0.0, -25.0, -3.0, -40.0]),           # entries far below 1e-300
    ("gumbel_min", [0.0, -11.0, -12.5, -2.0, -10.0, -6.0]),
    ("logistic", [0.0, -30.0, -5.0, -5.0, 2.0]),
    ("logistic", [1.0, -300.0, 0.5]),                   # p_2 ~ e^-600 < TINY: log mode
]


@pytest.mark.parametrize("name,mu", WIDE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(WIDE)])
def test_wide_rows_served_and_match_oracle(name, mu):
    mu = np.array(mu)
    assert _served(mu, name)
    _check(numeric.log_probs(mu, name), numeric.probs(mu, name), _oracle(mu, name))


def test_gumbel_min_entries_near_1e_300_match_oracle():
    # spreads 10-40 with the lowest entries around and below 1e-300 (log mode, and the
    # linear-mode refusal of an entry below TINY)
    rng = np.random.default_rng(7)
    for s in (10.0, 20.0, 40.0):
        mu = rng.uniform(-s, 0.0, 6)
        mu[0] = 0.0
        assert _served(mu, "gumbel_min")
        ref = _oracle(mu, "gumbel_min")
        _check(numeric.log_probs(mu, "gumbel_min"), numeric.probs(mu, "gumbel_min"), ref)


def _rows(rng, n, m):
    """s * N(0, 1) rows (s = 1, 2, 5), clustered rows with exact ties, a tied row."""
    out = [s * rng.standard_normal(n) for s in (1.0, 2.0, 5.0) for _ in range(m)]
    cl = 3.0 * rng.standard_normal(3)
    for _ in range(m):
        v = cl[rng.integers(0, 3, n)] + 1e-3 * rng.standard_normal(n)
        v[rng.integers(0, n, n // 4)] = v[0]
        out.append(v)
    out.append(np.zeros(n))
    return out


@pytest.mark.parametrize("n", [3, 10, pytest.param(40, marks=pytest.mark.slow),
                               pytest.param(150, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", FAMILIES)
def test_random_rows_match_quadrature(name, n):
    # every row is certified by the kernel (bench-like inputs) and "auto" agrees with
    # the quadrature: p to 1e-13 relative (plus 2 ulp of log p), log p to 1e-12
    # max(1, |log p|)
    rng = np.random.default_rng(n + sum(map(ord, name)))
    rows = _rows(rng, n, 2 if n <= 10 else 1)
    Y = np.array(rows)
    lp, ok = _batch.batch_log_probs(Y - Y.max(axis=1, keepdims=True), get_family(name))
    assert ok.all(), np.flatnonzero(~ok)
    for r, mu in enumerate(rows):
        q = numeric.log_probs(mu, name, method="quadrature")
        a = numeric.log_probs(mu, name)
        np.testing.assert_array_equal(a, lp[r])                # "auto" takes the kernel's bits
        assert np.all(np.abs(a - q) <= 1e-12 * np.maximum(1.0, np.abs(q)))
        big = q >= math.log(1e-300)
        assert np.all(np.abs(np.expm1(a[big] - q[big])) <= 1e-13 + 2 * np.spacing(np.abs(q[big])))


def test_float32_input_matches_float64_path():
    rng = np.random.default_rng(11)
    for name in FAMILIES:
        x = (5.0 * rng.standard_normal((4, 10))).astype(np.float32)
        p32 = numeric.probs(x, name)
        assert p32.dtype == np.float32
        p64 = numeric.probs(x.astype(np.float64), name)
        np.testing.assert_allclose(p32, p64.astype(np.float32), rtol=2e-7, atol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_rows_bit_identical_whatever_the_batch(name):
    # each row's node set depends on that row only: batch, single row, lean path agree
    rng = np.random.default_rng(3)
    Y = np.concatenate([rng.standard_normal((6, 10)) * s for s in (0.3, 2.0, 5.0, 12.0)])
    Y -= Y.max(axis=1, keepdims=True)
    fam = get_family(name)
    lp, ok = _batch.batch_log_probs(Y, fam)
    for r in range(0, Y.shape[0], 5):
        one, ok1 = _batch.batch_log_probs(Y[r:r + 1], fam)
        row, okr = _batch.row_log_probs(Y[r], fam)
        assert ok1[0] == ok[r] == okr
        np.testing.assert_array_equal(one[0], lp[r])
        np.testing.assert_array_equal(row, lp[r])


VJP_ROWS = [
    ("cauchy", [0.0, -120.0, -3.0, -7.5, 1.0]),
    ("gumbel_min", [0.0, -22.0, -3.0, -9.0, -30.0, -1.0]),   # entries far below 1e-300
    ("logistic", [0.0, -35.0, -4.0, -4.0, 1.5]),
    ("normal", [0.0, -20.0, -4.0, 1.0]),
]


@pytest.mark.parametrize("name,mu", VJP_ROWS, ids=[r[0] for r in VJP_ROWS])
@pytest.mark.parametrize("log", [False, True])
def test_wide_one_hot_vjps_match_independent_reference(name, mu, log):
    # every entry within 1e-10 of its own sum of |terms| (README), except entries whose
    # sum of |terms| is below 1e-200 of the row's total (resolved to that absolute size)
    mu = np.array(mu)
    n = mu.size
    fam = get_family(name)
    f = numeric.log_probs_vjp if log else numeric.probs_vjp
    for k in range(n):
        c = np.zeros(n)
        c[k] = 1.0
        y = (mu - mu.max())[None, :]
        assert _batch.batch_vjp(y, c[None, :], fam, log=log)[1][0]      # served
        v = f(mu, c, name)
        ref, terms, _ = reference_vjp(mu - mu.max(), {k: 1.0}, name, log=log)
        floor = 1e-200 * terms.sum()
        assert np.all(np.abs(v - ref) <= 1e-10 * terms + floor), (k, v, ref)
        assert abs(v.sum()) <= 1e-12 * np.abs(v).sum() + floor


@pytest.mark.parametrize("name", FAMILIES)
def test_dense_vjps_match_quadrature(name):
    # dense cotangents on wide rows, both VJPs: the log-space VJP serves rows whose
    # entries fall below TINY; agreement with the quadrature to 1e-10 of the row's scale
    rng = np.random.default_rng(5)
    fam = get_family(name)
    for s in (2.0, 8.0):
        mu = s * rng.standard_normal(7)
        c = rng.standard_normal(7)
        for log in (False, True):
            f = numeric.log_probs_vjp if log else numeric.probs_vjp
            y = (mu - mu.max())[None, :]
            assert _batch.batch_vjp(y, c[None, :], fam, log=log)[1][0]
            v = f(mu, c, name)
            q = f(mu, c, name, method="quadrature")
            assert np.all(np.abs(v - q) <= 1e-10 * np.abs(q).max()), (s, log, v, q)


@pytest.mark.slow
def test_beyond_the_node_budget_declined_not_wrong():
    # a cauchy row 1e3 wide needs more than MAX_NODES core nodes: declined (NaN), and
    # "auto" answers through the quadrature, matching the oracle
    mu = np.array([0.0, -1000.0, -3.0])
    assert not _served(mu, "cauchy")
    _check(numeric.log_probs(mu, "cauchy"), numeric.probs(mu, "cauchy"), _oracle(mu, "cauchy"))


def _plain_tail(fam):
    """``fam`` with its core map's double-exponential right tail (core key DE) removed."""
    import dataclasses
    core = {k: v for k, v in fam.small.core_spec().items() if k not in ("DE", "DE0")}
    return dataclasses.replace(fam, small=dataclasses.replace(fam.small, core=core))


def test_cauchy_double_exponential_tail_against_plain_map_and_quadrature():
    # the cauchy core's right tail SR e^{w + kappa softplus(w - w0)^2} (numeric._batch,
    # "double-exponential right tail"): fewer nodes, every row the plain exponential tail
    # certifies is certified, the same log p to rounding; probs, log_probs and both VJPs
    # (one-hot and dense) against the quadrature on s N(0, 1) rows (s = 1, 2, 5),
    # clusters with ties, a tied row, spreads up to 200 (the tail's turn starts at 1e3)
    rng = np.random.default_rng(2024)
    fam = get_family("cauchy")
    plain = _plain_tail(fam)
    for n in (3, 10, 30):
        rows = _rows(rng, n, 1) + [np.linspace(0.0, -200.0, n), 40.0 * rng.standard_normal(n)]
        Y = np.array(rows)
        Y -= Y.max(axis=1, keepdims=True)
        lp, ok = _batch.batch_log_probs(Y, fam)
        lp0, ok0 = _batch.batch_log_probs(Y, plain)
        assert np.all(ok >= ok0) and ok.all()
        assert np.all(np.abs(lp[ok0] - lp0[ok0]) <= 4e-15 * np.maximum(1.0, np.abs(lp0[ok0])))
        a, G = _batch._core(fam.small, n).layout(Y.min(axis=1))
        a0, G0 = _batch._core(plain.small, n).layout(Y.min(axis=1))
        assert np.all(G <= G0) and np.all(G[:-2] <= 0.8 * G0[:-2])     # (wide rows: the ladder)
        if n == 30:
            continue
        for r, mu in enumerate(rows):
            q = numeric.log_probs(mu, "cauchy", method="quadrature")
            assert np.all(np.abs(lp[r] - q) <= 1e-12 * np.maximum(1.0, np.abs(q)))
            assert np.all(np.abs(np.expm1(lp[r] - q)) <= 1e-13 + 2 * np.spacing(np.abs(q)))
            c = np.zeros(n)
            c[r % n] = 1.0
            d = rng.standard_normal(n)
            for f in (numeric.probs_vjp, numeric.log_probs_vjp):
                log = f is numeric.log_probs_vjp
                for g in (c, d):
                    assert _batch.batch_vjp(Y[r:r + 1], g[None, :], fam, log=log)[1][0]
                    v = f(mu, g, "cauchy")
                    ref = f(mu, g, "cauchy", method="quadrature")
                    assert np.all(np.abs(v - ref) <= 1e-10 * np.abs(ref).max()), (n, r, log)
    x = (5.0 * rng.standard_normal((3, 10))).astype(np.float32)
    np.testing.assert_allclose(numeric.probs(x, "cauchy"),
                               numeric.probs(x.astype(np.float64), "cauchy", method="quadrature")
                               .astype(np.float32), rtol=2e-7, atol=0)


def test_dense_vjp_sums_of_abs_terms_at_every_length(monkeypatch):
    # rows with ties and dense cotangents whose entries cancel fail the cheap check
    # (error <= 1e-11 |v|) and those entries are certified against their exact sums of
    # |terms| (README): the double sum up to n = 160 or for a few entries,
    # numeric._batch._abs_terms (sorted prefix sums) otherwise (forced here at n = 170);
    # the rows are served by the kernel and match the quadrature either way
    assert np.allclose(*(f(np.array([[0.5, -1.0, 0.5, 2.0, 0.5]]), np.arange(15.0).reshape(1, 5, 3))
                         for f in (_batch._abs_terms, lambda g, h: np.einsum(
                             "rkj,rjg->rkg", np.abs(g[:, :, None] - g[:, None, :]), h))), rtol=1e-14)
    calls = []
    orig = _batch._abs_terms
    monkeypatch.setattr(_batch, "_abs_terms", lambda g, h: calls.append(g.shape[1]) or orig(g, h))
    from derive import bench
    for name, n, seed, subset in (("cauchy", 100, 0, 16), ("normal", 170, 2, 16), ("normal", 170, 2, 0)):
        monkeypatch.setattr(_batch, "_TERMS_SUBSET", subset)
        x = bench.scores("clusters+ties", (1, n))[0]
        c = np.random.default_rng(seed).standard_normal(n)
        for log in (True, False):
            f = numeric.log_probs_vjp if log else numeric.probs_vjp
            assert _batch.batch_vjp((x - x.max())[None, :], c[None, :], get_family(name), log=log)[1][0]
            v, q = f(x, c, name), f(x, c, name, method="quadrature")
            assert np.all(np.abs(v - q) <= 1e-10 * np.abs(q).max()), (name, log)
    assert 170 in calls
