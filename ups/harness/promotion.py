"""Promotion: the candidate of a stored run becomes a task's champion where every promotion rule passed (or there is
no champion yet). Used by ``pytest --ups-promote`` at the end of a session and by ``ups promote RUN``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ups.harness.champions import Champion, dir_sha256, write_champion
from ups.metrics.seeds import SeedStat, stats_from_rows


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
    checkpoints: dict[int, Path] | None = None,
) -> Champion:
    """Write the candidate's snapshot as ``path`` (atomic), with a copy of every seed's checkpoint beside it.

    The checkpoints (``<task>.ckpt/s<seed>/``: safetensors weights + JSON state, the trained runs'
    ``checkpoints/final``) are copied before the JSON is replaced, so the snapshot never names a checkpoint that is not
    there. Every seed is kept: a champion re-scored on new data or code is re-scored on all its seeds.
    """
    entries = {}
    if checkpoints:
        dest = path.with_suffix(".ckpt")
        copy_dirs_atomic({f"s{seed}": src for seed, src in checkpoints.items()}, dest)
        entries = {
            seed: {"path": f"{dest.name}/s{seed}", "sha256": dir_sha256(dest / f"s{seed}")} for seed in checkpoints
        }
    champion = Champion(
        suite=suite,
        task=task,
        run_id=run_row["run_id"],
        commit=run_row["commit"],
        config_hash=run_row["config_hash"],
        data_hash=run_row["env"]["scoring"][task]["data_hash"],
        scoring_hash=run_row["env"]["scoring"][task]["scoring_hash"],
        code_hash=run_row["code_hash"],
        date=run_row["created_at"],
        metrics=stats,
        candidate=candidate,
        env={k: v for k, v in run_row["env"].items() if k not in ("candidate", "checkpoints", "scoring")},
        machine_ref_s=run_row["env"].get("machine_ref_s"),
        checkpoints=entries,
    )
    write_champion(path, champion)
    return champion


def copy_dirs_atomic(sources: dict[str, Path], dest: Path) -> None:
    """Make ``dest`` a folder holding a copy of each source folder under its name, replacing ``dest``; a reader sees
    the old or the new folder, never half of one."""
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, src in sources.items():
        shutil.copytree(src, tmp / name)
    old = dest.with_name(f".{dest.name}.old{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


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
        ckpts = {int(seed): Path(p) for seed, p in (checkpoints.get(task) or {}).items()}
        gone = [str(p) for p in ckpts.values() if not p.is_dir()]
        if gone:
            notes.append(f"not promoted {task}: its checkpoint {gone[0]} is gone (clear the cache? re-run the suite)")
            continue
        champ = promote(
            path,
            suite=run_row["suite"],
            task=task,
            run_row=run_row,
            stats=stats_from_rows(r for r in metric_rows if r["task"] == task),
            candidate=run_row["env"].get("candidate", {}),
            checkpoints=ckpts,
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
