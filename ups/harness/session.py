"""State of one harness run: its id, the per-worker result shards, and the controller's end-of-run work.

Workers (or the single process without xdist) append rows to ``<reports>/.shards/<run_id>/<worker>.jsonl``. At the
end the controller reads every shard, ingests them into DuckDB in one transaction (duplicate metric rows, written by
several workers that read the same cached scoreboard, collapse to one), renders the leaderboard, and promotes the
candidate where asked and allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ups.harness.champions import Champion, file_sha256, write_champion
from ups.harness.stats import SeedStat
from ups.provenance import canonical_hash, code_hash, environment, git_info


@dataclass
class ShardWriter:
    path: Path

    def __call__(self, table: str, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"table": table, "row": row}) + "\n")


def read_shards(shard_dir: Path) -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {"metrics": [], "gate_results": [], "runs": []}
    for shard in sorted(shard_dir.glob("*.jsonl")):
        for line in shard.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                tables.setdefault(rec["table"], []).append(rec["row"])
    return tables


@dataclass
class RunInfo:
    run_id: str
    suite: str
    label: str
    config_hash: str
    started: float = field(default_factory=time.time)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def row(self, *, seeds: list[int], data_hash: str, machine_ref_s: float | None, root: Path, notes: str) -> dict:
        git = git_info(root)
        env = environment() | {"machine_ref_s": machine_ref_s}
        return {
            "run_id": self.run_id,
            "created_at": self.created_at,
            "suite": self.suite,
            "label": self.label,
            "commit": git["commit"],
            "dirty": git["dirty"],
            "branch": git["branch"],
            "config_hash": self.config_hash,
            "data_hash": data_hash,
            "code_hash": code_hash(),
            "seeds": seeds,
            "env": env,
            "duration_s": time.time() - self.started,
            "notes": notes,
        }


def dedupe_metric_rows(rows: list[dict]) -> list[dict]:
    seen: dict[tuple, dict] = {}
    for r in rows:
        seen.setdefault((r["task"], r["split"], r["seed"], r["metric"], r["horizon"]), r)
    return list(seen.values())


def candidate_stats(metric_rows: list[dict], task: str) -> dict[str, dict[str, SeedStat]]:
    per: dict[str, dict[str, dict[int, float | None]]] = {}
    for r in metric_rows:
        if r["task"] != task:
            continue
        key = r["metric"] if r["horizon"] is None else f"{r['metric']}@{r['horizon']}"
        per.setdefault(r["split"], {}).setdefault(key, {})[r["seed"]] = r["value"]
    return {s: {m: SeedStat.from_seeds(v) for m, v in ms.items()} for s, ms in per.items()}


def promotable_tasks(gate_rows: list[dict], tasks: list[str], has_champion: dict[str, bool]) -> dict[str, str]:
    """Task → reason it may be promoted: every promotion rule passed (or was not applicable), or no champion yet."""
    out = {}
    for task in tasks:
        if not has_champion[task]:
            out[task] = "no champion yet (bootstrap)"
            continue
        rows = [g for g in gate_rows if g["task"] == task and g["gate_set"] == "promotion"]
        if rows and all(g["outcome"] in ("pass", "not_applicable") for g in rows):
            out[task] = f"all {len(rows)} promotion rules passed"
    return out


def promote(
    path: Path,
    *,
    suite: str,
    task: str,
    run_row: dict,
    stats: dict[str, dict[str, SeedStat]],
    candidate: dict,
    checkpoint: Path | None = None,
) -> Champion:
    """Write the candidate's snapshot as ``path`` (atomic), with a copy of its checkpoint directory beside it.

    The checkpoint (``<task>.ckpt/``: safetensors weights + JSON state, the trained run's ``checkpoints/final``) is
    copied before the JSON is replaced, so the snapshot never names a checkpoint that is not there.
    """
    ckpt = None
    if checkpoint is not None:
        dest = path.with_suffix(".ckpt")
        copy_dir_atomic(checkpoint, dest)
        ckpt = {"path": dest.name, "sha256": dir_sha256(dest)}
    champion = Champion(
        suite=suite,
        task=task,
        run_id=run_row["run_id"],
        commit=run_row["commit"],
        config_hash=run_row["config_hash"],
        data_hash=run_row["data_hash"],
        code_hash=run_row["code_hash"],
        date=run_row["created_at"],
        metrics=stats,
        candidate=candidate,
        env={k: v for k, v in run_row["env"].items() if k != "candidate"},
        machine_ref_s=run_row["env"].get("machine_ref_s"),
        checkpoint=ckpt,
    )
    write_champion(path, champion)
    return champion


def copy_dir_atomic(src: Path, dest: Path) -> None:
    """Copy directory ``src`` to ``dest``, replacing it; a reader sees the old or the new copy, never half of one."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dest.with_name(f".{dest.name}.old{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def dir_sha256(path: Path) -> str:
    """sha256 over the sorted file names and contents of a directory (what a champion's checkpoint entry pins)."""
    return canonical_hash({p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file()})


def remove_shards(shard_dir: Path) -> None:
    shutil.rmtree(shard_dir, ignore_errors=True)


def promote_run(store, *, run_row: dict, metric_rows: list[dict], gate_rows: list[dict], champions: Path) -> list[str]:
    """Promote every task of a run that may be promoted; returns one note per promotion.

    Used by ``pytest --ups-promote`` at the end of a run and by ``ups promote RUN`` on a stored run.
    """
    tasks = sorted({r["task"] for r in metric_rows})
    has = {t: (champions / f"{t}.json").is_file() for t in tasks}
    checkpoints = run_row["env"].get("checkpoints") or {}
    notes = []
    for task, why in promotable_tasks(gate_rows, tasks, has).items():
        path = champions / f"{task}.json"
        ckpt = Path(checkpoints[task]) if task in checkpoints else None
        if ckpt is not None and not ckpt.is_dir():
            notes.append(f"not promoted {task}: its checkpoint {ckpt} is gone (clear the cache? re-run the suite)")
            continue
        champ = promote(
            path,
            suite=run_row["suite"],
            task=task,
            run_row=run_row,
            stats=candidate_stats(metric_rows, task),
            candidate=run_row["env"].get("candidate", {}),
            checkpoint=ckpt,
        )
        store.record_promotion(
            suite=run_row["suite"],
            task=task,
            run_id=run_row["run_id"],
            commit=run_row["commit"],
            config_hash=run_row["config_hash"],
            metrics=champ.as_dict()["metrics"],
            path=str(path),
        )
        notes.append(f"promoted {task} -> {path}: {why}")
    return notes
