"""The reference oracle: perturbed-argmax probabilities to any precision.

    p_i = P[argmax_j (mu_j + eps_j) = i] = int phi(x - mu_i) prod_{j != i} Phi(x - mu_j) dx

computed with mpmath in the max-CDF form (one ``log F`` per node shared by
all classes), the integrand exponentiated from its logarithm (``p_i`` far
below 1e-300 keeps full relative precision), the range split at every kink
and support end and around the mass of every integrand, tails cut with
proven bounds, and the result checked -- never trusted: two quadrature
rules with independent nodes must agree to ``dps + 1`` digits and the
probabilities must sum to 1, otherwise :class:`OracleError` is raised.

>>> from derive import oracle
>>> [mp.nstr(p, 20) for p in oracle.probs([1, 0], "normal", dps=25)]
['0.76024993890652326884', '0.23975006109347673116']

``certified=True`` returns python-flint ``arb`` balls (rigorous enclosures)
from :mod:`derive.oracle.certified` for the families in
:data:`CERTIFIED_FAMILIES`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction as _Fraction

import mpmath as mp

from ..families import Family, family as _family
from ._core import LAST_RUN, compute, frac_to_mpf
from ._validate import check_dps, parse_scores
from .errors import OracleError

__all__ = [
    "probs",
    "log_probs",
    "OracleError",
    "CERTIFIED_FAMILIES",
    "reference_tables",
    "load_reference",
    "timing_report",
    "LAST_RUN",
]

try:  # certified.py is optional (python-flint)
    from .certified import CERTIFIED_FAMILIES  # noqa: F401
except Exception:  # pragma: no cover - depends on the optional module
    CERTIFIED_FAMILIES = ()


def _exact_param(v):
    """A float parameter as its exact binary value, a decimal string as an
    exact decimal (sympy keeps only 15 or 30 digits of either otherwise)."""
    import numbers

    import sympy as sp

    if isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return sp.Rational(v)
    if isinstance(v, str):
        try:
            q = _Fraction(v.strip())
        except (ValueError, ZeroDivisionError):
            return v
        return sp.Rational(q.numerator, q.denominator)
    if isinstance(v, numbers.Real) and hasattr(v, "item") and not isinstance(v, numbers.Integral):
        return _exact_param(float(v))
    return v


def _resolve_family(family, params):
    params = {k: _exact_param(v) for k, v in params.items()}
    if isinstance(family, Family):
        fam = family.with_params(**params) if params else family
    else:
        fam = _family(family, **params)
    for k, v in fam.params.items():
        if not getattr(v, "is_number", False):
            raise ValueError(f"{k} must be a positive real number for the oracle, got {v!r} (a symbol)")
    return fam


def _edge(vals):
    """Shape of the answer before any integral: ('done', probs) or ('compute', finite indices)."""
    n = len(vals)
    if n == 1:
        return "done", [1]
    if any(v == float("inf") for v in vals):
        return "done", [1 if v == float("inf") else 0 for v in vals]
    finite = [i for i, v in enumerate(vals) if v != float("-inf")]
    if len(finite) == 1:
        return "done", [1 if i == finite[0] else 0 for i in range(n)]
    return "compute", finite


def _probs_full(mu, family, dps, params):
    """(probabilities at working precision, family, dps) -- unrounded."""
    dps = check_dps(dps)
    fam = _resolve_family(family, params)
    vals = parse_scores(mu)
    kind, info = _edge(vals)
    if kind == "done":
        return [mp.mpf(v) for v in info], fam, dps
    sub = compute([vals[i] for i in info], fam, dps)
    out = [mp.mpf(0)] * len(vals)
    for i, p in zip(info, sub):
        out[i] = p
    return out, fam, dps


def _certified(mu, family, dps, params, log):
    from .._optional import require

    flint = require("flint")  # python-flint is the [certified] extra: a missing one is named
    from . import certified as _cert

    dps = check_dps(dps)
    fam = _resolve_family(family, params)
    vals = parse_scores(mu)
    kind, info = _edge(vals)
    if kind == "done":
        res = [flint.arb(v) for v in info]
    else:
        prec = int(dps * 3.33) + 64
        with mp.workprec(prec):
            sub_mu = []
            for i in info:
                q = vals[i]
                d = q.denominator
                if d & (d - 1) == 0:  # dyadic: exact binary value
                    sub_mu.append(mp.mpf((q.numerator, -(d.bit_length() - 1))))
                else:
                    sub_mu.append(frac_to_mpf(q))
        sub = _cert.probs_certified(sub_mu, fam, dps)
        res = [flint.arb(0)] * len(vals)
        for i, p in zip(info, sub):
            res[i] = p
    if log:
        return [p.log() if not p.is_zero() else flint.arb.neg_inf() for p in res]
    return res


def probs(mu: Sequence[object], family: str | Family = "gumbel", dps: int = 30, *, certified: bool = False,
          **params: object) -> list:
    """Perturbed-argmax probabilities ``p_i`` of the scores ``mu``.

    ``mu``: 1-D sequence of floats (taken as their exact binary values),
    ints, decimal strings (exact decimals) or mpf; ``-inf`` gives exactly 0,
    a single ``+inf`` a one-hot vector.  ``family``: registry name or a
    derive :class:`~derive.families.Family` (``scale``, ``nu`` as keyword
    parameters).  Every entry has at least ``dps - 3`` correct significant
    digits (in practice ``dps``), or :class:`OracleError` is raised.

    Returns a list of mpmath ``mpf`` (``certified=True``: python-flint
    ``arb`` enclosures).  The values carry ``dps + 3`` digits, but an mpf
    prints at mpmath's global ``mp.dps`` and an arb at ``flint.ctx.prec``
    (whose decimal rounding of the midpoint also widens the printed
    radius): show them with ``mp.nstr(p, dps)``, resp.
    ``b.mid().str(dps, radius=False)`` and ``b.rad()``.

    >>> [mp.nstr(p, 15) for p in probs(["0.3", "0.1", 0], "uniform", dps=20)]
    ['0.573833333333333', '0.262833333333333', '0.163333333333333']
    """
    if certified:
        return _certified(mu, family, dps, params, log=False)
    out, _, dps = _probs_full(mu, family, dps, params)
    with mp.workdps(dps + 3):
        return [+p for p in out]


def log_probs(mu: Sequence[object], family: str | Family = "gumbel", dps: int = 30, *, certified: bool = False,
              **params: object) -> list:
    """``log p_i`` (mpf; ``-inf`` for a class that cannot win).

    The largest probability, when above 1/2, is taken as
    ``log1p(-sum of the others)`` so that ``log p`` close to 0 keeps its
    relative precision.

    >>> mp.nstr(log_probs([0, -60], "gumbel", dps=20)[1], 15)
    '-60.0'
    """
    if certified:
        return _certified(mu, family, dps, params, log=True)
    out, _, dps = _probs_full(mu, family, dps, params)
    with mp.workdps(dps + 10):
        res = []
        for i, p in enumerate(out):
            if p == 0:
                res.append(mp.ninf)
            elif p > 0.5:
                rest = mp.fsum(q for j, q in enumerate(out) if j != i)
                res.append(mp.log1p(-rest))
            else:
                res.append(mp.log(p))
    with mp.workdps(dps + 3):
        return [+v for v in res]


def reference_tables(outdir: str | os.PathLike | None = None, families: Sequence[str] | None = None,
                     progress: bool = True) -> list:
    """Write the reference tables (one JSON per family); see :mod:`.tables`."""
    from .tables import reference_tables as _rt

    return _rt(outdir=outdir, families=families, progress=progress)


def load_reference(family: str | Family, outdir: str | os.PathLike | None = None) -> list[dict]:
    """Cases of one family's reference table; see :mod:`.tables`."""
    from .tables import load_reference as _lr

    return _lr(family, outdir=outdir)


def timing_report(**kwargs: object) -> dict:
    """Measured seconds for the oracle's standard workloads; see :mod:`.tables`."""
    from .tables import timing_report as _tr

    return _tr(**kwargs)
