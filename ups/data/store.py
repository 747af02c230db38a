"""The UPS dataset store: one Zarr v3 group per dataset (layout in docs/data_format.md).

```
<name>.zarr/                      attrs: task, format_version, solver, solver_config, seed, dt, fields, bc,
                                         param_names, splits, spec, content_sha256
  coords/x[, y, z], coords/t      float64
  <split>/fields/<field>          float32 [traj, time, *space], one trajectory per chunk
  <split>/params                  float32 [traj, n_params]
  <split>/ids                     int64 [traj]
  stats/<field>/mean, std         float64 scalars, from the train split only
```

Arrays are stored uncompressed: float fields barely compress, and raw chunks keep a corrupted byte a corrupted value
that the content hash (see :func:`compute_content_sha256`) always catches. :func:`validate_store` checks a store end to
end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ups.data.spec import TaskSpec
from ups.data.splits import SplitData, split_order
from ups.errors import UserInputError

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
SPACE_AXES = ("x", "y", "z")
_HASH_ROWS = 64  # rows of axis 0 read at a time while hashing, to bound memory on full-size stores


def default_coords(spec: TaskSpec, n_frames: int) -> dict[str, np.ndarray]:
    """Grid coordinates: periodic nodes j·h, or cell centres (j + ½)·h otherwise; t = k·dt."""
    shift = 0.0 if spec.bc == "periodic" else 0.5
    coords = {
        axis: (np.arange(n) + shift) * h for axis, n, h in zip(SPACE_AXES, spec.grid_shape, spec.spacing, strict=False)
    }
    coords["t"] = np.arange(n_frames) * spec.dt
    return coords


def write_store(
    path: str | Path,
    spec: TaskSpec,
    splits: dict[str, SplitData],
    *,
    solver: str,
    solver_config: dict[str, Any],
    seed: int,
    coords: dict[str, np.ndarray] | None = None,
) -> str:
    """Write a dataset to ``path`` atomically and return its content sha256.

    The store is written to a hidden temporary sibling and renamed into place, so an interrupted write never leaves
    a half store at ``path``. An existing UPS store at ``path`` is replaced; any other existing path is refused.

    Args:
        splits: split name → :class:`SplitData`; must contain ``train`` (normalisation stats come from it alone).
        coords: optional coordinates; default :func:`default_coords`.
    """
    path = Path(path)
    if "train" not in splits:
        raise ValueError("a dataset needs a 'train' split: its normalisation statistics come from it")
    if path.exists():
        DatasetStore.open(path)  # refuse to replace anything that is not a UPS store
    n_frames = next(iter(splits["train"].fields.values())).shape[1]
    coords = default_coords(spec, n_frames) if coords is None else coords
    names = split_order(list(splits))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for axis, values in coords.items():
            _write(root, f"coords/{axis}", np.asarray(values, dtype=np.float64))
        for name in names:
            split = splits[name]
            for field in spec.fields:
                data = np.asarray(split.fields[field], dtype=np.float32)
                _write(root, f"{name}/fields/{field}", data, chunks=(1, *data.shape[1:]))
            _write(root, f"{name}/params", np.asarray(split.params, dtype=np.float32))
            _write(root, f"{name}/ids", np.asarray(split.ids, dtype=np.int64))
        for field in spec.fields:
            mean, std = _moments(splits["train"].fields[field])
            _write(root, f"stats/{field}/mean", np.float64(mean))
            _write(root, f"stats/{field}/std", np.float64(std))
        root.attrs.update(
            {
                "task": spec.task,
                "format_version": FORMAT_VERSION,
                "solver": solver,
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
        digest = compute_content_sha256(tmp)
        root.attrs["content_sha256"] = digest
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return digest


def _write(root: zarr.Group, name: str, data: np.ndarray, chunks: tuple[int, ...] | None = None) -> None:
    arr = root.create_array(
        name, shape=data.shape, dtype=data.dtype, chunks=chunks or data.shape or "auto", compressors=None
    )
    arr[...] = data


def _moments(data: np.ndarray | zarr.Array) -> tuple[float, float]:
    """Mean and population std (ddof = 0) over every element (traj, time, space).

    Two passes over blocks of trajectories, accumulated in float64, so a full-size split never needs a float64 copy.
    """

    def blocks() -> Iterator[np.ndarray]:
        for lo in range(0, data.shape[0], _HASH_ROWS):
            yield np.asarray(data[lo : lo + _HASH_ROWS], dtype=np.float64)

    count = int(np.prod(data.shape))
    mean = sum(float(b.sum()) for b in blocks()) / count
    var = sum(float(np.sum((b - mean) ** 2)) for b in blocks()) / count
    return mean, float(np.sqrt(var))


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is moved aside first and removed only after the swap."""
    if not dst.exists():
        os.replace(src, dst)
        return
    trash = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(dst, trash)
    os.replace(src, dst)
    shutil.rmtree(trash, ignore_errors=True)


def array_paths(root: zarr.Group) -> list[str]:
    """Paths of every array in the group, sorted (the fixed order of the content hash)."""
    return sorted(name for name, node in root.members(max_depth=None) if isinstance(node, zarr.Array))


def iter_rows(arr: zarr.Array, rows: int = _HASH_ROWS) -> Iterator[np.ndarray]:
    """Yield ``arr`` in blocks along axis 0 (the whole array for 0-d arrays)."""
    if arr.ndim == 0:
        yield np.asarray(arr[...])
        return
    for lo in range(0, arr.shape[0], rows):
        yield np.asarray(arr[lo : lo + rows])


def compute_content_sha256(path: str | Path, max_bytes: int | None = None) -> str:
    """sha256 of a store's content, reading at most ``max_bytes`` per block (default: 64 rows of axis 0).

    Fed, in order: for every array in sorted path order, a header ``"<path>|<dtype>|<shape>\\n"`` then its values as
    little-endian C-order bytes; finally the canonical JSON (sorted keys, compact) of the root attrs without
    ``content_sha256``. Chunking and on-disk encoding do not enter the hash; every stored value and data-defining
    attribute does.
    """
    root = zarr.open_group(str(path), mode="r", zarr_format=3)
    hasher = hashlib.sha256()
    for name in array_paths(root):
        arr = root[name]
        dtype = np.dtype(arr.dtype).newbyteorder("<")
        hasher.update(f"{name}|{dtype.str}|{list(arr.shape)}\n".encode())
        rows = _HASH_ROWS
        if max_bytes is not None:
            row_bytes = dtype.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))
            rows = max(1, max_bytes // max(row_bytes, 1))
        for block in iter_rows(arr, rows=rows):
            hasher.update(np.ascontiguousarray(block, dtype=dtype).data)
    attrs = {k: v for k, v in dict(root.attrs).items() if k != "content_sha256"}
    hasher.update(json.dumps(attrs, sort_keys=True, separators=(",", ":")).encode())
    return hasher.hexdigest()


class DatasetStore:
    """Read access to a UPS Zarr store; open with :meth:`DatasetStore.open`."""

    def __init__(self, path: Path, root: zarr.Group):
        self._path = path
        self._root = root

    @classmethod
    def open(cls, path: str | Path) -> DatasetStore:
        """Open a store read-only; a missing path, a non-UPS directory or an unknown format version is a one-line
        :class:`UserInputError`."""
        path = Path(path)
        if not path.exists():
            raise UserInputError(f"store {path}: no such file or directory")
        try:
            root = zarr.open_group(str(path), mode="r", zarr_format=3)
            attrs = dict(root.attrs)
        except Exception as err:
            raise UserInputError(f"store {path}: not a UPS data store (no readable Zarr v3 group: {err})") from None
        if "format_version" not in attrs or "task" not in attrs or "spec" not in attrs:
            raise UserInputError(f"store {path}: not a UPS data store (attrs task/format_version/spec missing)")
        if attrs["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
            version, supported = attrs["format_version"], ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
            raise UserInputError(f"store {path}: format_version {version!r} is not supported (reads {supported})")
        return cls(path, root)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def root(self) -> zarr.Group:
        return self._root

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._root.attrs)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec.from_attrs(self._root.attrs["spec"])

    @property
    def splits(self) -> list[str]:
        return list(self._root.attrs["splits"])

    @property
    def content_sha256(self) -> str:
        return str(self._root.attrs.get("content_sha256", ""))

    def _array(self, name: str) -> zarr.Array:
        try:
            return self._root[name]
        except KeyError:
            raise UserInputError(f"store {self._path}: missing array {name}") from None

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise UserInputError(f"store {self._path}: no split {split!r}; splits: {', '.join(self.splits)}")

    def array(self, split: str, field: str) -> zarr.Array:
        """The lazy Zarr array ``[traj, time, *space]`` of one field, for slicing without loading it whole."""
        self._check_split(split)
        return self._array(f"{split}/fields/{field}")

    def fields(self, split: str) -> np.ndarray:
        """All fields of a split, float32 ``[traj, time, C, *space]`` with channels in ``spec.fields`` order."""
        return np.stack([self.array(split, f)[...] for f in self.spec.fields], axis=2)

    def params(self, split: str) -> np.ndarray:
        """float32 ``[traj, n_params]``, columns in ``spec.param_names`` order."""
        self._check_split(split)
        return self._array(f"{split}/params")[...]

    def ids(self, split: str) -> np.ndarray:
        """int64 ``[traj]`` global trajectory ids."""
        self._check_split(split)
        return self._array(f"{split}/ids")[...]

    def stats(self) -> dict[str, tuple[float, float]]:
        """Field → (mean, std) over (traj, time, space) of the train split."""
        return {
            f: (float(self._array(f"stats/{f}/mean")[...]), float(self._array(f"stats/{f}/std")[...]))
            for f in self.spec.fields
        }

    def coords(self) -> dict[str, np.ndarray]:
        """Axis name (``x``, ``y``, ``z``, ``t``) → float64 coordinates."""
        group = self._root["coords"]
        return {name: arr[...] for name, arr in sorted(group.arrays())}


def validate_store(path: str | Path) -> dict[str, Any]:
    """Check a store end to end; raise :class:`UserInputError` with one line naming the first problem found.

    Checks, in order: the path opens as a UPS store; every expected array exists (coords, each split's fields, params
    and ids, stats); dtypes and shapes agree with the spec, the time axis and each other; no NaN/Inf; ids unique and
    no trajectory (by id or by identical values) in two splits; the stats equal the train split's moments; the
    recomputed content hash equals the stored one.

    Returns:
        summary: ``task``, ``content_sha256``, ``splits`` (name → number of trajectories), ``n_frames``, ``grid_shape``.
    """
    store = DatasetStore.open(path)
    where = f"store {store.path}"
    spec = store.spec
    expected = [f"coords/{axis}" for axis in SPACE_AXES[: spec.ndim]] + ["coords/t"]
    for split in store.splits:
        expected += [f"{split}/fields/{f}" for f in spec.fields] + [f"{split}/params", f"{split}/ids"]
    expected += [f"stats/{f}/{m}" for f in spec.fields for m in ("mean", "std")]
    present = set(array_paths(store.root))
    for name in expected:
        if name not in present:
            raise UserInputError(f"{where}: missing array {name}")

    n_frames = store.root["coords/t"].shape[0]
    for axis, n in zip(SPACE_AXES, spec.grid_shape, strict=False):
        _check_array(where, f"coords/{axis}", store.root[f"coords/{axis}"], "float64", (n,))
    seen_ids: dict[int, str] = {}
    seen_traj: dict[bytes, tuple[str, int]] = {}
    summary_splits: dict[str, int] = {}
    for split in store.splits:
        ids = store.root[f"{split}/ids"]
        n_traj = ids.shape[0]
        _check_array(where, f"{split}/ids", ids, "int64", (n_traj,))
        n_params = len(spec.param_names)
        _check_array(where, f"{split}/params", store.root[f"{split}/params"], "float32", (n_traj, n_params))
        field_arrays = [store.root[f"{split}/fields/{f}"] for f in spec.fields]
        for f, arr in zip(spec.fields, field_arrays, strict=True):
            _check_array(where, f"{split}/fields/{f}", arr, "float32", (n_traj, n_frames, *spec.grid_shape))
        params = store.root[f"{split}/params"][...]
        if not np.all(np.isfinite(params)):
            raise UserInputError(f"{where}: NaN/Inf in {split}/params")
        for traj_id in ids[...].tolist():
            if traj_id in seen_ids:
                other = seen_ids[traj_id]
                what = f"split {split}" if other == split else f"splits {other} and {split}"
                raise UserInputError(f"{where}: {what} share trajectory id {traj_id}")
            seen_ids[traj_id] = split
        # One pass over the field values: finiteness, and a per-trajectory digest to find identical trajectories.
        digests = [hashlib.sha256() for _ in range(n_traj)]
        for f, arr in zip(spec.fields, field_arrays, strict=True):
            for lo, block in zip(range(0, n_traj, _HASH_ROWS), iter_rows(arr), strict=True):
                if not np.all(np.isfinite(block)):
                    raise UserInputError(f"{where}: NaN/Inf in {split}/fields/{f}")
                for j, traj in enumerate(block):
                    digests[lo + j].update(np.ascontiguousarray(traj).tobytes())
        for i, digest in enumerate(d.digest() for d in digests):
            if digest in seen_traj:
                other, j = seen_traj[digest]
                raise UserInputError(
                    f"{where}: trajectory {split}[{i}] is identical to {other}[{j}] (splits must be disjoint)"
                )
            seen_traj[digest] = (split, i)
        summary_splits[split] = n_traj

    if "train" in store.splits:
        for f, (mean, std) in store.stats().items():
            true_mean, true_std = _moments(store.root[f"train/fields/{f}"])
            if not (np.isclose(mean, true_mean, rtol=1e-6, atol=1e-9) and np.isclose(std, true_std, rtol=1e-6)):
                raise UserInputError(
                    f"{where}: stats/{f} (mean {mean:.6g}, std {std:.6g}) are not the train split's moments "
                    f"(mean {true_mean:.6g}, std {true_std:.6g})"
                )

    stored = store.content_sha256
    computed = compute_content_sha256(store.path)
    if stored != computed:
        raise UserInputError(
            f"{where}: content hash mismatch (stored {stored[:12] or 'none'}, computed {computed[:12]}); "
            "the data was modified or corrupted"
        )
    return {
        "task": spec.task,
        "content_sha256": computed,
        "splits": summary_splits,
        "n_frames": n_frames,
        "grid_shape": spec.grid_shape,
    }


def _check_array(where: str, name: str, arr: zarr.Array, dtype: str, shape: tuple[int, ...]) -> None:
    if np.dtype(arr.dtype) != np.dtype(dtype):
        raise UserInputError(f"{where}: {name} has dtype {arr.dtype}, expected {dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise UserInputError(f"{where}: {name} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
