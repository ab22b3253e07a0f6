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

A piece is ``(a, b)`` or a :class:`PowerPiece` (a piece next to an
integrable end singularity of the density, integrated in ``s`` where
``x = anchor + sign L s^k``; see there).
"""

from __future__ import annotations

import mpmath as mp
from mpmath.calculus.quadrature import GaussLegendre, TanhSinh

from .errors import OracleError

__all__ = ["gauss_legendre_adaptive", "tanh_sinh", "estimate_error", "PowerPiece", "piece_ends"]

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


class PowerPiece:
    """``x = anchor + sign L s^k`` for ``s`` in ``[s0, s1]`` (``0 <= s0 < s1 <= 1``).

    Next to a kink ``c`` where the density behaves like ``(x - c)^a``
    (``-1 < a``, ``a`` not an integer: Arcsin, Beta(3/10, 1), ChiSquared(1)), every
    factor of the integrand is a power of ``h = |x - c|`` times a function
    analytic in ``h``: ``phi ~ h^a A(h)``, ``Phi ~ h^(a+1) B(h)`` at a lower end
    (the piece to the right of ``c``), ``phi ~ h^b A(h)``,
    ``Phi = 1 - h^(b+1) B(h)`` at an upper end (the piece to its left).  So
    the integrand on the piece is a finite sum of ``h^(j (a+1) + i)`` times
    analytic functions (``j >= 0``, integer ``i >= -1``, exponent ``> -1``), and
    with ``h = L s^k``, ``dx = k L s^(k-1) ds``, each term becomes
    ``s^(k (j (a+1) + i + 1) - 1)`` times a function analytic in ``s``: for
    ``k (a+1)`` an integer every exponent is an integer ``>= 0`` and the
    integrand is analytic in ``s``, where Gauss-Legendre converges
    geometrically (a plain piece converges like ``N^(-2 (a+1))`` at best).
    For an ``a`` that is not rational with a small denominator, ``k (a+1) >= 25``:
    the leading term ``s^(>= 24)`` is smooth enough that the adaptive rule
    converges within a few splits (the mass of ``[0, s]`` is ``O(s^(k(a+1)))``).

    The node must see ``h`` to full relative precision (``h`` reaches
    ``10^-100`` where the mass still matters for ``a = -0.7``, far below one
    unit of the working precision at ``c``): the anchor is an exact kink
    ``d_v + lo`` (or ``+ hi``), ``x = anchor +- h`` is formed exactly and the piece is
    evaluated at a precision that holds it (:func:`_weighted`).
    """

    __slots__ = ("anchor", "length", "sign", "k", "s0", "s1", "tag")

    def __init__(self, anchor, length, sign, k, s0=0, s1=1, tag=None):
        self.anchor, self.length, self.sign, self.k, self.tag = anchor, length, sign, k, tag
        self.s0, self.s1 = mp.mpf(s0), mp.mpf(s1)

    def at(self, s):
        """x at s (exact addition)."""
        h = self.length * s ** self.k
        return mp.fadd(self.anchor, h if self.sign > 0 else -h, exact=True)

    def ends(self):
        """(left, right) in x at the current precision."""
        p, q = +self.at(self.s0), +self.at(self.s1)
        return (p, q) if p <= q else (q, p)

    def halves(self):
        m = (self.s0 + self.s1) / 2
        return (PowerPiece(self.anchor, self.length, self.sign, self.k, self.s0, m, self.tag),
                PowerPiece(self.anchor, self.length, self.sign, self.k, m, self.s1, self.tag))

    def with_anchor(self, anchor):
        """The same piece at another rounding of its kink (``tag`` names the kink)."""
        return PowerPiece(anchor, self.length, self.sign, self.k, self.s0, self.s1, self.tag)


def piece_ends(piece):
    """``(a, b)`` of a plain piece or a :class:`PowerPiece`, ``a < b``."""
    return piece.ends() if isinstance(piece, PowerPiece) else (piece[0], piece[1])


def _map(nodes, piece):
    """Nodes (t, w) on [-1, 1] -> (x, weight) on the piece.

    Finite: x = c + r t.  [a, inf): x = a + c (1 - t)/(1 + t), dx = 2c/(1+t)^2 dt;
    (-inf, b]: x = b - c (1 + t)/(1 - t), dx = 2c/(1-t)^2 dt, with the scale
    c = max(1, |a|) (resp. |b|), so an algebraic tail ~ 1/x^2 becomes smooth.
    A :class:`PowerPiece`: s = s0 + (s1 - s0)(1 + t)/2, x = anchor +- L s^k (exact),
    dx = k L s^(k-1) (s1 - s0)/2 dt.
    """
    if isinstance(piece, PowerPiece):
        r = (piece.s1 - piece.s0) / 2
        c = (piece.s1 + piece.s0) / 2
        k, L = piece.k, piece.length
        out = []
        for t, w in nodes:
            s = c + r * t
            out.append((piece.at(s), w * r * k * L * s ** (k - 1)))
        return out
    a, b = piece
    if mp.isinf(b):
        c = max(mp.mpf(1), abs(a))
        return [(a + c * (1 - t) / (1 + t), w * 2 * c / (1 + t) ** 2) for t, w in nodes]
    if mp.isinf(a):
        c = max(mp.mpf(1), abs(b))
        return [(b - c * (1 + t) / (1 - t), w * 2 * c / (1 - t) ** 2) for t, w in nodes]
    r = (b - a) / 2
    c = (b + a) / 2
    return [(c + r * t, w * r) for t, w in nodes]


def _split(piece):
    """Halve a piece (a :class:`PowerPiece` in s); an infinite piece loses a finite part
    of length max(1, |end|)."""
    if isinstance(piece, PowerPiece):
        return piece.halves()
    a, b = piece
    if mp.isinf(b):
        m = a + max(mp.mpf(1), abs(a))
    elif mp.isinf(a):
        m = b - max(mp.mpf(1), abs(b))
    else:
        m = (a + b) / 2
    return (a, m), (m, b)


def _node_prec(x, prec):
    """Bits that hold the exact node ``x = anchor +- h`` of a :class:`PowerPiece`
    (``h`` may lie far below the anchor's last bit), at least ``prec``."""
    need = x.man.bit_length() if x else 0
    return need + 16 if need > prec else prec


def _weighted(nodes, piece, evaluate, n_out):
    """sum_k w_k f(x_k) over the nodes mapped from [-1, 1] to the piece.

    A :class:`PowerPiece`'s nodes are evaluated at the precision that holds them
    exactly (the integrand's singular factor sees ``x - kink = h`` exactly)."""
    mapped = _map(nodes, piece)
    if isinstance(piece, PowerPiece):
        # node by node: only the few nodes closest to the kink need many bits
        vals = []
        for x, _ in mapped:
            with mp.workprec(_node_prec(x, mp.mp.prec)):
                vals.append(evaluate([x])[0])
    else:
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

    Returns ``(totals, errors, accepted)`` (accepted: ``(piece, degree)``); ``tol[u]`` is the
    absolute tolerance per piece for integrand ``u``.  Raises OracleError
    when more than ``max_pieces`` pieces would be needed.
    """
    totals = [mp.mpf(0)] * n_out
    errs = [mp.mpf(0)] * n_out
    accepted = []
    stack = list(reversed(pieces))
    count = len(stack)
    while stack:
        piece = stack.pop()
        results = []
        ok = False
        for degree in range(first, last + 1):
            results.append(_weighted(_gl_nodes(degree, prec), piece, evaluate, n_out))
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
            accepted.append((piece, degree))
            continue
        count += 1
        if count > max_pieces:
            a, b = piece_ends(piece)
            raise OracleError(f"Gauss-Legendre: more than {max_pieces} pieces needed (near x = {mp.nstr(a, 8)}, {mp.nstr(b, 8)})")
        left, right = _split(piece)
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
        piece = stack.pop()
        results = []
        ok = False
        for degree in range(1, max_degree + 1):
            h = mp.ldexp(1, -degree)
            part = _weighted(_ts_nodes(degree, prec), piece, evaluate, n_out)
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
            a, b = piece_ends(piece)
            raise OracleError(f"tanh-sinh: more than {max_pieces} pieces needed (near x = {mp.nstr(a, 8)}, {mp.nstr(b, 8)})")
        left, right = _split(piece)
        stack.append(right)
        stack.append(left)
    return totals, errs


def gauss_legendre_fixed(pieces, evaluate, n_out):
    """Composite Gauss-Legendre, one given degree per piece: ``[(piece, degree)]``."""
    totals = [mp.mpf(0)] * n_out
    for piece, degree in pieces:
        res = _weighted(_gl_nodes(degree, mp.mp.prec), piece, evaluate, n_out)
        for u in range(n_out):
            totals[u] += res[u]
    return totals
