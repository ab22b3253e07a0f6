"""Test helper: compare fast code with the oracle's reference tables.

In the spirit of scipy's ``FuncData`` (``scipy.special._testutils``): run a
function over a table of arguments, compare with high-precision reference
values, and on failure report the worst points.

>>> from scipy.special import softmax
>>> assert_matches_oracle(softmax, "gumbel", rtol=1e-12)     # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import mpmath as mp
import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .families import Family

__all__ = ["assert_matches_oracle"]

_TINY = np.finfo(np.float64).tiny  # 2.2250738585072014e-308


def _fmt_mu(mu, limit=6):
    s = ", ".join(f"{v:.6g}" for v in mu[:limit])
    return "[" + s + (f", ... ({len(mu)} scores)" if len(mu) > limit else "") + "]"


def assert_matches_oracle(func: Callable[[np.ndarray], ArrayLike], family: str | Family, *, rtol: float,
                          atol: float = 0.0, cases: list | None = None, log: bool = False, worst: int = 5,
                          **params: float) -> None:
    """Assert ``func(mu)`` matches the oracle on reference cases.

    Parameters
    ----------
    func : callable
        ``func(mu)`` with ``mu`` a float64 numpy array of scores, returning
        the probabilities (``log=True``: the log-probabilities), one per score.
    family : str or Family
        Registry name; the default cases are ``derive.oracle.load_reference(family)``.
    rtol, atol : float
        Pass when ``|got - expected| <= atol + rtol * |expected|`` for every
        entry.  With ``log=True`` the scale is ``max(1, |log p|)``:
        ``|got - expected| <= atol + rtol * max(1, |expected|)``.  A
        probability below the float64 normal range (``< 2.2e-308``) only
        has to come out below that range too (it cannot be represented).
    cases : list, optional
        Cases as returned by :func:`derive.oracle.load_reference` (dicts with
        ``mu`` and ``p`` / ``log_p``), or a list of ``(mu, expected)`` pairs.
    params :
        Family parameters (``nu=3``...): must match those of the table.

    Raises
    ------
    AssertionError
        Listing the worst cases: name, mu, index, expected, got, error.
    """
    if not (isinstance(rtol, (int, float)) and rtol >= 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    if not (isinstance(atol, (int, float)) and atol >= 0 and math.isfinite(atol)):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    if cases is None:
        from .oracle import load_reference

        cases = load_reference(family)
        if params:
            table = cases[0]["params"] if cases else {}
            for k, v in params.items():
                if k not in table or float(table[k]) != float(v):
                    raise ValueError(
                        f"parameter {k}={v!r} differs from the reference table of {family!r} "
                        f"(tabulated with {table}); pass cases= for other parameters"
                    )
    norm = []
    for i, c in enumerate(cases):
        if isinstance(c, dict):
            exp = c["log_p"] if log else c["p"]
            norm.append((c.get("name", f"case {i}"), c["mu"], exp))
        else:
            mu, exp = c
            norm.append((f"case {i}", mu, exp))
    if not norm:
        raise ValueError("no cases to compare with")

    failures = []  # (badness, name, mu, index, expected, got, error)
    n_bad_cases = 0
    for name, mu, expected in norm:
        mu_arr = np.asarray([float(v) for v in mu], dtype=np.float64)
        try:
            got = np.asarray(func(mu_arr), dtype=np.float64)
        except Exception as exc:  # report, do not hide
            failures.append((math.inf, name, mu_arr, -1, None, None, f"raised {type(exc).__name__}: {exc}"))
            n_bad_cases += 1
            continue
        if got.shape != mu_arr.shape:
            failures.append((math.inf, name, mu_arr, -1, None, None, f"shape {got.shape}, expected {mu_arr.shape}"))
            n_bad_cases += 1
            continue
        case_bad = False
        for k, (e, g) in enumerate(zip(expected, got)):
            e_is_inf = str(e) in ("-inf", "inf") or (hasattr(e, "__float__") and math.isinf(float(e)))
            ef = float(e)
            if log:
                if e_is_inf:
                    ok = g == ef
                    err = 0.0 if ok else math.inf
                    badness = 0.0 if ok else math.inf
                else:
                    err = abs(g - ef) / max(1.0, abs(ef)) if math.isfinite(g) else math.inf
                    bound = atol + rtol * max(1.0, abs(ef))
                    diff = abs(g - ef) if math.isfinite(g) else math.inf
                    badness = diff / bound if bound > 0 else (0.0 if diff == 0 else math.inf)
                    ok = diff <= bound
            else:
                if abs(e) < _TINY:  # below the float64 normal range: got must be too
                    ok = math.isfinite(g) and abs(g) < _TINY * (1 + rtol) + atol
                    err = 0.0 if ok else math.inf
                    badness = 0.0 if ok else math.inf
                else:
                    diff = abs(g - ef) if math.isfinite(g) else math.inf
                    err = diff / abs(ef)
                    bound = atol + rtol * abs(ef)
                    badness = diff / bound if bound > 0 else (0.0 if diff == 0 else math.inf)
                    ok = diff <= bound
            if not ok:
                case_bad = True
                failures.append((badness, name, mu_arr, k, e, g, err))
        n_bad_cases += case_bad
    if failures:
        failures.sort(key=lambda f: (-f[0] if not math.isnan(f[0]) else -math.inf))
        what = "log-probabilities" if log else "probabilities"
        lines = [
            f"{getattr(func, '__name__', repr(func))} does not match the oracle ({family!r}, {what}, "
            f"rtol={rtol:g}, atol={atol:g}): {len(failures)} entries in {n_bad_cases} of {len(norm)} cases fail; worst:"
        ]
        for badness, name, mu_arr, k, e, g, err in failures[:worst]:
            if k < 0:
                lines.append(f"  {name}: mu={_fmt_mu(mu_arr)}: {err}")
            else:
                es = mp.nstr(mp.mpf(e), 17)
                lines.append(
                    f"  {name}: mu={_fmt_mu(mu_arr)} [{k}]: expected {es}, got {g!r}, "
                    f"{'scaled abs' if log else 'rel'} error {err:.3g}"
                )
        raise AssertionError("\n".join(lines))
