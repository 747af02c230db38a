"""Lazy readers for external HDF5 datasets, and what they share.

A reader opens one HDF5 file, checks its layout once (a missing dataset or group, a wrong rank or a shape that does
not match the coordinates is a one-line :class:`~ups.errors.UserInputError` naming the file and what is wrong), and
then reads only the slices it is asked for: :meth:`GridSource.read` fills freshly allocated float32 arrays
``[traj, time, *space]`` through ``h5py.Dataset.read_direct``, so no intermediate copy of the file ever exists, and
:meth:`GridSource.iter_blocks` walks a list of trajectories in blocks of at most ``max_bytes``.

Readers: :class:`ups.data.readers.pdebench.PDEBenchReader` (PDEBench, Takamoto et al. 2022) and
:class:`ups.data.readers.the_well.TheWellReader` (The Well, Ohana et al. 2024). :mod:`ups.data.readers.convert` turns
either into a UPS store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from ups.errors import UserInputError

#: Store coordinate names of the spatial axes, in axis order (the store's ``coords/x``, ``coords/y``, ``coords/z``).
AXES = ("x", "y", "z")
TrajIndex = slice | Sequence[int] | np.ndarray


def open_hdf5(path: str | Path) -> h5py.File:
    """Open ``path`` read-only; a missing path or a file that is not HDF5 is a one-line :class:`UserInputError`."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"input {path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise UserInputError(f"input {path}: not an HDF5 file") from None


def get_dataset(group: h5py.Group, name: str, where: str) -> h5py.Dataset:
    """``group[name]`` as a dataset, or a :class:`UserInputError` naming ``where`` and what is missing."""
    node = group.get(name)
    if not isinstance(node, h5py.Dataset):
        what = "is not a dataset" if node is not None else "missing dataset"
        inside = "" if group.name == "/" else f" in group '{group.name.lstrip('/')}'"
        raise UserInputError(f"{where}: {what} '{name}'{inside}")
    return node


def get_group(group: h5py.Group, name: str, where: str) -> h5py.Group:
    """``group[name]`` as a group, or a :class:`UserInputError` naming ``where`` and what is missing."""
    node = group.get(name)
    if not isinstance(node, h5py.Group):
        what = "is not a group" if node is not None else "missing group"
        raise UserInputError(f"{where}: {what} '{name}'")
    return node


def uniform_step(values: np.ndarray, what: str, where: str) -> float:
    """The constant step of a 1-D coordinate array; a non-uniform or too short axis is a :class:`UserInputError`.

    The tolerance (1e-3 of the step) admits float32-rounded coordinates, as PDEBench and The Well store them.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.shape[0] < 2:
        raise UserInputError(f"{where}: {what} needs at least 2 values, got shape {values.shape}")
    steps = np.diff(values)
    step = float(steps.mean())
    if step <= 0 or not np.allclose(steps, step, rtol=1e-3, atol=0.0):
        span = f"{steps.min():.6g}..{steps.max():.6g}"
        raise UserInputError(f"{where}: {what} is not uniform and increasing (steps {span})")
    return step


def traj_runs(indices: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """Split trajectory indices into runs of consecutive values: yields ``(position, first, stop)``.

    ``indices[position : position + stop - first] == range(first, stop)``; one HDF5 read serves each run.
    """
    pos = 0
    while pos < len(indices):
        end = pos + 1
        while end < len(indices) and indices[end] == indices[end - 1] + 1:
            end += 1
        yield pos, int(indices[pos]), int(indices[end - 1]) + 1
        pos = end


class GridSource(ABC):
    """One external file holding trajectories on a uniform grid, read lazily.

    Subclasses check the layout in ``__init__`` and set the attributes below; :meth:`_read_run` fills one run of
    consecutive trajectories of one field.

    Attributes:
        path: the file.
        layout: which layout of the format the file has (e.g. ``"tensor"``, ``"cfd"``, ``"per_seed"``).
        field_names: the fields (channels) the reader serves, in store order.
        n_traj: number of trajectories.
        n_frames: number of stored time frames.
        grid_shape: cells along each spatial axis.
        coords: ``x``[, ``y``, ``z``] and ``t`` → float64 coordinates (``t`` has ``n_frames`` entries).
        param_names: names of the per-trajectory parameters returned by :meth:`params`.
    """

    format: str = ""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.layout = ""
        self.field_names: tuple[str, ...] = ()
        self.n_traj = 0
        self.n_frames = 0
        self.grid_shape: tuple[int, ...] = ()
        self.coords: dict[str, np.ndarray] = {}
        self.param_names: tuple[str, ...] = ()
        self._params = np.zeros((0, 0))
        self._file = open_hdf5(self.path)

    # ---- description -------------------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """Prefix of every error message about this file."""
        return f"input {self.path}"

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Field → shape ``(n_traj, n_frames, *grid_shape)`` of what :meth:`read` serves for all trajectories."""
        return {name: (self.n_traj, self.n_frames, *self.grid_shape) for name in self.field_names}

    @property
    def traj_nbytes(self) -> int:
        """Bytes of one trajectory of one field, as float32."""
        return 4 * self.n_frames * int(np.prod(self.grid_shape, dtype=np.int64))

    def params(self) -> np.ndarray:
        """float64 ``[n_traj, n_params]``, columns in :attr:`param_names` order."""
        return self._params

    def spec_hints(self) -> dict[str, Any]:
        """TaskSpec keyword arguments the file implies (``bc``, ``bc_fields``, ``velocity``, ``shock_field``, ...).

        ``bc`` is absent when the file does not record its boundary condition."""
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-safe facts about the source, recorded in the store's ``solver_config``."""
        return {"layout": self.layout}

    # ---- reading -----------------------------------------------------------------------------------------------
    def read(
        self, traj: TrajIndex, time: slice = slice(None), fields: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Read some trajectories, touching only those slices of the file.

        Args:
            traj: a slice, or trajectory indices in any order (consecutive runs are read in one call each).
            time: frames to read (a slice with a positive step).
            fields: fields to read; default all, in :attr:`field_names` order.

        Returns:
            field → float32 ``[len(traj), n_time, *grid_shape]``.
        """
        indices = self._indices(traj)
        if time.step is not None and time.step <= 0:
            raise ValueError(f"time slice needs a positive step, got {time}")
        n_time = len(range(*time.indices(self.n_frames)))
        out = {}
        for name in self.field_names if fields is None else fields:
            if name not in self.field_names:
                raise KeyError(f"{self.where}: no field {name!r}; fields: {', '.join(self.field_names)}")
            arr = np.empty((len(indices), n_time, *self.grid_shape), dtype=np.float32)
            if n_time:
                for pos, first, stop in traj_runs(indices):
                    self._read_run(name, first, stop, time, arr[pos : pos + stop - first])
            out[name] = arr
        return out

    def iter_blocks(self, field: str, traj: TrajIndex, max_bytes: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(position, block)``: ``block`` is field ``[n, n_frames, *grid_shape]`` of ``traj[position:
        position + n]``, with ``n`` as large as fits in ``max_bytes`` (at least one trajectory)."""
        indices = self._indices(traj)
        per_block = max(1, int(max_bytes) // self.traj_nbytes)
        for pos in range(0, len(indices), per_block):
            yield pos, self.read(indices[pos : pos + per_block], fields=[field])[field]

    def _indices(self, traj: TrajIndex) -> np.ndarray:
        if isinstance(traj, slice):
            return np.arange(self.n_traj)[traj]
        indices = np.asarray(traj, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_traj):
            raise IndexError(f"{self.where}: trajectory index out of range 0..{self.n_traj - 1}")
        return indices

    @abstractmethod
    def _read_run(self, field: str, first: int, stop: int, time: slice, out: np.ndarray) -> None:
        """Fill ``out`` (float32 ``[stop - first, n_time, *grid_shape]``, C-contiguous) with trajectories
        ``first..stop-1`` of ``field`` at frames ``time``."""

    # ---- lifetime ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> GridSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, layout={self.layout!r}, n_traj={self.n_traj}, "
            f"n_frames={self.n_frames}, grid_shape={self.grid_shape}, fields={self.field_names})"
        )


def numeric_attrs(attrs: h5py.AttributeManager) -> dict[str, float]:
    """The real scalar attributes (ints and floats, not booleans or strings), by name."""
    out = {}
    for key in sorted(attrs):
        value = attrs[key]
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(()).item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


__all__ = [
    "AXES",
    "GridSource",
    "get_dataset",
    "get_group",
    "numeric_attrs",
    "open_hdf5",
    "traj_runs",
    "uniform_step",
]
