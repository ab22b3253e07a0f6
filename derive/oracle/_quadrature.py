"""Vectorised quadrature rules: one set of nodes, many integrands.

All oracle integrands ``f_u(x) = exp(l_u(x))`` (one per distinct score)
share their nodes: the costly part of ``l_u`` (``log F(x)``, the sum of
``n`` log-CDFs) is computed once per node.  Two rules, with independent
nodes, both with mpmath's own per-level error estimate
(:meth:`mpmath.calculus.quadrature.QuadratureRule.estimate_error`):

* :func:`gauss_legendre_adaptive` -- Gauss-Legendre of mpmath degree
  ``k`` (``3*2**(k-1)`` nodes) on each piece; a piece is accepted when the
  difference of two successive degrees is below every integrand's
  tolerance, otherwise the next degree is tried, then the piece is halved;
* :func:`tanh_sinh` -- tanh-sinh (nested levels, step ``2**-k``) on each
  piece, refined the same way.

``evaluate(xs)`` must return, for a list of nodes, a list (per node) of
lists (per integrand) of mpf values.
"""

from __future__ import annotations

import mpmath as mp
from mpmath.calculus.quadrature import GaussLegendre, TanhSinh

from .errors import OracleError

__all__ = ["gauss_legendre_adaptive", "tanh_sinh", "estimate_error"]

_GL = GaussLegendre(mp.mp)
_TS = TanhSinh(mp.mp)
_GL_CACHE: dict = {}
_TS_CACHE: dict = {}


def _gl_nodes(degree, prec):
    key = (degree, prec)
    if key not in _GL_CACHE:
        with mp.workprec(prec + 20):
            _GL_CACHE[key] = _GL.calc_nodes(degree, prec)
    return _GL_CACHE[key]


def _ts_nodes(degree, prec):
    key = (degree, prec)
    if key not in _TS_CACHE:
        with mp.workprec(prec + 20):
            _TS_CACHE[key] = _TS.calc_nodes(degree, prec)
    return _TS_CACHE[key]


def estimate_error(results, prec=None):
    """mpmath's error estimate for the last of successive-degree results.

    Two results: ``|I_2 - I_1|``.  Three or more: the extrapolation of
    :meth:`mpmath.calculus.quadrature.QuadratureRule.estimate_error`
    (Borwein, Bailey & Girgensohn), ``10**min(0, max(D1**2/D2, 2*D1))``
    with ``D1 = log10|I_k - I_{k-1}|``, ``D2 = log10|I_k - I_{k-2}|`` --
    here taken *relative to* ``|I_k|`` so that it stays meaningful for
    integrals of size 1e-300 (mpmath's version assumes values of order 1).
    """
    if len(results) == 2:
        return abs(results[1] - results[0])
    I = results[-1]
    d1 = abs(I - results[-2])
    d2 = abs(I - results[-3])
    if d1 == 0 and d2 == 0:
        return mp.mpf(0)
    if I == 0 or d1 == 0:
        return max(d1, d2)
    D1 = mp.log10(d1 / abs(I))
    D2 = mp.log10(d2 / abs(I))
    if D1 >= 0 or D2 >= 0:
        return d1
    D4 = min(0, max(D1 ** 2 / D2, 2 * D1))
    return abs(I) * mp.mpf(10) ** D4


def _map(nodes, a, b):
    """Nodes (t, w) on [-1, 1] -> (x, weight) on [a, b].

    Finite: x = c + r t.  [a, inf): x = a + c (1 - t)/(1 + t), dx = 2c/(1+t)^2 dt;
    (-inf, b]: x = b - c (1 + t)/(1 - t), dx = 2c/(1-t)^2 dt, with the scale
    c = max(1, |a|) (resp. |b|), so an algebraic tail ~ 1/x^2 becomes smooth.
    """
    if mp.isinf(b):
        c = max(mp.mpf(1), abs(a))
        return [(a + c * (1 - t) / (1 + t), w * 2 * c / (1 + t) ** 2) for t, w in nodes]
    if mp.isinf(a):
        c = max(mp.mpf(1), abs(b))
        return [(b - c * (1 + t) / (1 - t), w * 2 * c / (1 - t) ** 2) for t, w in nodes]
    r = (b - a) / 2
    c = (b + a) / 2
    return [(c + r * t, w * r) for t, w in nodes]


def _split(a, b):
    """Halve a piece; an infinite piece loses a finite part of length max(1, |end|)."""
    if mp.isinf(b):
        m = a + max(mp.mpf(1), abs(a))
    elif mp.isinf(a):
        m = b - max(mp.mpf(1), abs(b))
    else:
        m = (a + b) / 2
    return (a, m), (m, b)


def _weighted(nodes, a, b, evaluate, n_out):
    """sum_k w_k f(x_k) over the nodes mapped from [-1, 1] to [a, b]."""
    mapped = _map(nodes, a, b)
    vals = evaluate([x for x, _ in mapped])
    if getattr(evaluate, "arb", False):
        # arb values (python-flint evaluator): accumulate in arb, convert once
        from ._flint_eval import to_arb, to_mpf
        import flint

        saved = flint.ctx.prec
        flint.ctx.prec = evaluate.prec
        try:
            acc = [flint.arb(0) for _ in range(n_out)]
            for (_, w), row in zip(mapped, vals):
                wa = None
                for u in range(n_out):
                    v = row[u]
                    if v is not None:
                        if wa is None:
                            wa = to_arb(w)
                        acc[u] += wa * v
            return [to_mpf(s) for s in acc]
        finally:
            flint.ctx.prec = saved
    sums = [[] for _ in range(n_out)]
    for (_, w), row in zip(mapped, vals):
        for u in range(n_out):
            v = row[u]
            if v:
                sums[u].append(w * v)
    return [mp.fsum(s) for s in sums]


def gauss_legendre_adaptive(pieces, evaluate, n_out, tol, prec, *, first=2, last=5, max_pieces=4000):
    """Adaptive composite Gauss-Legendre on ``pieces`` (list of (a, b)).

    Returns ``(totals, errors, accepted)`` (accepted: ``(a, b, degree)``); ``tol[u]`` is the
    absolute tolerance per piece for integrand ``u``.  Raises OracleError
    when more than ``max_pieces`` pieces would be needed.
    """
    totals = [mp.mpf(0)] * n_out
    errs = [mp.mpf(0)] * n_out
    accepted = []
    stack = list(reversed(pieces))
    count = len(stack)
    while stack:
        a, b = stack.pop()
        results = []
        ok = False
        for degree in range(first, last + 1):
            results.append(_weighted(_gl_nodes(degree, prec), a, b, evaluate, n_out))
            if len(results) >= 3:
                est = [estimate_error([res[u] for res in results], prec) for u in range(n_out)]
                if all(est[u] <= tol[u] for u in range(n_out)):
                    ok = True
                    break
        if ok:
            last_res = results[-1]
            for u in range(n_out):
                totals[u] += last_res[u]
                errs[u] += est[u]
            accepted.append((a, b, degree))
            continue
        count += 1
        if count > max_pieces:
            raise OracleError(f"Gauss-Legendre: more than {max_pieces} pieces needed (near x = {mp.nstr(a, 8)}, {mp.nstr(b, 8)})")
        left, right = _split(a, b)
        stack.append(right)
        stack.append(left)
    return totals, errs, accepted


def tanh_sinh(pieces, evaluate, n_out, tol, prec, *, max_degree=7, max_pieces=4000):
    """Composite tanh-sinh on ``pieces``; returns ``(totals, errors)``.

    On each piece the levels 1, 2, ... reuse the previous nodes (step
    halving); a piece is halved when level ``max_degree`` does not meet
    ``tol``.
    """
    totals = [mp.mpf(0)] * n_out
    errs = [mp.mpf(0)] * n_out
    stack = list(reversed(pieces))
    count = len(stack)
    while stack:
        a, b = stack.pop()
        results = []
        ok = False
        for degree in range(1, max_degree + 1):
            h = mp.ldexp(1, -degree)
            part = _weighted(_ts_nodes(degree, prec), a, b, evaluate, n_out)
            if results:
                cur = [results[-1][u] / 2 + h * part[u] for u in range(n_out)]
            else:
                cur = [h * part[u] for u in range(n_out)]
            results.append(cur)
            if degree >= 3:
                est = [estimate_error([res[u] for res in results], prec) for u in range(n_out)]
                if all(est[u] <= tol[u] for u in range(n_out)):
                    ok = True
                    break
        if ok:
            for u in range(n_out):
                totals[u] += results[-1][u]
                errs[u] += est[u]
            continue
        count += 1
        if count > max_pieces:
            raise OracleError(f"tanh-sinh: more than {max_pieces} pieces needed (near x = {mp.nstr(a, 8)}, {mp.nstr(b, 8)})")
        left, right = _split(a, b)
        stack.append(right)
        stack.append(left)
    return totals, errs


def gauss_legendre_fixed(pieces, evaluate, n_out):
    """Composite Gauss-Legendre, one given degree per piece: ``[(a, b, degree)]``."""
    totals = [mp.mpf(0)] * n_out
    for a, b, degree in pieces:
        res = _weighted(_gl_nodes(degree, mp.mp.prec), a, b, evaluate, n_out)
        for u in range(n_out):
            totals[u] += res[u]
    return totals
