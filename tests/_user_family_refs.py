"""Independent references for user noise families (shared by the route and numeric tests).

``exact_probs``: (eq:pi) in ``x = mu_i + eps`` integrated by sympy with concrete rational
scores, split at every shifted kink ``mu_j + b_k``; on each sub-interval every Piecewise
factor is replaced by its branch at the midpoint and the product is integrated exactly.
``mp_probs``: the same integral by mpmath.quad at 30 digits (error estimate checked).
``gompertz_exact``: Gompertz noise in closed form (a finite sum of exponentials).
"""

import itertools

import mpmath
import sympy as sp

x = sp.Symbol("x", real=True)


def _branch(expr, mid):
    def pick(pw):
        for val, cond in pw.args:
            if cond in (True, sp.true) or bool(cond.subs(x, mid)):
                return val
        raise AssertionError(f"no branch of {pw} at {mid}")

    return expr.rewrite(sp.Piecewise).replace(lambda e: isinstance(e, sp.Piecewise), pick)


def exact_probs(fam, mu):
    kinks = list(fam.breakpoints)
    out = []
    for i in range(len(mu)):
        f = fam.pdf(x - mu[i]) * sp.Mul(*[fam.cdf(x - m) for k, m in enumerate(mu) if k != i])
        pts = sorted({b + m for b in kinks for m in mu}, key=float)
        edges = [-sp.oo] + pts + [sp.oo]
        total = sp.Integer(0)
        for a, b in zip(edges, edges[1:]):
            mid = (a + b) / 2 if a.is_finite and b.is_finite else (b - 1 if a == -sp.oo else a + 1)
            g = sp.expand(_branch(f, mid))
            if g != 0:
                total += sp.integrate(g, (x, a, b))
        out.append(total if total.is_Rational else sp.simplify(total))
    return out


def mp_probs(fam, mu, dps=30):
    F = sp.lambdify(x, fam.cdf(x), "mpmath")
    f = sp.lambdify(x, fam.pdf(x), "mpmath")
    lo, hi = fam.support.start, fam.support.end
    out = []
    with mpmath.workdps(dps + 15):
        kinks = [mpmath.mpf(sp.Float(b, dps + 20)) for b in fam.breakpoints]
        mu = [mpmath.mpf(str(m)) for m in mu]
        a = mpmath.mpf(sp.Float(lo, dps + 20)) if lo.is_finite else -mpmath.inf
        b = mpmath.mpf(sp.Float(hi, dps + 20)) if hi.is_finite else mpmath.inf
        for i in range(len(mu)):
            pts = {k + mu[j] - mu[i] for j in range(len(mu)) for k in kinks} | set(kinks)
            inner = sorted(p for p in pts if a < p < b)
            base = inner[-1] if inner else mpmath.mpf(0)
            # extra nodes spread the bulk of heavy-tailed integrands over several panels
            extra = [base + 2**k for k in range(-2, 14, 2)] + [base - 2**k for k in range(-2, 14, 2)]
            grid = sorted(set([a, b] + inner + [e for e in extra if a < e < b]))

            def g(t, i=i):
                v = f(t)
                for j in range(len(mu)):
                    if j != i and v != 0:
                        v *= F(t + mu[i] - mu[j])
                return v

            val, err = mpmath.quad(g, grid, error=True, maxdegree=10)
            assert err < mpmath.mpf(10) ** -(dps + 2) * max(abs(val), mpmath.mpf(10) ** -300), (fam.name, err)
            out.append(val)
    return out


def gompertz_exact(mu, b, eta, dps):
    """p_i for Gompertz(b, eta) noise, F(t) = 1 - exp(-eta (e^(bt) - 1)) on t >= 0, in closed form.

    Every factor of (eq:pi) is non-zero only for x >= M = max mu, where u = e^(bx) and
    c_j = e^(-b mu_j) give f(x - mu_i) dx = eta c_i e^eta e^(-eta c_i u) du and
    F(x - mu_j) = 1 - e^eta e^(-eta c_j u).  Expanding the product over the subsets T of
    the other classes (C_T = sum_{j in T} c_j) and integrating each exponential over
    u >= u0 = e^(bM):

        p_i = c_i e^eta sum_T (-e^eta)^|T| e^(-eta u0 (c_i + C_T)) / (c_i + C_T).

    The terms cancel (to e^(-b (M - mu_i)) of the leading one when mu_i < M), so the sum
    runs at ``dps`` and again at ``dps + 20``; the two must agree to 10^-(dps - 25)."""
    def run(prec_dps):
        with mpmath.workdps(prec_dps):
            m = [mpmath.mpf(v) for v in mu]
            B, E = mpmath.mpf(b), mpmath.mpf(eta)
            u0 = mpmath.exp(B * max(m))
            c = [mpmath.exp(-B * v) for v in m]
            out = []
            for i in range(len(m)):
                others = [c[j] for j in range(len(m)) if j != i]
                # e^(-eta u0 c_i) factored out: log p keeps its (possibly huge) exponent exactly
                total = mpmath.mpf(0)
                for k in range(len(others) + 1):
                    for T in itertools.combinations(others, k):
                        CT = mpmath.fsum(T)
                        total += (-mpmath.exp(E)) ** k * mpmath.exp(-E * u0 * CT) / (c[i] + CT)
                out.append(mpmath.log(c[i]) + E - E * u0 * c[i] + mpmath.log(total))
            return out

    lo, hi = run(dps), run(dps + 20)
    with mpmath.workdps(dps):
        for a, e in zip(lo, hi):
            assert abs(a - e) <= mpmath.mpf(10) ** -(dps - 25) * max(1, abs(e)), (a, e)
        return [mpmath.exp(v) for v in hi]


def quantile_probs(cdf, quantile, lo, hi, mu, dps=30, guard=20):
    """p_i in the quantile form: substituting ``u = Phi(x - mu_i)`` in (eq:pi),

        p_i = int_0^1 prod_{j != i} Phi(Q(u) + mu_i - mu_j) du,

    with ``Q`` the quantile function and ``Phi`` clamped to 0 below ``lo`` and 1 above
    ``hi``.  A different integrand from the max-CDF form (no density, bounded: a density
    unbounded at a support end, ``(x - lo)^(-a)``, leaves only bounded factors
    ``(Q(u) + d - lo)^(1 - a)``), integrated by mpmath's tanh-sinh, split at every kink
    ``u = Phi(lo - d)``, ``Phi(hi - d)`` (endpoint singularities of bounded factors are
    what tanh-sinh resolves), at ``dps + guard`` digits; its error estimate and
    ``sum p = 1`` are checked.  An entry ``p_i ~ 10^-m`` has its mass at ``1 - u ~ 10^-m``:
    ``guard`` must exceed ``m`` for ``u`` to resolve it.  ``cdf``/``quantile``: mpmath functions of the standard
    family; ``mu``: scores as exact binary floats, ints or decimal strings."""
    with mpmath.workdps(dps + guard):
        y = [mpmath.mpf(v) for v in mu]
        lo = mpmath.mpf(lo) if lo is not None else -mpmath.inf
        hi = mpmath.mpf(hi) if hi is not None else mpmath.inf

        def F(z):
            if z <= lo:
                return mpmath.mpf(0)
            if z >= hi:
                return mpmath.mpf(1)
            return cdf(z)

        out = []
        for i in range(len(y)):
            d = [y[i] - y[j] for j in range(len(y)) if j != i]
            cuts = {mpmath.mpf(0), mpmath.mpf(1)}
            for dj in d:
                for e in (lo, hi):
                    if mpmath.isfinite(e):
                        cuts.add(F(e - dj))
            pts = sorted(c for c in cuts if 0 <= c <= 1)

            def g(u, d=d):
                q = quantile(u)
                v = mpmath.mpf(1)
                for dj in d:
                    v *= F(q + dj)
                    if v == 0:
                        break
                return v

            val, err = mpmath.quad(g, pts, error=True)
            assert err <= mpmath.mpf(10) ** -(dps + 5) * val, (i, err, val)
            out.append(val)
        assert abs(mpmath.fsum(out) - 1) <= mpmath.mpf(10) ** -(dps + 2), mpmath.fsum(out)
        return out
