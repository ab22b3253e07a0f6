"""Closed forms: Gumbel -> softmax (any n) and the n = 2 forms.

Rows are finite standardized scores (``-inf`` entries allowed for the
softmax).  Everything is returned as log-probabilities.

Gumbel (any n):  p_i = exp(y_i) / sum_j exp(y_j)          (the article's result)

n = 2: ``p_1 = P[eps_2 - eps_1 < d]``, ``d = y_1 - y_2``; the difference of
two iid noises is symmetric, so ``p_2 = G(-d)`` with ``G`` its CDF:

===========  =================================================
normal       G(d) = Phi(d / sqrt 2)
cauchy       G(d) = 1/2 + atan(d / 2) / pi    (difference ~ Cauchy(0, 2))
gumbel(_min) G(d) = 1 / (1 + exp(-d))         (difference ~ logistic)
laplace      G(d) = (2 - d) e^d / 4  (d < 0)  (density (1 + |d|) e^-|d| / 4)
exponential  G(d) = e^d / 2  (d < 0)          (difference ~ Laplace(1))
uniform      G(d) = (1 + d)^2 / 2  (-1 < d < 0)  (triangular difference)
===========  =================================================
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["softmax_log_probs", "pair_log_probs", "pair_vjp", "has_closed_form"]

_LOG2 = math.log(2.0)
_LOG4 = math.log(4.0)


def softmax_log_probs(y):
    """Row-wise log-softmax of an (m, n) float64 array (``-inf`` entries give -inf).

    >>> softmax_log_probs(np.array([[0.0, math.log(3.0)]])).round(12).tolist()
    [[-1.38629436112, -0.287682072452]]
    """
    y = np.asarray(y, dtype=np.float64)
    mx = np.max(y, axis=-1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    z = y - mx
    # sum exp(z) >= 1 (the maximum's term), so log(s) carries an ulp of absolute
    # error at most and every z - log(s) keeps its relative accuracy
    e = np.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    return z - np.log(s)


def _log_g_normal(d):
    return special.log_ndtr(d / math.sqrt(2.0))


def _log_g_cauchy(d):
    from .families import _cauchy_logcdf
    return _cauchy_logcdf(d / 2.0)


def _log_g_logistic_sigmoid(d):
    return -np.logaddexp(0.0, -d)


def _log_g_laplace(d):
    # d < 0: G = (2 - d) e^d / 4;  d >= 0: G = 1 - (2 + d) e^{-d} / 4
    with np.errstate(over="ignore", invalid="ignore"):
        neg = np.log(2.0 - np.minimum(d, 0.0)) + np.minimum(d, 0.0) - _LOG4
        dp = np.maximum(d, 0.0)
        pos = np.log1p(-(2.0 + dp) * np.exp(-dp) / 4.0)
    pos = np.where(dp > 1e300, 0.0, pos)
    return np.where(d < 0, neg, pos)


def _log_g_exponential(d):
    # difference of two Exp(1) is Laplace(1):  d < 0: e^d / 2;  d >= 0: 1 - e^{-d}/2
    with np.errstate(over="ignore"):
        return np.where(d < 0, np.minimum(d, 0.0) - _LOG2, np.log1p(-0.5 * np.exp(-np.maximum(d, 0.0))))


def _log_g_uniform(d):
    # triangular on [-1, 1]: (1 + d)^2 / 2 on (-1, 0); 1 - (1 - d)^2 / 2 on [0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = 2.0 * np.log1p(np.clip(d, -1.0, 0.0)) - _LOG2
        pos = np.log1p(-0.5 * np.square(1.0 - np.clip(d, 0.0, 1.0)))
    return np.where(d < 0, np.where(d <= -1, -np.inf, neg), pos)


# log of the density c = G' of the difference eps_2 - eps_1 (the derivatives of the
# n = 2 forms above): normal phi(d/sqrt2)/sqrt2; cauchy Cauchy(0, 2); gumbel and
# gumbel_min logistic sigma(d) sigma(-d); laplace (1+|d|) e^-|d| / 4; exponential
# Laplace(1) e^-|d| / 2; uniform triangular 1 - |d| on |d| < 1.  Each family carries
# its pair (log G, log c) as ``NumericFamily.pair`` (numeric.families).
def _log_c_normal(d):
    return -0.25 * np.square(d) - math.log(2.0 * math.sqrt(math.pi))


def _log_c_gumbel(d):
    return -np.logaddexp(0.0, -d) - np.logaddexp(0.0, d)


def _log_c_laplace(d):
    return np.log1p(np.abs(d)) - np.abs(d) - _LOG4


def _log_c_exponential(d):
    return -np.abs(d) - _LOG2


def _log_c_cauchy(d):
    a = np.abs(d)
    with np.errstate(over="ignore", divide="ignore"):
        big = math.log(2.0 / math.pi) - 2.0 * np.log(a)
        small = math.log(2.0 / math.pi) - np.log(4.0 + np.square(a))
    return np.where(a > 1e150, big, small)


def _log_c_uniform(d):
    with np.errstate(divide="ignore"):
        return np.log1p(-np.minimum(np.abs(d), 1.0))


def pair_vjp(y, g, fam, log=False):
    """VJP for n = 2 rows (standardized, finite ``y``; finite cotangents ``g``).

    ``p_1 = G(d)``, ``d = y_1 - y_2``, so ``dp_1/dy_1 = -dp_1/dy_2 = c(d)`` and
    ``p_2 = 1 - p_1``: ``J^T g = (g_1 - g_2) c(d) [1, -1]``.  For log p:
    ``J^T g = c(d) (g_1 / p_1 - g_2 / p_2) [1, -1]``, each ratio formed as
    ``exp(log c - log p)`` so underflowing p stay exact; entries with c = 0
    (uniform beyond |d| >= 1) contribute 0.  Divide by the scale afterwards.
    """
    d = y[:, 0] - y[:, 1]
    with np.errstate(over="ignore", invalid="ignore"):
        lc = fam.pair[1](d)
        if log:
            lp = pair_log_probs(y, fam)
            ratio = np.where(np.isneginf(lc)[:, None], 0.0, np.exp(lc[:, None] - lp))
            v1 = g[:, 0] * ratio[:, 0] - g[:, 1] * ratio[:, 1]
        else:
            v1 = (g[:, 0] - g[:, 1]) * np.exp(lc)
    return np.stack([v1, -v1], axis=1)


def has_closed_form(fam, n):
    """True when method="closed" can serve this family at axis length ``n``."""
    if fam.custom:
        return False
    return fam.softmax or (n <= 2 and fam.pair is not None)


def pair_log_probs(y, fam):
    """log p for (m, 2) finite standardized rows via the n = 2 closed form."""
    g = fam.pair[0]
    d = y[:, 0] - y[:, 1]
    return np.stack([g(d), g(-d)], axis=1)
