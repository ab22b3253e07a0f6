"""The ``perturbmax`` command line: every subcommand, JSON output, bad input.

Expected values are computed independently here (numpy softmax, the n = 2
closed forms derived in derive/, mpmath), never copied from the program's output.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from scipy.special import log_softmax, ndtr, softmax

from derive.cli import build_parser, main


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def parse_table(out):
    lines = out.strip("\n").split("\n")
    header = lines[0].split()
    rows = [ln.split() for ln in lines[1:]]
    assert all(len(r) == len(header) for r in rows), out
    return header, rows


# ---------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------

SUBCOMMANDS = ("derive", "notes", "oracle", "probs", "bench", "atlas")


def test_top_level_help_lists_subcommands_and_examples(capsys):
    rc, out, err = run(capsys, "--help")
    assert rc == 0 and err == ""
    for sub in SUBCOMMANDS:
        assert sub in out
    assert "example" in out


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_help_shows_an_example(capsys, sub):
    rc, out, err = run(capsys, sub, "--help")
    assert rc == 0
    examples = out.split("example", 1)[1]
    assert f"perturbmax {sub}" in examples


def test_help_examples_parse():
    """Every example line in every --help epilog is accepted by the parser."""
    import shlex

    from derive.cli import _protect_negative_numbers

    parser = build_parser()
    sub_actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    epilogs = [parser.epilog] + [p.epilog for p in sub_actions.choices.values()]
    n = 0
    for epilog in epilogs:
        for line in epilog.splitlines():
            line = line.strip()
            if line.startswith("perturbmax "):
                args = parser.parse_args(_protect_negative_numbers(shlex.split(line)[1:]))
                assert args.command in SUBCOMMANDS
                n += 1
    assert n >= 10


# ---------------------------------------------------------------------------
# probs
# ---------------------------------------------------------------------------


def test_probs_gumbel_table_is_softmax(capsys):
    mu = [0.5, -1.25, 3.0, 2.0]
    rc, out, err = run(capsys, "probs", "gumbel", *map(str, mu))
    assert rc == 0, err
    header, rows = parse_table(out)
    assert header == ["i", "mu", "p"]
    assert [int(r[0]) for r in rows] == list(range(4))
    assert [float(r[1]) for r in rows] == mu
    np.testing.assert_allclose([float(r[2]) for r in rows], softmax(mu), rtol=1e-14)


def test_probs_table_is_aligned(capsys):
    rc, out, _ = run(capsys, "probs", "gumbel", "1", "-20", "300")
    assert rc == 0
    lines = out.rstrip("\n").split("\n")
    assert len({len(ln) for ln in lines}) == 1  # right-aligned columns: equal line widths


def test_probs_negative_numbers_without_double_dash(capsys):
    # n = 2 normal: p_1 = Phi(Delta / sqrt 2)
    rc, out, err = run(capsys, "probs", "normal", "-1", "0.5")
    assert rc == 0, err
    _, rows = parse_table(out)
    p = [float(r[2]) for r in rows]
    np.testing.assert_allclose(p, [ndtr(-1.5 / math.sqrt(2)), ndtr(1.5 / math.sqrt(2))], rtol=1e-13)


def test_probs_negative_exponent_and_inf_tokens(capsys):
    rc, out, err = run(capsys, "probs", "gumbel", "-1e0", "-inf", "-.5")
    assert rc == 0, err
    _, rows = parse_table(out)
    p = [float(r[2]) for r in rows]
    expected = softmax([-1.0, -np.inf, -0.5])
    assert p[1] == 0.0
    np.testing.assert_allclose(p, expected, rtol=1e-14)


def test_probs_with_double_dash(capsys):
    rc, out, err = run(capsys, "probs", "cauchy", "--", "-1", "1")
    assert rc == 0, err
    _, rows = parse_table(out)
    # cauchy, n = 2: p_1 = 1/2 + atan(Delta/2)/pi
    assert float(rows[0][2]) == pytest.approx(0.5 + math.atan(-1.0) / math.pi, rel=1e-13)


def test_probs_json_and_log(capsys):
    mu = [1.0, 2.0, 3.0]
    rc, out, err = run(capsys, "probs", "gumbel", "1", "2", "3", "--log", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["family"] == "gumbel" and doc["mu"] == mu
    np.testing.assert_allclose(doc["log_p"], log_softmax(mu), rtol=1e-14, atol=1e-15)


def test_probs_json_scale_is_temperature(capsys):
    rc, out, err = run(capsys, "probs", "gumbel", "1", "3", "--scale", "2", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["params"] == {"scale": 2.0}
    np.testing.assert_allclose(doc["p"], softmax([0.5, 1.5]), rtol=1e-14)


def test_probs_json_nonfinite_are_strings(capsys):
    rc, out, err = run(capsys, "probs", "gumbel", "0", "-inf", "--log", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["mu"][1] == "-inf" and doc["log_p"][1] == "-inf"
    assert doc["log_p"][0] == 0.0


def test_probs_quantile_method_runs(capsys):
    rc, out, err = run(capsys, "probs", "normal", "0", "1", "--method", "quantile", "--K", "50", "--json")
    assert rc == 0, err
    p = json.loads(out)["p"]
    exact = [ndtr(-1 / math.sqrt(2)), ndtr(1 / math.sqrt(2))]
    # the K-point rule is a crude approximation, but close at K = 50 for n = 2
    np.testing.assert_allclose(p, exact, atol=0.05)


# ---------------------------------------------------------------------------
# oracle
# ---------------------------------------------------------------------------


def test_oracle_json_matches_cauchy_closed_form(capsys):
    rc, out, err = run(capsys, "oracle", "cauchy", "0", "1", "--dps", "30", "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["dps"] == 30 and doc["mu"] == ["0", "1"]
    with mpmath.workdps(40):
        expected = [mpmath.mpf(1) / 2 + mpmath.atan(mpmath.mpf(-1) / 2) / mpmath.pi,
                    mpmath.mpf(1) / 2 + mpmath.atan(mpmath.mpf(1) / 2) / mpmath.pi]
        for text, e in zip(doc["p"], expected):
            assert abs(mpmath.mpf(text) - e) < mpmath.mpf(10) ** -28 * e


def test_oracle_table_uses_typed_decimals(capsys):
    # 0.1 must mean 1/10, not the binary float: gumbel -> softmax of (0, 1/10)
    rc, out, err = run(capsys, "oracle", "gumbel", "0", "0.1", "--dps", "30")
    assert rc == 0, err
    header, rows = parse_table(out)
    assert header == ["i", "mu", "p"]
    with mpmath.workdps(40):
        p1 = 1 / (1 + mpmath.exp(-mpmath.mpf(1) / 10))
        assert abs(mpmath.mpf(rows[1][2]) - p1) < mpmath.mpf(10) ** -28


def test_oracle_log_negative_scores(capsys):
    rc, out, err = run(capsys, "oracle", "normal", "-3", "3", "--log", "--json", "--dps", "20")
    assert rc == 0, err
    logp = [float(v) for v in json.loads(out)["log_p"]]
    # n = 2 normal: p_1 = Phi(-6 / sqrt 2)
    assert logp[0] == pytest.approx(math.log(ndtr(-6 / math.sqrt(2))), rel=1e-13)


def test_oracle_tables_calls_reference_tables(capsys, monkeypatch, tmp_path):
    import derive.oracle

    calls = []
    monkeypatch.setattr(derive.oracle, "reference_tables",
                        lambda outdir=None, families=None, progress=True: calls.append((outdir, progress)))
    rc, out, err = run(capsys, "oracle", "--tables", "--outdir", str(tmp_path), "--quiet")
    assert rc == 0, err
    assert calls == [(str(tmp_path), False)]
    assert str(tmp_path) in out


# ---------------------------------------------------------------------------
# derive
# ---------------------------------------------------------------------------


def test_derive_gumbel_latex_and_markdown(capsys):
    rc, out, err = run(capsys, "derive", "gumbel", "--format", "latex")
    assert rc == 0, err
    assert "\\begin{aligned}" in out and "\\end{aligned}" in out
    rc, out, err = run(capsys, "derive", "gumbel", "--format", "markdown")
    assert rc == 0, err
    assert "$$" in out


def test_derive_concrete_n(capsys):
    rc, out, err = run(capsys, "derive", "gumbel", "--n", "2", "--format", "markdown")
    assert rc == 0, err
    assert out.strip()


# ---------------------------------------------------------------------------
# bad input: exit 2, exactly one line on stderr, no traceback
# ---------------------------------------------------------------------------

# (argv, a word the one-line message must contain)
BAD = [
    (["probs", "gauss", "0", "1"], "gauss"),
    (["probs", "normal", "nan", "1"], "NaN"),
    (["probs", "normal", "-inf", "-inf"], "-inf"),
    (["probs", "normal", "0", "abc"], "abc"),
    (["probs", "normal", "0", "1+2j"], "1+2j"),
    (["probs", "normal"], "MU"),
    (["probs", "normal", "0", "1", "--scale", "0"], "scale"),
    (["probs", "normal", "0", "1", "--scale", "-1"], "scale"),
    (["probs", "normal", "0", "1", "--scale", "nan"], "scale"),
    (["probs", "student_t", "0", "1", "--nu", "0"], "nu"),
    (["probs", "student_t", "0", "1", "--nu", "nan"], "nu"),
    (["probs", "normal", "0", "1", "--nu", "3"], "nu"),
    (["probs", "normal", "0", "1", "--method", "magic"], "method"),
    (["probs", "normal", "0", "1", "--K", "10"], "--K"),
    (["probs", "normal", "0", "1", "--no-such-option"], "no-such-option"),
    (["oracle", "gauss", "0", "1"], "gauss"),
    (["oracle", "normal", "nan", "1"], "NaN"),
    (["oracle", "normal", "inf", "0", "inf"], "inf"),
    (["oracle", "normal", "0", "1", "--dps", "2"], "dps"),
    (["oracle", "normal", "0", "1", "--dps", "two"], "dps"),
    (["oracle", "normal", "0", "x"], "x"),
    (["oracle", "normal", "0", "1", "--scale", "-3"], "scale"),
    (["oracle"], "FAMILY"),
    (["oracle", "--tables", "normal", "0"], "tables"),
    (["oracle", "normal", "0", "1", "--outdir", "x"], "outdir"),
    (["derive", "gauss", "--n", "2"], "gauss"),
    (["derive", "normal", "--n", "0"], "n"),
    (["derive", "normal", "--n", "two"], "two"),
    (["derive", "normal"], "--n"),
    (["derive", "gumbel", "--format", "html"], "format"),
    (["notes", "--bogus"], "bogus"),
    (["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize("argv,word", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exit_2_one_line(capsys, argv, word):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, (rc, out, err)
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("perturbmax: error: ")
    assert word.lower() in lines[0].lower(), lines[0]


def _table_values(out):
    return [float(r[-1]) for r in parse_table(out)[1]]


def test_probs_special_values(capsys):
    # -inf loses exactly; one +inf wins exactly; n = 1 gives 1; n = 2 normal is Phi(D / sqrt 2)
    rc, out, err = run(capsys, "probs", "normal", "1", "-inf", "0")
    assert rc == 0, err
    v = _table_values(out)
    assert v[1] == 0.0 and v[0] == pytest.approx(ndtr(1 / math.sqrt(2)), rel=1e-13)
    assert _table_values(run(capsys, "probs", "cauchy", "0", "inf", "3")[1]) == [0.0, 1.0, 0.0]
    assert _table_values(run(capsys, "probs", "normal", "--", "-2.5")[1]) == [1.0]
    # k entries +inf share the mass, 1/k each (the limit of k tied scores running off to +inf)
    assert _table_values(run(capsys, "probs", "normal", "inf", "0", "inf")[1]) == [0.5, 0.0, 0.5]


def test_oracle_special_values(capsys):
    assert _table_values(run(capsys, "oracle", "normal", "0", "-inf", "--dps", "15")[1]) == [1.0, 0.0]
    assert _table_values(run(capsys, "oracle", "laplace", "-1", "inf", "--dps", "15")[1]) == [0.0, 1.0]


def test_bare_command_prints_usage_exit_2(capsys):
    rc, out, err = run(capsys)
    assert rc == 2 and out == ""
    assert err.startswith("usage: perturbmax") and all(sub in err for sub in SUBCOMMANDS)


def test_version_is_the_distribution_version(capsys):
    from importlib.metadata import version

    import derive
    import numeric

    rc, out, _ = run(capsys, "--version")
    assert rc == 0
    assert out.strip() == f"perturbmax {version('perturbmax')}"
    assert derive.__version__ == numeric.__version__ == version("perturbmax")


def test_cli_family_names_are_the_registry():
    """The CLI spells the names out (fast --help); they must be the registry's, in order."""
    import derive
    import numeric
    from derive import cli

    assert cli._FAMILY_NAMES == tuple(numeric.FAMILY_NAMES) == tuple(derive.FAMILY_NAMES)


def test_missing_flint_names_the_extra_exit_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "flint", None)  # `import flint` now raises ModuleNotFoundError
    rc, out, err = run(capsys, "oracle", "uniform", "0.3", "0", "--certified")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("perturbmax: error: python-flint is not installed")
    assert "[certified]" in err and "pip install" in err


def test_missing_matplotlib_names_the_extra_exit_2(capsys, monkeypatch, tmp_path):
    # an empty notes directory: every figure is missing, so drawing needs matplotlib
    from derive import notes

    render = notes.render
    monkeypatch.setattr(notes, "render", lambda outdir=None, parts=None: render(outdir, parts=("figures",)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc, out, err = run(capsys, "notes", "--outdir", str(tmp_path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "matplotlib is not installed" in err and "[figures]" in err


def test_cheap_commands_do_not_import_the_engines():
    """--help, --version and bad input answer before sympy, numpy or scipy are imported."""
    code = ("import sys; from derive.cli import main\n"
            "for argv in (['--help'], ['--version'], ['probs', 'nrmal', '1'], ['probs', 'normal', 'nan'],\n"
            "             ['derive', 'normal'], ['oracle', 'normal', '0', '--dps', '1']):\n"
            "    main(argv)\n"
            "heavy = sorted(m for m in ('sympy', 'numpy', 'scipy', 'mpmath', 'matplotlib') if m in sys.modules)\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.rsplit("HEAVY=", 1)[1] == ""


def test_bad_input_via_console_script_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from derive.cli import main; sys.exit(main())",
         "probs", "normal", "1", "nan"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("perturbmax: error:")
    assert "nan" in proc.stderr.lower()
