"""The small-n kernel's a-priori core step (logistic): the factor ratio it rests on, the
steps it gives, and the certified results against the adaptive quadrature (itself
oracle-tested) on rows of every kind -- random s * N(0, 1) rows (s = 1, 2, 5), clusters
with ties, all-tied rows (the narrowest integrands), wide spreads, float32 input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import numeric
from numeric import _batch
from numeric.families import get_family


def test_logistic_ratio_is_the_modulus_ratio():
    # |Phi(p + i q)| / Phi(p) from complex arithmetic, Phi(w) = 1 / (1 + e^-w), both signs of p
    p = np.linspace(-8.0, 8.0, 161)[:, None]
    q = np.linspace(-3.0, 3.0, 61)[None, :]
    w = p + 1j * q
    direct = np.abs(1.0 / (1.0 + np.exp(-w))) / (1.0 / (1.0 + np.exp(-p)))
    np.testing.assert_allclose(_batch._logistic_ratio(np.abs(p), q), direct, rtol=1e-13)
    # its maximum over p is 1 / cos(q / 2), at p = 0
    np.testing.assert_allclose(direct.max(axis=0), 1.0 / np.cos(q[0] / 2.0), rtol=1e-13)


def test_apriori_step_where_it_beats_the_certificate():
    sm = get_family("logistic").small
    steps = [_batch._core(sm, n) for n in (3, 10, 30, 100, 200)]
    # a-priori at short rows (no even/odd test), the certificate's step for long ones
    assert [c.disc is not None for c in steps] == [True, True, True, True, False]
    assert [c.agree for c in steps[:4]] == [math.inf] * 4
    assert steps[0].hh > steps[1].hh > steps[2].hh > steps[3].hh
    # the bound at the chosen step: 2 rho^(n+2) / (c (e^{2 pi b / hh} - 1)) <= _C_DISC for some b
    c = sm.core_spec()
    bs, rhos = _batch._RHO[c["RATIO"]]
    for n, core in zip((3, 10, 30, 100), steps):
        best = min(2.0 * r ** (n + 2) / (math.cos(b / c["SL"]) * math.expm1(2 * math.pi * b / core.hh))
                   for b, r in zip(bs, rhos) if math.isfinite(r))
        assert best <= _batch._C_DISC * (1 + 1e-9)


def _rows(rng, n):
    m = 3
    out = [s * rng.standard_normal((m, n)) for s in (1.0, 2.0, 5.0)]
    c = 3.0 * rng.standard_normal((m, 3))
    x = np.take_along_axis(c, rng.integers(0, 3, (m, n)), axis=1) + 1e-3 * rng.standard_normal((m, n))
    x[:, 1] = x[:, 0]
    out.append(x)                                                   # clusters, ties
    out.append(np.zeros((1, n)))                                    # all tied
    out.append(rng.uniform(-1.0, 0.0, (2, n)) * np.array([[60.0], [400.0]]))   # wide
    out.append((2.0 * rng.standard_normal((m, n))).astype(np.float32).astype(np.float64))
    return np.vstack(out)


@pytest.mark.parametrize("n", [3, 10, 40])
def test_apriori_rows_against_quadrature(n):
    rng = np.random.default_rng(n)
    fam = get_family("logistic")
    x = _rows(rng, n)
    y = x - x.max(axis=1, keepdims=True)
    lp, ok = _batch.batch_log_probs(y, fam)
    assert ok.mean() >= 0.9
    g = rng.standard_normal(y.shape)
    v, okv = _batch.batch_vjp(y, g, fam)
    for r in np.flatnonzero(ok):
        ref = numeric.log_probs(x[r], "logistic", method="quadrature")
        assert np.all(np.abs(lp[r] - ref) <= 1e-12 * np.maximum(1.0, np.abs(ref)))
        big = ref >= math.log(1e-300)
        rel = np.abs(np.expm1(lp[r][big] - ref[big]))
        assert np.all(rel <= 1e-13 + 2 * np.spacing(np.abs(ref[big])))
    for r in np.flatnonzero(okv)[::4]:
        ref = numeric.probs_vjp(x[r], g[r], "logistic", method="quadrature")
        assert np.max(np.abs(v[r] - ref)) <= 1e-10 * max(1.0, np.abs(ref).max())


def test_shortest_core_is_the_worst():
    # rho(b) on longer cores whose scores fill [a + CL, b0 - CR] (each u against its nearest
    # score) stays within the shortest core's, which the step uses
    c = get_family("logistic").small.core_spec()
    SL, SR, CL, CR = c["SL"], c["SR"], c["CL"], c["CR"]
    bs = np.linspace(0.1, 2.2, 8)
    short = _batch._core_rho(c["RATIO"], c, bs) / 1.01
    for span in (1.0, 4.0, 30.0):
        a, b0 = -span - CL, CR
        u = np.arange(a - 40.0, b0 + 40.0, 1.0 / 64.0)
        b = bs[:, None]
        eL, eR = SL * np.exp((a - u) / SL), SR * np.exp((u - b0) / SR)
        re = u - eL * np.cos(b / SL) + eR * np.cos(b / SR)
        im = b + eL * np.sin(b / SL) + eR * np.sin(b / SR)
        p = np.maximum(0.0, np.maximum(-span - re, re))
        assert np.all(c["RATIO"](p, im).max(axis=1) <= short * (1 + 1e-12))
