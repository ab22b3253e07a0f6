"""The benchmark report: targets and the text of ``benchmarks.md``, from ``bench.json`` alone.

:mod:`derive.bench` measures; this module judges and renders, and
:func:`derive.notes.bench_outputs` adds the figures, so that ``perturbmax
notes`` (which never times anything) and ``perturbmax bench --update-notes``
produce the same files from the same JSON.

Targets (issue #13, ratios to the baseline of each operation on the same
array, worst input kind):

* gumbel: ``probs`` / ``log_probs`` <= 1.2x softmax, VJPs <= 2.5x softmax + its VJP;
* normal, logistic, cauchy, gumbel_min, laplace, exponential, uniform:
  <= 20x for rows of n >= 1000, <= 60x for n <= 100 (every operation);
* student_t: <= 3x the normal family's time on the same array and operation;
* every VJP <= 3x the same family's ``probs`` on the same array;
* linear growth: <= 12.5x time per 10x n between the single-row shapes of
  n = 1e3 .. 1e6;
* extra memory at the largest single row <= 4x the input's bytes + 32 MiB;
* PyTorch ``perturbed_log_softmax`` + ``nll_loss`` forward + backward:
  <= 100x torch at (256, 1000), <= 50x at (32, 50000);
* CLI start-up (``--help``, a bad-input error) < 0.5 s (issue #16).
"""

from __future__ import annotations

import math

__all__ = ["speed_target", "shape_label", "render", "summary"]

GUMBEL_TARGET = 1.2
GUMBEL_VJP_TARGET = 2.5
ANALYTIC = ("normal", "logistic", "cauchy", "gumbel_min", "laplace", "exponential", "uniform")
LARGE_N, LARGE_TARGET = 1000, 20.0
SMALL_N, SMALL_TARGET = 100, 60.0
STUDENT_VS_NORMAL = 3.0
VJP_VS_PROBS = 3.0
GROWTH_PER_DECADE = 12.5
MEMORY_INPUT_FACTOR, MEMORY_SLACK_MB = 4.0, 32.0

TORCH_TARGETS = {(256, 1000): 100.0, (32, 50_000): 50.0}
CLI_TARGET_S = 0.5

MET, MISSED, UNMEASURED = "met", "missed", "not measured"


def speed_target(family: str, op: str, n: int):
    """The largest allowed ratio to the operation's baseline for a row length ``n``, or None.

    >>> speed_target("gumbel", "probs_vjp:dense", 10), speed_target("normal", "probs", 1000)
    (2.5, 20.0)
    >>> speed_target("student_t", "probs", 10) is None   # judged against normal instead
    True
    """
    if family == "gumbel":
        return GUMBEL_VJP_TARGET if "vjp" in op else GUMBEL_TARGET
    if family in ANALYTIC:
        if n >= LARGE_N:
            return LARGE_TARGET
        if n <= SMALL_N:
            return SMALL_TARGET
    return None


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------


def _t(t) -> str:
    if not isinstance(t, (int, float)):
        return "n/a"
    if t >= 1.0:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} µs"


def _g(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}g}"


def _x(r) -> str:
    """A ratio: 3 significant digits, no exponent below 1e5."""
    if r is None:
        return "-"
    if r >= 1e5:
        return f"{r:.1e}×"
    return f"{r:.3g}×" if r < 100 else f"{r:.0f}×"


def shape_label(shape) -> str:
    """``(rows, n)``, with a power of ten n >= 1e5 written as such.

    >>> shape_label((1, 1000000)), shape_label((8, 256000))
    ('(1, 1e6)', '(8, 256000)')
    """
    rows, n = shape
    k = round(math.log10(n)) if n > 0 else 0
    return f"({rows}, 1e{k})" if n >= 1e5 and n == 10 ** k else f"({rows}, {n})"


def _table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _mark(verdict, text) -> str:
    return f"**{text} missed**" if verdict == MISSED else text


# ---------------------------------------------------------------------------
# judging
# ---------------------------------------------------------------------------


def _cells(section):
    return {(c["family"], tuple(c["shape"]), c["op"]): c for c in (section or {}).get("cells", [])}


def _cell_verdict(cell, limit):
    """(verdict, text) of one timed cell against ``limit`` (None: no target)."""
    st = cell.get("status")
    if st == "ok":
        r = cell["ratio"]
        partial = " (≥; some kinds left out)" if cell.get("kinds_left_out") else ""
        if limit is None:
            return None, _x(r) + partial
        if r > limit:
            return MISSED, _x(r) + partial
        return (UNMEASURED if partial else MET), _x(r) + partial
    if st == "capped":
        low = cell.get("ratio_at_least")
        text = f"> cap ({'≥ ' + _x(low) if low else 'slow'})"
        if limit is None:
            return None, text
        return (MISSED if low is None or low > limit else UNMEASURED), text
    if st == "skipped":
        return (UNMEASURED if limit is not None else None), "skipped"
    if st == "not_implemented":
        return (UNMEASURED if limit is not None else None), "not implemented"
    return (MISSED if limit is not None else None), "error"


def _pair_ratio(num, den):
    """Worst per-kind ratio of two cells' times (same arrays), or None."""
    if not num or not den or num.get("status") != "ok" or den.get("status") != "ok":
        return None
    kinds = set(num["kinds"]) & set(den["kinds"])
    if not kinds:
        return None
    return max(num["kinds"][k]["time_s"] / den["kinds"][k]["time_s"] for k in kinds)


def _pair_verdict(num, den, limit, cap):
    """Verdict on the worst per-kind ratio of two cells' times; a capped ``num`` gives a lower bound."""
    r = _pair_ratio(num, den)
    if r is not None:
        return (MET if r <= limit else MISSED), _x(r)
    if num and num.get("status") == "capped" and den and den.get("status") == "ok" and cap:
        low = cap / max(k["time_s"] for k in den["kinds"].values())
        return (MISSED if low > limit else UNMEASURED), f"> cap (≥ {_x(low)})"
    if num and num.get("status") in ("skipped", "not_implemented", "error"):
        return _cell_verdict(num, limit)
    return UNMEASURED, "-"


class _Tally:
    def __init__(self):
        self.groups = {}

    def add(self, group, verdict):
        if verdict is not None:
            self.groups.setdefault(group, {MET: 0, MISSED: 0, UNMEASURED: 0})[verdict] += 1

    def table(self) -> str:
        rows = [(g, c[MET], c[MISSED], c[UNMEASURED]) for g, c in self.groups.items()]
        return _table(("target", MET, MISSED, "not measured (skipped / not implemented)"), rows) if rows else ""


def _matrix_tables(bench, tally):
    mx = bench.get("matrix")
    if not mx:
        return ""
    cells = _cells(mx)
    cap = mx.get("call_cap_s")
    shapes = [tuple(s) for s in mx["shapes"]]
    out = []

    # main table
    rows = []
    for fam in mx["families"]:
        for op in mx["ops"]:
            if fam == "student_t":
                target = f"≤ {STUDENT_VS_NORMAL:g}× normal (below)"
            elif fam == "gumbel":
                target = f"≤ {speed_target(fam, op, 1):g}×"
            elif fam in ANALYTIC:
                target = f"≤ {SMALL_TARGET:g}× (n ≤ {SMALL_N}), ≤ {LARGE_TARGET:g}× (n ≥ {LARGE_N})"
            else:
                target = "none (user family: general path)"
            row = [fam, op, target]
            for shape in shapes:
                cell = cells.get((fam, shape, op))
                if cell is None:
                    row.append("")
                    continue
                verdict, text = _cell_verdict(cell, speed_target(fam, op, shape[1]))
                tally.add("speed vs softmax (main table)", verdict)
                row.append(_mark(verdict, text))
            rows.append(row)
    out.append("## Main table: time / baseline, worst input kind\n\n")
    out.append("Baseline on the same array in the same run: `scipy.special.softmax` for probs and log_probs; "
               "softmax plus its VJP in numpy, `p * (g - sum(p * g))`, for probs_vjp; softmax plus the VJP of "
               "log softmax, `g - p * sum(g)`, for log_probs_vjp. Shapes are (rows, n), reduced along n. "
               f"\"> cap\": one call used more than {_g(cap)} s of CPU time (≥: the ratio it implies); "
               "\"skipped\": a "
               "smaller shape of the same family and operation (no more rows, none longer) was capped.\n\n")
    out.append(_table(["family", "operation", "target"] + [shape_label(s) for s in shapes], rows) + "\n")

    # VJP vs probs
    rows = []
    for fam in mx["families"]:
        for op in (o for o in mx["ops"] if "vjp" in o):
            row = [fam, op]
            for shape in shapes:
                num, den = cells.get((fam, shape, op)), cells.get((fam, shape, "probs"))
                if num is None or den is None:
                    row.append("")
                    continue
                verdict, text = _pair_verdict(num, den, VJP_VS_PROBS, cap)
                tally.add(f"VJP ≤ {VJP_VS_PROBS:g}× the family's probs", verdict)
                row.append(_mark(verdict, text))
            rows.append(row)
    if rows and "probs" in mx["ops"]:
        out.append(f"## VJP / the same family's probs (target ≤ {VJP_VS_PROBS:g}×)\n\n")
        out.append("Per input kind on the same array; the worst kind shown (\"-\": one of the two cells was not "
                   "measured, see the main table).\n\n")
        out.append(_table(["family", "operation"] + [shape_label(s) for s in shapes], rows) + "\n")

    # student_t vs normal
    if "student_t" in mx["families"] and "normal" in mx["families"]:
        rows = []
        for op in mx["ops"]:
            row = [op]
            for shape in shapes:
                verdict, text = _pair_verdict(cells.get(("student_t", shape, op)), cells.get(("normal", shape, op)),
                                              STUDENT_VS_NORMAL, cap)
                tally.add(f"student_t ≤ {STUDENT_VS_NORMAL:g}× normal", verdict)
                row.append(_mark(verdict, text))
            rows.append(row)
        out.append(f"## student_t (ν = 3) / normal, same array and operation (target ≤ {STUDENT_VS_NORMAL:g}×)\n\n")
        out.append("Per input kind, the worst kind shown (\"-\": one of the two cells was not measured).\n\n")
        out.append(_table(["operation"] + [shape_label(s) for s in shapes], rows) + "\n")

    # linear growth
    singles = sorted(s for s in shapes if s[0] == 1 and s[1] >= LARGE_N)
    if len(singles) >= 2:
        rows = []
        for fam in mx["families"]:
            for op in mx["ops"]:
                row = [fam, op]
                for a, b in zip(singles, singles[1:]):
                    ca, cb = cells.get((fam, a, op)), cells.get((fam, b, op))
                    r = _pair_ratio(cb, ca)
                    if r is None:
                        verdict, text = (UNMEASURED, "-")
                        if cb and cb.get("status") not in ("ok", "skipped", "not_implemented") and ca \
                                and ca.get("status") == "ok":
                            verdict, text = MISSED, "> cap"
                    else:
                        per_decade = r ** (1.0 / math.log10(b[1] / a[1]))
                        verdict = MET if per_decade <= GROWTH_PER_DECADE else MISSED
                        text = _x(per_decade)
                    tally.add(f"growth ≤ {GROWTH_PER_DECADE:g}× per 10× n", verdict)
                    row.append(_mark(verdict, text))
                rows.append(row)
        out.append(f"## Growth: time factor per 10× n (target ≤ {GROWTH_PER_DECADE:g}×)\n\n")
        out.append("`(t_b / t_a) ** (1 / log10(n_b / n_a))` between single rows, per input kind, worst kind.\n\n")
        out.append(_table(["family", "operation"] + [f"{shape_label(a)} → {shape_label(b)}" for a, b in
                                                      zip(singles, singles[1:])], rows) + "\n")
    return "".join(out)


def _by_family(bench) -> str:
    """Worst measured ratio per family, split by row length and by operation kind (the headline)."""
    mx = bench.get("matrix")
    if not mx:
        return ""
    groups = (("probs, log_probs", lambda op: "vjp" not in op), ("VJPs", lambda op: "vjp" in op))
    spans = ((f"n ≤ {SMALL_N}", lambda n: n <= SMALL_N), (f"n ≥ {LARGE_N}", lambda n: n >= LARGE_N))
    rows = []
    for fam in mx["families"]:
        row = [fam]
        for _, is_op in groups:
            for _, in_span in spans:
                sel = [c for c in mx["cells"] if c["family"] == fam and is_op(c["op"]) and in_span(c["shape"][1])]
                ok = max([c["ratio"] for c in sel if c.get("status") == "ok"], default=None)
                low = max([c["ratio_at_least"] for c in sel if c.get("ratio_at_least")], default=None)
                if low is not None and (ok is None or low > ok):
                    worst = "≥ " + _x(low)
                else:
                    worst = _x(ok)
                others = sum(c.get("status") != "ok" for c in sel)
                row.append(worst + (f" ({others} capped/skipped/failed)" if others else ""))
        rows.append(row)
    heads = ["family"] + [f"{g}, {sp}" for g, _ in groups for sp, _ in spans]
    return ("## Worst ratio per family\n\n"
            "Largest time / baseline over the shapes and operations of each group (≥: a capped call's lower "
            "bound), and how many cells of the group were not measured to the end.\n\n"
            + _table(heads, rows) + "\n")


def _memory_table(bench, tally):
    me = bench.get("memory")
    if not me:
        return ""
    rows = []
    for r in me["rows"]:
        if r["family"] == "softmax":
            limit = None
        else:
            limit = MEMORY_INPUT_FACTOR * r["input_mb"] + MEMORY_SLACK_MB
        if r.get("status") == "ok":
            verdict = None if limit is None else (MET if r["extra_mb"] <= limit else MISSED)
            text = f"{r['extra_mb']:.1f} MB"
            peak = f"{r['peak_mb']:.1f} MB"
        else:
            verdict = None if limit is None else (MISSED if r.get("status") == "error" else UNMEASURED)
            text, peak = r.get("note") or r.get("status"), "-"
        tally.add("extra memory ≤ 4× input + 32 MiB", verdict)
        rows.append((r["family"] + (" (baseline)" if limit is None else ""), r["op"], peak,
                     _mark(verdict, text), f"≤ {limit:.0f} MB" if limit is not None else "-"))
    return (f"## Extra memory at {shape_label(me['shape'])} (input kind {me.get('kind', '')})\n\n"
            f"Measured with {me.get('tool', 'tracemalloc')}.\n\n"
            + _table(("family", "operation", "peak", "extra", "target"), rows) + "\n")


def _torch_table(bench, tally):
    tc = bench.get("torch")
    if not tc:
        return ""
    head = "## PyTorch adapter: `perturbed_log_softmax` + `nll_loss`, forward + backward\n\n"
    if tc.get("skipped"):
        return head + f"Not measured: {tc['skipped']}.\n\n"
    cells = _cells(tc)
    shapes = sorted({k[1] for k in cells}, key=lambda s: s[0] * s[1])
    fams = list(dict.fromkeys(k[0] for k in cells))
    rows = []
    for fam in fams:
        row = [fam]
        for shape in shapes:
            cell = cells.get((fam, shape, "log_softmax+nll_loss fwd+bwd"))
            if cell is None:
                row.append("")
                continue
            verdict, text = _cell_verdict(cell, TORCH_TARGETS.get(shape))
            tally.add("PyTorch adapter (100× / 50× torch)", verdict)
            if cell.get("status") == "ok":
                text += f" ({_t(cell['kinds'][cell['worst_kind']]['time_s'])})"
            row.append(_mark(verdict, text))
        rows.append(row)
    heads = ["family"] + [f"{shape_label(s)}" + (f", target ≤ {TORCH_TARGETS[s]:g}×" if s in TORCH_TARGETS else "")
                          for s in shapes]
    return (head + f"{tc.get('dtype', 'float32')} tensors, torch {tc.get('torch', '?')} with "
            f"{tc.get('threads', '?')} threads; baseline `torch.log_softmax` + `nll_loss` forward + backward on "
            "the same tensor; worst input kind, its time in parentheses.\n\n" + _table(heads, rows) + "\n")


def _cli_table(bench, tally):
    cli = bench.get("cli")
    if not cli:
        return ""
    rows = []
    for r in cli["rows"]:
        if r.get("min_s") is None:
            verdict, text = MISSED, r.get("note", "failed")
        else:
            verdict = MET if r["min_s"] < CLI_TARGET_S else MISSED
            text = _t(r["min_s"])
        ok_exit = r.get("exit_codes") == [r.get("expected_exit")]
        tally.add(f"CLI start-up < {CLI_TARGET_S:g} s", verdict)
        rows.append((f"`{r['command']}`", _mark(verdict, text), r.get("runs"),
                     ", ".join(str(c) for c in r.get("exit_codes", [])) + ("" if ok_exit else
                                                                         f" (expected {r.get('expected_exit')})")))
    return (f"## CLI start-up (target < {CLI_TARGET_S:g} s)\n\n"
            f"Wall time of a fresh process (`{cli.get('executable', 'perturbmax')}`), minimum of the runs.\n\n"
            + _table(("command", "time", "runs", "exit code"), rows) + "\n")


def _details(bench):
    mx = bench.get("matrix")
    if not mx:
        return ""
    out = ["## Times per cell (worst input kind)\n\n",
           "Minimum seconds per call, wall (`time.perf_counter`) and CPU (`time.process_time`, all threads), "
           "of numeric and of the baseline; ratios per input kind.\n\n"]
    by_fam = {}
    for c in mx["cells"]:
        by_fam.setdefault(c["family"], []).append(c)
    for fam, cells in by_fam.items():
        rows = []
        for c in cells:
            if c.get("status") == "ok":
                k = c["kinds"][c["worst_kind"]]
                per_kind = ", ".join(f"{kind}: {_x(v['ratio'])}" for kind, v in c["kinds"].items())
                rows.append((shape_label(c["shape"]), c["op"], _t(k["time_s"]), _t(k["cpu_s"]), _t(k["base_s"]),
                             _t(k["base_cpu_s"]), _x(k["ratio"]), _x(k.get("cpu_ratio")), k["samples"], per_kind))
            else:
                rows.append((shape_label(c["shape"]), c["op"], c.get("status"), "", "", "", "", "", "",
                             c.get("note", "")))
        out.append(f"<details><summary>{fam}</summary>\n\n")
        out.append(_table(("shape", "operation", "wall", "CPU", "baseline wall", "baseline CPU", "ratio (wall)",
                           "ratio (CPU)", "samples", "ratio per input kind"), rows))
        out.append("\n</details>\n\n")
    return "".join(out)


def _machine(bench) -> str:
    m = bench.get("machine", {})
    load = lambda key: ", ".join(str(v) for v in m.get(key) or []) or "?"  # noqa: E731
    return "## Machine\n\n" + _table(("", ""), [
        ("CPU", m.get("cpu", "?")),
        ("cores", m.get("cores", "?")),
        ("system", m.get("system", "?")),
        ("Python", m.get("python", "?")),
        ("numpy", m.get("numpy", "?")),
        ("scipy", m.get("scipy", "?")),
        ("BLAS", "; ".join(m.get("blas") or []) or "?"),
        ("load average (1, 5, 15 min) at start", load("loadavg_at_start")),
        ("load average at end", load("loadavg_at_end")),
        ("measured (UTC)", m.get("date_utc", "?")),
    ]) + "\n"


def _methodology(bench) -> str:
    cfg = bench.get("config", {})
    return (
        "## Method\n\n"
        "- Inputs as users have them: `s * rng.normal(size=shape)` for s = 1, 2, 5, and rows of up to four "
        "tight clusters (centres `3 * N(0, 1)`, jitter `1e-3 * N(0, 1)`) where a quarter of the entries copy "
        "another entry exactly and the row maximum is tied (`derive.bench.scores`). Every family sees the "
        "same arrays. VJP cotangents: one-hot (one 1 per row, as `nll_loss` sends back) or dense `N(0, 1)`.\n"
        "- The allocator is warmed once (a ~31 MiB array allocated and freed, so glibc serves later arrays "
        "from its heap instead of fresh pages that fault on every call).\n"
        "- Numeric and baseline are sampled alternately; a sample is a loop of calls (cyclic garbage "
        "collector paused, as `timeit` does) lasting at least "
        f"{_g((cfg.get('sample_s') or 0) * 1e3)} ms; per input kind the first call of each is a warm-up that "
        f"counts as a sample, then samples continue until {_g(cfg.get('cell_budget_s'))} s are spent and at "
        f"least {cfg.get('min_samples', '?')} samples were taken. The minimum time per call is kept "
        "(other load on the machine only adds time). Wall time decides the targets; CPU time (all threads "
        "of the process) is reported beside it.\n"
        f"- A call using more than {_g(cfg.get('call_cap_s'))} s of CPU time (or 5 times that of wall time) is "
        "interrupted and the cell recorded as capped (not repeated; the ratio is at least the wall time it had "
        "taken over the baseline's), and the larger shapes of the same family and "
        "operation (at least as many rows, each at least as long) are skipped. A cell that has taken "
        f"{_g(cfg.get('cell_limit_s'))} s and already misses its target leaves its remaining input kinds out "
        "(its ratio is then a lower bound, marked ≥). An exception is recorded in its cell and the run continues.\n"
        "- Public entry points only: `numeric.probs`, `numeric.log_probs`, `numeric.probs_vjp`, "
        "`numeric.log_probs_vjp`, `numeric.torch.perturbed_log_softmax`.\n\n")


def _errors(bench) -> str:
    notes = []
    for sec in ("matrix", "torch"):
        for c in (bench.get(sec) or {}).get("cells", []):
            if c.get("status") in ("error", "not_implemented"):
                notes.append(f"- {c['family']} {shape_label(c['shape'])} {c['op']}: {c.get('note', '')}")
    if not notes:
        return ""
    return "## Errors and unimplemented paths\n\n" + "\n".join(notes) + "\n\n"


def _accuracy(bench) -> str:
    ac = bench.get("accuracy_vs_cost")
    if not ac:
        return ""
    mu = ", ".join(_g(v, 4) for v in ac["mu"])
    out = [f"## n = {len(ac['mu'])}, normal noise: all entries, accuracy vs cost\n\n",
           f"mu = ({mu}); errors against `derive.oracle.probs` at {ac['oracle_dps']} digits. scipy's "
           "multivariate normal CDF computes each p_i as the (n-1)-dimensional orthant probability of the "
           "differences (covariance I + 11^T), default tolerances. Minimum time per call.\n\n"]
    runs = ac["runs"]
    mvn = [r for r in runs if r["method"] == "scipy_mvn" and r.get("time_s")]
    t_mvn = mvn[0]["time_s"] if mvn else None
    exact = ac.get("oracle_p")
    k_min = min(range(len(exact)), key=exact.__getitem__) if exact else None
    rows = []
    for r in runs:
        if r.get("time_s") is None:
            rows.append((r["method"], r.get("setting") or "", r.get("note", "n/a"), "", "", "", ""))
            continue
        speed = _x(t_mvn / r["time_s"]) if t_mvn else "-"
        small = _g(r["rel_err"][k_min]) if k_min is not None and r.get("rel_err") else "-"
        rows.append((r["method"], r.get("setting") or "", _t(r["time_s"]), _g(r["max_rel_err"]), small,
                     _g(r["max_abs_err"]), speed))
    out.append(_table(("method", "setting", "time (all entries)", "max rel. error", "rel. error of the smallest p",
                       "max abs. error", "speed vs scipy MVN"), rows))
    out.append("\n" + _figure("accuracy_vs_cost.png"))
    return "".join(out)


def _figure(name) -> str:
    from .notes import FIGURES

    return f"![{name}](figures/{name})\n\n*Figure: {FIGURES[name]}*\n\n"


def _oracle(bench) -> str:
    orc = bench.get("oracle")
    if not orc:
        return ""
    rows = [(r["case"], _t(r["time_s"]) if r.get("time_s") is not None else r.get("note", "n/a"))
            for r in orc["rows"]]
    inputs = f" ({orc['inputs']})" if orc.get("inputs") else ""
    return ("## Oracle timings\n\n"
            f"Measured with `{orc.get('function', 'derive.oracle.timing_report')}`{inputs}.\n\n"
            + _table(("case", "time"), rows) + "\n")


#: the bench.json layout this module reads (derive.bench.SCHEMA)
SCHEMA = 2


def _report(bench, *, details: bool) -> str:
    if bench.get("schema") != SCHEMA:
        return ("# Benchmarks\n\n"
                f"[data/bench.json](data/bench.json) has schema {bench.get('schema')}, not {SCHEMA}: its "
                "numbers predate the current benchmark. Re-measure with `perturbmax bench --update-notes`.\n\n"
                + _machine(bench))
    tally = _Tally()
    body = [_matrix_tables(bench, tally), _memory_table(bench, tally), _torch_table(bench, tally),
            _cli_table(bench, tally)]
    quick = " --quick` (a smoke-test subset, not the full matrix)" if bench.get("quick") else "`"
    parts = [
        "# Benchmarks\n\n",
        f"Measured by `perturbmax bench{quick}"
        + ("; raw numbers in [data/bench.json](data/bench.json).\n\n" if details else ".\n\n"),
    ]
    if tally.groups:
        parts.append("## Targets\n\n" + tally.table() + "\n")
    parts.append(_by_family(bench))
    parts += body
    parts.append(_errors(bench))
    parts.append(_machine(bench))
    parts.append(_methodology(bench))
    if details:
        if bench.get("matrix"):
            parts.append(_figure("bench_scaling.png"))
        parts.append(_details(bench))
        parts.append(_accuracy(bench))
        parts.append(_oracle(bench))
    if "total_s" in bench:
        parts.append(f"Whole bench run: {_t(bench['total_s'])}.\n")
    return "".join(parts)


def render(bench: dict) -> str:
    """The text of ``benchmarks.md`` (without the generated-file header) from the results of ``perturbmax bench``."""
    return _report(bench, details=True)


def summary(bench: dict) -> str:
    """What ``perturbmax bench`` prints: targets, the main tables, machine and method."""
    return _report(bench, details=False)
