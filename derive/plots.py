"""Figures for notes/: the plotted data, its digest, and the PNG drawn from it.

Each figure is a :class:`FigureSpec`: the figure's name, its data (a JSON-able
dict holding every number the drawing reads) and the function that draws it.
Its :attr:`~FigureSpec.digest` is the SHA-256 of the data together with the
source of this module, and :meth:`~FigureSpec.png` writes the digest into the
PNG as a ``tEXt`` chunk (keyword :data:`DIGEST_KEY`).  ``perturbmax notes
--check`` compares that digest with the one computed now, never the PNG
bytes: PNG pixels differ between matplotlib releases (text rendering,
antialiasing) although the figure shows the same content, so byte comparison
would make the check depend on the installed matplotlib.  A figure is stale
exactly when its data or the plotting code changed.

Data computed here (the first two figures, from :func:`numeric.probs`) are
rounded to 6 significant digits -- far finer than a figure resolves -- so
the last-bit differences of floating point between platforms do not change
the digest; the last two figures are drawn from the measured runs in
``notes/data/bench.json`` (written by ``perturbmax bench``), nothing is timed
here.

Drawing needs matplotlib (the ``[figures]`` extra); computing specs and
digests does not.  The PNG is deterministic for a given matplotlib:
matplotlib's object API with the Agg canvas (no global backend switch), its
default rc settings (the user's matplotlibrc is ignored), the bundled DejaVu
Sans font at fixed sizes, a fixed figure size and dpi, and no "Software"
(version) or date entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = [
    "PLOT_FAMILIES",
    "BAR_MU",
    "DIGEST_KEY",
    "FigureSpec",
    "png_digest",
    "p1_vs_delta",
    "family_bars",
    "accuracy_vs_cost",
    "bench_scaling",
]

#: (label, registry name, params) of the curves drawn for "all families".
PLOT_FAMILIES = (
    ("gumbel", "gumbel", {}),
    ("gumbel_min", "gumbel_min", {}),
    ("normal", "normal", {}),
    ("logistic", "logistic", {}),
    ("laplace", "laplace", {}),
    ("exponential", "exponential", {}),
    ("uniform", "uniform", {}),
    ("cauchy", "cauchy", {}),
    ("student_t (nu=3)", "student_t", {"nu": 3.0}),
)

#: The 5-entry score vector of the bar chart.
BAR_MU = (-1.0, 0.0, 0.5, 1.0, 2.0)

#: PNG ``tEXt`` keyword of the content digest.
DIGEST_KEY = "perturbmax-digest"

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "path.simplify": False,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "text.usetex": False,
}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

_DPI = 100
_SIZE = (7.0, 4.2)
_DIGITS = 6


def _code_digest() -> str:
    """SHA-256 of this module's source (line endings normalised): any change to
    the drawing code marks every figure stale."""
    text = Path(__file__).read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(text).hexdigest()


@dataclass(frozen=True)
class FigureSpec:
    """One figure: ``name``, the JSON-able ``data`` it shows, and ``draw(fig, data)``."""

    name: str
    data: dict
    draw: Callable[[Any, dict], None]
    size: tuple = _SIZE

    @property
    def digest(self) -> str:
        """SHA-256 of the figure's name, data and the plotting code."""
        doc = {"figure": self.name, "data": self.data, "code": _code_digest()}
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def png(self) -> bytes:
        """The PNG file, carrying :attr:`digest` under :data:`DIGEST_KEY` (needs matplotlib)."""
        from ._optional import require

        require("matplotlib")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        with _style():
            fig = Figure(figsize=self.size, dpi=_DPI)
            FigureCanvasAgg(fig)
            self.draw(fig, self.data)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None, DIGEST_KEY: self.digest})
        return buf.getvalue()


def png_digest(png: bytes) -> str | None:
    """The :data:`DIGEST_KEY` text of a PNG file, or None (not a PNG, or no digest)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, key = 8, DIGEST_KEY.encode("latin-1") + b"\0"
    while pos + 12 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, body = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and body.startswith(key):  # keyword, NUL, Latin-1 text
            return body[len(key):].decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


def _rounded(values) -> list:
    """Floats to :data:`_DIGITS` significant digits (what a figure can show)."""
    return [float(f"{float(v):.{_DIGITS}g}") for v in values]


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib
    from cycler import cycler

    rc = dict(matplotlib.rcParamsDefault)
    rc.pop("backend", None)
    rc.update(_RC)
    rc["axes.prop_cycle"] = cycler(color=list(_COLORS))
    with matplotlib.rc_context(rc):
        yield


# ---------------------------------------------------------------------------
# figures from the numeric engine
# ---------------------------------------------------------------------------


def p1_vs_delta(deltas=None) -> FigureSpec:
    """p_1 of n = 2 scores (mu_1 - mu_2 = Delta) for every family, on one chart.

    For n = 2, p_1 = P[eps_2 - eps_1 < Delta]: the CDF of the difference of
    two iid noises (logistic sigmoid for gumbel, Phi(Delta/sqrt 2) for normal).

    >>> spec = p1_vs_delta([-1.0, 0.0, 1.0])
    >>> spec.data["curves"][0]["p"]          # gumbel: the logistic sigmoid of Delta
    [0.268941, 0.5, 0.731059]
    """
    import numpy as np

    import numeric

    if deltas is None:
        deltas = np.linspace(-6.0, 6.0, 241)
    deltas = np.asarray(deltas, dtype=np.float64)
    mu = np.stack([deltas, np.zeros_like(deltas)], axis=-1)
    curves = [{"label": label, "p": _rounded(np.asarray(numeric.probs(mu, name, **params))[:, 0])}
              for label, name, params in PLOT_FAMILIES]
    return FigureSpec("p1_vs_delta", {"delta": _rounded(deltas), "curves": curves}, _draw_p1_vs_delta)


def _draw_p1_vs_delta(fig, data: dict) -> None:
    ax = fig.add_subplot(1, 1, 1)
    styles = ["-", "--", "-.", ":"]
    deltas = data["delta"]
    for k, curve in enumerate(data["curves"]):
        ax.plot(deltas, curve["p"], styles[k % len(styles)], lw=1.4, label=curve["label"])
    ax.set_xlabel(r"$\Delta = \mu_1 - \mu_2$")
    ax.set_ylabel(r"$p_1$")
    ax.set_title(r"$n = 2$: $p_1 = P[\varepsilon_2 - \varepsilon_1 < \Delta]$ for each noise family")
    ax.set_xlim(deltas[0], deltas[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", ncol=1, frameon=False)
    fig.tight_layout()


def family_bars(mu=BAR_MU) -> FigureSpec:
    """Grouped bars: the probability vector of every family for one score vector ``mu``."""
    import numpy as np

    import numeric

    mu = np.asarray(mu, dtype=np.float64)
    bars = [{"label": label, "p": _rounded(numeric.probs(mu, name, **params))}
            for label, name, params in PLOT_FAMILIES]
    return FigureSpec("family_bars", {"mu": _rounded(mu), "bars": bars}, _draw_family_bars)


def _draw_family_bars(fig, data: dict) -> None:
    import numpy as np

    mu, bars = data["mu"], data["bars"]
    width = 0.8 / len(bars)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(mu), dtype=np.float64)
    for k, bar in enumerate(bars):
        ax.bar(x - 0.4 + (k + 0.5) * width, bar["p"], width=width, label=bar["label"])
    ax.set_xticks(x)
    ax.set_xticklabels([f"i={i + 1}\nmu={v:g}" for i, v in enumerate(mu)])
    ax.set_ylabel(r"$p_i$")
    ax.set_title("Probability vectors of all families for mu = (" + ", ".join(f"{v:g}" for v in mu) + ")")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2, frameon=False)
    fig.tight_layout()


# ---------------------------------------------------------------------------
# figures from bench.json (measured by `perturbmax bench`)
# ---------------------------------------------------------------------------


def accuracy_vs_cost(bench: dict) -> FigureSpec:
    """Max relative and max absolute error vs time (log-log), n = 10 normal.

    Points are the measured runs in ``bench["accuracy_vs_cost"]["runs"]``:
    one per method and setting (numeric auto/quadrature; the K-point rule
    per K; Monte Carlo per sample count; scipy's multivariate normal CDF).
    """
    ac = bench.get("accuracy_vs_cost") or {}
    runs = [{k: r.get(k) for k in ("method", "setting", "time_s", "max_rel_err", "max_abs_err")}
            for r in ac.get("runs", []) if r.get("time_s")]
    return FigureSpec("accuracy_vs_cost", {"n": len(ac.get("mu") or []), "runs": runs},
                      _draw_accuracy_vs_cost, (9.0, 4.4))


def _not_measured(fig, what: str) -> None:
    """A figure whose data the bench run did not measure: says so instead of empty axes."""
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, f"{what}: not measured in this bench run", ha="center", va="center",
            transform=ax.transAxes)
    ax.set_axis_off()


def _draw_accuracy_vs_cost(fig, data: dict) -> None:
    if not data["runs"]:
        _not_measured(fig, "accuracy vs cost")
        return
    groups: dict[str, list] = {}
    for r in data["runs"]:
        groups.setdefault(r["method"], []).append(r)
    order = ["auto", "quadrature", "batch", "quantile", "monte_carlo", "scipy_mvn"]
    methods = [m for m in order if m in groups] + sorted(m for m in groups if m not in order)
    markers = {"auto": "o", "quadrature": "s", "batch": "P", "quantile": "^", "monte_carlo": "v", "scipy_mvn": "D"}
    labels = {"auto": "numeric.probs (auto)", "quadrature": "numeric quadrature",
              "batch": "numeric batch, per vector", "quantile": "article's K-point rule",
              "monte_carlo": "Monte Carlo", "scipy_mvn": "scipy multivariate_normal.cdf"}
    floor = 1e-17
    axes = [fig.add_subplot(1, 2, k + 1) for k in range(2)]
    for ax, key, what in ((axes[0], "max_rel_err", "max relative error"),
                          (axes[1], "max_abs_err", "max absolute error")):
        for method in methods:
            pts = sorted(groups[method], key=lambda r: r["time_s"])
            t = [r["time_s"] for r in pts]
            e = [max(r[key], floor) for r in pts]
            ax.loglog(t, e, marker=markers.get(method, "x"), ls="-" if len(pts) > 1 else "none",
                      label=labels.get(method, method))
            if method in ("quantile", "monte_carlo"):
                for r, ti, ei in zip(pts, t, e):
                    ax.annotate(r["setting"], (ti, ei), textcoords="offset points",
                                xytext=(3, -9 if method == "quantile" else 4), fontsize=6.5)
        ax.set_xlabel("time for all n entries (s, minimum)")
        ax.set_ylabel(f"{what} vs oracle")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].axhline(1e-13, color="0.5", lw=0.8, ls=":")
    axes[0].set_title("relative error (small entries matter)")
    axes[1].set_title("absolute error")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), frameon=False)
    fig.suptitle(f"Accuracy vs cost, normal noise, n = {data['n']} (errors floored at {floor:g})")
    fig.tight_layout(rect=(0, 0.08, 1, 1))


def bench_scaling(bench: dict) -> FigureSpec:
    """Left: time vs n (log-log) of numeric.probs per family and of softmax.
    Right: the ratio to scipy.special.softmax on the same input.

    Points: the matrix cells of ``bench.json`` for probs on single rows
    (1, n) that were measured, each at its worst input kind.
    """
    rows = []
    for c in (bench.get("matrix") or {}).get("cells", []):
        if c["op"] == "probs" and c["shape"][0] == 1 and c.get("status") == "ok":
            k = c["kinds"][c["worst_kind"]]
            rows.append({"family": c["family"], "n": c["shape"][1], "time_s": k["time_s"], "ratio": k["ratio"],
                         "softmax_s": k["base_s"]})
    return FigureSpec("bench_scaling", {"rows": rows}, _draw_bench_scaling, (9.0, 4.2))


def _draw_bench_scaling(fig, data: dict) -> None:
    if not data["rows"]:
        _not_measured(fig, "numeric.probs on single rows")
        return
    fams: dict[str, list] = {}
    soft: dict[int, float] = {}
    for r in data["rows"]:
        fams.setdefault(r["family"], []).append((r["n"], r["time_s"], r["ratio"]))
        soft[r["n"]] = min(soft.get(r["n"], r["softmax_s"]), r["softmax_s"])
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ns = sorted(soft)
    ax.loglog(ns, [soft[n] for n in ns], "k--", marker=".", label="scipy.special.softmax")
    for fam in fams:
        pts = sorted(fams[fam])
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        bx.loglog([p[0] for p in pts], [p[2] for p in pts], marker="o", label=fam)
    if len(ns) > 1:
        # slope-1 reference ending at the slowest time at the largest n
        t_end = max([p[1] for pts in fams.values() for p in pts if p[0] == ns[-1]] or [soft[ns[-1]]])
        ax.loglog(ns, [t_end * n / ns[-1] for n in ns], color="0.6", lw=0.8, ls=":", label="slope 1 (linear)")
    ax.set_xlabel("n (scores per vector)")
    ax.set_ylabel("time per call (s, minimum)")
    ax.set_title("numeric.probs: time vs n")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    bx.axhline(1.0, color="k", lw=0.8, ls="--")
    bx.set_xlabel("n (scores per vector)")
    bx.set_ylabel("time / softmax time (same input)")
    bx.set_title("ratio to scipy.special.softmax")
    bx.grid(True, which="major", alpha=0.3)
    bx.legend(loc="best", frameon=False)
    fig.tight_layout()
