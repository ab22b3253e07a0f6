"""Small-n VJPs for families the small-n kernel serves without linear-space parts.

``numeric._batch.batch_vjp`` runs its linear mode on rows whose family has
closed-form linear parts (``Phi`` and ``phi`` from one transcendental each) and
falls back to the log-space form (``numeric._batch._vjp_log_chunk``: node sums
of ``exp(log phi - log Phi + log F)`` shifted per entry, certified by the
even/odd-node disagreement of each signed sum and by the end terms) for the
rest.  student_t has no such parts (its CDF depends on ``nu``), so
:func:`small_vjp` sends its rows straight to the log-space form on the forward
pass's own node sets (``numeric._batch._Plan``: row-placed core maps reaching the
algebraic tails); rows it does not certify keep ``ok`` False for the caller's
quadrature.

>>> import numpy as np
>>> from numeric.families import get_family
>>> v, ok = small_vjp(np.array([[0.0, -1.0, 0.5]]), np.array([[1.0, 0.0, 0.0]]),
...                   get_family("student_t", nu=3.0), log=True)
>>> bool(ok[0]), bool(abs(v[0].sum()) < 1e-14), bool(v[0, 0] > 0)
(True, True, True)
"""

from __future__ import annotations

import numpy as np

from . import _batch

__all__ = ["small_vjp"]

# families served by the log-space form alone (the small-n route's others have parts)
LOG_ONLY = ("student_t",)


def small_vjp(y, g, fam, *, log=False):
    """``(v, ok)`` like :func:`numeric._batch.batch_vjp` for standardized finite rows
    ``y`` (m, n) with cotangents ``g``; ``fam`` a family of ``LOG_ONLY`` goes through
    the log-space form on every row, the others through ``batch_vjp``."""
    if fam.name not in LOG_ONLY or fam.custom:
        return _batch.batch_vjp(y, g, fam, log=log)
    _batch._check(y, fam)
    m, n = y.shape
    out = np.full((m, n), np.nan)
    ok = np.zeros(m, dtype=bool)
    if m == 0:
        return out, ok
    y = y - y.max(axis=1, keepdims=True)
    plan = _batch._Plan(y, fam)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for sel, x, _, logw in plan.chunks(np.flatnonzero(plan.reach), _batch._CHUNK_ELEMS // 4):
            out[sel], ok[sel] = _batch._vjp_log_chunk(y[sel], g[sel], x, logw, plan, log)
    return out, ok
