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
that the content hash (see :func:`compute_content_sha256`) always catches.

Three levels of trust, each a one-line :class:`UserInputError` naming the store when it fails:
:meth:`DatasetStore.open` checks the metadata (attributes complete, every array present with the dtype and shape the
spec implies; milliseconds, no chunk read); :meth:`DatasetStore.verify` reads every value back and compares the content
hash (a truncated, garbage or flipped chunk fails here); :func:`validate_store` adds finiteness, split disjointness and
the train-only statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
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
BOUNDARY_KINDS = ("periodic", "dirichlet", "neumann", "none")
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
        _root_attrs(path)  # refuse to replace anything that is not a UPS store (a damaged one may be replaced)
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


def _read_rows(arr: zarr.Array, where: str, name: str, rows: int = _HASH_ROWS) -> Iterator[np.ndarray]:
    """:func:`iter_rows`, a chunk that cannot be decoded (truncated, garbage) being one line naming the array."""
    blocks = iter_rows(arr, rows=rows)
    while True:
        with _reading(where, name):
            block = next(blocks, None)
        if block is None:
            return
        yield block


@contextlib.contextmanager
def _reading(where: str, name: str) -> Iterator[None]:
    """Turn a failure to read ``name`` into one line. Zarr and its codecs raise many types for a damaged file
    (ValueError for a short chunk, JSON and OS errors for metadata), so every non-UPS exception is caught here, at
    the edge where bytes from disk become arrays."""
    try:
        yield
    except UserInputError:
        raise
    except Exception as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserInputError(f"{where}: cannot read {name} (damaged or truncated file: {detail})") from None


def compute_content_sha256(path: str | Path, max_bytes: int | None = None) -> str:
    """sha256 of a store's content, reading at most ``max_bytes`` per block (default: 64 rows of axis 0).

    Fed, in order: for every array in sorted path order, a header ``"<path>|<dtype>|<shape>\\n"`` then its values as
    little-endian C-order bytes; finally the canonical JSON (sorted keys, compact) of the root attrs without
    ``content_sha256``. Chunking and on-disk encoding do not enter the hash; every stored value and data-defining
    attribute does.
    """
    where = f"store {path}"
    with _reading(where, "metadata"):
        root = zarr.open_group(str(path), mode="r", zarr_format=3)
        names = array_paths(root)
    hasher = hashlib.sha256()
    for name in names:
        with _reading(where, name):
            arr = root[name]
        dtype = np.dtype(arr.dtype).newbyteorder("<")
        hasher.update(f"{name}|{dtype.str}|{list(arr.shape)}\n".encode())
        rows = _HASH_ROWS
        if max_bytes is not None:
            row_bytes = dtype.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))
            rows = max(1, max_bytes // max(row_bytes, 1))
        for block in _read_rows(arr, where, name, rows=rows):
            hasher.update(np.ascontiguousarray(block, dtype=dtype).data)
    attrs = {k: v for k, v in dict(root.attrs).items() if k != "content_sha256"}
    hasher.update(json.dumps(attrs, sort_keys=True, separators=(",", ":")).encode())
    return hasher.hexdigest()


def _root_attrs(path: Path) -> dict[str, Any]:
    """The root attributes of the UPS store at ``path``: a missing path, a directory that is not a Zarr v3 group with
    the UPS identity attributes, or an unknown format version is one line."""
    if not path.exists():
        raise UserInputError(f"store {path}: no such file or directory")
    try:
        attrs = dict(zarr.open_group(str(path), mode="r", zarr_format=3).attrs)
    except Exception as err:  # zarr raises many types for a foreign or damaged directory
        detail = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserInputError(f"store {path}: not a UPS data store (no readable Zarr v3 group: {detail})") from None
    if "format_version" not in attrs or "task" not in attrs or "spec" not in attrs:
        raise UserInputError(f"store {path}: not a UPS data store (attrs task/format_version/spec missing)")
    if attrs["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
        version, supported = attrs["format_version"], ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise UserInputError(f"store {path}: format_version {version!r} is not supported (reads {supported})")
    return attrs


_SPEC_REQUIRED = tuple(f.name for f in dataclasses.fields(TaskSpec) if f.default is dataclasses.MISSING)
_SPEC_KEYS = frozenset(f.name for f in dataclasses.fields(TaskSpec))


def _spec_from_attrs(where: str, raw: Any, task: Any) -> TaskSpec:
    """The ``spec`` attribute as a :class:`TaskSpec`, checked key by key so a hand-edited or cut attribute is one
    line rather than a ``TypeError`` deep inside a metric."""
    if not isinstance(raw, dict):
        raise UserInputError(f"{where}: attribute spec is a {type(raw).__name__}, expected a mapping")
    if missing := [k for k in _SPEC_REQUIRED if k not in raw]:
        raise UserInputError(f"{where}: attribute spec is incomplete (missing {', '.join(missing)})")
    if unknown := sorted(set(raw) - _SPEC_KEYS):
        raise UserInputError(f"{where}: attribute spec has unknown keys {', '.join(map(str, unknown))}")
    try:
        spec = TaskSpec.from_attrs(raw)
    except (TypeError, ValueError, AttributeError) as err:
        raise UserInputError(f"{where}: attribute spec is malformed ({err})") from None
    if problem := _spec_problem(spec):
        raise UserInputError(f"{where}: attribute spec: {problem}")
    if spec.task != task:
        raise UserInputError(f"{where}: attribute task {task!r} disagrees with spec.task {spec.task!r}")
    return spec


def _spec_problem(spec: TaskSpec) -> str | None:
    """What is wrong with a spec read from disk, or None."""

    def names(values: Sequence[Any]) -> bool:
        return all(isinstance(v, str) and v and "/" not in v for v in values) and len(set(values)) == len(values)

    def positive(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0

    if not isinstance(spec.task, str) or not spec.task:
        return f"task must be a non-empty string, got {spec.task!r}"
    if not spec.fields or not names(spec.fields):
        return f"fields must be distinct non-empty names, got {list(spec.fields)}"
    if not 1 <= spec.ndim <= 3 or not all(type(n) is int and n > 0 for n in spec.grid_shape):
        return f"grid_shape must be 1 to 3 positive integers, got {list(spec.grid_shape)}"
    if len(spec.domain) != spec.ndim or not all(positive(x) for x in spec.domain):
        return f"domain must be {spec.ndim} positive length(s), got {list(spec.domain)}"
    if not positive(spec.dt):
        return f"dt must be a positive number, got {spec.dt!r}"
    if spec.bc not in BOUNDARY_KINDS:
        return f"bc {spec.bc!r} is not one of {', '.join(BOUNDARY_KINDS)}"
    if not names(spec.param_names):
        return f"param_names must be distinct non-empty names, got {list(spec.param_names)}"
    if not isinstance(spec.extra, dict):
        return f"extra must be a mapping, got {type(spec.extra).__name__}"
    named = [*spec.velocity, *spec.bc_fields, *(q.field for q in spec.conserved)]
    named += [spec.shock_field] if spec.shock_field is not None else []
    if unknown := [f for f in named if f not in spec.fields]:
        return f"names field(s) {unknown} that are not in fields {list(spec.fields)}"
    return None


def _splits_from_attrs(where: str, raw: Any) -> list[str]:
    if raw is None:
        raise UserInputError(f"{where}: attribute splits is missing (the list of split names)")
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v and "/" not in v for v in raw):
        raise UserInputError(f"{where}: attribute splits must be a non-empty list of split names, got {raw!r:.100}")
    if len(set(raw)) != len(raw):
        raise UserInputError(f"{where}: attribute splits names a split twice: {raw}")
    return list(raw)


def _check_layout(where: str, root: zarr.Group, spec: TaskSpec, splits: list[str]) -> None:
    """Every array the spec and splits imply exists with the expected dtype and shape (metadata only)."""
    with _reading(where, "metadata"):
        present = set(array_paths(root))
    expected = [f"coords/{axis}" for axis in SPACE_AXES[: spec.ndim]] + ["coords/t"]
    for split in splits:
        expected += [f"{split}/fields/{f}" for f in spec.fields] + [f"{split}/params", f"{split}/ids"]
    expected += [f"stats/{f}/{m}" for f in spec.fields for m in ("mean", "std")]
    for name in expected:
        if name not in present:
            raise UserInputError(f"{where}: missing array {name}")

    time = root["coords/t"]
    if time.ndim != 1:
        raise UserInputError(f"{where}: coords/t has shape {tuple(time.shape)}, expected one axis")
    n_frames = time.shape[0]
    _check_array(where, "coords/t", time, "float64", (n_frames,))
    for axis, n in zip(SPACE_AXES, spec.grid_shape, strict=False):
        _check_array(where, f"coords/{axis}", root[f"coords/{axis}"], "float64", (n,))
    for split in splits:
        ids = root[f"{split}/ids"]
        n_traj = ids.shape[0] if ids.ndim else -1
        _check_array(where, f"{split}/ids", ids, "int64", (n_traj,))
        n_params = len(spec.param_names)
        _check_array(where, f"{split}/params", root[f"{split}/params"], "float32", (n_traj, n_params))
        for f in spec.fields:
            arr = root[f"{split}/fields/{f}"]
            _check_array(where, f"{split}/fields/{f}", arr, "float32", (n_traj, n_frames, *spec.grid_shape))
    for f in spec.fields:
        for moment in ("mean", "std"):
            _check_array(where, f"stats/{f}/{moment}", root[f"stats/{f}/{moment}"], "float64", ())


def _check_array(where: str, name: str, arr: zarr.Array, dtype: str, shape: tuple[int, ...]) -> None:
    if np.dtype(arr.dtype) != np.dtype(dtype):
        raise UserInputError(f"{where}: {name} has dtype {arr.dtype}, expected {dtype}")
    if tuple(arr.shape) != tuple(shape):
        raise UserInputError(f"{where}: {name} has shape {tuple(arr.shape)}, expected {tuple(shape)}")


class DatasetStore:
    """Read access to a UPS Zarr store; open with :meth:`DatasetStore.open`."""

    def __init__(self, path: Path, root: zarr.Group, spec: TaskSpec, splits: list[str]):
        self._path = path
        self._root = root
        self._spec = spec
        self._splits = splits
        self._where = f"store {path}"

    @classmethod
    def open(cls, path: str | Path) -> DatasetStore:
        """Open a store read-only and check its metadata: the attributes (identity, format version, a complete spec,
        the split list) and every array the spec implies, with its dtype and shape. Reads no chunk; each problem is a
        one-line :class:`UserInputError` naming the store. :meth:`verify` checks the values."""
        path = Path(path)
        attrs = _root_attrs(path)
        where = f"store {path}"
        spec = _spec_from_attrs(where, attrs["spec"], attrs["task"])
        splits = _splits_from_attrs(where, attrs.get("splits"))
        root = zarr.open_group(str(path), mode="r", zarr_format=3)
        _check_layout(where, root, spec, splits)
        return cls(path, root, spec, splits)

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
        return self._spec

    @property
    def splits(self) -> list[str]:
        return list(self._splits)

    @property
    def content_sha256(self) -> str:
        """The stored content hash ('' when the store records none)."""
        value = self._root.attrs.get("content_sha256")
        return value if isinstance(value, str) else ""

    def verify(self, *, require_hash: bool = True) -> str:
        """Read every value back and compare the content hash with the stored one; return the recomputed hash.

        A truncated or garbage chunk, or a flipped byte, is a one-line :class:`UserInputError`. A store that records
        no hash fails when ``require_hash`` (it cannot be trusted) and is only read through otherwise.
        """
        stored = self.content_sha256
        if not stored and require_hash:
            raise UserInputError(f"{self._where}: records no content_sha256, so its data cannot be verified")
        computed = compute_content_sha256(self._path)
        if stored and stored != computed:
            raise UserInputError(
                f"{self._where}: content hash mismatch (stored {stored[:12]}, computed {computed[:12]}); "
                "the data was modified or corrupted"
            )
        return computed

    def _read(self, name: str, selection: Any = ...) -> np.ndarray:
        with _reading(self._where, name):
            return np.asarray(self._root[name][selection])

    def _check_split(self, split: str) -> None:
        if split not in self._splits:
            raise UserInputError(f"{self._where}: no split {split!r}; splits: {', '.join(self._splits)}")

    def array(self, split: str, field: str) -> zarr.Array:
        """The lazy Zarr array ``[traj, time, *space]`` of one field, for slicing without loading it whole."""
        self._check_split(split)
        if field not in self._spec.fields:
            raise UserInputError(f"{self._where}: no field {field!r}; fields: {', '.join(self._spec.fields)}")
        return self._root[f"{split}/fields/{field}"]

    def fields(self, split: str) -> np.ndarray:
        """All fields of a split, float32 ``[traj, time, C, *space]`` with channels in ``spec.fields`` order."""
        self._check_split(split)
        return np.stack([self._read(f"{split}/fields/{f}") for f in self._spec.fields], axis=2)

    def params(self, split: str) -> np.ndarray:
        """float32 ``[traj, n_params]``, columns in ``spec.param_names`` order."""
        self._check_split(split)
        return self._read(f"{split}/params")

    def ids(self, split: str) -> np.ndarray:
        """int64 ``[traj]`` global trajectory ids."""
        self._check_split(split)
        return self._read(f"{split}/ids")

    def stats(self) -> dict[str, tuple[float, float]]:
        """Field → (mean, std) over (traj, time, space) of the train split."""
        return {
            f: (float(self._read(f"stats/{f}/mean")), float(self._read(f"stats/{f}/std"))) for f in self._spec.fields
        }

    def coords(self) -> dict[str, np.ndarray]:
        """Axis name (``x``, ``y``, ``z``, ``t``) → float64 coordinates."""
        axes = [*SPACE_AXES[: self._spec.ndim], "t"]
        return {axis: self._read(f"coords/{axis}") for axis in sorted(axes)}


def validate_store(path: str | Path) -> dict[str, Any]:
    """Check a store end to end; raise :class:`UserInputError` with one line naming the first problem found.

    Checks, in order: the path opens as a UPS store, with complete attributes and every expected array (coords, each
    split's fields, params and ids, stats) in the dtype and shape the spec, the time axis and the other arrays imply
    (:meth:`DatasetStore.open`); every chunk decodes; no NaN/Inf; ids unique and no trajectory (by id or by identical
    values) in two splits; the stats equal the train split's moments; the recomputed content hash equals the stored
    one.

    Returns:
        summary: ``task``, ``content_sha256``, ``splits`` (name → number of trajectories), ``n_frames``, ``grid_shape``.
    """
    store = DatasetStore.open(path)
    where = f"store {store.path}"
    spec = store.spec
    n_frames = store.root["coords/t"].shape[0]
    seen_ids: dict[int, str] = {}
    seen_traj: dict[bytes, tuple[str, int]] = {}
    summary_splits: dict[str, int] = {}
    for split in store.splits:
        ids = store.ids(split)
        n_traj = ids.shape[0]
        if not np.all(np.isfinite(store.params(split))):
            raise UserInputError(f"{where}: NaN/Inf in {split}/params")
        for traj_id in ids.tolist():
            if traj_id in seen_ids:
                other = seen_ids[traj_id]
                what = f"split {split}" if other == split else f"splits {other} and {split}"
                raise UserInputError(f"{where}: {what} share trajectory id {traj_id}")
            seen_ids[traj_id] = split
        # One pass over the field values: finiteness, and a per-trajectory digest to find identical trajectories.
        digests = [hashlib.sha256() for _ in range(n_traj)]
        for f in spec.fields:
            name = f"{split}/fields/{f}"
            for lo, block in zip(range(0, n_traj, _HASH_ROWS), _read_rows(store.root[name], where, name), strict=True):
                if not np.all(np.isfinite(block)):
                    raise UserInputError(f"{where}: NaN/Inf in {name}")
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

    computed = store.verify()
    return {
        "task": spec.task,
        "content_sha256": computed,
        "splits": summary_splits,
        "n_frames": n_frames,
        "grid_shape": spec.grid_shape,
    }
