"""Convert external HDF5 files (PDEBench, The Well) into a UPS Zarr store, streaming, in bounded memory.

The trajectories of all inputs, concatenated in input order, get global ids ``0..N-1`` (``solver_config.sources``
records each file's first id). A seeded permutation of the ids deals them into the splits (``train=0.8,val=0.1,
test=0.1`` by default; counts by largest remainder); each split keeps its ids in ascending order, so reading the
source stays sequential. Normalisation statistics come from the train split only.

Memory. The converter never holds more than ``max_bytes`` of array data (measured with tracemalloc: about 0.8 ×
``max_bytes`` at the peak). Fields are copied in blocks of whole trajectories of at most ``max_bytes // 4`` bytes,
read straight into the block by h5py and written to one-trajectory Zarr chunks (Zarr keeps about one more copy while
encoding); statistics are accumulated one trajectory at a time in float64 (Chan et al.'s pairwise update of mean and
squared deviations); the content hash reads the store back in blocks of the same size (Zarr's decode buffers make
that about 3 × the block), and the inputs' sha256 uses one reused buffer of at most 1 MiB. So ``max_bytes`` must
hold at least :data:`MIN_TRAJ_MULTIPLE` trajectories of one field. Not counted: HDF5's own chunk cache (1 MiB per
open dataset, C memory).

The store has exactly the layout and attributes of :func:`ups.data.store.write_store` (which needs whole splits in
memory, hence this streaming twin); ``validate_store`` accepts it and recomputes the same content hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ups.data.readers import GridSource
from ups.data.readers.pdebench import PDEBenchReader
from ups.data.readers.the_well import TheWellReader
from ups.data.spec import BoundaryKind, TaskSpec
from ups.data.splits import split_order
from ups.data.store import FORMAT_VERSION, DatasetStore, _replace_dir, _write, compute_content_sha256
from ups.errors import UserInputError

#: format name → reader class.
FORMATS: dict[str, type[GridSource]] = {"pdebench": PDEBenchReader, "the_well": TheWellReader}
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_MAX_BYTES = 256 * 2**20
#: ``max_bytes`` must hold this many trajectories of one field: blocks are ``max_bytes // 4`` and hold at least one.
MIN_TRAJ_MULTIPLE = 4
_HASH_READ_BYTES = 2**20
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def open_reader(fmt: str, path: str | Path) -> GridSource:
    """Open ``path`` with the reader of format ``fmt`` (``pdebench`` or ``the_well``)."""
    if fmt not in FORMATS:
        raise UserInputError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return FORMATS[fmt](path)


def parse_splits(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` → ``{"train": 0.8, ...}``, checked (see :func:`split_indices`)."""
    fractions: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            fractions[name.strip()] = float(value)
        except ValueError:
            raise UserInputError(f"--splits: {item!r} is not NAME=FRACTION (e.g. train=0.8,val=0.1,test=0.1)") from None
    return fractions


def split_indices(n_traj: int, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Deal trajectory ids ``0..n_traj-1`` into splits by a permutation seeded with ``seed``.

    Counts are ``floor(f · n)`` plus one for the largest remainders (ties in the given order), so they sum to ``n``.
    Each split's ids are returned sorted. Names are lower-case identifiers and must include ``train``; fractions
    are positive and sum to 1; every split must get at least one trajectory.
    """
    if "train" not in fractions:
        raise UserInputError("--splits: a 'train' split is required (normalisation statistics come from it)")
    for name, frac in fractions.items():
        if not _SPLIT_NAME.match(name):
            raise UserInputError(f"--splits: split name {name!r} must be a lower-case identifier (train, val, ood_x)")
        if not frac > 0:
            raise UserInputError(f"--splits: fraction of {name} must be positive, got {frac}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise UserInputError(f"--splits: fractions sum to {total:g}, not 1")
    exact = {name: frac * n_traj for name, frac in fractions.items()}
    counts = {name: int(np.floor(x)) for name, x in exact.items()}
    by_remainder = sorted(fractions, key=lambda name: -(exact[name] - counts[name]))
    for name in by_remainder[: n_traj - sum(counts.values())]:
        counts[name] += 1
    for name, count in counts.items():
        if count == 0:
            raise UserInputError(
                f"--splits: split {name} gets no trajectory ({fractions[name]:g} of {n_traj}); "
                "use more trajectories or larger fractions"
            )
    perm = np.random.default_rng(seed).permutation(n_traj)
    out, start = {}, 0
    for name in fractions:
        out[name] = np.sort(perm[start : start + counts[name]])
        start += counts[name]
    return out


def file_sha256(path: Path, buffer_bytes: int = _HASH_READ_BYTES) -> str:
    """sha256 of a file, read into one reused buffer."""
    hasher, buffer = hashlib.sha256(), bytearray(max(1, buffer_bytes))
    view = memoryview(buffer)
    with open(path, "rb") as fh:
        while n := fh.readinto(buffer):
            hasher.update(view[:n])
    return hasher.hexdigest()


class _Moments:
    """Streaming mean and population variance (ddof = 0) in float64, merged block by block (Chan et al. 1979)."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, block: np.ndarray) -> None:
        x = block.astype(np.float64)
        n, mean = x.size, float(x.mean())
        x -= mean
        m2 = float(np.square(x, out=x).sum())  # not np.vdot: BLAS threads crawl on a busy machine
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count))


def _check_consistent(readers: list[GridSource]) -> None:
    first = readers[0]
    for reader in readers[1:]:
        for what in ("layout", "field_names", "grid_shape", "n_frames", "param_names"):
            a, b = getattr(first, what), getattr(reader, what)
            if a != b:
                raise UserInputError(f"{reader.where}: {what} is {b}, but {first.path.name} has {a}")
        for axis, values in first.coords.items():
            if not np.allclose(reader.coords[axis], values, rtol=1e-6, atol=1e-12):
                raise UserInputError(f"{reader.where}: coordinates {axis} differ from {first.path.name}")
        if reader.spec_hints() != first.spec_hints():
            raise UserInputError(f"{reader.where}: boundary conditions or field roles differ from {first.path.name}")


def build_spec(reader: GridSource, task: str, bc: BoundaryKind | None) -> TaskSpec:
    """The TaskSpec of a converted store: grid and dt from the coordinates, roles from the reader, ``bc`` override."""
    if reader.n_frames < 2:
        raise UserInputError(f"{reader.where}: {reader.n_frames} time frame(s); a rollout store needs at least 2")
    coords = reader.coords
    axes = [axis for axis in ("x", "y", "z") if axis in coords]
    domain = tuple(float((coords[a][-1] - coords[a][0]) / (len(coords[a]) - 1) * len(coords[a])) for a in axes)
    hints = dict(reader.spec_hints())
    if bc is not None:
        if bc != hints.get("bc"):
            hints.pop("bc_fields", None)
        hints["bc"] = bc
    hints.setdefault("bc", "none")
    return TaskSpec(
        task=task,
        fields=tuple(reader.field_names),
        grid_shape=tuple(reader.grid_shape),
        domain=domain,
        dt=float((coords["t"][-1] - coords["t"][0]) / (len(coords["t"]) - 1)),
        param_names=tuple(reader.param_names),
        **hints,
    )


def convert(
    fmt: str,
    inputs: Sequence[str | Path],
    out: str | Path,
    task: str,
    *,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    bc: BoundaryKind | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """Convert ``inputs`` (one format, one layout, the same grid) into a store at ``out``; return its content sha256.

    Args:
        fmt: ``pdebench`` or ``the_well``.
        inputs: HDF5 files; their trajectories are concatenated in this order (global ids).
        out: store path, replaced atomically (an existing non-UPS path is refused).
        task: task name recorded in the store.
        splits: split name → fraction of trajectories; default train/val/test 0.8/0.1/0.1.
        seed: seeds the permutation that deals trajectories into splits; recorded as the store's seed.
        bc: boundary condition for ``TaskSpec.bc``, overriding what the file says (PDEBench files say nothing).
        max_bytes: bound on the array data held in memory at once.

    Raises:
        UserInputError: a missing or malformed input, inconsistent inputs, bad splits or task name, too small a cap.
    """
    if not _TASK_NAME.match(task):
        raise UserInputError(f"--task: {task!r} is not a task name (letters, digits, '_', '-', '.')")
    if not inputs:
        raise UserInputError("no --input file given")
    fractions = dict(DEFAULT_SPLITS if splits is None else splits)
    out = Path(out)
    readers: list[GridSource] = []
    try:
        for path in inputs:
            readers.append(open_reader(fmt, path))
        _check_consistent(readers)
        spec = build_spec(readers[0], task, bc)
        need = MIN_TRAJ_MULTIPLE * readers[0].traj_nbytes
        if max_bytes < need:
            raise UserInputError(
                f"memory cap {max_bytes / 2**20:.3g} MiB is below {MIN_TRAJ_MULTIPLE} trajectories of one field "
                f"({need / 2**20:.3g} MiB); raise it"
            )
        offsets = np.cumsum([0] + [r.n_traj for r in readers])
        ids = split_indices(int(offsets[-1]), fractions, seed)
        sources = [
            {
                "file": r.path.name,
                "sha256": file_sha256(r.path, min(_HASH_READ_BYTES, max_bytes // 4)),
                "n_traj": r.n_traj,
                "first_id": int(offsets[i]),
            }
            | r.describe()
            for i, r in enumerate(readers)
        ]
        solver_config = {"format": fmt, "layout": readers[0].layout, "sources": sources, "splits": fractions}
        return _write_store(out, spec, readers, offsets, ids, seed, solver_config, max_bytes)
    finally:
        for reader in readers:
            reader.close()


def _write_store(
    path: Path,
    spec: TaskSpec,
    readers: list[GridSource],
    offsets: np.ndarray,
    ids: dict[str, np.ndarray],
    seed: int,
    solver_config: dict[str, Any],
    max_bytes: int,
) -> str:
    if path.exists():
        DatasetStore.open(path)  # refuse to replace anything that is not a UPS store
    names = split_order(list(ids))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # Zarr holds about two copies of what it writes or reads (encode/decode buffers), and the statistics a float64
    # copy of one trajectory: blocks of a quarter of the cap keep the peak near 0.75 × max_bytes.
    block_bytes = max_bytes // 4
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for axis, values in readers[0].coords.items():
            _write(root, f"coords/{axis}", values)
        moments = {field: _Moments() for field in spec.fields}
        for name in names:
            split_ids = ids[name]
            owner = np.searchsorted(offsets, split_ids, side="right") - 1  # which input holds each id
            params = np.concatenate([r.params()[split_ids[owner == k] - offsets[k]] for k, r in enumerate(readers)])
            for field in spec.fields:
                arr = root.create_array(
                    f"{name}/fields/{field}",
                    shape=(len(split_ids), readers[0].n_frames, *spec.grid_shape),
                    dtype="float32",
                    chunks=(1, readers[0].n_frames, *spec.grid_shape),
                    compressors=None,
                )
                locals_ = [split_ids[owner == k] - offsets[k] for k in range(len(readers))]
                stats = moments[field] if name == "train" else None
                _copy_field(readers, locals_, field, arr, stats, block_bytes)
            _write(root, f"{name}/params", params.astype(np.float32).reshape(len(split_ids), len(spec.param_names)))
            _write(root, f"{name}/ids", split_ids.astype(np.int64))
        for field, m in moments.items():
            _write(root, f"stats/{field}/mean", np.float64(m.mean))
            _write(root, f"stats/{field}/std", np.float64(m.std))
        root.attrs.update(
            {
                "task": spec.task,
                "format_version": FORMAT_VERSION,
                "solver": f"{solver_config['format']}/{solver_config['layout']}",
                "solver_config": solver_config,
                "seed": int(seed),
                "dt": float(spec.dt),
                "fields": list(spec.fields),
                "bc": spec.bc,
                "param_names": list(spec.param_names),
                "splits": names,
                "spec": spec.to_attrs(),
            }
        )
        digest = compute_content_sha256(tmp, block_bytes)
        root.attrs["content_sha256"] = digest
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def _copy_field(
    readers: list[GridSource],
    local_ids: list[np.ndarray],
    field: str,
    arr: zarr.Array,
    moments: _Moments | None,
    block_bytes: int,
) -> None:
    """Copy one field of one split, block by block, checking finiteness and accumulating ``moments`` if given."""
    start = 0
    for reader, local in zip(readers, local_ids, strict=True):
        for pos, block in reader.iter_blocks(field, local, block_bytes):
            for j, traj in enumerate(block):
                if not np.isfinite(traj).all():
                    raise UserInputError(f"{reader.where}: NaN/Inf in field {field}, trajectory {int(local[pos + j])}")
                if moments is not None:
                    moments.add(traj)
            arr[start + pos : start + pos + len(block)] = block
        start += len(local)
