"""The step-checking machinery of derive.derivation.

Every check must accept a true step and reject a false one: the tests build
small chains whose truth is known independently (algebra done by hand).
"""

import pytest
import sympy as sp

from derive.derivation import Derivation, DerivationError, Step

x = sp.Symbol("x", real=True)
a = sp.Symbol("a", real=True)
y = sp.Symbol("y")


def _sampler(rng):
    return {a: sp.Rational(rng.randint(-2000, 2000), 1000)}


def test_true_steps_record_their_check():
    d = Derivation(y, (x + 1) ** 2, "start")
    st = d.step(x**2 + 2 * x + 1, "expand")
    assert isinstance(st, Step)
    assert st.check == "simplify"
    assert d.steps[0].check == "given"
    assert d.result == x**2 + 2 * x + 1


def test_broken_step_raises():
    d = Derivation(y, (x + 1) ** 2, "start")
    with pytest.raises(DerivationError, match="not equal to the previous step"):
        d.step(x**2 + 1, "forgot the cross term")
    assert len(d.steps) == 1  # nothing appended


def test_derivation_error_is_value_error():
    assert issubclass(DerivationError, ValueError)


def test_numeric_check_is_used_when_requested_and_catches_errors():
    # Integral_0^oo exp(-(1 + a^2) t) dt = 1 / (1 + a^2), checked by quadrature
    t = sp.Symbol("t", positive=True)
    d = Derivation(y, sp.Integral(sp.exp(-(1 + a**2) * t), (t, 0, sp.oo)), "start", sampler=_sampler)
    st = d.step(1 / (1 + a**2), "integrate", checks=("numeric",))
    assert st.check.startswith("numeric-30-digits@")
    d2 = Derivation(y, sp.Integral(sp.exp(-(1 + a**2) * t), (t, 0, sp.oo)), "start", sampler=_sampler)
    with pytest.raises(DerivationError):
        # wrong in the 31st digit range would be hard to write; wrong by 1e-20 relative is enough
        d2.step((1 + sp.Rational(1, 10**20)) / (1 + a**2), "almost", checks=("numeric",))


def test_change_of_variables_check():
    e = sp.Symbol("e", real=True)
    t = sp.Symbol("t", real=True)
    I = sp.Integral(sp.exp(-e) * sp.exp(-2 * sp.exp(-e)), (e, -sp.oo, sp.oo))
    d = Derivation(y, I, "start", sampler=_sampler)
    st = d.step(sp.Integral(sp.exp(2 * t), (t, -sp.oo, 0)), "t = -exp(-e)", checks=(),
                substitution=(e, t, -sp.exp(-e)))
    assert st.check == "change-of-variables"
    d2 = Derivation(y, I, "start", sampler=_sampler)
    with pytest.raises(DerivationError):
        d2.step(sp.Integral(sp.exp(3 * t), (t, -sp.oo, 0)), "wrong rate", checks=(),
                substitution=(e, t, -sp.exp(-e)))


def test_pointwise_split_check_catches_a_wrong_branch():
    # |x - a| e^{-|x|} split at a and 0 (a < 0 in the sampler below)
    def neg(rng):
        return {a: -sp.Rational(rng.randint(100, 2000), 1000)}

    f = sp.Abs(x - a) * sp.exp(-sp.Abs(x))
    start = sp.Integral(f, (x, -sp.oo, sp.oo))
    good = (sp.Integral((a - x) * sp.exp(x), (x, -sp.oo, a)) + sp.Integral((x - a) * sp.exp(x), (x, a, 0))
            + sp.Integral((x - a) * sp.exp(-x), (x, 0, sp.oo)))
    d = Derivation(y, start, "start", sampler=neg, points=3)
    assert d.step(good, "split", checks=("pointwise",)).check.startswith("numeric-pointwise")
    bad = (sp.Integral((a - x) * sp.exp(x), (x, -sp.oo, a)) + sp.Integral((a - x) * sp.exp(x), (x, a, 0))
           + sp.Integral((x - a) * sp.exp(-x), (x, 0, sp.oo)))
    d2 = Derivation(y, start, "start", sampler=neg, points=3)
    with pytest.raises(DerivationError):
        d2.step(bad, "split with a sign error", checks=("pointwise",))


def test_substitution_of_definitions():
    S = sp.Symbol("S", positive=True)
    d = Derivation(y, sp.exp(a) + sp.exp(2 * a), "start", definitions={S: sp.exp(a)}, sampler=_sampler)
    assert d.step(S + S**2, "name exp(a)").check in ("identical", "simplify")
    with pytest.raises(DerivationError):
        d.step(S + S**3, "wrong power")
