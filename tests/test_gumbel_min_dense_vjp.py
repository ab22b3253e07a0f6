"""gumbel_min dense VJPs of ``log p`` by the node matrix without its K x K form
(numeric._gumbel_min_dense): against ``method="quadrature"`` (itself tested against the
oracle) and the log-space reference tests/_vjp_reference.py, with the README's
normalization (each entry within 1e-10 of its own sum of |terms|, bounded below as in
tests/test_gumbel_min_wide_vjp.py).  Rows: ``s * N(0, 1)`` for s = 1, 2, 5, 10,
clusters with exact ties, a spread of 45, float32-rounded scores, long rows; the
engine's route (the public call goes through the new kernel) and its declines (a
cotangent on a few entries)."""

import numpy as np
import pytest

import numeric
from numeric import _fast
from numeric import _gumbel_min_dense as gd
from numeric.families import get_family

from _vjp_reference import reference_vjp
from test_gumbel_min_wide_vjp import _check, _dense_reference, _rows


def _kernel(z, c, **kw):
    fam = get_family("gumbel_min")
    return gd.dense_log_vjp_row(z, c, fam, fam.fast, _fast._cache_for(fam), **kw)


def _clustered(n, rng, spread=8.0):
    centres = spread * rng.normal(size=3)
    z = centres[rng.integers(0, 3, size=n)] + 1e-3 * rng.normal(size=n)
    z[: n // 4] = z[rng.integers(0, n, size=n // 4)]       # exact ties
    return z


def test_short_rows_vs_quadrature():
    """Default tier: the kernel itself (no fallback, no cost model) on n = 80 (s = 4) and
    a clustered row with ties (n = 150), dense cotangents, against the quadrature."""
    rng = np.random.default_rng(7)
    for z in (4.0 * rng.normal(size=80), _clustered(150, rng)):
        c = rng.normal(size=z.size)
        v = _kernel(z, c, check_cost=False)
        ref, terms = _dense_reference(numeric.log_probs_vjp, z, c)
        _check(v, ref, terms)


def test_declines_unresolvable_rows():
    """A cotangent on a few entries leaves entries whose sums of |terms| are ``e^-1000``
    small: the kernel declines (as the full node matrix does) and the public call (the
    per-row engine) matches the log-space reference."""
    rng = np.random.default_rng(41)
    z = 4.0 * rng.normal(size=80)
    o = np.argsort(z)
    support = dict(zip(o[[10, 40, 78, 79]].tolist(), [1.0, -1.3, 0.9, -0.2]))
    c = np.zeros(z.size)
    c[list(support)] = list(support.values())
    with pytest.raises(NotImplementedError):
        _kernel(z, c, check_cost=False)
    ref, terms, _ = reference_vjp(z, support, "gumbel_min", log=True)
    _check(numeric.log_probs_vjp(z, c, "gumbel_min"), ref, terms)


def test_public_route_uses_kernel(monkeypatch):
    """``log_probs_vjp`` with a dense cotangent on a gumbel_min row of n >= FAST_MIN_N
    is served by this kernel."""
    calls = []
    real = gd.dense_log_vjp_row

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(gd, "dense_log_vjp_row", spy)
    rng = np.random.default_rng(3)
    z = 2.0 * rng.normal(size=(2, 600))
    c = rng.normal(size=z.shape)
    v = numeric.log_probs_vjp(z, c, "gumbel_min")
    assert len(calls) == 2
    assert np.all(np.abs(v.sum(axis=1)) <= 1e-12 * np.abs(v).sum(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("s", [1.0, 2.0, 5.0, 10.0])
def test_normal_rows_vs_quadrature(s):
    """n = 1000, ``s * N(0, 1)``: the public log-p VJP (this kernel, or the engine on the
    rows it declines) and, where the kernel serves the row, the kernel itself."""
    rng = np.random.default_rng(int(10 * s))
    x = s * rng.normal(size=1000)
    c = rng.normal(size=x.size)
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(numeric.log_probs_vjp(x, c, "gumbel_min"), ref, terms)
    if s <= 5.0:
        _check(_kernel(x, c), ref, terms)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s=3", "s=5", "spread 45", "clusters+ties"])
def test_wide_rows_vs_quadrature(kind):
    x = _rows()[kind]
    c = np.random.default_rng(5).normal(size=x.size)
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(_kernel(x, c), ref, terms)


@pytest.mark.slow
def test_float32_rows():
    """Scores rounded to float32 (ties at float32 resolution), dense cotangent: in
    float64 against the quadrature; float32 input gives the float64 result rounded."""
    x = (5.0 * np.random.default_rng(8).normal(size=1000)).astype(np.float32)
    xd = x.astype(np.float64)
    c = np.random.default_rng(9).normal(size=x.size)
    ref, terms = _dense_reference(numeric.log_probs_vjp, xd, c)
    got = _kernel(xd, c)
    _check(got, ref, terms)
    got32 = numeric.log_probs_vjp(x, c, "gumbel_min")
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, numeric.log_probs_vjp(xd, c, "gumbel_min").astype(np.float32),
                               rtol=2e-7, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("s", [1.0, 3.0])
def test_long_rows_vs_quadrature(s):
    """n = 1e4: most nodes' posteriors are narrow (local rules from +-12 sigma)."""
    rng = np.random.default_rng(int(s) + 90)
    x = s * rng.normal(size=10_000)
    c = rng.normal(size=x.size)
    ref, terms = _dense_reference(numeric.log_probs_vjp, x, c)
    _check(_kernel(x, c), ref, terms)


def test_cotangent_spanning_decades_declined():
    """``c = g p`` on a clustered row: the entries of a low cluster (``p ~ 1e-150``) have
    sums of |terms| ``~ p``, which the posteriors of the top cluster reach only through
    tails below ``e^-45`` of their peaks, beyond the rules' ends.  The kernel declines
    the row (the bound of the rules' tails), and the public call matches the quadrature
    (this row came back 30% off with the rules' relative accuracy alone)."""
    rng = np.random.default_rng(2026)
    centres = np.array([-17.0, -2.5, 4.5, 12.4])
    z = centres[rng.integers(0, 4, size=160)] + 1e-3 * rng.normal(size=160)
    z[:40] = z[rng.integers(0, 160, size=40)]
    c = rng.normal(size=z.size) * numeric.probs(z, "gumbel_min")
    with pytest.raises(NotImplementedError):
        _kernel(z, c, check_cost=False)
    ref, terms = _dense_reference(numeric.log_probs_vjp, z, c)
    _check(numeric.log_probs_vjp(z, c, "gumbel_min"), ref, terms)


@pytest.mark.slow
def test_cotangent_spanning_decades_public():
    """The same kind of row at n = 300 (the O(n) engines' route): the public log-p VJP
    against the quadrature."""
    rng = np.random.default_rng(2026)
    centres = np.array([-17.0, -2.5, 4.5, 12.4])
    z = centres[rng.integers(0, 4, size=300)] + 1e-3 * rng.normal(size=300)
    z[:75] = z[rng.integers(0, 300, size=75)]
    c = rng.normal(size=z.size) * numeric.probs(z, "gumbel_min")
    ref, terms = _dense_reference(numeric.log_probs_vjp, z, c)
    _check(numeric.log_probs_vjp(z, c, "gumbel_min"), ref, terms)
