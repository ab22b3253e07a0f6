"""Input checking for the oracle: scores -> exact rationals.

Every finite score becomes a :class:`fractions.Fraction` equal to the value
the caller meant: a float is its exact binary value, a string is read as an
exact decimal (``"0.3"`` is 3/10, not the double nearest to it), an mpmath
``mpf`` is its exact binary value.  ``+inf``/``-inf`` are kept as floats.

>>> parse_scores([0.5, "0.1", 2])
[Fraction(1, 2), Fraction(1, 10), Fraction(2, 1)]
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import mpmath as mp

__all__ = ["parse_scores", "check_dps"]

_INF = math.inf


def _one(v, i):
    """One score -> Fraction or +-inf; ValueError naming index and reason."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"mu[{i}] must be a real number, got {v!r}")
    # numpy scalars expose .item(); keep this import-free
    if hasattr(v, "item") and not isinstance(v, (mp.mpf, str)) and callable(v.item):
        try:
            v = v.item()
        except (TypeError, ValueError):
            pass
        if isinstance(v, bool):
            raise ValueError(f"mu[{i}] must be a real number, got {v!r}")
    if isinstance(v, mp.mpf):
        if mp.isnan(v):
            raise ValueError(f"mu[{i}] is NaN: a NaN score has no argmax probability")
        if mp.isinf(v):
            return _INF if v > 0 else -_INF
        sign, man, exp, _ = v._mpf_  # mpf.man_exp drops the sign
        if sign:
            man = -man
        return Fraction(man) * (Fraction(2) ** exp)
    if isinstance(v, str):
        s = v.strip().lower().replace("_", "")
        if s in ("inf", "+inf", "infinity", "+infinity", "oo", "+oo"):
            return _INF
        if s in ("-inf", "-infinity", "-oo"):
            return -_INF
        if s in ("nan", "+nan", "-nan"):
            raise ValueError(f"mu[{i}] is NaN ({v!r}): a NaN score has no argmax probability")
        try:
            return Fraction(s)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"mu[{i}] must be a real number, got the string {v!r}") from None
    if isinstance(v, float):
        if math.isnan(v):
            raise ValueError(f"mu[{i}] is NaN: a NaN score has no argmax probability")
        if math.isinf(v):
            return v
        return Fraction(v)
    if isinstance(v, numbers.Integral):
        return Fraction(int(v))
    if isinstance(v, numbers.Rational):
        return Fraction(v.numerator, v.denominator)
    if isinstance(v, complex):
        raise ValueError(f"mu[{i}] must be real, got the complex number {v!r}")
    # sympy numbers and other real-valued objects
    try:
        import sympy as sp

        if isinstance(v, sp.Basic):
            if v.is_Rational:
                return Fraction(int(v.p), int(v.q))
            if v in (sp.oo, -sp.oo):
                return _INF if v == sp.oo else -_INF
            if v is sp.nan:
                raise ValueError(f"mu[{i}] is NaN: a NaN score has no argmax probability")
            if v.is_Float:
                return _one(mp.mpf(v._to_mpmath(v._prec)), i)
            if v.is_real and v.is_number:
                return _one(mp.mpf(sp.N(v, 60)._to_mpmath(200)), i)
    except ImportError:  # pragma: no cover
        pass
    raise ValueError(f"mu[{i}] must be a real number (float, int, str or mpf), got {type(v).__name__} {v!r}")


def parse_scores(mu) -> list:
    """Validate a 1-D score vector; return Fractions and +-inf floats.

    Raises ValueError for: a scalar or nested input, an empty vector, a
    non-numeric or NaN entry, more than one +inf, or all entries -inf.
    """
    if isinstance(mu, (str, bytes)) or not hasattr(mu, "__iter__"):
        raise ValueError(f"mu must be a one-dimensional sequence of scores, got {type(mu).__name__} {mu!r}")
    ndim = getattr(mu, "ndim", None)
    if ndim is not None and ndim != 1:
        raise ValueError(f"mu must be one-dimensional, got an array with {ndim} dimensions")
    items = list(mu)
    if not items:
        raise ValueError("mu is empty: need at least one score")
    out = []
    for i, v in enumerate(items):
        if isinstance(v, (list, tuple)) or getattr(v, "ndim", 0):
            raise ValueError(f"mu must be one-dimensional; mu[{i}] is a sequence")
        out.append(_one(v, i))
    n_pos = sum(1 for v in out if v == _INF)
    if n_pos > 1:
        raise ValueError(f"mu has {n_pos} entries equal to +inf: the argmax is not defined")
    if all(v == -_INF for v in out):
        raise ValueError("every entry of mu is -inf: no class can win")
    return out


def check_dps(dps) -> int:
    """dps must be an integer >= 5 (and not absurdly large)."""
    if isinstance(dps, bool) or not isinstance(dps, numbers.Integral):
        raise TypeError(f"dps must be an int, got {type(dps).__name__} {dps!r}")
    dps = int(dps)
    if dps < 5:
        raise ValueError(f"dps must be >= 5 (the oracle keeps dps - 3 digits), got {dps}")
    if dps > 2000:
        raise ValueError(f"dps must be <= 2000, got {dps}")
    return dps
