"""perturbmax.derive: the symbolic side (sympy + mpmath).

Noise families, machine-checked derivations of the perturbed-argmax
probabilities (Gumbel -> softmax and closed forms for other families), the
high-precision oracle and LaTeX / Markdown output.

Heavy submodules are imported lazily, so ``import derive`` stays cheap.
"""

from importlib import import_module

from .families import FAMILY_NAMES, Family, family, family_from_cdf

# public name -> (submodule, attribute or None for the module itself)
_LAZY = {
    "Derivation": ("derivation", "Derivation"),
    "Step": ("derivation", "Step"),
    "softmax_derivation": ("softmax", "softmax_derivation"),
    "derive": ("closed", "derive"),
    "oracle": ("oracle", None),
    "testing": ("testing", None),
}

__all__ = ["FAMILY_NAMES", "Family", "family", "family_from_cdf", *_LAZY]


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'derive' has no attribute {name!r}") from None
    mod = import_module(f".{module}", __name__)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value
