"""Champion snapshots: ``champions/<suite>/<task>.json``.

A snapshot records who the champion is (run id, commit, config/data/code hashes, date, environment), its per-metric
seed statistics per split, the machine reference time of the run (for machine-normalised timing gates) and its
checkpoint (path relative to the JSON + sha256), so a candidate can be judged against it without re-running it.

A pull request is judged against its *base branch's* champion: with ``ref`` set, the snapshot is read from git
(``git show <ref>:<path>``), never from the working tree the pull request may have edited.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ups.errors import UserInputError
from ups.harness.stats import SeedStat

FORMAT_VERSION = 1
REQUIRED = ("suite", "task", "run_id", "commit", "config_hash", "data_hash", "code_hash", "date", "metrics")


@dataclass(frozen=True)
class Champion:
    suite: str
    task: str
    run_id: str
    commit: str
    config_hash: str
    data_hash: str
    code_hash: str
    date: str
    metrics: dict[str, dict[str, SeedStat]]  # split -> metric name (e.g. "nrmse@16") -> stats
    candidate: dict = field(default_factory=dict)  # how the champion was built: model name and config
    env: dict = field(default_factory=dict)
    machine_ref_s: float | None = None
    checkpoint: dict | None = None  # {"path": relative to the JSON, "sha256": ...}

    def stat(self, split: str, metric: str) -> SeedStat | None:
        return self.metrics.get(split, {}).get(metric)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "suite": self.suite,
            "task": self.task,
            "run_id": self.run_id,
            "commit": self.commit,
            "config_hash": self.config_hash,
            "data_hash": self.data_hash,
            "code_hash": self.code_hash,
            "date": self.date,
            "candidate": self.candidate,
            "env": self.env,
            "machine_ref_s": self.machine_ref_s,
            "checkpoint": self.checkpoint,
            "metrics": {s: {m: st.as_dict() for m, st in sorted(ms.items())} for s, ms in sorted(self.metrics.items())},
        }


def _parse(text: str, where: str) -> Champion:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(f"champion file {where}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(d, dict):
        raise UserInputError(f"champion file {where}: expected a JSON object")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise UserInputError(f"champion file {where}: missing key {missing[0]!r}")
    if d.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise UserInputError(f"champion file {where}: unknown format_version {d['format_version']!r}")
    try:
        metrics = {
            split: {name: SeedStat.from_dict(st) for name, st in ms.items()} for split, ms in d["metrics"].items()
        }
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise UserInputError(f"champion file {where}: malformed metrics ({err})") from None
    for split, ms in metrics.items():
        for name, st in ms.items():
            if st.mean is not None and not isinstance(st.mean, int | float):
                raise UserInputError(f"champion file {where}: metrics.{split}.{name}.mean is not a number")
    d.pop("format_version", None)
    d["metrics"] = metrics
    known = set(Champion.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserInputError(f"champion file {where}: unknown key {unknown[0]!r}")
    return Champion(**d)


def load_champion(path: str | Path, *, ref: str | None = None, repo: str | Path = ".") -> Champion | None:
    """Read a snapshot from the working tree, or from git ``ref`` when given. None if there is no champion yet."""
    path = Path(path)
    if ref is None:
        if not path.is_file():
            return None
        return _parse(path.read_text(), str(path))
    rel = os.path.relpath(path.resolve(), Path(repo).resolve())
    proc = subprocess.run(
        ["git", "show", f"{ref}:{Path(rel).as_posix()}"], cwd=repo, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        if "does not exist" in proc.stderr or "exists on disk, but not in" in proc.stderr:
            return None
        raise UserInputError(f"champion ref {ref!r}: {proc.stderr.strip().splitlines()[-1]}")
    return _parse(proc.stdout, f"{ref}:{rel}")


def write_champion(path: str | Path, champion: Champion) -> None:
    """Write atomically (temp file + rename), so an interrupted promotion never leaves a broken snapshot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(champion.as_dict(), f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
