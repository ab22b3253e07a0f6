"""perturbmax.numeric: fast perturbed-argmax probabilities (numpy + scipy only).

    p_i = P[argmax_j (mu_j + eps_j) = i] = int h(x - mu_i) F(x) dx,
    F(x) = prod_j Phi(x - mu_j),  h = phi / Phi,   eps_j iid with CDF Phi.

Public API
----------
``probs(mu, family="gumbel", *, axis=-1, method="auto", **params)``
``log_probs(mu, family="gumbel", *, axis=-1, method="auto", **params)``
``probs_vjp(mu, cotangent, family="gumbel", *, axis=-1, method="auto", **params)``
``log_probs_vjp(mu, cotangent, family="gumbel", *, axis=-1, method="auto", **params)``
``get_family``, ``family_from_logcdf``, ``NumericFamily``, ``FAMILY_NAMES``, ``METHODS``,
``QuadratureError``.

>>> import numpy as np
>>> probs([0.0, np.log(3.0)]).round(12).tolist()          # Gumbel noise = softmax
[0.25, 0.75]
>>> float(probs([1.0, 0.0], "normal")[0].round(12))        # Phi(1/sqrt 2)
0.760249938907
"""

from __future__ import annotations

import math
import threading
from importlib import metadata as _metadata
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _fast
from ._fast import fast_log_probs_rows, fast_probs_vjp
from ._fast_cauchy import heavy_log_probs_rows, heavy_vjp_rows
from ._fast_rows import rows_dense_vjp, rows_dense_worth, rows_log_probs, rows_onehot_log_vjp, rows_serves
from . import _piecewise, _tiny_p
from ._closed import has_closed_form, pair_log_probs, pair_vjp, softmax_log_probs
from ._batch import N_MAX, batch_log_probs, batch_vjp, row_log_probs, row_vjp
from ._quadrature import QuadratureError, quadrature_log_probs
from ._validate import check_cotangent, prepare_scores, restore, split_options, split_rows
from .families import FAMILY_NAMES, NumericFamily, family_from_logcdf, get_family, registry_params

# a registry name or a family object (a numeric.NumericFamily, or one that converts to it)
FamilyLike = Union[str, NumericFamily, Any]

__all__ = ["probs", "log_probs", "probs_vjp", "log_probs_vjp", "get_family",
           "family_from_logcdf", "NumericFamily", "FAMILY_NAMES", "METHODS", "QuadratureError", "FAST_MIN_N"]

try:
    __version__: str = _metadata.version("perturbmax")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

METHODS = ("auto", "closed", "quadrature", "batch", "quantile", "monte_carlo")
VJP_METHODS = ("auto", "closed", "quadrature")

# rows of at least this many entries take the O(n) engines under "auto", shorter ones
# the small-n kernel (see _route), whose cost grows like n times its node count
FAST_MIN_N = 256


def _rows_of(idx, m, *arrays):
    """Rows ``idx`` of each of ``arrays`` (``m`` rows each): the arrays themselves, not
    copies, when ``idx`` is every row (a long single row: no n-sized copies)."""
    return arrays if idx.size == m else tuple(a[idx] for a in arrays)


def _fast_vjp_rows(y, g, fam, log):
    """O(n) VJPs of standardized finite rows ``y`` with finite cotangents ``g``:
    ``(out, ok)``, rows with ``ok`` False (declined) hold NaN.

    Rows whose cotangent has one nonzero ``c_y`` (the gradient of a negative
    log-likelihood) take the one-hot path of numeric._fast_rows:
    ``c_y d log p_y / dy`` (``c_y d p_y / dy`` for ``probs``), every entry a positive
    integral; all-zero rows give 0; other rows the row-batched dense VJP
    (numeric._fast_rows.rows_dense_vjp, normal and logistic), then for the rows
    it declines the per-row engine's (numeric._fast.fast_probs_vjp, and for
    ``log_probs`` fast_log_probs_vjp when the engine has it).  Divided by the
    scale (``y = x / scale``)."""
    m, n = y.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if fam.custom or fam.fast is None:
        return out, ok
    nnz = np.count_nonzero(g, axis=1)
    zero = nnz == 0
    out[zero] = 0.0
    ok[zero] = True
    one = np.flatnonzero(nnz == 1) if rows_serves(fam) else np.zeros(0, dtype=np.intp)
    if one.size:
        yi = np.argmax(g[one] != 0, axis=1)
        c = g[one, yi]
        (yo,) = _rows_of(one, m, y)
        v, okv = rows_onehot_log_vjp(yo, yi, fam, log=log)
        v *= c[:, None]
        out[one[okv]] = v[okv]
        ok[one] = okv
    dense = np.flatnonzero(~ok)
    if dense.size and rows_serves(fam) and rows_dense_worth(dense.size, n):
        # all rows of a bin count together (numeric._fast_rows); the per-row engine below
        # takes the rows it declines (and serves a few rows alone faster)
        v, okd = rows_dense_vjp(*_rows_of(dense, m, y, g), fam, log=log)
        out[dense[okd]] = v[okd]
        ok[dense[okd]] = True
        dense = dense[~okd]
        del v       # (n-sized per row: not kept alive through the per-row engine)
    if dense.size and fam.fast.heavy:
        # heavy tails: all rows at once (numeric._fast_cauchy), then the per-row engine
        yd, gd = _rows_of(dense, m, y, g)
        v, okd = heavy_vjp_rows(np.asarray(yd, dtype=np.float64), np.asarray(gd, dtype=np.float64),
                                fam, fam.fast, _fast._cache_for(fam), log=log)
        out[dense[okd]] = v[okd]
        ok[dense[okd]] = True
        dense = dense[~okd]
        del v, yd, gd
    fn = getattr(_fast, "fast_log_probs_vjp", None) if log else fast_probs_vjp
    if dense.size and fn is not None:
        out[dense], ok[dense] = fn(*_rows_of(dense, m, y, g), fam, rows=True, assume_finite=True)
    out /= fam.scale
    return out, ok


def _piecewise_vjp_rows(y, g, fam, log):
    """VJPs of standardized finite rows by numeric._piecewise (laplace, exponential, uniform):
    ``(out, ok)`` like :func:`_fast_vjp_rows`, divided by the scale."""
    out, ok = _piecewise.probs_vjp_rows(y, g, fam, log=log)
    out /= fam.scale
    return out, ok


def _same_noise(fam):
    """student_t with ``nu = 1`` is the Cauchy distribution (density
    ``1 / (pi (1 + x^2))``, CDF ``1/2 + atan(x) / pi``): it takes the cauchy routes."""
    if fam.name == "student_t" and not fam.custom and fam.params.get("nu") == 1.0:
        return _cached_family("cauchy", fam.scale)
    return fam


def _small_vjp_rows(y, g, fam, log):
    """VJPs of short standardized finite rows by the small-n kernel
    (numeric._batch.batch_vjp, with the family's SmallSpec):
    ``(out, ok)`` like :func:`_fast_vjp_rows`; rows the kernel cannot certify
    (``ok`` False) are left to the caller."""
    out, ok = batch_vjp(y, g, fam, log=log)
    out /= fam.scale
    return out, ok


def _valid_methods(fam, n, choices=METHODS):
    out = []
    for m in choices:
        if m == "closed" and not has_closed_form(fam, n):
            continue
        if m in ("quantile", "monte_carlo") and fam.ppf is None:
            continue
        out.append(m)
    return out


def _check_method(method, fam, n, choices=METHODS):
    if not isinstance(method, str) or method not in choices:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(choices)}")
    valid = _valid_methods(fam, n, choices)
    if method not in valid:
        raise ValueError(f"method={method!r} is not available for family {fam.name!r} with "
                         f"n = {n}; valid methods here: {', '.join(valid)}")


def _standardize(x, fam):
    """(x - rowmax) / scale; -inf stays -inf, overflowing gaps become -inf (p = 0)."""
    mx = np.max(x, axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        y = (x - mx) / fam.scale
    return y


def _unshifted(x, y, fam):
    """The scores for the adaptive quadrature: ``x / scale`` when that is exact
    (scale a power of two, no overflow or subnormal rounding), else the shifted
    ``y``.  The quadrature works with differences inside each cluster of scores,
    so it needs no shift, and ``x - max`` would round away the spread of a
    cluster far below the top (``(1e17, 0, 0.5)``: both lower entries become
    ``-1e17``, while their probabilities differ by 16% under cauchy noise)."""
    scale = fam.scale
    if not _exact_scale(scale):
        return y
    if scale == 1.0:
        return x
    u = _divide_exactly(x, scale)
    return y if u is None else u


def _divide_exactly(x, scale, out=None):
    """``x / scale`` (scale a power of two) when every finite entry divides exactly
    -- no overflow, no subnormal rounding -- else None (non-finite entries pass)."""
    with np.errstate(over="ignore", under="ignore"):
        u = np.divide(x, scale, out=out)
    fin = np.isfinite(x)
    if np.array_equal(np.isfinite(u), fin) and (np.abs(u[fin & (u != 0)]) >= np.finfo(np.float64).tiny).all():
        return u
    return None


def _row_engine(y, fam, method, opts, x=None):
    if method in ("quadrature", "auto", "batch"):
        return quadrature_log_probs(y if x is None else _unshifted(x, y, fam), fam)
    if method == "closed":
        return pair_log_probs(y[None, :], fam)[0]
    if method == "quantile":
        from ._baselines import quantile_log_probs
        return quantile_log_probs(y, fam, **opts)
    if method == "monte_carlo":
        from ._baselines import monte_carlo_log_probs
        return monte_carlo_log_probs(y, fam, **opts)
    raise AssertionError(method)  # pragma: no cover


def _batch_serves(fam, n):
    return fam.small is not None and not fam.custom and 2 <= n <= N_MAX


# "auto" sends rows with SMALL_N_MIN <= n < FAST_MIN_N of the families with a small-n
# kernel spec (NumericFamily.small) to the vectorised small-n kernel (numeric._batch);
# n = 2 has closed forms, gumbel is softmax (see _route; rows the kernel declines go to
# the quadrature)
SMALL_N_MIN = 3


def _small_n(fam, n):
    return (fam.small is not None and not fam.custom
            and SMALL_N_MIN <= n < FAST_MIN_N and n <= N_MAX)


_FAMILY_CACHE = {}


def _cached_family(family, scale, nu=None):
    """``get_family(family, scale=scale)`` (and ``nu=nu`` unless None) for a registry name
    and plain numbers, memoised."""
    key = (family, scale, nu)
    fam = _FAMILY_CACHE.get(key)
    if fam is None:
        fam = get_family(family, scale=scale) if nu is None else get_family(family, scale=scale, nu=nu)
        if len(_FAMILY_CACHE) < 256:
            _FAMILY_CACHE[key] = fam
    return fam


def _small_row_shortcut(mu, family, axis, method, params, log):
    """One plain float64 vector, 3 <= n < FAST_MIN_N, method "auto": the lean path.

    Returns None -- the general path then validates and handles the input --
    unless ``mu`` is a 1-d float64 ndarray, ``axis`` is -1, 0 or None, the family
    a registry name served by the small-n kernel with at most a plain positive
    ``scale`` (and student_t's ``nu``), and every entry finite after standardizing.  The arithmetic is
    the general path's (``(mu - max) / scale``, the same kernel, the same
    quadrature fallback), so results are bit-identical to it.  A (1, n) batch along
    its last axis takes the same path and keeps its shape.
    """
    if type(mu) is np.ndarray and mu.ndim == 2 and mu.shape[0] == 1 and axis in (-1, 1):
        out = _small_row_shortcut(mu[0], family, -1, method, params, log)
        return None if out is None else out[None, :]
    row = _small_row(mu, family, axis, method, params)
    if row is None:
        return None
    fam, y, low = row
    lp, ok = row_log_probs(y, fam, low)
    if not ok:
        lp = quadrature_log_probs(_unshifted(mu, y, fam), fam)
    return lp if log else np.exp(lp)


def _small_vjp_shortcut(mu, cotangent, family, axis, method, params, log):
    """:func:`probs_vjp` / :func:`log_probs_vjp` of one plain vector (as in
    :func:`_small_row_shortcut`) with a finite float64 ndarray cotangent of its shape:
    the lean path (numeric._batch.row_vjp, the small-n kernel's arithmetic on that row:
    the general path's bits), or None -- the general path then handles the input,
    including the rows row_vjp does not certify."""
    if (type(mu) is not np.ndarray or type(cotangent) is not np.ndarray
            or cotangent.dtype != np.float64 or cotangent.shape != mu.shape):
        return None
    if mu.ndim == 2 and mu.shape[0] == 1 and axis in (-1, 1):
        out = _small_vjp_shortcut(mu[0], cotangent[0], family, -1, method, params, log)
        return None if out is None else out[None, :]
    row = _small_row(mu, family, axis, method, params)
    if row is None or not np.isfinite(cotangent).all():
        return None
    fam, y, low = row
    v = row_vjp(y, cotangent, fam, log=log, low=low)
    if v is not None:
        v /= fam.scale
    return v


def _small_row(mu, family, axis, method, params):
    """``(fam, y, low)`` -- the family, ``y = (mu - max) / scale`` and its minimum --
    when the lean paths take ``mu`` (see :func:`_small_row_shortcut`), else None."""
    if (method != "auto" or type(mu) is not np.ndarray or mu.ndim != 1 or mu.dtype != np.float64
            or axis not in (-1, 0, None) or type(family) is not str
            or family not in _LEAN_SMALL_NAMES
            or (params and not set(params) <= registry_params(family))):
        return None
    n = mu.shape[0]
    scale = params.get("scale", 1.0) if params else 1.0
    nu = params.get("nu") if params else None
    if type(scale) not in (int, float) or not 0.0 < scale < math.inf:
        return None
    if nu is not None and (type(nu) not in (int, float) or not 0.0 < nu < math.inf):
        return None
    fam = _same_noise(_cached_family(family, scale, nu))
    if _route(fam, n, method) != "small":
        return None
    mx = float(mu.max())
    mn = float(mu.min())
    scale = fam.scale
    # min((mu - mx) / scale) = (mn - mx) / scale: rounding is monotone
    low = (mn - mx) / scale if math.isfinite(mx) and mn > -math.inf else math.nan
    if not -math.inf < low <= 0.0:            # NaN, +-inf, overflowing gaps: general path
        return None
    y = mu - mx
    if scale != 1.0:                          # x / 1.0 == x: the general path's bits
        y /= scale
    return fam, y, low


def _gumbel_shifted(mu, family, axis, method, params):
    """Gumbel noise, plain float64 input: ``(mu - max) / scale`` along ``axis`` (a new array).

    Returns None -- the general path then validates and handles the row --
    unless the input is a float64 ndarray with a valid int axis, a non-empty
    axis, only a plain positive float/int ``scale`` and every row maximum
    finite (no NaN, no +inf, no all -inf row).  -inf entries need no special
    care: exp(-inf - max) = 0 exactly.  A gap beyond the float range
    overflows to -inf, i.e. p = 0, as in the general path.
    """
    if (family != "gumbel" or method not in ("auto", "closed") or type(mu) is not np.ndarray
            or mu.dtype != np.float64 or mu.ndim == 0 or type(axis) is not int
            or not -mu.ndim <= axis < mu.ndim or mu.shape[axis] == 0
            or not set(params) <= {"scale"}):
        return None
    scale = params.get("scale", 1.0)
    if type(scale) not in (int, float) or not 0.0 < scale < math.inf:
        return None
    if mu.shape[axis] == mu.size:     # one vector: scalar reductions (less overhead)
        top = mu.max()
        if not math.isfinite(top):
            return None
    else:
        top = np.max(mu, axis=axis, keepdims=True)
        if not np.isfinite(top).all():
            return None
    with np.errstate(over="ignore"):
        z = np.subtract(mu, top)
        if scale != 1:
            z /= scale
    return z


def _row_sum(z, axis):
    """``z.sum(axis, keepdims=True)``; a plain scalar sum when ``z`` is one vector."""
    return z.sum() if z.shape[axis] == z.size else np.sum(z, axis=axis, keepdims=True)


def _softmax_shortcut(mu, family, axis, method, params):
    """``softmax(mu / scale)`` for plain input (see :func:`_gumbel_shifted`), or None.

    Same passes as ``scipy.special.softmax`` (max, exp(x - max), sum,
    divide), so the common case costs what softmax costs."""
    z = _gumbel_shifted(mu, family, axis, method, params)
    if z is None:
        return None
    np.exp(z, out=z)
    z /= _row_sum(z, axis)
    return z


def _softmax_for_vjp(mu, cotangent, family, axis, method, params):
    """The softmax of :func:`_softmax_shortcut` when both Gumbel VJP shortcuts apply
    (plain input and a finite float64 ndarray cotangent of the same shape), else None."""
    if type(cotangent) is not np.ndarray or cotangent.dtype != np.float64:
        return None
    p = _softmax_shortcut(mu, family, axis, method, params)
    if p is None or cotangent.shape != p.shape or not np.isfinite(cotangent).all():
        return None
    return p


def _log_softmax_shortcut(mu, family, axis, method, params):
    """``log_softmax(mu / scale) = z - log sum exp(z)``, ``z = (mu - max) / scale``, for
    plain input (see :func:`_gumbel_shifted`), or None.  The sum is at least 1 (the
    maximum's term), so its log is exact to an ulp and no entry loses accuracy."""
    z = _gumbel_shifted(mu, family, axis, method, params)
    if z is None:
        return None
    z -= np.log(_row_sum(np.exp(z), axis))
    return z


# Per-thread scratch for the standardized scores of large inputs: a fresh array of
# >= 256 kB per call comes from mmap / a trimmed heap and its page faults make the
# engine's own passes slower (measured at n = 1e5: 4.3 ms with a fresh array, 2.7 ms
# with a reused one).  The scratch is only read by the engines (their outputs are new
# arrays), never returned; capped at 2^21 entries (16 MB) per thread.
_SCRATCH = threading.local()
_SCRATCH_MIN, _SCRATCH_MAX = 1 << 15, 1 << 21


def _scratch(shape):
    size = shape[0] * shape[1]
    if not _SCRATCH_MIN <= size <= _SCRATCH_MAX:
        return np.empty(shape)
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < size:
        buf = _SCRATCH.buf = np.empty(max(size, 1 << 17))
    return buf[:size].reshape(shape)


def _exact_scale(scale):
    """True when ``x / scale`` is exact for normal floats (scale a power of two)."""
    m, _ = math.frexp(scale)
    return m == 0.5


def _plain_standardized(x, fam, scratch=False, shift=True):
    """``(x - row max) / scale`` when every entry of ``x`` is finite and stays finite, else None.

    Two reductions (row max, row min: NaN and +inf show in the max, -inf in the
    min) and one subtraction (plus an in-place division by the scale) -- the
    general path's ``_standardize`` arithmetic, without the special-row split.
    ``scratch``: write into the calling thread's scratch buffer (the result must
    not outlive the call).  ``shift=False`` (scale a power of two): ``x / scale``
    without the shift when that is exact, for a shift-invariant consumer.
    """
    mx = np.max(x, axis=1, keepdims=True)
    mn = np.min(x, axis=1)
    scale = fam.scale
    with np.errstate(over="ignore", invalid="ignore"):
        # the lowest standardized score of each row (overflow -> -inf: the general path)
        if not np.isfinite((mn - mx[:, 0]) / scale).all():
            return None
        if not shift:            # scale a power of two: x / scale is exact, and the
            if scale == 1.0:     # caller's engine is shift invariant
                return x
            y = _divide_exactly(x, scale, out=_scratch(x.shape) if scratch else None)
            if y is not None:
                return y         # no overflow, no subnormal rounding: exact
        y = np.subtract(x, mx, out=_scratch(x.shape) if scratch else None)
    if scale != 1.0:
        y /= scale
    return y


def _large_rows(y, fam, assume_finite=True):
    """Rows of the "fast" route, standardized and finite: ``(log p, ok)`` from the
    row-batched engines (numeric._fast_rows; heavy tails: numeric._fast_cauchy) and the
    per-row O(n) engine for rows they decline (``ok`` False: both declined, NaN)."""
    if fam.fast.heavy:
        # heavy tails: all rows at once (numeric._fast_cauchy), then the per-row engine
        lp, ok = heavy_log_probs_rows(np.asarray(y, dtype=np.float64), fam, fam.fast, _fast._cache_for(fam))
    elif not rows_serves(fam):
        # the per-row engine takes every row: no NaN prefill, no copy of the rows
        return fast_log_probs_rows(y, fam, assume_finite=assume_finite)
    else:
        lp, ok = rows_log_probs(y, fam)
    todo = np.flatnonzero(~ok)
    if todo.size:
        lp[todo], ok[todo] = fast_log_probs_rows(y[todo], fam, assume_finite=assume_finite)
    return lp, ok


def _route(fam, n, method):
    """The kernel ``method`` uses for rows of length ``n`` of family ``fam`` -- every
    path condition in one place:

    * "softmax": gumbel noise (methods "auto", "closed"): softmax of ``mu / scale``;
    * "pair": n = 2 closed forms (``numeric._closed``, "auto" / "closed");
    * "batch": method="batch" on the small-n kernel's families and lengths;
    * "small": "auto", 3 <= n < FAST_MIN_N, the families with a small-n kernel spec
      (``NumericFamily.small``: normal/logistic/gumbel_min/cauchy/student_t): the
      small-n kernel (``numeric._batch``, nodes placed around each row's own scores;
      rows it cannot certify or that need more than its node budget: the quadrature);
    * "fast": "auto", n >= FAST_MIN_N, the families with O(n) engine kernels
      (``NumericFamily.fast``: normal/logistic/gumbel_min/cauchy, student_t real nu in [1, 6]): the O(n)
      engines (``numeric._fast_rows`` for many rows at once, ``numeric._fast`` for
      the rows it declines, then the quadrature);
    * "piecewise": "auto", n >= 3, laplace/exponential/uniform: the O(n) engine
      ``numeric._piecewise`` (uniform: ``numeric._uniform``; rows it declines: the
      quadrature);
    * "row": one row at a time by ``method`` (quadrature, quantile, monte_carlo).

    Registry families only; user families always take "row".
    """
    if fam.custom:
        return "row"
    if fam.softmax and method in ("auto", "closed"):
        return "softmax"
    if method in ("auto", "closed") and n == 2 and fam.pair is not None:
        return "pair"
    if method == "batch" and _batch_serves(fam, n):
        return "batch"
    if method == "auto" and _small_n(fam, n):
        return "small"
    if method == "auto" and n >= FAST_MIN_N and fam.fast is not None:
        return "fast"
    if method == "auto" and n >= 3 and fam.piecewise:
        return "piecewise"
    return "row"


# the registry names the lean single-vector paths (_small_row) may take: those whose
# family (default parameters, as the general path resolves them; the lean paths accept
# only a scale) routes to "small" -- a cheap check on the name string before the family
# is built
_LEAN_SMALL_NAMES = frozenset(
    name for name in FAMILY_NAMES
    if _route(_same_noise(_cached_family(name, 1.0)), SMALL_N_MIN, "auto") == "small")


def _vector_rows(route, y, fam):
    """``(log p, ok)`` of standardized rows ``y`` whose entries are all finite, by the
    route's vectorised kernel; rows with ``ok`` False are left to the caller."""
    if route == "pair":
        return pair_log_probs(y, fam), np.ones(y.shape[0], dtype=bool)
    if route == "fast":
        return _large_rows(y, fam, assume_finite=False)
    if route == "batch":
        return batch_log_probs(y, fam, own_grids=True)
    if route == "piecewise":
        return _piecewise.log_probs_rows(y, fam)
    # "small": "auto" keeps each row's result independent of its batch mates (no pass 2);
    # numeric._batch with the family's SmallSpec
    return batch_log_probs(y, fam)


def _log_probs_2d(x, fam, method, opts):
    m, n = x.shape
    _check_method(method, fam, n)
    route = _route(fam, n, method)
    # lean paths for plain input (every entry finite): no special-row split, no copies
    if route == "softmax":
        y = _plain_standardized(x, fam)
        if y is not None:
            return softmax_log_probs(y)
    elif route == "fast":
        # scale 1: the engine works with offsets from each row's minimum only, which it
        # forms exactly, so the scores go in unshifted (x - max would round each gap by
        # half an ulp, and log p_i moves by its slope times that: up to ~2 ulps of log p)
        y = _plain_standardized(x, fam, scratch=True, shift=not _exact_scale(fam.scale))
        if y is not None:
            lp, ok = _large_rows(y, fam)
            for r in np.flatnonzero(~ok):
                lp[r] = quadrature_log_probs(y[r], fam)
            return lp
    elif route == "piecewise":
        # the general path's arithmetic ((x - max) / scale, the same fallback) without
        # its special-row split and copies
        y = _plain_standardized(x, fam)
        if y is not None:
            lp, ok = _piecewise.log_probs_rows(y, fam)
            for r in np.flatnonzero(~ok):
                lp[r] = quadrature_log_probs(_unshifted(x[r], y[r], fam), fam)
            return lp
    lp, todo = split_rows(x)
    if not todo.any():
        return lp
    rows = np.flatnonzero(todo)
    y = _standardize(x[rows], fam)
    if route == "softmax":
        lp[rows] = softmax_log_probs(y)
        return lp
    finite = np.isfinite(y)
    nfin = finite.sum(axis=1)
    # single finite entry: probability 1
    one = nfin == 1
    lp[rows[one]] = np.where(finite[one], 0.0, -np.inf)
    done = one.copy()
    blk = np.flatnonzero((nfin == n) & ~one)
    if route != "row" and blk.size:
        # the route's vectorised kernel on the rows without special entries; rows it
        # declines (ok False) fall through to the per-row methods below
        vals, ok = _vector_rows(route, np.ascontiguousarray(y[blk]), fam)
        lp[rows[blk[ok]]] = vals[ok]
        done[blk[ok]] = True
    for r in np.flatnonzero(~done):
        sel = finite[r]
        out = np.full(n, -np.inf)
        if method == "closed":   # n <= 2 here; one finite entry handled above
            out[sel] = pair_log_probs(y[r][None, sel], fam)[0]
        else:
            out[sel] = _row_engine(y[r][sel], fam, method, opts, x=x[rows[r]][sel])
        lp[rows[r]] = out
    return lp


def _log_probs_public(mu, family, axis, method, params):
    """Validate and reshape for :func:`probs` / :func:`log_probs`: ``(log p (m, n), prep)``."""
    prep = prepare_scores(mu, axis)
    opts, fparams = split_options(method, params)
    fam = _same_noise(get_family(family, **fparams))
    if prep.x.size == 0:
        # an empty axis or an empty batch (0, n): nothing to compute (the piecewise
        # engines reduce over rows and need at least one)
        _check_method(method, fam, prep.x.shape[1])
        return prep.x, prep
    return _log_probs_2d(prep.x, fam, method, opts), prep


def log_probs(mu: ArrayLike, family: FamilyLike = "gumbel", *, axis: int | None = -1,
              method: str = "auto", **params: Any) -> np.ndarray:
    """Log-probabilities ``log p_i`` of the perturbed argmax, along ``axis``.

    ``log p_i = log int phi(x - mu_i) prod_{j != i} Phi(x - mu_j) dx``
    computed in log space: entries far below 1e-300 keep full accuracy
    (``log_probs([0, -60], "normal")[1]`` is ``log Phi(-60/sqrt 2) = -904.667...``).
    See :func:`probs` for arguments, methods and special inputs.

    >>> float(log_probs([0.0, -60.0], "normal")[1].round(6))
    -904.667264
    """
    quick = _log_softmax_shortcut(mu, family, axis, method, params)
    if quick is None:
        quick = _small_row_shortcut(mu, family, axis, method, params, True)
    if quick is not None:
        return quick
    lp, prep = _log_probs_public(mu, family, axis, method, params)
    return restore(lp, prep)


def probs(mu: ArrayLike, family: FamilyLike = "gumbel", *, axis: int | None = -1,
          method: str = "auto", **params: Any) -> np.ndarray:
    """Probabilities ``p_i = P[argmax_j (mu_j + eps_j) = i]`` along ``axis``.

    Parameters
    ----------
    mu : array_like of real numbers (int promoted to float64; float32/float16
        computed in float64 and returned in the input dtype; bool, complex
        and object arrays -> TypeError).  Leading axes are a batch, like
        ``scipy.special.softmax``; ``axis=None`` treats the whole array as one
        vector; a 0-d input is a vector of length 1 (result 1.0).
    family : registry name (``numeric.FAMILY_NAMES``) or a ``numeric.NumericFamily``.
    method : "auto" (gumbel -> softmax; n = 2 -> closed form; normal,
        logistic, gumbel_min and cauchy with 3 <= n < ``FAST_MIN_N`` -> the
        vectorised small-n kernel (numeric._batch: certified trapezoid sums
        over all rows at once, each row's result independent of its batch
        mates; rows wider than the kernel's reach, or that it cannot
        certify, go to the quadrature); the same families with
        n >= ``FAST_MIN_N`` -> the O(n) engines (many rows at once for
        normal and logistic, numeric._fast_rows; one row at a time,
        numeric._fast); otherwise quadrature), "closed" (gumbel any n, and n = 2 for
        normal, cauchy, gumbel_min, laplace, exponential, uniform),
        "quadrature" (adaptive log-space Gauss-Kronrod of the max-CDF form,
        any family), "batch" (the small-n kernel for normal, logistic,
        gumbel, gumbel_min, cauchy and student_t with n <= 1024 on every
        row, plus per-entry grids for the tiny entries of rows it cannot
        otherwise certify -- those entries' last bits may depend on the
        batch mates; other rows and families go to the quadrature),
        "quantile" (the article's K-point rule, option ``K``,
        default 1000, not renormalized) and "monte_carlo" (options
        ``samples`` default 10**6, ``seed`` default 0).
    **params : family parameters ``scale`` (> 0, every family) and ``nu``
        (> 0, student_t), and the method options above.

    Special inputs (per row along ``axis``):
    NaN anywhere -> the row is NaN; ``-inf`` entries -> probability exactly 0,
    the rest renormalize; k >= 1 entries ``+inf`` -> 1/k on each (the limit
    of tied scores growing without bound), 0 elsewhere; all ``-inf`` -> NaN
    row; n = 1 -> 1.0; empty axis -> empty result.  Score gaps that
    overflow float64 after dividing by ``scale`` count as ``-inf``.

    Accuracy (auto/quadrature/closed): relative error <= 1e-13 for
    p >= 1e-300, ``sum p = 1`` within 1e-14.  When the quadrature cannot
    certify its tolerance it raises :class:`QuadratureError`.

    >>> probs([0.0, 0.0, 0.0], "cauchy").round(15).tolist()
    [0.333333333333333, 0.333333333333333, 0.333333333333333]
    """
    quick = _softmax_shortcut(mu, family, axis, method, params)
    if quick is not None:
        return quick
    quick = _small_row_shortcut(mu, family, axis, method, params, False)
    if quick is None:
        lp, prep = _log_probs_public(mu, family, axis, method, params)
        # lp is a fresh array (the engines' output), except for an empty axis (prep.x)
        quick = restore(np.exp(lp, out=lp) if lp is not prep.x else lp, prep)
    return _tiny_refined(mu, quick, family, axis, method, params)


def _tiny_refined(mu, p, family, axis, method, params):
    """``p`` with its entries in ``e^-691.5 .. e^-256`` (gumbel_min: ``e^-160``; where one
    step of ``log p`` is 5.7e-14 .. 1.1e-13 relative, and the engines' ``log p`` is good to
    1-6 steps) recomputed from the integral for the families of numeric._tiny_p (normal,
    logistic, gumbel_min, laplace, exponential; float64 results; rows within its node
    budget); one reduction over ``p`` when there are none."""
    if (method not in ("auto", "quadrature", "closed", "batch") or type(p) is not np.ndarray
            or p.dtype != np.float64 or p.ndim == 0
            or (p.size if axis is None else p.shape[axis]) > _tiny_p.N_MAX or not _tiny_p.in_band(p, family)):
        return p
    prep = prepare_scores(mu, axis)
    fam = _same_noise(get_family(family, **split_options(method, params)[1]))
    if fam.custom or fam.name not in _tiny_p.FAMILIES:
        return p
    x = prep.x
    y = _unshifted(x, _standardize(x, fam), fam)
    p2 = prepare_scores(p, axis).x.copy()
    with np.errstate(divide="ignore"):
        _tiny_p.refine_probs(y, np.log(p2), p2, fam)
    return restore(p2, prep)


def _vjp_2d(x, g, fam, method, log):
    from ._vjp import quadrature_vjp, softmax_log_vjp, softmax_vjp
    m, n = x.shape
    _check_method(method, fam, n, VJP_METHODS)
    route = _route(fam, n, method)
    kernel = {"small": _small_vjp_rows, "fast": _fast_vjp_rows, "piecewise": _piecewise_vjp_rows}.get(route)
    if kernel is not None:
        # lean path for plain input (every score and cotangent finite): the small-n
        # kernel or the O(n) engines on the unshifted scores (the VJP is shift
        # invariant), no special-row split, no copies; rows they decline take the
        # general path below
        y = _plain_standardized(x, fam, scratch=True, shift=not _exact_scale(fam.scale))
        if y is not None and np.isfinite(g).all():
            out, ok = kernel(y, g, fam, log)
            if ok.all():
                return out
            bad = np.flatnonzero(~ok)
            out[bad] = _vjp_2d(x[bad], g[bad], fam, "quadrature", log)
            return out
    lp, todo = split_rows(x)
    out = np.where(np.isnan(lp), np.nan, 0.0)        # rows with +inf: locally constant -> 0
    # a NaN or infinite cotangent on an entry that takes part (score not -inf) has no
    # finite product with the Jacobian (0 * inf is NaN): the row is NaN, as for a NaN score
    bad_g = (~np.isfinite(g) & (x != -np.inf)).any(axis=1)
    out[bad_g] = np.nan
    todo &= ~bad_g
    rows = np.flatnonzero(todo)
    if rows.size == 0:
        return out
    y = _standardize(x[rows], fam)
    gr = g[rows]
    if route == "softmax":
        lpr = softmax_log_probs(y)
        res = softmax_log_vjp(lpr, gr) if log else softmax_vjp(lpr, gr)
        out[rows] = res / fam.scale
        return out
    finite = np.isfinite(y)
    done = np.zeros(rows.size, dtype=bool)
    if route == "pair":
        # n = 2: the derivative of the closed form, c(d) = G'(d) (numeric._closed.pair_vjp)
        blk = finite.all(axis=1) & np.isfinite(gr).all(axis=1)
        if blk.any():
            out[rows[blk]] = pair_vjp(y[blk], gr[blk], fam, log=log) / fam.scale
            done[blk] = True
    elif method == "closed":
        raise ValueError(f"method='closed' has no vector-Jacobian product for family {fam.name!r} "
                         f"with n = {n}; valid methods here: auto, quadrature")
    if kernel is not None:
        # the small-n kernel or the O(n) engines on the rows without special entries
        blk = np.flatnonzero(finite.all(axis=1) & np.isfinite(gr).all(axis=1) & ~done)
        if blk.size:
            v, ok = kernel(np.ascontiguousarray(y[blk]), np.ascontiguousarray(gr[blk]), fam, log)
            out[rows[blk[ok]]] = v[ok]
            done[blk[ok]] = True
    for r in np.flatnonzero(~done):
        sel = finite[r]
        res = np.zeros(n)
        if sel.sum() > 1:
            v, _ = quadrature_vjp(_unshifted(x[rows[r]][sel], y[r][sel], fam), gr[r][sel], fam, log=log)
            res[sel] = v / fam.scale
        out[rows[r]] = res
    return out


def _vjp_public(mu, cotangent, family, axis, method, params, *, log):
    """Validate and reshape for :func:`probs_vjp` / :func:`log_probs_vjp`, then run the kernel."""
    prep = prepare_scores(mu, axis)
    g = check_cotangent(cotangent, prep, np.shape(mu))
    _, fparams = split_options(method, params)
    fam = _same_noise(get_family(family, **fparams))
    if prep.x.size == 0:
        return restore(prep.x, prep)
    return restore(_vjp_2d(prep.x, g, fam, method, log=log), prep)


def probs_vjp(mu: ArrayLike, cotangent: ArrayLike, family: FamilyLike = "gumbel", *,
              axis: int | None = -1, method: str = "auto", **params: Any) -> np.ndarray:
    """Vector-Jacobian product ``(J^T g)_k = sum_i g_i dp_i/dmu_k`` of :func:`probs`.

    ``(J^T g)_k = int h_k F (g_k S - Gamma) dx`` with ``h_k = h(x - mu_k)``,
    ``S = sum_j h_j``, ``Gamma = sum_j g_j h_j`` (O(n G) quadrature; Gumbel:
    ``p * (g - <g, p>)``).  Entries sum to 0 (shift invariance).
    Available VJPs: this one and :func:`log_probs_vjp`, for every family,
    methods "auto", "closed" (gumbel) and "quadrature".  "auto" (normal,
    logistic, gumbel_min, cauchy) uses the small-n kernel for
    3 <= n < ``FAST_MIN_N`` (``numeric._batch.batch_vjp``: all rows at once on
    the forward's grid, a per-entry error bound) and the O(n) engines above;
    a row whose cotangent has a single nonzero ``g_y`` (a loss on one entry)
    takes the one-hot path there, ``g_y p_y d log p_y / dmu`` with
    ``d p_y / dmu_k = -int h_k h_y F dx`` (``numeric._fast_rows``: every term
    positive); rows a kernel declines go to the quadrature.  Accuracy: each
    entry to ~1e-12 relative to the terms it sums; terms below 1e-200 of
    the row's scale ``sum |terms|`` (or below the float64 range) need not
    be resolved, so entries that small are returned with that absolute
    accuracy (e.g. 0 for normal [0, 18] at scale 0.25, exact ~1e-565).
    Special rows: NaN rows -> NaN; rows with +inf entries -> 0 (p is locally
    constant); -inf entries -> 0 (their cotangents are ignored); a NaN or
    infinite cotangent on any other entry -> NaN row.

    >>> probs_vjp([0.0, 0.0], [1.0, 0.0]).tolist()             # softmax: p(1-p)
    [0.25, -0.25]
    """
    # Gumbel: d p_i / d mu_k = p_i (delta_ik - p_k) / scale, so
    # J^T g = p * (g - <g, p>) / scale -- one softmax and two passes
    p = _softmax_for_vjp(mu, cotangent, family, axis, method, params)
    if p is not None:
        out = np.multiply(p, cotangent)
        np.subtract(cotangent, _row_sum(out, axis), out=out)
        out *= p
        scale = params.get("scale", 1.0)
        if scale != 1:
            out /= scale
        return out
    quick = _small_vjp_shortcut(mu, cotangent, family, axis, method, params, False)
    if quick is not None:
        return quick
    return _vjp_public(mu, cotangent, family, axis, method, params, log=False)


def log_probs_vjp(mu: ArrayLike, cotangent: ArrayLike, family: FamilyLike = "gumbel", *,
                  axis: int | None = -1, method: str = "auto", **params: Any) -> np.ndarray:
    """Vector-Jacobian product of :func:`log_probs`: ``sum_i c_i d log p_i / dmu_k``.

    The VJP of ``p`` with ``g_j = c_j / p_j``: "auto" takes the kernels of
    :func:`probs_vjp` (the small-n kernel with ``p >= 1e-270``; the one-hot path,
    ``c_y d log p_y / dmu_k = -c_y int h_k h_y F dx / int h_y F dx``, exact
    however small the entries; dense cotangents on the O(n) engine's
    ``fast_log_probs_vjp``), and the quadrature, which forms ``c_j / p_j`` in
    log space, for the rest, so it stays exact when some ``p_j`` underflow
    (Gumbel: ``c - p * sum(c)``, like ``log_softmax``'s backward, -inf entries
    included).  For other families, -inf entries get 0 and their cotangents
    are ignored.

    >>> log_probs_vjp([0.0, 0.0], [1.0, 0.0]).tolist()
    [0.5, -0.5]
    """
    # Gumbel: d log p_i / d mu_k = (delta_ik - p_k) / scale, so
    # J^T c = (c - p * sum(c)) / scale -- one softmax and two passes
    p = _softmax_for_vjp(mu, cotangent, family, axis, method, params)
    if p is not None:
        p *= -_row_sum(cotangent, axis)
        p += cotangent
        scale = params.get("scale", 1.0)
        if scale != 1:
            p /= scale
        return p
    quick = _small_vjp_shortcut(mu, cotangent, family, axis, method, params, True)
    if quick is not None:
        return quick
    return _vjp_public(mu, cotangent, family, axis, method, params, log=True)
