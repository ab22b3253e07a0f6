"""`perturbmax bench` in a tiny mode: it measures, judges, and writes only what it is asked to."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from derive import bench, bench_report
from derive.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _tracked_state():
    """(git status of the repository's notes/, mtimes of its files): what the bench must not touch."""
    notes = ROOT / "notes"
    mtimes = {p: p.stat().st_mtime_ns for p in notes.rglob("*") if p.is_file()}
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--", "notes"], cwd=ROOT, capture_output=True,
                                text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        status = None
    return status, mtimes


def test_tiny_run_measures_and_writes_only_output(tmp_path, capsys):
    before = _tracked_state()
    out = tmp_path / "b.json"
    t0 = time.process_time()   # CPU time: the wall clock of a shared machine says little
    rc = main(["bench", "--quick", "--sections", "matrix,memory", "--families", "gumbel,normal,student_t",
               "--shapes", "1x10,3x20", "--ops", "probs,probs_vjp:one-hot", "--output", str(out)])
    elapsed = time.process_time() - t0
    printed = capsys.readouterr().out
    assert rc == 0
    assert elapsed < 6, f"tiny bench took {elapsed:.1f} s of CPU time"
    assert _tracked_state() == before, "bench without --update-notes changed notes/"
    assert sorted(os.listdir(tmp_path)) == ["b.json"]

    res = json.loads(out.read_text())
    assert res["schema"] == bench.SCHEMA and res["quick"] is True
    m = res["machine"]
    assert m["cores"] >= 1 and m["numpy"] and m["scipy"] and m["cpu"] and "loadavg_at_end" in m
    cells = res["matrix"]["cells"]
    assert len(cells) == 3 * 2 * 2
    assert all(c["status"] == "ok" for c in cells if c["family"] == "gumbel")
    for c in cells:
        # an engine error is recorded in its cell (the run goes on); measured cells are consistent
        assert c["status"] in ("ok", "error", "not_implemented", "capped"), c
        if c["status"] != "ok":
            assert c["note"]
            continue
        assert set(c["kinds"]) | set(c.get("kinds_left_out", ())) == set(bench.KINDS)
        for k in c["kinds"].values():
            assert k["time_s"] > 0 and k["base_s"] > 0 and k["cpu_s"] >= 0
            assert math.isclose(k["ratio"], k["time_s"] / k["base_s"])
        assert c["ratio"] == max(k["ratio"] for k in c["kinds"].values())
    mem = [r for r in res["memory"]["rows"] if r["status"] == "ok"]
    assert res["memory"]["shape"] == [3, 20] and mem
    assert all(r["peak_mb"] >= r["output_mb"] > 0 for r in mem)

    # the printed summary judges the cells against the targets
    assert "## Main table" in printed and "≤ 1.2×" in printed and "## Targets" in printed
    assert "VJP ≤ 3× the family's probs" in printed and "student_t ≤ 3× normal" in printed


def test_update_notes_writes_the_notes_directory(tmp_path, capsys):
    notes_dir = tmp_path / "notes"
    assert main(["bench", "--quick", "--sections", "matrix", "--families", "gumbel", "--shapes", "1x10",
                 "--ops", "probs", "--update-notes", "--notes-dir", str(notes_dir)]) == 0
    capsys.readouterr()
    res = json.loads((notes_dir / "data" / "bench.json").read_text())
    md = (notes_dir / "benchmarks.md").read_text(encoding="utf-8")
    assert "## Machine" in md and res["machine"]["cpu"] in md and "(1, 10)" in md
    for fig in ("accuracy_vs_cost.png", "bench_scaling.png"):
        assert (notes_dir / "figures" / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_never_updates_the_repository_notes(capsys):
    before = _tracked_state()
    assert main(["bench", "--quick", "--update-notes"]) == 2
    assert "--quick" in capsys.readouterr().err
    assert main(["bench", "--notes-dir", "/tmp"]) == 2
    assert main(["bench", "--shapes", "1x0"]) == 2
    assert main(["bench", "--families", "nosuch"]) == 2
    assert _tracked_state() == before


def test_slow_call_is_capped_and_larger_shapes_skipped():
    def slow():
        while True:
            pass

    cfg = bench.config(True, call_cap_s=0.05)
    skipper = bench._Skipper()
    small = {"family": "x", "shape": [1, 10], "op": "probs", "kinds": {}}
    bench._measure_cell(small, [("s=1", lambda: (slow, lambda: np.zeros(3)))], cfg, skipper, "key")
    assert small["status"] == "capped" and small["ratio_at_least"] > 1
    big = {"family": "x", "shape": [2, 100], "op": "probs", "kinds": {}}
    bench._measure_cell(big, [("s=1", lambda: (slow, slow))], cfg, skipper, "key")
    assert big["status"] == "skipped"
    other = {"family": "x", "shape": [1, 5], "op": "probs", "kinds": {}}   # shorter rows: measured
    bench._measure_cell(other, [("s=1", lambda: (lambda: None, lambda: None))], cfg, skipper, "key")
    assert other["status"] == "ok"

    # a cell that has taken its time limit leaves the remaining input kinds out
    cfg = bench.config(True, call_cap_s=0.2)            # cell limit 0.4 s
    cell = {"family": "x", "shape": [1, 3], "op": "probs", "kinds": {}}
    pairs = [(k, lambda: (lambda: time.sleep(0.12), lambda: None)) for k in bench.KINDS]
    bench._measure_cell(cell, pairs, cfg, skipper, "sleepy")
    assert cell["status"] == "ok" and 1 <= len(cell["kinds"]) < len(bench.KINDS)
    assert cell["kinds_left_out"] and "not measured" in cell["note"]

    def broken():
        raise NotImplementedError("no such path")
    cell = {"family": "x", "shape": [1, 3], "op": "probs", "kinds": {}}
    bench._measure_cell(cell, [("s=1", lambda: (broken, lambda: None))], cfg, skipper, "other")
    assert cell["status"] == "not_implemented" and "no such path" in cell["note"]


def test_baseline_minimum_survives_a_burst_of_load():
    # a slow fn is sampled twice; the baseline's first calls are slowed as if descheduled
    # (the torch baseline once read 29 ms instead of 0.2 ms): its minimum must still come
    # from undisturbed calls, taken over at least BASE_MIN_SAMPLES samples
    calls = []

    def base():
        calls.append(1)
        if len(calls) <= 6:
            time.sleep(0.02)

    res = bench.min_time(lambda: time.sleep(0.12), base, budget_s=0.1, min_samples=3, cap_s=None)
    assert len(calls) >= bench.BASE_MIN_SAMPLES and res["base_s"] < 0.01
    assert res["ratio"] > 0.12 / 0.01


def test_inputs_are_drawn_not_hand_picked():
    x = bench.scores("s=5", (3, 1000))
    assert 4 < x.std() < 6 and len(np.unique(x)) == x.size
    c = bench.scores("clusters+ties", (3, 1000))
    for row in c:
        assert (row == row.max()).sum() >= 2                 # the top is tied
        assert len(np.unique(row)) < 0.85 * row.size          # exact duplicates
        gaps = np.diff(np.sort(np.unique(row)))
        assert (gaps < 1e-2).mean() > 0.9                     # tight clusters
    g = bench.cotangent("s=1", (4, 7), "one-hot")
    assert (g.sum(axis=1) == 1).all() and ((g == 0) | (g == 1)).all()


def test_targets():
    assert bench_report.speed_target("gumbel", "log_probs", 10**6) == 1.2
    assert bench_report.speed_target("laplace", "probs", 100) == 60
    assert bench_report.speed_target("uniform", "log_probs_vjp:dense", 32000) == 20
    with pytest.raises(ValueError):
        bench.scores("s=3", (1, 3))
