"""The small-n kernel's node maps for cauchy and student_t (numeric._batch core maps,
constants in numeric.families): cauchy's linear core reaches 1 unit beyond the scores
(CL = CR = 1) and student_t's long right tails (nu <= 4) take the double-exponential
right tail the cauchy already had.  Fewer nodes per row, the same certificate (even/odd
agreement and end terms), and the README's Guarantees against independent references:
``derive.oracle`` (mpmath, 30 digits) for log p and p, tests/_vjp_reference.py (cauchy)
and ``method="quadrature"`` (student_t) for the VJPs.
"""

from __future__ import annotations

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


def _rows(n, seed, count=2):
    """Rows as users have them (derive.bench kinds), a spread-40 row, a float32-rounded
    row and a row with an exact triple tie at the top."""
    from derive import bench
    rng = np.random.default_rng(seed)
    X = [bench.scores(k, (count, n)) for k in bench.KINDS]
    wide = 40.0 * np.linspace(0.0, -1.0, n)
    rng.shuffle(wide)
    f32 = (3.0 * rng.standard_normal(n)).astype(np.float32).astype(np.float64)
    tie = rng.standard_normal(n)
    tie[:3] = tie.max()
    return np.concatenate(X + [wide[None], f32[None], tie[None]])


def _kernel(X, fam):
    y = X - X.max(axis=1, keepdims=True)
    return _batch.batch_log_probs(y, fam)


def _mean_nodes(fam, n, s, seed=0):
    rng = np.random.default_rng(seed)
    y = s * rng.standard_normal((400, n))
    y -= y.max(axis=1, keepdims=True)
    _, G = _batch._core(fam.small, n).layout(y.min(axis=1))
    return float(G.mean())


def test_node_maps_in_effect():
    # the nodes per row the constants give (before: cauchy 207 / 362 at s = 1 / 5,
    # student_t nu = 3 198 / 344, nu = 1.5 ~340)
    cau, t3, t15 = get_family("cauchy"), get_family("student_t", nu=3), get_family("student_t", nu=1.5)
    assert _mean_nodes(cau, 10, 1.0) < 195 and _mean_nodes(cau, 10, 5.0) < 345
    assert _mean_nodes(t3, 10, 1.0) < 180 and _mean_nodes(t3, 10, 5.0) < 320
    assert _mean_nodes(t15, 10, 1.0) < 260
    # light tails keep the plain exponential tail (a reach below DE0 would give a NaN reach)
    assert "DE" not in get_family("student_t", nu=6).small.core_spec()
    assert _mean_nodes(get_family("student_t", nu=6), 10, 1.0) < 4000


@pytest.mark.parametrize("name,params", [("cauchy", {}), ("student_t", {"nu": 3.0})])
def test_log_probs_match_oracle(name, params):
    # (the oracle's cost: two short rows here, the rest in the slow sweep below)
    fam = get_family(name, **params)
    X = _rows(3, 3, count=1)[[2, 4]]                     # s = 5, spread 40
    lp, ok = _kernel(X, fam)
    assert ok.all()                                      # served by the kernel itself
    for r in range(X.shape[0]):
        _check(lp[r], np.exp(lp[r]), _oracle(X[r] - X[r].max(), name, **params))
    # the public entry point gives the kernel's values
    np.testing.assert_allclose(numeric.log_probs(X, name, **params), lp, rtol=0, atol=1e-15)


SWEEP = ([(name, params, n) for name, params in (("cauchy", {}), ("student_t", {"nu": 3.0}),
                                                 ("student_t", {"nu": 1.5}), ("student_t", {"nu": 4.0}))
          for n in (3, 10)]
         + [("cauchy", {}, 30), ("student_t", {"nu": 3.0}, 30)])


@pytest.mark.slow
@pytest.mark.parametrize("name,params,n", SWEEP)
def test_log_probs_match_oracle_sweep(name, params, n):
    # (the oracle's cost grows with n: one row per kind at n = 30)
    fam = get_family(name, **params)
    X = _rows(n, 17 + n, count=2 if n <= 10 else 1)
    lp, ok = _kernel(X, fam)
    assert ok.mean() >= 0.9
    for r in np.flatnonzero(ok):
        _check(lp[r], np.exp(lp[r]), _oracle(X[r] - X[r].max(), name, **params))


def test_rows_independent_of_batch_mates():
    # each row's result depends on that row only (bit for bit): alone, in its batch, and
    # in a batch shuffled and padded with rows of other spreads
    rng = np.random.default_rng(5)
    for name, params in (("cauchy", {}), ("student_t", {"nu": 3.0}), ("student_t", {"nu": 1.5})):
        fam = get_family(name, **params)
        X = _rows(10, 8)
        big = np.concatenate([X, 7.0 * rng.standard_normal((20, 10))])
        perm = rng.permutation(big.shape[0])
        lp, ok = _kernel(X, fam)
        lpb, okb = _kernel(big[perm], fam)
        inv = np.argsort(perm)[:X.shape[0]]
        np.testing.assert_array_equal(lpb[inv], lp)
        for r in range(X.shape[0]):
            one, ok1 = _kernel(X[r:r + 1], fam)
            assert ok1[0] == ok[r]
            np.testing.assert_array_equal(one[0], lp[r])


def _vjp_tol(terms):
    return 1e-10 * (terms + 1e-200 * terms.sum()) + 1e-290


@pytest.mark.parametrize("log", [False, True])
def test_cauchy_vjp_matches_reference(log):
    fam = get_family("cauchy")
    X = _rows(6, 21, count=1)
    rng = np.random.default_rng(4)
    G = rng.standard_normal(X.shape)
    y = X - X.max(axis=1, keepdims=True)
    v, ok = _batch.batch_vjp(y, G, fam, log=log)
    assert ok.all()
    for r in range(X.shape[0]):
        ref, terms, _ = reference_vjp(y[r], dict(enumerate(G[r])), "cauchy", log=log)
        assert np.all(np.abs(v[r] - ref) <= _vjp_tol(terms)), r


@pytest.mark.parametrize("log", [False, True])
def test_student_t_vjp_matches_quadrature(log):
    # method="quadrature" (oracle-tested): within 1e-10 of the row's largest entry (a
    # lower bound of each entry's sum of |terms| is not available for this reference)
    fam = get_family("student_t", nu=3.0)
    X = _rows(6, 22, count=1)
    G = np.random.default_rng(6).standard_normal(X.shape)
    y = X - X.max(axis=1, keepdims=True)
    v, ok = _batch.batch_vjp(y, G, fam, log=log)
    assert ok.all()
    fn = numeric.log_probs_vjp if log else numeric.probs_vjp
    for r in range(X.shape[0]):
        ref = fn(X[r], G[r], "student_t", nu=3.0, method="quadrature")
        assert np.max(np.abs(v[r] - ref)) <= 1e-10 * np.max(np.abs(ref)), r


def test_apriori_step_follows_the_map_constants():
    # the a-priori core step's rho is cached per RATIO function: a spec with the same RATIO
    # but other map constants gets its own rho (a shorter core brings the scores closer to
    # the map's growth, so Im x is larger there and the step smaller: 0.165 vs 0.240)
    c = dict(get_family("logistic").small.core_spec())
    h0 = _batch._core_apriori_step(c, 10)
    h1 = _batch._core_apriori_step(dict(c, CL=1.0, CR=1.0), 10)
    assert 0.15 < h1 < 0.9 * h0
    assert _batch._core_apriori_step(c, 10) == h0
