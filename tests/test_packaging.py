"""The distribution: metadata from one source, licence, typing markers, package data.

The slow test builds a wheel, installs it into a fresh virtual environment
and runs ``derive.testing.assert_matches_oracle`` from there, outside the
source tree: what another project's test suite would do.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_licence_file_is_the_declared_licence():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_typing_markers_are_shipped():
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for pkg in ("derive", "numeric"):
        assert (ROOT / pkg / "py.typed").is_file()
        assert "py.typed" in data[pkg]


def test_optional_dependency_messages_name_real_extras():
    """Each extra a missing-module message names exists and requires that distribution."""
    from derive._optional import EXTRAS

    extras = PYPROJECT["project"]["optional-dependencies"]
    for dist, requirement, extra, _ in EXTRAS.values():
        assert requirement in extras[extra], (extra, requirement)
        assert requirement.startswith(dist)


def test_missing_flint_raises_naming_the_extra(monkeypatch):
    from derive import oracle
    from derive._optional import MissingDependency

    monkeypatch.setitem(sys.modules, "flint", None)  # `import flint` raises ModuleNotFoundError
    with pytest.raises(MissingDependency, match=r"python-flint is not installed.*\[certified\] extra") as info:
        oracle.probs([0, 1], "normal", certified=True)
    assert isinstance(info.value, ModuleNotFoundError) and info.value.name == "flint"


def test_missing_torch_raises_naming_the_extra_and_the_cpu_wheel(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "numeric.torch", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"\[torch\] extra") as info:
        importlib.import_module("numeric.torch")
    assert "download.pytorch.org/whl/cpu" in str(info.value) and "perturbmax[torch]" not in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_figures_are_checked_without_matplotlib(monkeypatch, tmp_path):
    """Rendering specs and reading digests needs no matplotlib; drawing names the extra."""
    from derive import plots
    from derive._optional import MissingDependency

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    spec = plots.family_bars()
    assert len(spec.digest) == 64 and plots.png_digest(b"") is None
    with pytest.raises(MissingDependency, match=r"\[figures\] extra"):
        spec.png()


def _public_callables(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    yield f"{name}.{attr}", member


@pytest.mark.parametrize("modname", ["derive", "derive.oracle", "derive.testing", "numeric"])
def test_public_api_is_annotated(modname):
    """Every parameter and return value of the public functions carries a type annotation."""
    import importlib

    module = importlib.import_module(modname)
    missing = []
    for name, fn in _public_callables(module):
        sig = inspect.signature(fn)
        params = [p.name for p in sig.parameters.values()
                  if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
        if params or sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name}({', '.join(params)}){' -> ?' if sig.return_annotation is inspect.Signature.empty else ''}")
    assert missing == []


def test_no_dead_code():
    """vulture finds no unused code in derive and numeric (protocol names: tests/vulture_whitelist.py)."""
    pytest.importorskip("vulture")
    proc = subprocess.run([sys.executable, "-m", "vulture", "derive", "numeric", "tests/vulture_whitelist.py",
                           "--min-confidence", "60"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.stdout == "" and proc.returncode == 0, proc.stdout + proc.stderr


def _run(*cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_assert_matches_oracle(tmp_path):
    """Build the wheel, install it (no source tree on the path) and use derive.testing from it."""
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in ("derive", "numeric"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    # no build isolation: the build uses the installed setuptools instead of downloading one
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src))
    (wheel,) = dist.glob("perturbmax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("derive/py.typed", "numeric/py.typed", "derive/oracle/reference/gumbel.json"):
        assert name in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    # --system-site-packages: numpy, scipy, sympy, mpmath come from the running interpreter
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    _run(str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel))
    code = (
        "import derive, numeric, derive.testing as t\n"
        "from scipy.special import softmax\n"
        "t.assert_matches_oracle(softmax, 'gumbel', rtol=1e-12)\n"
        "t.assert_matches_oracle(lambda mu: numeric.probs(mu, 'normal'), 'normal', rtol=1e-12)\n"
        "print(derive.__file__, numeric.__file__, derive.__version__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run(str(py), "-c", code, cwd=str(tmp_path), env=env).split()
    site = str(venv.resolve())
    assert out[0].startswith(site) and out[1].startswith(site), out  # the wheel, not the source tree
    assert out[2] == PYPROJECT["project"]["version"]
    cli = _run(str(venv / "bin" / "perturbmax"), "--version", cwd=str(tmp_path), env=env)
    assert cli.strip() == f"perturbmax {PYPROJECT['project']['version']}"
