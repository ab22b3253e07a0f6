"""The ``perturbmax`` command line.

Subcommands::

    perturbmax derive FAMILY [--n N] [--format latex|markdown]   # print a derivation
    perturbmax notes [--check] [--outdir DIR]                    # regenerate notes/
    perturbmax oracle FAMILY MU... [--dps D] [--log] [--json]    # high-precision values
    perturbmax oracle --tables                                   # rewrite derive/oracle/reference/
    perturbmax probs FAMILY MU... [--log] [--json] [--method M]  # fast float64 values
    perturbmax bench [--quick] [--output PATH] [--update-notes]  # measure; writes only what is asked

Exit codes: 0 success, 1 a numerical failure (the message says which
value could not be verified) or ``notes --check`` found stale files, 2 bad
input or a missing optional dependency (the message names the extra to
install); a bare ``perturbmax`` prints the usage and exits 2.  Errors are a single line on stderr (``perturbmax: error: ...``),
never a traceback (set ``PERTURBMAX_DEBUG=1`` to see one).

Negative scores work with or without ``--``: ``perturbmax probs normal -1 0 2``
and ``perturbmax probs normal -- -1e3 -inf 0`` are both accepted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap

__all__ = ["main", "build_parser"]

PROG = "perturbmax"


class UsageError(ValueError):
    """Bad input found after argument parsing (reported with exit code 2)."""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``perturbmax: error: <message>``."""

    def error(self, message):  # noqa: D401 - argparse hook
        raise UsageError(message)


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


def _err(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# argument helpers
# ---------------------------------------------------------------------------


def _looks_numeric(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _protect_negative_numbers(argv: list[str]) -> list[str]:
    """Let ``-1e3``, ``-inf``, ``-.5`` through argparse as values.

    argparse only recognizes plain ``-1`` / ``-1.5`` as negative numbers; any
    other token starting with ``-`` is taken for an option.  A leading space
    makes it a positional (``float`` ignores surrounding whitespace).
    Tokens after ``--`` are left alone.
    """
    out = []
    rest = False
    for tok in argv:
        if rest:
            out.append(tok)
            continue
        if tok == "--":
            rest = True
            out.append(tok)
        elif len(tok) > 1 and tok[0] == "-" and tok[1] != "-" and _looks_numeric(tok):
            out.append(" " + tok)
        else:
            out.append(tok)
    return out


def _positive_float(name):
    def conv(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number > 0, got {text.strip()!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text.strip()!r}")
        return v

    conv.__name__ = name
    return conv


def _positive_int(name, minimum=1):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text.strip()!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {v}")
        return v

    conv.__name__ = name
    return conv


def _family_params(args) -> dict:
    params = {}
    if getattr(args, "scale", None) is not None:
        params["scale"] = args.scale
    if getattr(args, "nu", None) is not None:
        if args.family.strip().lower() != "student_t":
            raise UsageError(f"--nu applies only to family 'student_t', not {args.family!r}")
        params["nu"] = args.nu
    return params


# The registry's names (numeric.FAMILY_NAMES), spelled out here so that --help and
# a misspelt family answer without importing numpy/scipy (tests/test_cli.py checks
# that the two lists are equal).
_FAMILY_NAMES = ("gumbel", "gumbel_min", "normal", "logistic", "laplace", "exponential", "uniform",
                 "cauchy", "student_t")


def _check_family(name: str) -> str:
    key = name.strip().lower()
    if key not in _FAMILY_NAMES:
        raise UsageError(f"unknown family {name!r}; valid names: {', '.join(_FAMILY_NAMES)}")
    return key


def _parse_mu_floats(tokens) -> list[float]:
    if not tokens:
        raise UsageError("give at least one score MU")
    values = []
    for i, tok in enumerate(tokens):
        try:
            v = float(tok)
        except ValueError:
            raise UsageError(f"MU[{i}] must be a real number, got {tok.strip()!r}") from None
        if math.isnan(v):
            raise UsageError(f"MU[{i}] is NaN; scores must be real numbers or +-inf")
        values.append(v)
    if all(v == -math.inf for v in values):
        raise UsageError("every MU is -inf: no class can win")
    return values


def _fmt_float(v: float) -> str:
    """Shortest round-trip text of a float; integers without '.0'."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def _json_float(v: float):
    """JSON has no inf/nan: those become the strings "inf", "-inf", "nan"."""
    v = float(v)
    return v if math.isfinite(v) else _fmt_float(v)


def _table(headers, rows) -> str:
    """Right-aligned columns separated by two spaces (easy to cut/awk)."""
    cols = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cols) for k in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cols]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# subcommands
# ---------------------------------------------------------------------------


#: registry families with a symbolic-n closed form (derive.general_n; tests/test_general_n.py checks
#: the list against derive.derive(name, "general")), named here so bad input answers before sympy loads
SYMBOLIC_N_FAMILIES = ("gumbel", "gumbel_min", "exponential", "uniform", "laplace", "logistic")


def _cmd_derive(args) -> int:
    key = _check_family(args.family)
    params = _family_params(args)
    if args.n is None:
        if key not in SYMBOLIC_N_FAMILIES:
            raise UsageError(f"family {key!r} needs --n N (no symbolic-n closed form; these have one: "
                             f"{', '.join(SYMBOLIC_N_FAMILIES)})")
        if params:
            raise UsageError("--scale/--nu need --n N (the symbolic-n derivations are for scale 1)")
    import derive

    if args.n is None:
        d = derive.softmax_derivation() if key == "gumbel" else derive.derive(key, "general")
    else:
        fam = derive.family(key, **params)
        d = derive.derive(fam, args.n)
    text = d.to_latex() if args.format == "latex" else d.to_markdown()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_notes(args) -> int:
    from . import notes

    outdir = args.outdir if args.outdir is not None else notes.default_outdir()
    if args.check:
        problems = notes.check_report(outdir)
        if problems:
            for path, reason in problems:
                sys.stderr.write(f"{PROG}: notes are stale: {path} ({reason})\n")
            sys.stderr.write(f"{PROG}: run `perturbmax notes` to regenerate {len(problems)} file(s)\n")
            return 1
        sys.stdout.write(f"notes up to date: {outdir}\n")
        return 0
    written = notes.generate(outdir)
    sys.stdout.write(f"wrote {len(written)} files under {outdir}\n")
    return 0


def _cmd_probs(args) -> int:
    key = _check_family(args.family)
    params = _family_params(args)
    mu = _parse_mu_floats(args.mu)
    import numpy as np

    import numeric

    kw = dict(params)
    if args.method != "auto":
        kw["method"] = args.method
    if args.K is not None:
        if args.method != "quantile":
            raise UsageError("--K applies only to --method quantile")
        kw["K"] = args.K
    if args.samples is not None or args.seed is not None:
        if args.method != "monte_carlo":
            raise UsageError("--samples/--seed apply only to --method monte_carlo")
        if args.samples is not None:
            kw["samples"] = args.samples
        if args.seed is not None:
            kw["seed"] = args.seed
    fn = numeric.log_probs if args.log else numeric.probs
    values = np.asarray(fn(np.asarray(mu, dtype=np.float64), key, **kw), dtype=np.float64).ravel().tolist()
    name = "log_p" if args.log else "p"
    if args.json:
        doc = {
            "family": key,
            "params": params,
            "method": args.method,
            "mu": [_json_float(m) for m in mu],
            name: [_json_float(v) for v in values],
        }
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        rows = [(i, _fmt_float(m), _fmt_float(v)) for i, (m, v) in enumerate(zip(mu, values))]
        sys.stdout.write(_table(("i", "mu", name), rows))
    return 0


def _oracle_value_text(v, dps: int) -> str:
    import mpmath

    if isinstance(v, mpmath.mpf):
        if mpmath.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        return mpmath.nstr(v, dps, min_fixed=-4, max_fixed=6, strip_zeros=False)
    if hasattr(v, "mid") and hasattr(v, "rad") and hasattr(v, "str"):  # python-flint arb ball
        return v.str(dps, radius=True)
    return _one_line(str(v))


def _cmd_oracle(args) -> int:
    if args.tables:
        if args.family is not None or args.mu:
            raise UsageError("--tables takes no FAMILY or MU")
        from .oracle import reference_tables

        # default: the package's own tables (derive/oracle/reference/, read by derive.testing)
        paths = reference_tables(outdir=args.outdir, progress=not args.quiet)
        outdir = args.outdir if args.outdir is not None else os.path.dirname(paths[0])
        sys.stdout.write(f"reference tables written under {outdir}\n")
        return 0
    if args.family is None:
        raise UsageError("give FAMILY and MU... (or --tables)")
    if args.outdir is not None:
        raise UsageError("--outdir applies only to --tables")
    key = _check_family(args.family)
    params = _family_params(args)
    _parse_mu_floats(args.mu)  # validates the tokens (real numbers, no NaN)
    # The oracle reads decimal strings exactly: 0.1 is 1/10, not the nearest float.
    mu = [tok.strip() for tok in args.mu]
    from . import oracle

    fn = oracle.log_probs if args.log else oracle.probs
    kw = dict(params)
    if args.certified:
        kw["certified"] = True
    values = fn(mu, key, dps=args.dps, **kw)
    name = "log_p" if args.log else "p"
    texts = [_oracle_value_text(v, args.dps) for v in values]
    if args.json:
        doc = {
            "family": key,
            "params": params,
            "dps": args.dps,
            "certified": bool(args.certified),
            "mu": [tok.strip() for tok in args.mu],
            name: texts,
        }
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        rows = [(i, tok.strip(), t) for i, (tok, t) in enumerate(zip(args.mu, texts))]
        sys.stdout.write(_table(("i", "mu", name), rows))
    return 0


def _notes_default():
    from . import notes

    return str(notes.default_outdir())


def _cmd_atlas(args) -> int:
    import json as _json

    from . import atlas

    outdir = args.outdir or _notes_default()
    if args.check:
        problems = atlas.check(outdir)
        for line in problems:
            _err(line)
        return 1 if problems else 0
    if args.render:
        with open(os.path.join(outdir, "atlas.json")) as fh:
            data = _json.load(fh)
        with open(os.path.join(outdir, "atlas.md"), "w") as fh:
            fh.write(atlas.render_markdown(data))
        return 0
    keys = {k for k, _, _ in atlas.families()}
    unknown = sorted(set(args.only or ()) - keys)
    if unknown:
        raise UsageError(f"--only: unknown atlas families {', '.join(unknown)}; valid: {', '.join(sorted(keys))}")

    def progress(rec):
        cells = ", ".join(f"n={n}: {c['status']}" for n, c in rec["cells"].items())
        print(f"{rec['key']}: {cells}", flush=True)

    cells = set(args.cells) if args.cells else None
    if cells and not cells <= {str(n) for n in atlas.NS} | {"general"}:
        raise UsageError(f"--cells: each must be one of {', '.join(map(str, atlas.NS))} or general, got "
                         f"{' '.join(args.cells)}")
    paths = atlas.write(outdir, keys=set(args.only) if args.only else None, jobs=args.jobs,
                        timeout=args.timeout or atlas.FAMILY_TIMEOUT, progress=progress, cells=cells)
    print("wrote " + " and ".join(paths))
    return 0


def _cmd_bench(args) -> int:
    from . import bench

    notes_dir = None
    if args.update_notes:
        notes_dir = args.notes_dir or _notes_default()
        if args.quick and os.path.realpath(notes_dir) == os.path.realpath(_notes_default()):
            raise UsageError("--update-notes with --quick would put smoke-test numbers into the repository's "
                             "notes/; give --notes-dir DIR, or drop --quick")
    elif args.notes_dir is not None:
        raise UsageError("--notes-dir is only used with --update-notes")
    bench.run(quick=args.quick, sections=args.sections, output=args.output, notes_dir=notes_dir, verbose=True,
              oracle_timeout_s=args.oracle_timeout, families=args.families, shapes=args.shapes, ops=args.ops,
              call_cap_s=args.call_cap, cell_budget_s=args.cell_budget)
    return 0


def _bench_list(choices, name):
    """argparse type: a comma-separated subset of ``choices``."""
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{name}: unknown {', '.join(bad) or 'empty list'}; "
                                             f"choose from {', '.join(choices)}")
        return tuple(items)
    return parse


def _bench_shapes(text):
    """argparse type: comma-separated ROWSxN shapes, e.g. ``1x1e6,256x1000``."""
    shapes = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            dims = tuple(float(v) for v in item.lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) != 2 or any(not (d >= 1 and d == int(d) and d < 2 ** 31) for d in dims):
            raise argparse.ArgumentTypeError(f"--shapes: {item!r} is not ROWSxN with positive integers "
                                             "(e.g. 1x1e6,256x1000)")
        shapes.append(tuple(int(d) for d in dims))
    if not shapes:
        raise argparse.ArgumentTypeError("--shapes: empty list")
    return tuple(shapes)


# ---------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------

_FAMILY_HELP = "noise family: " + ", ".join(_FAMILY_NAMES)


def _examples(*lines) -> str:
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join("  " + ln for ln in lines)


def _add_family_params(p):
    p.add_argument("--scale", type=_positive_float("--scale"), default=None, metavar="S",
                   help="noise scale (temperature) > 0, default 1")
    p.add_argument("--nu", type=_positive_float("--nu"), default=None, metavar="NU",
                   help="degrees of freedom of student_t (> 0, default 1)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _ArgumentParser(
        prog=PROG,
        formatter_class=fmt,
        description=textwrap.dedent(
            """\
            Probabilities of the perturbed argmax p_i = P[argmax_j (mu_j + eps_j) = i]
            for iid noise eps (Gumbel gives softmax): symbolic derivations, a
            high-precision oracle and a fast numeric engine."""
        ),
        epilog=_examples(
            "perturbmax derive gumbel --format latex",
            "perturbmax probs normal -1 0 2",
            "perturbmax oracle cauchy 0 1 5 --dps 40",
            "perturbmax notes --check",
            "perturbmax bench --quick --output /tmp/bench.json",
        ),
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "derive", formatter_class=fmt, help="print the derivation of the argmax probabilities",
        description="Print the sympy-checked derivation of p_i for a noise family "
                    "(without --n: the symbolic-n derivation; for gumbel the article's derivation of softmax).",
        epilog=_examples("perturbmax derive gumbel --format latex",
                         "perturbmax derive normal --n 2 --format markdown"),
    )
    p.add_argument("family", metavar="FAMILY", help=_FAMILY_HELP)
    p.add_argument("--n", type=_positive_int("--n"), default=None, metavar="N",
                   help="number of scores (a concrete n >= 1); omit for the symbolic-n derivation")
    p.add_argument("--format", choices=("latex", "markdown"), default="latex", help="output format (default latex)")
    _add_family_params(p)
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser(
        "notes", formatter_class=fmt, help="regenerate notes/ (or --check that it is up to date)",
        description="Regenerate the notes/ directory (derivations, family pages, figures, benchmark "
                    "report from notes/data/bench.json). --check writes nothing and exits 1 naming each "
                    "stale, missing or extra file; figures are compared by the digest of their data, not by "
                    "PNG bytes. notes/data/ is input, not checked.",
        epilog=_examples("perturbmax notes", "perturbmax notes --check"),
    )
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    p.add_argument("--outdir", default=None, metavar="DIR", help="notes directory (default: the repository's notes/)")
    p.set_defaults(func=_cmd_notes)

    p = sub.add_parser(
        "oracle", formatter_class=fmt, help="high-precision (mpmath) probabilities, or --tables",
        description="Compute p (or log p) with the mpmath oracle to DPS significant digits, each value "
                    "checked by two independent evaluations. --tables rewrites the reference tables "
                    "derive/oracle/reference/*.json (package data; slow; not part of `notes --check`). "
                    "JSON values are decimal strings so no digit is lost.",
        epilog=_examples("perturbmax oracle normal -1 0 2 --dps 40",
                         "perturbmax oracle laplace 0 0.5 3 --log --json",
                         "perturbmax oracle --tables"),
    )
    p.add_argument("family", metavar="FAMILY", nargs="?", default=None, help=_FAMILY_HELP)
    p.add_argument("mu", metavar="MU", nargs="*", help="scores (real numbers; -inf allowed)")
    p.add_argument("--dps", type=_positive_int("--dps", 5), default=30, metavar="D",
                   help="significant decimal digits (default 30)")
    p.add_argument("--certified", action="store_true", help="rigorous interval enclosures (needs python-flint)")
    p.add_argument("--log", action="store_true", help="print log p instead of p")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--tables", action="store_true", help="regenerate derive/oracle/reference/*.json")
    p.add_argument("--outdir", default=None, metavar="DIR", help="with --tables: output directory")
    p.add_argument("--quiet", action="store_true", help="with --tables: no progress bar")
    _add_family_params(p)
    p.set_defaults(func=_cmd_oracle)

    p = sub.add_parser(
        "probs", formatter_class=fmt, help="fast float64 probabilities (numeric engine)",
        description="Compute p (or log p) with the numeric engine and print an aligned table "
                    "(columns i, mu, p) or JSON (non-finite numbers as the strings \"inf\", \"-inf\").",
        epilog=_examples("perturbmax probs normal -1 0 2",
                         "perturbmax probs gumbel 1 2 3 --log --json",
                         "perturbmax probs student_t 0 1 --nu 3 --scale 2",
                         "perturbmax probs normal 0 1 2 --method quantile --K 1000"),
    )
    p.add_argument("family", metavar="FAMILY", help=_FAMILY_HELP)
    p.add_argument("mu", metavar="MU", nargs="*", help="scores (real numbers; -inf/inf allowed)")
    p.add_argument("--log", action="store_true", help="print log p instead of p")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--method", choices=("auto", "quadrature", "closed", "quantile", "monte_carlo"),
                   default="auto", help="numeric method (default auto)")
    p.add_argument("--K", type=_positive_int("--K"), default=None, help="nodes of the quantile rule")
    p.add_argument("--samples", type=_positive_int("--samples"), default=None, help="Monte Carlo samples")
    p.add_argument("--seed", type=_positive_int("--seed", 0), default=None, help="Monte Carlo seed")
    _add_family_params(p)
    p.set_defaults(func=_cmd_probs)

    from .bench import FAMILIES as BENCH_FAMILIES, OPS as BENCH_OPS, SECTIONS as BENCH_SECTIONS

    p = sub.add_parser(
        "bench", formatter_class=fmt, help="measure the speed matrix vs softmax (and more); writes nothing by default",
        description="Time numeric.probs, log_probs, probs_vjp and log_probs_vjp (one-hot and dense cotangents) "
                    "for every family and shape against scipy.special.softmax (plus its VJP) on the same "
                    "arrays, minimum of repeated calls, wall and CPU time; then peak memory, the PyTorch "
                    "adapter, CLI start-up, n = 10 accuracy vs cost and oracle timings. Prints the targets and "
                    "tables. Writes nothing unless asked: --output PATH (raw JSON) and/or --update-notes "
                    "(data/bench.json, benchmarks.md and its figures in the notes directory). A full run "
                    "takes about 15 minutes on 2 cores; --quick is a smoke subset of under a minute.",
        epilog=_examples("perturbmax bench --quick",
                         "perturbmax bench --families normal,cauchy --shapes 1x1e5,256x1000 --sections matrix",
                         "perturbmax bench --update-notes"),
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke subset (4 families, 3 small shapes, tiny budgets; about a minute)")
    p.add_argument("--output", default=None, metavar="PATH", help="write the raw results (JSON) to PATH")
    p.add_argument("--update-notes", action="store_true",
                   help="write data/bench.json, benchmarks.md and its figures into the notes directory")
    p.add_argument("--notes-dir", default=None, metavar="DIR",
                   help="notes directory for --update-notes (default: the repository's notes/)")
    p.add_argument("--sections", type=_bench_list(BENCH_SECTIONS, "--sections"), default=None, metavar="LIST",
                   help="comma-separated subset of: " + ", ".join(BENCH_SECTIONS) + " (default all)")
    p.add_argument("--families", type=_bench_list(BENCH_FAMILIES, "--families"), default=None, metavar="LIST",
                   help="comma-separated families (default all: the nine registry families and "
                        "user:frechet2, a user CDF compiled by derive; --quick: four)")
    p.add_argument("--ops", type=_bench_list(BENCH_OPS, "--ops"), default=None, metavar="LIST",
                   help="comma-separated operations: " + ", ".join(BENCH_OPS))
    p.add_argument("--shapes", type=_bench_shapes, default=None, metavar="LIST",
                   help="comma-separated ROWSxN shapes, e.g. 1x1e6,256x1000 (default: the issue's ten)")
    p.add_argument("--call-cap", type=_positive_float("--call-cap"), default=None, metavar="S",
                   help="interrupt a call after S seconds, record the cell as capped and skip its larger "
                        "shapes; a cell stops trying input kinds after 2 S (default 1; --quick 0.3)")
    p.add_argument("--cell-budget", type=_positive_float("--cell-budget"), default=None, metavar="S",
                   help="time budget per cell and input kind (default 0.1; --quick 0.01)")
    p.add_argument("--oracle-timeout", type=_positive_float("--oracle-timeout"), default=120.0, metavar="S",
                   help="stop the n = 1000 oracle timing after S seconds (default 120)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "atlas", formatter_class=fmt, help="which noises give closed forms, for which n (notes/atlas.md/.json)",
        description="Run derive at n = 2, 3, 4 and symbolic n for 36 noise families (registry and sympy.stats "
                    "at fixed parameters), verify every closed form against the oracle at 30 digits on 10 "
                    "vectors, and write atlas.json and atlas.md into the notes directory. Slow (tens of "
                    "minutes; each family runs in its own process with a time limit), so it is not part of "
                    "`notes --check`. --check only checks that atlas.md renders atlas.json.",
        epilog=_examples("perturbmax atlas --jobs 2", "perturbmax atlas --only Triangular(0,2,1) gumbel",
                         "perturbmax atlas --check"),
    )
    p.add_argument("--check", action="store_true", help="check the stored atlas (exit 1 when stale)")
    p.add_argument("--render", action="store_true", help="re-render atlas.md from atlas.json only")
    p.add_argument("--only", nargs="+", default=None, metavar="KEY", help="recompute these families only")
    p.add_argument("--cells", nargs="+", default=None, metavar="N",
                   help="recompute only these cells (e.g. 5 general), the others kept from atlas.json")
    p.add_argument("--jobs", type=_positive_int("--jobs"), default=1, help="families computed at once")
    p.add_argument("--timeout", type=_positive_float("--timeout"), default=None, metavar="S",
                   help="seconds per family (default 1500)")
    p.add_argument("--outdir", default=None, metavar="DIR", help="notes directory (default: the repository's)")
    p.set_defaults(func=_cmd_atlas)
    return parser


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _err(str(code))
    return 2


def main(argv=None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("PERTURBMAX_DEBUG"))
    try:
        parser = build_parser()
        if not argv:
            parser.print_help(sys.stderr)
            return 2
        args = parser.parse_args(_protect_negative_numbers(argv))
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # surface a closed pipe here, not at interpreter exit
        return rc
    except SystemExit as exc:  # --help, or a subcommand's explicit exit
        return _exit_code(exc)
    except (UsageError, argparse.ArgumentError, ValueError, TypeError) as exc:
        if debug:
            raise
        _err(exc)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency (extra) that is not installed
        from ._optional import EXTRAS, missing_message

        root = (exc.name or "").partition(".")[0]
        if debug or root not in EXTRAS:
            raise
        _err(missing_message(root))
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `perturbmax probs ... | head`
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except Exception as exc:  # numerical failure (e.g. OracleError) or a bug: one line, exit 1
        if debug:
            raise
        _err(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
