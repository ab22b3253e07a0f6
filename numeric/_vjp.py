"""Vector-Jacobian products of probs and log_probs by quadrature.

Differentiating ``p_i = int phi(x - mu_i) prod_{j != i} Phi(x - mu_j) dx``:
for i != k, ``dp_i/dmu_k = -int h_i h_k F``; the diagonal follows from
``sum_i p_i = 1``: ``dp_k/dmu_k = int h_k F (S - h_k)``.  Hence, with
``S = sum_j h_j`` and ``Gamma = sum_j g_j h_j``,

    (J^T g)_k = int h_k F (g_k S - Gamma) dx = g_k T1_k - T2_k,
    T1_k = int h_k F S dx  (> 0),     T2_k = int h_k F Gamma dx  (signed).

Both are integrated by the same adaptive log-space Gauss-Kronrod engine
as the probabilities (O(n G)).  ``sum_k (J^T g)_k = int F S Gamma - int F S Gamma = 0``.

For log_probs, ``d log p_i = dp_i / p_i``: the same formula with
``g_j = c_j / p_j``.  The products are formed in log space
(``log h_j - log p_j``), so entries with p_j far below 1e-300 are fine.
Under the Gumbel closed form: ``J^T g = p * (g - <g, p>)`` and
``J_log^T c = c - p * sum(c)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._quadrature import QuadratureError, Row, entry_tolerance, integrate_components, logsumexp, quadrature_log_probs

__all__ = ["quadrature_vjp", "softmax_vjp", "softmax_log_vjp"]

VJP_RTOL = 1e-12
_VJP_ELEMS = 1 << 21      # (panels x components), (groups x nodes) entries per table


def _row_without_probs(y, fam):
    from ._quadrature import Row, _domain
    with np.errstate(over="ignore"):
        far = y.max() - y > 1e6        # (the row is not shifted: see Row)
    if far.any():
        # same float64-range screening as the probabilities (p below e^-1.8e308 -> 0)
        return quadrature_log_probs(y, fam, return_row=True)
    row = Row(y, fam)
    if np.any(row.centers != row.tops) and np.asarray(fam.breakpoints).size:
        # a map recentred at heavy ties on a density with jumps: a panel edge or node
        # an ulp of u off a jump ~1 from the centre moves an integral by du |jump| (see
        # _quadrature._kink_bias), unseen by the error estimate.  The probabilities
        # bound that bias per entry and fall back to the map centred at the top score
        # (or raise): integrate on the map they accept
        return quadrature_log_probs(y, fam, return_row=True)
    row.subset = None
    row.edges = _domain(row)[0]
    return None, row


def softmax_vjp(lp, g):
    """J^T g for p = softmax: p * (g - sum(g p)) (rows of (m, n) arrays).

    Entries with log p = -inf (scores of -inf) have p = 0 identically, so
    dp_i/dmu_k = 0: their cotangent is dropped (even NaN or inf) and their
    result is 0, as on every other family's path.
    """
    p = np.exp(lp)
    gm = np.where(lp > -np.inf, g, 0.0)
    return p * (gm - np.sum(gm * p, axis=-1, keepdims=True))


def softmax_log_vjp(lp, c):
    """J^T c for log_softmax: c - p * sum(c)."""
    p = np.exp(lp)
    return c - p * np.sum(c, axis=-1, keepdims=True)


def _signed_log(v):
    with np.errstate(divide="ignore"):
        return np.log(np.abs(v)), np.sign(v)


# Components whose weighted contribution is below this share of the result's L1 scale
# (sum over entries of |terms|) need no relative accuracy of their own.
VJP_NEGLIGIBLE = 1e-200


def _component_weights(g, inv, counts, tied, lpu=None):
    """log of the largest factor multiplying each component in the output.

    Output: ``out_k = g_k (A_u + (c_u - 1) D_u) - E_u - (G_u - g_k) D_u`` (log mode:
    g_k -> c_k / p_u).  Weights: A_u -> max_k |g_k|, E_u -> 1 (G is inside the
    integrand), D_u -> max|g| c_u + |G_u|; log mode divides A and D by p_u.
    """
    m = counts.size
    gabs = np.zeros(m)
    np.maximum.at(gabs, inv, np.abs(g))
    gsum = np.zeros(m)
    np.add.at(gsum, inv, g)
    with np.errstate(divide="ignore"):
        lwA = np.log(gabs)
        lwD = np.log(gabs * counts + np.abs(gsum))[tied]
    if lpu is not None:
        dead = np.isneginf(lpu)
        lpz = np.where(dead, 0.0, lpu)
        lwA = np.where(dead, -np.inf, lwA - lpz)
        lwD = np.where(dead[tied], -np.inf, lwD - lpz[tied])
    return np.concatenate([lwA, np.zeros(m), lwD])


def _component_rtol(lpu, tied):
    """Relative tolerance per component of the log_probs VJP.

    With ``g = c / p`` the result can be no more accurate than the ``p`` it
    divides by: ``log p_u`` carries ``entry_tolerance(log p_u)`` (1e-13 |log p_u|
    below 1e-300, capped at 1e-2).  A_u and D_u are divided by p_u; E_u sums
    ``c_v / p_v`` over the other entries, so it gets the loosest of theirs.
    Demanding 1e-12 there would only make the rule refine noise (and fail).
    """
    t = np.minimum(entry_tolerance(lpu), 1e-2)
    t = np.maximum(t, VJP_RTOL)
    m = t.size
    if m > 1:
        order = np.argsort(t)
        top, second = t[order[-1]], t[order[-2]]
        tE = np.full(m, top)
        tE[order[-1]] = second                  # max over v != u
    else:
        tE = np.full(m, VJP_RTOL)
    return np.concatenate([t, tE, t[tied]])


def _error_floor(lw, scale, total=None):
    """``floor(logA) -> (abs, rel)``: log absolute errors allowed per component.

    A component's weighted error may reach ``2^-1075 * scale / ncomp`` (abs:
    summed over all components, at most half the smallest subnormal of the
    output ``/ scale``, i.e. below the output's float resolution whatever the
    components' values) or ``VJP_RTOL * VJP_NEGLIGIBLE * R / ncomp`` (rel),
    ``R = sum_c w_c A_c`` the output's scale: terms that far below R cannot
    change any entry beyond rounding of an entry that is itself negligible.
    Neither is forced to relative accuracy (e.g. normal [0, 18] at scale
    0.25: all terms ~ 1e-565, the exact output is 0).  ``abs`` needs no
    other estimate: it applies to each component once that component is
    resolved (1e-3, or the rounding noise of huge logs: normal [0, 0, -1e7],
    terms ~ e^-1.25e13); ``rel`` is computed from the estimates and trusted
    only once all of them are resolved (see ``_quadrature._trusted_floor``).
    Zero-weight components are never refined (floor +inf).  ``total``: the count of
    all components when ``lw`` is a chunk of them (both floors divide by it).
    """
    total = lw.size if total is None else total
    lfloor_abs = -1075.0 * math.log(2.0) + math.log(scale) - math.log(total)
    with np.errstate(invalid="ignore"):
        fl_abs = lfloor_abs - lw
    fl_abs = np.where(np.isnan(fl_abs), np.inf, fl_abs)

    def floor(lA):
        with np.errstate(invalid="ignore"):
            lc = lA + lw
        lc = np.where(np.isnan(lc), -np.inf, lc)
        lR = logsumexp(lc) if np.isfinite(lc).any() else -np.inf
        base = math.log(VJP_RTOL * VJP_NEGLIGIBLE) + lR - math.log(total)
        with np.errstate(invalid="ignore"):
            out = base - lw
        return fl_abs, np.where(np.isnan(out), np.inf, out)
    return floor


def _leave_one_out(b, sign, cols):
    """``log|sum_{v != u} s_v e^{b_v}|`` and its sign for every row u (columns independent).

    Linear sums after one shift by the column max: for u not the largest term,
    ``|e_u| <= |total|``-scale terms and ``total - e_u`` is accurate to a few eps of
    the L1 sum; the largest term's complement is summed directly (no cancellation
    against itself).

    The largest term's complement needs its own shift: it may lie ~800 nats
    below the top term (normal, x = -40 in [0, 0, -80]: h(x) ~ 40 but
    h(x + 80) ~ e^-800), where ``e^{b - max}`` is subnormal or 0 and the
    complement would keep only a few bits (or none).  Columns where the
    second-largest term is more than ``_SUBNORMAL_MARGIN`` below the top are
    re-summed with the second largest as shift."""
    mx = np.max(b, axis=0)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(under="ignore"):
        e = np.exp(b - mx[None, :])
    if sign is not None:
        e *= sign[:, None]
    top = np.argmax(b, axis=0)
    tot = e.sum(axis=0)
    rest = tot[None, :] - e
    e[top, cols] = 0.0
    rest[top, cols] = e.sum(axis=0)
    with np.errstate(divide="ignore"):
        lrest = np.log(np.abs(rest)) + mx[None, :]
    srest = np.sign(rest)
    if b.shape[0] > 1:
        # second largest per column (the top entry masked)
        b2 = b.copy()
        b2[top, cols] = -np.inf
        mx2 = np.max(b2, axis=0)
        redo = np.flatnonzero(np.isfinite(mx2) & (mx2 - mx < _SUBNORMAL_MARGIN))
        if redo.size:
            sub = b2[:, redo] - mx2[None, redo]
            with np.errstate(under="ignore"):
                e2 = np.exp(sub)
            if sign is not None:
                e2 *= sign[:, None]
            s2 = e2.sum(axis=0)
            with np.errstate(divide="ignore"):
                lrest[top[redo], redo] = np.log(np.abs(s2)) + mx2[redo]
            srest[top[redo], redo] = np.sign(s2)
    return lrest, srest


# exp(t) loses relative precision below e^-708 (subnormal); re-shift well before that
_SUBNORMAL_MARGIN = -600.0


def quadrature_vjp(y, g, fam, *, log=False):
    """(J^T g)_k for one finite standardized row ``y`` (derivative w.r.t. ``y``).

    ``log=False``: Jacobian of p; ``log=True``: Jacobian of log p.
    """
    y = np.asarray(y, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if log:
        lp, row = quadrature_log_probs(y, fam, return_row=True)
        # below log p = -1e12 the probabilities carry no error check (their log is the
        # answer, see entry_tolerance): c_k / p_k cannot be formed reliably
        unresolved = (lp < -1e12) & np.isfinite(lp) & (g != 0)
        if unresolved.any():
            k = int(np.flatnonzero(unresolved)[0])
            raise QuadratureError(
                f"log_probs_vjp: entry {k} has log p = {lp[k]:.6g} < -1e12, beyond the range where "
                "log p is resolved, and a nonzero cotangent; its gradient cannot be certified")
        g = np.where((lp < -1e12) & np.isfinite(lp), 0.0, g)
    else:
        # sum_k dp_k = 0, so J^T g = J^T (g - c) for any constant c: shifting by the top
        # entry's cotangent removes a common offset before it is integrated (a constant g
        # gives exactly 0; unshifted, its terms cancel to rounding noise that no error
        # certificate relative to the result can accept)
        g = g - g[np.argmax(y)]
        # probs VJP needs no probabilities: integrate T-terms on the initial domain
        # (its ends bound the dropped mass of F' by F(X_L) and sf(X_R)^2 scales)
        lp, row = _row_without_probs(y, fam)
    if row.subset is not None:
        # entries with p below the float64 range (log p = -inf): zero gradient, cotangent dropped
        out = np.zeros(y.shape)
        sub, _ = quadrature_vjp(y[row.subset], g[row.subset], fam, log=log)
        out[row.subset] = sub
        return out, lp
    m = len(row.vals)
    inv = row.inverse
    # per unique value: G_u = sum_{j in u} g_j   (log=True: g_j = c_j / p_j)
    Gsum = np.zeros(m)
    np.add.at(Gsum, inv, g)
    lG, sG = _signed_log(Gsum)
    lpu = np.zeros(m)
    if log:
        lpu[inv] = lp
    if log:
        # entries with p = 0 (bounded supports) have log p = -inf locally constant:
        # their cotangents drop out and their gradient is 0
        zero = np.isneginf(lpu)
        lG = np.where(zero, -np.inf, lG - np.where(zero, 0.0, lpu))
        sG = np.where(zero, 0.0, sG)
    logc = np.log(row.counts)

    tied = np.flatnonzero(row.counts > 1)

    def integrand(u, sel=None):
        c, s, ljac = row.nodes(u)
        lF = row.log_F(c, s) + ljac
        lh = row.log_h(c, s)
        dead = np.isneginf(lh) | np.isneginf(lF)[None, :]
        lh = np.where(dead, -np.inf, lh)
        cols = np.arange(u.size)
        # S_{-u} = S - c_u h_u (own group left out: T1 = int h_u F S alone diverges where
        # h blows up at a support end), Gamma_{-u} = sum_{v != u} G_v h_v (signed).
        lSm, _ = _leave_one_out(lh + logc[:, None], None, cols)
        with np.errstate(invalid="ignore"):
            bG = lh + lG[:, None]
        bG = np.where(np.isnan(bG), -np.inf, bG)
        lGm, sGm = _leave_one_out(bG, sG, cols)
        base = lh + lF[None, :]
        with np.errstate(invalid="ignore"):
            L1 = base + lSm
            L2 = base + lGm
            L3 = base[tied] + lh[tied]
        L = np.concatenate([L1, L2, L3], axis=0)
        L = np.where(np.isnan(L), -np.inf, L)
        S = np.concatenate([np.ones_like(L1), sGm, np.ones_like(L3)], axis=0)
        if sel is not None:
            return L[sel], S[sel]
        return L, S

    if row.edges is None:
        # all scores tied (p = 1/n needed no quadrature): integrate on the default domain
        from ._quadrature import _domain
        edges, _ = _domain(row)
    else:
        edges = row.edges
    ncomp = 2 * m + tied.size
    lw = _component_weights(g, inv, row.counts, tied, lpu if log else None)
    rtol = _component_rtol(lpu, tied) if log else np.full(ncomp, VJP_RTOL)
    # The engine keeps (panels x components) tables (value, sign, L1 norm, error) and
    # the integrand (groups x nodes) ones.  Rows whose tables would pass _VJP_ELEMS
    # entries (long rows with many kinks or distinct values) integrate the components
    # in chunks, each adaptively on its own (every component certified to its own
    # tolerance as before; each chunk's relative error floor is taken from its own
    # L1 scale, a lower, stricter floor), and evaluate the integrand on blocks of
    # nodes: memory per chunk ~ _VJP_ELEMS entries whatever n, time x chunks.
    npan = max(edges.size - 1, 1)
    per = max(1, _VJP_ELEMS // npan)
    if ncomp <= per:
        lI, sI, lA, _ = integrate_components(integrand, ncomp, edges,
                                             lambda lA: rtol,
                                             what="vector-Jacobian product",
                                             floor=_error_floor(lw, fam.scale))
    else:
        step = max(1, _VJP_ELEMS // max(m, 1))
        lI, sI = np.empty(ncomp), np.empty(ncomp)
        for c0 in range(0, ncomp, per):
            sel = np.arange(c0, min(ncomp, c0 + per))

            def part(u, sel=sel):
                outs = [integrand(u[k:k + step], sel) for k in range(0, u.size, step)]
                return (np.concatenate([o[0] for o in outs], axis=1),
                        np.concatenate([o[1] for o in outs], axis=1))

            lI[sel], sI[sel], _, _ = integrate_components(
                part, sel.size, edges, lambda lA, sel=sel: rtol[sel], what="vector-Jacobian product",
                floor=_error_floor(lw[sel], fam.scale, total=ncomp))
    # (J^T g)_k = g_k (A'_u + (c_u - 1) D_u) - E_u - (G_u - g_k) D_u,  u = group of k
    with np.errstate(over="ignore", invalid="ignore"):
        A = np.exp(lI[:m])
        E = sI[m:2 * m] * np.exp(lI[m:2 * m])
        D = np.zeros(m)
        D[tied] = np.exp(lI[2 * m:])
        if log:
            # g = c / p formed in log space: g_k X = c_k exp(log X - log p_k)
            lpz = np.where(np.isneginf(lpu), 0.0, lpu)
            Aw = np.exp(lI[:m] - lpz)
            Dw = np.zeros(m)
            Dw[tied] = np.exp(lI[2 * m:] - lpz[tied])
            cnt = row.counts
            csum = np.zeros(m)
            np.add.at(csum, inv, g)
            out = g * (Aw[inv] + (cnt[inv] - 1.0) * Dw[inv]) - E[inv] - (csum[inv] - g) * Dw[inv]
            out = np.where(np.isneginf(lp), 0.0, out)
        else:
            out = g * (A[inv] + (row.counts[inv] - 1.0) * D[inv]) - E[inv] - (Gsum[inv] - g) * D[inv]
    if not np.isfinite(out).all():
        raise QuadratureError("vector-Jacobian product: a term overflowed float64 (scores too far "
                              "apart for this family); no finite value can be certified")
    return _zero_sum(out, lp if log else None), lp


def _zero_sum(out, lp=None):
    """``out`` with its row sum moved to 0 (``J^T 1 = 0`` by shift invariance).

    Each integral above is certified to ``VJP_RTOL`` of its L1 norm, so entry k is off by
    at most ``VJP_RTOL`` times its sum of |terms| ``T_k >= |out_k|``; the row's residual
    ``r = sum_k out_k`` is the sum of those errors and can exceed ``1e-12 sum|out|`` when
    the terms cancel (``log_probs_vjp``: ``g = c / p`` terms far larger than the entries).
    Entry k's README budget is at least ``b_k = 1e-10 |out_k|`` (``log p_k`` given, i.e.
    ``log_probs_vjp``: ``max(1e-10, 1e-13 |log p_k|) |out_k|``, the bound of entries below
    1e-300).  Moving entry k by ``-r b_k / sum b`` zeroes the sum; a residual up to
    ``sum b / 2`` moves every entry by at most half its budget, while the certified error
    ``VJP_RTOL T_k`` is a hundredth of it.  A larger residual means an integral is worse
    than its certificate: raise, never return it.
    """
    total = math.fsum(out)
    scale = float(np.abs(out).sum())
    if abs(total) <= 1e-12 * scale:
        return out
    rel = 1e-10 if lp is None else np.maximum(1e-10, 1e-13 * np.abs(np.where(np.isfinite(lp), lp, 0.0)))
    budget = rel * np.abs(out)
    room = math.fsum(budget)
    if not abs(total) <= 0.5 * room:
        raise QuadratureError(f"vector-Jacobian product: the row sums to {total:.3g}, "
                              f"{abs(total) / scale:.2g} of its absolute sum (shift invariance "
                              "makes it 0); the quadrature's error certificate does not hold")
    return out - total * (budget / room)
