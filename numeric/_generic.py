"""student_t on the small-n kernel: linear-space parts and the log-space VJP.

``numeric._batch`` runs its fast linear mode (node terms ``w phi(d_i) F / Phi(d_i)``,
``F = prod_j Phi(d_j)``, from one ``Phi`` and one ``phi`` per node and entry) for
families whose ``(Phi, phi)`` it has in closed form, and its log mode
(``log Phi`` and ``log phi`` per node and entry) otherwise.  student_t's CDF
depends on ``nu``; for integer ``nu`` in ``numeric.families._T_INT`` it is
elementary (``numeric.families._t_int_tail``: ``Q(a) = P[T > a]`` to a few ulps,
relative, however deep the tail), so :func:`small_log_probs` and
:func:`small_vjp` run the linear mode with these parts on the kernel's own node
sets (``numeric._batch._Plan``: row-placed core maps that reach the algebraic
tails) and its certificates (even/odd-node agreement, end terms, every entry
above ``TINY``, the row sum), exactly as the kernel's linear mode does for its
own families.  Rows predicted to have an entry below ``TINY`` (``log F`` at the
lowest score below -620), or that the linear mode does not certify, go to the
kernel's log mode (forward) or its log-space VJP; rows neither certifies keep
``ok`` False for the caller's quadrature.  Each row's result depends on that
row only.

Parts: ``Phi(d) = Q(-d)`` for ``d < 0``, ``1 - Q(d)`` else; ``phi(d) = K_nu
(1 + d^2/nu)^(-(nu+1)/2)`` by products (``nu`` odd) or products and one square
root (``nu`` even), relative error ~``nu`` ulps.  ``d`` is clipped at ``-A``
with ``Q(A) ~ 1e-300`` so ``Phi`` stays a normal float: a clipped factor
bounds its terms by ``1e-300`` (far below ``1e-18 TINY``), as in the kernel's
own clipping.

>>> import numpy as np
>>> from numeric.families import get_family
>>> fam = get_family("student_t", nu=3.0)
>>> lp, ok = small_log_probs(np.array([[0.0, -1.0, 0.5]]), fam)
>>> bool(ok[0]), round(float(np.exp(lp[0]).sum()), 14)
(True, 1.0)
>>> v, ok = small_vjp(np.array([[0.0, -1.0, 0.5]]), np.array([[1.0, 0.0, 0.0]]), fam, log=True)
>>> bool(ok[0]), bool(abs(v[0].sum()) < 1e-14), bool(v[0, 0] > 0)
(True, True, True)
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from . import _batch
from .families import _T_INT, _t_int_tail

__all__ = ["small_log_probs", "small_vjp"]

# families whose small-n rows go through this module
SERVED = ("student_t",)
# rows whose log F at the lowest score is below this take the log mode (an entry of
# the row is likely below the linear mode's TINY = 1e-270)
_LIN_LOGF = -620.0


def _served(fam):
    return fam.name in SERVED and not fam.custom


@functools.lru_cache(maxsize=64)
def _t_parts(nu):
    """Linear parts ``d -> (Phi(d), phi(d))`` of student_t with integer ``nu`` (see the
    module doc), or None for other ``nu`` (log mode only)."""
    if nu not in _T_INT:
        return None
    k = int(nu)
    tail, log_tail = _t_int_tail(k)
    norm = math.exp(special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * math.log(nu * math.pi))
    # clip: A with log Q(A) = log 1e-300 (Q ~ a^-nu: two secant steps from 10^(300/nu))
    A = 10.0 ** min(300.0 / nu, 300.0)
    for _ in range(3):
        A = min(A * math.exp((float(log_tail(np.array([A]))[0]) + 300.0 * math.log(10.0)) / nu), 1e300)
    half = (k + 1) // 2          # (nu + 1) / 2 = half (+ 1/2 for even nu)

    def parts(d):
        np.maximum(d, -A, out=d)
        q = tail(np.abs(d))
        P = np.where(d < 0.0, q, 1.0 - q)
        w = d * d
        w *= 1.0 / nu
        w += 1.0
        # w^half by squaring, then 1/sqrt(w) for even nu
        pw, base, e = None, w, half
        while e:
            if e & 1:
                pw = base.copy() if pw is None else pw * base
            e >>= 1
            if e:
                base = base * base
        if k % 2 == 0:
            pw *= np.sqrt(w)
        with np.errstate(divide="ignore"):
            ph = norm / pw
        return P, ph

    return parts


def _parts_of(fam):
    return _t_parts(float(fam.params.get("nu", 1.0)))


def _lin_rows(y, fam, plan):
    """Rows for the linear mode: within the node budget and ``log F(ymin) >= _LIN_LOGF``."""
    ymin = y.min(axis=1)
    logf = np.add.reduce(fam.logcdf(ymin[:, None] - y), axis=1)
    return plan.reach & (logf >= _LIN_LOGF)


def _lin_pass(y, x, wlin, parts):
    """The kernel's linear mode (numeric._batch._pass1, "lin") with ``parts``."""
    d = x - y[:, :, None]                                    # (rows, n, G)
    P, I = parts(d)
    F = np.multiply.reduce(P, axis=-2, keepdims=True)
    F *= wlin
    I *= F
    I /= P
    T, _, _, good = _batch._certify(I)
    good &= T >= _batch.TINY
    return _batch._normalise_lin(T, good)


def small_log_probs(y, fam):
    """``(log p, ok)`` like :func:`numeric._batch.batch_log_probs` (pass 1) for
    standardized finite rows ``y`` (m, n); student_t rows with integer ``nu`` try
    the linear mode with this module's parts first."""
    parts = _parts_of(fam) if _served(fam) else None
    if parts is None:
        return _batch.batch_log_probs(y, fam)
    y, plan, out, ok = _batch._setup(y, fam)
    if plan is None:
        return out, ok
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for sel, x, wl, _ in plan.chunks(np.flatnonzero(_lin_rows(y, fam, plan))):
            out[sel], ok[sel] = _lin_pass(y[sel], x, wl, parts)
    rest = np.flatnonzero(~ok)
    if rest.size:
        out[rest], ok[rest] = _batch.batch_log_probs(y[rest], fam)
    return out, ok


def small_vjp(y, g, fam, *, log=False):
    """``(v, ok)`` like :func:`numeric._batch.batch_vjp` for standardized finite rows
    ``y`` (m, n) with cotangents ``g``.  student_t: the kernel's linear-mode VJPs
    (dense, and one-hot for rows with one nonzero cotangent) with this module's
    parts where the linear mode serves, its log-space form for the other rows;
    other families: ``batch_vjp``."""
    if not _served(fam):
        return _batch.batch_vjp(y, g, fam, log=log)
    y, plan, out, ok = _batch._setup(y, fam)
    if plan is None:
        return out, ok
    parts = _parts_of(fam)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if parts is not None:
            lin = _lin_rows(y, fam, plan) & (np.abs(g).max(axis=1) <= _batch._G_MAX)
            one = np.count_nonzero(g, axis=1) == 1
            for chunk, rows in ((_batch._onehot_chunk, lin & one), (_batch._vjp_chunk, lin & ~one)):
                for sel, x, wl, _ in plan.chunks(np.flatnonzero(rows), _batch._CHUNK_NORMAL):
                    out[sel], ok[sel] = chunk(y[sel], g[sel], x, wl, plan, parts, 1.0, log)
        for sel, x, _, logw in plan.chunks(np.flatnonzero(plan.reach & ~ok), _batch._CHUNK_ELEMS // 4):
            out[sel], ok[sel] = _batch._vjp_log_chunk(y[sel], g[sel], x, logw, plan, log)
    return out, ok
