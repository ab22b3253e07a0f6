"""numeric._batch.batch_log_probs: the vectorised certified batch kernel.

References are independent of the kernel: ``derive.oracle.log_probs`` (30
digits, mpmath/arb) and, for the normal pair, the closed form
``p_2 = Phi(-d / sqrt 2)`` via ``scipy.special.log_ndtr``.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from scipy import special

import numeric
from numeric._batch import batch_log_probs
from numeric.families import get_family

FAMILIES = [("normal", {}), ("logistic", {}), ("gumbel", {}), ("gumbel_min", {}),
            ("cauchy", {}), ("student_t", {"nu": 3.0})]


def _oracle(y, name, params):
    from derive import oracle
    return np.array([float(v) for v in oracle.log_probs([float(v) for v in y], name, **params)])


def _check_against(lp, ref):
    """Issue-6 bounds: log error <= 1e-12 max(1, |log p|); relative error of p <= 1e-13
    for p >= 1e-300 (plus 2 ulp of log p: the float64 value of log p ~ -690 has spacing
    1.1e-13, an unavoidable floor when p is carried as its logarithm)."""
    err = np.abs(lp - ref)
    assert np.all(err <= 1e-12 * np.maximum(1.0, np.abs(ref))), (lp, ref)
    big = ref >= np.log(1e-300)
    rel = np.abs(np.expm1(lp[big] - ref[big]))
    assert np.all(rel <= 1e-13 + 2 * np.spacing(np.abs(ref[big]))), (lp, ref)


def _rows(rng):
    """Random rows over spreads 0.01..60 plus ties (and a tie at the top)."""
    rows = []
    for spread in (0.01, 1.0, 5.0, 20.0, 60.0):
        n = int(rng.integers(2, 9))
        r = rng.random(n) * spread
        rows.append(r - r.max())
    rows.append(np.array([0.0, 0.0, -3.0, -3.0, -60.0]))
    return rows


@pytest.mark.parametrize("name,params", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_matches_oracle(name, params):
    fam = get_family(name, **params)
    rng = np.random.default_rng(sum(map(ord, name)))
    rows = _rows(rng)
    accepted = 0
    for k, y in enumerate(rows):
        lp, ok = batch_log_probs(y[None, :], fam)
        if not ok[0]:
            assert np.isnan(lp[0]).all()
            continue
        accepted += 1
        _check_against(lp[0], _oracle(y, name, params))
    # the kernel must not pass by declining everything: the narrow rows are certified
    assert accepted >= 2, f"{name}: only {accepted} of {len(rows)} rows certified"


def test_normal_small_spreads_all_certified_and_exact():
    fam = get_family("normal")
    rng = np.random.default_rng(7)
    y = rng.normal(size=(4, 10))
    lp, ok = batch_log_probs(y, fam)
    assert ok.all()
    for r in range(len(y)):
        _check_against(lp[r], _oracle(y[r] - y[r].max(), "normal", {}))


@pytest.mark.parametrize("d", [0.01, 1.0, 10.0, 37.0, 60.0, 200.0])
def test_normal_pair_closed_form(d):
    # n = 2 normal: p_2 = P[eps_2 - eps_1 > d] = Phi(-d / sqrt 2), far below 1e-300 too
    lp, ok = batch_log_probs(np.array([[0.0, -d]]), get_family("normal"))
    assert ok[0]
    ref = np.array([special.log_ndtr(d / np.sqrt(2)), special.log_ndtr(-d / np.sqrt(2))])
    _check_against(lp[0], ref)


@pytest.mark.parametrize("d", [0.5, 5.0, 40.0])
def test_logistic_and_gumbel_pairs_closed_form(d):
    # eps_2 - eps_1 is logistic for gumbel, gumbel_min (both) -> p_2 = sigma(-d);
    # logistic noise has no such form: checked against the oracle above
    for name in ("gumbel", "gumbel_min"):
        lp, ok = batch_log_probs(np.array([[0.0, -d]]), get_family(name))
        if ok[0]:
            _check_against(lp[0], np.array([-np.logaddexp(0, -d), -np.logaddexp(0, d)]))
        else:
            assert name == "gumbel_min" and d > 20.0     # allowed to decline far gaps


def test_rows_sum_to_one():
    rng = np.random.default_rng(3)
    for name, params in FAMILIES:
        # algebraic tails: the fixed grid certifies narrow rows only (poles at y_j +- i)
        y = rng.normal(size=(200, 6)) * (0.2 if name in ("cauchy", "student_t") else 2.0)
        lp, ok = batch_log_probs(y, get_family(name, **params))
        assert ok.mean() > 0.3, name
        s = np.exp(lp[ok]).sum(axis=1)
        assert np.all(np.abs(s - 1.0) <= 1e-14), name


def test_declines_instead_of_wrong():
    # far gaps / heavy tails that the fixed grids cannot certify: either declined (NaN,
    # ok False) or exact -- never a wrong certified number
    fam = get_family("gumbel_min")
    lp, ok = batch_log_probs(np.array([[0.0, -700.0]]), fam)   # true log p_2 = -700.0000...
    if ok[0]:
        _check_against(lp[0], np.array([-np.logaddexp(0, -700.0), -np.logaddexp(0, 700.0)]))
    else:
        assert np.isnan(lp[0]).all()
    # logistic, gap s = 700: p_2 = P[eps_1 - eps_2 < -s] = ((s - 1) e^s + 1) / (e^s - 1)^2
    # (the difference of two standard logistics), log p_2 = log(s - 1) - s + O(e^-s)
    lp, ok = batch_log_probs(np.array([[0.0, -700.0]]), get_family("logistic"))
    if ok[0]:
        lp2 = math.log(699.0) - 700.0
        _check_against(lp[0], np.array([-math.exp(lp2), lp2]))
    else:
        assert np.isnan(lp[0]).all()
    cases = [("normal", {}, [0.0, -1e6]), ("cauchy", {}, [0.0, -1e8]),
             ("student_t", {"nu": 0.05}, [0.0, -1.0])]
    for name, params, y in cases:
        lp, ok = batch_log_probs(np.array([y]), get_family(name, **params))
        assert not ok[0], (name, y)
        assert np.isnan(lp[0]).all()
    # mixed batch: the certified rows are unaffected by a declined one
    y = np.array([[0.0, -1.0, -2.0], [0.0, -1e6, -2e6], [0.0, -0.5, -0.25]])
    lp, ok = batch_log_probs(y, get_family("normal"))
    assert ok.tolist() == [True, False, True]
    single, _ = batch_log_probs(y[:1], get_family("normal"))
    np.testing.assert_allclose(lp[0], single[0], rtol=0, atol=1e-15)


def test_huge_normal_gap_declined_or_right():
    # log p = log Phi(-1000 / sqrt 2) = -250007.48...
    lp, ok = batch_log_probs(np.array([[0.0, -1000.0]]), get_family("normal"))
    if ok[0]:
        ref = special.log_ndtr(-1000.0 / np.sqrt(2))
        assert abs(lp[0, 1] - ref) <= 1e-12 * abs(ref)


def test_shift_invariance_and_ties():
    fam = get_family("normal")
    y = np.array([[0.3, 0.3, -1.2, 0.3], [10.3, 10.3, 8.8, 10.3]])
    lp, ok = batch_log_probs(y, fam)
    assert ok.all()
    np.testing.assert_allclose(lp[0], lp[1], rtol=0, atol=1e-14)
    assert lp[0, 0] == lp[0, 1] == lp[0, 3]


def test_deterministic_and_thread_safe():
    fam = get_family("logistic")
    y = np.random.default_rng(11).normal(size=(300, 8))
    ref = batch_log_probs(y, fam)
    out = [None] * 4

    def work(k):
        out[k] = batch_log_probs(y, fam)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for lp, ok in out:
        assert np.array_equal(ok, ref[1])
        assert np.array_equal(lp[ok], ref[0][ok])


def test_bad_input():
    fam = get_family("normal")
    with pytest.raises(TypeError, match="y"):
        batch_log_probs([[0.0, 1.0]], fam)
    with pytest.raises(TypeError, match="y"):
        batch_log_probs(np.zeros((2, 3), dtype=np.float32), fam)
    with pytest.raises(ValueError, match="n >= 2"):
        batch_log_probs(np.zeros((2, 1)), fam)
    with pytest.raises(ValueError, match="finite"):
        batch_log_probs(np.array([[0.0, -np.inf]]), fam)
    with pytest.raises(TypeError, match="fam"):
        batch_log_probs(np.zeros((1, 2)), "normal")
    with pytest.raises(NotImplementedError, match="laplace"):
        batch_log_probs(np.zeros((1, 2)), get_family("laplace"))
    lp, ok = batch_log_probs(np.zeros((0, 3)), fam)
    assert lp.shape == (0, 3) and ok.shape == (0,)


def test_a_family_plugs_in_through_its_spec():
    """The kernel reads everything from ``NumericFamily.small`` / ``.pair`` (no table keyed
    by name): a family under a new name carrying the logistic's spec gets the logistic's
    results bit for bit, forward and both VJPs (the scaled mode included: wide rows), and
    a family without a spec is declined."""
    import dataclasses

    from numeric._batch import batch_vjp

    ref = get_family("logistic")
    fam = dataclasses.replace(ref, name="logistic_by_spec")
    rng = np.random.default_rng(4)
    y = rng.standard_normal((40, 12)) * np.array([1.0, 2.0, 5.0, 300.0])[rng.integers(0, 4, (40, 1))]
    g = rng.standard_normal(y.shape)
    for f in (lambda F: batch_log_probs(y, F), lambda F: batch_log_probs(y, F, own_grids=True),
              lambda F: batch_vjp(y, g, F), lambda F: batch_vjp(y, g, F, log=True)):
        got, want = f(fam), f(ref)
        assert np.array_equal(got[1], want[1]) and want[1].any()
        assert np.array_equal(got[0], want[0], equal_nan=True)
    pair = dataclasses.replace(get_family("normal"), name="normal_by_pair")
    x = np.array([[0.3, -1.2], [4.0, 0.0]])
    assert np.array_equal(numeric.log_probs(x, pair), numeric.log_probs(x, "normal"))
    with pytest.raises(NotImplementedError, match="logistic_no_spec"):
        batch_log_probs(y, dataclasses.replace(ref, name="logistic_no_spec", small=None))


def test_own_grids_certify_wide_rows_exactly():
    # gumbel_min [0, -400, -1, -0.5]: the row's core map would need more than MAX_NODES
    # nodes (declined), the per-entry grids of method="batch" certify it -- exactly
    fam = get_family("gumbel_min")
    y = np.array([[0.0, -400.0, -1.0, -0.5]])
    lp, ok = batch_log_probs(y, fam)
    assert not ok[0] and np.isnan(lp[0]).all()
    lp, ok = batch_log_probs(y, fam, own_grids=True)
    assert ok[0]
    _check_against(lp[0], _oracle(y[0], "gumbel_min", {}))


@pytest.mark.parametrize("name,params", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_rows_do_not_depend_on_batch_mates(name, params):
    # without own_grids every row's bits are its own: subsets, permutations, one row alone,
    # and the lean single-row function agree exactly
    from numeric._batch import row_log_probs
    fam = get_family(name, **params)
    rng = np.random.default_rng(21)
    y = np.concatenate([rng.normal(size=(12, 7)) * s for s in (0.05, 0.5, 2.0, 6.0)])
    y -= y.max(axis=1, keepdims=True)
    lp, ok = batch_log_probs(y, fam)
    perm = rng.permutation(y.shape[0])
    lp2, ok2 = batch_log_probs(y[perm], fam)
    np.testing.assert_array_equal(lp2, lp[perm])
    np.testing.assert_array_equal(ok2, ok[perm])
    for r in range(0, y.shape[0], 5):
        one, ok1 = row_log_probs(y[r], fam)
        assert ok1 == ok[r]
        np.testing.assert_array_equal(one, lp[r])
        alone, ok1 = batch_log_probs(y[r:r + 1], fam)      # (the one-row lean path)
        assert ok1[0] == ok[r]
        np.testing.assert_array_equal(alone[0], lp[r])


def test_n_up_to_n_max_and_long_rows():
    # the kernel serves every n the public "auto" route sends it (3 <= n < FAST_MIN_N)
    from numeric._batch import N_MAX
    fam = get_family("normal")
    n = 200
    rng = np.random.default_rng(4)
    y = rng.normal(size=(2, n))
    lp, ok = batch_log_probs(y, fam)
    assert ok.all()
    s = np.exp(lp).sum(axis=1)
    assert np.all(np.abs(s - 1.0) <= 1e-14)
    # all tied: 1/n exactly (symmetry)
    lp, ok = batch_log_probs(np.zeros((1, n)), fam)
    assert ok[0] and np.all(np.abs(np.exp(lp[0]) * n - 1) <= 1e-14)
    with pytest.raises(ValueError, match="n <="):
        batch_log_probs(np.zeros((1, N_MAX + 1)), fam)


# --- vector-Jacobian products of the small-n kernel (numeric._batch.batch_vjp) -------

def _mp_vjp(mu, g, fam, log, dps=20):
    """``J^T g`` of p (or of log p, cotangent c -> g = c / p) by mpmath:
    ``(J^T g)_k = sum_j (g_k - g_j) K_kj``, ``K_kj = int h_k h_j F dx``."""
    import mpmath as mp
    from _mp_families import mp_family
    cdf, pdf = mp_family(fam)
    n = len(mu)
    with mp.workdps(dps):
        m = [mp.mpf(float(v)) for v in mu]
        # gumbel_min's density exp(t - e^t) is below e^-397 past t = 6, and mpmath's
        # tanh-sinh rule on [max, inf) does not terminate on that double exponential
        hi = max(m) + 6 if fam == "gumbel_min" else mp.inf
        pts = [-mp.inf] + sorted(set(m)) + [hi]

        def integral(a, b):
            def f(x):
                v = pdf(x - m[a]) * (pdf(x - m[b]) if b is not None else 1)
                for j in range(n):
                    if j != a and j != b:
                        v *= cdf(x - m[j])
                return v
            return mp.quad(f, pts)

        K = {(a, b): integral(a, b) for a in range(n) for b in range(a + 1, n)}
        gg = [mp.mpf(float(v)) for v in g]
        if log:
            gg = [gg[j] / integral(j, None) for j in range(n)]
        out = [mp.fsum((gg[k] - gg[j]) * K[min(k, j), max(k, j)] for j in range(n) if j != k)
               for k in range(n)]
        return np.array([float(v) for v in out])


@pytest.mark.parametrize("fam", ["normal", pytest.param("logistic", marks=pytest.mark.slow),
                                  pytest.param("gumbel_min", marks=pytest.mark.slow),
                                  pytest.param("cauchy", marks=pytest.mark.slow)])
@pytest.mark.parametrize("log", [False, True])
def test_batch_vjp_vs_mpmath(fam, log):
    from numeric._batch import batch_vjp
    rng = np.random.default_rng(4)
    x = np.array([[0.3, -1.2, 0.9, -0.4], [0.0, 0.0, -2.0, -2.0]])      # distinct; ties
    if fam == "cauchy":
        x *= 0.4                      # within the cauchy grid's reach at n = 4
    g = rng.normal(size=x.shape)
    v, ok = batch_vjp(x, g, get_family(fam), log=log)
    assert ok.all()
    for r in range(2):
        ref = _mp_vjp(x[r], g[r], fam, log)
        assert np.all(np.abs(v[r] - ref) <= 1e-10 * np.abs(ref)), np.abs(v[r] / ref - 1).max()


@pytest.mark.parametrize("fam", ["normal", "logistic", "gumbel_min", "cauchy"])
def test_public_small_n_vjps_vs_quadrature(fam):
    """Public probs_vjp / log_probs_vjp on short rows (the vectorised kernel) against the
    adaptive quadrature, per entry; a row's result does not depend on its batch mates."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 12))
    g = rng.normal(size=x.shape)
    g[5] = 0.0
    g[5, 3] = -1.0                                     # one-hot (an NLL gradient)
    for f in (numeric.probs_vjp, numeric.log_probs_vjp):
        got = f(x, g, fam)
        for r in range(6):
            ref = f(x[r], g[r], fam, method="quadrature")
            assert np.all(np.abs(got[r] - ref) <= 1e-10 * np.abs(ref) + 1e-200 * np.abs(ref).sum())
            assert np.array_equal(f(x[r:r + 1], g[r:r + 1], fam)[0], got[r])
