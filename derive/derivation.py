"""Machine-checked derivations: ordered steps, each verified by sympy.

A :class:`Derivation` is a chain ``expr_0 = expr_1 = ... = expr_k`` for one
quantity (usually ``p_i``).  Every step carries a short English reason, the
sympy expression (or ``Eq``) and the name of the check that proved it equal
to the previous step.  Checks are tried in the order the step asks for:

``identical``
    the two right-hand sides are the same sympy tree;
``subs``
    the previous expression with a stated substitution applied (e.g. the
    family's CDF put in for ``Phi``) simplifies to the new one;
``simplify`` / ``rewrite`` / ``doit``
    ``simplify(a - b) == 0``, after ``rewrite(exp)``, or after ``doit()``;
``numeric-30-digits@K-points``
    where sympy cannot decide symbolically: both sides evaluated with mpmath
    at 40 digits at K random points (symbolic ``n`` and ``i`` replaced by
    small integers, every ``mu`` by a random real) must agree to 30 digits.

A step no check can confirm raises :class:`DerivationError` while the
derivation is being built, so a broken chain never reaches the notes::

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> d = Derivation(sp.Symbol("y"), (x + 1) ** 2, "start")
    >>> d.step(x**2 + 2*x + 1, "expand").check
    'simplify'
    >>> d.step(x**2 + 1, "wrong")
    Traceback (most recent call last):
    ...
    derive.derivation.DerivationError: step 2 ('wrong') is not equal to the previous step ...
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import mpmath
import sympy as sp

__all__ = ["Derivation", "Step", "DerivationError", "Evaluation", "EvaluationError", "numeric_equal", "mp_value",
           "ElementarySymmetric", "ExpSegment"]

#: digits that must agree in a numeric check, and the working precision
CHECK_DIGITS = 30
WORK_DPS = 36
DEFAULT_POINTS = 5
#: points for checks that need quadrature (each costs a 36-digit tanh-sinh integral)
QUAD_POINTS = 3


#: verification effort: "full" (default) or "light" (fewer random points; used for notes/)
_LEVEL = {"name": "full"}
_CAPS = {"full": {"points": 99, "quad_points": QUAD_POINTS, "condition_points": 20},
         "light": {"points": 2, "quad_points": 1, "condition_points": 8}}


def verification_level() -> str:
    """The current verification level name ("full" or "light")."""
    return _LEVEL["name"]


class checks_at_level:
    """Context manager: ``with checks_at_level("light"): ...`` lowers the random-point counts.

    Every check still runs (the same kinds, at 30 digits), only at fewer
    random points; the recorded check names say how many.
    """

    def __init__(self, name: str):
        if name not in _CAPS:
            raise ValueError(f"level must be one of {sorted(_CAPS)}, got {name!r}")
        self.name = name

    def __enter__(self):
        self._old = _LEVEL["name"]
        _LEVEL["name"] = self.name
        return self

    def __exit__(self, *exc):
        _LEVEL["name"] = self._old
        return False


def caps() -> dict:
    return _CAPS[_LEVEL["name"]]


class DerivationError(ValueError):
    """A derivation step could not be verified equal to the previous one."""


@dataclass(frozen=True)
class Step:
    """One line of a derivation.

    ``expr`` is a sympy ``Expr`` or ``Eq``; ``reason`` a short English
    justification; ``check`` names the check that verified it (``"given"``
    for the first line, which is the definition the chain starts from).
    """

    reason: str
    expr: sp.Basic
    check: str

    @property
    def rhs(self) -> sp.Basic:
        return self.expr.rhs if isinstance(self.expr, sp.Eq) else self.expr


# ---------------------------------------------------------------------------
# numeric evaluation with mpmath (40 digits)
# ---------------------------------------------------------------------------


def _expand_sums(expr):
    """``doit`` every Sum / Product (and subset sum, max over a range) with concrete limits, leave Integrals alone."""
    # a Sum written out can expose Products whose limits only then became concrete: repeat
    for _ in range(4):
        new = expr.replace(lambda e: isinstance(e, (SubsetSum, MaxOver, ElementarySymmetric)) and e.is_concrete,
                           lambda e: e.doit())
        new = new.replace(lambda e: isinstance(e, (sp.Sum, sp.Product)), _write_out)
        if new == expr:
            break
        expr = new
    return expr


def _write_out(e):
    """One Sum / Product level written out: the outermost range term by term when it is concrete.

    sympy merges nested sums into one ``Sum(f, (m, 0, k - 1), (k, a, b))`` and its ``doit`` starts
    with the inner, still symbolic, range (and leaves an empty outer range ``k = 2..1`` unevaluated).
    """
    if isinstance(e, (SumExcept, ProductExcept)):
        # an inner product over k != i, j waits until the outer sum has made j concrete: written
        # out earlier, its delta_jk would read as a second exclusion of the outer sum
        out = _doit_except(e, sp.Add if isinstance(e, sp.Sum) else sp.Mul, {"deep": False})
        return e if out is None else out
    var, lo, hi = e.limits[-1]
    if not (lo.is_Integer and hi.is_Integer and hi >= lo - 1):
        return e.doit(deep=False)
    inner = e.func(e.function, *e.limits[:-1]) if len(e.limits) > 1 else e.function
    terms = [inner.subs(var, v) for v in range(int(lo), int(hi) + 1)]
    return sp.Add(*terms) if isinstance(e, sp.Sum) else sp.Mul(*terms)


def _kinks(integrand, var):
    """Numeric roots of the linear pieces where ``integrand`` is not smooth in ``var``.

    Candidates come from Piecewise conditions, Abs / Heaviside / sign
    arguments and Min / Max argument differences.  Only pieces linear in
    ``var`` are used (all our families kink along straight lines).
    """
    exprs = []
    for rel in integrand.atoms(sp.Rel):
        exprs.append(rel.lhs - rel.rhs)
    for f in integrand.atoms(sp.Abs, sp.Heaviside, sp.sign):
        exprs.append(f.args[0])
    for f in integrand.atoms(sp.Min, sp.Max):
        a = f.args
        exprs.extend(a[k] - a[m] for k in range(len(a)) for m in range(k + 1, len(a)))
    points = set()
    for g in exprs:
        if not g.has(var):
            continue
        g = sp.expand(g)
        if sp.degree(g, var) != 1 if g.is_polynomial(var) else True:
            continue
        a1 = g.coeff(var, 1)
        a0 = g.coeff(var, 0)
        if a1.free_symbols or a0.free_symbols or a1 == 0:
            continue
        points.add(sp.Float(-a0 / a1, WORK_DPS + 5))
    return sorted(points, key=float)


def _quad(integral: sp.Integral):
    """mpmath value of a one-variable definite Integral with numeric limits."""
    if len(integral.limits) != 1 or len(integral.limits[0]) != 3:
        raise DerivationError(f"numeric check: only single definite integrals are supported, got {integral}")
    var, lo, hi = integral.limits[0]
    f_expr = integral.function
    if f_expr.free_symbols - {var}:
        raise DerivationError(f"numeric check: integrand still has free symbols {f_expr.free_symbols - {var}}")
    f = sp.lambdify(var, f_expr, modules=[{"OwenT": _owen_t_for_lambdify(), "exp": _safe_exp}, "mpmath"])
    lo_v = mpmath.mpf(sp.N(lo, WORK_DPS + 5)) if lo.is_finite else (-mpmath.inf if lo == -sp.oo else mpmath.inf)
    hi_v = mpmath.mpf(sp.N(hi, WORK_DPS + 5)) if hi.is_finite else (mpmath.inf if hi == sp.oo else -mpmath.inf)
    sign = 1
    if lo_v > hi_v:
        lo_v, hi_v, sign = hi_v, lo_v, -1
    pts = [lo_v] + [mpmath.mpf(str(p)) for p in _kinks(f_expr, var) if lo_v < mpmath.mpf(str(p)) < hi_v] + [hi_v]
    # infinite ends: tanh-sinh maps [a, oo) itself; one finite node keeps the bulk in view
    if pts[0] == -mpmath.inf and pts[-1] == mpmath.inf and len(pts) == 2:
        pts.insert(1, mpmath.mpf(0))
    pts = sorted(set(pts))

    def g(t):
        v = f(t)
        return mpmath.mpmathify(v)

    value, err = mpmath.quad(g, pts, error=True, maxdegree=8)
    scale = max(abs(value), mpmath.mpf(1))
    if err > mpmath.mpf(10) ** (-(CHECK_DIGITS + 2)) * scale:
        raise DerivationError(f"numeric check: quadrature error {mpmath.nstr(err, 3)} too large for {integral}")
    return sign * value


_BIG = mpmath.exp(2**14)


def _safe_exp(x):
    """mpmath exp that does not spend minutes on astronomically large arguments.

    tanh-sinh puts nodes at |x| ~ 1e30 on infinite ranges; exp(-1e30) is 0
    and exp(1e30) is only ever multiplied by such a 0 in our integrands
    (densities are bounded), so clamping at |x| = 1e4 changes nothing.
    """
    if isinstance(x, mpmath.mpf):
        sign, man, expo, bc = x._mpf_
        if man and expo + bc > 14:  # |x| >= 2**14
            return mpmath.mpf(0) if sign else _BIG
    return mpmath.exp(x)


def _owen_t_for_lambdify():
    from .special import owens_t_mp

    return owens_t_mp


def mp_value(expr) -> mpmath.mpc:
    """Value of a closed (no free symbols) sympy expression at 40 digits.

    Integrals are done by :func:`mpmath.quad` split at their kinks; the rest
    by ``evalf``.  Raises :class:`DerivationError` when a value cannot be had.
    """
    with mpmath.workdps(WORK_DPS):
        expr = _expand_sums(sp.sympify(expr))
        ints = sorted(expr.atoms(sp.Integral), key=sp.default_sort_key)
        if ints:
            expr = expr.xreplace({I: sp.Float(_quad(I), WORK_DPS + 5) for I in ints})
        if expr.free_symbols:
            raise DerivationError(f"numeric check: free symbols {sorted(map(str, expr.free_symbols))} left in {expr}")
        v = expr.evalf(WORK_DPS)
        if v.has(sp.nan, sp.zoo) or not v.is_number:
            raise DerivationError(f"numeric check: {expr} does not evaluate to a number")
        return mpmath.mpmathify(complex(v)) if v.is_real is False else mpmath.mpf(sp.Float(sp.re(v), WORK_DPS)._mpf_)


def numeric_equal(a, b, points: Sequence[dict]) -> bool:
    """True when ``a`` and ``b`` agree to 30 digits at every substitution in ``points``."""
    tol = mpmath.mpf(10) ** (-CHECK_DIGITS)
    for env in points:
        struct = {k: v for k, v in env.items() if not isinstance(k, sp.Indexed)}
        values = {k: v for k, v in env.items() if isinstance(k, sp.Indexed)}

        def at(e):
            e = _expand_sums(sp.sympify(e).subs(struct))
            return mp_value(e.subs(values))

        with mpmath.workdps(WORK_DPS):
            va, vb = at(a), at(b)
            if abs(va - vb) > tol * max(abs(va), abs(vb), 1):
                return False
    return True


def same_integral_limits(a, b) -> bool:
    """Both are single definite Integrals over the same variable and limits."""
    return (isinstance(a, sp.Integral) and isinstance(b, sp.Integral)
            and len(a.limits) == 1 and a.limits == b.limits and len(a.limits[0]) == 3)


def integrand_points(integral, points: Sequence[dict], rng: random.Random) -> list:
    """Extend each substitution with a random value of the integration variable."""
    var, lo, hi = integral.limits[0]
    out = []
    for env in points:
        e = dict(env)
        lo_v = lo.subs(env) if lo.is_finite is not False else None
        hi_v = hi.subs(env) if hi.is_finite is not False else None
        if lo_v is not None and lo_v.is_number and hi_v is not None and hi_v.is_number:
            u = sp.Rational(rng.randint(1, 999), 1000)
            e[var] = lo_v + (hi_v - lo_v) * u
        elif lo_v is not None and lo_v.is_number:
            e[var] = lo_v + sp.Rational(rng.randint(1, 4000), 1000)
        elif hi_v is not None and hi_v.is_number:
            e[var] = hi_v - sp.Rational(rng.randint(1, 4000), 1000)
        else:
            e[var] = sp.Rational(rng.randint(-3000, 3000), 1000)
        out.append(e)
    return out


def numeric_equal_pointwise(a, b, points: Sequence[dict]) -> bool:
    """Like :func:`numeric_equal` for integral-free expressions (plain substitution)."""
    tol = mpmath.mpf(10) ** (-CHECK_DIGITS)
    with mpmath.workdps(WORK_DPS):
        for env in points:
            struct = {k: v for k, v in env.items() if isinstance(k, sp.Symbol) and k.is_integer}
            rest = {k: v for k, v in env.items() if k not in struct}
            va = mp_value(_expand_sums(sp.sympify(a).subs(struct)).subs(rest))
            vb = mp_value(_expand_sums(sp.sympify(b).subs(struct)).subs(rest))
            if abs(va - vb) > tol * max(abs(va), abs(vb), 1):
                return False
    return True


def _integral_parts(b, var):
    """[(f, lo, hi)] when ``b`` is an Integral or a sum of Integrals over ``var``, else None."""
    parts = []
    for term in sp.Add.make_args(b):
        if not (isinstance(term, sp.Integral) and len(term.limits) == 1 and len(term.limits[0]) == 3
                and term.limits[0][0] == var):
            return None
        parts.append((term.function, term.limits[0][1], term.limits[0][2]))
    return parts


def _num(e):
    e = sp.sympify(e)
    if e == sp.oo:
        return mpmath.inf
    if e == -sp.oo:
        return -mpmath.inf
    return mpmath.mpf(sp.Float(e.evalf(WORK_DPS + 5), WORK_DPS + 5)._mpf_)


def pointwise_split_equal(a, b, points: Sequence[dict]) -> bool:
    """Integrand identity behind ``Integral_A^B f = sum_k Integral_{l_k}^{h_k} f_k``.

    At every substitution and at test points ``x`` between and beyond all
    (numeric) limits: ``f(x) [A<x<B] == sum_k f_k(x) [l_k<x<h_k]``.  Equal
    integrands on every piece imply equal integrals; the test points hit
    every piece, so a wrong branch or a wrong range is caught.
    """
    var = a.limits[0][0]
    parts = _integral_parts(b, var)
    if parts is None:
        return False
    tol = mpmath.mpf(10) ** (-CHECK_DIGITS)
    with mpmath.workdps(WORK_DPS):
        for env in points:
            A, B = _num(a.limits[0][1].subs(env)), _num(a.limits[0][2].subs(env))
            segs = [(f.subs(env), _num(lo.subs(env)), _num(hi.subs(env))) for f, lo, hi in parts]
            ends = sorted({v for s_ in segs for v in s_[1:] if mpmath.isfinite(v)} |
                          {v for v in (A, B) if mpmath.isfinite(v)})
            if not ends:
                ends = [mpmath.mpf(0)]
            xs = [ends[0] - 7, ends[0] - mpmath.mpf(1) / 3, ends[-1] + mpmath.mpf(1) / 3, ends[-1] + 7]
            for lo_, hi_ in zip(ends, ends[1:]):
                if hi_ > lo_:
                    xs += [lo_ + (hi_ - lo_) / 3, lo_ + (hi_ - lo_) * 5 / 7]
            fa = a.function.subs(env)
            for x in xs:
                xv = sp.Float(x, WORK_DPS)
                va = mp_value(fa.subs(var, xv)) if A < x < B else mpmath.mpf(0)
                vb = mpmath.mpf(0)
                for f, lo_, hi_ in segs:
                    if lo_ < x < hi_:
                        vb += mp_value(f.subs(var, xv))
                    elif hi_ < x < lo_:
                        vb -= mp_value(f.subs(var, xv))
                if abs(va - vb) > tol * max(abs(va), abs(vb), 1):
                    return False
    return True


def substitution_equal(a, b, old, new, mapping, points: Sequence[dict]) -> bool:
    """Change of variables ``new = mapping(old)`` takes Integral ``a`` (in ``old``) to ``b`` (in ``new``).

    Checks the limits map (``mapping`` at the ends of ``a``'s range, by
    sympy limits) and the integrand identity
    ``f_a(old) = f_b(mapping(old)) * mapping'(old)`` (up to the sign of an
    orientation flip): symbolically by simplify, else pointwise at 30 digits.
    """
    if not (isinstance(a, sp.Integral) and isinstance(b, sp.Integral)):
        return False
    (va, lo_a, hi_a), (vb, lo_b, hi_b) = a.limits[0], b.limits[0]
    if va != old or vb != new:
        return False
    m_lo = sp.limit(mapping, old, lo_a, "+") if lo_a.is_infinite else mapping.subs(old, lo_a)
    m_hi = sp.limit(mapping, old, hi_a, "-") if hi_a.is_infinite else mapping.subs(old, hi_a)
    def same(u, v):
        if u == v:
            return True
        return bool(u.is_finite and v.is_finite) and sp.simplify(u - v) == 0

    if same(m_lo, lo_b) and same(m_hi, hi_b):
        sign = 1
    elif same(m_lo, hi_b) and same(m_hi, lo_b):
        sign = -1
    else:
        return False
    pulled = sign * b.function.subs(new, mapping) * sp.diff(mapping, old)
    if _is_zero(a.function - pulled):
        return True
    pts = integrand_points(a, points, random.Random(11))
    return numeric_equal_pointwise(a.function, pulled, pts)


# ---------------------------------------------------------------------------
# symbolic checks
# ---------------------------------------------------------------------------


def _is_zero(e) -> bool:
    e = sp.sympify(e)
    if e == 0:
        return True
    if e.has(sp.Piecewise, sp.Min, sp.Max):
        # simplify distributes the branch conditions of products of Piecewise / Min / Max over
        # each other (exponential in the number of factors): only the structural test here, the
        # callers fall back to their 30-digit pointwise checks
        return sp.expand(e) == 0
    z = sp.simplify(e)
    return z == 0


def _check_simplify(a, b):
    return _is_zero(a - b)


def _check_rewrite(a, b):
    d = a - b
    if d.has(sp.Product):
        # Prod f = exp(Sum log f)
        d = d.rewrite(sp.Sum)
        d = sp.expand_log(d, force=True)
    return _is_zero(d.rewrite(sp.exp))


def _check_doit(a, b):
    return _is_zero(a.doit() - b.doit())


_SYMBOLIC_CHECKS = {
    "identical": lambda a, b: a == b,
    "simplify": _check_simplify,
    "rewrite": _check_rewrite,
    "doit": _check_doit,
}


@dataclass
class Derivation:
    """A chain of sympy-verified equalities for one quantity.

    ``Derivation(lhs, start, reason)`` opens the chain with ``lhs = start``
    (check ``"given"``); :meth:`step` appends verified lines.  The fields
    ``family``, ``n``, ``symbols``, ``closed_form``, ``status``, ``reason``
    and ``conditions`` are filled by the closed-form machinery
    (:func:`derive.closed.derive`); ``definitions`` maps helper symbols
    (e.g. ``S_i``) to what they stand for and is applied before every check.

    ``sampler(rng) -> dict`` gives one random substitution for numeric
    checks: integer values for symbolic ``n``/``i`` and real values for the
    ``mu`` entries (``Indexed`` objects or plain symbols).
    """

    lhs: sp.Basic
    start: sp.Basic
    start_reason: str
    title: str = ""
    definitions: dict = field(default_factory=dict)
    sampler: Callable | None = None
    points: int = DEFAULT_POINTS
    seed: int = 20220525
    steps: list = field(default_factory=list)
    family: object = None
    n: object = None
    symbols: tuple = ()
    closed_form: list | None = None
    status: str = "none"
    reason: str = ""
    conditions: dict = field(default_factory=dict)
    assumptions: str = ""
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.steps.append(Step(self.start_reason, sp.Eq(self.lhs, self.start, evaluate=False), "given"))
        self._points_cache = None
        self.points = min(self.points, caps()["points"])
        self._quad_points = min(self.points, caps()["quad_points"])

    # -- building ---------------------------------------------------------
    @property
    def result(self):
        """Right-hand side of the last step."""
        return self.steps[-1].rhs

    def _sample_points(self):
        if self._points_cache is None:
            if self.sampler is None:
                raise DerivationError("numeric check requested but the derivation has no sampler")
            rng = random.Random(self.seed)
            self._points_cache = [self.sampler(rng) for _ in range(self.points)]
        return self._points_cache

    def _unfold(self, e):
        if self.definitions:
            e = e.xreplace(self.definitions)
        return e

    def step(self, expr: sp.Expr, reason: str, *, checks: Sequence[str] = ("identical", "simplify", "numeric"),
             subs: Callable[[sp.Expr], sp.Expr] | None = None,
             substitution: tuple | None = None) -> Step:
        """Append ``lhs = expr`` after verifying it equals the previous step.

        ``checks`` are tried in order; the first that succeeds is recorded.
        ``subs`` (a callable ``prev -> prev'``) states a substitution: the
        check then compares ``subs(prev)`` with ``expr`` and is recorded
        as ``subs+<check>``.  Raises :class:`DerivationError` when none holds.
        """
        new = sp.sympify(expr)
        prev = self.result
        a = self._unfold(prev if subs is None else subs(prev))
        b = self._unfold(new)
        used = None
        if substitution is not None:
            old, new_var, mapping = substitution
            if substitution_equal(a, b, old, new_var, mapping, self._sample_points()):
                used = "change-of-variables"
                checks = ()
        # two integrals over the same range are equal when their integrands are:
        # check the integrands (cheaper, and a stronger statement)
        pointwise = same_integral_limits(a, b)
        if pointwise:
            fa, fb = a.function, b.function
        for name in checks:
            if name == "pointwise":
                if self.sampler is not None and isinstance(a, sp.Integral) and len(a.limits) == 1 and \
                        pointwise_split_equal(a, b, self._sample_points()):
                    used = f"numeric-pointwise-{CHECK_DIGITS}-digits@{self.points}-points"
                    break
                continue
            if name == "numeric" and self.sampler is None:
                continue  # no random points to check at: this check cannot confirm the step
            if name == "numeric":
                if pointwise:
                    pts = integrand_points(a, self._sample_points(), random.Random(self.seed + 1))
                    if numeric_equal_pointwise(fa, fb, pts):
                        used = f"numeric-integrand-{CHECK_DIGITS}-digits@{self.points}-points"
                        break
                if numeric_equal(a, b, self._sample_points()[:self._quad_points]):
                    used = f"numeric-{CHECK_DIGITS}-digits@{self._quad_points}-points"
                    break
                continue
            try:
                ok = _SYMBOLIC_CHECKS[name](a, b)
                if not ok and pointwise and name != "identical":
                    ok = _SYMBOLIC_CHECKS[name](fa, fb)
                    if ok:
                        name = f"{name}-integrand"
            except (NotImplementedError, TypeError, ValueError, RecursionError):
                ok = False
            if ok:
                used = name
                break
        if used is None:
            tried = ", ".join((["change-of-variables"] if substitution is not None else []) + list(checks))
            raise DerivationError(
                f"step {len(self.steps)} ({reason!r}) is not equal to the previous step "
                f"(tried {tried}): {prev}  !=  {new}"
            )
        if subs is not None:
            used = f"subs+{used}"
        st = Step(reason, sp.Eq(self.lhs, new, evaluate=False), used)
        self.steps.append(st)
        return st

    # -- output -------------------------------------------------------------
    def to_latex(self) -> str:
        from .latex import derivation_latex

        return derivation_latex(self)

    def to_markdown(self) -> str:
        from .latex import derivation_markdown

        return derivation_markdown(self)

    # -- exact evaluation -----------------------------------------------------
    def evaluate(self, mu: Sequence[float | str], dps: int = 30) -> "Evaluation":
        """Every ``p_i`` and ``log p_i`` of the closed form at ``mu``, verified to ``dps`` digits.

        See :func:`evaluate_closed_form` (the algorithm and its guarantees).

        >>> from derive import derive
        >>> e = derive("gumbel_min", 3).evaluate([30, 0, -30], dps=20)
        >>> [mpmath.nstr(v, 12) for v in e.p]
        ['1.0', '9.35762296884e-14', '1.6388025248e-39']
        """
        return evaluate_closed_form(self, mu, dps)


# ---------------------------------------------------------------------------
# sums and products over j != i (printed as \sum_{j \neq i})
# ---------------------------------------------------------------------------


def _outer_deltas(expr, j):
    """The ``KroneckerDelta(k, j)`` of ``expr`` outside nested sums / products (theirs exclude their own index)."""
    if isinstance(expr, sp.KroneckerDelta):
        return {expr} if j in expr.args else set()
    if isinstance(expr, (sp.Sum, sp.Product)):
        return set()
    return set().union(*(_outer_deltas(a, j) for a in expr.args))


def _exclusion(obj):
    """``(body, excluded)`` of a :class:`SumExcept` / :class:`ProductExcept`: the summand with its
    ``delta_kj`` set to 0 and the indices ``k`` they exclude.  The summand is ``f (1 - delta_ij)`` or
    ``f^(1 - delta_ij)`` as built, or any form sympy folds it into (``g^(delta - 1)``,
    ``exp(-(1 - delta) h)``): at ``j = i`` each is the neutral term, elsewhere ``delta = 0``."""
    (j, _, _), = obj.limits
    deltas = sorted(_outer_deltas(obj.function, j), key=sp.default_sort_key)
    excluded = [d.args[0] if d.args[1] == j else d.args[1] for d in deltas]
    return obj.function.xreplace({d: 0 for d in deltas}), excluded


def _doit_except(obj, combine, hints):
    """Write out a :class:`SumExcept` / :class:`ProductExcept` with concrete limits, leaving the
    excluded terms out instead of multiplying them by 0 (or raising them to the power 0): a term
    that is singular at ``j = i`` (``1/(c_j - 1)`` with ``c_i = 1``) would give ``0 * zoo = nan``."""
    (j, lo, hi), = obj.limits
    body, others = _exclusion(obj)
    if not (lo.is_Integer and hi.is_Integer and all(o.is_Integer for o in others)):
        return None
    terms = [body.subs(j, k) for k in range(int(lo), int(hi) + 1) if k not in others]
    if hints.get("deep", True):
        terms = [t.doit(**hints) for t in terms]
    return combine(*terms)


class SumExcept(sp.Sum):
    """``Sum_{j=1}^{n} f_j (1 - delta_ij)``, printed as ``\\sum_{j \\neq i} f_j``.

    Build with :func:`sum_except`; it is an ordinary sympy ``Sum`` (so
    ``doit``, ``subs`` and the checks treat it as one), only printed as the
    article writes it.
    """

    def doit(self, **hints):
        out = _doit_except(self, sp.Add, hints)
        return super().doit(**hints) if out is None else out

    def _latex(self, printer):
        (j, lo, hi), = self.limits
        body, others = _exclusion(self)
        return r"\sum_{%s \neq %s} %s" % (printer._print(j), ", ".join(printer._print(o) for o in others) or "?",
                                          printer.parenthesize(body, sp.printing.precedence.PRECEDENCE["Mul"]))


class ProductExcept(sp.Product):
    """``Prod_{j=1}^{n} f_j^((1 - delta_ij) (1 - delta_kj) ...)``, printed as ``\\prod_{j \\neq i, k} f_j``
    (``\\prod_{j \\leq m,\\, j \\neq i}`` when the upper limit is not ``n``)."""

    def doit(self, **hints):
        out = _doit_except(self, sp.Mul, hints)
        return super().doit(**hints) if out is None else out

    def _latex(self, printer):
        (j, lo, hi), = self.limits
        body, others = _exclusion(self)
        upto = "" if str(hi) == "n" else r"%s \leq %s,\, " % (printer._print(j), printer._print(hi))
        if lo != 1:
            upto += r"%s \geq %s,\, " % (printer._print(j), printer._print(lo))
        excluded = ", ".join(printer._print(o) for o in others) or "?"
        return r"\prod_{%s%s \neq %s} %s" % (upto, printer._print(j), excluded,
                                             printer.parenthesize(body, sp.printing.precedence.PRECEDENCE["Mul"]))


def sum_except(f, j, i, n):
    """``sum over j = 1..n, j != i`` of ``f`` (a :class:`SumExcept`)."""
    return SumExcept(f * (1 - sp.KroneckerDelta(i, j)), (j, 1, n))


def product_except(f, j, i, n, *more):
    """``product over j = 1..n, j != i`` (and ``j`` not in ``more``) of ``f`` (a :class:`ProductExcept`)."""
    power = sp.Mul(*[1 - sp.KroneckerDelta(k, j) for k in (i,) + more])
    return ProductExcept(f ** power, (j, 1, n))


# ---------------------------------------------------------------------------
# exact evaluation of closed forms at adaptive precision
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """``p`` and ``log_p`` (lists of mpf, correct to ``dps`` significant digits) and the
    working precision (decimal digits) at which they were verified."""

    p: list
    log_p: list
    dps: int
    working_dps: int
    how: str


class EvaluationError(ArithmeticError):
    """A closed form could not be evaluated to the requested digits (precision cap reached)."""


#: the working precision is never raised beyond this many decimal digits
MAX_WORKING_DPS = 20000


def _entry_expressions(d, n=None):
    """The n expressions p_1..p_n and their plain symbols for a Derivation ``d``.

    A symbolic-n derivation (``symbols = (mu,)``, an IndexedBase) is written out for ``n``
    entries: ``n`` and ``i`` substituted, sums over subsets / ranges expanded.
    """
    if d.closed_form is not None:
        # a rearrangement without cancellation, where the route provides one (checked equal)
        forms = d.extra.get("stable_forms") or d.closed_form
        return list(forms), tuple(d.symbols)
    syms = tuple(d.symbols or ())
    if n is None or d.status == "none" or len(syms) != 1 or not isinstance(syms[0], sp.IndexedBase) \
            or len(d.steps) < 3:
        return None, None
    from .softmax import SYMBOLS

    mu = syms[0]
    plain = tuple(sp.Symbol(f"mu_{k}", real=True) for k in range(1, n + 1))
    res = d._unfold(d.result)
    if res.has(sp.Integral):
        return None, None
    exprs = []
    for k in range(1, n + 1):
        e = _expand_sums(res.subs({SYMBOLS["n"]: n, SYMBOLS["i"]: k}))
        exprs.append(e.xreplace({mu[q]: plain[q - 1] for q in range(1, n + 1)}))
    return exprs, plain


def _as_rational(v, k):
    if isinstance(v, bool) or isinstance(v, complex):
        raise TypeError(f"mu[{k}] must be a real number, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"mu[{k}] must be a finite real number, got {v!r}")
    try:
        r = sp.Rational(v.strip()) if isinstance(v, str) else sp.Rational(v)
    except (TypeError, ValueError):
        raise ValueError(f"mu[{k}] must be a finite real number, got {v!r}") from None
    if r is sp.nan or not r.is_Rational or not r.is_finite:
        raise ValueError(f"mu[{k}] must be a finite real number, got {v!r}")
    return r


def _compiled(d, exprs, syms):
    cache = d.extra.setdefault("_evaluate_cache", {})
    key = len(syms)
    if key not in cache:
        from .special import owens_t_mp, owens_tc_mp

        cache[key] = [sp.lambdify(syms, e, modules=[{"OwenT": owens_t_mp, "OwenTc": owens_tc_mp}, "mpmath"])
                      for e in exprs]
    return cache[key]


def _value_at(f, mu_q, wp_dps, shift=None):
    """One entry at ``wp_dps`` digits (None where the form is singular); ``shift`` = (t, v) moves mu to mu + t v."""
    with mpmath.workdps(wp_dps):
        pt = [mpmath.mpf(q.p) / q.q for q in mu_q]
        if shift is not None:
            t, direction = shift
            pt = [x + t * v for x, v in zip(pt, direction)]
        try:
            v = mpmath.mpmathify(f(*pt))
        except ZeroDivisionError:
            return None
        if isinstance(v, mpmath.mpc):
            if abs(v.imag) > abs(v.real) * mpmath.mpf(10) ** (-wp_dps // 2):
                return None
            v = v.real
        return v if mpmath.isfinite(v) else None


def _agree_digits(x, y, exact_zero=False):
    """Decimal digits to which ``x`` and ``y`` agree (relative).

    0 agrees with 0 only when the entry is proven 0 exactly (``exact_zero``): a cancelling
    form can round to 0 at two precisions alike (normal p_3 ~ 1e-394 at 75 digits).
    """
    if x == y and (x != 0 or exact_zero):
        return mpmath.inf
    if x == 0 or y == 0:
        return 0
    return -mpmath.log10(abs(x - y) / abs(y))


def _exact_status(exprs, syms, mu_q):
    """(exact zeros, singular entries): indices whose form is exactly 0, or 0/0 / infinite, at the
    rational point (sympy, exact arithmetic).  A singular form can still return a finite number
    in floating point (logistic at ties: 1.0 and -0.125), so singularity is decided exactly."""
    env = dict(zip(syms, mu_q))
    zeros, singular = set(), set()
    for k, e in enumerate(exprs):
        try:
            v = e.xreplace(env)
        except (TypeError, ValueError, ZeroDivisionError):
            singular.add(k)
            continue
        if v == 0:
            zeros.add(k)
        elif v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            singular.add(k)
    return zeros, singular


def _verified(f, mu_q, dps, shift=None, exact_zero=False):
    """(value, working digits): two working precisions agreeing to dps + 5 digits, raised as needed.

    Rounding errors of a cancelling expression evaluated with w digits are ~10^(lost - w),
    where ``lost`` is the number of digits the cancellation costs (unknown in advance, ~390
    for p_3 of normal n = 3 at mu = (30, 0, -30)).  Two evaluations at w and w + g digits
    agreeing to dps + 5 digits bound the error of the second by ~10^-(dps + 5 + g).  When
    they share some digits, ``w - shared`` estimates ``lost`` and w is set past it; when they
    share none (or both round to 0), w doubles.  (None, w) when the form is singular there.
    """
    guard = 10
    wp = dps + 2 * guard
    if shift is not None:
        # the shifted point must not round back onto the singular one: carry t's digits too
        wp += int(-mpmath.log10(shift[0])) + dps
    lo = _value_at(f, mu_q, wp, shift)
    while True:
        w_hi = wp + guard + dps // 2
        hi = _value_at(f, mu_q, w_hi, shift)
        if lo is None or hi is None:
            if shift is None:
                return None, wp
            # near a removable singularity the shifted point can still round onto it: more digits
            agree = 0
        else:
            agree = _agree_digits(lo, hi, exact_zero)
        if agree >= dps + 5:
            return hi, w_hi
        if agree >= 3:
            wp = max(int(w_hi - agree + dps + 3 * guard), w_hi + guard)
        else:
            wp = 2 * w_hi
        if wp > MAX_WORKING_DPS:
            raise EvaluationError(f"closed form could not be verified to {dps} digits with up to "
                                  f"{MAX_WORKING_DPS} working digits at mu = {[str(q) for q in mu_q]}")
        lo = _value_at(f, mu_q, wp, shift)


def evaluate_closed_form(d, mu, dps: int = 30) -> Evaluation:
    """Evaluate the closed forms of ``d`` at ``mu``, every entry correct to ``dps`` significant digits.

    Closed forms cancel: normal n = 3 at mu = (30, 0, -30) gives p_3 = 6.48e-394 as a
    difference of O(1) terms, so a fixed precision returns noise.  The forms are compiled
    to mpmath and evaluated at two working precisions; the precision is raised (by the
    digits the disagreement shows were lost) until every entry agrees to dps + 5 digits.
    Then ``sum p = 1`` is checked to ``dps`` digits.  Inputs are read exactly (floats as
    their binary value, strings as decimals).

    At exact ties a closed form may be 0/0 (logistic's removable singularities): the value
    is then the limit along ``mu + t v`` (``v`` a fixed direction with distinct entries),
    taken at ``t = 10^-(dps+8)`` and ``10^-(2 dps+16)``; the form is analytic in ``t`` there,
    so the two agree to dps + 5 digits only once the O(t) term is below them (checked).

    A symbolic-n form derived for sorted scores ``mu_1 >= ... >= mu_n`` (uniform, laplace:
    ``d.extra["sorted_scores"]``) is evaluated at the sorted scores and relabelled.

    Raises :class:`EvaluationError` when the precision cap is reached or ``sum p`` is not 1,
    ``ValueError`` for bad ``mu`` or a derivation without a closed form.
    """
    if not isinstance(dps, int) or isinstance(dps, bool) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    mu = list(mu) if not isinstance(mu, (str, bytes)) else None
    if mu is None:
        raise ValueError("mu must be a sequence of real numbers")
    exprs, syms = _entry_expressions(d, len(mu))
    if exprs is None:
        raise ValueError(f"evaluate: this derivation has no closed form for concrete entries (status "
                         f"{d.status!r}); use derive.oracle.probs(mu, family, dps=...)")
    if len(mu) != len(syms):
        raise ValueError(f"mu must be a sequence of {len(syms)} real numbers (n = {len(syms)})")
    mu_q = [_as_rational(v, k) for k, v in enumerate(mu)]
    if not d.extra.get("sorted_scores"):
        return _evaluate_at(d, exprs, syms, mu_q, dps)
    # a form derived for mu_1 >= ... >= mu_n: evaluate at the sorted scores, then relabel
    order = sorted(range(len(mu_q)), key=lambda k: -mu_q[k])
    e = _evaluate_at(d, exprs, syms, [mu_q[k] for k in order], dps)
    rank = {k: r for r, k in enumerate(order)}
    return Evaluation(p=[e.p[rank[k]] for k in range(len(mu_q))], log_p=[e.log_p[rank[k]] for k in range(len(mu_q))],
                      dps=e.dps, working_dps=e.working_dps, how=e.how)


def _evaluate_at(d, exprs, syms, mu_q, dps):
    """:func:`evaluate_closed_form` at the rational scores ``mu_q`` (in the order the forms expect)."""
    fns = _compiled(d, exprs, syms)
    zeros, singular = _exact_status(exprs, syms, mu_q)
    vals, wps, how = [], [], "direct"
    direction = [mpmath.sqrt(k + 2) / (k + 1) for k in range(len(mu_q))]
    for k, f in enumerate(fns):
        v, w = (None, 0) if k in singular else _verified(f, mu_q, dps, exact_zero=k in zeros)
        if v is None:
            # 0/0 at ties: the limit along mu + t v, v with distinct entries
            a, wa = _verified(f, mu_q, dps, (mpmath.mpf(10) ** -(dps + 8), direction))
            b, wb = _verified(f, mu_q, dps, (mpmath.mpf(10) ** -(2 * dps + 16), direction))
            if a is None or b is None or _agree_digits(a, b) < dps + 5:
                raise EvaluationError(f"closed form p_{k + 1} is singular at mu = {[str(q) for q in mu_q]} and "
                                      f"its limit could not be verified to {dps} digits")
            v, w, how = b, max(wa, wb), "limit at ties"
        vals.append(v)
        wps.append(w)
    wp = max(wps)
    with mpmath.workdps(wp):
        total = mpmath.fsum(vals)
        if abs(total - 1) > mpmath.mpf(10) ** -dps:
            raise EvaluationError(f"sum of the evaluated p is {mpmath.nstr(total, dps)}, not 1 to {dps} digits")
        if any(v < 0 and abs(v) > mpmath.mpf(10) ** -(dps + 5) for v in vals):
            raise EvaluationError(f"negative probability at mu = {[str(q) for q in mu_q]}")
    with mpmath.workdps(dps):
        p = [+v if v > 0 else mpmath.mpf(0) for v in vals]
    with mpmath.workdps(wp):
        logs = [mpmath.log(v) if v > 0 else mpmath.ninf for v in vals]
    with mpmath.workdps(dps):
        log_p = [+v for v in logs]
    return Evaluation(p=p, log_p=log_p, dps=dps, working_dps=wp, how=how)


# ---------------------------------------------------------------------------
# sums over subsets (inclusion-exclusion for symbolic n)
# ---------------------------------------------------------------------------


class Card(sp.Function):
    """``|S|``, the size of the subset ``S`` of a :class:`SubsetSum` (printed ``\\lvert S\\rvert``)."""

    nargs = 1

    def _latex(self, printer):
        return r"\lvert %s\rvert" % printer._print(self.args[0])


class InSum(sp.Expr):
    """``sum_{j in S} f`` inside a :class:`SubsetSum` (``InSum(f, j, S)``)."""

    is_commutative = True

    def __new__(cls, f, j, S):
        return sp.Expr.__new__(cls, sp.sympify(f), j, S)

    def _latex(self, printer):
        f, j, S = self.args
        return r"\sum_{%s \in %s} %s" % (printer._print(j), printer._print(S),
                                          printer.parenthesize(f, sp.printing.precedence.PRECEDENCE["Mul"]))


class SubsetSum(sp.Expr):
    """``sum over S subset of {1..n} minus {i}`` of ``body`` (``SubsetSum(body, S, i, n)``).

    ``body`` may hold ``Card(S)`` and ``InSum(f, j, S)``; with concrete ``n`` and ``i``,
    :meth:`doit` writes out the 2^(n-1) terms (how the numeric checks evaluate it).
    Printed ``\\sum_{S\\subseteq[n]\\setminus\\{i\\}}``.
    """

    is_commutative = True

    def __new__(cls, body, S, i, n):
        return sp.Expr.__new__(cls, sp.sympify(body), S, sp.sympify(i), sp.sympify(n))

    @property
    def is_concrete(self):
        return self.args[2].is_Integer and self.args[3].is_Integer

    def doit(self, **hints):
        body, S, i, n = self.args
        if not self.is_concrete:
            return self
        others = [k for k in range(1, int(n) + 1) if k != int(i)]
        terms = []
        for size in range(len(others) + 1):
            for T in itertools.combinations(others, size):
                t = body.replace(lambda e: isinstance(e, InSum) and e.args[2] == S,
                                 lambda e: sp.Add(*[e.args[0].subs(e.args[1], k) for k in T]))
                t = t.xreplace({Card(S): sp.Integer(size)})
                terms.append(t)
        return sp.Add(*terms)

    def _latex(self, printer):
        body, S, i, n = self.args
        return r"\sum_{%s \subseteq [%s] \setminus \{%s\}} %s" % (
            printer._print(S), printer._print(n), printer._print(i),
            printer.parenthesize(body, sp.printing.precedence.PRECEDENCE["Mul"]))


class MaxOver(sp.Expr):
    """``max_{j=1..n} f`` (``MaxOver(f, j, n)``); :meth:`doit` gives ``Max`` for concrete ``n``."""

    is_commutative = True

    def __new__(cls, f, j, n):
        return sp.Expr.__new__(cls, sp.sympify(f), j, sp.sympify(n))

    @property
    def is_concrete(self):
        return self.args[2].is_Integer

    def doit(self, **hints):
        f, j, n = self.args
        if not self.is_concrete:
            return self
        return sp.Max(*[f.subs(j, k) for k in range(1, int(n) + 1)])

    def _latex(self, printer):
        f, j, n = self.args
        return r"\max_{%s=1}^{%s} %s" % (printer._print(j), printer._print(n), printer._print(f))


class ElementarySymmetric(sp.Expr):
    """``e_r`` of ``{f_j : lo <= j <= hi, j != i}`` (``ElementarySymmetric(r, f, j, lo, hi, i)``).

    ``e_r(x_1..x_m) = sum over the r-subsets T of prod_{j in T} x_j`` (``e_0 = 1``; 0 for
    ``r < 0`` or ``r > m``): the coefficients of a product of linear factors,
    ``prod_j (x - a_j) = sum_r (-1)^r e_r(a) x^(m - r)``.  With concrete ``r``, ``lo``,
    ``hi`` and ``i``, :meth:`doit` writes out the sum (how the numeric checks evaluate it).

    >>> j = sp.Symbol("j", integer=True)
    >>> a = sp.IndexedBase("a")
    >>> ElementarySymmetric(2, a[j], j, 1, 4, 2).doit()
    a[1]*a[3] + a[1]*a[4] + a[3]*a[4]
    """

    is_commutative = True

    def __new__(cls, r, f, j, lo, hi, i):
        if sp.sympify(r) == 0:
            return sp.Integer(1)
        return sp.Expr.__new__(cls, *map(sp.sympify, (r, f, j, lo, hi, i)))

    @property
    def is_concrete(self):
        r, _, _, lo, hi, i = self.args
        return all(v.is_Integer for v in (r, lo, hi, i))

    def doit(self, **hints):
        if not self.is_concrete:
            return self
        r, f, j, lo, hi, i = self.args
        members = [f.subs(j, k) for k in range(int(lo), int(hi) + 1) if k != int(i)]
        if r < 0 or r > len(members):
            return sp.Integer(0)
        return sp.Add(*[sp.Mul(*T) for T in itertools.combinations(members, int(r))])

    def _latex(self, printer):
        r, f, j, lo, hi, i = self.args
        pj = printer._print(j)
        return r"e_{%s}\left(%s : %s \leq %s \leq %s,\, %s \neq %s\right)" % (
            printer._print(r), printer._print(f), printer._print(lo), pj, printer._print(hi), pj, printer._print(i))


class ExpSegment(sp.Function):
    """``E_lam(a, b) = int_a^b e^(lam x) dx``: ``(e^(lam b) - e^(lam a)) / lam``, and ``b - a`` at ``lam = 0``.

    Stays unevaluated while ``lam`` is symbolic (a summation index) and may be 0; an integer
    ``lam`` gives the elementary value, and so does a half-line where the integral converges
    (``b = oo`` with ``lam < 0``: ``-e^(lam a)/lam``; ``a = -oo`` with ``lam > 0``: ``e^(lam b)/lam``).

    >>> a, b = sp.symbols("a b", real=True)
    >>> ExpSegment(0, a, b), ExpSegment(-2, a, sp.oo)
    (-a + b, exp(-2*a)/2)
    """

    nargs = 3

    @classmethod
    def eval(cls, lam, a, b):
        if b == sp.oo and lam.is_negative:
            return sp.exp(lam * a) / (-lam)
        if a == -sp.oo and lam.is_positive:
            return sp.exp(lam * b) / lam
        if not lam.is_Integer:
            return None
        if lam == 0:
            return b - a
        return (sp.exp(lam * b) - sp.exp(lam * a)) / lam

    def _latex(self, printer, exp=None):
        lam, a, b = self.args
        out = r"E_{%s}\left(%s, %s\right)" % (printer._print(lam), printer._print(a), printer._print(b))
        return out if exp is None else r"%s^{%s}" % (out, exp)
