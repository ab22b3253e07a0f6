"""`perturbmax bench --quick` runs end to end into a temporary directory."""

from __future__ import annotations

import json
import time

from derive.cli import main


def test_bench_quick_writes_json_report_and_figures(tmp_path, capsys):
    out = tmp_path / "data" / "bench.json"
    t0 = time.perf_counter()
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    capsys.readouterr()
    assert elapsed < 30, f"bench --quick took {elapsed:.1f} s"

    res = json.loads(out.read_text())
    assert res["quick"] is True
    m = res["machine"]
    assert m["cores"] >= 1 and m["numpy"] and m["scipy"] and m["cpu"]

    # scaling: positive times and ratios against softmax on the same input
    rows = res["scaling"]["rows"]
    assert {r["family"] for r in rows} >= {"gumbel", "normal"}
    for r in rows:
        assert r["time_s"] > 0 and r["softmax_s"] > 0
        assert abs(r["ratio"] - r["time_s"] / r["softmax_s"]) < 1e-12 * r["ratio"]
    assert any(r["growth_per_doubling"] is not None for r in rows)

    # accuracy vs cost: the engine is far more accurate than the K-point rule and Monte Carlo
    runs = {(r["method"], r["setting"]): r for r in res["accuracy_vs_cost"]["runs"]}
    auto = runs[("auto", "")]["max_rel_err"]
    assert auto < 1e-10
    assert runs[("quantile", "K=10")]["max_rel_err"] > 100 * auto
    assert ("scipy_mvn", "") in runs and runs[("scipy_mvn", "")]["max_rel_err"] < 0.1
    assert min(r["max_rel_err"] for (m_, _), r in runs.items() if m_ == "monte_carlo") > 100 * auto

    assert res["vjp"]["rows"] and all(r["ratio"] > 0 for r in res["vjp"]["rows"])
    assert all(r["peak_mb"] >= r["output_mb"] > 0 for r in res["memory"]["rows"])
    assert all(r["time_s"] > 0 for r in res["oracle"]["rows"])

    # report + figures next to the JSON's notes directory, never the repository's notes/
    md = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    assert "## Machine" in md and m["cpu"] in md and "softmax" in md
    for fig in ("accuracy_vs_cost.png", "bench_scaling.png"):
        assert (tmp_path / "figures" / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
