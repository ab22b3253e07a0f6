"""Independent references for user noise families (shared by the route and numeric tests).

``exact_probs``: (eq:pi) in ``x = mu_i + eps`` integrated by sympy with concrete rational
scores, split at every shifted kink ``mu_j + b_k``; on each sub-interval every Piecewise
factor is replaced by its branch at the midpoint and the product is integrated exactly.
``mp_probs``: the same integral by mpmath.quad at 30 digits (error estimate checked).
"""

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
