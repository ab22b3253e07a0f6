"""perturbmax.derive: the symbolic side (sympy + mpmath).

Noise families, machine-checked derivations of the perturbed-argmax
probabilities (Gumbel -> softmax and closed forms for other families), the
high-precision oracle and LaTeX / Markdown output.

Every public name is imported on first use, so ``import derive`` (and the
``perturbmax`` command line, which parses its arguments before importing
sympy, numpy or scipy) stays cheap.

>>> import derive
>>> derive.family("logistic").cdf(0)
1/2
"""

from __future__ import annotations

from importlib import import_module
from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("perturbmax")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

# public name -> (submodule, attribute or None for the module itself)
_LAZY = {
    "FAMILY_NAMES": ("families", "FAMILY_NAMES"),
    "Family": ("families", "Family"),
    "family": ("families", "family"),
    "family_from_cdf": ("families", "family_from_cdf"),
    "family_from_sympy_stats": ("sympy_stats", "family_from_sympy_stats"),
    "Derivation": ("derivation", "Derivation"),
    "Step": ("derivation", "Step"),
    "softmax_derivation": ("softmax", "softmax_derivation"),
    "derive": ("closed", "derive"),
    "oracle": ("oracle", None),
    "testing": ("testing", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'derive' has no attribute {name!r}") from None
    mod = import_module(f".{module}", __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
