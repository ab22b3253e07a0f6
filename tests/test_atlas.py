"""derive.atlas: the family list, the verification vectors, rendering and --check."""

import json

import pytest
import sympy as sp

from derive import atlas


def test_at_least_30_families_with_unique_keys():
    fams = atlas.families()
    keys = [k for k, _, _ in fams]
    assert len(keys) >= 30 and len(set(keys)) == len(keys)


def test_vectors_have_ties_and_spread_30w():
    w = sp.Rational(3, 2)
    for n in (2, 3, 4):
        vs = atlas._vectors(n, w, seed=n)
        assert len(vs) >= 10 and all(len(v) == n for v in vs)
        assert any(max(v) - min(v) == 30 * w for v in vs)
        assert any(len(set(v)) < n for v in vs)
        assert any(len(set(v)) == 1 for v in vs)


def _data(passed=True):
    cell = {"status": "closed", "route": "piecewise", "reason": "exact", "form": "\\frac{1}{2}",
            "verification": {"vectors": 10, "max_rel_error": 1e-31 if passed else 1e-3, "passed": passed}}
    none = {"status": "none", "route": None, "reason": "no route", "form": None}
    fam = {"key": "demo", "family": "demo", "custom": True, "support": "Interval(0, 1)", "width": "1/4",
           "description": "a demo", "cells": {"2": cell, "3": cell, "4": none, "general": none}}
    return {"ns": [2, 3, 4], "tolerance": 1e-25, "families": [fam] * 30}


def test_render_and_check(tmp_path):
    data = _data()
    (tmp_path / "atlas.json").write_text(json.dumps(data))
    (tmp_path / "atlas.md").write_text(atlas.render_markdown(data))
    assert atlas.check(str(tmp_path)) == []
    md = atlas.render_markdown(data)
    assert "| demo | closed | closed | none | none | piecewise | yes (1.0e-31, 20 vectors) |" in md
    (tmp_path / "atlas.md").write_text(md.replace("closed", "none", 1))
    assert any("not the rendering" in p for p in atlas.check(str(tmp_path)))


def test_failed_verification_is_never_shown_as_plain_closed(tmp_path):
    data = _data(passed=False)
    md = atlas.render_markdown(data)
    assert "closed, **verification failed**" in md
    (tmp_path / "atlas.json").write_text(json.dumps(data))
    (tmp_path / "atlas.md").write_text(md)
    assert any("failed its oracle check" in p for p in atlas.check(str(tmp_path)))


@pytest.mark.slow
def test_every_family_builds():
    for key, _, make in atlas.families():
        fam = make()
        assert fam.support.measure > 0, key


def test_a_cell_over_its_time_limit_is_recorded_and_the_next_starts(monkeypatch):
    import time

    calls = []

    def slow_cell(fam, n, w):
        calls.append(n)
        if n == 2:
            time.sleep(30)
        return {"status": "closed"}

    monkeypatch.setattr(atlas, "_cell", slow_cell)
    t0 = time.time()
    out = atlas._timed_cell(None, 2, 1, 0.3)
    assert time.time() - t0 < 5
    assert out["status"] == "none" and "not finished" in out["reason"]
    assert atlas._timed_cell(None, 3, 1, 5) == {"status": "closed"} and calls == [2, 3]


def test_exact_max_min_forms_keep_30_digits():
    import types

    import mpmath

    a, b = sp.symbols("mu_1 mu_2", real=True)
    # 1/3 and 2/3 at mu = (1, 0): a float-precision conversion would miss 1e-25 by far
    d = types.SimpleNamespace(symbols=(a, b), closed_form=[sp.Max(a, b) / 3, 1 - sp.Max(a, b) / 3])
    got = atlas._closed_values(d, [sp.Integer(1), sp.Integer(0)])
    with mpmath.workdps(40):
        assert abs(got[0] - mpmath.mpf(1) / 3) < mpmath.mpf(10) ** -38
        assert abs(got[1] - mpmath.mpf(2) / 3) < mpmath.mpf(10) ** -38
