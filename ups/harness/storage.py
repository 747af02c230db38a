"""Where a session's rows wait before the results store, and how they get there: all or nothing.

Every process of a session (the controlling one and each xdist worker) appends rows to shards::

    <reports>/.shards/<stamp>.<worker>.lock         held by each process of the session while it lives
    <reports>/.shards/<stamp>/<run_id>/<worker>.jsonl   rows of one run: the candidate, a baseline, the champions
    <reports>/.shards/<stamp>/COMPLETE              written once every worker is done

At the end the controlling process marks its folder COMPLETE, ingests every run in it in one transaction of the
store, and deletes the folder. Whatever kills a session, the store holds its runs complete or not at all, and the next
session to finish tidies up after it (:func:`ingest_sessions`): a COMPLETE folder that no live process holds (killed
while ingesting) is ingested then; a folder without COMPLETE (killed while it ran) is deleted, its runs being partial.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ups.provenance import canonical_hash

COMPLETE = "COMPLETE"


@dataclass
class ShardWriter:
    """Appends ``{"table": ..., "row": ...}`` lines to one JSONL file."""

    path: Path

    def __call__(self, table: str, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"table": table, "row": row}) + "\n")


def read_shards(run_dir: Path) -> dict[str, list[dict]]:
    """Every row of one run's shards, by table; a torn last line (a process killed mid-write) is dropped."""
    tables: dict[str, list[dict]] = {"metrics": [], "gate_results": []}
    for shard in sorted(run_dir.glob("*.jsonl")):
        for line in shard.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            tables.setdefault(rec["table"], []).append(rec["row"])
    return tables


def dedupe_metric_rows(rows: list[dict]) -> list[dict]:
    """One row per (task, split, seed, metric, horizon): workers that read one cached scoreboard each record it."""
    seen: dict[tuple, dict] = {}
    for r in rows:
        seen.setdefault((r["task"], r["split"], r["seed"], r["metric"], r["horizon"]), r)
    return list(seen.values())


class SessionShards:
    """The shard folder of one session (``stamp``) under ``root`` (``<reports>/.shards``), as one of its processes
    (``worker``: ``main`` or an xdist worker id) writes it."""

    def __init__(self, root: Path, stamp: str, worker: str):
        self.root, self.stamp, self.worker = root, stamp, worker
        self.dir = root / stamp
        self._lock_path = root / f"{stamp}.{worker}.lock"
        self._lock: FileLock | None = None

    def writer(self, run_id: str) -> ShardWriter:
        self.hold()
        return ShardWriter(self.dir / run_id / f"{self.worker}.jsonl")

    def hold(self) -> None:
        """Mark the session alive while this process lives (an OS file lock, gone with the process): later sessions
        leave a held folder alone."""
        if self._lock is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self._lock_path))
            self._lock.acquire()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            self._lock_path.unlink(missing_ok=True)

    def complete(self) -> None:
        """Every process is done writing: the folder may be ingested, now or by a later session."""
        if self.dir.is_dir():
            (self.dir / COMPLETE).write_text(json.dumps({"finished": time.time()}))


@dataclass
class IngestedRun:
    run_row: dict
    metric_rows: list[dict]
    gate_rows: list[dict]
    meta: dict  # the run's run_meta shard row (role, champions folder, tasks, ...)


def run_row(meta: dict, tables: dict[str, list[dict]], finished: float) -> dict:
    """The ``runs`` row of one candidate or baseline run from its shards (``meta``: its ``run_meta`` row)."""
    failsafes = [
        f"fail-safe {f['action']} on {f['task']} {f['metric']} ({f['split']}): {f['before']:.4g} -> "
        f"{f['after']:.4g}, gate would {f['outcome_with_remedy']}"
        if f["before"] is not None and f["after"] is not None
        else f"fail-safe {f['action']} on {f['task']} {f['metric']}: {f['outcome_with_remedy']}"
        for f in tables.get("failsafes", [])
    ]
    refs = [r["machine_ref_s"] for r in tables.get("eval_meta", []) if r["machine_ref_s"]]
    checkpoints: dict[str, dict[int, str]] = {}
    for r in tables.get("checkpoints", []):
        checkpoints.setdefault(r["task"], {})[int(r["seed"])] = r["path"]
    scoring = {r["task"]: {k: r[k] for k in ("data_hash", "scoring_hash")} for r in tables.get("scoring", [])}
    env = meta["env"] | {
        "machine_ref_s": statistics.median(refs) if refs else None,
        "candidate": meta["candidate"],
        "checkpoints": checkpoints,
        "scoring": scoring,
    }
    return {
        "run_id": meta["run_id"],
        "created_at": datetime.fromtimestamp(finished, timezone.utc).isoformat(timespec="seconds"),
        "suite": meta["suite"],
        "label": meta["label"],
        "commit": meta["commit"],
        "dirty": meta["dirty"],
        "branch": meta["branch"],
        "config_hash": meta["config_hash"],
        "data_hash": canonical_hash({r["task"]: r["content_sha256"] for r in tables.get("datasets", [])}),
        "code_hash": meta["code_hash"],
        "seeds": meta["seeds"],
        "env": env,
        "duration_s": finished - meta["started"],
        "notes": "\n".join(failsafes),
    }


def collect_session(session_dir: Path) -> list[IngestedRun]:
    """The runs of a COMPLETE session folder, ready to ingest: candidates and baselines (runs with metric rows;
    a suite that was collected but never ran has none), then the champions they were judged against."""
    finished = json.loads((session_dir / COMPLETE).read_text())["finished"]
    runs = []
    for run_dir in sorted(p for p in session_dir.iterdir() if p.is_dir()):
        tables = read_shards(run_dir)
        if not tables["metrics"] or not tables.get("run_meta"):
            continue
        meta = tables["run_meta"][0]
        metrics = dedupe_metric_rows(tables["metrics"])
        row = tables["run"][0] if tables.get("run") else run_row(meta, tables, finished)
        runs.append(IngestedRun(row, metrics, tables["gate_results"], meta))
    return sorted(runs, key=lambda r: r.meta["role"] == "champion")


def _stamp(lock: Path) -> str:
    return lock.name.split(".", 1)[0]


def _held(lock_path: Path) -> bool:
    """Whether a live process holds the lock at ``lock_path``."""
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def ingest_sessions(store, shards: SessionShards) -> tuple[list[IngestedRun], list[str]]:
    """Ingest this session's runs, and what killed sessions left, each session in one transaction; delete each
    folder once it is stored.

    Returns:
        this session's runs (empty when it ran nothing) and one note per other session tidied up.
    """
    notes, own = [], []
    if not shards.root.is_dir():
        return own, notes
    live = {_stamp(p) for p in shards.root.glob("*.lock") if _stamp(p) != shards.stamp and _held(p)}
    for lock in shards.root.glob("*.lock"):  # left by killed processes
        if _stamp(lock) not in live and _stamp(lock) != shards.stamp:
            lock.unlink(missing_ok=True)
    for folder in sorted(p for p in shards.root.iterdir() if p.is_dir()):
        mine = folder.name == shards.stamp
        if folder.name in live:
            continue  # another session, still running
        if not (folder / COMPLETE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            if not mine:
                notes.append(f"deleted the shards of session {folder.name}, killed before it finished running")
            continue
        runs = collect_session(folder)
        written = store.ingest_many(
            [(r.run_row, r.metric_rows, r.gate_rows, r.meta["role"] == "champion") for r in runs], skip_existing=True
        )
        shutil.rmtree(folder, ignore_errors=True)
        if mine:
            own = runs
        elif written:
            notes.append(f"ingested {written} run(s) of session {folder.name}, killed while it was storing them")
    return own, notes
