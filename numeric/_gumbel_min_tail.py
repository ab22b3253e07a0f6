"""gumbel_min: ``log F`` on the grid with the scores far above a grid row in closed form.

The O(n) engine (numeric._fast) forms ``log F(x_k) = sum_j f(x_k - z_j)`` on its grid by
spreading binned Taylor moments against tables of ``f = log Phi`` (numeric._fast_grid.
_spread_convolve): every bin against every grid row, ``(R + 1) P G`` multiply-adds.  For
the gumbel_min, ``Phi(t) = 1 - exp(-e^t)``, the left tail is a convergent series:

    f(t) = t + psi(e^t),   psi(u) = log((1 - e^-u) / u) = -u/2 + log(sinh(u/2) / (u/2))
         = -u/2 + u^2/24 - u^4/2880 + u^6/181440 - u^8/9676800 + ...

(``log(sinh v / v) = sum_k 2^2k B_2k v^2k / (2k (2k)!)``; radius ``|u| < 2 pi``, the zeros
of ``sinh(u/2)``).  So the scores at least ``D`` above a grid row contribute

    sum_far (x_k - z_j) + sum_r c_r e^(r x_k) sum_far e^(-r z_j),

a few exponentially weighted suffix sums over the bins (O(P) each) instead of the long
left part of the spreading kernel.  Only the band ``-D < x - c_b <= t_right`` keeps the
Taylor tables (``~ (D + t_right) / H`` taps instead of ``P + G``).

Truncation (terms through ``u^8``): the next coefficient is ``1/479001600`` (B_10 = 5/66)
and the later ones fall by ``(2 pi)^-2`` each, so at ``u <= e^-D`` (``D = 2``) each far
score is off by at most ``1.01 e^-20 / 4.79e8 = 4.3e-18`` absolute, while it contributes
``|f(t)| >= |t| >= 2`` to ``|log F|`` (all terms of one sign): a relative error below
``2.2e-18`` of ``|log F|``.  The far scores' offsets in their bins (``z_j = c_b + u_j H``,
``|u_j| <= 1/2``) enter exactly in the linear part and through
``e^(-r u_j H) = sum_m (-r H)^m u_j^m / m!`` (the bin moments ``M[m]``, ``m <= R``) in
the exponential ones: the first dropped term ``(r H / 2)^(R+1) / (R+1)!`` is at most
``2e-17`` of the term (``r = 4``, ``H = 1/32``, ``R = 8``; ``r = 6, 8`` carry
``u^6 / 181440 <= 3e-11``), which is itself at most ``e^-D / 2 / D = 0.034`` of the
score's ``|f|``.  The band keeps the tables' own truncation (numeric._fast docstring).

Rounding: the bulk (bin counts times ``f``'s values, or times the integer offsets
``k - b`` of the linear part) is exact on a lattice, as in ``_spread_convolve``; the
corrections carry their own (small) rounding.  Only numpy array operations that exist in
torch (convolutions, cumulative sums, strided views).

>>> import numpy as np
>>> from numeric.families import get_family
>>> from numeric._fast import _Geo, _bin_moments, _cache_for
>>> from numeric._fast_grid import _spread_convolve
>>> fam = get_family("gumbel_min"); spec = fam.fast; cache = _cache_for(fam)
>>> z = 5.0 * np.random.default_rng(0).normal(size=2000)
>>> geo = _Geo(z, spec); M = _bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
>>> a = spread_log_cdf(M, geo.kL, geo.kR, spec, cache)
>>> b = _spread_convolve(M, geo.kL, geo.kR, spec, cache)
>>> bool(np.all(np.abs(a - b) <= 1e-15 * np.maximum(1.0, np.abs(b))))
True
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._fast_grid import _lattice_exponent, _on_lattice, _spread_convolve

__all__ = ["TailSpread", "spread_log_cdf"]

# scores at least this far above a grid row take the series (truncation: module doc)
_D = 2.0
# psi(u) = sum_r _PSI[r] u^r (r = 1, 2, 4, 6, 8): -1/2, B_2k / (2k (2k)!)
_PSI = ((1, -0.5), (2, 1.0 / 24.0), (4, -1.0 / 2880.0), (6, 1.0 / 181440.0), (8, -1.0 / 9676800.0))
# suffix sums with weights e^(-r (b - m) H) run in blocks of at most r L H <= _EXP_SPAN
# (no overflow of e^(r (m - B0) H), no underflow of the terms that matter)
_EXP_SPAN = 300.0
# bands narrower than the full kernel by less than this factor: the plain spreading
_GAIN = 2.0


def _band(spec):
    """``d``: bins ``b >= k + d`` of grid row ``k`` are far (``x_k - z_j <= -(d - 1/2) H
    <= -D``)."""
    return int(math.ceil(_D / spec.H + 0.5))


@functools.lru_cache(maxsize=None)
def _decay(H):
    """``w[i, m] = e^(-r_i m H)`` for ``m < L``, ``L = _EXP_SPAN / (r_max H)`` (read only)."""
    rs = np.array([r for r, _ in _PSI], dtype=np.float64)[:, None]
    L = max(1, int(_EXP_SPAN / (rs.max() * H)))
    w = np.exp(-(rs * H) * np.arange(L, dtype=np.float64)[None, :])
    w.flags.writeable = False
    return w


def _suffix_exp(E, H):
    """``Y[i, m] = sum_(b >= m) e^(-r_i (b - m) H) E[i, b]`` (``E >= 0``) by reversed
    cumulative sums in blocks of ``L`` bins with ``r_max L H <= _EXP_SPAN`` (the scale
    factors ``e^(r (m - B0) H)`` stay finite, the terms that matter do not underflow)."""
    w_all = _decay(H)
    P = E.shape[1]
    L = w_all.shape[1]
    Y = np.empty_like(E)
    carry = None
    for B1 in range(P, 0, -L):
        B0 = max(0, B1 - L)
        w = w_all[:, :B1 - B0]                      # e^(-r (b - B0) H)
        Z = E[:, B0:B1] * w
        rc = np.cumsum(Z[:, ::-1], axis=1)[:, ::-1]  # sum_(b = m .. B1-1) Z[b]
        rc /= w
        if carry is not None:
            # + e^(-r (B1 - m) H) Y[B1]
            rc += carry * (w[:, B1 - B0 - 1:B1 - B0] / w) * w_all[:, 1:2]
        Y[:, B0:B1] = rc
        carry = Y[:, B0:B0 + 1].copy()
    return Y


@functools.lru_cache(maxsize=None)
def _exp_moments(H, R):
    """``V[i, m] = (-r_i H)^m / m!``: ``sum_m V[i, m] M[m, b] = sum_(j in b) e^(-r_i u_j H)``
    to the order ``R`` of the bin moments."""
    V = np.array([[(-r * H) ** m / math.factorial(m) for m in range(R + 1)] for r, _ in _PSI])
    V.flags.writeable = False
    return V


class TailSpread:
    """``log F`` on the grid rows of one row's bin moments ``M`` (:meth:`__call__`), the
    far scores of each grid row in closed form (module doc); the suffix sums over the bins
    are formed once, on the first call."""

    __slots__ = ("M", "spec", "cache", "d", "_sums")

    def __init__(self, M, spec, cache):
        self.M, self.spec, self.cache = M, spec, cache
        self.d = _band(spec)
        self._sums = None

    def _suffix_sums(self):
        if self._sums is None:
            M, H = self.M, self.spec.H
            R, P = M.shape[0] - 1, M.shape[1]
            # suffix sums with one slot past the end (zero); counts and b * counts are
            # integers below 2^53 (n P), so these sums and k C0 - C1 are exact
            C = np.zeros((3 + len(_PSI), P + 1))
            C[0, :P] = M[0]
            C[1, :P] = M[0] * np.arange(P, dtype=np.float64)
            C[2, :P] = M[1]
            C[:3, :P] = np.cumsum(C[:3, P - 1::-1], axis=1)[:, ::-1]
            # E[r, b] = sum_(j in b) e^(-r u_j H) from the offsets' moments (truncation:
            # module doc), summed with the weights e^(-r (b - m) H)
            C[3:, :P] = _suffix_exp(np.einsum("ri,ib->rb", _exp_moments(H, R), M), H)
            self._sums = C
        return self._sums

    def far(self, k):
        """``(lin, small)`` at grid rows ``k`` (int array): the far scores' ``sum t`` as an
        integer multiple of ``H`` (``lin``: the integer ``sum cnt_b (k - b)``, exact) and
        the rest (``- H sum u_j + sum_r c_r e^(r t)``)."""
        H = self.spec.H
        C = self._suffix_sums()
        P = C.shape[1] - 1
        mi = np.clip(k + self.d, 0, P)     # first far bin of each row (P: none)
        lin = k * C[0, mi] - C[1, mi]
        small = -H * C[2, mi]
        # X_r[k] = sum_(b >= m) e^(r (k - b) H) E[b] = e^(r (k - m') H) Y[m'], m' = clip(m):
        # the powers of e1 = e^((k - m') H) (a few ulps on these small terms); rows whose
        # first far bin is past the last read the zero slot
        e1 = np.exp(H * (k - mi))
        e2 = e1 * e1
        e4 = e2 * e2
        pw = {1: e1, 2: e2, 4: e4, 6: e4 * e2, 8: e4 * e4}
        for i, (r, c) in enumerate(_PSI):
            small += c * (pw[r] * C[3 + i, mi])
        return lin, small

    def __call__(self, kL, kR, stride=1):
        """``log F`` at grid rows ``k = kL, kL + stride, .. <= kR``
        (``_spread_convolve(M, kL, kR, spec, cache, "A", stride)``)."""
        M, spec, cache, d = self.M, self.spec, self.cache, self.d
        P = M.shape[1]
        s_hi = cache.s_hi
        Lk = s_hi + d                       # band s = k - b in (-d, s_hi]
        if P < _GAIN * Lk or not np.array_equal(M[0], np.rint(M[0])):
            return _spread_convolve(M, kL, kR, spec, cache, "A", stride)
        R = M.shape[0] - 1
        H = spec.H
        s_min = 1 - d
        s0, A, _ = cache.get(s_min, s_hi)
        Tb = np.ascontiguousarray(A[s_min - s0: s_hi - s0 + 1, :R + 1].T)       # (R + 1, Lk)
        Tb *= ((-H) ** np.arange(R + 1))[:, None]
        k = np.arange(kL, kR + 1, stride)
        lin, small = self.far(k)
        # near bins of the rows asked for: b in [k - s_hi, k + d - 1]
        b0 = max(0, kL - s_hi)
        b1 = min(P, kR + d)
        if b1 <= b0:
            return lin * H + small
        Ms = M[:, b0:b1]
        if stride != 1:
            # coarse rows (window scan): row k reads Ms[:, k - s_hi - b0 .. k - s_min - b0],
            # kernel reversed; Ms zero-padded so every row has its full band
            start = k - s_hi - b0
            padl = max(0, -int(start.min()))
            padr = max(0, int(start.max()) + Lk - Ms.shape[1])
            Mp = np.zeros((R + 1, Ms.shape[1] + padl + padr))
            Mp[:, padl:padl + Ms.shape[1]] = Ms
            s0 = int(start[0]) + padl
            W = sliding_window_view(Mp, Lk, axis=1)[:, s0:s0 + stride * (k.size - 1) + 1:stride]  # a view
            near = np.einsum("rkj,rj->k", W, Tb[:, ::-1])
            return near + (lin * H + small)
        # row k of the full convolution of bins b0.. with the band: index k - s_min - b0
        n_full = Ms.shape[1] + Lk - 1
        q = k - s_min - b0
        inside = (q >= 0) & (q < n_full)
        qi = np.clip(q, 0, n_full - 1)

        def conv(mv, tv):
            return np.where(inside, np.convolve(mv, tv, mode="full")[qi], 0.0)

        corr = small
        for r in range(R, 0, -1):
            corr += conv(Ms[r], Tb[r])
        m0 = Ms[0]
        N = float(M[0].sum())
        # one lattice 2^-e for the band's r = 0 bulk and the far part's sum of offsets:
        # every score contributes at most tmax in modulus to either, so both sums, and their
        # sum, are integer multiples of 2^-e below 2^53 (2^-e a multiple of H: the far
        # part's grid), as in _spread_convolve
        tmax = max(float(np.abs(Tb[0]).max()), (max(abs(kL), abs(kR)) + P + d) * H)
        e = _lattice_exponent(max(N, 1.0), tmax)
        hi = _on_lattice(Tb[0], e)
        bulk = conv(m0, hi)
        if 2.0 ** -e <= H:
            bulk += lin * H                 # exact (both on the lattice 2^-e, sum < 2^53)
        else:
            corr += lin * H
        corr += conv(m0, Tb[0] - hi)
        return bulk + corr


def spread_log_cdf(M, kL, kR, spec, cache, stride=1):
    """``log F`` at grid rows ``k = kL, kL + stride, .. <= kR`` from the bin moments ``M``
    (``_spread_convolve(M, kL, kR, spec, cache, "A", stride)``, the far scores of each row
    in closed form: module doc)."""
    return TailSpread(M, spec, cache)(kL, kR, stride)
