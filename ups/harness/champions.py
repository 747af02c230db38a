"""Champion snapshots: ``champions/<suite>/<task>.json``.

A snapshot records who the champion is (run id, commit, config hash, date, environment), what its numbers were
scored on (the task's ``data_hash`` and the ``scoring_hash`` of the code and protocol that score it), its per-metric
seed statistics per split (with per-trajectory values for trajectory-mean metrics, so gates can pair trajectories),
the machine reference time of the run (for machine-normalised timing gates) and one checkpoint per seed (a folder
beside the JSON + its sha256), so a candidate can be judged against it without re-running it, and the champion can
be re-scored when the data or the scoring code change (``ups.harness.runner``: like with like).

Nothing machine-local is stored: checkpoint paths are relative to the JSON.

A pull request is judged against its *base branch's* champion: with a ref, the snapshot is read from git
(:class:`ups.harness.sources.Source`), never from the working tree the pull request may have edited.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ups.errors import UserInputError
from ups.harness.sources import Source
from ups.metrics.seeds import SeedStat
from ups.provenance import canonical_hash

FORMAT_VERSION = 2
REQUIRED = (
    "suite", "task", "run_id", "commit", "config_hash", "data_hash", "scoring_hash", "code_hash", "date", "metrics",
)  # fmt: skip


@dataclass(frozen=True)
class Champion:
    suite: str
    task: str
    run_id: str
    commit: str
    config_hash: str
    data_hash: str  # the task's dataset content hash
    scoring_hash: str  # ``ups.provenance.scoring_hash`` of the code and protocol that scored it
    code_hash: str
    date: str
    metrics: dict[str, dict[str, SeedStat]]  # split -> metric name (e.g. "nrmse@16") -> stats
    candidate: dict = field(default_factory=dict)  # how the champion was built: model name and config
    env: dict = field(default_factory=dict)
    machine_ref_s: float | None = None
    checkpoints: dict[int, dict] = field(default_factory=dict)  # seed -> {"path": relative to the JSON, "sha256"}
    # Set when judging, never stored: why these numbers were re-scored, or why the snapshot cannot be compared.
    rescored: str | None = None
    stale: str | None = None

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
            "scoring_hash": self.scoring_hash,
            "code_hash": self.code_hash,
            "date": self.date,
            "candidate": self.candidate,
            "env": self.env,
            "machine_ref_s": self.machine_ref_s,
            "checkpoints": {str(k): v for k, v in sorted(self.checkpoints.items())},
            "metrics": {s: {m: st.as_dict() for m, st in sorted(ms.items())} for s, ms in sorted(self.metrics.items())},
        }


def _number(x: object, where: str, what: str, *, allow_none: bool = False) -> None:
    if x is None and allow_none:
        return
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise UserInputError(f"champion file {where}: {what} is {json.dumps(x)}, not a finite number")


def _check_stat(d: object, where: str, what: str) -> None:
    """A metric entry must hold finite numbers where numbers belong (``mean: Infinity`` would pass every gate)."""
    if not isinstance(d, dict) or "mean" not in d:
        raise UserInputError(f"champion file {where}: {what} must be an object with a mean")
    _number(d["mean"], where, f"{what}.mean", allow_none=True)
    _number(d.get("std", 0.0), where, f"{what}.std")
    if "n" in d and (isinstance(d["n"], bool) or not isinstance(d["n"], int) or d["n"] < 0):
        raise UserInputError(f"champion file {where}: {what}.n is {json.dumps(d['n'])}, not a count of seeds")
    per_seed = d.get("per_seed", {})
    if not isinstance(per_seed, dict):
        raise UserInputError(f"champion file {where}: {what}.per_seed must be an object")
    for seed, v in per_seed.items():
        if not str(seed).lstrip("-").isdigit():
            raise UserInputError(f"champion file {where}: {what}.per_seed key {seed!r} is not a seed")
        _number(v, where, f"{what}.per_seed.{seed}", allow_none=True)
    per_traj = d.get("per_traj", {})
    if not isinstance(per_traj, dict) or not all(isinstance(v, list) for v in per_traj.values()):
        raise UserInputError(f"champion file {where}: {what}.per_traj must map seeds to lists")
    for seed, values in per_traj.items():
        if not str(seed).lstrip("-").isdigit():
            raise UserInputError(f"champion file {where}: {what}.per_traj key {seed!r} is not a seed")
        if per_seed.get(seed) is None:
            raise UserInputError(f"champion file {where}: {what}.per_traj has seed {seed}, per_seed has no value")
        for i, v in enumerate(values):
            _number(v, where, f"{what}.per_traj.{seed}[{i}]")
        _agree(math.fsum(values) / max(len(values), 1), per_seed[seed], where, f"{what}.per_seed.{seed}", "per_traj")
    finite = [v for v in per_seed.values() if v is not None]
    if finite:
        _agree(math.fsum(finite) / len(finite), d["mean"], where, f"{what}.mean", "per_seed")
    elif d["mean"] is not None:
        raise UserInputError(f"champion file {where}: {what}.mean is set but no seed has a value")


def _agree(derived: float, stored: object, where: str, what: str, source: str) -> None:
    """The numbers a gate reads must be one story: a mean edited without its seeds would judge by the edit."""
    if stored is None or not math.isclose(derived, stored, rel_tol=1e-9, abs_tol=1e-300):
        raise UserInputError(f"champion file {where}: {what} is {stored}, the mean of its {source} is {derived:.6g}")


def _parse(text: str, where: str) -> Champion:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(f"champion file {where}: invalid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise UserInputError(f"champion file {where}: nested too deeply to be a champion snapshot") from None
    if not isinstance(d, dict):
        raise UserInputError(f"champion file {where}: expected a JSON object")
    if d.get("format_version") != FORMAT_VERSION:
        raise UserInputError(
            f"champion file {where}: format_version {d.get('format_version')!r}, this ups reads {FORMAT_VERSION} "
            "(re-create it: pytest benchmarks -m small_eval --ups-promote)"
        )
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise UserInputError(f"champion file {where}: missing key {missing[0]!r}")
    for key in REQUIRED[:-1]:
        if not isinstance(d[key], str):
            raise UserInputError(f"champion file {where}: {key} is {json.dumps(d[key])}, not a string")
    for key in ("candidate", "env"):
        if not isinstance(d.get(key, {}), dict):
            raise UserInputError(f"champion file {where}: {key} must be an object")
    if not isinstance(d["metrics"], dict) or not all(isinstance(ms, dict) for ms in d["metrics"].values()):
        raise UserInputError(f"champion file {where}: metrics must map splits to metric objects")
    for split, ms in d["metrics"].items():
        for name, st in ms.items():
            _check_stat(st, where, f"metrics.{split}.{name}")
    checkpoints = d.get("checkpoints") or {}
    if not isinstance(checkpoints, dict) or not all(
        isinstance(c, dict) and isinstance(c.get("path"), str) and isinstance(c.get("sha256"), str)
        for c in checkpoints.values()
    ):
        raise UserInputError(f"champion file {where}: checkpoints must map seeds to {{path, sha256}}")
    if not all(str(k).lstrip("-").isdigit() for k in checkpoints):
        raise UserInputError(f"champion file {where}: checkpoints keys must be seeds")
    for c in checkpoints.values():
        if Path(c["path"]).is_absolute() or ".." in Path(c["path"]).parts:
            raise UserInputError(f"champion file {where}: checkpoint path {c['path']!r} must stay beside the file")
    if d.get("machine_ref_s") is not None:
        _number(d["machine_ref_s"], where, "machine_ref_s")
    d.pop("format_version")
    d["metrics"] = {s: {m: SeedStat.from_dict(st) for m, st in ms.items()} for s, ms in d["metrics"].items()}
    d["checkpoints"] = {int(k): v for k, v in checkpoints.items()}
    known = set(Champion.__dataclass_fields__) - {"rescored", "stale"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserInputError(f"champion file {where}: unknown key {unknown[0]!r}")
    return Champion(**d)


def load_champion(path: str | Path, *, source: Source | None = None) -> Champion | None:
    """Read a snapshot from the working tree, or from ``source``'s git ref. None if there is no champion yet."""
    source = source or Source(Path(path).parent if Path(path).is_absolute() else Path.cwd())
    text = source.read_text(path)
    if text is None:
        return None
    return _parse(text, source.where(path))


def dir_sha256(path: Path) -> str:
    """sha256 over the sorted file names and contents of a directory (what a champion's checkpoint entry pins)."""
    return canonical_hash({p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file()})


def verified_checkpoint(folder: Path | None, entry: dict, where: str) -> Path:
    """``folder`` after checking its sha256 against the snapshot's ``entry``.

    Raises:
        UserInputError: the folder is missing or its contents do not hash to ``entry["sha256"]`` (nothing is loaded).
    """
    if folder is None or not folder.is_dir():
        raise UserInputError(f"champion checkpoint {where}: missing")
    actual = dir_sha256(folder)
    if actual != entry["sha256"]:
        raise UserInputError(
            f"champion checkpoint {where}: sha256 {actual[:12]}… does not match the snapshot's {entry['sha256'][:12]}…"
        )
    return folder


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
