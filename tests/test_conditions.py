"""The article's conditions 1-4: the checker accepts maps that satisfy them
and rejects maps that break one (independent, hand-made examples)."""

import pytest
import sympy as sp

from derive.conditions import check_conditions
from derive.derivation import DerivationError

m1, m2, m3 = sp.symbols("mu_1 mu_2 mu_3", real=True)
SYMS = (m1, m2, m3)


def _softmax():
    den = sp.exp(m1) + sp.exp(m2) + sp.exp(m3)
    return [sp.exp(m) / den for m in SYMS]


def test_softmax_satisfies_all_four_symbolically():
    out = check_conditions(_softmax(), SYMS)
    assert set(out) == {1, 2, 3, 4}
    for k in (1, 2, 4):
        assert out[k]["holds"] and out[k]["method"].startswith("symbolic")
    assert out[3]["holds"]


def test_not_shift_invariant_is_rejected():
    # p_i = f(mu_i) / sum f(mu_j) with f = 1 + mu^2... not shift invariant; use f(x) = exp(x) + 1 (monotone, positive)
    f = [sp.exp(m) + 1 for m in SYMS]
    p = [fi / sp.Add(*f) for fi in f]
    with pytest.raises(DerivationError, match="shift"):
        check_conditions(p, SYMS)
    rec = check_conditions(p, SYMS, raise_on_failure=False)
    assert rec[1]["holds"] and rec[2]["holds"] and rec[3]["holds"] and not rec[4]["holds"]


def test_not_normalised_is_rejected():
    p = [e * sp.Rational(11, 10) for e in _softmax()]
    rec = check_conditions(p, SYMS, raise_on_failure=False)
    assert not rec[2]["holds"] and rec[4]["holds"]


def test_order_reversing_is_rejected():
    den = sp.exp(-m1) + sp.exp(-m2) + sp.exp(-m3)
    p = [sp.exp(-m) / den for m in SYMS]
    rec = check_conditions(p, SYMS, raise_on_failure=False)
    assert not rec[3]["holds"] and rec[1]["holds"] and rec[2]["holds"] and rec[4]["holds"]


def test_negative_entry_is_rejected():
    sm = _softmax()
    p = [sm[0] + (m1 - m2) / 10, sm[1] - (m1 - m2) / 10, sm[2]]
    rec = check_conditions(p, SYMS, raise_on_failure=False)
    assert not rec[1]["holds"] or not rec[3]["holds"]


def test_bounded_support_allows_ties_at_zero():
    # uniform-noise closed forms give exact zeros: order preservation is non-strict
    from derive.closed import derive

    d = derive("uniform", 2)
    assert d.conditions[3]["holds"]
    assert "non-strict" in d.conditions[3]["name"]
    for rec in d.conditions.values():
        assert rec["holds"]
        assert "random points" in rec["method"]
