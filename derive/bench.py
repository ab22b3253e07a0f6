"""``perturbmax bench``: the speed matrix of the numeric engine, and more.

Main table (section ``matrix``): every family x shape x operation,

* families: gumbel, normal, logistic, cauchy, gumbel_min, laplace,
  exponential, uniform, student_t (nu = 3), and a user family (Frechet
  noise given as a sympy CDF, compiled by ``derive``: :func:`_user_family`);
* shapes (rows, n): (1, 3), (1, 10), (1, 100), (1, 1e3), (1, 1e5), (1, 1e6),
  (1000, 10), (256, 1000), (64, 32000), (8, 256000), reduced along the last axis;
* operations: ``probs``, ``log_probs``, and ``probs_vjp`` / ``log_probs_vjp``
  each with a one-hot cotangent (one 1 per row, what ``nll_loss`` sends back)
  and a dense one (standard normal entries);

on inputs drawn as users have them: ``s * rng.normal(size=shape)`` for
s = 1, 2, 5, and rows of a few tight clusters with exact ties
(:func:`scores`).  Every call goes through the public entry points
(``numeric.probs`` ... ``numeric.log_probs_vjp``, ``numeric.torch``).

Method.  Each cell is timed against a baseline on the same array in the
same run: ``scipy.special.softmax`` for ``probs`` / ``log_probs``; softmax
plus its VJP in numpy, ``p * (g - sum(p * g))``, for ``probs_vjp``; softmax
plus the VJP of ``log softmax``, ``g - p * sum(g)``, for ``log_probs_vjp``.
The two are sampled alternately, each sample a loop of calls lasting at
least ``SAMPLE_S`` (so the clock's resolution and the loop overhead do not
count), until the cell's time budget is spent and at least
``min_samples`` samples were taken; the minimum seconds per call over the
samples is kept (the least disturbed run: on a shared machine other load
only ever adds time), wall time (``time.perf_counter``) and CPU time
(``time.process_time``, all threads of the process) separately.  A cell's
ratio is the worst (largest) over the input kinds.

Before any timing the allocator is warmed: one ~31 MiB array is allocated
and freed, which makes glibc raise its mmap threshold to that size, so the
later arrays (up to 16 MB here) come from the heap instead of fresh
zero-filled pages that fault on every call.

Slow cells cannot stall the run: a single call using more than
``call_cap_s`` of CPU time is interrupted (SIGALRM, where available) and
recorded as "capped" (no repeats, the other input kinds not tried; the
ratio is at least the call's wall time so far over the baseline's, and
the report judges the target by that lower bound), and the larger shapes
of the same (family, operation) -- at least as many rows, each at least
as long -- are recorded as "skipped".  A cell
that has taken ``cell_limit_s`` and already misses its target leaves its
remaining input kinds out (its worst ratio is then a lower bound, and the
report says so).  An exception is recorded in the cell
(``NotImplementedError`` as "not implemented") and the run continues.

Other sections: ``memory`` (tracemalloc peak of every family and
operation at the largest single-vector shape: numpy's allocations are
traced), ``torch`` (``perturbed_log_softmax`` + ``nll_loss`` forward and
backward in float32 against ``torch.log_softmax`` + ``nll_loss``), ``cli``
(wall time of ``perturbmax --help`` and of a bad-input call in a fresh
process), ``accuracy`` (n = 10 normal: numeric against the article's K-point
rule, Monte Carlo and scipy's multivariate normal CDF, errors against
the oracle) and ``oracle`` (``derive.oracle.timing_report``).

The targets and the report live in :mod:`derive.bench_report`; this
module only measures.  Nothing is written unless asked: :func:`run` takes
an ``output`` path for the raw JSON and a ``notes_dir`` to update
``data/bench.json``, ``benchmarks.md`` and its figures there.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from .bench_report import SCHEMA, TORCH_TARGETS, shape_label

__all__ = ["run", "machine_info", "scores", "cotangent", "SCHEMA", "FAMILIES", "SHAPES", "OPS", "KINDS",
           "SECTIONS", "CallCapExceeded"]


#: a user family, given to derive as a sympy CDF and compiled for numeric (see _user_family)
USER_FAMILY = "user:frechet2"
FAMILIES = ("gumbel", "normal", "logistic", "cauchy", "gumbel_min", "laplace", "exponential", "uniform",
            "student_t", USER_FAMILY)
FAMILY_PARAMS = {"student_t": {"nu": 3.0}}
SHAPES = ((1, 3), (1, 10), (1, 100), (1, 1_000), (1, 100_000), (1, 1_000_000),
          (1000, 10), (256, 1000), (64, 32_000), (8, 256_000))
OPS = ("probs", "log_probs", "probs_vjp:one-hot", "probs_vjp:dense", "log_probs_vjp:one-hot",
       "log_probs_vjp:dense")
KINDS = ("s=1", "s=2", "s=5", "clusters+ties")
SECTIONS = ("matrix", "memory", "torch", "cli", "accuracy", "oracle")
TORCH_SHAPES = tuple(TORCH_TARGETS)

#: a timing sample is a loop of calls lasting at least this long (short samples are
#: more often undisturbed by other processes; long enough for the clock and loop overhead)
SAMPLE_S = 5e-4
#: a call slower than SLOW_CALL_S is not repeated, one slower than MID_CALL_S only once
SLOW_CALL_S, MID_CALL_S = 0.5, 0.1
#: the fewest samples (each ``SAMPLE_S`` long, or one call) the baseline's minimum is taken over
BASE_MIN_SAMPLES = 15

_FULL = {
    "families": FAMILIES,
    "shapes": SHAPES,
    "ops": OPS,
    "kinds": KINDS,
    "cell_budget_s": 0.1,      # per input kind, both functions together
    "min_samples": 3,
    "call_cap_s": 1.0,
    "cell_limit_s": 1.0,       # no further input kind once a cell has taken this long and misses
    "memory_shape": (1, 1_000_000),
    "torch_shapes": TORCH_SHAPES,
    "cli_runs": 5,
    "quantile_K": (10, 100, 1000, 10_000),
    "mc_samples": (1_000, 10_000, 100_000, 1_000_000),
    "batch_rows": 1000,
    "oracle_dps": 30,
    "oracle_n10_families": FAMILIES,
    "oracle_large": (("normal", 1000),),
}

_QUICK = {
    "families": ("gumbel", "normal", "cauchy", "student_t"),
    "shapes": ((1, 10), (1, 1_000), (8, 10)),
    "ops": OPS,
    "kinds": KINDS,
    "cell_budget_s": 0.01,
    "min_samples": 2,
    "call_cap_s": 0.3,
    "cell_limit_s": 0.5,
    "memory_shape": (1, 1_000),
    "torch_shapes": ((16, 100),),
    "cli_runs": 1,
    "quantile_K": (10, 100),
    "mc_samples": (1_000, 10_000),
    "batch_rows": 20,
    "oracle_dps": 20,
    "oracle_n10_families": ("gumbel", "normal"),
    "oracle_large": (),
}

#: the n = 10 score vector of the accuracy comparison (spread 4.5: the
#: smallest probability is ~1e-3, where the K-point rule's error shows)
ACCURACY_MU = tuple(round(-2.25 + 0.5 * i, 10) for i in range(10))


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _rng(shape, kind, salt=0):
    import numpy as np

    return np.random.default_rng([salt, *shape, KINDS.index(kind)])


def scores(kind: str, shape, salt: int = 0):
    """Scores of one input kind, float64 array of ``shape`` (rows, n), seeded by (shape, kind).

    ``"s=1"``, ``"s=2"``, ``"s=5"``: ``s * rng.normal(size=shape)``.
    ``"clusters+ties"``: per row up to four cluster centres ``3 * N(0, 1)``,
    each entry a centre plus ``1e-3 * N(0, 1)`` jitter (near-ties, far
    below the noise scale 1); then a quarter of the entries copy another
    entry of their row exactly, and the row maximum gets an exact twin
    (ties at the top, where most of the probability sits).  Every family
    sees the same arrays, so per-shape comparisons between families are
    on equal inputs.

    >>> x = scores("clusters+ties", (2, 50))
    >>> x.shape, bool((x == x.max(axis=1, keepdims=True)).sum(axis=1).min() >= 2)
    ((2, 50), True)
    """
    import numpy as np

    if kind not in KINDS:
        raise ValueError(f"kind: unknown {kind!r}; choose from {', '.join(KINDS)}")
    rows, n = shape
    rng = _rng(shape, kind)
    if kind.startswith("s="):
        return float(kind[2:]) * rng.normal(size=shape)
    k = max(1, min(4, n // 3))
    centres = 3.0 * rng.normal(size=(rows, k))
    x = np.take_along_axis(centres, rng.integers(0, k, size=shape), axis=1)
    x += 1e-3 * rng.normal(size=shape)
    if n >= 2:
        copied = np.take_along_axis(x, rng.integers(0, n, size=shape), axis=1)
        x = np.where(rng.random(size=shape) < 0.25, copied, x)
        r = np.arange(rows)
        top = np.argmax(x, axis=1)
        twin = (top + 1 + rng.integers(0, n - 1, size=rows)) % n
        x[r, twin] = x[r, top]
    return x


def cotangent(kind: str, shape, which: str):
    """Cotangent for a VJP: ``"one-hot"`` (a 1 at a random index per row) or ``"dense"`` (N(0, 1))."""
    import numpy as np

    rng = _rng(shape, kind, salt=1)
    if which == "dense":
        return rng.normal(size=shape)
    if which != "one-hot":
        raise ValueError(f"cotangent: unknown kind {which!r}; choose one-hot or dense")
    g = np.zeros(shape)
    g[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = 1.0
    return g


_COMPILED = {}


def _user_family():
    """Frechet noise of shape 2, ``F(x) = exp(-x**-2)`` on ``x > 0``, the way a user brings a family:
    a sympy CDF given to :func:`derive.family_from_cdf`, compiled by ``Family.to_numeric()``
    (verified kernels) and run through numeric's general path.  Compiled once per process; a
    failure is kept and re-raised for every cell."""
    if USER_FAMILY not in _COMPILED:
        try:
            import sympy as sp

            from . import family_from_cdf

            x = sp.Symbol("x", real=True)
            _COMPILED[USER_FAMILY] = family_from_cdf(sp.exp(-x ** -2), x, sp.Interval(0, sp.oo),
                                                     name="frechet2").to_numeric()
        except Exception as exc:  # kept: every cell of this family reports it
            _COMPILED[USER_FAMILY] = exc
    fam = _COMPILED[USER_FAMILY]
    if isinstance(fam, Exception):
        raise fam
    return fam


def _family_arg(family):
    """What numeric's entry points take for a bench family: the registry name or the compiled user family."""
    return _user_family() if family == USER_FAMILY else family


def _op_pair(op, family, x, g):
    """(numeric call, baseline call) of one operation on the arrays x (scores) and g (cotangent)."""
    import numpy as np
    from scipy.special import softmax

    import numeric

    params = FAMILY_PARAMS.get(family, {})
    family = _family_arg(family)
    name = op.split(":")[0]
    if name == "probs":
        return (lambda: numeric.probs(x, family, **params)), (lambda: softmax(x, axis=-1))
    if name == "log_probs":
        return (lambda: numeric.log_probs(x, family, **params)), (lambda: softmax(x, axis=-1))
    if name == "probs_vjp":
        def base():
            p = softmax(x, axis=-1)
            return p * (g - np.sum(p * g, axis=-1, keepdims=True))
        return (lambda: numeric.probs_vjp(x, g, family, **params)), base
    if name == "log_probs_vjp":
        def base():
            p = softmax(x, axis=-1)
            return g - p * np.sum(g, axis=-1, keepdims=True)
        return (lambda: numeric.log_probs_vjp(x, g, family, **params)), base
    raise ValueError(f"op: unknown {op!r}; choose from {', '.join(OPS)}")


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


class CallCapExceeded(BaseException):
    """One call ran past the per-call cap (a BaseException, so the engine's
    ``except Exception`` fallbacks do not swallow it).  ``wall_s``: the wall
    time the call had taken; ``base_s``: the baseline's time on the same
    input, when known."""

    base_s = None

    @property
    def wall_s(self):
        return self.args[0] if self.args else None


#: a capped call is interrupted after this many times the cap in wall time whatever its CPU time
#: (a crowded machine cannot stall the run)
HARD_WALL_FACTOR = 5.0
_ARMED = {}


def _on_alarm(_signum, _frame):
    cpu = time.process_time() - _ARMED["c0"]
    wall = time.perf_counter() - _ARMED["w0"]
    left = min(_ARMED["cap"] - cpu, HARD_WALL_FACTOR * _ARMED["cap"] - wall)
    if left > 0:  # the process was descheduled: its CPU time is not spent yet
        signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
        return
    raise CallCapExceeded(wall)


def _can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def call_capped(fn, cap_s):
    """``(result, wall seconds, CPU seconds)`` of one call of ``fn``.

    Raises :class:`CallCapExceeded` when the call uses more than ``cap_s``
    seconds of CPU time (all threads), or runs ``HARD_WALL_FACTOR * cap_s``
    seconds of wall time: CPU time, so that other load on the machine does
    not cap a call that would fit.  SIGALRM interrupts the call at the next
    Python bytecode (a single numpy operation finishes first); without it
    (Windows, or off the main thread) a slow call is detected only after it
    returns.
    """
    arm = cap_s is not None and _can_interrupt()
    if arm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        if arm:
            _ARMED.update(w0=w0, c0=c0, cap=cap_s)
            signal.setitimer(signal.ITIMER_REAL, cap_s)
        out = fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        if arm:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, old)
    if cap_s is not None and (cpu > cap_s or wall > HARD_WALL_FACTOR * cap_s):
        raise CallCapExceeded(wall)
    return out, wall, cpu


def _sample(fn, number):
    """Seconds per call (wall, CPU) over ``number`` calls, the cyclic garbage collector paused
    (as :mod:`timeit` does: a collection would be charged to whichever call it lands in)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        return (time.perf_counter() - w0) / number, (time.process_time() - c0) / number
    finally:
        if enabled:
            gc.enable()


def min_time(fn, base, *, budget_s, min_samples, cap_s):
    """Minimum seconds per call of ``fn`` (and of ``base``, sampled alternately).

    The first call of each is a warm-up (tables built, pages touched) that
    also counts as a sample; the baseline's comes first, so that a capped
    ``fn`` (:class:`CallCapExceeded`, with ``base_s`` set) still gives a
    lower bound of its ratio.  A call slower than ``MID_CALL_S`` is sampled
    twice in all, one slower than ``SLOW_CALL_S`` once; the baseline at
    least ``BASE_MIN_SAMPLES`` times whatever ``fn`` costs.  Returns
    ``{"time_s", "cpu_s", "calls", "samples"}``, plus the same for the
    baseline with a ``base_`` prefix, ``ratio`` (wall) and ``cpu_ratio``
    when ``base`` is given.
    """
    fns = [fn] if base is None else [fn, base]
    best = [None] * len(fns)
    numbers = [1] * len(fns)
    for k in reversed(range(len(fns))):
        try:
            # the baseline is called twice: its first call may pay a one-time set-up
            # that would weaken the lower bound (fn's wall time / base_s) of a capped fn
            for _ in range(2 if k else 1):
                _, w, c = call_capped(fns[k], cap_s)
                best[k] = [w, c, 1, 1] if best[k] is None else [min(best[k][0], w), min(best[k][1], c), 2, 2]
        except CallCapExceeded as exc:
            if k == 0 and best[-1] is not None:
                exc.base_s = best[-1][0]
            raise
        numbers[k] = max(1, int(SAMPLE_S / max(best[k][0], 1e-9)))
    spent = sum(b[0] for b in best)
    samples = 1
    need = min_samples if best[0][0] <= MID_CALL_S else 2
    while (samples < need or spent < budget_s) and samples < 1000 and best[0][0] <= SLOW_CALL_S:
        for k, f in enumerate(fns):
            w, c = _sample(f, numbers[k])
            b = best[k]
            b[0], b[1], b[2], b[3] = min(b[0], w), min(b[1], c), b[2] + numbers[k], b[3] + 1
            spent += w * numbers[k]
            numbers[k] = max(1, int(SAMPLE_S / max(b[0], 1e-9)))  # the warm-up call may have been slow
        samples += 1
    # a slow fn leaves its baseline only a few samples, and the minimum of a few calls of a
    # cheap baseline is easily inflated by other load (a descheduled thread): the baseline
    # alone is sampled on until it has BASE_MIN_SAMPLES samples, which costs little
    while base is not None and best[1][3] < BASE_MIN_SAMPLES:
        w, c = _sample(base, numbers[1])
        b = best[1]
        b[0], b[1], b[2], b[3] = min(b[0], w), min(b[1], c), b[2] + numbers[1], b[3] + 1
    res = {"time_s": best[0][0], "cpu_s": best[0][1], "calls": best[0][2], "samples": best[0][3]}
    if base is not None:
        res.update({"base_s": best[1][0], "base_cpu_s": best[1][1], "base_calls": best[1][2],
                    "ratio": best[0][0] / best[1][0],
                    "cpu_ratio": best[0][1] / best[1][1] if best[1][1] > 0 else None})
    return res


def _warm_allocator():
    """Allocate, touch and free ~31 MiB once (see the module docstring)."""
    import numpy as np

    block = np.ones((31 << 20) // 8)
    del block


def _dominates(small, big) -> bool:
    """``big`` has at least as many rows as ``small``, each at least as long.

    Such a shape is assumed at least as slow: the skip rule after a capped
    call.  (More rows of a different length is not: the engine's path
    depends on the row length.)
    """
    return big[0] >= small[0] and big[1] >= small[1]


def _failure(exc) -> tuple:
    if isinstance(exc, NotImplementedError):
        return "not_implemented", f"NotImplementedError: {exc}".rstrip(": ")
    return "error", f"{type(exc).__name__}: {exc}"


class _Skipper:
    """Remembers the smallest capped shape of each key; larger shapes are skipped."""

    def __init__(self):
        self.capped = {}

    def blocker(self, key, shape):
        for small in self.capped.get(key, ()):
            if _dominates(small, shape):
                return small
        return None

    def cap(self, key, shape):
        self.capped.setdefault(key, []).append(tuple(shape))


def _measure_cell(cell, pairs, cfg, skipper, key, limit=None):
    """Fill ``cell`` from ``pairs`` = ``[(kind, (fn, base)), ...]``; the worst kind decides.

    ``limit``: the cell's target ratio, if any.  Once the cell has taken
    ``cfg["cell_limit_s"]`` and its worst ratio so far already misses
    ``limit`` (or there is no target), the remaining kinds are left out:
    they could only make the ratio larger.
    """
    shape = tuple(cell["shape"])
    small = skipper.blocker(key, shape)
    if small is not None:
        cell.update(status="skipped", note=f"a call at {shape_label(small)} was capped at "
                                           f"{cfg['call_cap_s']:g} s")
        return cell
    cell["status"] = "ok"
    t0 = time.perf_counter()
    for kind, make in pairs:
        if (cell["kinds"] and time.perf_counter() - t0 > cfg["cell_limit_s"]
                and (limit is None or max(k["ratio"] for k in cell["kinds"].values()) > limit)):
            cell["kinds_left_out"] = [k for k in cfg["kinds"] if k not in cell["kinds"]]
            cell["note"] = (f"slow: {', '.join(cell['kinds_left_out'])} not measured (the cell's time limit "
                            f"{cfg['cell_limit_s']:g} s was spent)")
            break
        try:
            fn, base = make()
            cell["kinds"][kind] = min_time(fn, base, budget_s=cfg["cell_budget_s"],
                                           min_samples=cfg["min_samples"], cap_s=cfg["call_cap_s"])
        except CallCapExceeded as exc:
            cell.update(status="capped", capped_kind=kind,
                        note=f"one call > {cfg['call_cap_s']:g} s of CPU time ({kind}); not repeated")
            if exc.base_s and exc.wall_s:
                cell["ratio_at_least"] = exc.wall_s / exc.base_s
            skipper.cap(key, shape)
            break
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # recorded in the cell; the run goes on
            cell["status"], cell["note"] = _failure(exc)
            cell["note"] += f" ({kind})"
            break
    if cell["kinds"]:
        worst = max(cell["kinds"], key=lambda k: cell["kinds"][k]["ratio"])
        cell["worst_kind"] = worst
        cell["ratio"] = cell["kinds"][worst]["ratio"]
    cell["elapsed_s"] = time.perf_counter() - t0  # what the cell cost the run (wall)
    return cell


def _say(verbose, msg):
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def _cell_line(cell) -> str:
    head = f"  {cell['family']:13s} {shape_label(cell['shape']):14s} {cell['op']:22s}"
    if cell["status"] == "ok":
        k = cell["kinds"][cell["worst_kind"]]
        return (f"{head} {cell['ratio']:9.2f}x  ({k['time_s'] * 1e3:.3f} ms wall, {k['cpu_s'] * 1e3:.3f} ms CPU; "
                f"worst kind {cell['worst_kind']})")
    return f"{head} {cell['status']}: {cell.get('note', '')}"


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------


def _ordered(shapes):
    return sorted((tuple(int(v) for v in s) for s in shapes), key=lambda s: (s[0] * s[1], s[1]))


def _cell_target(family, op, shape, cells):
    """The target ratio of a matrix cell (student_t: 3x normal's ratio on the same shape), or None."""
    from .bench_report import STUDENT_VS_NORMAL, speed_target

    if family == "student_t":
        ref = [c for c in cells if c["family"] == "normal" and c["op"] == op and tuple(c["shape"]) == shape
               and c["status"] == "ok"]
        return STUDENT_VS_NORMAL * ref[0]["ratio"] if ref else None
    return speed_target(family, op, shape[1])


def _matrix(cfg, verbose):
    skipper = _Skipper()
    cells = []
    for shape in _ordered(cfg["shapes"]):
        xs = {kind: scores(kind, shape) for kind in cfg["kinds"]}
        gs = {}
        for family in cfg["families"]:
            for op in cfg["ops"]:
                which = op.split(":")[1] if ":" in op else None

                def pairs(which=which):
                    for kind in cfg["kinds"]:
                        if which is not None and (kind, which) not in gs:
                            gs[kind, which] = cotangent(kind, shape, which)
                        g = gs.get((kind, which))
                        yield kind, (lambda kind=kind, g=g: _op_pair(op, family, xs[kind], g))

                cell = {"family": family, "shape": list(shape), "op": op, "kinds": {}}
                cells.append(_measure_cell(cell, pairs(), cfg, skipper, (family, op),
                                           _cell_target(family, op, shape, cells)))
                _say(verbose, _cell_line(cell))
    return {"families": list(cfg["families"]), "shapes": [list(s) for s in cfg["shapes"]],
            "ops": list(cfg["ops"]), "kinds": list(cfg["kinds"]), "family_params": FAMILY_PARAMS,
            "cell_budget_s": cfg["cell_budget_s"], "min_samples": cfg["min_samples"],
            "call_cap_s": cfg["call_cap_s"], "cell_limit_s": cfg["cell_limit_s"], "cells": cells}


def _memory(cfg, matrix, verbose):
    """tracemalloc peak of one call per family and operation (kind s=2), and of the baseline."""
    shape = tuple(cfg["memory_shape"])
    kind = "s=2"
    x = scores(kind, shape)
    status = {(c["family"], c["op"]): c for c in (matrix or {}).get("cells", []) if tuple(c["shape"]) == shape}
    rows = []
    mb = 1024.0 * 1024.0

    def traced(fn):
        tracemalloc.start()
        tracemalloc.reset_peak()
        try:
            out, _, _ = call_capped(fn, cfg["call_cap_s"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak, out.nbytes

    for op in cfg["ops"]:
        which = op.split(":")[1] if ":" in op else None
        g = cotangent(kind, shape, which) if which else None
        for family in ("softmax",) + tuple(cfg["families"]):
            row = {"family": family, "op": op, "shape": list(shape), "kind": kind, "input_mb": x.nbytes / mb}
            cell = status.get((family, op))
            if cell is not None and cell["status"] != "ok":
                row.update(status="not_measured", note=f"timing cell {cell['status']}")
                rows.append(row)
                continue
            try:
                fn, base = _op_pair(op, "gumbel" if family == "softmax" else family, x, g)
                peak, out_bytes = traced(base if family == "softmax" else fn)
                row.update(status="ok", peak_mb=peak / mb, output_mb=out_bytes / mb,
                           extra_mb=(peak - out_bytes) / mb)
            except CallCapExceeded:
                row.update(status="capped", note=f"one call > {cfg['call_cap_s']:g} s")
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                row["status"], row["note"] = _failure(exc)
            rows.append(row)
            _say(verbose, f"  memory {family:11s} {op:22s} " + (
                f"peak {row['peak_mb']:.1f} MB, extra {row['extra_mb']:.1f} MB" if row["status"] == "ok"
                else f"{row['status']}: {row.get('note', '')}"))
    return {"tool": "tracemalloc (numpy's allocations are traced; input and cotangent allocated before "
                    "tracing); extra = peak - output bytes",
            "shape": list(shape), "kind": kind, "rows": rows}


def _torch(cfg, verbose):
    try:
        import torch
        import torch.nn.functional as F

        from numeric.torch import perturbed_log_softmax
    except ImportError as exc:
        return {"skipped": f"PyTorch not importable ({exc}); install the [torch] extra"}
    import numpy as np

    skipper = _Skipper()
    cells = []
    for shape in _ordered(cfg["torch_shapes"]):
        xs, ys = {}, {}
        for kind in cfg["kinds"]:
            xs[kind] = torch.from_numpy(scores(kind, shape).astype(np.float32)).requires_grad_(True)
            ys[kind] = torch.from_numpy(_rng(shape, kind, salt=2).integers(0, shape[1], size=shape[0]))
        for family in cfg["families"]:
            params = FAMILY_PARAMS.get(family, {})

            def make(kind):
                x, y, fam = xs[kind], ys[kind], _family_arg(family)

                def step():
                    x.grad = None
                    F.nll_loss(perturbed_log_softmax(x, fam, dim=-1, **params), y).backward()

                def base():
                    x.grad = None
                    F.nll_loss(torch.log_softmax(x, dim=-1), y).backward()
                return step, base

            cell = {"family": family, "shape": list(shape), "op": "log_softmax+nll_loss fwd+bwd", "kinds": {}}
            cells.append(_measure_cell(cell, [(k, lambda k=k: make(k)) for k in cfg["kinds"]], cfg,
                                       skipper, family, TORCH_TARGETS.get(shape)))
            _say(verbose, _cell_line(cell))
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": "float32",
            "cells": cells}


def _cli_command():
    exe = shutil.which("perturbmax")
    return [exe] if exe else [sys.executable, "-m", "derive.cli"]


def _cli_startup(cfg, verbose):
    """Wall time of a fresh ``perturbmax`` process: ``--help`` and a bad-input call."""
    cmd = _cli_command()
    cases = (("perturbmax --help", ["--help"], 0),
             ("perturbmax probs nosuchfamily 0 1", ["probs", "nosuchfamily", "0", "1"], 2))
    rows = []
    for label, args, expect in cases:
        times, codes, note = [], set(), None
        for _ in range(cfg["cli_runs"]):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as exc:
                note = f"{type(exc).__name__}: {exc}"
                break
            times.append(time.perf_counter() - t0)
            codes.add(proc.returncode)
        row = {"command": label, "runs": len(times), "min_s": min(times) if times else None,
               "times_s": times, "exit_codes": sorted(codes), "expected_exit": expect}
        if note:
            row["note"] = note
        rows.append(row)
        _say(verbose, f"  cli {label}: " + (f"{row['min_s']:.3f} s (min of {len(times)})" if times else note))
    return {"executable": " ".join(cmd), "rows": rows}


def _mvn_all_entries(mu):
    """All p_i of normal noise as (n-1)-dim orthant probabilities (scipy, default tolerances).

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
        out[i] = multivariate_normal.cdf(mu[i] - np.delete(mu, i), mean=np.zeros(n - 1), cov=cov)
    return out


def _rel_errors(values, exact):
    """(relative errors per entry, absolute errors per entry) of floats vs mpf values."""
    import mpmath

    rel, ab = [], []
    for v, o in zip(values, exact):
        d = abs(mpmath.mpf(float(v)) - o)
        ab.append(float(d))
        rel.append(float(d / abs(o)) if o != 0 else (0.0 if d == 0 else math.inf))
    return rel, ab


def _accuracy_vs_cost(cfg, verbose):
    """n = 10 normal, all entries: numeric vs the K-point rule, Monte Carlo and scipy's MVN CDF."""
    import numpy as np

    import numeric
    from . import oracle

    mu = np.asarray(ACCURACY_MU, dtype=np.float64)
    exact = oracle.probs([float(m) for m in mu], "normal", dps=cfg["oracle_dps"])
    runs = []

    def record(method, setting, fn, per=1):
        try:
            t = min_time(fn, None, budget_s=10 * cfg["cell_budget_s"], min_samples=cfg["min_samples"],
                         cap_s=cfg["call_cap_s"])["time_s"] / per
            p = np.asarray(fn(), dtype=np.float64).reshape(-1, mu.size)[0]
        except CallCapExceeded:
            runs.append({"method": method, "setting": setting, "time_s": None,
                         "note": f"one call > {cfg['call_cap_s']:g} s"})
            return
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            runs.append({"method": method, "setting": setting, "time_s": None, "note": _failure(exc)[1]})
            return
        rel, ab = _rel_errors(p, exact)
        runs.append({"method": method, "setting": setting, "time_s": t, "max_rel_err": max(rel),
                     "max_abs_err": max(ab), "rel_err": rel, "min_p": float(min(exact))})
        _say(verbose, f"  n=10 normal {method:12s} {setting:18s} {t * 1e3:10.4f} ms  max rel err {max(rel):.2e}")

    record("auto", "", lambda: numeric.probs(mu, "normal"))
    record("quadrature", "", lambda: numeric.probs(mu, "normal", method="quadrature"))
    # many vectors at once (a training batch): the time is per vector, the error that of row 0 (= mu)
    rows = cfg["batch_rows"]
    batch = np.tile(mu, (rows, 1))
    record("batch", f"per vector, {rows} rows", lambda: numeric.probs(batch, "normal", method="batch"), per=rows)
    for K in cfg["quantile_K"]:
        record("quantile", f"K={K}", lambda K=K: numeric.probs(mu, "normal", method="quantile", K=K))
    for s in cfg["mc_samples"]:
        record("monte_carlo", f"{s:.0e}".replace("e+0", "e"),
               lambda s=s: numeric.probs(mu, "normal", method="monte_carlo", samples=s, seed=0))
    record("scipy_mvn", "", lambda: _mvn_all_entries(mu))
    return {"mu": [float(m) for m in mu], "oracle_dps": cfg["oracle_dps"], "oracle_p": [float(o) for o in exact],
            "runs": runs}


def _oracle_timings(cfg, verbose, timeout_s):
    """derive.oracle.timing_report: n = 10 per family in-process, the large
    case in a subprocess that is stopped after ``timeout_s`` seconds."""
    from . import oracle

    dps = cfg["oracle_dps"]
    rows = []
    for fam in cfg["oracle_n10_families"]:
        try:
            for case, t in oracle.timing_report(dps=dps, n_small=10, families=(fam,), large=False).items():
                rows.append({"case": case, "time_s": t})
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            rows.append({"case": f"{fam} n=10 dps={dps}", "time_s": None, "note": _failure(exc)[1]})
        _say(verbose, f"  oracle {rows[-1]}")
    for fam, n in cfg["oracle_large"]:
        code = ("import json; from derive.oracle import timing_report; "
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
# machine
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


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _blas() -> list:
    """BLAS libraries in use: threadpoolctl when installed, else numpy's build configuration."""
    try:
        from threadpoolctl import threadpool_info

        return [f"{d.get('internal_api')} {d.get('version')} ({d.get('num_threads')} threads)"
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        pass
    import numpy

    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return [f"{blas.get('name')} {blas.get('version')} (numpy build configuration)"]
    except Exception:  # numpy < 1.25 has no dict mode; the BLAS is then not reported
        return []


def machine_info() -> dict:
    """CPU model, core count, interpreter, numpy / scipy / BLAS versions, load average."""
    import numpy
    import scipy

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "blas": _blas(),
        "loadavg_at_start": _loadavg(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
    }


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------


def config(quick=False, *, families=None, shapes=None, ops=None, call_cap_s=None, cell_budget_s=None) -> dict:
    """The run's settings: the full matrix or the ``quick`` smoke subset, optionally narrowed."""
    cfg = dict(_QUICK if quick else _FULL)
    for key, value, universe in (("families", families, FAMILIES), ("ops", ops, OPS)):
        if value is not None:
            bad = [v for v in value if v not in universe]
            if bad or not value:
                raise ValueError(f"{key}: unknown {bad or 'empty list'}; choose from {', '.join(universe)}")
            cfg[key] = tuple(value)
    if shapes is not None:
        if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ValueError("shapes: each must be ROWSxN with positive integers, e.g. 1x1000,256x1000")
        cfg["shapes"] = tuple(tuple(int(v) for v in s) for s in shapes)
        cfg["memory_shape"] = max(cfg["shapes"], key=lambda s: (s[1], -s[0]))
    if call_cap_s is not None:
        cfg["call_cap_s"] = float(call_cap_s)
        cfg["cell_limit_s"] = cfg["call_cap_s"]
    if cell_budget_s is not None:
        cfg["cell_budget_s"] = float(cell_budget_s)
    return cfg


def run(*, quick=False, sections=None, output=None, notes_dir=None, verbose=True, oracle_timeout_s=120.0,
        **narrow) -> dict:
    """Measure; return the result dict (the content of ``bench.json``).

    ``sections``: a subset of :data:`SECTIONS` (default all).  ``narrow``:
    ``families``, ``shapes``, ``ops``, ``call_cap_s``, ``cell_budget_s``
    (see :func:`config`).  Writes nothing unless asked: ``output`` receives
    the raw JSON; ``notes_dir`` receives ``data/bench.json``,
    ``benchmarks.md`` and its figures, rendered by
    :func:`derive.notes.bench_outputs` exactly as ``perturbmax notes``
    renders them.
    """
    from . import bench_report, notes

    cfg = config(quick, **narrow)
    sections = tuple(SECTIONS if sections is None else sections)
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        raise ValueError(f"sections: unknown {bad or 'empty list'}; choose from {', '.join(SECTIONS)}")
    t_start = time.perf_counter()
    result = {"schema": SCHEMA, "quick": bool(quick), "machine": machine_info(),
              "config": {**{k: cfg[k] for k in ("families", "shapes", "ops", "kinds", "cell_budget_s",
                                                 "min_samples", "call_cap_s", "cell_limit_s")},
                         "sample_s": SAMPLE_S}}
    _warm_allocator()
    import numeric  # noqa: F401  (imported here, not inside the first timed call)
    import scipy.special  # noqa: F401
    if USER_FAMILY in cfg["families"]:
        _say(verbose, f"bench: compiling {USER_FAMILY} (derive.family_from_cdf(...).to_numeric())")
        try:
            _user_family()
        except Exception:  # reported by every cell of the family
            pass
    if "matrix" in sections:
        _say(verbose, "bench: matrix (family x shape x operation) vs scipy.special.softmax")
        result["matrix"] = _matrix(cfg, verbose)
    if "memory" in sections:
        _say(verbose, f"bench: memory at shape {shape_label(cfg['memory_shape'])}")
        result["memory"] = _memory(cfg, result.get("matrix"), verbose)
    if "torch" in sections:
        _say(verbose, "bench: PyTorch adapter, log_softmax + nll_loss forward + backward")
        result["torch"] = _torch(cfg, verbose)
    if "cli" in sections:
        _say(verbose, "bench: CLI start-up")
        result["cli"] = _cli_startup(cfg, verbose)
    if "accuracy" in sections:
        _say(verbose, "bench: n = 10 normal, accuracy vs cost")
        result["accuracy_vs_cost"] = _accuracy_vs_cost(cfg, verbose)
    if "oracle" in sections:
        _say(verbose, "bench: oracle timings")
        result["oracle"] = _oracle_timings(cfg, verbose, oracle_timeout_s)
    result["machine"]["loadavg_at_end"] = _loadavg()
    result["total_s"] = time.perf_counter() - t_start
    result = json.loads(json.dumps(_jsonable(result)))

    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        _say(verbose, f"wrote {output}")
    if notes_dir is not None:
        notes_dir = Path(notes_dir)
        target = notes_dir / "data" / "bench.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        for rel, data in notes.bench_outputs(result).items():
            (notes_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (notes_dir / rel).write_bytes(data)
        _say(verbose, f"wrote {target}, {notes_dir / 'benchmarks.md'} and its figures")
    if verbose:
        print(bench_report.summary(result))
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
