"""Tests for ups/store/results.py: ingest, de-duplication, atomicity, concurrency, leaderboard view, summaries."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from ups.errors import UserInputError
from ups.store.results import ResultsStore


def run_row(run_id: str = "r1", **kw) -> dict:
    row = {
        "run_id": run_id,
        "created_at": "2025-01-02T03:04:05+00:00",
        "suite": "small",
        "label": "baseline",
        "commit": "abc123",
        "dirty": False,
        "branch": "main",
        "config_hash": "cfg1",
        "data_hash": "data1",
        "code_hash": "code1",
        "seeds": [0, 1, 2],
        "env": {"python": "3.11", "gpu": None},
        "duration_s": 12.5,
        "notes": "",
    }
    return row | kw


def metric(task: str, seed: int, name: str, value: float | None, horizon: int | None = None, split: str = "test"):
    return {"task": task, "split": split, "seed": seed, "metric": name, "horizon": horizon, "value": value}


def gate(task: str = "burgers1d", metric_name: str = "nrmse", outcome: str = "pass", **kw) -> dict:
    row = {
        "task": task,
        "gate_set": "regression",
        "metric": metric_name,
        "rule": "max_ratio",
        "threshold": 0.11,
        "candidate": 0.09,
        "champion": 0.1,
        "outcome": outcome,
        "detail": "0.09 <= 0.1 x 1.1",
    }
    return row | kw


NRMSE = {0: 0.10, 1: 0.12, 2: 0.17}


def sample_metrics() -> list[dict]:
    rows = [metric("burgers1d", s, "nrmse", v) for s, v in NRMSE.items()]
    rows += [metric("burgers1d", s, "nrmse", v / 2, horizon=4) for s, v in NRMSE.items()]
    rows += [metric("burgers1d", s, "conservation_gap", 1e-3 * (s + 1)) for s in NRMSE]
    rows += [metric("burgers1d", s, "bc_violation", None) for s in NRMSE]  # periodic: not applicable
    rows += [metric("burgers1d", s, "nrmse", 9.0, split="val") for s in NRMSE]  # not on the leaderboard
    return rows


def counts(store: ResultsStore) -> dict[str, int]:
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "metrics", "gate_results")}
    finally:
        con.close()


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    return ResultsStore(tmp_path / "reports" / "results.duckdb")


def test_ingest_then_read_back(store: ResultsStore):
    store.ingest(run_row(), sample_metrics(), [gate()])
    (run,) = store.runs()
    assert run["run_id"] == "r1" and run["seeds"] == [0, 1, 2] and run["env"] == {"python": "3.11", "gpu": None}
    assert run["created_at"] == datetime(2025, 1, 2, 3, 4, 5) and run["dirty"] is False and run["commit"] == "abc123"
    assert len(store.metrics("r1")) == len(sample_metrics())
    (g,) = store.gate_results("r1")
    assert g["outcome"] == "pass" and g["threshold"] == pytest.approx(0.11) and g["run_id"] == "r1"


def test_schema_creation_is_idempotent(tmp_path: Path):
    path = tmp_path / "results.duckdb"
    ResultsStore(path).ingest(run_row(), sample_metrics(), [])
    assert len(ResultsStore(path).runs()) == 1


def test_created_at_with_offset_is_stored_as_utc(store: ResultsStore):
    store.ingest(run_row(created_at="2025-01-02T05:04:05+02:00"), [], [])
    assert store.runs()[0]["created_at"] == datetime(2025, 1, 2, 3, 4, 5)


def test_equal_duplicate_metric_rows_collapse_to_one(store: ResultsStore):
    rows = sample_metrics()
    store.ingest(run_row(), rows + [dict(r) for r in rows[:5]], [gate(), gate()])
    assert counts(store) == {"runs": 1, "metrics": len(rows), "gate_results": 1}


def test_duplicate_with_null_horizon_and_nan_value_collapses(store: ResultsStore):
    rows = [metric("t", 0, "nrmse", float("nan")), metric("t", 0, "nrmse", float("nan"))]
    store.ingest(run_row(), rows, [])
    (m,) = store.metrics("r1")
    assert m["horizon"] is None and math.isnan(m["value"])


def test_conflicting_duplicate_raises_and_leaves_db_unchanged(store: ResultsStore):
    store.ingest(run_row("r0"), sample_metrics(), [gate()])
    before = counts(store)
    rows = sample_metrics() + [metric("burgers1d", 0, "nrmse", 0.5)]  # same key as the seed-0 nrmse row
    with pytest.raises(ValueError, match="seed=0.*metric='nrmse'.*horizon=None"):
        store.ingest(run_row("r1"), rows, [gate()])
    with pytest.raises(ValueError, match="conflicting duplicate gate"):
        store.ingest(run_row("r1"), sample_metrics(), [gate(), gate(outcome="fail")])
    assert counts(store) == before


def test_failure_inside_transaction_rolls_back(store: ResultsStore, monkeypatch: pytest.MonkeyPatch):
    store.ingest(run_row("r0"), sample_metrics(), [gate()])
    before = counts(store)
    real_insert = ResultsStore._insert

    def failing_insert(con, table, columns, rows):
        if table == "gate_results":  # runs and metrics rows are already written in this transaction
            raise RuntimeError("disk full")
        real_insert(con, table, columns, rows)

    monkeypatch.setattr(ResultsStore, "_insert", staticmethod(failing_insert))
    with pytest.raises(RuntimeError, match="disk full"):
        store.ingest(run_row("r1"), sample_metrics(), [gate()])
    with pytest.raises(RuntimeError, match="disk full"):
        store.ingest(run_row("r0", label="new"), [], [gate()], replace=True)
    assert counts(store) == before
    assert [r["label"] for r in store.runs()] == ["baseline"]


def test_reingesting_a_run_id_raises(store: ResultsStore):
    store.ingest(run_row(), sample_metrics(), [gate()])
    with pytest.raises(UserInputError, match="already in"):
        store.ingest(run_row(), sample_metrics(), [gate()])
    assert counts(store) == {"runs": 1, "metrics": len(sample_metrics()), "gate_results": 1}


def test_replace_overwrites_the_run(store: ResultsStore):
    store.ingest(run_row(), sample_metrics(), [gate()])
    store.ingest(run_row(label="v2"), [metric("burgers1d", 0, "nrmse", 0.3)], [], replace=True)
    assert [r["label"] for r in store.runs()] == ["v2"]
    assert [m["value"] for m in store.metrics("r1")] == [0.3]
    assert store.gate_results("r1") == []


def test_null_horizon_and_null_value_round_trip(store: ResultsStore):
    store.ingest(run_row(), [metric("t", 0, "bc_violation", None), metric("t", 0, "nrmse", 0.2, horizon=16)], [])
    rows = {m["metric"]: m for m in store.metrics("r1")}
    assert rows["bc_violation"]["horizon"] is None and rows["bc_violation"]["value"] is None
    assert rows["nrmse"]["horizon"] == 16 and rows["nrmse"]["value"] == pytest.approx(0.2)


def test_rows_of_another_run_and_bad_outcomes_are_rejected(store: ResultsStore):
    with pytest.raises(ValueError, match="belongs to run 'other'"):
        store.ingest(run_row(), [metric("t", 0, "nrmse", 1.0) | {"run_id": "other"}], [])
    with pytest.raises(ValueError, match="outcome must be one of"):
        store.ingest(run_row(), [], [gate(outcome="maybe")])
    with pytest.raises(ValueError, match="unknown run fields"):
        store.ingest(run_row(colour="red"), [], [])
    assert store.runs() == []


_INGEST_MANY = """
import sys
from ups.store.results import ResultsStore
path, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = ResultsStore(path)
for i in range(n):
    run_id = f"{prefix}{i}"
    metrics = [{"task": "burgers1d", "split": "test", "seed": s, "metric": "nrmse", "value": 0.1 * s} for s in range(3)]
    gates = [{"task": "burgers1d", "gate_set": "regression", "metric": "nrmse", "rule": "max_ratio", "outcome": "pass"}]
    store.ingest({"run_id": run_id, "suite": "small"}, metrics, gates)
"""


def test_concurrent_ingestion_from_two_processes_loses_no_rows(tmp_path: Path):
    path = str(tmp_path / "results.duckdb")
    procs = [
        subprocess.Popen([sys.executable, "-c", _INGEST_MANY, path, prefix, "10"], stderr=subprocess.PIPE)
        for prefix in ("a", "b")
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert counts(ResultsStore(path)) == {"runs": 20, "metrics": 60, "gate_results": 20}


def test_leaderboard_view_is_the_mean_over_seeds_of_test_whole_rollout(store: ResultsStore):
    store.ingest(run_row(), sample_metrics() + [metric("ns2d", 0, "nrmse", 0.4)], [])
    store.ingest(run_row("r2", created_at="2025-02-01T00:00:00Z", label="v2"), [metric("burgers1d", 0, "ece", 0.2)], [])
    rows = store.leaderboard()
    assert [(r["run_id"], r["task"]) for r in rows] == [("r1", "burgers1d"), ("r1", "ns2d"), ("r2", "burgers1d")]
    b = rows[0]
    assert b["nRMSE"] == pytest.approx((0.10 + 0.12 + 0.17) / 3)  # horizon-4 and val rows excluded
    assert b["cons_gap"] == pytest.approx((1e-3 + 2e-3 + 3e-3) / 3)
    assert b["bc_violation"] is None and b["ECE"] is None and b["params"] is None
    assert b["label"] == "baseline" and b["commit"] == "abc123" and b["date"] == datetime(2025, 1, 2, 3, 4, 5)
    assert rows[1]["nRMSE"] == pytest.approx(0.4)
    assert rows[2]["ECE"] == pytest.approx(0.2) and rows[2]["nRMSE"] is None


def test_promotion_history_and_gate_thresholds(store: ResultsStore):
    store.ingest(run_row(), [], [gate(metric_name="conservation_gap", threshold=2e-3), gate(threshold=0.2)])
    store.ingest(run_row("r2", created_at="2025-03-01T00:00:00Z"), [], [gate(metric_name="conservation_gap")])
    store.record_promotion(
        suite="small", task="burgers1d", run_id="r1", commit="abc", config_hash="cfg1", metrics={"x": 1}, path="p.json"
    )
    (c,) = store.champions(suite="small")
    assert c["run_id"] == "r1" and c["metrics"] == {"x": 1}
    assert store.gate_thresholds(("conservation_gap", "bc_violation")) == {"burgers1d": {"conservation_gap": 0.11}}


def test_non_duckdb_file_is_a_user_input_error(tmp_path: Path):
    bad = tmp_path / "results.duckdb"
    bad.write_text("not a database\n")
    with pytest.raises(UserInputError, match="not a DuckDB database") as err:
        ResultsStore(bad)
    assert "\n" not in str(err.value)


def test_missing_file_without_create_is_a_user_input_error(tmp_path: Path):
    with pytest.raises(UserInputError, match="does not exist"):
        ResultsStore(tmp_path / "nope.duckdb", create=False)
