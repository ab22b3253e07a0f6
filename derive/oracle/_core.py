"""The oracle's computation for ``n >= 2`` finite scores.

Max-CDF form, standardized and shifted so that the
largest score is 0 (shift invariance, ``p(mu; s) = p(mu/s; 1)``):

    d_u = (mu_u - max mu) / s,     F(x) = prod_v Phi(x - d_v),
    p_u = int phi(x - d_u) prod_{v != u} Phi(x - d_v) dx
        = int exp(l_u(x)) dx,  l_u = log phi(x - d_u) + log F(x) - log Phi(x - d_u).

``log F`` costs one log-CDF per distinct score and node, shared by all
classes.  The integrand is exponentiated only at the end (``exp(l_u)``),
so ``p_u`` far below 1e-300 keeps its relative precision.

Huge spreads (standardized spread > 1e5, or when a float64-planned run
fails its checks): the reconnaissance runs in mpmath (golden-section modes,
no float overflow of ``-d^2/2``, unit widths resolved at |x| ~ 1e300), the
working precision gains ``max(log10|log p|, log10(spread / width))``
digits, and breakpoints reach the tail cuts geometrically from every mode
and every score (heavy tails keep mass at every scale up to the spread).
Gumbel beyond the float range is the exact softmax, checked at two
precisions.

Procedure: float64 reconnaissance (:mod:`._prepass`: every local maximum
of every integrand on a grid graded around all scores) -> breakpoints at
the kinks ``d_v + b``, at the support ends, around each located mode and,
for families that are not log-concave (heavy tails), around every score
by construction (geometric away from each centre), end pieces reaching
+-inf (mapped to finite ones, so no tail is dropped) -> adaptive Gauss-Legendre (rule A, mpmath's
degree-doubling estimate, relative to each class's own p) -> rule B
(tanh-sinh on small problems, otherwise Gauss-Legendre of twice the degree
on the same pieces) at 32 more bits with the scores re-rounded at that
precision -> A and B must agree to ``dps + 1`` digits, A's estimate must be
below ``10^-(dps+4) p``, ``sum p = 1`` to ``dps + 1`` digits -> otherwise
:class:`OracleError`.  Classes that cannot win (bounded support, gap at
least the support width) are exactly 0, decided in exact arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath as mp
import numpy as np
import sympy as sp

from ._mpfamily import kernels_for, sympy_to_mpf
from ._prepass import LOG_CONCAVE, reconnoitre, reconnoitre_mp, soft_breakpoints, soft_breakpoints_mp
from ._quadrature import PowerPiece, gauss_legendre_adaptive, gauss_legendre_fixed, piece_ends, tanh_sinh
from .errors import OracleError

__all__ = ["compute", "frac_to_mpf", "LAST_RUN"]

#: Diagnostics of the last computation (method, pieces, nodes, seconds).
LAST_RUN: dict = {}

_LN10 = math.log(10.0)
#: largest standardized spread for the float64 reconnaissance (above: mpmath)
_FLOAT_SCAN_MAX = 10**5


def frac_to_mpf(q: Fraction):
    """Fraction -> mpf, correctly rounded at the current precision."""
    return mp.mpf(q.numerator) / q.denominator if q.denominator != 1 else mp.mpf(q.numerator)


def _fmt_mu(mu_fracs):
    def one(q):
        if isinstance(q, float):
            return str(q)
        f = float(q) if abs(q.numerator).bit_length() < 1000 else None
        return repr(f) if f is not None and Fraction(f) == q else str(q)

    s = ", ".join(one(q) for q in mu_fracs[:12])
    return "[" + s + (", ..." if len(mu_fracs) > 12 else "") + "]"


def _make_mp_evaluator(kern, D, mult, targets, cut):
    """Node list -> per node, per target ``exp(l_u(x))`` (mpmath kernels).

    ``cut[t]``: below this log value the integrand is negligible for class
    ``t`` (more than dps + 15 digits under its rough p) and returned as 0.
    """
    U = len(D)
    ninf_val = mp.ninf

    def evaluate(xs):
        out = []
        for x in xs:
            # pieces grow geometrically away from the modes, so a node at x
            # stands for a length ~ 1 + |x|: compare exp(l) (1 + |x|) with the cut
            lx = mp.log(1 + abs(x))
            lcs = [kern.logcdf(x - D[v]) for v in range(U)]
            ninf = 0
            fin = []
            for m, v in zip(mult, lcs):
                if v == ninf_val:
                    ninf += m
                else:
                    fin.append(v * m if m != 1 else v)
            S = mp.fsum(fin)
            row = []
            for j, t in enumerate(targets):
                lct = lcs[t]
                if lct == ninf_val:
                    other, rest = ninf - 1, S
                else:
                    other, rest = ninf, S - lct
                if other > 0:
                    row.append(mp.mpf(0))
                    continue
                lp = kern.logpdf(x - D[t])
                if lp == ninf_val:
                    row.append(mp.mpf(0))
                    continue
                e = lp + rest
                row.append(mp.exp(e) if e + lx > cut[j] else mp.mpf(0))
            out.append(row)
        return out

    return evaluate


def _exact_zero(uniq, fam):
    """Classes with p = 0 exactly: bounded support, mu_u + hi <= max mu + lo."""
    sup = fam.support
    if sup.start.is_infinite or sup.end.is_infinite:
        return [False] * len(uniq)
    width = sup.end - sup.start
    top = uniq[-1]
    out = []
    for q in uniq:
        gap = sp.Rational(top - q)
        out.append(bool((gap - width).is_nonnegative))
    return out


def _evaluator(kern, D, mult, targets, cut):
    from . import _flint_eval

    ev = _flint_eval.make_evaluator(kern, D, mult, targets, cut)
    if ev is not None:
        return ev
    return _make_mp_evaluator(kern, D, mult, targets, cut)


def _gumbel_softmax(uniq, mult, mu_fracs, index, scale, spread, dps, label, t0):
    """Gumbel noise: ``p_u = e^{d_u} / sum_v m_v e^{d_v}`` exactly (the softmax,
    the Gumbel derivation), used when the spread is beyond the float scan.

    ``d_u`` needs ``log10(spread)`` extra digits to be known to ``dps``
    absolute digits, so that ``e^{d_u}`` has ``dps`` relative ones.  Checked
    like the quadrature: two evaluations (scores re-rounded 32 bits apart)
    must agree to ``dps + 1`` digits.
    """
    import time

    top = uniq[-1]
    vals = []
    for extra in (0, 32):
        bits = int((dps + 12 + int(mp.log10(spread + 1))) * 3.33) + 16 + extra
        with mp.workprec(bits):
            sc = sympy_to_mpf(scale)
            D = [frac_to_mpf(q - top) / sc for q in uniq]
            Z = mp.fsum(m * mp.exp(d) for m, d in zip(mult, D))
            vals.append([mp.exp(d) / Z for d in D])
    agree = mp.mpf(10) ** (-(dps + 1))
    with mp.workprec(bits):
        for u, (a, b) in enumerate(zip(*vals)):
            if not abs(a - b) <= agree * b:
                raise OracleError(f"{label}: softmax at two precisions disagrees for class {u}: {a} vs {b}")
    LAST_RUN.clear()
    LAST_RUN.update(family=label, n=len(mu_fracs), dps=dps, method="gumbel: exact softmax (two precisions)",
                    pieces=0, seconds=time.perf_counter() - t0)
    return [vals[1][index[q]] for q in mu_fracs]


def _make_survival_evaluator(kern, D, mult, targets, cut):
    """Node list -> per node, per target the survival-form integrand of ``p_u``.

    ``p_u = P[d_u + eps_u > M_u]`` with ``M_u`` the largest of the other scores'
    noisy values (the other copies of ``d_u`` included), so

        p_u = int f_M(x) S(x - d_u) dx,   f_M = G_u sum_w m'_w phi(x - d_w) / Phi(x - d_w),
        G_u(x) = prod_w Phi(x - d_w)^m'_w,  m'_w = m_w - [w = u],  S = 1 - Phi:

    a different integrand from the max-CDF form (the density sits on the other
    classes, the survival function on ``u``), every term positive.  The ratios
    ``r_w = phi/Phi`` are shared by all targets; a copy with ``Phi = 0`` at ``x``
    leaves only its own term when it is the only one, and nothing otherwise.
    """
    U = len(D)
    ninf_val = mp.ninf

    def evaluate(xs):
        out = []
        for x in xs:
            lx = mp.log(1 + abs(x))
            lcs = [kern.logcdf(x - D[v]) for v in range(U)]
            lps = [kern.logpdf(x - D[v]) for v in range(U)]
            r = [mp.exp(p - c) if c != ninf_val and p != ninf_val else None for p, c in zip(lps, lcs)]
            row = []
            for j, t in enumerate(targets):
                m = list(mult)
                m[t] -= 1
                zeros = [v for v in range(U) if m[v] and lcs[v] == ninf_val]
                lsf = kern.logsf(x - D[t])
                if lsf == ninf_val or len(zeros) > 1 or (zeros and m[zeros[0]] > 1):
                    row.append(mp.mpf(0))
                    continue
                S = mp.fsum(m[v] * lcs[v] for v in range(U) if m[v] and lcs[v] != ninf_val)
                if zeros:
                    w = zeros[0]
                    e = lps[w] + S + lsf if lps[w] != ninf_val else ninf_val
                else:
                    H = mp.fsum(m[w] * r[w] for w in range(U) if m[w] and r[w] is not None)
                    e = mp.log(H) + S + lsf if H > 0 else ninf_val
                row.append(mp.exp(e) if e != ninf_val and e + lx > cut[j] else mp.mpf(0))
            out.append(row)
        return out

    return evaluate


def _staggered(accepted, fixed, lo, hi, lowest):
    """Pieces whose ends are ``fixed`` and the midpoints of ``accepted``'s finite pieces.

    ``fixed`` holds the scores and the kinks: every factor ``Phi(x - d_v)``,
    ``phi(x - d_v)``, ``S(x - d_u)`` changes on the unit scale around its
    score, so a score inside a piece much longer than 1 (huge spreads, where
    the pieces grow geometrically) is a step at that piece's scale and no
    degree resolves it.  Every other end of ``accepted`` is replaced by the
    midpoints on either side, so no node is shared and a hump that one
    partition's rule under-resolves sits in the middle of a piece of the other.

    Left tail (``lo = -inf``, ``lowest`` = the smallest score ``d_min``): the
    survival integrand of ``u`` lacks the factor ``phi(x - d_u)`` that makes
    the max-CDF one negligible beyond the reconnaissance's left cut ``b``
    (there ``S(x - d_u) ~ 1`` and ``f_M`` decays like the other classes'
    densities), so with algebraic tails its end piece ``(-inf, b]`` carries
    mass -- a factor ``(d_min - x)^nu`` more than the max-CDF form's, e.g.
    3e-27 of ``p_u`` for student_t(3) at ``mu = (1e10, 0, 0.5, -1)``.  The rule
    maps that piece with ``x = b - c (1 + t)/(1 - t)``, ``c = max(1, |b|)``,
    which makes ``(d_v - x)^-k`` smooth in ``t`` only if ``d_v - b ~ c``; a
    tail centred at ``d_min ~ -1e10`` seen from ``d_min - b ~ 3e4`` is a spike
    of width ``(d_min - b)/c`` at ``t = -1`` that no node reaches (all degrees
    agree on ~0 and the estimate passes).  So the partition continues
    geometrically, ``d_min - g 2^k``, until ``d_min - b >= |d_min|``: then
    ``d_v - b`` lies in ``[c/2, c]`` for every score, and
    ``d_v - x = c (alpha (1 - t) + 1 + t)/(1 - t)`` with ``alpha`` in ``[1/2, 1]``
    has no zero near ``[-1, 1]``: a tail ``(d_v - x)^-k`` is a polynomial-like
    function of ``t`` times the Jacobian, which Gauss-Legendre integrates to
    its estimate.  (The right end piece is centred at the top score 0, the
    map's own origin.)
    """
    pts = set(fixed)
    for piece, _ in accepted:
        a, b = piece_ends(piece)
        if not (mp.isinf(a) or mp.isinf(b)):
            pts.add((a + b) / 2)
    inner = sorted(x for x in pts if lo < x < hi)
    if mp.isinf(lo) and inner:
        g = max(mp.mpf(1), lowest - inner[0])
        ext = []
        while g < -lowest:
            g *= 2
            ext.append(lowest - g)
        inner = ext[::-1] + inner
    ends = [lo] + inner + [hi]
    return list(zip(ends[:-1], ends[1:]))


def _survival_check(kern, D, mult, targets, values, cut, accepted, dps, prec, label, mu_fracs):
    """Rule C for entries too small for the sum check (``m_u p_u < 10^-(dps-3)``).

    The sum check bounds a class's absolute error by ``10^-(dps+1)``: below
    ``10^-(dps-3)`` it vouches for fewer than 4 of its digits, and rules A and B
    share their partition, so a hump both under-resolve would pass.  Rule C
    integrates a different integrand (the survival form,
    :func:`_make_survival_evaluator`) with its own adaptive Gauss-Legendre on a
    staggered partition (:func:`_staggered`); it must agree with B to
    ``dps + 1`` digits, otherwise :class:`OracleError`.  The two forms put
    their narrow humps in different places: the max-CDF form has
    ``phi(x - d_u)`` (a hump at ``d_u``) times slowly varying CDFs of the
    others, the survival form has ``phi(x - d_w)`` (humps at the other scores)
    times the slowly varying ``S(x - d_u)``, so a region whose hump one form
    loses carries smooth mass in the other.

    Run where an integrand can have several humps: families that are not
    log-concave (heavy tails, user families).  For a log-concave family each
    ``l_u`` is concave, its mass is the one hump around the mode that the
    reconnaissance locates and the pieces grade around, so there is no second
    region to lose.
    """
    fixed = {d + b for d in D for b in kern.breakpoints} | set(D)
    pieces = _power_pieces(_staggered(accepted, fixed, kern.lo, kern.hi, min(D)), _singular_kinks(kern, D))
    from . import _flint_eval

    cuts = [mp.mpf(c) for c in cut]
    ev = _flint_eval.make_survival_evaluator(kern, D, mult, targets, cuts) or \
        _make_survival_evaluator(kern, D, mult, targets, cuts)
    tol = [v * mp.mpf(10) ** (-(dps + 6)) for v in values]
    budget = len(pieces) + min(4000, max(100, 200_000 // len(targets)))
    C, errC, _ = gauss_legendre_adaptive(pieces, ev, len(targets), tol, prec, max_pieces=budget)
    agree = mp.mpf(10) ** (-(dps + 1))
    for t, v, c, e in zip(targets, values, C, errC):
        if not (abs(v - c) <= agree * v and e <= agree * v):
            raise OracleError(
                f"{label}: the survival form disagrees with the max-CDF form for class {t} "
                f"(mu = {_fmt_mu(mu_fracs)}, dps = {dps}): {mp.nstr(c, dps + 5)} vs {mp.nstr(v, dps + 5)}"
            )


def _singular_kinks(kern, D):
    """``{(x, side): (anchor, k, tag)}`` for the kinks ``d_v + lo`` (side +1: the
    piece to the right gets the end map) and ``d_v + hi`` (side -1) of a density
    with a non-analytic power at that end (``kern.end_power``), where ``x`` is the
    kink rounded as a piece end and ``anchor`` the exact sum; ``tag = (v, side)``."""
    out = {}
    for side, end, k in ((1, kern.lo, kern.end_power[0]), (-1, kern.hi, kern.end_power[1])):
        if k == 1 or not mp.isfinite(end):
            continue
        for v, d in enumerate(D):
            out[(d + end, side)] = (mp.fadd(d, end, exact=True), k, (v, side))
    return out


def _power_pieces(pieces, kinks):
    """Pieces next to a singular kink as :class:`PowerPiece` (``x = kink +- L s^k``);
    a piece between two such kinks is halved first, one map per half."""
    if not kinks:
        return pieces
    out = []
    for a, b in pieces:
        left = kinks.get((a, 1)) if mp.isfinite(b) else None
        right = kinks.get((b, -1)) if mp.isfinite(a) else None
        if left and right:
            m = (a + b) / 2
            out.append(PowerPiece(left[0], m - left[0], 1, left[1], tag=left[2]))
            out.append(PowerPiece(right[0], right[0] - m, -1, right[1], tag=right[2]))
        elif left:
            out.append(PowerPiece(left[0], b - left[0], 1, left[1], tag=left[2]))
        elif right:
            out.append(PowerPiece(right[0], right[0] - a, -1, right[1], tag=right[2]))
        else:
            out.append((a, b))
    return out


def compute(mu_fracs, fam, dps, *, rule_b="auto", accelerate=True):
    """Probabilities (mpf) of ``n >= 2`` finite scores given as Fractions.

    If the run planned by the float64 reconnaissance fails its checks, it is
    redone once with the mpmath reconnaissance (float underflow can hide a
    mode, e.g. a gumbel_min log-CDF below e^-745); the first error is raised
    if that fails too.
    """
    info = {}
    try:
        return _compute(mu_fracs, fam, dps, rule_b=rule_b, accelerate=accelerate, force_mp=False, info=info)
    except OracleError as first:
        if not info.get("float_recon"):
            raise
        try:
            return _compute(mu_fracs, fam, dps, rule_b=rule_b, accelerate=accelerate, force_mp=True, info={})
        except OracleError:
            raise first from None


def _compute(mu_fracs, fam, dps, *, rule_b, accelerate, force_mp, info):
    import time

    t0 = time.perf_counter()
    kern = kernels_for(fam)
    label = kern.label
    n = len(mu_fracs)
    uniq = sorted(set(mu_fracs))
    index = {q: k for k, q in enumerate(uniq)}
    mult_list = [0] * len(uniq)
    for q in mu_fracs:
        mult_list[index[q]] += 1
    if len(uniq) == 1:
        with mp.workdps(dps):
            return [mp.mpf(1) / n] * n
    zero = _exact_zero(uniq, fam)
    targets = [u for u in range(len(uniq)) if not zero[u]]
    top = uniq[-1]
    scale = fam.scale if not fam.custom else sp.Integer(1)
    scale_f = float(scale)

    # --- reconnaissance: float64 scan for moderate spreads, mpmath otherwise ---
    with mp.workprec(64):
        spread = abs(frac_to_mpf(uniq[0] - top)) / sympy_to_mpf(scale)
    mult = np.array(mult_list)
    tarr = np.array(targets)
    T = (dps + 20) * _LN10
    T2 = (dps + 8) * _LN10
    rc = None
    if kern.name == "gumbel" and not kern.custom and spread > _FLOAT_SCAN_MAX:
        return _gumbel_softmax(uniq, mult_list, mu_fracs, index, scale, spread, dps, label, t0)
    if spread <= _FLOAT_SCAN_MAX and not force_mp:
        df = np.array([float(q - top) / scale_f for q in uniq])
        try:
            rc = reconnoitre(kern, df, mult, tarr, T, T2, label)
        except OracleError:
            rc = None
    info["float_recon"] = rc is not None
    if rc is not None:
        soft = [mp.mpf(float(x)) for x in soft_breakpoints(rc, df, kern.name in LOG_CONCAVE and not kern.custom)]
        logp_rc = [mp.mpf(float(v)) for v in rc.logp]
        peak_rc = [mp.mpf(float(v)) for v in rc.peak]
        width_min = float(min(rc.wl.min(), rc.wr.min()))
    else:
        # positions to ~2^-40 of a unit width, log-integrands (~ -d^2/2 for
        # the normal) to a few bits absolute
        rb = 2 * max(1, int(spread).bit_length()) + 96
        with mp.workprec(rb):
            sc = sympy_to_mpf(scale)
            Dr = [frac_to_mpf(q - top) / sc for q in uniq]
            rc = reconnoitre_mp(kern, Dr, mult_list, targets, mp.mpf(T), mp.mpf(T2), label)
            soft = soft_breakpoints_mp(rc, Dr)
        logp_rc, peak_rc = list(rc.logp), list(rc.peak)
        width_min = float(min(min(rc.wl), min(rc.wr)))
    big = max([mp.mpf(1)] + [abs(v) for v in logp_rc] + [abs(v) for v in peak_rc])
    guard = int(mp.ceil(mp.log10(big))) + 1
    # nodes at |x| ~ spread on pieces ~ width_min long: log10(spread / width) more digits
    pos_guard = max(0, int(mp.ceil(mp.log10(spread + 1) - math.log10(min(1.0, width_min))))) if spread > 1 else 0
    # Error of l_u at a node: ~ (|l| + |x l'|) 10^-wp; on the mass of a huge-spread
    # integrand |x l'| is at most ~ |l| (normal: |x| ~ D/2, l' ~ D, l ~ -D^2/4)
    # or ~ |x| / width (algebraic tails), so the larger guard covers both.
    wp_dps = dps + 12 + max(guard, pos_guard)

    def run_rules(prec_bits):
        """Scores at ``prec_bits``, the pieces: support ends (or +-inf),
        kinks d_v + b, and the reconnaissance breakpoints around the modes,
        and the singular kinks (:func:`_singular_kinks`) by tag.
        The end pieces reach +-inf (mapped to [-1, 1] in the rules): no
        tail is dropped, so no truncation error; the pieces next to a
        singular kink are mapped (:func:`_power_pieces`)."""
        with mp.workprec(prec_bits):
            sc = sympy_to_mpf(scale)
            D = [frac_to_mpf(q - top) / sc for q in uniq]
            lo = kern.lo  # support of F starts at lo + max d = lo
            hi = kern.hi  # every integrand vanishes beyond max d + hi = hi
            hard = set()
            for d in D:
                for b in kern.breakpoints:
                    x = d + b
                    if lo < x < hi:
                        hard.add(x)
            inner = sorted(hard | {x for x in soft if lo < x < hi})
            clean = [lo]
            # merge only points that coincide at the working precision: a kink must
            # stay a piece end however close to the next one (with a kink inside a
            # piece, Gauss-Legendre converges slowly and its degree-doubling estimate
            # can be off by orders of magnitude)
            for x in inner + [hi]:
                if mp.isinf(clean[-1]) or x - clean[-1] > mp.mpf(2) ** (-(prec_bits - 24)) * (1 + abs(x)):
                    clean.append(x)
                elif x in hard or x == hi:
                    clean[-1] = x
            kinks = _singular_kinks(kern, D)
            anchors = {tag: anchor for anchor, _, tag in kinks.values()}
            return D, _power_pieces(list(zip(clean[:-1], clean[1:])), kinks), anchors

    wp_bits = int(wp_dps * 3.3219280948873626) + 8
    with mp.workprec(wp_bits):
        P = [mp.exp(lp) for lp in logp_rc]
        cut_base = [lp - (wp_dps + 15) * mp.ln10 for lp in logp_rc]
    diag = {"family": label, "n": n, "dps": dps, "working_dps": wp_dps}
    for attempt in range(2):
        with mp.workprec(wp_bits):
            D, pieces, _ = run_rules(wp_bits)
            tol = [p * mp.mpf(10) ** (-(dps + 6)) for p in P]
            ev = _evaluator(kern, D, mult_list, targets, [mp.mpf(c) for c in cut_base]) if accelerate else \
                _make_mp_evaluator(kern, D, mult_list, targets, [mp.mpf(c) for c in cut_base])
            # effort bound: a few thousand pieces for small n, fewer for large n
            budget = len(pieces) + min(4000, max(100, 200_000 // len(targets)))
            A, errA, accepted = gauss_legendre_adaptive(pieces, ev, len(targets), tol, wp_bits, max_pieces=budget)
            bad = [j for j in range(len(targets)) if not (A[j] > 0)]
            if bad:
                j = bad[0]
                raise OracleError(f"{label}: integral of class {targets[j]} is {mp.nstr(A[j], 5)} for mu = {_fmt_mu(mu_fracs)}")
            if all(errA[j] <= A[j] * mp.mpf(10) ** (-(dps + 4)) for j in range(len(targets))):
                break
            P = list(A)  # the reconnaissance over-estimated some p: tighten and redo
    else:
        j = max(range(len(targets)), key=lambda j: errA[j] / A[j])
        raise OracleError(
            f"{label}: Gauss-Legendre error estimate {mp.nstr(errA[j] / A[j], 3)} (relative) too large "
            f"for class {targets[j]}, mu = {_fmt_mu(mu_fracs)}"
        )

    # --- rule B at higher precision, independent nodes ---
    if rule_b == "auto":
        rule_b = "tanh-sinh" if len(targets) * len(accepted) <= 60 else "gauss-legendre"
    hp = wp_bits + 32
    with mp.workprec(hp):
        D2, _, anchors = run_rules(hp)
        tolB = [a * mp.mpf(10) ** (-(dps + 6)) for a in A]
        evB = _evaluator(kern, D2, mult_list, targets, [mp.mpf(c) for c in cut_base]) if accelerate else \
            _make_mp_evaluator(kern, D2, mult_list, targets, [mp.mpf(c) for c in cut_base])
        # a mapped piece keeps its map, anchored at its kink re-rounded with the scores
        piecesB = [(p.with_anchor(anchors[p.tag]) if isinstance(p, PowerPiece) else (mp.mpf(p[0]), mp.mpf(p[1])), k)
                   for p, k in accepted]
        if rule_b == "tanh-sinh":
            B, errB = tanh_sinh([p for p, _ in piecesB], evB, len(targets), tolB, hp)
        else:
            # Gauss-Legendre one degree above rule A's accepted one on each
            # piece: twice the nodes, none shared with rule A's, higher
            # precision, scores re-rounded.  Its error is bounded by |A - B|.
            B = gauss_legendre_fixed([(p, k + 1) for p, k in piecesB], evB, len(targets))
            errB = [abs(x - y) for x, y in zip(A, B)]
        agree = mp.mpf(10) ** (-(dps + 1))
        for j, t in enumerate(targets):
            if not abs(A[j] - B[j]) <= agree * abs(B[j]):
                raise OracleError(
                    f"{label}: quadrature rules disagree for class {t} (mu = {_fmt_mu(mu_fracs)}, dps = {dps}): "
                    f"gauss-legendre {mp.nstr(A[j], dps + 5)} vs {rule_b} {mp.nstr(B[j], dps + 5)}"
                )
            if not errB[j] <= agree * abs(B[j]):
                raise OracleError(f"{label}: {rule_b} error estimate too large for class {t}, mu = {_fmt_mu(mu_fracs)}")

    # --- rule C: the entries the sum check cannot see ---
    with mp.workprec(wp_bits):
        unseen = [j for j, t in enumerate(targets) if mult_list[t] * B[j] < mp.mpf(10) ** (-(dps - 3))]
        if unseen and (kern.custom or kern.name not in LOG_CONCAVE):
            D, _, _ = run_rules(wp_bits)
            _survival_check(kern, D, mult_list, [targets[j] for j in unseen], [B[j] for j in unseen],
                            [cut_base[j] for j in unseen], accepted, dps, wp_bits, label, mu_fracs)

    # --- assemble, check the sum ---
    with mp.workprec(wp_bits):
        pu = [mp.mpf(0)] * len(uniq)
        for j, t in enumerate(targets):
            pu[t] = B[j]
        total = mp.fsum(m * p for m, p in zip(mult_list, pu))
        if not abs(total - 1) <= mp.mpf(10) ** (-(dps + 1)):
            raise OracleError(
                f"{label}: probabilities sum to {mp.nstr(total, dps + 5)}, not 1 (mu = {_fmt_mu(mu_fracs)}, dps = {dps})"
            )
    res = [pu[index[q]] for q in mu_fracs]
    diag.update(method=f"max-CDF form; adaptive Gauss-Legendre checked by {rule_b}", pieces=len(accepted),
                seconds=time.perf_counter() - t0)
    LAST_RUN.clear()
    LAST_RUN.update(diag)
    return res
