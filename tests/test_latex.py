"""LaTeX / Markdown output: structure, and a real pdflatex compile."""

import shutil
import subprocess

import pytest

import derive
from derive.latex import standalone_document, text_latex


def test_latex_is_an_aligned_environment_in_article_notation():
    tex = derive.softmax_derivation().to_latex()
    assert tex.startswith("\\begin{aligned}") and tex.rstrip().endswith("\\end{aligned}")
    assert "\\varepsilon" in tex and "\\Phi" in tex and "{\\mu}_{i}" in tex
    assert "\\prod_{j \\neq i}" in tex
    # numbered steps with reasons
    assert "\\text{(1) " in tex and "\\text{(2) " in tex


def test_markdown_has_display_blocks():
    md = derive.softmax_derivation().to_markdown()
    assert md.count("$$") >= 2 * len(derive.softmax_derivation().steps)
    assert "**(1)**" in md


def test_text_escaping_keeps_math():
    assert text_latex("50% of a_b $x_1$") == "50\\% of a\\_b $x_1$"


def _compile(tmp_path, blocks):
    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.skip("no pdflatex on PATH")
    (tmp_path / "doc.tex").write_text(standalone_document(*blocks))
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "doc.pdf").exists()


def test_gumbel_latex_compiles(tmp_path):
    _compile(tmp_path, [derive.softmax_derivation().to_latex(), derive.derive("gumbel", 3).to_latex()])


@pytest.mark.slow
def test_other_families_latex_compiles(tmp_path):
    blocks = [derive.derive(f, n).to_latex() for f, n in
              (("exponential", 2), ("uniform", 2), ("normal", 3), ("cauchy", 2), ("normal", 4))]
    _compile(tmp_path, blocks)
