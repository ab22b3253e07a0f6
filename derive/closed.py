"""Closed forms of the perturbed-argmax probabilities, attempted by sympy.

``derive(family, n)`` returns a :class:`~derive.derivation.Derivation`
whose steps start from (eq:pi) for class 1 with the family's noise and are
each verified by sympy (see :mod:`derive.derivation`).  The route depends on
the family; every route makes sympy do the integration, the guidance is a
substitution or a split of the range:

=============  ==============================================================
gumbel         collect ``S = sum_j exp(mu_j - mu_1)``, ``t = -exp(-eps)`` -> softmax
gumbel_min     ``c_j = exp(mu_1 - mu_j)``, ``u = exp(eps)``, expand the product
               (inclusion-exclusion over subsets), integrate term by term
exponential    ``x = mu_1 + eps``; integrand vanishes below ``M = max mu``;
               expand and integrate from ``M`` to oo  (valid for any order)
uniform        n <= 4: ordered ``mu_1 >= ... >= mu_n``: split ``[max mu, mu_r + 1]``
               where the CDFs saturate; Piecewise over all n! orderings (the
               rank formulas are what the notes show); n >= 5: the piecewise
               route's one formula (n! orderings outgrow it)
laplace        ordered ``mu``: split the line at every ``mu_j``
logistic       no hand route: the rational route (derive.routes.rational),
               ``u = exp(-eps)``, partial fractions, limits at ties (n <= 3)
n = 2          (normal, cauchy, student_t, user families) ``p_1`` is the CDF of
               ``eps_2 - eps_1``: the direct integral for ``Delta >= 0`` or
               the difference density from ``p_1(0) = 1/2``, whichever
               integrand is rational or polynomial x Gaussian (else "none"
               at once, naming the integrands)
normal, n = 3  bivariate normal orthant probability, correlation 1/2 (Owen's T)
=============  ==============================================================

Where no route gives a closed form, ``status`` is ``"none"`` and ``reason``
says what sympy was asked and where it stopped; the numeric fallback is
:func:`derive.oracle.probs`.  ``scale`` enters as ``p(mu; s) = p(mu/s; 1)``.

>>> d = derive("gumbel", 2)
>>> d.closed_form[0]
exp(mu_1)/(exp(mu_1) + exp(mu_2))
"""

from __future__ import annotations

import functools
import itertools
import random

import sympy as sp

from .derivation import Derivation, DerivationError, product_except, sum_except
from .families import FAMILY_NAMES, Family, family as _family

__all__ = ["derive", "mu_symbols", "STATUS_VALUES", "ORACLE_FALLBACK"]

STATUS_VALUES = ("closed", "special", "none")
ORACLE_FALLBACK = ("numeric fallback: derive.oracle.probs(mu, family, dps=...) (quadrature of the integral, "
                   "confirmed by two independent rules)")

#: largest n for which the per-ordering Piecewise of uniform / laplace is built
MAX_PIECEWISE_N = 5

#: largest n of the uniform's hand route: its rank formulas (one short polynomial per rank, for sorted
#: mu) read better than the piecewise route's single formula, but its Piecewise over the n! orderings
#: grows like n! (120 orderings at n = 5, minutes); from n = 5 the piecewise route (derive.routes.piecewise:
#: the other scores in descending order, one formula for every ordering, seconds) derives it
UNIFORM_HAND_MAX_N = 4

_EPS = sp.Symbol("varepsilon", real=True)
_X = sp.Symbol("x", real=True)
_T = sp.Symbol("t", real=True)
_U = sp.Symbol("u", positive=True)
_P1 = sp.Symbol("p_1")


def mu_symbols(n: int) -> tuple:
    """``(mu_1, ..., mu_n)`` as real sympy Symbols."""
    return tuple(sp.Symbol(f"mu_{k}", real=True) for k in range(1, n + 1))


def _p(k):
    return sp.Symbol(f"p_{k}")


# ---------------------------------------------------------------------------
# argument handling
# ---------------------------------------------------------------------------


def _validate_n(n):
    if isinstance(n, str):
        if n.strip().lower() == "general":
            return "general"
        raise ValueError(f"n must be a positive integer or 'general', got {n!r}")
    if isinstance(n, sp.Symbol):
        return "general"
    if isinstance(n, bool):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(n, sp.Integer):
        n = int(n)
    if isinstance(n, float) and n.is_integer():
        raise ValueError(f"n must be a positive integer (an int), got the float {n!r}")
    if not isinstance(n, int):
        raise ValueError(f"n must be a positive integer or 'general', got {n!r}")
    if n < 1:
        raise ValueError(f"n must be a positive integer (n >= 1), got n = {n}")
    return n


def _resolve_family(fam, params) -> Family:
    if isinstance(fam, Family):
        return _family(fam, **params) if params else fam
    return _family(fam, **params)


def derive(family: str | Family, n: int | str = "general", **params: object) -> Derivation:
    """Attempt a closed form of ``p_i = P[argmax(mu + eps) = i]``.

    ``family``: registry name, a :class:`~derive.families.Family` or a user
    family from :func:`derive.family_from_cdf`; ``params`` (``scale``,
    ``nu``) bind a registry family.  ``n``: a positive int, or ``"general"``
    / a sympy Symbol for symbolic n.

    Returns a Derivation with ``.steps`` (verified), ``.closed_form`` (list
    of n sympy expressions in ``.symbols`` = ``(mu_1..mu_n)``, or None),
    ``.status`` in ``{"closed", "special", "none"}``, ``.reason``,
    ``.conditions`` (article conditions 1-4), ``.family``, ``.n``.

    >>> derive("exponential", 2).closed_form[1]     # = exp(mu_2 - mu_1)/2 when mu_1 >= mu_2
    exp(mu_2 - Max(mu_1, mu_2)) - exp(mu_1 + mu_2 - 2*Max(mu_1, mu_2))/2
    """
    fam = _resolve_family(family, params)
    nn = _validate_n(n)
    from .derivation import verification_level

    return _derive_cached(fam, nn, verification_level())


@functools.lru_cache(maxsize=None)
def _derive_cached(fam: Family, n, level: str) -> Derivation:
    std = fam if fam.custom else fam.with_params(scale=1)
    scale = fam.scale if not fam.custom else sp.Integer(1)
    if n == "general":
        d = _general(std)
    elif n == 1:
        d = _trivial(std)
    else:
        d = _concrete(std, n)
    d.family = fam
    d.n = n
    if d.closed_form is not None and scale != 1:
        # p(mu; s) = p(mu / s; 1): substitute x = s y in (eq:pi)
        d.closed_form = [e.xreplace({m: m / scale for m in d.symbols}) for e in d.closed_form]
        d.notes.append(f"scale s = {scale}: the closed forms use $p(\\mu; s) = p(\\mu/s; 1)$ "
                       "(substitute $\\varepsilon = s\\,\\varepsilon'$ in the integral for $p_i$); the steps are for $s = 1$.")
    if d.closed_form is not None and n != "general":
        from .conditions import check_conditions

        bounded = std.support.start.is_finite or std.support.end.is_finite
        d.conditions = check_conditions(d.closed_form, d.symbols, bounded_support=bool(bounded),
                                        spread=2.0 * float(scale), symbolic=d.status == "closed")
    return d


_ANY_N_CLOSED = ("gumbel", "gumbel_min", "exponential", "uniform", "laplace", "logistic")


def planned_status(name: str, n) -> str | None:
    """Status the route table gives for (registry family, n) without running it, or None.

    None means the outcome depends on what sympy reaches (n = 2 by the
    difference density): run :func:`derive` to know.  For the other cells
    the route is structural: the routes of ``_ANY_N_CLOSED`` work for every
    n (each run verifies its steps), normal n = 3 needs Owen's T, and normal
    n >= 4 / heavy tails n >= 3 have none.
    """
    n = _validate_n(n)
    if name in _ANY_N_CLOSED:
        return "closed"
    if n == 1:
        return "closed"
    if name == "normal":
        return {2: "special", 3: "special"}.get(n, "none")
    if n == 2:
        return None
    return "none"


def _trivial(fam):
    syms = mu_symbols(1)
    d = Derivation(_P1, sp.Integral(fam.pdf(_EPS), (_EPS, -sp.oo, sp.oo)),
                   "the probability that the only class wins (n = 1): the empty product is 1", sampler=_concrete_sampler(syms))
    d.step(sp.Integer(1), "a density integrates to 1", checks=("doit", "numeric"))
    d.symbols = syms
    d.closed_form = [sp.Integer(1)]
    d.status = "closed"
    return d


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------


def _concrete_sampler(syms, *, ordered=False, spread=3.0, gap=None):
    """Random exact rationals for ``syms`` (descending when ``ordered``)."""

    def sample(rng: random.Random):
        if ordered:
            top = sp.Rational(rng.randint(-1000, 1000), 1000)
            vals = [top]
            for _ in syms[1:]:
                g = gap if gap is not None else spread / len(syms)
                vals.append(vals[-1] - sp.Rational(rng.randint(1, int(1000 * g)), 1000))
        else:
            vals = [sp.Rational(rng.randint(-int(1000 * spread), int(1000 * spread)), 1000) for _ in syms]
        return dict(zip(syms, vals))

    return sample


def _unfolded_integral(body, limits):
    """``Integral(body, limits)`` built as written.

    ``sp.Integral(...)`` runs ``piecewise_fold`` on its body, which for a
    product of n Piecewise CDFs distributes their conditions over each
    other: a Piecewise with up to k^n branches and And/Or conditions
    (minutes at n = 3, hours at n = 4 for a triangular CDF).  The value is
    the same either way; every consumer (checks, routes) works on the
    product of Piecewise factors.
    """
    return sp.Basic.__new__(sp.Integral, body, sp.Tuple(*limits))


def _start(fam, syms, i=0):
    """(eq:pi) for class i+1: Integral phi(eps) prod_{j != i} Phi(mu_i - mu_j + eps) d eps."""
    prod = sp.Mul(*[fam.cdf(syms[i] - syms[j] + _EPS) for j in range(len(syms)) if j != i])
    return _unfolded_integral(fam.pdf(_EPS) * prod, (_EPS, -sp.oo, sp.oo))


def _start_reason(fam, i=1):
    return (f"the probability that class {i} wins, {fam.name} noise: $p_{i}=\\int\\phi(\\varepsilon)"
            f"\\prod_{{j\\neq {i}}}\\Phi(\\mu_{i}-\\mu_j+\\varepsilon)\\,d\\varepsilon$")


def _by_symmetry(expr, syms):
    """p_k from p_1 by exchanging mu_1 and mu_k (the noises are iid)."""
    out = [expr]
    for k in range(1, len(syms)):
        out.append(expr.xreplace({syms[0]: syms[k], syms[k]: syms[0]}))
    return out


def _new(fam, syms, *, sampler=None, definitions=None, i=0, points=5):
    return Derivation(_p(i + 1), _start(fam, syms, i), _start_reason(fam, i + 1),
                      title=f"{fam.name}, n = {len(syms)}", definitions=definitions or {},
                      sampler=sampler or _concrete_sampler(syms), points=points)


def _termwise(expr, var, lo, hi):
    """sympy integrate of an expanded sum, one term at a time."""
    terms = sp.Add.make_args(sp.expand(expr))
    out = []
    for term in terms:
        coeff, g = term.as_independent(var)
        g = sp.powsimp(g, combine="exp")
        out.append(sp.cancel(coeff * sp.integrate(g, (var, lo, hi))))
    return sp.Add(*out)


def _antiderivative(expr, var):
    """Termwise indefinite integral of a partial-fraction sum (coefficients split off).

    A term ``(A x + B) / Q(x)^k`` whose A, B hold other symbols is split
    into ``A x / Q^k + B / Q^k`` first: sympy's integrate (and ratint)
    returns 0 for some such terms with large symbolic coefficients (a
    LogLogistic n = 2 term), while each monomial over ``Q^k`` integrates
    correctly.
    """
    out = []
    for term in sp.Add.make_args(expr):
        coeff, g = term.as_independent(var)
        num, den = sp.fraction(sp.together(g))
        if num.is_polynomial(var) and den.has(var) and (num.free_symbols - {var}):
            for mono in sp.Add.make_args(sp.expand(num)):
                c, m = mono.as_independent(var)
                out.append(coeff * c * sp.integrate(m / den, var))
        else:
            out.append(coeff * sp.integrate(g, var))
    return sp.Add(*out)


def _failed(d, why):
    d.status = "none"
    d.closed_form = None
    d.reason = why + " " + ORACLE_FALLBACK + "."
    return d


# ---------------------------------------------------------------------------
# concrete n dispatch
# ---------------------------------------------------------------------------


def _concrete(fam, n):
    syms = mu_symbols(n)
    name = fam.name if not fam.custom else None
    routes = {
        "gumbel": _gumbel,
        "gumbel_min": _gumbel_min,
        "exponential": _exponential,
        "uniform": _uniform,
        "laplace": _laplace,
    }
    if name in routes and not (name == "uniform" and n > UNIFORM_HAND_MAX_N):
        d = routes[name](fam, syms)
    elif name == "normal" and n == 3:
        d = _normal3(fam, syms)
    else:
        # routes chosen by the structure of the CDF (derive.routes), the n = 2 difference route last
        from .routes import run

        d, tried = run(fam, n)
        if d is None:
            d = _no_closed_form(fam, syms)
            d.extra["routes_tried"] = [str(t) for t in tried]
    d.symbols = syms
    return d


# -- gumbel ---------------------------------------------------------------


def _gumbel(fam, syms):
    n = len(syms)
    S = sp.Symbol("S_1", positive=True)
    S_def = sp.Add(*[sp.exp(m - syms[0]) for m in syms])
    d = _new(fam, syms, definitions={S: S_def})
    collected = sp.Integral(sp.exp(-_EPS) * sp.exp(-S * sp.exp(-_EPS)), (_EPS, -sp.oo, sp.oo))
    d.step(collected, "collect the exponents: $S_1=\\sum_j e^{\\mu_j-\\mu_1}$ (the $j=1$ term is the "
           "density's own $e^{-e^{-\\varepsilon}}$)", checks=("numeric",))
    sub = collected.transform(-sp.exp(-_EPS), _T)
    d.step(sub, "substitute $t=-e^{-\\varepsilon}$", checks=("numeric",), substitution=(_EPS, _T, -sp.exp(-_EPS)))
    d.step(sub.doit(), "integrate: $S_1>0$", checks=("doit",))
    d.step(1 / S_def, "write out $S_1$", checks=("identical",))
    d.step(sp.exp(syms[0]) / sp.Add(*[sp.exp(m) for m in syms]), "multiply by $e^{\\mu_1}/e^{\\mu_1}$: softmax",
           checks=("simplify", "numeric"))
    d.closed_form = _by_symmetry(d.result, syms)
    d.status = "closed"
    d.reason = f"softmax, derived for n = {n}; the same steps hold for symbolic n (see the Gumbel page)."
    return d


# -- gumbel_min -----------------------------------------------------------


def _gumbel_min(fam, syms):
    n = len(syms)
    cs = [sp.Symbol(f"c_{k + 1}", positive=True) for k in range(1, n)]
    defs = {c: sp.exp(syms[0] - m) for c, m in zip(cs, syms[1:])}
    d = _new(fam, syms, definitions=defs)
    integrand = sp.exp(_EPS - sp.exp(_EPS)) * sp.Mul(*[1 - sp.exp(-c * sp.exp(_EPS)) for c in cs])
    d.step(sp.Integral(integrand, (_EPS, -sp.oo, sp.oo)),
           "$\\Phi(\\mu_1-\\mu_j+\\varepsilon)=1-\\exp(-c_j e^{\\varepsilon})$ with $c_j=e^{\\mu_1-\\mu_j}$",
           checks=("numeric",))
    sub = d.result.transform(sp.exp(_EPS), _U)
    d.step(sub, "substitute $u=e^{\\varepsilon}$", checks=("numeric",), substitution=(_EPS, _U, sp.exp(_EPS)))
    expanded = sp.Integral(sp.powsimp(sp.expand(sub.function), combine="exp"), sub.limits[0])
    d.step(expanded, "expand the product: inclusion-exclusion over subsets $S\\subseteq\\{2..n\\}$",
           checks=("numeric",))
    value = _termwise(expanded.function, _U, 0, sp.oo)
    d.step(value, "integrate term by term: $\\int_0^\\infty e^{-u(1+\\sum_{j\\in S}c_j)}du=1/(1+\\sum_{j\\in S}c_j)$",
           checks=("numeric", "doit"))
    d.step(value.xreplace(defs), "write out $c_j$", checks=("identical",))
    d.closed_form = _by_symmetry(d.result, syms)
    d.status = "closed"
    d.reason = (f"inclusion-exclusion: $p_i=\\sum_{{S\\subseteq[n]\\setminus\\{{i\\}}}}(-1)^{{|S|}}"
                f"/(1+\\sum_{{j\\in S}}e^{{\\mu_i-\\mu_j}})$, {2 ** (n - 1)} terms for n = {n}.")
    return d


# -- exponential ----------------------------------------------------------


def _to_x_form(d, i_sym):
    """Step: x = mu_i + eps, checked as a change of variables.

    A shift has Jacobian 1 and moves the ends by mu_i, so the new
    integrand is the old one at eps = x - mu_i.  Written directly rather
    than by ``Integral.transform``, which folds a product of Piecewise
    factors into one Piecewise (see :func:`_unfolded_integral`).
    """
    (var, lo, hi), = d.result.limits
    sub = _unfolded_integral(d.result.function.subs(var, _X - i_sym), (_X, lo + i_sym, hi + i_sym))
    d.step(sub, f"substitute $x={sp.latex(i_sym)}+\\varepsilon$", checks=("numeric",),
           substitution=(_EPS, _X, _EPS + i_sym))
    return sub


def _exponential(fam, syms):
    n = len(syms)
    M = sp.Symbol("M", real=True)
    M_def = sp.Max(*syms)
    d = _new(fam, syms, definitions={M: M_def})
    _to_x_form(d, syms[0])
    body = sp.exp(-(_X - syms[0])) * sp.Mul(*[1 - sp.exp(-(_X - m)) for m in syms[1:]])
    d.step(sp.Integral(body, (_X, M, sp.oo)),
           "the density and every CDF factor are positive only for $x\\geq M=\\max_j\\mu_j$; there they are "
           "$e^{-(x-\\mu_1)}$ and $1-e^{-(x-\\mu_j)}$", checks=("pointwise", "numeric"))
    expanded = sp.Integral(sp.powsimp(sp.expand(body), combine="exp"), (_X, M, sp.oo))
    d.step(expanded, "expand the product (subsets of $\\{2..n\\}$)", checks=("numeric",))
    value = _termwise(expanded.function, _X, M, sp.oo)
    d.step(value, "integrate each exponential from $M$ to $\\infty$", checks=("numeric", "doit"))
    final = sp.powsimp(value.xreplace({M: M_def}), combine="exp")
    d.step(final, "write out $M=\\max_j\\mu_j$", checks=("identical", "numeric"))
    d.closed_form = _by_symmetry(d.result, syms)
    d.status = "closed"
    d.reason = (f"elementary for any order of $\\mu$ (written with $\\max_j\\mu_j$); {2 ** (n - 1)} terms. "
                "Classes below the top get $e^{-(M-\\mu_i)}$-small, never exactly 0.")
    return d


# -- sorted-mu routes: uniform and laplace ----------------------------------


def _piecewise_over_orderings(rank_forms, syms):
    """closed_form[k]: Piecewise over the n! orderings of mu.

    ``rank_forms[r]`` is p of the class ranked r+1 written in the sorted
    variables ``syms`` (``syms[0] >= syms[1] >= ...``).
    """
    n = len(syms)
    pieces = {k: [] for k in range(n)}
    for perm in itertools.permutations(range(n)):
        # perm[r] = index of the class ranked r+1
        sub = {syms[r]: syms[perm[r]] for r in range(n)}
        cond = sp.And(*[syms[perm[r]] >= syms[perm[r + 1]] for r in range(n - 1)])
        for r in range(n):
            pieces[perm[r]].append((rank_forms[r].xreplace(sub), cond))
    out = []
    for k in range(n):
        plist = pieces[k][:-1] + [(pieces[k][-1][0], True)]
        out.append(sp.Piecewise(*plist))
    return out


def _ordered_closed(d, rank_forms, syms, family_name):
    n = len(syms)
    d.extra["rank_forms"] = rank_forms
    if n <= MAX_PIECEWISE_N:
        d.closed_form = _piecewise_over_orderings(rank_forms, syms)
        d.status = "closed"
        d.reason = ("elementary in each ordering of $\\mu$: derived for $\\mu_1\\geq\\dots\\geq\\mu_n$ (one formula per "
                    f"rank) and returned as a Piecewise over the {sp.factorial(n)} orderings.")
    else:
        d.closed_form = None
        d.status = "closed"
        d.reason = ("elementary in each ordering of $\\mu$: the rank formulas for $\\mu_1\\geq\\dots\\geq\\mu_n$ are in "
                    f".extra['rank_forms']; the Piecewise over all {sp.factorial(n)} orderings is built only for "
                    f"n <= {MAX_PIECEWISE_N}.")
    d.assumptions = "$\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$ in the steps (other orderings by relabelling)"


def _uniform_rank(fam, syms, r, points=3):
    """p of the class of rank r (0-based) for mu_1 >= ... >= mu_n, uniform noise on [0, 1]."""
    n = len(syms)
    sampler = _concrete_sampler(syms, ordered=True, gap=0.8)
    d = Derivation(_p(r + 1), _start(fam, syms, r), _start_reason(fam, r + 1) +
                   " with $\\mu_1\\geq\\dots\\geq\\mu_n$", sampler=sampler, points=points,
                   title=f"uniform, n = {n}, rank {r + 1}")
    mi = syms[r]
    _to_x_form(d, mi)
    M, U = syms[0], mi + 1
    upper = sp.Max(M, U)
    body = sp.Mul(*[(_X - syms[j]) for j in range(r)]) * sp.Mul(*[sp.Min(_X - syms[j], 1) for j in range(r + 1, n)])
    d.step(sp.Integral(body, (_X, M, upper)),
           "the density is 1 on $[\\mu_r,\\mu_r+1]$ and the product is 0 below $\\mu_1=\\max\\mu$; "
           "there $\\Phi(x-\\mu_j)=x-\\mu_j$ for the higher $\\mu_j$ and $\\min(x-\\mu_j,1)$ for the lower",
           checks=("pointwise", "numeric"))
    # breakpoints b_k = clamp(mu_k + 1) where the lower classes' CDFs reach 1
    b = {r: upper}
    for k in range(r + 1, n):
        b[k] = sp.Max(M, sp.Min(upper, syms[k] + 1))
    b[n] = M
    segs = []
    for k in range(r, n):
        f = sp.Mul(*[(_X - syms[j]) for j in range(k + 1) if j != r])
        segs.append(sp.Integral(f, (_X, b[k + 1] if k + 1 <= n else M, b[k])))
    d.step(sp.Add(*segs), "split at $\\mu_k+1$ (clamped to the range), where the $k$-th CDF reaches 1",
           checks=("pointwise", "numeric"))
    value = sp.Add(*[sp.integrate(sp.expand(s.function), s.limits[0]) for s in segs])
    d.step(value, "integrate the polynomials", checks=("numeric", "doit"))
    return d


def _uniform(fam, syms):
    n = len(syms)
    ranks = [_uniform_rank(fam, syms, r) for r in range(n)]
    d = ranks[0]
    d.extra["rank_derivations"] = ranks
    _ordered_closed(d, [rd.result for rd in ranks], syms, "uniform")
    d.reason += " Classes more than 1 behind the top get exactly 0."
    return d


def _resolve_on_segment(expr, var, point_env):
    """Replace every Piecewise / Abs in ``expr`` by the branch active at ``point_env``.

    The branch is constant on the open segment (all kinks are at the
    segment ends), so deciding it at one interior point decides it on the
    whole segment; the step is then checked numerically like any other.
    """
    def pick(pw):
        for e, c in pw.args:
            cv = c.subs(point_env) if c not in (True, False) else c
            if bool(cv):
                return e
        raise DerivationError(f"no branch of {pw} holds at {point_env}")

    expr = expr.replace(lambda e: isinstance(e, sp.Piecewise), pick)
    expr = expr.replace(lambda e: isinstance(e, sp.Abs),
                        lambda e: e.args[0] if e.args[0].subs(point_env) >= 0 else -e.args[0])
    return expr


def _laplace_rank(fam, syms, r, points=3):
    n = len(syms)
    sampler = _concrete_sampler(syms, ordered=True, gap=1.5)
    d = Derivation(_p(r + 1), _start(fam, syms, r), _start_reason(fam, r + 1) +
                   " with $\\mu_1\\geq\\dots\\geq\\mu_n$", sampler=sampler, points=points,
                   title=f"laplace, n = {n}, rank {r + 1}")
    x_int = _to_x_form(d, syms[r])
    body = x_int.function
    # segments (mu_{k+1}, mu_k), k = 0..n with mu_0 = oo, mu_{n+1} = -oo
    edges = [sp.oo] + list(syms) + [-sp.oo]
    # a fixed ordered representative decides which branch is active on each segment
    rep = {s: sp.Integer(-2 * k) for k, s in enumerate(syms)}
    segs = []
    for k in range(n + 1):
        hi, lo = edges[k], edges[k + 1]
        hv = hi.subs(rep) if hi != sp.oo else lo.subs(rep) + 2
        lv = lo.subs(rep) if lo != -sp.oo else hi.subs(rep) - 2
        env = dict(rep)
        env[_X] = (hv + lv) / 2
        segs.append(sp.Integral(_resolve_on_segment(body, _X, env), (_X, lo, hi)))
    d.step(sp.Add(*segs), "split the line at every $\\mu_j$; on each piece $\\phi$ and every $\\Phi$ is one "
           "exponential branch", checks=("pointwise", "numeric"))
    value = sp.Add(*[_termwise(s.function, _X, *s.limits[0][1:]) for s in segs])
    value = sp.powsimp(sp.expand(value), combine="exp")
    d.step(value, "integrate the exponentials on each piece", checks=("numeric", "doit"))
    return d


def _laplace(fam, syms):
    n = len(syms)
    ranks = [_laplace_rank(fam, syms, r) for r in range(n)]
    d = ranks[0]
    d.extra["rank_derivations"] = ranks
    _ordered_closed(d, [rd.result for rd in ranks], syms, "laplace")
    return d


# -- logistic ---------------------------------------------------------------


#: largest n whose logistic closed form carries its tie limits (the limits of n = 4 cost minutes)
MAX_TIE_LIMIT_N = 3


def _logistic_tie_limits(value, cs, defs, syms):
    """The logistic p_1 with its removable singularities filled in, or None for n > MAX_TIE_LIMIT_N.

    ``value`` (in ``c_j = e^{mu_j - mu_1}``) is 0/0 where some c_j = 1 (a tie with class 1)
    or c_j = c_k (a tie among the others).  Each tie pattern gets sympy's limit of the
    general form (one equality at a time; the all-equal pattern from a one-equality limit),
    as a Piecewise branch ahead of the general form, most specific pattern first.  Checked
    against the oracle at ties by tests/test_closed_forms.py.
    """
    if len(cs) + 1 > MAX_TIE_LIMIT_N:
        return None
    t = sp.Symbol("t", positive=True)
    branches = []
    if len(cs) == 1:
        (c2,) = cs
        branches.append((sp.limit(value, c2, 1), sp.Eq(syms[1], syms[0])))
    else:
        c2, c3 = cs
        at2 = sp.limit(value, c2, 1)
        at3 = sp.limit(value, c3, 1)
        at23 = sp.limit(value.subs(c3, c2 + t), t, 0)
        all_ = sp.limit(at2, c3, 1)
        branches += [(all_, sp.Eq(syms[1], syms[0]) & sp.Eq(syms[2], syms[0])),
                     (at2, sp.Eq(syms[1], syms[0])), (at3, sp.Eq(syms[2], syms[0])),
                     (at23, sp.Eq(syms[1], syms[2]))]
    if any(b.has(sp.Limit, sp.nan, sp.zoo) for b, _ in branches):
        return None
    return sp.Piecewise(*[(b.xreplace(defs), c) for b, c in branches], (value.xreplace(defs), True))


# -- n = 2: the direct integral or the difference density ---------------------

#: seconds one sympy integration / limit inside a route's integrand class may take (the last-resort bound)
SYMPY_SECONDS = 60

_CLASSES = ("rational in $\\varepsilon$ (partial fractions: logarithms, arctangents) or a sum of "
            "polynomial $\\times e^{q(\\varepsilon)}$ with $q$ of degree $\\leq 2$ (sin / cos as exponentials; "
            "elementary or erf)")


def _at(F, var, end):
    """``F`` at ``end``: a limit when ``end`` is infinite (term by term at +oo, see ``limit_at_infinity``)."""
    from .routes._common import limit_at_infinity

    if end == sp.oo:
        return limit_at_infinity(F, var)
    if end == -sp.oo:
        return limit_at_infinity(F.subs(var, -var), var)
    return F.subs(var, end)


def _integrate_in_class(h, var, lo, hi, kind):
    """``Integral(h, (var, lo, hi))`` for ``h`` of :func:`~derive.routes._common.integrand_class` ``kind``.

    Rational: partial fractions, termwise antiderivative, its values (limits
    at infinite ends).  Gaussian: sympy's definite integral term by term
    (each term ``x^k e^{q(x)}``, ``deg q <= 2``, has an elementary or erf
    antiderivative).
    """
    if kind == "rational":
        # no simplify: it merges the logarithms into log((a + 1)**p) with a polynomial p, which
        # sympy then evaluates exactly at rational a (huge integers); the termwise sum stays cheap
        F = _antiderivative(sp.apart(sp.together(h), var), var)
        return _at(F, var, hi) - _at(F, var, lo)
    out = [sp.integrate(term, (var, lo, hi), conds="none") for term in sp.Add.make_args(sp.expand(h))]
    return sp.simplify(sp.Add(*out))


def _two_class_forms(fam):
    """``(f, F, lo, hi)``: density and CDF inside the support, without the support clamp."""
    from .routes._common import cdf_on_support, on_support

    F, lo, hi = cdf_on_support(fam)
    f = on_support(fam, fam.pdf(fam.symbol))
    return f.subs(fam.symbol, _EPS), F.subs(fam.symbol, _EPS), lo, hi


def _difference_route(fam, syms):
    r"""n = 2: ``p_1(Delta)``, ``Delta = mu_1 - mu_2``, is the CDF of ``eps_2 - eps_1`` at ``Delta``.

    By symmetry ``p_1(Delta) = 1 - p_1(-Delta)``, so ``a = |Delta| >= 0``
    suffices.  Two integrals give it, and the route takes the first whose
    integrand is in a class it evaluates (:func:`~derive.routes._common.integrand_class`):

    * direct: ``p_2(a) = Int_{lo + a}^{hi} f(e) F(e - a) de`` (on that range
      ``F`` is its in-support expression; support ``[lo, hi]``, 0 for
      ``a >= hi - lo``);
    * the difference density ``g(t) = Int_{lo}^{hi - t} f(e) f(e + t) de``
      (``t >= 0``, even in t), then ``p_1(a) = 1/2 + Int_0^a g(t) dt``.

    Outside those classes it answers "none" at once, naming the integrands
    (no open-ended sympy call).  Each sympy call is bounded by
    :data:`SYMPY_SECONDS`.
    """
    from .routes._common import TimeLimit, integrand_class, time_limit

    D = sp.Symbol("Delta", real=True)
    defs = {D: syms[0] - syms[1]}
    d = _new(fam, syms, definitions=defs)
    d.step(sp.Integral(fam.pdf(_EPS) * fam.cdf(D + _EPS), (_EPS, -sp.oo, sp.oo)),
           "write $\\Delta=\\mu_1-\\mu_2$", checks=("identical", "numeric"))
    f, F, lo, hi = _two_class_forms(fam)
    if f.has(sp.Piecewise) or F.has(sp.Piecewise):
        return _failed(d, "n = 2: the CDF has kinks inside its support and its pieces are not exponential-polynomial "
                       "(the piecewise route's class): the route leaves the integral unevaluated.")
    a = sp.Symbol("a", positive=True)
    t = sp.Symbol("t", positive=True)
    width = hi - lo
    direct = f * F.subs(_EPS, _EPS - a)
    density = f * f.subs(_EPS, _EPS + t)
    kind_direct, kind_density = integrand_class(direct, _EPS), integrand_class(density, _EPS)
    if kind_direct is None and kind_density is None:
        return _failed(d, f"n = 2: the route leaves $p_2(a)=\\int\\phi(\\varepsilon)\\Phi(\\varepsilon-a)\\,d\\varepsilon$ "
                       f"and the difference density $\\int\\phi(\\varepsilon)\\phi(\\varepsilon+t)\\,d\\varepsilon$ "
                       f"unevaluated: with $\\phi={sp.latex(f)}$ and $\\Phi={sp.latex(F)}$ neither integrand is "
                       f"{_CLASSES}, the classes whose integrals it evaluates.")
    clamp = (lambda v: sp.Min(v, width)) if width.is_finite else (lambda v: v)
    try:
        if kind_direct is not None:
            how = f"the direct integral ({kind_direct} integrand)"
            with time_limit(SYMPY_SECONDS, "sympy's integral of $\\phi(\\varepsilon)\\Phi(\\varepsilon-a)$"):
                Q = _integrate_in_class(direct, _EPS, lo + a, hi, kind_direct)
            if Q.has(sp.Integral):
                return _failed(d, f"n = 2: sympy leaves $\\int_{{{sp.latex(lo + a)}}}^{{{sp.latex(hi)}}}{sp.latex(direct)}"
                               "\\,d\\varepsilon$ unevaluated.")
            lower = (lambda v: sp.Min(lo + v, hi)) if width.is_finite else (lambda v: lo + v)
            split = sp.Piecewise(
                (1 - sp.Integral(direct.subs(a, D), (_EPS, lower(D), hi)), D >= 0),
                (sp.Integral(direct.subs(a, -D), (_EPS, lower(-D), hi)), True))
            d.step(split, "$p_1(\\Delta)=1-p_2(\\Delta)$ and $p_2(a)=p_1(-a)$; for $a\\geq0$ class 2 wins only where "
                   f"$\\varepsilon\\geq{sp.latex(lo)}+a$, and there $\\Phi(\\varepsilon-a)$ is its in-support expression",
                   checks=("numeric",))
            value = sp.Piecewise((1 - Q.subs(a, clamp(D)), D >= 0), (Q.subs(a, clamp(-D)), True))
        else:
            how = f"the difference density ({kind_density} integrand)"
            with time_limit(SYMPY_SECONDS, "sympy's integral of the difference density"):
                # simplified: the termwise sum has removable singularities at t = 0 (1/t^k terms)
                # that would defeat the quadrature of the next step's check
                g = sp.simplify(_integrate_in_class(density, _EPS, lo, hi - t, kind_density))
            if g.has(sp.Integral):
                return _failed(d, "n = 2: $\\partial p_1/\\partial\\Delta=\\int\\phi(\\varepsilon)\\phi(\\Delta+\\varepsilon)"
                               f"d\\varepsilon$ (the density of $\\varepsilon_2-\\varepsilon_1$): sympy leaves it "
                               f"unevaluated: ${sp.latex(g)}$.")
            d.notes.append(f"$\\partial p_1/\\partial\\Delta=g(|\\Delta|)$, $g(t)=\\int\\phi(\\varepsilon)\\phi(t+\\varepsilon)"
                           f"\\,d\\varepsilon={sp.latex(g)}$ for $t\\geq0$ ({how}).")
            d.step(sp.Piecewise((sp.Rational(1, 2) + sp.Integral(g, (t, 0, clamp(D))), D >= 0),
                                (sp.Rational(1, 2) - sp.Integral(g, (t, 0, clamp(-D))), True)),
                   "differentiate under the integral sign in $\\Delta$: $\\partial p_1/\\partial\\Delta$ is the density "
                   "$g$ of $\\varepsilon_2-\\varepsilon_1$ (even, integrated by sympy), and $p_1(0)=1/2$",
                   checks=("numeric",))
            kind_g = integrand_class(g, t)
            if kind_g is None:
                return _failed(d, f"n = 2: the difference density is $g(t)={sp.latex(g)}$, and the route leaves "
                               f"$\\int_0^{{\\Delta}}g(t)\\,dt$ unevaluated: $g$ is not {_CLASSES}.")
            with time_limit(SYMPY_SECONDS, "sympy's integral of the difference density's antiderivative"):
                G = _integrate_in_class(g, t, 0, a, kind_g)
            if G.has(sp.Integral):
                return _failed(d, f"n = 2: sympy leaves $\\int_0^a g(t)dt$ unevaluated for $g={sp.latex(g)}$.")
            value = sp.Piecewise((sp.Rational(1, 2) + G.subs(a, clamp(D)), D >= 0),
                                 (sp.Rational(1, 2) - G.subs(a, clamp(-D)), True))
    except TimeLimit as exc:
        return _failed(d, f"n = 2: time limit: {exc} ({how}; the integrand is in the class, sympy is slow on it).")
    except (NotImplementedError, ValueError, TypeError) as exc:  # pragma: no cover - sympy gaps
        return _failed(d, f"n = 2: sympy could not integrate {how} ({type(exc).__name__}: {exc}).")
    if value.has(sp.nan, sp.zoo, sp.Limit):
        return _failed(d, f"n = 2: sympy's limits at the ends of {how} are undefined.")
    try:
        d.step(value, "integrate", checks=("numeric",))
    except DerivationError:
        return _failed(d, f"n = 2: sympy's value for {how} fails the numeric check: rejected.")
    d.step(value.xreplace(defs), "write out $\\Delta$", checks=("identical",))
    d.closed_form = _by_symmetry(d.result, syms)
    special = d.result.has(sp.erf, sp.erfc, sp.hyper, sp.Integral)
    d.status = "special" if special else "closed"
    d.reason = ("n = 2: $p_1$ is the CDF of $\\varepsilon_2-\\varepsilon_1$ at $\\mu_1-\\mu_2$, by " + how +
                (" (needs erf)." if special else "."))
    return d


# -- normal n = 3 --------------------------------------------------------------


def _normal3(fam, syms):
    from .special import bivariate_normal_cdf

    d = _new(fam, syms, points=3)
    h = (syms[0] - syms[1]) / sp.sqrt(2)
    k = (syms[0] - syms[2]) / sp.sqrt(2)
    value = bivariate_normal_cdf(h, k, sp.Rational(1, 2))
    d.step(value, "$p_1=P[(\\varepsilon_j-\\varepsilon_1)/\\sqrt2\\leq(\\mu_1-\\mu_j)/\\sqrt2,\\ j=2,3]$: a bivariate "
           "normal CDF with correlation $1/2$, written with Owen's $T$ (Owen 1956)", checks=("numeric",))
    d.closed_form = _by_symmetry(d.result, syms)
    d.extra["stable_forms"] = _by_symmetry(_normal3_stable(syms), syms)
    d.status = "special"
    from .routes._common import TimeLimit, time_limit

    try:
        with time_limit(SYMPY_SECONDS, "sympy's Risch integrator"):
            attempt = sp.integrate(fam.pdf(_EPS) * fam.pdf(_EPS + _T) * fam.cdf(_EPS + syms[0] - syms[2]), _EPS,
                                   risch=True)
    except TimeLimit:
        attempt = None
    if attempt is None:
        stop = f"does not finish $\\partial p_1/\\partial\\Delta_2$ within {SYMPY_SECONDS} s."
    else:
        stop = ("leaves $\\partial p_1/\\partial\\Delta_2$ unevaluated" +
                (f" (${sp.latex(attempt)}$)." if attempt.has(sp.Integral) else "."))
    d.reason = ("needs Owen's $T$ (a sympy Function evaluated by mpmath): the direct route stops because sympy's Risch "
                "integrator " + stop)
    return d


def _normal3_stable(syms):
    """p_1 of normal n = 3 without cancellation, in the complementary Owen's T ``Tc = T(h, oo) - T(h, a)``.

    With h = Delta_12/sqrt2, k = Delta_13/sqrt2 and Owen's a_h, a_k, Owen's formula
    ``Phi(h)/2 + Phi(k)/2 - T(h, a_h) - T(k, a_k) - beta`` subtracts numbers of size 1/2 to
    give p_1 ~ 1e-394 at mu = (-30, 0, 30).  Using ``Phi(x)/2 = T(x, oo)`` (x < 0),
    ``(1 - Phi(x))/2 = T(x, oo)`` (x > 0) and ``T(x, -a) = -T(x, a)``, each sign pattern is a sum
    of positive Tc (the lowest class), a difference of two Tc of different sizes (the middle
    class) or 1 minus positive Tc (the top class).  Checked equal to Owen's form at 30 digits
    by ``tests/test_evaluate.py``.
    """
    from .special import OwenTc

    d12, d13 = syms[0] - syms[1], syms[0] - syms[2]
    h, k = d12 / sp.sqrt(2), d13 / sp.sqrt(2)
    ah = (2 * d13 - d12) / (sp.sqrt(3) * d12)
    ak = (2 * d12 - d13) / (sp.sqrt(3) * d13)
    r = 1 / sp.sqrt(3)
    return sp.Piecewise(
        (OwenTc(h, ah) + OwenTc(k, ak), (d12 < 0) & (d13 < 0)),
        (OwenTc(k, ak) - OwenTc(h, -ah), (d12 > 0) & (d13 < 0)),
        (OwenTc(h, ah) - OwenTc(k, -ak), (d12 < 0) & (d13 > 0)),
        (1 - OwenTc(h, -ah) - OwenTc(k, -ak), (d12 > 0) & (d13 > 0)),
        (OwenTc(k, -r), sp.Eq(d12, 0) & (d13 < 0)),
        (sp.Rational(1, 2) - OwenTc(k, r), sp.Eq(d12, 0)),
        (OwenTc(h, -r), d12 < 0),
        (sp.Rational(1, 2) - OwenTc(h, r), True),
    )


# -- no closed form ----------------------------------------------------------------


def _no_closed_form(fam, syms):
    """Status "none" for concrete n, with the reason.

    Registry families (normal n >= 4, heavy tails n >= 3) record what
    sympy's Risch integrator returns for ``dp_1/dDelta_2`` (bounded by
    :data:`SYMPY_SECONDS`).  A user family reaches this only after every
    route declined: the reason is decided from the structure of the
    integrand of (eq:pi), without an open-ended integration.
    """
    from .routes._common import TimeLimit, integrand_class, time_limit

    n = len(syms)
    d = _new(fam, syms)
    if fam.custom:
        f, F, lo, hi = _two_class_forms(fam)
        D = [sp.Symbol(f"Delta_{k}", real=True) for k in range(2, n + 1)]
        kind = integrand_class(f * sp.Mul(*[F.subs(_EPS, _EPS + Dk) for Dk in D]), _EPS)
        if kind is None:
            why = (f"for n = {n} no route's structure fits (each route's reason is listed), and the integrand "
                   f"$\\phi(\\varepsilon)\\prod_{{j\\geq2}}\\Phi(\\Delta_j+\\varepsilon)$ with $\\phi={sp.latex(f)}$, "
                   f"$\\Phi={sp.latex(F)}$ is not {_CLASSES}: no antiderivative is attempted.")
        elif lo.is_finite or hi.is_finite:
            why = (f"for n = {n} no route's structure fits (each route's reason is listed). The integrand "
                   f"$\\phi(\\varepsilon)\\prod_{{j\\geq2}}\\Phi(\\Delta_j+\\varepsilon)$ is {kind} in $\\varepsilon$ on "
                   f"the support ${sp.latex(fam.support)}$, but its range of integration starts or ends where the "
                   "first of the shifted supports does, which depends on the ordering of $\\mu$: no route carries "
                   "that case split for this class (the piecewise route does it for exponential-polynomial pieces).")
        else:
            why = (f"for n = {n} no route's structure fits (each route's reason is listed); the integrand "
                   f"$\\phi(\\varepsilon)\\prod_{{j\\geq2}}\\Phi(\\Delta_j+\\varepsilon)$ is {kind} in $\\varepsilon$, "
                   "but no route integrates it beyond n = 2.")
        return _failed(d, why)
    D = [sp.Symbol(f"Delta_{k}", real=True) for k in range(2, n + 1)]
    # what sympy gets for the first derivative dp_1/dDelta_2 (the simplest integral left)
    integrand = fam.pdf(_EPS) * fam.pdf(D[0] + _EPS) * sp.Mul(*[fam.cdf(Dk + _EPS) for Dk in D[1:]])
    try:
        with time_limit(SYMPY_SECONDS, "sympy's Risch integrator"):
            attempt = sp.integrate(integrand, _EPS, risch=True)
        stop = (f"sympy's Risch integrator returns $\\int\\phi(\\varepsilon)\\phi(\\Delta_2+\\varepsilon)"
                f"\\prod_{{k\\geq3}}\\Phi(\\Delta_k+\\varepsilon)\\,d\\varepsilon$ unevaluated"
                if attempt.has(sp.Integral) else f"sympy's Risch integrator gives ${sp.latex(attempt)}$")
    except TimeLimit as exc:
        stop = f"time limit: {exc}"
    except (NotImplementedError, ValueError, TypeError) as exc:
        stop = f"sympy's Risch integrator raises {type(exc).__name__}"
    if fam.name == "normal":
        why = (f"for n = {n}, $p_1$ is a {n - 1}-variate normal orthant probability with correlations 1/2; no "
               "elementary or Owen-T form is known for n >= 4.")
    elif fam.name in ("cauchy", "student_t"):
        why = (f"heavy tails: for n >= 3 the product of {n - 1} CDFs with arctangent / hypergeometric terms has no "
               "known elementary antiderivative against the density.")
    else:
        why = f"no closed-form route for {fam.name} with n = {n}."
    return _failed(d, f"{why} Tried: differentiate in $\\Delta_2=\\mu_1-\\mu_2$; {stop}.")


# ---------------------------------------------------------------------------
# symbolic n
# ---------------------------------------------------------------------------


def _general(fam):
    from . import softmax as sm

    name = None if fam.custom else fam.name
    tried = []
    if fam.custom:
        from .routes import run

        routed, tried = run(fam, "general")
        if routed is not None:
            return routed
    if name == "gumbel":
        src = sm.softmax_derivation()
        d = Derivation(src.lhs, src.steps[0].rhs, src.steps[0].reason, title="gumbel, symbolic n",
                       definitions=src.definitions, sampler=src.sampler)
        d.steps = list(src.steps)
        d.conditions = src.conditions
        d.symbols = (sm.mu,)
        d.status = "closed"
        d.closed_form = None
        d.reason = "softmax for every n: $p_i=e^{\\mu_i}/\\sum_j e^{\\mu_j}$ (the symbolic-n derivation)."
        return d
    n, i, j, mu, eps = sm.n, sm.i, sm.j, sm.mu, sm.eps
    Phi, phi = sm.Phi, sm.phi
    start = sp.Integral(phi(eps) * product_except(Phi(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo))
    d = Derivation(sm.p_i, start, "the probability that class $i$ wins, symbolic $n$", title=f"{name or fam.name}, symbolic n",
                   sampler=sm._sampler, points=3)
    y = sp.Symbol("y", real=True)
    cdf = sp.Lambda(y, fam.cdf(y))
    pdf = sp.Lambda(y, fam.pdf(y))
    d.step(sp.Integral(fam.pdf(eps) * product_except(fam.cdf(mu[i] - mu[j] + eps), j, i, n), (eps, -sp.oo, sp.oo)),
           f"{fam.name} noise", subs=lambda e: e.replace(Phi, cdf).replace(phi, pdf), checks=("identical", "simplify"))
    d.symbols = (mu,)
    d.closed_form = None
    per_n = {
        "gumbel_min": ("closed", "for every n: inclusion-exclusion over the subsets of $[n]\\setminus\\{i\\}$ "
                       "($2^{n-1}$ terms), derived by sympy for each concrete n."),
        "exponential": ("closed", "for every n: $\\int_M^\\infty$ of a product of $1-e^{-(x-\\mu_j)}$, $M=\\max\\mu$, "
                        "expanded over subsets ($2^{n-1}$ terms), derived by sympy for each concrete n."),
        "uniform": ("closed", "for every n: piecewise polynomial in each ordering of $\\mu$ (split at $\\mu_k+1$), "
                    "derived by sympy for each concrete n."),
        "laplace": ("closed", "for every n: piecewise exponential in each ordering of $\\mu$ (split at every "
                    "$\\mu_j$), derived by sympy for each concrete n."),
        "logistic": ("closed", "for every n with distinct $\\mu$: $u=e^{-\\varepsilon}$ gives a rational integral; "
                     "partial fractions give logarithms (sympy carries it out per concrete n)."),
    }
    if name in per_n:
        from .general_n import continue_general

        if not continue_general(d, fam):
            d.status, d.reason = per_n[name]
        return d
    if name == "normal":
        why = "no closed form for symbolic n: already n = 4 has none (a trivariate normal orthant probability)."
    elif name in ("cauchy", "student_t"):
        why = "no closed form for symbolic n: already n = 3 has none (heavy tails, see the n = 3 attempt)."
    else:
        why = "no closed-form route for symbolic n for this family."
        d.extra["routes_tried"] = [str(t) for t in tried]
    return _failed(d, why)
