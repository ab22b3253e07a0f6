"""derive.testing.assert_matches_oracle and the reference tables it reads."""

from __future__ import annotations

import json
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
from scipy import special

from derive import oracle
from derive.testing import assert_matches_oracle

REF = Path(oracle.__file__).resolve().parent / "reference"


def test_softmax_matches_the_gumbel_table():
    assert_matches_oracle(special.softmax, "gumbel", rtol=1e-12)


def test_log_softmax_matches_the_gumbel_table_in_log_space():
    assert_matches_oracle(special.log_softmax, "gumbel", rtol=1e-12, log=True)


def test_a_wrong_function_fails_and_lists_the_worst_cases():
    def too_hot(mu):
        return special.softmax(1.001 * mu)

    with pytest.raises(AssertionError) as info:
        assert_matches_oracle(too_hot, "gumbel", rtol=1e-10)
    msg = str(info.value)
    assert "too_hot does not match the oracle" in msg
    assert "worst" in msg and "expected" in msg and "got" in msg and "rel error" in msg
    assert "mu=[" in msg
    # the worst case is listed first: the largest spread (60) magnifies a 0.1% temperature error
    first = msg.splitlines()[1]
    assert "spread=60" in first


def test_wrong_shape_and_exceptions_are_reported():
    with pytest.raises(AssertionError, match="shape"):
        assert_matches_oracle(lambda mu: special.softmax(mu)[:-1], "gumbel", rtol=1e-6)

    def boom(mu):
        raise RuntimeError("kaput")

    with pytest.raises(AssertionError, match="raised RuntimeError: kaput"):
        assert_matches_oracle(boom, "gumbel", rtol=1e-6)


def test_explicit_cases_and_probabilities_below_float_range():
    # normal, n = 2: p = (Phi(D/sqrt2), Phi(-D/sqrt2)); D = 60 gives 1.3e-393 (not a float)
    cases = []
    with mp.workdps(40):
        for D in (0.5, 3.0, 60.0):
            cases.append(([D, 0.0], [mp.ncdf(D / mp.sqrt(2)), mp.ncdf(-D / mp.sqrt(2))]))

    def two_normal(mu):
        d = (mu[0] - mu[1]) / np.sqrt(2)
        return np.array([special.ndtr(d), special.ndtr(-d)])

    assert_matches_oracle(two_normal, "normal", rtol=1e-14, cases=cases)
    with pytest.raises(AssertionError, match="rel error"):
        assert_matches_oracle(lambda mu: two_normal(mu) * 1.01, "normal", rtol=1e-3, cases=cases)


def test_table_parameters_are_checked():
    with pytest.raises(ValueError, match="nu"):
        assert_matches_oracle(special.softmax, "student_t", rtol=1.0, nu=5)
    with pytest.raises(ValueError, match="rtol"):
        assert_matches_oracle(special.softmax, "gumbel", rtol=-1)


def test_every_family_has_a_table_with_the_documented_layout():
    for name in oracle.tables.TABLE_PARAMS.keys() | {"gumbel", "normal", "uniform", "cauchy", "laplace",
                                                      "exponential", "logistic", "gumbel_min"}:
        doc = json.loads((REF / f"{name}.json").read_text())
        assert doc["family"] == name and doc["dps"] >= 30 and doc["digits"] == 30
        ns = {len(c["mu"]) for c in doc["cases"]}
        assert {2, 3, 4, 5, 8, 16, 32, 64} <= ns
        assert any("ties" in c["name"] for c in doc["cases"])
        assert any("random" in c["name"] for c in doc["cases"])
        assert any("spread=60" in c["name"] for c in doc["cases"])
    assert json.loads((REF / "student_t.json").read_text())["params"]["nu"] == "3"


def test_normal_table_two_score_rows_are_phi_of_delta_over_sqrt2():
    # a fact from outside the code, checked on the stored strings
    rows = [c for c in oracle.load_reference("normal") if len(c["mu"]) == 2]
    assert rows
    with mp.workdps(50):
        for c in rows:
            d = (mp.mpf(c["mu"][0]) - mp.mpf(c["mu"][1])) / mp.sqrt(2)
            for got, want in zip(c["p"], (mp.ncdf(d), mp.ncdf(-d))):
                assert abs(got - want) <= mp.mpf(10) ** -28 * want


def test_cauchy_table_two_score_rows():
    rows = [c for c in oracle.load_reference("cauchy") if len(c["mu"]) == 2]
    with mp.workdps(50):
        for c in rows:
            d = mp.mpf(c["mu"][0]) - mp.mpf(c["mu"][1])
            want = mp.mpf(1) / 2 + mp.atan(d / 2) / mp.pi
            assert abs(c["p"][0] - want) <= mp.mpf(10) ** -28 * want
            assert abs(c["log_p"][1] - mp.log(1 - want)) <= mp.mpf(10) ** -28 * abs(mp.log(1 - want))


@pytest.mark.slow
def test_tables_are_byte_identical_when_regenerated(tmp_path):
    oracle.reference_tables(tmp_path, families=["gumbel", "exponential"], progress=False)
    for name in ("gumbel", "exponential"):
        assert (tmp_path / f"{name}.json").read_bytes() == (REF / f"{name}.json").read_bytes()
