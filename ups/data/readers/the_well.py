"""Lazy reader for The Well HDF5 files (Ohana et al., "The Well: a Large-Scale Collection of Diverse Physics
Simulations for Machine Learning", NeurIPS 2024 Datasets and Benchmarks).

Layout read (``@`` marks attributes)::

    @dataset_name, @n_spatial_dims, @grid_type ("cartesian"), @n_trajectories
    dimensions/        @spatial_dims = ["x", "y"]; time [T] (or [n_traj, T] when @sample_varying); x [X], y [Y]
    boundary_conditions/<name>/   @bc_type (PERIODIC | WALL | OPEN), @associated_dims, mask (bool, True on the edge)
    t0_fields/<f>      [n_traj, T, *S]          scalar fields   (@field_names lists them)
    t1_fields/<f>      [n_traj, T, *S, D]       vector fields → components f"{f}_{dim}" (velocity_x, velocity_y)
    t2_fields/<f>      [n_traj, T, *S, D, D]    tensor fields → components f"{f}_{dim}{dim}" (optional group)
    scalars/<p>        scalar or [n_traj]       parameters (time-varying scalars are not parameters and are skipped)

A field whose ``@sample_varying``, ``@time_varying`` or ``@dim_varying`` flags are False lacks that axis in the file
and is broadcast along it, as The Well's own loader does. Only ``cartesian`` grids with sample-invariant coordinates
are read; a sample-varying time axis must be the same for every trajectory (a store has one time axis).

Boundary conditions. Each edge of each axis gets the ``bc_type`` of the boundary group whose ``mask`` covers it
(OPEN when none does). ``TaskSpec.bc`` is one kind for the whole domain: ``periodic`` when every edge is PERIODIC;
otherwise, when any edge is a WALL, ``dirichlet`` with value 0 on the velocity components (a wall is no-penetration /
no-slip: the velocity vanishes there), or ``neumann`` (no flux) on every field when the data has no velocity;
otherwise (OPEN edges) ``none``. The per-axis kinds are kept in ``TaskSpec.extra["bc_axes"]``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ups.data.readers import AXES, GridSource, get_dataset, get_group, uniform_step
from ups.errors import UserInputError

BC_TYPES = ("PERIODIC", "WALL", "OPEN")
FIELD_GROUPS = ("t0_fields", "t1_fields", "t2_fields")


def _strings(value: Any) -> list[str]:
    """An HDF5 string or string-list attribute as a list of ``str``."""
    items = np.atleast_1d(np.asarray(value, dtype=object)).tolist()
    return [item.decode() if isinstance(item, bytes) else str(item) for item in items]


def _flag(node: h5py.HLObject, name: str, default: bool) -> bool:
    return bool(node.attrs.get(name, default))


class TheWellReader(GridSource):
    """A file of The Well, checked on open and read lazily by slices (layout in the module docstring)."""

    format = "the_well"

    def __init__(self, path: str | Path):
        super().__init__(path)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        root, where = self._file, self.where
        grid_type = _strings(root.attrs.get("grid_type", "cartesian"))[0]
        if grid_type != "cartesian":
            raise UserInputError(f"{where}: grid_type {grid_type!r} is not supported (only 'cartesian')")
        self.dataset_name = _strings(root.attrs.get("dataset_name", self.path.stem))[0]
        dims = get_group(root, "dimensions", where)
        if "spatial_dims" not in dims.attrs:
            raise UserInputError(f"{where}: group 'dimensions' lacks attribute 'spatial_dims'")
        self.spatial_dims = _strings(dims.attrs["spatial_dims"])
        ndim = len(self.spatial_dims)
        if "n_spatial_dims" in root.attrs and int(root.attrs["n_spatial_dims"]) != ndim:
            raise UserInputError(
                f"{where}: n_spatial_dims is {int(root.attrs['n_spatial_dims'])} but dimensions/spatial_dims "
                f"lists {ndim} ({', '.join(self.spatial_dims)})"
            )
        if not 1 <= ndim <= len(AXES):
            raise UserInputError(f"{where}: {ndim} spatial dimensions; UPS stores hold 1 to {len(AXES)}")
        space = []
        for name in self.spatial_dims:
            coord = get_dataset(dims, name, where)
            if _flag(coord, "sample_varying", False) or coord.ndim != 1:
                raise UserInputError(f"{where}: dimensions/{name} varies between trajectories; not supported")
            space.append(coord[...])
        self.grid_shape = tuple(len(c) for c in space)
        for axis, values in zip(self.spatial_dims, space, strict=True):
            uniform_step(values, f"dimensions/{axis}", where)
        time = get_dataset(dims, "time", where)
        t = time[...]
        if t.ndim == 2:  # sample-varying time axis: accept it only when it is the same for every trajectory
            if not np.allclose(t, t[:1], rtol=1e-6, atol=0.0):
                raise UserInputError(f"{where}: dimensions/time differs between trajectories; not supported")
            t = t[0]
        if t.ndim != 1:
            raise UserInputError(f"{where}: dimensions/time has shape {time.shape}; expected [T] or [n_traj, T]")
        self.n_frames = int(t.shape[0])
        if self.n_frames > 1:
            uniform_step(t, "dimensions/time", where)
        self.coords = {axis: np.asarray(c, dtype=np.float64) for axis, c in zip(AXES, space, strict=False)}
        self.coords["t"] = np.asarray(t, dtype=np.float64)

        self.n_traj = int(root.attrs["n_trajectories"]) if "n_trajectories" in root.attrs else -1
        self._sources: dict[str, tuple[h5py.Dataset, tuple[int, ...], bool, bool, tuple[bool, ...]]] = {}
        self.tensor_fields: dict[str, list[str]] = {}
        self.constant_fields: list[str] = []
        for order, group_name in enumerate(FIELD_GROUPS):
            if group_name not in root and group_name == "t2_fields":
                continue
            self._open_fields(get_group(root, group_name, where), order)
        if not self._sources:
            raise UserInputError(f"{where}: no fields in {', '.join(FIELD_GROUPS)}")
        if self.n_traj < 0:
            raise UserInputError(f"{where}: no attribute n_trajectories and no field varies between trajectories")
        self.field_names = tuple(self._sources)
        self.layout = "the_well"
        self._open_scalars()
        self.bc_axes = self._open_bcs(get_group(root, "boundary_conditions", where))

    def _open_fields(self, group: h5py.Group, order: int) -> None:
        where = self.where
        names = _strings(group.attrs["field_names"]) if "field_names" in group.attrs else sorted(group)
        ndim = len(self.spatial_dims)
        for name in names:
            ds = get_dataset(group, name, where)
            sample_varying = _flag(ds, "sample_varying", True)
            time_varying = _flag(ds, "time_varying", True)
            dim_varying = tuple(bool(v) for v in np.atleast_1d(ds.attrs.get("dim_varying", [True] * ndim)))
            if len(dim_varying) != ndim:
                raise UserInputError(
                    f"{where}: {group.name.lstrip('/')}/{name} has {len(dim_varying)} dim_varying "
                    f"flags for {ndim} spatial dimensions"
                )
            if sample_varying and self.n_traj < 0:
                self.n_traj = int(ds.shape[0]) if ds.ndim else 0
            expected = (
                ([self.n_traj] if sample_varying else [])
                + ([self.n_frames] if time_varying else [])
                + [n for n, varying in zip(self.grid_shape, dim_varying, strict=True) if varying]
                + [ndim] * order
            )
            if ds.shape != tuple(expected):
                axes = (["traj"] if sample_varying else []) + (["time"] if time_varying else [])
                axes += [d for d, varying in zip(self.spatial_dims, dim_varying, strict=True) if varying]
                axes += ["component"] * order
                raise UserInputError(
                    f"{where}: dataset '{group.name.lstrip('/')}/{name}' has shape {ds.shape}; expected "
                    f"{tuple(expected)} [{', '.join(axes)}]"
                )
            components = list(itertools.product(range(ndim), repeat=order))
            labels = ["".join(self.spatial_dims[i] for i in comp) for comp in components]
            out_names = [f"{name}_{label}" if label else name for label in labels]
            for out_name, comp in zip(out_names, components, strict=True):
                if out_name in self._sources:
                    raise UserInputError(f"{where}: field name {out_name!r} appears twice")
                self._sources[out_name] = (ds, comp, sample_varying, time_varying, dim_varying)
            if order:
                self.tensor_fields[name] = out_names
            if not time_varying:
                self.constant_fields += out_names

    def _open_scalars(self) -> None:
        """Parameters: the time-invariant numeric scalars, one value per file or one per trajectory."""
        self.skipped_scalars: list[str] = []
        group = self._file.get("scalars")
        if not isinstance(group, h5py.Group):
            self._params = np.zeros((self.n_traj, 0))
            return
        names = _strings(group.attrs["field_names"]) if "field_names" in group.attrs else sorted(group)
        columns, param_names = [], []
        for name in names:
            ds = get_dataset(group, name, self.where)
            if _flag(ds, "time_varying", False) or not np.issubdtype(ds.dtype, np.number):
                self.skipped_scalars.append(name)
                continue
            values = np.asarray(ds[...], dtype=np.float64).reshape(-1)
            if _flag(ds, "sample_varying", False):
                if values.shape[0] != self.n_traj:
                    raise UserInputError(
                        f"{self.where}: dataset 'scalars/{name}' has {values.shape[0]} values for {self.n_traj} "
                        "trajectories"
                    )
            elif values.shape[0] == 1:
                values = np.full(self.n_traj, values[0])
            else:
                raise UserInputError(f"{self.where}: dataset 'scalars/{name}' has shape {ds.shape}; expected one value")
            columns.append(values)
            param_names.append(name)
        self.param_names = tuple(param_names)
        self._params = np.stack(columns, axis=1) if columns else np.zeros((self.n_traj, 0))

    def _open_bcs(self, group: h5py.Group) -> dict[str, str]:
        """Per-axis boundary kind, ``"PERIODIC"`` or ``"WALL/OPEN"`` when the two edges differ."""
        edges = {dim: ["OPEN", "OPEN"] for dim in self.spatial_dims}
        for name, bc in group.items():
            where = f"{self.where}: boundary_conditions/{name}"
            if not isinstance(bc, h5py.Group):
                raise UserInputError(f"{where} is not a group")
            if "bc_type" not in bc.attrs:
                raise UserInputError(f"{where} lacks attribute 'bc_type'")
            kind = _strings(bc.attrs["bc_type"])[0].upper()
            if kind not in BC_TYPES:
                raise UserInputError(f"{where}: bc_type {kind!r} is not one of {', '.join(BC_TYPES)}")
            dims = _strings(bc.attrs.get("associated_dims", self.spatial_dims))
            mask = bc["mask"][...].astype(bool) if isinstance(bc.get("mask"), h5py.Dataset) else None
            if mask is not None:  # leading sample/time axes of a varying mask: an edge counts where any of them does
                mask = mask.reshape(-1, *mask.shape[mask.ndim - len(dims) :]).any(axis=0)
            for j, dim in enumerate(dims):
                if dim not in edges:
                    raise UserInputError(f"{where}: associated dim {dim!r} is not one of {self.spatial_dims}")
                for side, index in enumerate((0, -1)):
                    # The Well's rule: a wall must cover the whole edge; periodic or open wins if on any part of it.
                    covered = True if mask is None else (np.all if kind == "WALL" else np.any)(np.take(mask, index, j))
                    if covered:
                        edges[dim][side] = kind
        return {dim: lo if lo == hi else f"{lo}/{hi}" for dim, (lo, hi) in edges.items()}

    # ---- reading -----------------------------------------------------------------------------------------------
    def _read_run(self, field: str, first: int, stop: int, time: slice, out: np.ndarray) -> None:
        ds, comp, sample_varying, time_varying, dim_varying = self._sources[field]
        if sample_varying and time_varying and all(dim_varying):
            ds.read_direct(out, (slice(first, stop), time, Ellipsis, *comp))
            return
        # A field missing some axes in the file: read what is stored, then broadcast along the missing axes.
        sel = ([slice(first, stop)] if sample_varying else []) + ([time] if time_varying else [])
        src = ds[(*sel, *[slice(None)] * sum(dim_varying), *comp)]
        if not sample_varying:
            src = src[None]
        if not time_varying:
            src = src[:, None]
        for axis, varying in enumerate(dim_varying):
            if not varying:
                src = np.expand_dims(src, 2 + axis)
        out[...] = src

    def spec_hints(self) -> dict[str, Any]:
        kinds = {kind for axis_kind in self.bc_axes.values() for kind in axis_kind.split("/")}
        velocity = tuple(self.tensor_fields.get("velocity", ()))
        hints: dict[str, Any] = {"velocity": velocity}
        if kinds == {"PERIODIC"}:
            hints["bc"] = "periodic"
        elif "WALL" in kinds:
            hints.update({"bc": "dirichlet", "bc_fields": velocity} if velocity else {"bc": "neumann"})
        else:
            hints["bc"] = "none"
        hints["extra"] = {"bc_axes": dict(self.bc_axes), "spatial_dims": list(self.spatial_dims)}
        return hints

    def describe(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "dataset_name": self.dataset_name,
            "bc_axes": dict(self.bc_axes),
            "constant_fields": list(self.constant_fields),
            "skipped_scalars": list(self.skipped_scalars),
        }
