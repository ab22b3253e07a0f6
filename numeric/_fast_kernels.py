"""Taylor tables of the shifted kernels used by the large-n fast path.

For a family with CDF ``Phi`` and hazard ``h = phi / Phi = (log Phi)'`` the
fast path needs, on a uniform grid ``t_s = s * H``, the Taylor coefficients

    a_r(t) = f^(r)(t) / r!        f = log Phi          (r = 0..R)
    b_r(t) = h^(r)(t) / r!        (so a_{r+1} = b_r / (r + 1))

``a_0 = log Phi`` and ``b_0 = h`` come from the family's real kernels; the
higher coefficients come from Cauchy's integral formula on a circle of
radius ``rho`` around each node,

    b_r(t) = (1 / (N rho^r)) sum_k h(t + rho w^k) w^(-r k),   w = exp(2 pi i / N),

which is one FFT per node.  ``h`` (not ``log Phi``) is used on the circle:
``h = exp(log phi - log Phi)`` is single valued, ``log Phi`` is not.  The
aliasing error is ``b_{r+N} rho^N``, small when ``rho`` is well inside the disc
where ``h`` is analytic.  The family supplies ``h`` on complex arguments
(``NumericFamily.hazard_c``, or ``NumericFamily.hazard_about``: ``h(t + d)`` formed
relative to each circle's centre ``t``, where the family has it) and its engine
spec (:class:`FastSpec`, the radius ``rho`` and ``N`` among it,
``NumericFamily.fast``); ``numeric.families`` states each family's analyticity
radius beside them.

Tables are immutable arrays built once per family (and parameters: the cache key
is ``NumericFamily.kernel_key``) and grown under a lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RowsSpec:
    """A family's knowledge for the row-batched form of the O(n) engine
    (``numeric._fast_rows``), held by its FastSpec (``FastSpec.rows``; None: the rows
    go to the per-row engine), with the reasons for its values beside them."""

    p_max: int                # widest rows (bins) of the dense VJPs, whose Gamma tables span every bin
                              # (2 p_max where numeric._fast_rows._dense_p_lim finds that strip fits the cache)
    p_wide: int               # widest rows (bins) of log p and the one-hot VJPs
    n_max_probs: int          # longest rows rows_log_probs takes by default
    n_max_vjp: int            # longest rows the VJPs take beyond the per-row engine's range
    tilts: tuple = (0,)       # tilts c of the node sums as matrix products
    dense: bool = True        # dense VJPs attempted (False: the per-row engine serves them)
    gauss_agree: bool = False  # half-step agreement by the Gaussian bound (narrow integrands)


@dataclass(frozen=True)
class FastSpec:
    """A family's knowledge for the O(n) engine (``numeric._fast``): grids, orders and
    circles, held by the family (``NumericFamily.fast``) with the reasons for its values.
    """

    H: float           # grid step (bins, x grid and m nodes)
    R: int             # Taylor order of the spreading
    pad_left: float    # x grid extends this far below min z
    pad_right: float   # ... and above max z
    t_right: float     # |log Phi(t)| < 1e-40 beyond: table rows dropped
    pad_factor: float = 0.0   # pads grow by this times the half range (heavy tails)
    rho: float = 0.5          # Cauchy-formula circle radius for the tables
    ncirc: int = 32           # ... and its number of points
    ms: int = 1               # m-node stride (grid steps)
    quad_us: float = 30.0     # cost of exact quadrature per score (us), for the cost model
    q: int = 12               # interpolation stencil for log g on the m nodes
    fine_S: int = 16          # evaluation: sub-intervals per node interval ...
    fine_d: int = 4           # ... each with a degree fine_d Taylor polynomial
    heavy: bool = False       # algebraic tails: node integrals by near field + multipoles
                              # (numeric._fast_cauchy) instead of the trapezoid on the grid
    tail: float = 1.0         # heavy tails: the index nu of Phi(-t) ~ t^-nu (far-field panels)
    rows: RowsSpec | None = None   # the row-batched engine's knowledge (None: not served there)
    gamma: tuple | None = None     # VJPs' hazard tables for Gamma: (t_c, R, rho, ncirc) (numeric._fast)
    gamma_log: tuple | None = None  # ... for the VJP of log p, where they differ
    vjp_refine_span: float | None = None  # VJP rows the grid cannot resolve redone on a finer
                                          # grid up to this standardized spread (numeric._fast)
    node_vjp: bool = False    # log-p VJPs with dense cotangents by the node matrix of posterior
                              # expectations first (numeric._gumbel_min_vjp)


_RHO = 0.5
_NCIRC = 32


def taylor_tables(fam, t, R, rho=None, ncirc=_NCIRC):
    """Rows ``A[s] = a_r(t_s)``, ``B[s] = b_r(t_s)`` (r = 0..R) at the points ``t``.

    Unscaled coefficients (multiply column r by ``(-H)^r`` for a shift ``u H``).
    ``rho`` (scalar or per point, default 1/2) is the radius of the circle.
    """
    t = np.asarray(t, dtype=np.float64)
    rho = np.broadcast_to(_RHO if rho is None else np.asarray(rho, dtype=np.float64), t.shape)
    hz = fam.hazard_c
    w = np.exp(2j * np.pi * np.arange(ncirc) / ncirc)
    # the circle values, in chunks to bound memory
    B = np.empty((t.size, R + 1))
    for i in range(0, t.size, 4096):
        tt = t[i:i + 4096]
        rr = rho[i:i + 4096, None]
        if fam.hazard_about is None:
            vals = hz(tt[:, None] + rr * w[None, :])
        else:
            # h is real on the real axis, so h(conj z) = conj h(z): the upper half circle
            # (k = 0 .. N/2) gives the lower one (k = N - j <-> j)
            half = fam.hazard_about(tt[:, None], rr * w[None, :ncirc // 2 + 1])
            vals = np.concatenate([half, np.conj(half[:, ncirc - ncirc // 2 - 1:0:-1])], axis=1)
        coef = np.fft.fft(vals, axis=1)[:, :R + 1].real / ncirc
        with np.errstate(over="ignore"):   # huge radii: high orders underflow to 0
            B[i:i + 4096] = coef * (1.0 / rr) ** np.arange(R + 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        B[:, 0] = np.exp(fam.loghazard(t))
    A = np.empty_like(B)
    A[:, 0] = fam.logcdf(t)
    A[:, 1:] = B[:, :-1] / np.arange(1, R + 1)
    return A, B


_BLOCK = 512  # table rows are computed in fixed blocks (bitwise reproducible)


class KernelCache:
    """Thread-safe, grow-only cache of Taylor tables on ``t = s H``.

    ``get(s_lo, s_top)`` returns ``(s0, A, B)`` read-only arrays covering
    ``s0 <= s <= s1`` with ``s0 <= s_lo`` and ``s1 >= min(s_top, s_hi)`` (``s_top``
    defaults to ``s_hi``: every row up to the cut); rows beyond ``s_hi`` (the right
    cut, where ``|log Phi| < 1e-40``, or past the largest offset a grid can
    hold) are implicitly zero.  Rows are computed in fixed blocks of ``_BLOCK``
    aligned on ``s_hi`` (block ``k`` holds ``s_hi + 1 - (k + 1) _BLOCK <= s <=
    s_hi - k _BLOCK``), grown at either end, so every entry is the same bits
    whatever the order in which threads grew the cache; a grid that reads only
    offsets far below the cut (the heavy-tailed families: ``s_hi`` bounds the
    widest row's offsets) builds only the blocks it reads.
    """

    def __init__(self, fam, H, R, t_right, rho=_RHO, ncirc=_NCIRC):
        self._fam = fam
        self._rho = rho
        self._ncirc = ncirc
        self.H = H
        self.R = R
        self.s_hi = int(math.ceil(t_right / H))
        self._lock = threading.Lock()
        self._data = None  # (s0, A, B, k_top, k_bottom): blocks k_top..k_bottom

    def _block(self, k):
        end = self.s_hi + 1 - k * _BLOCK
        t = np.arange(end - _BLOCK, end) * self.H
        # rho: a radius, or a function of the points (a radius per point)
        rho = self._rho(t) if callable(self._rho) else self._rho
        return taylor_tables(self._fam, t, self.R, rho, self._ncirc)

    def get(self, s_lo, s_top=None):
        # the blocks holding s_lo and s_top (block k: rows s_hi + 1 - (k+1) BLOCK .. s_hi - k BLOCK)
        s_top = self.s_hi if s_top is None else min(max(s_top, s_lo), self.s_hi)
        k_hi = max(0, (self.s_hi - s_top) // _BLOCK)
        k_lo = max(k_hi, (self.s_hi - s_lo) // _BLOCK)
        data = self._data
        if data is not None and data[3] <= k_hi and data[4] >= k_lo:
            return data[:3]
        with self._lock:
            data = self._data
            if data is not None and data[3] <= k_hi and data[4] >= k_lo:
                return data[:3]
            if data is None:
                top, bottom = k_hi, k_lo
                blocks = [self._block(k) for k in range(bottom, top - 1, -1)]
            else:
                # grow downwards by doubling (as rows far out are asked for one by one)
                top = min(k_hi, data[3])
                bottom = data[4] if k_lo <= data[4] else max(k_lo, 2 * data[4] - data[3] + 1)
                blocks = ([self._block(k) for k in range(bottom, data[4], -1)] + [data[1:3]]
                          + [self._block(k) for k in range(data[3] - 1, top - 1, -1)])
            A = np.concatenate([b[0] for b in blocks])
            B = np.concatenate([b[1] for b in blocks])
            A.flags.writeable = False
            B.flags.writeable = False
            data = (self.s_hi + 1 - (bottom + 1) * _BLOCK, A, B, top, bottom)
            self._data = data
            return data[:3]
