"""The reference solver as a baseline: its ladder is scored like any model, and the candidate gets matched readings."""

import pytest
from pydantic import ValidationError

from ups.errors import UserInputError
from ups.harness.runner import SuiteRunner
from ups.harness.suite import SuiteConfig
from ups.metrics.matched import match

LADDER = {"solver": {"solver": {"coarsen": 1}}, "solver_c4": {"solver": {"coarsen": 4}}}


def _suite(**overrides) -> SuiteConfig:
    fields = {
        "suite": "small",
        "gates": "gates/small.yaml",
        "champions": "champions/small",
        "seeds": [0, 1],
        "candidate": {"model": "persistence"},
        "baselines": LADDER,
        "tasks": {"burgers1d": {"splits": ["test"], "steps": 4, "horizons": [1, 4]}},
    }
    return SuiteConfig.model_validate(fields | overrides)


def test_ladder_is_scored_and_the_candidate_gets_matched_readings(tmp_path):
    rows = []
    runner = SuiteRunner(
        _suite(), root=tmp_path, cache_dir=tmp_path / "cache",
        sink=lambda run_id: lambda table, row: rows.append((table, row)),
    )  # fmt: skip
    fine, coarse = (runner.evaluation("burgers1d", name).stats["test"] for name in ("solver", "solver_c4"))
    cand = runner.evaluation("burgers1d").stats["test"]
    # the solver on the stored grid is far closer to the (finer) truth than on a 4x coarser grid, and both beat
    # persistence by orders of magnitude
    assert fine["nrmse@4"].mean < coarse["nrmse@4"].mean < cand["nrmse@4"].mean / 10
    assert fine["params_m"].mean == 0.0

    rungs = [(s["wall_clock_s_per_rollout"].mean, s["nrmse@4"].mean) for s in (fine, coarse)]
    matched = {(r["seed"], r["metric"]): r["value"] for t, r in rows if t == "metrics" and "solver_" in r["metric"]}
    assert sorted({seed for seed, _ in matched}) == [0, 1]
    for result in runner.evaluation("burgers1d").results:
        got = {(v.metric, v.horizon): v.value for v in result.values}
        want = match(rungs, got["wall_clock_s_per_rollout", None], got["nrmse", 4])
        assert matched[result.seed, "solver_s_at_error"] == pytest.approx(want.solver_s_at_error)
        assert matched[result.seed, "solver_error_at_s"] == pytest.approx(want.solver_error_at_s)
        assert matched[result.seed, "solver_speedup"] == pytest.approx(want.speedup)
        assert matched[result.seed, "solver_speedup_max"] == pytest.approx(want.speedup_max)
    # persistence is less accurate than the cheapest setting: no matched time, only a bound of the speedup
    seed0 = next(r for r in runner.evaluation("burgers1d").results if r.seed == 0)
    persistence_s = next(v.value for v in seed0.values if v.metric == "wall_clock_s_per_rollout")
    assert matched[0, "solver_s_at_error"] is None and matched[0, "solver_speedup"] is None
    assert matched[0, "solver_speedup_max"] == pytest.approx(min(t for t, _ in rungs) / persistence_s)


def test_solver_entries_are_checked():
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        _suite(baselines={"solver": {"solver": {"coarsen": 0}}})
    with pytest.raises(ValidationError, match="exactly one of model, config or solver"):
        _suite(baselines={"solver": {"solver": {"coarsen": 1}, "model": "persistence"}})
    with pytest.raises(ValidationError, match="not a candidate"):
        _suite(candidate={"solver": {"coarsen": 1}})


def test_a_task_without_a_restartable_solver_is_one_line(tmp_path):
    suite = _suite(tasks={"darcy2d": {"splits": ["test"], "steps": 1, "horizons": [1]}})
    runner = SuiteRunner(suite, root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(UserInputError, match="baseline solver: task darcy2d has no reference solver to restart"):
        runner.identity("solver")


def test_a_suite_reports_the_solver_readings(tmp_path):
    """End to end in a scratch project: the ladder runs as baselines; the verdict and the leaderboard show readings."""
    import csv
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "configs" / "suites").mkdir(parents=True)
    (tmp_path / "configs" / "suites" / "small_eval.yaml").write_text(
        "suite: small\ngates: gates/small.yaml\nchampions: champions/small\nseeds: [0]\n"
        "candidate: {model: persistence}\n"
        "baselines: {solver: {solver: {coarsen: 1}}, solver_c8: {solver: {coarsen: 8, step: 2}}}\n"
        "tasks: {burgers1d: {size: small, splits: [test], steps: 4, horizons: [1, 4]}}\n"
    )
    (tmp_path / "gates").mkdir()
    shutil.copy(repo / "gates" / "small.yaml", tmp_path / "gates" / "small.yaml")
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(repo / "benchmarks" / "test_small_eval.py", tmp_path / "benchmarks" / "test_small_eval.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-m", "small_eval", "-p", "no:cacheprovider", "-p", "no:zarr",
           "--ups-markdown", "verdict.md"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test_baseline[burgers1d-solver_c8]" in done.stdout or "2 passed" in done.stdout
    assert "against the task's solver" in done.stdout
    md = (tmp_path / "verdict.md").read_text()
    assert "### Against the task's solver" in md and "solver_speedup" in md
    rows = list(csv.DictReader((tmp_path / "reports" / "leaderboard.csv").open()))
    by_label = {r["label"]: r for r in rows}
    assert {"persistence", "solver", "solver_c8"} <= set(by_label)
    # persistence is instant and far less accurate than the cheapest setting: only an upper bound of its speedup
    assert by_label["persistence"]["solver_speedup"] == "" and float(by_label["persistence"]["solver_speedup_max"]) > 1
    assert (
        float(by_label["solver"]["nRMSE"])
        < float(by_label["solver_c8"]["nRMSE"])
        < float(by_label["persistence"]["nRMSE"])
    )
