"""notes/ is generated from code: deterministic, checked, and committed up to date."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from derive import notes, plots
from derive.cli import main

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "notes"


# The sympy-heavy derivation pages take minutes; the default run renders every
# other part (index, torch listing, figures, benchmark report) and the slow run
# renders and checks everything.  CI also runs `perturbmax notes --check`.
LIGHT = ("index", "torch", "figures", "benchmarks")


def _copy_inputs(out: Path):
    bench = NOTES / "data" / "bench.json"
    if bench.is_file():
        (out / "data").mkdir()
        shutil.copyfile(bench, out / "data" / "bench.json")


@pytest.fixture(scope="module")
def rendered():
    """One render (all parts but the derivation pages) with the repository's inputs."""
    return notes.render(NOTES, parts=LIGHT)


@pytest.fixture(scope="module")
def tmp_notes(tmp_path_factory, rendered):
    """A notes directory written from a second, independent render."""
    out = tmp_path_factory.mktemp("notes")
    _copy_inputs(out)
    notes.generate(out, rendered=notes.render(out, parts=LIGHT))
    return out


def _png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_generation_is_deterministic(rendered, tmp_notes):
    """Two independent renders: text files byte-identical, figures with equal data digests."""
    on_disk = {p.relative_to(tmp_notes).as_posix(): p.read_bytes()
               for p in tmp_notes.rglob("*") if p.is_file() and p.relative_to(tmp_notes).parts[0] != "data"}
    assert set(on_disk) == set(rendered)
    differing = [k for k, v in rendered.items()
                 if (on_disk[k] != v if isinstance(v, bytes) else plots.png_digest(on_disk[k]) != v.digest)]
    assert differing == []


def test_figure_check_compares_content_not_png_bytes(tmp_notes, rendered):
    """Other pixels with the same data (another matplotlib release) are up to date and are
    not redrawn; other data is stale."""
    key = "figures/p1_vs_delta.png"
    spec, path = rendered[key], tmp_notes / key
    saved = path.read_bytes()
    other_pixels = dataclasses.replace(spec, size=(5.0, 3.0)).png()
    assert other_pixels != saved and plots.png_digest(other_pixels) == spec.digest
    try:
        path.write_bytes(other_pixels)
        assert notes.check(tmp_notes, rendered=rendered) == []
        notes.generate(tmp_notes, rendered=rendered)
        assert path.read_bytes() == other_pixels  # up to date: not redrawn
        changed = dict(spec.data, delta=[d + 1e-3 for d in spec.data["delta"]])
        stale = dataclasses.replace(spec, data=changed)
        assert stale.digest != spec.digest
        report = dict(notes.check_report(tmp_notes, rendered=dict(rendered, **{key: stale})))
        assert report == {str(path): "figure data or plotting code changed"}
    finally:
        path.write_bytes(saved)
    assert plots.png_digest(b"not a png") is None


def test_check_detects_benchmark_notes_stale_against_bench_json(tmp_path):
    """benchmarks.md and its figures are rendered from data/bench.json: new data, stale notes."""
    from derive import bench

    # a one-cell measurement in the current bench.json layout (a fraction of a second)
    doc = bench.run(quick=True, sections=("matrix",), families=("gumbel",), shapes=((1, 10),), ops=("probs",),
                    verbose=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bench.json").write_text(json.dumps(doc), encoding="utf-8")
    old = notes.render(tmp_path, parts=("benchmarks",))
    cell = doc["matrix"]["cells"][0]
    kind = cell["kinds"][cell["worst_kind"]]
    kind["time_s"] *= 2
    kind["ratio"] *= 2
    (tmp_path / "data" / "bench.json").write_text(json.dumps(doc), encoding="utf-8")
    new = notes.render(tmp_path, parts=("benchmarks",))
    assert old["benchmarks.md"] != new["benchmarks.md"]
    assert old["figures/bench_scaling.png"].digest != new["figures/bench_scaling.png"].digest
    assert old["figures/accuracy_vs_cost.png"].digest == new["figures/accuracy_vs_cost.png"].digest


def test_quick_bench_data_in_the_repository_notes_is_reported(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bench.json").write_text('{"quick": true}\n', encoding="utf-8")
    monkeypatch.setattr(notes, "default_outdir", lambda: tmp_path)
    report = dict(notes.check_report(tmp_path, rendered={}))
    assert "--quick" in report[str(tmp_path / "data" / "bench.json")]


def test_expected_figures(rendered):
    for fig in ("p1_vs_delta.png", "family_bars.png"):
        assert f"figures/{fig}" in rendered
    if (NOTES / "data" / "bench.json").is_file():
        for extra in ("benchmarks.md", "figures/accuracy_vs_cost.png", "figures/bench_scaling.png"):
            assert extra in rendered


@pytest.mark.slow
def test_full_render_has_every_page_and_matches_committed_notes():
    """Everything, derivation pages included: byte-identical to the committed notes/ (another process)."""
    from derive import FAMILY_NAMES

    full = notes.render(NOTES)
    for page in ("README.md", "gumbel.md", "families.md"):
        assert page in full
    for name in FAMILY_NAMES:
        assert f"families/{name}.md" in full
    assert notes.check(NOTES, rendered=full) == [], "run `perturbmax notes`"


def test_every_figure_is_referenced_with_a_caption(rendered):
    pages = {k: v.decode("utf-8") for k, v in rendered.items() if k.endswith(".md")}
    for key in rendered:
        if not key.endswith(".png"):
            continue
        name = key.split("/")[-1]
        refs = [p for p, text in pages.items() if re.search(rf"!\[[^\]]*\]\((\.\./)?figures/{re.escape(name)}\)", text)]
        assert refs, f"{name} is not shown on any page"
        for p in refs:
            text = pages[p]
            i = text.index(f"figures/{name})")
            caption = text[i:].split("\n\n", 2)[1]
            assert caption.startswith("*Figure:") and "\n" not in caption.strip(), caption


def test_pngs_carry_no_date_or_software(rendered, tmp_notes):
    for key in rendered:
        if key.endswith(".png"):
            data = (tmp_notes / key).read_bytes()
            kinds = [k for k, _ in _png_chunks(data)]
            assert b"tIME" not in kinds
            texts = b"".join(body for k, body in _png_chunks(data) if k in (b"tEXt", b"iTXt", b"zTXt"))
            assert b"Software" not in texts and b"matplotlib" not in texts.lower()


def test_pages_say_they_are_generated(rendered):
    for key, data in rendered.items():
        if key.endswith(".md"):
            assert data.startswith(b"<!-- generated by `perturbmax notes`"), key


def test_check_names_modified_missing_and_extra_files(tmp_notes, rendered):
    # tmp_notes has the same inputs as the repository, so `rendered` is its rendering
    assert notes.check(tmp_notes, rendered=rendered) == []
    page = tmp_notes / "README.md"
    fig = tmp_notes / "figures" / "family_bars.png"
    saved_page, saved_fig = page.read_bytes(), fig.read_bytes()
    try:
        page.write_bytes(saved_page + b"hand edit\n")
        fig.unlink()
        (tmp_notes / "stray.md").write_text("not generated\n")
        report = dict(notes.check_report(tmp_notes, rendered=rendered))
        assert report == {
            str(page): "differs from generated",
            str(fig): "missing",
            str(tmp_notes / "stray.md"): "extra: not generated by the code",
        }
    finally:
        page.write_bytes(saved_page)
        fig.write_bytes(saved_fig)
        (tmp_notes / "stray.md").unlink()
    assert notes.check(tmp_notes, rendered=rendered) == []


def test_cli_check_exit_codes(tmp_notes, rendered, capsys, monkeypatch):
    # the CLI's wiring (exit code, one message per stale file); rendering is tested above
    monkeypatch.setattr(notes, "render", lambda outdir=None, parts=None: rendered)
    page = tmp_notes / "benchmarks.md" if "benchmarks.md" in rendered else tmp_notes / "README.md"
    saved = page.read_bytes()
    try:
        page.write_bytes(b"stale\n")
        assert main(["notes", "--check", "--outdir", str(tmp_notes)]) == 1
        err = capsys.readouterr().err
        assert str(page) in err and "stale" in err
        assert err.count(str(tmp_notes)) == 1  # only the modified file is named
    finally:
        page.write_bytes(saved)
    assert main(["notes", "--check", "--outdir", str(tmp_notes)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_inputs_are_not_checked_or_deleted(tmp_notes, rendered):
    data = tmp_notes / "data"
    data.mkdir(exist_ok=True)
    (data / "other.json").write_text("{}\n")
    try:
        assert notes.check(tmp_notes, rendered=rendered) == []
        notes.generate(tmp_notes, rendered=rendered)
        assert (data / "other.json").is_file()
    finally:
        (data / "other.json").unlink()


def test_committed_notes_are_up_to_date(rendered):
    """The committed notes/ equal what the code generates now (all parts but the derivation pages)."""
    stale = [k for k, v in rendered.items() if notes._stale(NOTES / k, v) is not None]
    assert stale == [], "run `perturbmax notes`"


def test_readme_latex_block_is_the_derivation():
    """README shows the Gumbel derivation exactly as `perturbmax derive gumbel --format latex` prints it."""
    import derive

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- begin: perturbmax derive gumbel --format latex[^\n]*-->\n```latex\n(.*?)```\n"
                  r"<!-- end: perturbmax derive gumbel --format latex -->", text, re.S)
    assert m, "README lacks the generated LaTeX block"
    assert m.group(1).rstrip("\n") == derive.softmax_derivation().to_latex().rstrip("\n")


def test_readme_quick_start_is_two_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [ln for ln in block.splitlines() if ln.strip()]
    assert len(commands) == 2
    assert "perturbmax notes" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()


@pytest.mark.slow
def test_derivations_tex_compiles_with_pdflatex(tmp_path):
    """notes/derivations.tex (every family's derivation) is a complete document pdflatex accepts."""
    import subprocess

    exe = shutil.which("pdflatex")
    if exe is None:
        pytest.skip("no pdflatex on PATH (CI installs texlive-latex-base)")
    from derive import pages

    (tmp_path / "derivations.tex").write_text(pages.derivations_tex(), encoding="utf-8")
    proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "derivations.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "derivations.pdf").stat().st_size > 0
