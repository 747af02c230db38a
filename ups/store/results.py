"""The DuckDB results store: every harness run, its per-seed metrics, its gate outcomes, and the promotion history.

Tables (see DESIGN.md, "Results store and reports"):

- ``runs``: one row per run (provenance: commit, hashes, seeds, environment).
- ``metrics``: one row per (run_id, task, split, seed, metric, horizon). ``horizon`` NULL means the metric over the
  whole rollout; ``value`` NULL means the metric does not apply (e.g. ``bc_violation`` on a periodic domain).
- ``gate_results``: one row per (run_id, task, gate_set, metric, rule) with the numbers that decided it.
- ``champions``: the history of promotions (append-only; ``replace=True`` on a run leaves it alone).
- ``leaderboard`` (view): one row per (run_id, task) with the playbook's columns, each the mean over seeds of the
  test-split, whole-rollout (horizon NULL) value.

DuckDB allows one writer process per file, so every connection is opened under a ``filelock.FileLock`` on
``<path>.lock`` and closed when the operation ends; pytest-xdist workers and parallel CLI calls queue on that lock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from ups.errors import UserInputError

GATE_SETS = ("regression", "promotion")
OUTCOMES = ("pass", "fail", "inconclusive", "not_applicable")

_SCHEMA = {
    "runs": """
        run_id VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, suite VARCHAR, label VARCHAR, "commit" VARCHAR,
        dirty BOOLEAN, branch VARCHAR, config_hash VARCHAR, data_hash VARCHAR, code_hash VARCHAR, seeds INTEGER[],
        env JSON, duration_s DOUBLE, notes VARCHAR""",
    "metrics": """
        run_id VARCHAR NOT NULL, task VARCHAR NOT NULL, split VARCHAR NOT NULL, seed INTEGER NOT NULL,
        metric VARCHAR NOT NULL, horizon INTEGER, value DOUBLE, per_traj DOUBLE[]""",
    "gate_results": f"""
        run_id VARCHAR NOT NULL, task VARCHAR NOT NULL,
        gate_set VARCHAR NOT NULL CHECK (gate_set IN {GATE_SETS!r}), metric VARCHAR NOT NULL, rule VARCHAR NOT NULL,
        threshold DOUBLE, candidate DOUBLE, champion DOUBLE,
        outcome VARCHAR NOT NULL CHECK (outcome IN {OUTCOMES!r}), detail VARCHAR""",
    "champions": """
        suite VARCHAR NOT NULL, task VARCHAR NOT NULL, run_id VARCHAR NOT NULL, promoted_at TIMESTAMP NOT NULL,
        "commit" VARCHAR, config_hash VARCHAR, metrics JSON, path VARCHAR""",
}
RUN_COLUMNS = (
    "run_id", "created_at", "suite", "label", "commit", "dirty", "branch",
    "config_hash", "data_hash", "code_hash", "seeds", "env", "duration_s", "notes",
)  # fmt: skip
METRIC_COLUMNS = ("run_id", "task", "split", "seed", "metric", "horizon", "value", "per_traj")
GATE_COLUMNS = (
    "run_id", "task", "gate_set", "metric", "rule", "threshold", "candidate", "champion", "outcome", "detail",
)  # fmt: skip
CHAMPION_COLUMNS = ("suite", "task", "run_id", "promoted_at", "commit", "config_hash", "metrics", "path")
METRIC_KEY = ("run_id", "task", "split", "seed", "metric", "horizon")
GATE_KEY = ("run_id", "task", "gate_set", "metric", "rule")

# Leaderboard column -> stored metric name. Every column is the mean over seeds of split 'test', horizon NULL.
LEADERBOARD_METRICS = {
    "nRMSE": "nrmse",
    "cons_gap": "conservation_gap",
    "bc_violation": "bc_violation",
    "ECE": "ece",
    "wall_clock": "wall_clock_s_per_rollout",
    "params": "params_m",
    # the candidate against the task's solver ladder (docs/metrics.md, solver-matched readings)
    "solver_speedup": "solver_speedup",
    "solver_speedup_max": "solver_speedup_max",
    "solver_s_at_error": "solver_s_at_error",
    "solver_error_at_s": "solver_error_at_s",
    "solver_error_at_s_max": "solver_error_at_s_max",
}
LEADERBOARD_COLUMNS = ("run_id", "task", "label", "commit", "config_hash", *LEADERBOARD_METRICS, "date")

_AGGREGATES = ",\n".join(
    f"AVG(m.value) FILTER (WHERE m.metric = '{metric}' AND m.horizon IS NULL AND m.split = 'test') AS {col}"
    for col, metric in LEADERBOARD_METRICS.items()
)
_LEADERBOARD_VIEW = f"""
CREATE OR REPLACE VIEW leaderboard AS
SELECT m.run_id, m.task, r.label, r."commit", r.config_hash,
{_AGGREGATES},
r.created_at AS date
FROM metrics m JOIN runs r USING (run_id)
GROUP BY m.run_id, m.task, r.label, r."commit", r.config_hash, r.created_at
"""


def _q(col: str) -> str:
    return f'"{col}"'


def _same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to NaN (a duplicated NaN row is still a duplicate, not a conflict)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _opt_float(x: object) -> float | None:
    return None if x is None else float(x)


def _opt_int(x: object) -> int | None:
    return None if x is None else int(x)


def _utc_naive(ts: str | datetime | None) -> datetime:
    """A timestamp as naive UTC (the TIMESTAMP column's convention); ISO strings with offsets are converted."""
    if ts is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def _dedupe(rows: list[tuple], key_len: int, what: str, names: tuple[str, ...]) -> list[tuple]:
    """Keep each key once; the same key with a different payload raises ValueError naming the key."""
    seen: dict[tuple, tuple] = {}
    for row in rows:
        key = row[:key_len]
        if key in seen:
            if not all(_same(a, b) for a, b in zip(seen[key], row, strict=True)):
                named = ", ".join(f"{n}={v!r}" for n, v in zip(names, key, strict=True))
                raise ValueError(f"conflicting duplicate {what} rows for ({named}): {seen[key]} vs {row}")
            continue
        seen[key] = row
    return list(seen.values())


class ResultsStore:
    """A DuckDB file of runs, metrics, gate results and promotions.

    Args:
        path: the database file (``reports/results.duckdb``); parent folders and the schema are created if missing.
        create: when False, a missing file is a :class:`UserInputError` instead of a new, empty store.
        lock_timeout: seconds to wait for the write lock before giving up with a :class:`UserInputError`.
    """

    def __init__(self, path: str | Path, *, create: bool = True, lock_timeout: float = 600.0):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UserInputError(f"results store {self.path} does not exist")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)
        with self._connect() as con:
            for table, columns in _SCHEMA.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
            # stores made before per-trajectory values were kept (a trajectory-mean metric's values, for pairing)
            con.execute("ALTER TABLE metrics ADD COLUMN IF NOT EXISTS per_traj DOUBLE[]")
            self._check_schema(con)
            con.execute(_LEADERBOARD_VIEW)

    # ---- connections -------------------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection, held under the file lock and closed on exit."""
        try:
            self._lock.acquire()
        except Timeout:
            raise UserInputError(f"results store {self.path}: timed out waiting for {self._lock.lock_file}") from None
        try:
            try:
                con = duckdb.connect(str(self.path))
            except duckdb.Error as err:
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                if "not a valid DuckDB database" in first:
                    raise UserInputError(f"{self.path} is not a DuckDB database") from None
                raise UserInputError(f"cannot open results store {self.path}: {first}") from None
            try:
                yield con
            finally:
                con.close()
        finally:
            self._lock.release()

    def _check_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        expected = {"runs": RUN_COLUMNS, "metrics": METRIC_COLUMNS, "gate_results": GATE_COLUMNS}
        expected["champions"] = CHAMPION_COLUMNS
        for table, columns in expected.items():
            have = {r[0] for r in con.execute(f"SELECT * FROM {table} LIMIT 0").description}
            missing = [c for c in columns if c not in have]
            if missing:
                raise UserInputError(f"results store {self.path}: table {table} lacks columns {', '.join(missing)}")

    def _select(self, sql: str, params: list | None = None) -> list[dict]:
        with self._connect() as con:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # ---- writes ------------------------------------------------------------------------------------------------

    def ingest(self, run: dict, metrics: list[dict], gates: list[dict], *, replace: bool = False) -> None:
        """Write one run with its metric and gate rows in a single transaction.

        Args:
            run: ``run_id`` (required) and any of ``created_at`` (ISO string or datetime; default now, stored as UTC),
                ``suite, label, commit, dirty, branch, config_hash, data_hash, code_hash, seeds`` (list of int),
                ``env`` (dict, stored as JSON), ``duration_s, notes``.
            metrics: rows with ``task, split, seed, metric, value`` and optional ``horizon`` (None = whole rollout)
                and ``run_id`` (defaults to the run's; a different one is an error).
            gates: rows with ``task, gate_set, metric, rule, outcome`` and optional ``threshold, candidate,
                champion, detail, run_id``.
            replace: delete the run's existing runs/metrics/gate rows first (in the same transaction).

        Rows repeated with the same key and the same values are stored once; the same key with different values
        raises ValueError. Re-ingesting an existing run_id raises ValueError unless ``replace``. On any error the
        transaction rolls back, so the store never holds half a run.
        """
        self.ingest_many([(run, metrics, gates, replace)])

    def ingest_many(self, runs: list[tuple[dict, list[dict], list[dict], bool]], *, skip_existing: bool = False) -> int:
        """Write several runs, each ``(run, metrics, gates, replace)`` as in :meth:`ingest`, in one transaction: the
        store holds all of them or none. ``skip_existing``: a run whose run_id is stored already (and is not
        replaced) is left as it is instead of being an error (re-ingesting what a killed session had committed).

        Returns:
            how many runs were written.
        """
        prepared = []
        for run, metrics, gates, replace in runs:
            run_row = self._run_row(run)
            run_id = run_row[0]
            metric_rows = _dedupe([self._metric_row(r, run_id) for r in metrics], len(METRIC_KEY), "metric", METRIC_KEY)
            gate_rows = _dedupe([self._gate_row(r, run_id) for r in gates], len(GATE_KEY), "gate", GATE_KEY)
            prepared.append((run_row, metric_rows, gate_rows, replace))
        written = 0
        with self._connect() as con:
            con.begin()
            try:
                for run_row, metric_rows, gate_rows, replace in prepared:
                    run_id = run_row[0]
                    exists = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
                    if exists and not replace:
                        if skip_existing:
                            continue
                        raise UserInputError(f"run {run_id!r} is already in {self.path}; choose another run id")
                    for table in ("metrics", "gate_results", "runs"):
                        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                    self._insert(con, "runs", RUN_COLUMNS, [run_row])
                    self._insert(con, "metrics", METRIC_COLUMNS, metric_rows)
                    self._insert(con, "gate_results", GATE_COLUMNS, gate_rows)
                    written += 1
                con.commit()
            except BaseException:
                con.rollback()
                raise
        return written

    def record_promotion(
        self,
        *,
        suite: str,
        task: str,
        run_id: str,
        commit: str | None,
        config_hash: str | None,
        metrics: dict,
        path: str | None,
        promoted_at: str | datetime | None = None,
    ) -> None:
        """Append one promotion (``metrics`` is the champion's ``{split: {metric: {mean, std, n, per_seed}}}``)."""
        row = (suite, task, run_id, _utc_naive(promoted_at), commit, config_hash, json.dumps(metrics), path)
        with self._connect() as con:
            con.begin()
            try:
                self._insert(con, "champions", CHAMPION_COLUMNS, [row])
                con.commit()
            except BaseException:
                con.rollback()
                raise

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, table: str, columns: tuple | list, rows: list[tuple]) -> None:
        if rows:
            cols = ", ".join(_q(c) for c in columns)
            con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})", rows)

    @staticmethod
    def _run_row(run: dict) -> tuple:
        unknown = set(run) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}; expected some of {RUN_COLUMNS}")
        if not run.get("run_id"):
            raise ValueError("run row needs a non-empty run_id")
        row = dict.fromkeys(RUN_COLUMNS) | run
        row["created_at"] = _utc_naive(row["created_at"])
        row["seeds"] = None if row["seeds"] is None else [int(s) for s in row["seeds"]]
        row["env"] = None if row["env"] is None else json.dumps(row["env"], sort_keys=True, default=str)
        row["dirty"] = None if row["dirty"] is None else bool(row["dirty"])
        row["duration_s"] = _opt_float(row["duration_s"])
        return tuple(row[c] for c in RUN_COLUMNS)

    @staticmethod
    def _row(r: dict, run_id: str, columns: tuple[str, ...], required: tuple[str, ...], what: str) -> dict:
        if r.get("run_id", run_id) != run_id:
            raise ValueError(f"{what} row belongs to run {r['run_id']!r}, not {run_id!r}")
        missing = [k for k in required if r.get(k) is None]
        if missing:
            raise ValueError(f"{what} row {r} lacks {', '.join(missing)}")
        return dict.fromkeys(columns) | {k: v for k, v in r.items() if k in columns} | {"run_id": run_id}

    @classmethod
    def _metric_row(cls, r: dict, run_id: str) -> tuple:
        row = cls._row(r, run_id, METRIC_COLUMNS, ("task", "split", "seed", "metric"), "metric")
        row["seed"], row["horizon"], row["value"] = int(row["seed"]), _opt_int(row["horizon"]), _opt_float(row["value"])
        row["per_traj"] = None if row["per_traj"] is None else [float(x) for x in row["per_traj"]]
        return tuple(row[c] for c in METRIC_COLUMNS)

    @classmethod
    def _gate_row(cls, r: dict, run_id: str) -> tuple:
        row = cls._row(r, run_id, GATE_COLUMNS, ("task", "gate_set", "metric", "rule", "outcome"), "gate")
        if row["gate_set"] not in GATE_SETS:
            raise ValueError(f"gate row {r}: gate_set must be one of {GATE_SETS}")
        if row["outcome"] not in OUTCOMES:
            raise ValueError(f"gate row {r}: outcome must be one of {OUTCOMES}")
        for c in ("threshold", "candidate", "champion"):
            row[c] = _opt_float(row[c])
        return tuple(row[c] for c in GATE_COLUMNS)

    # ---- reads -------------------------------------------------------------------------------------------------

    def runs(self) -> list[dict]:
        """Every run, oldest first; ``env`` parsed back to a dict, ``created_at`` a naive-UTC datetime."""
        rows = self._select("SELECT * FROM runs ORDER BY created_at, run_id")
        for r in rows:
            r["env"] = None if r["env"] is None else json.loads(r["env"])
        return rows

    def metrics(self, run_id: str) -> list[dict]:
        """The run's metric rows (keys ``METRIC_COLUMNS``) by task, split, metric, horizon (NULL first), seed."""
        return self._select(
            "SELECT * FROM metrics WHERE run_id = ? ORDER BY task, split, metric, horizon NULLS FIRST, seed", [run_id]
        )

    def gate_results(self, run_id: str) -> list[dict]:
        """The run's gate rows (keys ``GATE_COLUMNS``), sorted by task, gate_set, metric, rule."""
        return self._select(
            "SELECT * FROM gate_results WHERE run_id = ? ORDER BY task, gate_set, metric, rule", [run_id]
        )

    def champions(self, suite: str | None = None, task: str | None = None) -> list[dict]:
        """Promotion history, oldest first; ``metrics`` parsed back to a dict."""
        rows = self._select(
            "SELECT * FROM champions WHERE (? IS NULL OR suite = ?) AND (? IS NULL OR task = ?) "
            "ORDER BY promoted_at, suite, task",
            [suite, suite, task, task],
        )
        for r in rows:
            r["metrics"] = None if r["metrics"] is None else json.loads(r["metrics"])
        return rows

    def leaderboard(self) -> list[dict]:
        """One dict per (run_id, task) with ``LEADERBOARD_COLUMNS``, oldest run first.

        Metric columns are means over seeds of split ``test``, horizon NULL; None where no such value was stored.
        """
        return self._select("SELECT * FROM leaderboard ORDER BY date, run_id, task")

    def gate_thresholds(self, metrics: tuple[str, ...], gate_set: str = "regression") -> dict[str, dict[str, float]]:
        """``{task: {metric: threshold}}`` from the newest run that recorded an upper-bound gate on that metric.

        Only ``max_ratio`` (champion × ratio) and ``max_abs`` rules count; these are the leaderboard's red lines.
        """
        if not metrics:
            return {}
        rows = self._select(
            "SELECT g.task, g.metric, g.threshold FROM gate_results g JOIN runs r USING (run_id) "
            "WHERE g.gate_set = ? AND g.rule IN ('max_ratio', 'max_abs') AND g.threshold IS NOT NULL "
            f"AND isfinite(g.threshold) AND g.metric IN ({', '.join('?' * len(metrics))}) "
            "QUALIFY row_number() OVER (PARTITION BY g.task, g.metric "
            "ORDER BY r.created_at DESC, r.run_id DESC, g.rule DESC) = 1",
            [gate_set, *metrics],
        )
        out: dict[str, dict[str, float]] = {}
        for r in rows:
            out.setdefault(r["task"], {})[r["metric"]] = r["threshold"]
        return out
