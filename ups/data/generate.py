"""Generate a task's dataset into a store, and a content-keyed on-disk cache of generated stores.

The cache key covers everything that decides the data: task, size, seed, the store format version and the source of
the task's solver module, so editing a solver regenerates its data while an unchanged re-run reuses the store. A file
lock makes concurrent callers (pytest-xdist workers) generate once and share the result.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
from filelock import FileLock

from ups.data.solvers import TASKS
from ups.data.solvers.base import Task
from ups.data.store import FORMAT_VERSION, DatasetStore, write_store
from ups.errors import UserInputError


def _task(task: str, size: str) -> type[Task]:
    """The registered task, after checking that it has ``size`` (unknown names list the valid ones)."""
    generator = TASKS.get(task)
    generator.size(size)
    return generator


def generate_dataset(task: str, size: str, out: str | Path, seed: int = 0) -> Path:
    """Run the task's reference solver and write every split to a Zarr store at ``out`` (replaced atomically).

    Raises:
        UserInputError: unknown task or size.
        RuntimeError: the solver produced NaN/Inf (a solver bug, never written to disk).
    """
    generator = _task(task, size)
    splits = generator.generate(size, seed)
    for name, split in splits.items():
        for field, data in split.fields.items():
            if not np.all(np.isfinite(data)):
                raise RuntimeError(f"{task}/{size} seed {seed}: solver produced NaN/Inf in {name}/{field}")
    write_store(
        out,
        generator.spec(size),
        splits,
        solver=generator.solver,
        solver_config=generator.solver_config(size),
        seed=seed,
    )
    return Path(out)


def solver_source_sha256(task: str) -> str:
    """sha256 of the task's solver module and every module beside it (the shared ``base.py``, ``_*.py``, the others).

    Solvers share numerics and split bookkeeping (``base.py``, ``_finite_volume.py``, euler2d importing euler1d), so
    hashing only the task's own file would miss changes that alter its data. Hashing the whole solvers folder errs on
    the side of regenerating.
    """
    source = Path(inspect.getsourcefile(TASKS.get(task)))
    h = hashlib.sha256()
    for path in sorted(source.parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(task: str, size: str, seed: int) -> str:
    """sha256 of (task, size, seed, store format version, solver source sha256)."""
    blob = json.dumps(
        {
            "task": task,
            "size": size,
            "seed": int(seed),
            "format_version": FORMAT_VERSION,
            "solver_source": solver_source_sha256(task),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_dataset(task: str, size: str, seed: int, cache_dir: str | Path) -> Path:
    """Path of the store ``<cache_dir>/data/<task>-<size>-s<seed>-<key12>.zarr``, generated on first use.

    An existing store that opens is reused as is; one that does not (e.g. a foreign directory at that path) is
    regenerated. Generation holds ``FileLock("<path>.lock")``, so parallel workers generate once.
    """
    _task(task, size)
    path = Path(cache_dir) / "data" / f"{task}-{size}-s{seed}-{cache_key(task, size, seed)[:12]}.zarr"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():
            try:
                DatasetStore.open(path)
                return path
            except UserInputError:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        generate_dataset(task, size, path, seed=seed)
    return path
