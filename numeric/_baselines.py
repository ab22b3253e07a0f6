"""Baselines kept for comparison: the article's K-point quantile rule and Monte Carlo.

Quantile rule (the article's recipe): replace the integral over the noise
by the K quantile nodes ``e_k = Phi^{-1}(k / (K + 1))``:

    p_i ~= (1/K) sum_k prod_{j != i} Phi(y_i - y_j + e_k)

It is *not* renormalized (its sum differs from 1 by its own error) and it
converges slowly: the nodes ignore the tails.  Cost O(n^2 K).

Monte Carlo: ``p_i ~= #{argmax_j (y_j + eps_j) = i} / samples`` with
``eps = Phi^{-1}(U)``, ``U`` uniform from ``numpy.random.default_rng(seed)``
(default seed 0, so repeated calls are bit-identical).
"""

from __future__ import annotations

import math
import operator

import numpy as np
from scipy.special import logsumexp

__all__ = ["quantile_log_probs", "monte_carlo_log_probs"]

_CHUNK = 1 << 20


def _need_ppf(fam, method):
    if fam.ppf is None:
        raise ValueError(f"method={method!r} needs the family's quantile function; "
                         f"family {fam.name!r} has no ppf (pass ppf= to numeric.family_from_logcdf)")


def _positive_int(value, name, lo=1):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer >= {lo}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer >= {lo}, got {value!r}") from None
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    return v


def quantile_log_probs(y, fam, K=1000):
    """The article's K-point rule for one finite standardized row ``y`` (log p)."""
    _need_ppf(fam, "quantile")
    K = _positive_int(K, "K")
    e = np.asarray(fam.ppf(np.arange(1, K + 1) / (K + 1.0)), dtype=np.float64)
    n = y.size
    lc_e = np.asarray(fam.logcdf(e), dtype=np.float64)
    out = np.empty(n)
    step = max(1, _CHUNK // max(1, n * K))
    for s in range(0, n, step):
        yi = y[s:s + step]
        arg = yi[:, None, None] - y[None, :, None] + e[None, None, :]    # (c, n, K)
        lc = np.asarray(fam.logcdf(arg), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            tot = lc.sum(axis=1) - lc_e[None, :]      # drop the j = i factor Phi(e_k)
        tot = np.where(np.isnan(tot), -np.inf, tot)
        out[s:s + step] = logsumexp(tot, axis=1) - math.log(K)
    return out


def monte_carlo_log_probs(y, fam, samples=10**6, seed=0):
    """Monte Carlo frequencies of the argmax for one finite standardized row (log p)."""
    _need_ppf(fam, "monte_carlo")
    samples = _positive_int(samples, "samples")
    rng = np.random.default_rng(seed)
    n = y.size
    counts = np.zeros(n, dtype=np.int64)
    step = max(1, _CHUNK // max(1, n))
    done = 0
    while done < samples:
        c = min(step, samples - done)
        eps = np.asarray(fam.ppf(rng.random((c, n))), dtype=np.float64)
        counts += np.bincount(np.argmax(y[None, :] + eps, axis=1), minlength=n)
        done += c
    with np.errstate(divide="ignore"):
        return np.log(counts / samples)
