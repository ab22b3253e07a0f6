"""``perturbmax bench``: speed, accuracy, memory and oracle timings.

Every speed figure is a ratio against :func:`scipy.special.softmax` on the
*same* input in the *same* run: the two calls are timed alternately and the
median of the repeats is kept, so a busy machine slows both alike.

Sections of the result (all raw numbers go to ``bench.json``):

* ``scaling``: numeric.probs for gumbel, normal, logistic, cauchy, gumbel_min at
  n = 1e3 .. 1e6 against softmax, with the growth of the time per doubling
  of n, ``(t_b / t_a) ** (log 2 / log(n_b / n_a))`` (2.0 = linear cost);
* ``accuracy_vs_cost``: n = 10 normal, all entries, by numeric.probs,
  the article's K-point quantile rule, Monte Carlo and
  scipy.stats.multivariate_normal.cdf (p_i as the (n-1)-dimensional orthant
  probability of the differences eps_j - eps_i, covariance I + 11^T), each
  with its max relative error against derive.oracle (30 digits);
* ``vjp``: cost of numeric.probs_vjp relative to numeric.probs;
* ``phases``: where the large-n engine spends its time (one row, median
  per step: sort + bin moments, log F on the grid, node integrals, the
  evaluation at the scores), next to softmax on the same input;
* ``memory``: tracemalloc peak during numeric.probs for n = 1e6 and for a
  1000 x 1000 batch (the input is allocated before tracing starts);
* ``oracle``: wall time of derive.oracle.probs at 30 digits.

``run(quick=True)`` uses tiny sizes (a smoke test of a few seconds).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

__all__ = ["run", "machine_info", "SCHEMA"]

SCHEMA = 1

_FULL = {
    "scaling_families": ("gumbel", "normal", "logistic", "cauchy", "gumbel_min"),
    "scaling_n": (1_000, 10_000, 100_000, 1_000_000),
    "repeats": 7,
    "min_sample_s": 0.05,
    "quantile_K": (10, 100, 1000, 10_000),
    "mc_samples": (1_000, 10_000, 100_000, 1_000_000),
    "mvn_repeats": 3,
    "oracle_dps": 30,
    "vjp_families": ("gumbel", "normal", "logistic", "cauchy", "gumbel_min"),
    "vjp_n": (10_000, 100_000),
    "memory": (("n = 1e6", (1_000_000,)), ("batch 1000 x 1000", (1000, 1000))),
    "phases": (("normal", 100_000), ("logistic", 100_000), ("cauchy", 100_000)),
    "oracle_n10_families": ("gumbel", "gumbel_min", "normal", "logistic", "laplace",
                            "exponential", "uniform", "cauchy", "student_t"),
    "oracle_large": (("normal", 1000),),
}

_QUICK = {
    "scaling_families": ("gumbel", "normal"),
    "scaling_n": (100, 1_000),
    "repeats": 3,
    "min_sample_s": 0.005,
    "quantile_K": (10, 100),
    "mc_samples": (1_000, 10_000),
    "mvn_repeats": 1,
    "oracle_dps": 20,
    "vjp_families": ("normal",),
    "vjp_n": (1_000,),
    "memory": (("n = 1e4", (10_000,)), ("batch 10 x 100", (10, 100))),
    "phases": (("normal", 1_000),),
    "oracle_n10_families": ("gumbel", "normal"),
    "oracle_large": (),
}

#: the n = 10 score vector of the accuracy comparison (spread 4.5: the
#: smallest probability is ~1e-3, where the K-point rule's error shows)
ACCURACY_MU = tuple(round(-2.25 + 0.5 * i, 10) for i in range(10))


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, core count, interpreter and library versions, load."""
    import numpy
    import scipy

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "loadavg_at_start": load,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


def _loop_count(fn, min_sample_s: float):
    """(calls per timing sample so that one sample lasts >= min_sample_s, seconds per call seen)."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_sample_s or number >= 1 << 20:
            return number, dt / number
        number = max(number * 2, int(number * min_sample_s / max(dt, 1e-9) * 1.2))


def _sample(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


#: a measurement set whose calls are slow gets fewer repeats (at most ~this many seconds)
_BUDGET_S = 20.0


def _paired_median(fns, repeats: int, min_sample_s: float) -> list[float]:
    """Median seconds per call of each function, sampled alternately.

    Slow calls (seconds each) get fewer repeats so that one measurement set
    stays within about ``_BUDGET_S`` seconds; the calibration call counts as
    a sample then.
    """
    calib = [_loop_count(f, min_sample_s) for f in fns]
    numbers = [c[0] for c in calib]
    per_round = sum(n * t for n, t in calib)
    reps = max(1, min(repeats, int(_BUDGET_S / max(per_round, 1e-12))))
    samples = [[t] if reps < repeats else [] for _, t in calib]
    for _ in range(reps if reps == repeats else reps - 1):
        for k, f in enumerate(fns):
            samples[k].append(_sample(f, numbers[k]))
    return [statistics.median(s) for s in samples]


def _growth(t_a, t_b, n_a, n_b):
    if not (t_a > 0 and t_b > 0 and n_b > n_a):
        return None
    return (t_b / t_a) ** (math.log(2.0) / math.log(n_b / n_a))


def _rel_errors(values, exact):
    """(relative errors per entry, absolute errors per entry) of floats vs mpf values."""
    import mpmath

    rel, ab = [], []
    for v, o in zip(values, exact):
        d = abs(mpmath.mpf(float(v)) - o)
        ab.append(float(d))
        rel.append(float(d / abs(o)) if o != 0 else (0.0 if d == 0 else math.inf))
    return rel, ab


def _say(verbose, msg):
    if verbose:
        print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------


def _scaling(cfg, verbose):
    import numpy as np
    from scipy.special import softmax

    import numeric

    rows = []
    for fam in cfg["scaling_families"]:
        prev = None
        for n in cfg["scaling_n"]:
            mu = np.random.default_rng(n).standard_normal(n) * 2.0
            f_num = lambda: numeric.probs(mu, fam)  # noqa: E731
            f_soft = lambda: softmax(mu)  # noqa: E731
            t_num, t_soft = _paired_median([f_num, f_soft], cfg["repeats"], cfg["min_sample_s"])
            row = {"family": fam, "n": n, "time_s": t_num, "softmax_s": t_soft, "ratio": t_num / t_soft,
                   "growth_per_doubling": _growth(prev[1], t_num, prev[0], n) if prev else None}
            rows.append(row)
            prev = (n, t_num)
            _say(verbose, f"  scaling {fam:9s} n={n:>8d}  {t_num * 1e3:10.3f} ms  {row['ratio']:8.2f} x softmax")
        first = [r for r in rows if r["family"] == fam]
        if len(first) >= 2:
            rows_f = first
            overall = _growth(rows_f[0]["time_s"], rows_f[-1]["time_s"], rows_f[0]["n"], rows_f[-1]["n"])
            rows_f[-1]["growth_overall"] = overall
    return {"input": "mu = 2 * standard_normal(n), seed n", "rows": rows}


def _mvn_all_entries(mu, **kw):
    """All p_i of normal noise as (n-1)-dim orthant probabilities (scipy).

    p_i = P[eps_j - eps_i < mu_i - mu_j for all j != i]; the differences
    D_j = eps_j - eps_i are jointly normal with Var 2 and Cov 1.
    """
    import numpy as np
    from scipy.stats import multivariate_normal

    mu = np.asarray(mu, dtype=np.float64)
    n = mu.size
    cov = np.eye(n - 1) + np.ones((n - 1, n - 1))
    out = np.empty(n)
    for i in range(n):
        b = mu[i] - np.delete(mu, i)
        out[i] = multivariate_normal.cdf(b, mean=np.zeros(n - 1), cov=cov, **kw)
    return out


def _accuracy_vs_cost(cfg, verbose):
    import numpy as np

    import numeric
    from . import oracle

    mu = np.asarray(ACCURACY_MU, dtype=np.float64)
    exact = oracle.probs([float(m) for m in mu], "normal", dps=cfg["oracle_dps"])
    runs = []

    def record(method, setting, fn, repeats):
        t = _paired_median([fn], repeats, cfg["min_sample_s"])[0]
        p = np.asarray(fn(), dtype=np.float64)
        rel, ab = _rel_errors(p, exact)
        runs.append({"method": method, "setting": setting, "time_s": t, "max_rel_err": max(rel),
                     "max_abs_err": max(ab), "rel_err": rel, "min_p": float(min(exact))})
        _say(verbose, f"  n=10 normal {method:12s} {setting:10s} {t * 1e3:10.4f} ms  max rel err {max(rel):.2e}")

    record("auto", "", lambda: numeric.probs(mu, "normal"), cfg["repeats"])
    record("quadrature", "", lambda: numeric.probs(mu, "normal", method="quadrature"), cfg["repeats"])
    # many vectors at once (a training batch): method="batch" vectorises over rows; the
    # time reported is per vector (batch time / rows), the error is that of row 0 (= mu)
    rows = 1000 if cfg["repeats"] > 5 else 20
    batch = np.tile(mu, (rows, 1))
    t_batch = _paired_median([lambda: numeric.probs(batch, "normal", method="batch")],
                             max(1, cfg["repeats"] // 4), cfg["min_sample_s"])[0] / rows
    p_batch = np.asarray(numeric.probs(batch, "normal", method="batch")[0], dtype=np.float64)
    rel, ab = _rel_errors(p_batch, exact)
    runs.append({"method": "batch", "setting": f"per vector, {rows} rows", "time_s": t_batch,
                 "max_rel_err": max(rel), "max_abs_err": max(ab), "rel_err": rel,
                 "min_p": float(min(exact))})
    _say(verbose, f"  n=10 normal batch        per vector {t_batch * 1e3:10.4f} ms  max rel err {max(rel):.2e}")
    for K in cfg["quantile_K"]:
        record("quantile", f"K={K}", lambda K=K: numeric.probs(mu, "normal", method="quantile", K=K),
               cfg["repeats"])
    for s in cfg["mc_samples"]:
        record("monte_carlo", f"{s:.0e}".replace("e+0", "e"),
               lambda s=s: numeric.probs(mu, "normal", method="monte_carlo", samples=s, seed=0),
               max(1, cfg["repeats"] // 2))
    # scipy's default tolerances (abseps = releps = 1e-5), as a user would call it
    record("scipy_mvn", "", lambda: _mvn_all_entries(mu), cfg["mvn_repeats"])
    by = {(r["method"], r["setting"]): r for r in runs}
    mvn = by[("scipy_mvn", "")]["time_s"]
    summary = {
        "speedup_auto_vs_scipy_mvn": mvn / by[("auto", "")]["time_s"],
        "speedup_batch_per_vector_vs_scipy_mvn": mvn / t_batch,
    }
    return {"mu": [float(m) for m in mu], "oracle_dps": cfg["oracle_dps"], "oracle_p": [float(o) for o in exact],
            "runs": runs, "summary": summary}


def _vjp(cfg, verbose):
    import numpy as np

    import numeric

    rows = []
    for n in cfg["vjp_n"]:
        rng = np.random.default_rng(n)
        mu = rng.standard_normal(n) * 2.0
        cot = rng.standard_normal(n)
        for fam in cfg["vjp_families"]:
            t_p, t_v = _paired_median([lambda: numeric.probs(mu, fam), lambda: numeric.probs_vjp(mu, cot, fam)],
                                      cfg["repeats"], cfg["min_sample_s"])
            rows.append({"family": fam, "n": n, "probs_s": t_p, "vjp_s": t_v, "ratio": t_v / t_p})
            _say(verbose, f"  vjp {fam:9s} n={n}  probs {t_p * 1e3:.3f} ms  vjp {t_v * 1e3:.3f} ms  "
                          f"ratio {t_v / t_p:.2f}")
    return {"rows": rows}


def _phases(cfg, verbose):
    """Median time of each step of ``numeric._fast`` for one row (diagnostic)."""
    import numpy as np
    from scipy.special import softmax

    from numeric import _fast
    from numeric.families import get_family

    rows = []
    for name, n in cfg["phases"]:
        fam = get_family(name)
        spec = _fast._SPECS[name]
        cache = _fast._cache_for(fam)
        z = np.random.default_rng(n).standard_normal(n) * 2.0
        z -= z.max()
        geo = _fast._Geo(z, spec)
        M = _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)
        steps = {"sort + bin moments": lambda: _fast._bin_moments(z, geo.lo, geo.invH, geo.P, spec.R)}
        if name == "cauchy":
            from numeric._fast_cauchy import cauchy_nodes
            logg, _ = cauchy_nodes(z, fam, geo, M, spec, cache)
            steps["near grid + multipole node integrals"] = lambda: cauchy_nodes(z, fam, geo, M, spec, cache)
        else:
            LF = _fast._GridSum(M, geo, spec, cache)
            logg, _ = _fast._node_integrals(geo, LF, fam, spec)   # fills LF where needed

            def log_f(h0=LF.h0, h1=LF.h1):
                # what a row computes: coarse rows, then exact rows over the windows' union
                g = _fast._GridSum(M, geo, spec, cache)
                g.coarse()
                g.ensure(h0, h1)
            steps["log F on the grid"] = log_f
            steps["node integrals"] = lambda: _fast._node_integrals(geo, LF, fam, spec)
        steps["evaluation at the scores"] = lambda: _fast._eval_at_scores(z, geo, logg)
        steps["whole row (log p)"] = lambda: _fast._row_log_probs(z, fam, spec, cache)
        fns = list(steps.values()) + [lambda: softmax(z)]
        times = _paired_median(fns, cfg["repeats"], cfg["min_sample_s"])
        t_soft = times[-1]
        for (label, _), t in zip(steps.items(), times):
            rows.append({"family": name, "n": n, "step": label, "time_s": t, "softmax_s": t_soft,
                         "ns_per_score": t / n * 1e9})
            _say(verbose, f"  phases {name} n={n} {label:40s} {t * 1e3:8.3f} ms")
        rows.append({"family": name, "n": n, "step": "scipy.special.softmax", "time_s": t_soft,
                     "softmax_s": t_soft, "ns_per_score": t_soft / n * 1e9})
        rows[-1]["grid"] = {"P": geo.P, "G": geo.G, "K": geo.K}
    return {"rows": rows}


def _memory(cfg, verbose):
    import numpy as np

    import numeric

    rows = []
    for fam in ("normal",):
        for label, shape in cfg["memory"]:
            mu = np.random.default_rng(3).standard_normal(shape) * 2.0
            numeric.probs(mu[..., :8], fam)  # warm caches outside the trace
            tracemalloc.start()
            tracemalloc.reset_peak()
            out = numeric.probs(mu, fam)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            mb = 1024.0 * 1024.0
            out_mb = np.asarray(out).nbytes / mb
            rows.append({"family": fam, "case": label, "shape": list(shape), "input_mb": mu.nbytes / mb,
                         "output_mb": out_mb, "peak_mb": peak / mb, "extra_mb": peak / mb - out_mb})
            del out
            _say(verbose, f"  memory {fam} {label}: peak {peak / mb:.1f} MB (output {out_mb:.1f} MB)")
    return {"tool": "tracemalloc (numpy allocations; input allocated before tracing)", "rows": rows}


def _oracle_timings(cfg, verbose, timeout_s):
    """derive.oracle.timing_report: n = 10 per family in-process, the large
    case in a subprocess that is stopped after ``timeout_s`` seconds."""
    import subprocess

    from . import oracle

    dps = cfg["oracle_dps"]
    rows = []
    small = oracle.timing_report(dps=dps, n_small=10, families=cfg["oracle_n10_families"], large=False)
    for case, t in small.items():
        rows.append({"case": case, "time_s": t})
        _say(verbose, f"  oracle {case}: {t:.3f} s")
    for fam, n in cfg["oracle_large"]:
        code = ("import json, sys; from derive.oracle import timing_report; "
                f"print(json.dumps(timing_report(dps={dps}, families=(), n_large={n}, large=True)))")
        case = f"{fam} n={n} dps={dps}"
        try:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append({"case": case, "time_s": None, "note": f"failed: {last}"})
            else:
                for k, t in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                    rows.append({"case": k, "time_s": t})
        except subprocess.TimeoutExpired:
            rows.append({"case": case, "time_s": None, "note": f"stopped after {timeout_s:g} s"})
        _say(verbose, f"  oracle {rows[-1]}")
    return {"function": "derive.oracle.timing_report",
            "inputs": "n = 10: scores linspace(0, -4, 10); n = 1000: a seeded standard normal sample",
            "rows": rows}


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------


def _default_paths(out, md):
    from . import notes

    if out is None:
        out = Path(notes.default_outdir()) / "data" / "bench.json"
    out = Path(out)
    if md is None:
        base = out.parent.parent if out.parent.name == "data" else out.parent
        md = base / "benchmarks.md"
    return out, Path(md)


def run(out=None, *, quick: bool = False, md=None, verbose: bool = True, oracle_timeout_s: float = 900.0) -> dict:
    """Measure everything, write ``out`` (JSON) and the report ``md``.

    The report (``benchmarks.md``) and its two figures
    (``figures/accuracy_vs_cost.png``, ``figures/bench_scaling.png``, next
    to it) are rendered by :mod:`derive.notes` from the JSON alone, exactly
    as ``perturbmax notes`` renders them.  Returns the result dict.
    """
    from . import notes

    cfg = _QUICK if quick else _FULL
    out, md = _default_paths(out, md)
    t_start = time.perf_counter()
    result = {"schema": SCHEMA, "quick": bool(quick), "machine": machine_info(),
              "config": {k: v for k, v in cfg.items()}}
    _say(verbose, "bench: scaling vs scipy.special.softmax")
    result["scaling"] = _scaling(cfg, verbose)
    _say(verbose, "bench: n = 10 normal, accuracy vs cost")
    result["accuracy_vs_cost"] = _accuracy_vs_cost(cfg, verbose)
    _say(verbose, "bench: probs_vjp / probs")
    result["vjp"] = _vjp(cfg, verbose)
    _say(verbose, "bench: large-n engine phases")
    result["phases"] = _phases(cfg, verbose)
    _say(verbose, "bench: peak memory")
    result["memory"] = _memory(cfg, verbose)
    _say(verbose, "bench: oracle timings")
    result["oracle"] = _oracle_timings(cfg, verbose, oracle_timeout_s)
    result["total_s"] = time.perf_counter() - t_start

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(result), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    files = notes.bench_outputs(json.loads(out.read_text(encoding="utf-8")))
    for rel, data in files.items():
        target = md if rel == "benchmarks.md" else md.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if verbose:
        print(files["benchmarks.md"].decode("utf-8"))
        print(f"wrote {out} and {md}", file=sys.stderr)
    return result


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return _jsonable(obj.item())
    return obj
