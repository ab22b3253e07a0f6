"""Input validation and broadcasting for the public numeric API.

Public functions call :func:`prepare_scores` to turn ``mu`` into a float64
``(m, n)`` matrix (the chosen axis last, leading axes flattened into the
batch), and :func:`split_rows` to answer the special rows (NaN, +inf,
all -inf) before any kernel runs.  :func:`restore` undoes the reshaping
and casts to the output dtype.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["prepare_scores", "restore", "split_rows", "Prepared", "check_cotangent",
           "split_options", "METHOD_OPTIONS"]

# options that belong to a method rather than to the family
METHOD_OPTIONS = {"quantile": {"K"}, "monte_carlo": {"samples", "seed"}}


class Prepared:
    """``x``: (m, n) float64; ``shape``: the moved shape; ``axis``; ``dtype``: output dtype."""

    __slots__ = ("x", "moved_shape", "axis", "dtype", "ndim", "scalar", "flat_shape")

    def __init__(self, x, moved_shape, axis, dtype, ndim, scalar, flat_shape=None):
        self.x, self.moved_shape, self.axis, self.dtype = x, moved_shape, axis, dtype
        self.ndim, self.scalar, self.flat_shape = ndim, scalar, flat_shape


def _as_real_array(mu, name="mu"):
    if isinstance(mu, np.ndarray):
        arr = mu
    else:
        try:
            arr = np.asarray(mu)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
    kind = arr.dtype.kind
    if kind == "b":
        # Decision: booleans are not scores; a silent True -> 1.0 hides bugs.
        raise TypeError(f"{name} must be real numbers, got a bool array (cast it explicitly, e.g. mu.astype(float))")
    if kind == "c":
        raise TypeError(f"{name} must be real numbers, got complex dtype {arr.dtype}")
    if kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def _out_dtype(arr):
    # compute in float64, return the input's floating dtype (integers -> float64)
    return arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)


def _normalize_axis(axis, ndim):
    if axis is None:
        return None
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer or None, got {axis!r}") from None
    if not -max(ndim, 1) <= ax < max(ndim, 1):
        raise np.exceptions.AxisError(f"axis {ax} is out of bounds for array of dimension {ndim}")
    return ax % max(ndim, 1)


def prepare_scores(mu, axis=-1, name="mu") -> Prepared:
    """Validate ``mu`` and move ``axis`` last, flattening the batch axes.

    A 0-d input (a scalar) is one score vector of length 1 (result 1.0,
    like ``scipy.special.softmax``); ``axis=None`` treats the whole array
    as a single score vector.
    """
    arr = _as_real_array(mu, name)
    dtype = _out_dtype(arr)
    if arr.ndim == 0:
        _normalize_axis(axis, 0)
        x = np.asarray(arr, dtype=np.float64).reshape(1, 1)
        return Prepared(x, (1,), 0, dtype, 0, True)
    if axis is None:
        x = np.asarray(arr, dtype=np.float64).reshape(1, -1)
        return Prepared(x, x.shape, None, dtype, arr.ndim, False, arr.shape)
    ax = _normalize_axis(axis, arr.ndim)
    moved = np.moveaxis(np.asarray(arr, dtype=np.float64), ax, -1)
    x = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]) if moved.size or moved.shape[-1]
                             else moved.reshape(int(np.prod(moved.shape[:-1])), 0))
    return Prepared(x, moved.shape, ax, dtype, arr.ndim, False)


def restore(out2d, prep: Prepared, dtype=None):
    """Inverse of :func:`prepare_scores` for an (m, n) result."""
    dtype = prep.dtype if dtype is None else dtype
    with np.errstate(over="ignore", under="ignore"):
        out = np.asarray(out2d, dtype=np.float64).astype(dtype, copy=False)
    if prep.scalar:
        return out.reshape(())[()]
    if prep.axis is None:
        return out.reshape(prep.flat_shape)
    return np.moveaxis(out.reshape(prep.moved_shape), -1, prep.axis)


def check_cotangent(cotangent, prep: Prepared, mu_shape):
    """The cotangent must have exactly the shape of ``mu`` (real numbers)."""
    arr = _as_real_array(cotangent, "cotangent")
    if arr.shape != tuple(mu_shape):
        raise ValueError(f"cotangent must have the shape of mu {tuple(mu_shape)}, got {arr.shape}")
    return prepare_scores(arr, prep.axis if not prep.scalar else -1, "cotangent").x


def split_rows(x):
    """Classify rows of an (m, n) float64 score matrix.

    Returns ``(lp, todo)``: ``lp`` the log-probabilities already decided
    (NaN rows, rows with +inf, all -inf rows, -inf entries) and ``todo`` a
    boolean row mask of rows that need the engine on their finite entries.

    Rules (documented in ``numeric.probs``):
    * NaN anywhere in a row -> the whole row NaN (like scipy.special.softmax);
    * k >= 1 entries +inf -> probability 1/k on each of them, 0 elsewhere
      (the limit of k tied scores running off to +inf);
    * all entries -inf -> NaN row (no finite limit exists);
    * -inf entries -> probability exactly 0; the others renormalize.
    """
    m, n = x.shape
    lp = np.full((m, n), -np.inf)
    if n == 0:
        return lp, np.zeros(m, dtype=bool)
    nan_row = np.isnan(x).any(axis=1)
    pinf = x == np.inf
    k = pinf.sum(axis=1)
    all_neg = (x == -np.inf).all(axis=1)
    has_pinf = (k > 0) & ~nan_row
    if has_pinf.any():
        kk = k[has_pinf][:, None].astype(np.float64)
        lp[has_pinf] = np.where(pinf[has_pinf], -np.log(kk), -np.inf)
    bad = nan_row | (all_neg & ~has_pinf)
    lp[bad] = np.nan
    todo = ~(bad | has_pinf)
    return lp, todo


def split_options(method, params):
    """Separate method options (K, samples, seed) from family parameters."""
    opts = {}
    fam_params = dict(params)
    all_opts = set().union(*METHOD_OPTIONS.values())
    for key in list(fam_params):
        if key in all_opts:
            if key not in METHOD_OPTIONS.get(method, set()):
                owner = [m for m, o in METHOD_OPTIONS.items() if key in o][0]
                raise ValueError(f"option {key!r} belongs to method={owner!r}, not method={method!r}")
            opts[key] = fam_params.pop(key)
    return opts, fam_params
