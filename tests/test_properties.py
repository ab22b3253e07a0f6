"""Property tests (hypothesis): the article's conditions and the engine's identities.

For random score vectors ``mu`` and every noise family (random scale, random
``nu`` for student_t) the numeric engine must satisfy

1. ``p_i >= 0`` (and finite, ``<= 1``);
2. ``sum p = 1`` within 1e-14 (accuracy contract);
3. order preservation: ``mu_i > mu_j => p_i > p_j`` -- strict for the
   full-support families, non-strict for the bounded ones (uniform,
   exponential: entries more than the support width below the leader all
   have probability 0, a tie in the limit);
4. shift invariance ``p(mu + c) = p(mu)``;

plus temperature equivalence ``p(mu; s) = p(mu/s; 1)``, permutation
equivariance, ``sum_k (J^T g)_k = 0`` for the VJP, ``log_probs = log(probs)``
where ``probs`` is a normal float, and agreement with the mpmath oracle.

Tolerances come from the accuracy contract: every ``p_i >= 1e-300`` within
1e-13 relative of the truth, so two computations of the same truth differ by
at most ``2e-13`` relative (``TWO_REL``); ``log p`` inherits an absolute error
1e-13 plus the rounding of a float near ``|log p|``.  Where an identity would
need rounding of the *input* (``mu + c``, ``mu / s``) the inputs are chosen so
that this arithmetic is exact (dyadic scores, integer shifts, powers of two),
so no extra slack is needed.

Volume: the default hypothesis profile (tests/conftest.py, 60 examples) runs
each ``test_*`` property once; the slow-marked ``test_thorough`` runs every
numeric property with 1,000 examples (``HYPOTHESIS_PROFILE=thorough``: 10,000)
and asserts that at least that many were executed.  Example counts per
property are printed at the end of the module (``hypothesis examples run:
...``) and, when the
environment variable ``PERTURBMAX_PROPERTY_COUNTS`` names a file, written
there as JSON (under pytest-xdist: one file per worker, the name suffixed
with ``.gw0``, ``.gw1``, ...).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import numeric

REL = 1e-13            # accuracy contract for p >= 1e-300
TWO_REL = 2.1e-13      # two independent computations of the same value
SUM_TOL = 1e-14        # |sum p - 1|
TINY = 1e-300          # below this the contract is on log p, not p
EPS = np.finfo(np.float64).eps

FULL_SUPPORT = ("gumbel", "gumbel_min", "normal", "logistic", "laplace", "cauchy", "student_t")
BOUNDED = ("exponential", "uniform")
ALL_FAMILIES = FULL_SUPPORT + BOUNDED

COUNTS: Counter = Counter()
#: examples per numeric property in test_thorough: the slow tier, and HYPOTHESIS_PROFILE=thorough
SLOW_EXAMPLES = 1_000
THOROUGH = 10_000


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    if not COUNTS:
        return
    line = "hypothesis examples run: " + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items()))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("")
                reporter.write_line(line)
        else:
            reporter.write_line(line)
    path = os.environ.get("PERTURBMAX_PROPERTY_COUNTS")
    if path:
        # under pytest-xdist each worker runs some of the properties: one file per worker
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        with open(f"{path}.{worker}" if worker else path, "w") as fh:
            json.dump(dict(COUNTS), fh, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

@st.composite
def family_case(draw, names=ALL_FAMILIES, scale=True):
    name = draw(st.sampled_from(names))
    params = {}
    if name == "student_t":
        params["nu"] = draw(st.sampled_from([0.5, 1.0, 2.5, 30.0]) | st.floats(0.5, 50.0))
    if scale and draw(st.booleans()):
        params["scale"] = draw(st.floats(0.125, 8.0))
    return name, params


def scores(min_size=1, max_size=10, lo=-40.0, hi=40.0):
    """Finite score vectors; small pool of repeated values to provoke ties."""
    elem = st.floats(lo, hi, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 1.0, -1.0, 0.5])
    return st.lists(elem, min_size=min_size, max_size=max_size).map(lambda v: np.array(v, dtype=np.float64))


def dyadic_scores(min_size=1, max_size=10):
    """Scores k / 1024 with |k| <= 40 * 1024: sums with c = m / 1024 stay exact."""
    return st.lists(st.integers(-40 * 1024, 40 * 1024), min_size=min_size, max_size=max_size).map(
        lambda v: np.array(v, dtype=np.float64) / 1024.0)


def _probs(mu, case):
    name, params = case
    return np.asarray(numeric.probs(mu, name, **params))


def _log_probs(mu, case):
    name, params = case
    return np.asarray(numeric.log_probs(mu, name, **params))


def _scale(case):
    return case[1].get("scale", 1.0)


def _assert_close_p(a, b, what):
    """a, b: two computations of the same probabilities (contract: each within REL)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    normal = (np.abs(a) >= TINY) | (np.abs(b) >= TINY)
    bad = normal & (np.abs(a - b) > TWO_REL * np.maximum(np.abs(a), np.abs(b)))
    assert not bad.any(), f"{what}: {a[bad]} vs {b[bad]} (rel diff {np.abs(a - b)[bad] / np.abs(b)[bad]})"


def _assert_close_logp(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    both_inf = np.isneginf(a) & np.isneginf(b)
    tol = TWO_REL + 4 * EPS * np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore"):
        bad = ~both_inf & ~(np.abs(a - b) <= tol)
    assert not bad.any(), f"{what}: {a[bad]} vs {b[bad]}"


# ---------------------------------------------------------------------------
# the properties (plain functions, run by the default tests and by test_thorough)
# ---------------------------------------------------------------------------

def prop_nonnegative_normalized(mu, case):
    """Conditions 1 and 2."""
    COUNTS["nonnegative_normalized"] += 1
    p = _probs(mu, case)
    assert p.shape == mu.shape and p.dtype == np.float64
    assert np.isfinite(p).all(), p
    assert (p >= 0).all() and (p <= 1 + SUM_TOL).all(), p
    assert abs(math.fsum(p) - 1.0) <= SUM_TOL, (math.fsum(p) - 1.0, p)


def prop_order_preserving(mu, case):
    """Condition 3, checked on p and on log p (the latter reaches p < 1e-300)."""
    COUNTS["order_preserving"] += 1
    name = case[0]
    p = _probs(mu, case)
    lp = _log_probs(mu, case)
    z = mu / _scale(case)
    for i in range(len(mu)):
        for j in range(len(mu)):
            if not mu[i] > mu[j]:
                continue
            # non-strict, up to the rounding the contract allows
            if p[j] >= TINY:
                assert p[i] >= p[j] * (1 - TWO_REL), (i, j, p[i], p[j])
            if np.isfinite(lp[j]):
                assert lp[i] >= lp[j] - (TWO_REL + 4 * EPS * abs(lp[j])), (i, j, lp[i], lp[j])
            else:
                assert np.isneginf(lp[j])
            # strict for full-support noise once the gap is resolvable:
            # a gap >= 1e-6 in standardized units moves p by far more than 2e-13
            if name in FULL_SUPPORT and z[i] - z[j] >= 1e-6 and p[j] >= TINY:
                assert p[i] > p[j] * (1 + TWO_REL), (i, j, p[i], p[j])


def prop_shift_invariant(mu, c, case):
    """Condition 4 with exact arithmetic: dyadic mu, dyadic c."""
    COUNTS["shift_invariant"] += 1
    shifted = mu + c
    assert np.array_equal(shifted - c, mu)  # the shift is exact
    _assert_close_p(_probs(shifted, case), _probs(mu, case), f"shift by {c}")
    _assert_close_logp(_log_probs(shifted, case), _log_probs(mu, case), f"log, shift by {c}")


def prop_temperature(mu, k, case):
    """p(mu; s) = p(mu / s; 1) with s = 2^k (exact division)."""
    COUNTS["temperature"] += 1
    name, params = case
    params = {key: v for key, v in params.items() if key != "scale"}
    s = 2.0 ** k
    a = np.asarray(numeric.probs(mu, name, scale=s, **params))
    b = np.asarray(numeric.probs(mu / s, name, **params))
    _assert_close_p(a, b, f"scale {s}")


def prop_permutation(mu, perm_seed, case):
    COUNTS["permutation"] += 1
    perm = np.random.default_rng(perm_seed).permutation(len(mu))
    _assert_close_p(_probs(mu[perm], case), _probs(mu, case)[perm], f"permutation {perm}")


def prop_vjp_sums_to_zero(mu, g_seed, case):
    """Shift invariance => sum_k (J^T g)_k = 0 for every cotangent g.

    Tolerance: each VJP entry is an integral of size at most
    ``max|g| / scale`` (times a hazard bound); we allow 1e-12 of the total
    magnitude ``sum_k |v_k| + max|g| / scale`` -- ten times the per-entry
    contract, for the cancellation inside the sum.
    """
    COUNTS["vjp_sums_to_zero"] += 1
    name, params = case
    g = np.random.default_rng(g_seed).uniform(-1, 1, size=len(mu))
    v = np.asarray(numeric.probs_vjp(mu, g, name, **params))
    assert v.shape == mu.shape and np.isfinite(v).all(), v
    tol = 1e-12 * (np.abs(v).sum() + np.abs(g).max() / _scale(case))
    assert abs(math.fsum(v)) <= tol, (math.fsum(v), tol, v)


def prop_log_matches_probs(mu, case):
    COUNTS["log_matches_probs"] += 1
    p = _probs(mu, case)
    lp = _log_probs(mu, case)
    assert lp.shape == p.shape
    assert (lp <= REL).all(), lp
    ok = p >= TINY
    with np.errstate(divide="ignore"):
        logp = np.log(p)
    _assert_close_logp(lp[ok], logp[ok], "log_probs vs log(probs)")
    # where p underflowed to exactly 0, log p must be very negative (not a silent -inf/NaN error)
    assert not np.isnan(lp).any()
    assert (lp[p == 0] < math.log(5e-324) + 1).all()


# ---------------------------------------------------------------------------
# default-profile tests
# ---------------------------------------------------------------------------

@given(scores(), family_case())
def test_nonnegative_and_normalized(mu, case):
    prop_nonnegative_normalized(mu, case)


@given(scores(min_size=2), family_case())
def test_order_preserving(mu, case):
    prop_order_preserving(mu, case)


@given(dyadic_scores(), st.integers(-(2**20), 2**20).map(lambda m: m / 1024.0), family_case())
def test_shift_invariant(mu, c, case):
    prop_shift_invariant(mu, c, case)


@given(scores(), st.integers(-3, 3), family_case(scale=False))
def test_temperature_equivalence(mu, k, case):
    prop_temperature(mu, k, case)


@given(scores(min_size=2), st.integers(0, 2**32 - 1), family_case())
def test_permutation_equivariance(mu, seed, case):
    prop_permutation(mu, seed, case)


@given(scores(min_size=1, max_size=8, lo=-20, hi=20), st.integers(0, 2**32 - 1), family_case())
def test_vjp_entries_sum_to_zero(mu, seed, case):
    prop_vjp_sums_to_zero(mu, seed, case)


@given(scores(), family_case())
def test_log_probs_is_log_of_probs(mu, case):
    prop_log_matches_probs(mu, case)


# large n: the fast O(n) path (normal, logistic) and the quadrature path
@given(st.integers(2000, 3000), st.integers(0, 2**32 - 1), st.floats(0.5, 30.0),
       family_case(names=("normal", "logistic", "gumbel", "cauchy")))
@settings(max_examples=4)
def test_large_n_conditions(n, seed, spread, case):
    COUNTS["large_n"] += 1
    mu = np.random.default_rng(seed).normal(0.0, spread, size=n)
    p = _probs(mu, case)
    assert np.isfinite(p).all() and (p >= 0).all()
    assert abs(math.fsum(p) - 1.0) <= SUM_TOL
    order = np.argsort(mu, kind="stable")
    ps = p[order]
    ok = ps[:-1] >= TINY
    assert (ps[1:][ok] >= ps[:-1][ok] * (1 - TWO_REL)).all()


# ---------------------------------------------------------------------------
# slow: >= 1,000 examples per numeric property (HYPOTHESIS_PROFILE=thorough: >= 10,000)
# ---------------------------------------------------------------------------

THOROUGH_PROPERTIES = {
    "nonnegative_normalized": (prop_nonnegative_normalized, (scores(), family_case())),
    "order_preserving": (prop_order_preserving, (scores(min_size=2), family_case())),
    "shift_invariant": (prop_shift_invariant, (dyadic_scores(), st.integers(-(2**20), 2**20).map(
        lambda m: m / 1024.0), family_case())),
    "temperature": (prop_temperature, (scores(), st.integers(-3, 3), family_case(scale=False))),
    "permutation": (prop_permutation, (scores(min_size=2), st.integers(0, 2**32 - 1), family_case())),
    "vjp_sums_to_zero": (prop_vjp_sums_to_zero, (scores(max_size=8, lo=-20, hi=20), st.integers(0, 2**32 - 1),
                                                 family_case())),
    "log_matches_probs": (prop_log_matches_probs, (scores(), family_case())),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(THOROUGH_PROPERTIES))
def test_thorough(name):
    prop, strategies = THOROUGH_PROPERTIES[name]
    count = THOROUGH if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else SLOW_EXAMPLES
    before = COUNTS[name]
    run = settings(max_examples=count, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])(
        given(*strategies)(prop))
    run()
    ran = COUNTS[name] - before
    print(f"{name}: {ran} examples")
    assert ran >= count, f"only {ran} examples ran for {name}"


# ---------------------------------------------------------------------------
# the oracle (mpmath), lower volume
# ---------------------------------------------------------------------------

# the oracle guarantees dps - 3 significant digits: 1e-15 relative in p (and absolute
# in log p) at 18, a 100x margin below the contract's 1e-13 that the checks assert
ORACLE_DPS = 18
# families the oracle serves quickly enough for property volume; all of them in the slow run
# (heavy tails, cauchy and student_t, cost the oracle the most pieces)
ORACLE_FAST = ("gumbel", "normal", "logistic", "laplace", "exponential", "uniform")


def _oracle():
    from derive import oracle
    return oracle


@given(scores(min_size=1, max_size=3, lo=-20, hi=20), family_case(names=ORACLE_FAST, scale=False))
@settings(max_examples=5)
def test_numeric_agrees_with_oracle(mu, case):
    _check_against_oracle(mu, case)


@pytest.mark.slow
@given(scores(min_size=1, max_size=6, lo=-30, hi=30), family_case(names=ALL_FAMILIES))
@settings(max_examples=300, deadline=None)
def test_numeric_agrees_with_oracle_thorough(mu, case):
    _check_against_oracle(mu, case)


def _check_against_oracle(mu, case):
    """numeric within the contract of the oracle (``ORACLE_DPS`` digits): p to rel 1e-13 or 2 steps of log p (p >= 1e-300), log p to abs 1e-13."""
    COUNTS["numeric_vs_oracle"] += 1
    import mpmath as mp

    name, params = case
    exact_lp = _oracle().log_probs([float(v) for v in mu], name, dps=ORACLE_DPS, **params)
    p = _probs(mu, case)
    lp = _log_probs(mu, case)
    for i, e in enumerate(exact_lp):
        if e == mp.ninf:
            assert p[i] == 0 and np.isneginf(lp[i]), (i, p[i], lp[i])
            continue
        ef = float(e)
        # log p: absolute 1e-13 (= relative 1e-13 in p) plus the rounding of |log p|
        assert abs(lp[i] - ef) <= REL + 2 * EPS * abs(ef), (mu, case, i, lp[i], mp.nstr(e, 20))
        pe = mp.exp(e)
        if pe >= TINY:
            # README: 1e-13 relative, or 2 rounding steps of log p where that is coarser
            # (p < 1e-222: one step of |log p| > 512 is 1.1e-13 relative in p)
            rel = max(REL, 2 * float(np.spacing(abs(ef))))
            assert abs(p[i] - float(pe)) <= rel * float(pe), (mu, case, i, p[i], mp.nstr(pe, 20))


@given(dyadic_scores(min_size=2, max_size=3), st.integers(-(2**12), 2**12).map(lambda m: m / 1024.0),
       family_case(names=ORACLE_FAST, scale=False))
@settings(max_examples=3)
def test_oracle_conditions(mu, c, case):
    """Conditions 1-4 for the oracle itself (exact shifts of dyadic scores)."""
    COUNTS["oracle_conditions"] += 1
    import mpmath as mp

    name, params = case
    oracle = _oracle()
    dps = 20
    p = oracle.probs(list(mu), name, dps=dps, **params)
    q = oracle.probs(list(mu + c), name, dps=dps, **params)
    tol = mp.mpf(10) ** (-(dps - 4))
    assert all(v >= 0 for v in p)
    assert abs(mp.fsum(p) - 1) <= tol
    for a, b in zip(p, q):
        assert abs(a - b) <= tol * max(abs(a), mp.mpf(10) ** -300)
    for i in range(len(mu)):
        for j in range(len(mu)):
            if mu[i] > mu[j]:
                if name in FULL_SUPPORT:
                    assert p[i] > p[j], (i, j, p[i], p[j])
                else:
                    assert p[i] >= p[j], (i, j, p[i], p[j])
