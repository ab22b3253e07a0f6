"""Optional dependencies of ``derive``: import one, or fail with one line naming the extra.

The core install (numpy, scipy, sympy, mpmath, tqdm) serves ``numeric`` and the
``derive`` oracle; two ``derive`` features need more::

    python-flint   certified oracle results (certified=True, --certified)   extra [certified]
    matplotlib     drawing the notes/ figures (perturbmax notes)             extra [figures]

(``numeric.torch`` needs the ``[torch]`` extra; ``numeric`` imports nothing from
``derive``, so it words its own message.)

>>> require("math").__name__
'math'
>>> missing_message("flint")
"python-flint is not installed (needed for certified interval results): pip install 'python-flint>=0.6' (the [certified] extra)"
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependency", "EXTRAS", "require", "missing_message"]

#: import name -> (distribution, pip requirement, extra, what it is needed for)
EXTRAS: dict[str, tuple[str, str, str, str]] = {
    "flint": ("python-flint", "python-flint>=0.6", "certified", "certified interval results"),
    "matplotlib": ("matplotlib", "matplotlib>=3.7", "figures", "drawing the notes/ figures"),
}


class MissingDependency(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra."""


def missing_message(module: str) -> str:
    """One line: what is missing, what for, and the command that installs it."""
    dist, requirement, extra, purpose = EXTRAS[module]
    return f"{dist} is not installed (needed for {purpose}): pip install '{requirement}' (the [{extra}] extra)"


def require(module: str) -> ModuleType:
    """Import ``module``; raise :class:`MissingDependency` when it (not one of its own imports) is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        root = module.partition(".")[0]
        if exc.name != root or root not in EXTRAS:
            raise
        raise MissingDependency(missing_message(root), name=root) from exc
