"""Figures for notes/, rendered deterministically to PNG bytes.

Each public function returns the PNG file content (``bytes``).  The output
is byte-identical across runs on one machine: matplotlib's object API with
the Agg canvas (no global backend switch), matplotlib's default rc settings
(the user's matplotlibrc is ignored), the bundled DejaVu Sans font at fixed
sizes, a fixed figure size and dpi, and PNG metadata without the
"Software" (version) entry.  PNG carries no date by default.

Data for the first two figures come from :func:`numeric.probs`; the last
two are drawn from the measured runs stored in ``notes/data/bench.json``
(written by ``perturbmax bench``), so nothing is timed here.
"""

from __future__ import annotations

import io
from contextlib import contextmanager

__all__ = [
    "PLOT_FAMILIES",
    "BAR_MU",
    "p1_vs_delta_png",
    "family_bars_png",
    "accuracy_vs_cost_png",
    "bench_scaling_png",
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

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "svg.hashsalt": "perturbmax",
    "path.simplify": False,
    "figure.dpi": 100.0,
    "savefig.dpi": 100.0,
    "text.usetex": False,
    "axes.prop_cycle": None,  # filled in _style()
}

_DPI = 100
_SIZE = (7.0, 4.2)


@contextmanager
def _style():
    import matplotlib
    from cycler import cycler

    rc = dict(matplotlib.rcParamsDefault)
    rc.pop("backend", None)
    rc.update(_RC)
    rc["axes.prop_cycle"] = cycler(color=[
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ])
    with matplotlib.rc_context(rc):
        yield


def _new_figure(size=_SIZE):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------
# figures from the numeric engine
# ---------------------------------------------------------------------------


def p1_vs_delta_png(deltas=None) -> bytes:
    """p_1 of n = 2 scores (mu_1 - mu_2 = Delta) for every family, on one chart.

    For n = 2, p_1 = P[eps_2 - eps_1 < Delta]: the CDF of the difference of
    two iid noises (logistic sigmoid for gumbel, Phi(Delta/sqrt 2) for normal).
    """
    import numpy as np

    import numeric

    if deltas is None:
        deltas = np.linspace(-6.0, 6.0, 241)
    deltas = np.asarray(deltas, dtype=np.float64)
    mu = np.stack([deltas, np.zeros_like(deltas)], axis=-1)
    with _style():
        fig = _new_figure()
        ax = fig.add_subplot(1, 1, 1)
        styles = ["-", "--", "-.", ":"]
        for k, (label, name, params) in enumerate(PLOT_FAMILIES):
            p = np.asarray(numeric.probs(mu, name, **params), dtype=np.float64)[:, 0]
            ax.plot(deltas, p, styles[k % len(styles)], lw=1.4, label=label)
        ax.set_xlabel(r"$\Delta = \mu_1 - \mu_2$")
        ax.set_ylabel(r"$p_1$")
        ax.set_title(r"$n = 2$: $p_1 = P[\varepsilon_2 - \varepsilon_1 < \Delta]$ for each noise family")
        ax.set_xlim(float(deltas[0]), float(deltas[-1]))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", ncol=1, frameon=False)
        fig.tight_layout()
        return _png(fig)


def family_bars_png(mu=BAR_MU) -> bytes:
    """Grouped bars: the probability vector of every family for one 5-entry mu."""
    import numpy as np

    import numeric

    mu = np.asarray(mu, dtype=np.float64)
    n = mu.size
    m = len(PLOT_FAMILIES)
    width = 0.8 / m
    with _style():
        fig = _new_figure()
        ax = fig.add_subplot(1, 1, 1)
        x = np.arange(n, dtype=np.float64)
        for k, (label, name, params) in enumerate(PLOT_FAMILIES):
            p = np.asarray(numeric.probs(mu, name, **params), dtype=np.float64)
            ax.bar(x - 0.4 + (k + 0.5) * width, p, width=width, label=label)
        ax.set_xticks(x)
        ax.set_xticklabels([f"i={i + 1}\nmu={v:g}" for i, v in enumerate(mu)])
        ax.set_ylabel(r"$p_i$")
        ax.set_title("Probability vectors of all families for mu = (" + ", ".join(f"{v:g}" for v in mu) + ")")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper left", ncol=2, frameon=False)
        fig.tight_layout()
        return _png(fig)


# ---------------------------------------------------------------------------
# figures from bench.json (measured by `perturbmax bench`)
# ---------------------------------------------------------------------------


def accuracy_vs_cost_png(bench: dict) -> bytes:
    """Max relative and max absolute error vs time (log-log), n = 10 normal.

    Points are the measured runs in ``bench["accuracy_vs_cost"]["runs"]``:
    one per method and setting (numeric auto/quadrature; the K-point rule
    per K; Monte Carlo per sample count; scipy's multivariate normal CDF).
    """
    runs = bench["accuracy_vs_cost"]["runs"]
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(r["method"], []).append(r)
    order = ["auto", "quadrature", "closed", "quantile", "monte_carlo", "scipy_mvn"]
    methods = [m for m in order if m in groups] + sorted(m for m in groups if m not in order)
    markers = {"auto": "o", "quadrature": "s", "closed": "P", "quantile": "^", "monte_carlo": "v", "scipy_mvn": "D"}
    labels = {"auto": "numeric.probs (auto)", "quadrature": "numeric quadrature",
              "quantile": "article's K-point rule", "monte_carlo": "Monte Carlo",
              "scipy_mvn": "scipy multivariate_normal.cdf"}
    floor = 1e-17
    mu = bench["accuracy_vs_cost"].get("mu") or []
    with _style():
        fig = _new_figure((9.0, 4.4))
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
            ax.set_xlabel("time for all n entries (s, median)")
            ax.set_ylabel(f"{what} vs oracle")
            ax.grid(True, which="major", alpha=0.3)
        axes[0].axhline(1e-13, color="0.5", lw=0.8, ls=":")
        axes[0].set_title("relative error (small entries matter)")
        axes[1].set_title("absolute error")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 5), frameon=False)
        fig.suptitle(f"Accuracy vs cost, normal noise, n = {len(mu)} (errors floored at {floor:g})")
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return _png(fig)


def bench_scaling_png(bench: dict) -> bytes:
    """Left: time vs n (log-log) of numeric.probs per family and of softmax.
    Right: the ratio to scipy.special.softmax on the same input."""
    rows = bench["scaling"]["rows"]
    fams: dict[str, list] = {}
    soft: dict[int, float] = {}
    for r in rows:
        fams.setdefault(r["family"], []).append((r["n"], r["time_s"], r["ratio"]))
        soft.setdefault(r["n"], r["softmax_s"])
    with _style():
        fig = _new_figure((9.0, 4.2))
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
        ax.set_ylabel("time (s, median of repeats)")
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
        return _png(fig)
