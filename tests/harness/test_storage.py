"""Shards reach the results store all or nothing: a session killed while ingesting is ingested by the next one, a
session killed while running is tidied away, a live one is left alone, and a stored folder is deleted."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ups.harness.storage import COMPLETE, SessionShards, ingest_sessions
from ups.store.results import ResultsStore

META = {
    "suite": "small", "commit": "abc", "dirty": False, "branch": "main", "code_hash": "c", "env": {"python": "3"},
    "started": 1_000.0, "seeds": [0, 1], "tasks": ["burgers1d"], "champions": "champions/small",
}  # fmt: skip


def write_session(root: Path, stamp: str, *, complete: bool = True) -> list[str]:
    """A session folder as three processes leave it: a candidate (two workers), a baseline and the champions."""
    shards = SessionShards(root, stamp, "gw0")
    runs = {"cand": "candidate", "base": "baseline"}
    ids = []
    for short, role in runs.items():
        run_id = f"small-{short}-{stamp}"
        ids.append(run_id)
        meta = META | {"run_id": run_id, "label": short, "config_hash": short, "candidate": {"model": short},
                       "role": role}  # fmt: skip
        for worker, seed in (("gw0", 0), ("gw1", 1)):
            write = SessionShards(root, stamp, worker).writer(run_id)
            write("run_meta", meta)
            write("datasets", {"task": "burgers1d", "content_sha256": "d"})
            write("eval_meta", {"task": "burgers1d", "split": "test", "seed": seed, "machine_ref_s": 0.01})
            for metric in ("nrmse", "rmse"):
                row = {"run_id": run_id, "task": "burgers1d", "split": "test", "seed": seed, "metric": metric}
                write("metrics", row | {"horizon": None, "value": 0.1 + seed, "per_traj": None})
            if role == "candidate":
                write("gate_results", {"run_id": run_id, "task": "burgers1d", "gate_set": "regression",
                                       "metric": "nrmse", "rule": "max_ratio", "threshold": 1.1, "candidate": 0.6,
                                       "champion": 0.6, "outcome": "pass", "detail": ""})  # fmt: skip
        SessionShards(root, stamp, "gw1").release()
    champ_id = f"champion-small-{stamp}"
    ids.append(champ_id)
    write = shards.writer(champ_id)
    write("run_meta", {"role": "champion", "run_id": champ_id})
    write("run", {"run_id": champ_id, "created_at": "2026-12-01T00:00:00", "suite": "small", "label": "champion"})
    write("metrics", {"run_id": champ_id, "task": "burgers1d", "split": "test", "seed": 0, "metric": "nrmse",
                      "horizon": None, "value": 0.5, "per_traj": None})  # fmt: skip
    shards.release()
    if complete:
        shards.complete()
    return ids


def stored(db: Path) -> dict[str, int]:
    store = ResultsStore(db)
    return {r["run_id"]: len(store.metrics(r["run_id"])) for r in store.runs()}


def test_a_session_is_ingested_whole_and_its_folder_deleted(tmp_path):
    root, db = tmp_path / ".shards", tmp_path / "results.duckdb"
    ids = write_session(root, "s1")
    own, notes = ingest_sessions(ResultsStore(db), SessionShards(root, "s1", "main"))
    assert stored(db) == {ids[0]: 4, ids[1]: 4, ids[2]: 1}  # worker rows merged, nothing doubled
    assert sorted(r.meta["role"] for r in own[:2]) == ["baseline", "candidate"] and own[2].meta["role"] == "champion"
    cand = next(r for r in own if r.meta["role"] == "candidate")
    assert cand.run_row["env"]["machine_ref_s"] == 0.01 and len(cand.gate_rows) == 2  # one per worker, as written
    assert not (root / "s1").exists() and notes == []


def test_a_session_killed_mid_ingest_is_completed_by_the_next(tmp_path):
    root, db = tmp_path / ".shards", tmp_path / "results.duckdb"
    ids = write_session(root, "killed")
    ResultsStore(db)  # the store exists before the session that dies in it
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from ups.harness.storage import SessionShards, ingest_sessions
        from ups.store.results import ResultsStore
        calls = []
        real = ResultsStore._insert
        def insert(con, table, columns, rows):
            calls.append(table)
            if len(calls) == 4:  # the candidate is written, the baseline not yet: SIGKILL-like death
                os._exit(9)
            return real(con, table, columns, rows)
        ResultsStore._insert = staticmethod(insert)
        ingest_sessions(ResultsStore({str(db)!r}), SessionShards(Path({str(root)!r}), "killed", "main"))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert stored(db) == {}  # the transaction died with the process: nothing half-stored
    assert (root / "killed" / COMPLETE).is_file()
    _, notes = ingest_sessions(ResultsStore(db), SessionShards(root, "next", "main"))
    assert stored(db) == {ids[0]: 4, ids[1]: 4, ids[2]: 1}
    assert notes == ["ingested 3 run(s) of session killed, killed while it was storing them"]
    assert not (root / "killed").exists()


def test_an_unfinished_session_is_deleted_and_a_live_one_left_alone(tmp_path):
    root, db = tmp_path / ".shards", tmp_path / "results.duckdb"
    write_session(root, "dead", complete=False)
    write_session(root, "live", complete=False)
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from ups.harness.storage import SessionShards
        shards = SessionShards(Path({str(root)!r}), "live", "gw0")  # kept: its lock lives as long as the object
        shards.hold()
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _, notes = ingest_sessions(ResultsStore(db), SessionShards(root, "next", "main"))
    finally:
        holder.kill()
        holder.wait()
    assert stored(db) == {}
    assert not (root / "dead").exists() and (root / "live").is_dir()
    assert notes == ["deleted the shards of session dead, killed before it finished running"]


def test_a_torn_last_line_is_dropped(tmp_path):
    root, db = tmp_path / ".shards", tmp_path / "results.duckdb"
    ids = write_session(root, "s1")
    shard = next((root / "s1" / ids[0]).glob("gw1.jsonl"))
    with shard.open("a") as f:
        f.write('{"table": "metrics", "row": {"run_id"')  # a process killed mid-write
    ingest_sessions(ResultsStore(db), SessionShards(root, "s1", "main"))
    assert stored(db)[ids[0]] == 4


def test_ingest_is_fast_enough_to_not_matter(tmp_path):
    root, db = tmp_path / ".shards", tmp_path / "results.duckdb"
    write_session(root, "s1")
    started = time.perf_counter()
    ingest_sessions(ResultsStore(db), SessionShards(root, "s1", "main"))
    assert time.perf_counter() - started < 30  # a hang guard, not a speed target
    assert json.dumps(stored(db))
