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
