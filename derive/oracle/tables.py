"""Reference tables: oracle values for every family, as JSON files.

``reference_tables()`` writes ``derive/oracle/reference/<family>.json``
(package data, so an installed ``derive.testing`` reads them): for each
case the scores ``mu`` (float64 values written with ``repr``, so a float64
array holds them exactly; the oracle takes them as exact binary values),
``p`` and ``log_p`` as 30-significant-digit strings computed at
``dps = 33``.  Cases (deterministic, seeded): evenly spaced scores
``mu_k = -spread * k / (n - 1)`` for n in 2, 3, 4, 5, 8, 16, 32, 64 and
spreads 0.01 .. 60, ties, and random vectors.  ``student_t`` is tabulated
with ``nu = 3``.  Files are written with sorted keys and no timestamps:
regenerating them gives byte-identical files.

Regenerate with ``perturbmax oracle --tables`` or
``python -c "import derive.oracle as o; o.reference_tables()"``.

>>> cases = load_reference("gumbel")          # doctest: +SKIP
>>> cases[0]["mu"], cases[0]["p"][0]          # doctest: +SKIP
([0.0, -0.01], mpf('0.50249997916687499...'))
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mpmath as mp
import numpy as np

__all__ = ["reference_tables", "load_reference", "reference_cases", "timing_report", "TABLE_PARAMS"]

#: Parameters of the tabulated families (everything else: scale 1).
TABLE_PARAMS = {"student_t": {"nu": 3}}
TABLE_DPS = 33
METHOD = ("Max-CDF form p_i = int phi(x - mu_i) prod_{j != i} Phi(x - mu_j) dx, integrand exponentiated "
          "from its logarithm, pieces split at kinks, support ends and around each integrand's mode, "
          "end pieces to +-inf mapped to finite ones; adaptive Gauss-Legendre (mpmath degree-doubling "
          "error estimate) checked by tanh-sinh (small cases) or by Gauss-Legendre of twice the degree "
          "at 32 more bits; rules agree to dps + 1 digits, sum of p checked.")
TABLE_DIGITS = 30
_SEED = 20240611


def _default_dir() -> Path:
    """The tables shipped with the package (derive/oracle/reference/)."""
    return Path(__file__).resolve().parent / "reference"


def reference_cases():
    """The score vectors of the tables: list of (name, list of float)."""
    cases = []
    plan = {2: (0.01, 0.3, 1, 3, 10, 30, 60), 3: (0.01, 1, 10, 60), 4: (0.01, 1, 10, 60),
            5: (0.01, 1, 10, 60), 8: (0.01, 1, 10, 60), 16: (0.1, 3, 60), 32: (1, 60), 64: (1, 60)}
    for n, spreads in plan.items():
        for s in spreads:
            mu = [0.0 if k == 0 else -s * k / (n - 1) for k in range(n)]
            cases.append((f"even n={n} spread={s}", mu))
    cases.append(("ties n=3", [0.0, 0.0, -1.0]))
    cases.append(("ties n=4 top", [1.0, 1.0, 1.0, 0.0]))
    cases.append(("ties n=8 bottom", [0.0, -0.5] + [-5.0] * 6))
    cases.append(("ties n=6 pairs", [2.0, 2.0, 0.5, 0.5, -1.0, -1.0]))
    rng = np.random.default_rng(_SEED)
    for n, sd in ((4, 1.0), (6, 5.0), (10, 2.0), (16, 1.0), (32, 3.0), (64, 1.0)):
        mu = [float(round(v, 6)) for v in rng.normal(0.0, sd, size=n)]
        cases.append((f"random n={n} sd={sd}", mu))
    return cases


def _family_file(outdir: Path, name: str) -> Path:
    return outdir / f"{name}.json"


def reference_tables(outdir=None, families=None, progress=True):
    """Compute and write one JSON table per family; return the paths.

    ``families``: iterable of registry names (default: all nine).  A tqdm
    progress bar runs over all (family, case) pairs when ``progress``.
    """
    from tqdm import tqdm

    from ..families import FAMILY_NAMES
    from . import log_probs

    names = list(FAMILY_NAMES if families is None else families)
    unknown = [f for f in names if f not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; valid names: {', '.join(FAMILY_NAMES)}")
    outdir = Path(outdir) if outdir is not None else _default_dir()
    outdir.mkdir(parents=True, exist_ok=True)
    cases = reference_cases()
    paths = []
    bar = tqdm(total=len(names) * len(cases), disable=not progress, desc="reference tables", unit="case")
    for name in names:
        params = TABLE_PARAMS.get(name, {})
        rows = []
        for cname, mu in cases:
            bar.set_postfix_str(f"{name}: {cname}")
            lp = log_probs(mu, name, dps=TABLE_DPS, **params)
            with mp.workdps(TABLE_DPS):
                p = [mp.exp(v) if v != mp.ninf else mp.mpf(0) for v in lp]
            rows.append({
                "name": cname,
                "mu": [repr(float(v)) for v in mu],
                "p": [mp.nstr(v, TABLE_DIGITS, strip_zeros=False) for v in p],
                "log_p": [mp.nstr(v, TABLE_DIGITS, strip_zeros=False) if v != mp.ninf else "-inf" for v in lp],
            })
            bar.update(1)
        doc = {
            "family": name,
            "params": {k: str(v) for k, v in sorted({"scale": 1, **params}.items())},
            "dps": TABLE_DPS,
            "digits": TABLE_DIGITS,
            "method": f"derive.oracle.log_probs(mu, dps={TABLE_DPS}); p = exp(log p). {METHOD}",
            "note": (f"student_t is tabulated with nu = {params['nu']}. " if name == "student_t" else "")
            + "mu values are float64 (repr); the oracle takes each as its exact binary value. "
            "Generated by derive.oracle.reference_tables(); do not edit.",
            "cases": rows,
        }
        path = _family_file(outdir, name)
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    bar.close()
    return paths


def load_reference(family, outdir=None):
    """The cases of one family's table.

    Returns a list of dicts ``{"name", "mu" (list of float), "p", "log_p"
    (lists of mpf), "params" (dict of str)}``.  Raises FileNotFoundError
    (with the command that generates the tables) when the file is missing.
    """
    name = family if isinstance(family, str) else getattr(family, "name", str(family))
    outdir = Path(outdir) if outdir is not None else _default_dir()
    path = _family_file(outdir, name)
    if not path.exists():
        raise FileNotFoundError(f"no reference table {path}; generate it with `perturbmax oracle --tables`")
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = []
    with mp.workdps(doc.get("dps", TABLE_DPS)):
        for row in doc["cases"]:
            out.append({
                "name": row["name"],
                "mu": [float(v) for v in row["mu"]],
                "p": [mp.mpf(v) for v in row["p"]],
                "log_p": [mp.mpf(v) for v in row["log_p"]],
                "params": dict(doc["params"]),
            })
    return out


def timing_report(dps=30, n_small=10, n_large=1000, families=None, large=True):
    """Measured seconds: ``n_small`` scores per family, ``n_large`` normal.

    Returns ``{"<family> n=10": seconds, ..., "normal n=1000": seconds}``
    (scores: ``linspace(0, -4, n)`` for n = 10, a seeded normal sample for
    n = 1000).
    """
    from ..families import FAMILY_NAMES
    from . import probs

    out = {}
    mu = [float(-4.0 * k / (n_small - 1)) for k in range(n_small)]
    for name in (FAMILY_NAMES if families is None else families):
        t = time.perf_counter()
        probs(mu, name, dps=dps, **TABLE_PARAMS.get(name, {}))
        out[f"{name} n={n_small} dps={dps}"] = time.perf_counter() - t
    if large:
        big = [float(v) for v in np.random.default_rng(1).normal(size=n_large)]
        t = time.perf_counter()
        probs(big, "normal", dps=dps)
        out[f"normal n={n_large} dps={dps}"] = time.perf_counter() - t
    return out
