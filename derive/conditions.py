"""The article's conditions 1-4 on a map mu -> p, checked for a result.

1. ``p_i >= 0``;  2. ``sum_i p_i = 1``;  3. order preserving:
``mu_i > mu_k => p_i > p_k`` (``>=`` for noise with bounded support, where
far-behind classes get exactly 0);  4. shift invariance
``p(mu + c) = p(mu)``.

Each check is tried symbolically first (sympy decides sign / simplifies to
zero); where sympy cannot decide, it is checked at random score vectors at
30 digits.  The record says which::

    {1: {"name": "1. p_i >= 0", "method": "symbolic: ...", "holds": True}, ...}

A condition that fails raises :class:`~derive.derivation.DerivationError`
(a closed form violating them is wrong), unless ``raise_on_failure=False``.
"""

from __future__ import annotations

import operator
import random
from fractions import Fraction

import mpmath
import sympy as sp

from .derivation import DerivationError, WORK_DPS

__all__ = ["check_conditions", "check_conditions_symbolic_n", "CONDITION_NAMES", "evaluate_dag"]

CONDITION_NAMES = {
    1: "1. $p_i \\geq 0$",
    2: "2. $\\sum_i p_i = 1$",
    3: "3. order preserving: $\\mu_i > \\mu_k \\Rightarrow p_i > p_k$",
    4: "4. shift invariance: $p(\\mu + c) = p(\\mu)$",
}

#: symbolic checks are skipped on expressions bigger than this (count_ops)
_MAX_SYMBOLIC_OPS = 25


def _record(k, method, holds, strict=True):
    name = CONDITION_NAMES[k]
    if k == 3 and not strict:
        name = "3. order preserving (non-strict, bounded support): $\\mu_i > \\mu_k \\Rightarrow p_i \\geq p_k$"
    return {"name": name, "method": method, "holds": bool(holds)}


def _few_nodes(exprs, limit):
    """True when the expressions together have at most ``limit`` nodes (the walk stops at the limit)."""
    count = 0
    for e in exprs:
        for _ in sp.preorder_traversal(e):
            count += 1
            if count > limit:
                return False
    return True


def _zero(e):
    try:
        return sp.simplify(e) == 0
    except (NotImplementedError, TypeError, ValueError, RecursionError):
        return False


# ---------------------------------------------------------------------------
# symbolic n (softmax)
# ---------------------------------------------------------------------------


def check_conditions_symbolic_n(p, mu, i, j, n, *, points: int = 20, seed: int = 4):
    """Conditions 1-4 for ``p`` = p_i written with ``mu[i]`` and Sums over ``j`` to ``n``.

    Symbolic where sympy can (sign, sum renamed to one dummy and simplified,
    ratio ``p_i/p_k``, shift by a real symbol ``c``), and in addition always
    at ``points`` random vectors (n from 2 to 8) at 30 digits.
    """
    from .derivation import caps

    points = min(points, caps()["condition_points"])
    k = sp.Symbol("k", integer=True, positive=True)
    c = sp.Symbol("c", real=True)
    out = {}
    numeric = _numeric_symbolic_n(p, mu, i, n, points, seed)

    sym1 = p.is_nonnegative is True
    out[1] = _record(1, ("symbolic: sympy proves p_i >= 0" if sym1 else "random points") + numeric["tag"],
                     numeric[1])

    total = sp.Sum(p, (i, 1, n)).doit()
    total = total.replace(lambda e: isinstance(e, sp.Sum), lambda e: e.xreplace({e.limits[0][0]: k}))
    sym2 = _zero(total - 1)
    out[2] = _record(2, ("symbolic: sum over i renamed to one dummy simplifies to 1" if sym2 else "random points")
                     + numeric["tag"], numeric[2])

    ratio = sp.simplify(p / p.xreplace({i: k}))
    # order: p_i / p_k = g(mu_i - mu_k) with g increasing and g(0) = 1
    dmu = sp.Symbol("delta", real=True)
    g = sp.simplify(ratio.subs(mu[i], mu[k] + dmu))
    sym3 = (not g.has(mu[k])) and g.subs(dmu, 0) == 1 and sp.diff(g, dmu).is_positive is True
    out[3] = _record(3, (f"symbolic: $p_i/p_k = {sp.latex(ratio)}$, increasing in $\\mu_i-\\mu_k$, 1 at 0"
                         if sym3 else "random points") + numeric["tag"], numeric[3])

    shifted = p.replace(lambda e: isinstance(e, sp.Indexed) and e.base == mu, lambda e: e + c)
    sym4 = _zero(shifted - p)
    out[4] = _record(4, ("symbolic: $p(\\mu+c)-p(\\mu)$ simplifies to 0" if sym4 else "random points")
                     + numeric["tag"], numeric[4])
    for rec in out.values():
        if not rec["holds"]:
            raise DerivationError(f"condition {rec['name']} fails for {p}")
    return out


def _numeric_symbolic_n(p, mu, i, n, points, seed):
    from .special import owens_t_mp

    rng = random.Random(seed)
    ok = {1: True, 2: True, 3: True, 4: True}
    tol = mpmath.mpf(10) ** -30
    cache = {}

    def entries(N):
        # p_1..p_N for this n, written out and compiled once
        if N not in cache:
            args = [mu[q] for q in range(1, N + 1)]
            exprs = [p.subs({n: N, i: q}).doit() for q in range(1, N + 1)]
            cache[N] = [sp.lambdify(args, e, modules=[{"OwenT": owens_t_mp}, "mpmath"]) for e in exprs]
        return cache[N]

    for _ in range(points):
        N = rng.randint(2, 8)
        vals = [mpmath.mpf(rng.randint(-5000, 5000)) / 1000 for _ in range(N)]
        c = mpmath.mpf(rng.randint(-9000, 9000)) / 1000
        with mpmath.workdps(WORK_DPS):
            pr = [f(*vals) for f in entries(N)]
            sh = [f(*[v + c for v in vals]) for f in entries(N)]
            ok[1] &= all(x >= 0 for x in pr)
            ok[2] &= abs(mpmath.fsum(pr) - 1) < tol
            ok[3] &= all((pr[a] > pr[b]) == (vals[a] > vals[b]) for a in range(N) for b in range(N) if a != b)
            ok[4] &= all(abs(x - y) < tol * max(x, tol) for x, y in zip(pr, sh))
    ok["tag"] = f"; confirmed at {points} random vectors (n = 2..8, 30 digits)"
    return ok


# ---------------------------------------------------------------------------
# concrete n: a list of closed forms in mu_1..mu_n
# ---------------------------------------------------------------------------


_RELATIONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
              "!=": operator.ne}


def evaluate_dag(expr, env, *, exact=False):
    """The value of ``expr`` at ``env`` (symbol -> number), each distinct subexpression computed once.

    For the closed forms of the piecewise routes: sums of products of
    polynomials and exponentials whose limits ``max``/``min`` of the scores
    recur in every factor (hundreds of occurrences of a few distinct
    subexpressions per piece).  ``lambdify`` prints and compiles every
    occurrence; this walks the expression once per distinct node.
    ``exact=True`` computes in exact rationals (``Fraction``; ``env`` rational)
    and raises ``ValueError`` at anything irrational (an exponential); else
    mpmath at the working precision.  Nodes other than numbers, symbols,
    ``+``, ``*``, integer powers, ``exp``, ``Max``, ``Min`` and ``Piecewise`` (with
    relational / And / Or conditions) raise ``TypeError``.

    >>> x, y = sp.symbols("x y")
    >>> evaluate_dag(sp.Max(x, y) ** 2 / 3 - x, {x: Fraction(1, 2), y: 2}, exact=True)
    Fraction(5, 6)
    """
    memo = {}

    def num(e):
        if e.is_Rational:
            return Fraction(int(e.p), int(e.q)) if exact else mpmath.mpf(int(e.p)) / int(e.q)
        if exact:
            raise ValueError(f"{e} is not rational")
        return mpmath.mpf(sp.Float(e.evalf(mpmath.mp.dps + 5), mpmath.mp.dps + 5)._mpf_)

    def go(e):
        try:
            return memo[e]
        except KeyError:
            pass
        if e.is_Symbol:
            v = env[e]
        elif e.is_Rational:
            v = num(e)
        elif e.is_Add:
            args = [go(a) for a in e.args]
            v = args[0]
            for a in args[1:]:
                v = v + a
        elif e.is_Mul:
            v = go(e.args[0])
            for a in e.args[1:]:
                v = v * go(a)
        elif e.is_Pow and e.exp.is_Integer:
            v = go(e.base) ** int(e.exp)
        elif isinstance(e, sp.exp):
            if exact:
                raise ValueError(f"{e} is not rational")
            v = mpmath.exp(go(e.args[0]))
        elif isinstance(e, sp.Max):
            v = max(go(a) for a in e.args)
        elif isinstance(e, sp.Min):
            v = min(go(a) for a in e.args)
        elif isinstance(e, sp.Piecewise):
            v = next(go(val) for val, cond in e.args if go(cond))
        elif e in (sp.true, sp.false):
            v = bool(e)
        elif isinstance(e, sp.Rel):
            v = _RELATIONS[e.rel_op](go(e.lhs), go(e.rhs))
        elif isinstance(e, (sp.And, sp.Or)):
            parts = (go(a) for a in e.args)
            v = all(parts) if isinstance(e, sp.And) else any(parts)
        elif e.is_number:
            v = num(e)
        else:
            raise TypeError(f"evaluate_dag: unsupported node {type(e).__name__}")
        memo[e] = v
        return v

    return go(expr)


def _lambdify_all(exprs, symbols):
    """Callables of the closed forms: :func:`evaluate_dag` for Max/Min forms, else ``lambdify`` (mpmath)."""
    from .special import owens_t_mp

    def dag(e):
        def f(*vals):
            return evaluate_dag(e, dict(zip(symbols, vals)))
        return f

    out = []
    for e in exprs:
        if e.has(sp.Max, sp.Min):
            try:
                evaluate_dag(e, {s: mpmath.mpf(k + 1) / 7 for k, s in enumerate(symbols)})
                out.append(dag(e))
                continue
            except (TypeError, KeyError):
                pass
        out.append(sp.lambdify(symbols, e, modules=[{"OwenT": owens_t_mp}, "mpmath"]))
    return out


def check_conditions(closed_form, symbols, *, bounded_support=False, spread=3.0, points: int = 20,
                     seed: int = 7, symbolic=True, raise_on_failure=True):
    """Conditions 1-4 for the closed forms ``closed_form[k]`` = p_{k+1}(symbols).

    ``bounded_support`` makes condition 3 non-strict (ties in p allowed
    when some classes get exactly 0).  Random vectors are drawn with entries
    in ``[-spread, spread]`` (exact rationals, evaluated at 40 digits).
    """
    from .derivation import caps

    points = min(points, caps()["condition_points"])
    n = len(symbols)
    c = sp.Symbol("c", real=True)
    rng = random.Random(seed)
    # count_ops walks the whole tree: sized only when the forms have few nodes at all
    small = symbolic and _few_nodes(closed_form, 8 * _MAX_SYMBOLIC_OPS) and \
        sum(sp.count_ops(e) for e in closed_form) <= _MAX_SYMBOLIC_OPS
    out = {}

    # random vectors
    fns = _lambdify_all(closed_form, symbols)
    ok = {1: True, 2: True, 3: True, 4: True}
    worst = {}
    # 60 digits: closed forms with removable singularities at ties (logistic) cancel digits near ties
    with mpmath.workdps(60):
        tol = mpmath.mpf(10) ** -30
        for _ in range(points):
            vals = [mpmath.mpf(rng.randint(-int(spread * 1000), int(spread * 1000))) / 1000 for _ in range(n)]
            if len(set(vals)) < n:
                continue
            cv = mpmath.mpf(rng.randint(-9000, 9000)) / 1000
            pr = [mpmath.mpmathify(f(*vals)) for f in fns]
            sh = [mpmath.mpmathify(f(*[v + cv for v in vals])) for f in fns]
            pr = [x.real if isinstance(x, mpmath.mpc) and abs(x.imag) < tol else x for x in pr]
            sh = [x.real if isinstance(x, mpmath.mpc) and abs(x.imag) < tol else x for x in sh]
            if any(isinstance(x, mpmath.mpc) for x in pr + sh):
                ok[1] = False
                worst[1] = vals
                continue
            if not all(x >= -tol for x in pr):
                ok[1] = False
                worst[1] = vals
            if abs(mpmath.fsum(pr) - 1) > tol:
                ok[2] = False
                worst[2] = vals
            for a in range(n):
                for b in range(n):
                    if vals[a] > vals[b]:
                        good = pr[a] > pr[b] - tol if bounded_support else pr[a] > pr[b]
                        if not bounded_support and abs(pr[a] - pr[b]) <= tol * max(abs(pr[a]), tol):
                            good = False
                        if not good:
                            ok[3] = False
                            worst[3] = vals
            if not all(abs(x - y) <= tol * max(abs(x), 1) for x, y in zip(pr, sh)):
                ok[4] = False
                worst[4] = vals
    tag = f"random points ({points} vectors in $[-{spread:g},{spread:g}]^{n}$, 30 digits)"

    # symbolic attempts on small expressions
    sym = {1: False, 2: False, 3: False, 4: False}
    if small:
        sym[1] = all(e.is_nonnegative is True for e in closed_form)
        sym[2] = _zero(sp.Add(*closed_form) - 1)
        shift = {s: s + c for s in symbols}
        sym[4] = all(_zero(e.xreplace(shift) - e) for e in closed_form)
        if n >= 2 and not bounded_support:
            ratio = sp.simplify(closed_form[0] / closed_form[1])
            d = sp.Symbol("delta", real=True)
            g = sp.simplify(ratio.subs(symbols[0], symbols[1] + d))
            try:
                sym[3] = (not g.has(*symbols)) and sp.simplify(g.subs(d, 0)) == 1 and sp.diff(g, d).is_positive is True
            except (TypeError, ValueError):
                sym[3] = False
    labels = {
        1: "symbolic: sympy proves every $p_i \\geq 0$",
        2: "symbolic: $\\sum_i p_i - 1$ simplifies to 0",
        3: "symbolic: $p_1/p_2$ is an increasing function of $\\mu_1-\\mu_2$ equal to 1 at 0 (and by symmetry)",
        4: "symbolic: $p(\\mu+c)-p(\\mu)$ simplifies to 0",
    }
    for k in (1, 2, 3, 4):
        method = (labels[k] + "; also " + tag) if sym[k] else tag
        out[k] = _record(k, method, ok[k], strict=not bounded_support)
        if raise_on_failure and not ok[k]:
            raise DerivationError(f"condition {out[k]['name']} fails for the closed form at mu = "
                                  f"{[mpmath.nstr(v, 6) for v in worst.get(k, [])]}")
    return out
