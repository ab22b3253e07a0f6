"""Route (c): piecewise exponential-polynomial CDFs, exact for every concrete n.

If the CDF is, on finitely many intervals ``[b_k, b_{k+1})``, a finite sum of
terms ``c x^m e^{lambda x}`` (uniform on any interval, triangular,
trapezoidal, power function ``x^k``, exponential of any rate, Laplace and
asymmetric Laplace, Erlang, ...), then so is the density, and in the form
``x = mu_1 + eps`` of (eq:pi)

    p_1 = Int phi(x - mu_1) prod_{j>1} F(x - mu_j) dx

the integrand is, on the intersection of the intervals
``[mu_j + b_k, mu_j + b_{k+1})`` picked for each factor, a product of such
sums.  Summing over the picks (the pieces where a factor vanishes are
dropped):

    p_1 = sum_picks Int_{L}^{max(L, U)} prod_j f_j(x - mu_j) dx,
    L = max_j (mu_j + lower end),  U = min_j (mu_j + upper end),

and ``Int_L^{max(L,U)}`` is 0 when the intersection is empty.  The product over
``j > 1`` is symmetric in ``mu_2..mu_n``, so they are taken in descending order
(:func:`order_statistics`); then the piece index of ``F(x - o_j)`` cannot decrease
with j at any x, and only those picks are summed (:func:`_picks`: 105 instead of 768
for the trapezoid at n = 5).  A pick whose
pieces are all polynomials is integrated by the closed Newton-Cotes rule of
its degree (exact, the product left unexpanded: :func:`_polynomial_integral`);
otherwise sympy gives each antiderivative ``A`` (termwise: ``Int x^m
e^{lambda x} dx``), so the pick gives ``A(max(L, U)) - A(L)`` (``A(+-oo) = 0``
for the decaying terms).  The formula holds for every ordering of ``mu``
(Max/Min carry the case split) and is exact at rational ``mu``.

>>> import sympy as sp, derive
>>> x = sp.Symbol("x", real=True)
>>> d = attempt(derive.family_from_cdf(x**2, x, sp.Interval(0, 1)), 2)
>>> d.closed_form[0].subs({d.symbols[0]: sp.Rational(1, 2), d.symbols[1]: 0})
89/96
"""

from __future__ import annotations

import functools
import itertools

import sympy as sp

from . import NotApplicable

NAME = "piecewise"

#: largest number of piece combinations (products of pieces per factor) carried out
MAX_COMBINATIONS = 4000


def _linear_root(g, x):
    g = sp.expand(g)
    if not g.has(x):
        return None
    if not g.is_polynomial(x) or sp.degree(g, x) != 1:
        raise ValueError(f"a kink condition {g} is not linear in x")
    return sp.nsimplify(-g.coeff(x, 0) / g.coeff(x, 1))


def breakpoints(expr, x):
    """Exact, sorted points where the Piecewise / Abs / Min / Max / Heaviside in ``expr`` switch."""
    pts = set()
    for rel in expr.atoms(sp.Rel):
        r = _linear_root(rel.lhs - rel.rhs, x)
        if r is not None:
            pts.add(r)
    for f in expr.atoms(sp.Abs, sp.Heaviside, sp.sign):
        r = _linear_root(f.args[0], x)
        if r is not None:
            pts.add(r)
    for f in expr.atoms(sp.Min, sp.Max):
        for u, v in itertools.combinations(f.args, 2):
            r = _linear_root(u - v, x)
            if r is not None:
                pts.add(r)
    if any(not p.is_real or not p.is_finite for p in pts):
        raise ValueError("a kink is not a finite real number")
    return sorted(pts, key=lambda p: float(p))


def exppoly_terms(f, x):
    """``[(c, m, lam)]`` with ``f = sum c x^m e^{lam x}`` (``lam`` real numbers, ``c`` free of x), or None."""
    f = sp.expand(sp.powsimp(sp.expand(sp.sympify(f).rewrite(sp.exp)), combine="exp"))
    if f == 0:
        return []
    out = {}
    for term in sp.Add.make_args(f):
        coef, rest = term.as_independent(x, as_Add=False)
        m, lam = 0, sp.Integer(0)
        for fac in sp.Mul.make_args(rest):
            if fac == x:
                m += 1
            elif fac.is_Pow and fac.base == x and fac.exp.is_Integer and fac.exp > 0:
                m += int(fac.exp)
            elif isinstance(fac, sp.exp) or (fac.is_Pow and fac.base == sp.E):
                arg = sp.expand(fac.exp if fac.is_Pow else fac.args[0])
                if not arg.is_polynomial(x) or sp.degree(arg, x) > 1:
                    return None
                k1, k0 = arg.coeff(x, 1), arg.coeff(x, 0)
                if not k1.is_number or not k1.is_real:
                    return None
                lam += k1
                coef *= sp.exp(k0)
            elif fac != 1:
                return None
        if coef.has(x):
            return None
        out[(m, lam)] = out.get((m, lam), 0) + coef
    return [(c, m, lam) for (m, lam), c in out.items() if sp.expand(c) != 0]


def decompose(fam):
    """``[(lo, hi, cdf_piece, pdf_piece)]`` over the real line, each piece exp-poly; or a reason string."""
    from ..closed import _resolve_on_segment

    x = fam.symbol
    F = fam.cdf(x).rewrite(sp.Piecewise)
    try:
        bps = sorted(set(breakpoints(F, x)) | {sp.nsimplify(b) for b in fam.breakpoints}, key=float)
    except ValueError as exc:
        return str(exc)
    if not bps:
        return "the CDF has no kinks: an exponential-polynomial on the whole line is not a CDF"
    edges = [-sp.oo] + bps + [sp.oo]
    pieces = []
    for lo, hi in zip(edges, edges[1:]):
        mid = (lo + hi) / 2 if lo.is_finite and hi.is_finite else (hi - 1 if lo == -sp.oo else lo + 1)
        try:
            f = _resolve_on_segment(F, x, {x: mid})
        except Exception as exc:  # sympy raises many types on undecidable conditions
            return f"cannot resolve the CDF on ({lo}, {hi}): {exc}"
        f = sp.simplify(f)
        if exppoly_terms(f, x) is None:
            return f"on ({lo}, {hi}) the CDF ${sp.latex(f)}$ is not a finite sum of $x^k e^{{\\lambda x}}$"
        pieces.append((lo, hi, f, sp.diff(f, x)))
    return pieces


def _antiderivative(m, lam, x, cache):
    key = (m, lam)
    if key not in cache:
        cache[key] = x ** (m + 1) / (m + 1) if lam == 0 else sp.integrate(x**m * sp.exp(lam * x), x)
    return cache[key]


def _integral(terms, x, L, U, cache):
    """``Int_L^U sum c x^m e^{lam x} dx`` with ``L``/``U`` possibly infinite (decay checked)."""
    out = []
    for c, m, lam in terms:
        A = _antiderivative(m, lam, x, cache)
        if U == sp.oo:
            if not lam.is_negative:
                raise ValueError("a term does not decay at +oo")
            out.append(-c * A.subs(x, L))
        elif L == -sp.oo:
            if not lam.is_positive:
                raise ValueError("a term does not decay at -oo")
            out.append(c * A.subs(x, U))
        else:
            out.append(c * (A.subs(x, U) - A.subs(x, L)))
    return sp.Add(*out)


def _shifted(terms, m):
    """``{(r, lam): coef}`` of ``f(x - m)`` from the terms of ``f``.

    ``c (x - m)^k e^{lam (x - m)} = sum_r c C(k, r) (-m)^(k-r) e^{-lam m} x^r e^{lam x}``
    (binomial theorem), so the shifted piece is again exp-poly in ``x``.
    """
    out = {}
    for c, k, lam in terms:
        base = c * sp.exp(-lam * m)
        for r in range(k + 1):
            out[(r, lam)] = out.get((r, lam), 0) + base * sp.binomial(k, r) * (-m) ** (k - r)
    return out


def _product_terms(factors):
    """``[(c, r, lam)]`` of the product of exp-poly factors given as ``{(r, lam): c}``.

    ``x^a e^{l x} x^b e^{l' x} = x^(a+b) e^{(l+l') x}``: the product is the
    convolution of the term tables; coefficients (polynomials in mu times
    exponentials of mu) are expanded once at the end.
    """
    acc = {(0, sp.Integer(0)): sp.Integer(1)}
    for f in factors:
        nxt = {}
        for (r1, l1), c1 in acc.items():
            for (r2, l2), c2 in f.items():
                key = (r1 + r2, l1 + l2)
                nxt[key] = nxt.get(key, 0) + c1 * c2
        acc = nxt
    out = []
    for (r, lam), c in acc.items():
        c = sp.powsimp(sp.expand(c), combine="exp")
        if c != 0:
            out.append((c, r, lam))
    return out


class Max(sp.Max):
    """``Max`` that stays unevaluated until every argument is a number.

    sympy's ``Max`` of k symbolic arguments compares them pairwise whenever it
    is rebuilt (``subs`` rebuilds it once per substituted symbol): O(k^2)
    undecidable comparisons per node.  The limits here are maxima of
    ``mu_j + b_k``, which sympy cannot order anyway; at numbers ``Max``
    evaluates as usual.  The arguments keep the order they are given in
    (deterministic: the order the pieces are enumerated).  Named ``Max`` so that
    every printer (str, LaTeX, lambdify) treats it as sympy's.
    """

    def __new__(cls, *args, **options):
        args = [sp.sympify(a) for a in args]
        if options.pop("evaluate", True) and all(a.is_number for a in args):
            return cls.__base__(*args)
        obj = sp.Expr.__new__(cls, *args)
        obj._argset = frozenset(args)
        return obj


class Min(sp.Min):
    """``Min`` counterpart of :class:`Max`."""

    __new__ = Max.__new__


def relabel(expr, rep):
    """``expr.xreplace(rep)`` with each distinct subexpression rebuilt once.

    The Newton-Cotes forms repeat their limits ``L``, ``U`` in every factor of
    every node (hundreds of occurrences per piece, a handful of distinct
    subexpressions); ``xreplace`` rebuilds every occurrence, this rebuilds every
    distinct node once (a memo keyed by the node).

    >>> a, b = sp.symbols("a b")
    >>> relabel(a * Max(a, b + 1), {a: b, b: a})
    b*Max(b, a + 1)
    """
    memo = dict(rep)

    def go(e):
        out = memo.get(e)
        if out is None:
            out = e.func(*[go(a) for a in e.args]) if e.args else e
            memo[e] = out
        return out

    return go(expr)


def _max(args):
    return args[0] if len(args) == 1 else Max(*args)


def _min(args):
    return args[0] if len(args) == 1 else Min(*args)


@functools.lru_cache(maxsize=None)
def newton_cotes(d):
    """Weights ``w_0..w_d`` (exact rationals) of the closed (d+1)-point Newton-Cotes rule on [0, 1].

    ``Int_0^1 g = sum_k w_k g(k/d)`` for every polynomial ``g`` of degree <= d: the
    weights solve ``sum_k w_k (k/d)^m = 1/(m+1)``, m = 0..d (an interpolatory rule).

    >>> newton_cotes(2)
    (1/6, 2/3, 1/6)
    """
    if d == 0:
        return (sp.Integer(1),)
    nodes = [sp.Rational(k, d) for k in range(d + 1)]
    V = sp.Matrix([[t**m for t in nodes] for m in range(d + 1)])
    rhs = sp.Matrix([sp.Rational(1, m + 1) for m in range(d + 1)])
    return tuple(V.LUsolve(rhs))


def _polynomial_integral(polys, L, U):
    """``Int_L^U prod_k P_k(x) dx`` exactly, the product kept unexpanded.

    ``polys`` are ``(P, degree)`` with ``P`` a one-argument Lambda; the product has
    degree ``D = sum of the degrees``.  The closed (d+1)-point Newton-Cotes rule
    ``(U - L) sum_k w_k prod P(L + k (U - L)/d)`` is exact for degree <= d, and for
    even d >= 2 also for degree d + 1 (the rule is symmetric, so it integrates the odd
    power about the midpoint to 0): d = D, or D - 1 when D >= 3 is odd.  Expanding the
    product instead gives hundreds of monomials in the scores per piece at n = 5 (a
    triangular piece: 810); here the size is ``(d + 1) n`` small factors.
    """
    D = sum(deg for _, deg in polys)
    d = D - 1 if D >= 3 and D % 2 else D
    w = newton_cotes(d)
    h = U - L
    nodes = [L] + [L + sp.Rational(k, d) * h for k in range(1, d + 1)]
    return h * sp.Add(*[wk * sp.Mul(*[P(t) for P, _ in polys]) for wk, t in zip(w, nodes)])


def order_statistics(values):
    """``[o_1, ..., o_m]``, the values sorted descending, written with :class:`Max` / :class:`Min`.

    The k-th largest of m numbers is the largest ``v`` with at least k of them ``>= v``:
    ``o_k = max over k-subsets S of min(S)``, or dually ``min over (m-k+1)-subsets S of max(S)``;
    the smaller of the two families of subsets is used (``C(m, k)`` terms).

    >>> a, b, c = sp.symbols("a b c")
    >>> [e.subs({a: 2, b: 7, c: 5}) for e in order_statistics([a, b, c])]
    [7, 5, 2]
    """
    m = len(values)
    out = []
    for k in range(1, m + 1):
        if k <= m - k + 1:
            out.append(_max([_min(list(S)) for S in itertools.combinations(values, k)]))
        else:
            out.append(_min([_max(list(S)) for S in itertools.combinations(values, m - k + 1)]))
    return out


def _picks(dens, cdfs, n):
    """The piece combinations that can meet when ``F`` is applied at descending shifts ``o_1 >= ... >= o_{n-1}``.

    At any x, ``x - o_1 <= x - o_2 <= ...``: the pieces of ``F(x - o_j)`` (ordered along the line)
    have nondecreasing index in j, so a combination with a decreasing index is empty.  Kept:
    one density piece times a nondecreasing tuple of CDF pieces, ``|dens| C(|cdfs| + n - 2, n - 1)``
    combinations instead of ``|dens| |cdfs|^(n-1)``.
    """
    return [(k, t) for k in range(len(dens))
            for t in itertools.combinations_with_replacement(range(len(cdfs)), n - 1)]


def attempt(fam, n):
    from .. import closed

    if n == "general":
        return NotApplicable(NAME, "exact for every concrete n (one formula per n, size growing like k^n); "
                             "no symbolic-n formula")
    pieces = decompose(fam)
    if isinstance(pieces, str):
        return NotApplicable(NAME, pieces)
    x = closed._X
    syms = closed.mu_symbols(n)
    dens, cdfs = [], []
    for lo, hi, f, g in pieces:
        f, g = sp.expand(f.subs(fam.symbol, x)), sp.expand(g.subs(fam.symbol, x))
        if g != 0:
            dens.append((lo, hi, g, exppoly_terms(g, x)))
        if f != 0:
            cdfs.append((lo, hi, f, exppoly_terms(f, x)))
    picks = _picks(dens, cdfs, n)
    if len(picks) > MAX_COMBINATIONS:
        return NotApplicable(NAME, f"{len(picks)} piece combinations at n = {n} (limit {MAX_COMBINATIONS})")
    d = closed._new(fam, syms)
    closed._to_x_form(d, syms[0])
    y = sp.Dummy("y")
    # the other scores enter only through the symmetric product prod_{j>1} F(x - mu_j): take them in
    # descending order, o_1 >= ... >= o_{n-1} (order statistics of mu_2..mu_n)
    shifts = [syms[0]] + order_statistics(list(syms[1:]))

    def shifted(piece, m):
        # (lo, hi, exp-poly term table, degree or None, Lambda, the piece at x - m) of a piece moved to m
        lo, hi, f, t = piece
        poly = all(lam == 0 for _, _, lam in t)
        return (lo + m if lo.is_finite else lo, hi + m if hi.is_finite else hi, _shifted(t, m),
                max(k for _, k, _ in t) if poly else None, sp.Lambda(y, f.subs(x, y - m)), f.subs(x, x - m))

    table = [[shifted(p, m) for p in (dens if j == 0 else cdfs)] for j, m in enumerate(shifts)]
    cache = {}
    parts, values = [], []
    for k, t in picks:
        pick = [table[0][k]] + [table[j + 1][c] for j, c in enumerate(t)]
        lows, highs = [pick[0][0]], [pick[0][1]]
        # factors in the same piece: the largest shift bounds from below, the smallest from above
        for _, group in itertools.groupby(range(1, n), key=lambda j: t[j - 1]):
            group = list(group)
            lows.append(pick[group[0]][0])
            highs.append(pick[group[-1]][1])
        lows = [lo for lo in lows if lo.is_finite]
        highs = [hi for hi in highs if hi.is_finite]
        L = _max(lows) if lows else -sp.oo
        U = _min(highs) if highs else sp.oo
        if L.is_finite and U.is_finite:
            U = Max(L, U)
        parts.append(sp.Integral(sp.Mul(*[p[5] for p in pick]), (x, L, U)))
        if L.is_finite and U.is_finite and all(p[3] is not None for p in pick):
            values.append(_polynomial_integral([(p[4], p[3]) for p in pick], L, U))
            continue
        terms = _product_terms([p[2] for p in pick])
        try:
            values.append(_integral(terms, x, L, U, cache))
        except ValueError as exc:
            return NotApplicable(NAME, f"{exc} (the pieces do not give an integrable product)")
    d.step(sp.Add(*parts), "the product over $j>1$ is symmetric in $\\mu_2..\\mu_n$: take them in descending "
           "order $o_1\\geq\\dots\\geq o_{n-1}$ ($o_k$ the largest minimum of $k$ of them); split the line at "
           "every $o_j+b_k$ ($b_k$ the kinks of $F$): on each intersection $[L, U]$ of pieces ($L$ the largest "
           "lower end, $U$ the smallest upper end) the integrand is a product of sums of $x^m e^{\\lambda x}$, "
           "and only combinations whose pieces of $F(x-o_j)$ do not move left as $j$ grows can meet; an empty "
           "intersection has $\\max(L,U)=L$", checks=("pointwise", "numeric"))
    value = sp.Add(*values)
    d.step(value, "integrate each piece: a product of polynomials of total degree $D$ by the $(D+1)$-point "
           "Newton-Cotes rule (exact for degree $\\leq D$, the product left unexpanded), products with "
           "exponentials termwise ($\\int x^m e^{\\lambda x}dx$ by sympy)", checks=("numeric",))
    d.symbols = syms
    d.closed_form = [value] + [relabel(value, {syms[0]: m, m: syms[0]}) for m in syms[1:]]
    d.status = "closed"
    d.extra["pieces"] = len(parts)
    d.reason = (f"piecewise exponential-polynomial CDF ({len(pieces)} pieces): exact, one formula for every "
                f"ordering of $\\mu$ ({len(parts)} interval pieces at n = {n}, the other scores in descending "
                "order and the limits written with max/min).")
    return d
