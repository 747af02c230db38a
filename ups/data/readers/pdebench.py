"""Lazy reader for PDEBench HDF5 files (Takamoto et al., "PDEBench: An Extensive Benchmark for Scientific Machine
Learning", NeurIPS 2022 Datasets and Benchmarks).

Three layouts, told apart by what the root holds:

``tensor`` (1D Advection, Burgers, Reaction–Diffusion):
    ``tensor`` [N, T, X]; ``x-coordinate`` [X]; ``t-coordinate`` [T+1] or [T]; PDE parameters as root attributes
    (``beta``, ``Nu``, ``rho``, ...). One field, ``u``.
``cfd`` (1D/2D/3D compressible Navier–Stokes):
    ``density``, ``pressure``, ``Vx`` [, ``Vy`` [, ``Vz``]] each [N, T, *S]; ``x-coordinate`` [, ``y-coordinate``
    [, ``z-coordinate``]]; ``t-coordinate``; root attributes ``eta``, ``zeta`` [, ``M``].
``per_seed`` (2D Diffusion–Reaction, shallow water, 1D diffusion–sorption):
    one group per trajectory (``0000``, ``0001``, ... sorted by name), each with ``data`` [T, *S, C] and
    ``grid/x`` [, ``grid/y`` [, ``grid/z``]], ``grid/t``. Channels are named ``u`` (one channel) or ``u0``, ``u1``, ...

``t-coordinate`` (``grid/t``) may hold one entry more than the stored frames (PDEBench's simulators store the end
time of the last step); the first T entries are used. Coordinates must be uniform. The steady Darcy files
(``tensor`` [N, 1, X, Y] with ``nu``) are not supported. PDEBench files do not record their boundary condition, so
the reader reports ``none``; pass it to the converter (``--bc``) when you know it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ups.data.readers import AXES, GridSource, get_dataset, get_group, numeric_attrs, uniform_step
from ups.errors import UserInputError

CFD_FIELDS = ("density", "pressure", "Vx", "Vy", "Vz")
_VELOCITY = ("Vx", "Vy", "Vz")


class PDEBenchReader(GridSource):
    """A PDEBench file, checked on open and read lazily by slices (see the module docstring for the layouts)."""

    format = "pdebench"

    def __init__(self, path: str | Path):
        super().__init__(path)
        root = self._file
        try:
            if "tensor" in root:
                self._open_arrays(["tensor"], names=("u",), layout="tensor")
            elif any(name in root for name in CFD_FIELDS):
                self._open_cfd()
            elif any(isinstance(node, h5py.Group) for node in root.values()):
                self._open_per_seed()
            else:
                raise UserInputError(
                    f"{self.where}: not a PDEBench file (no dataset 'tensor', no CFD datasets "
                    f"{'/'.join(CFD_FIELDS[:3])}, no per-seed groups '0000', ...)"
                )
        except BaseException:
            self.close()
            raise

    # ---- layouts -----------------------------------------------------------------------------------------------
    def _space_coords(self) -> list[np.ndarray]:
        """``x-coordinate`` (required) then ``y-``/``z-coordinate`` while present, in axis order."""
        coords = [get_dataset(self._file, "x-coordinate", self.where)[...]]
        for axis in AXES[1:]:
            if f"{axis}-coordinate" not in self._file:
                break
            coords.append(get_dataset(self._file, f"{axis}-coordinate", self.where)[...])
        return coords

    def _open_cfd(self) -> None:
        ndim = len(self._space_coords())
        required = ["density", "pressure", *_VELOCITY[:ndim]]
        self._open_arrays(required, names=tuple(required), layout="cfd")

    def _open_arrays(self, datasets: list[str], names: tuple[str, ...], layout: str) -> None:
        """Layouts with one dataset [N, T, *S] per field and root-level coordinates."""
        root, where = self._file, self.where
        arrays = [get_dataset(root, name, where) for name in datasets]
        if datasets == ["tensor"] and "nu" in root:
            raise UserInputError(f"{where}: steady Darcy files (tensor with nu) are not supported; only rollouts")
        space = self._space_coords()
        axes = ", ".join(f"{a}-coordinate" for a in AXES[: len(space)])
        for name, arr in zip(datasets, arrays, strict=True):
            if arr.ndim != 2 + len(space):
                raise UserInputError(
                    f"{where}: dataset '{name}' has rank {arr.ndim} (shape {arr.shape}); expected rank "
                    f"{2 + len(space)}: [trajectories, time, {axes}]"
                )
        n_traj, n_frames = arrays[0].shape[:2]
        expected = (n_traj, n_frames, *(len(c) for c in space))
        for name, arr in zip(datasets, arrays, strict=True):
            if arr.shape != expected:
                raise UserInputError(
                    f"{where}: dataset '{name}' has shape {arr.shape}; expected {expected} "
                    f"(as '{datasets[0]}' and [{axes}])"
                )
        t = get_dataset(root, "t-coordinate", where)[...]
        self._set_grid(space, t, n_frames, "t-coordinate")
        self._arrays = dict(zip(names, arrays, strict=True))
        self.layout = layout
        self.field_names, self.n_traj = names, int(n_traj)
        attrs = numeric_attrs(root.attrs)
        self.param_names = tuple(attrs)
        self._params = np.tile(np.array([list(attrs.values())], dtype=np.float64), (self.n_traj, 1))
        if not attrs:
            self._params = np.zeros((self.n_traj, 0))

    def _open_per_seed(self) -> None:
        root, where = self._file, self.where
        names = sorted(name for name, node in root.items() if isinstance(node, h5py.Group))
        first = get_group(root, names[0], where)
        data = get_dataset(first, "data", where)
        if data.ndim not in (3, 4, 5):
            raise UserInputError(
                f"{where}: dataset '{names[0]}/data' has rank {data.ndim} (shape {data.shape}); expected "
                "[time, x, channel], [time, x, y, channel] or [time, x, y, z, channel]"
            )
        ndim = data.ndim - 2
        grid = get_group(first, "grid", where)
        space = [get_dataset(grid, axis, where)[...] for axis in AXES[:ndim]]
        expected_space = tuple(len(c) for c in space)
        if data.shape[1:-1] != expected_space:
            raise UserInputError(
                f"{where}: dataset '{names[0]}/data' has shape {data.shape}; expected [time, "
                f"{', '.join(map(str, expected_space))}, channel] from grid/{'/'.join(AXES[:ndim])}"
            )
        self._set_grid(space, get_dataset(grid, "t", where)[...], data.shape[0], f"{names[0]}/grid/t")
        self._seeds = []
        for name in names:
            seed_data = get_dataset(get_group(root, name, where), "data", where)
            if seed_data.shape != data.shape:
                raise UserInputError(
                    f"{where}: dataset '{name}/data' has shape {seed_data.shape}; expected {data.shape} "
                    f"(as '{names[0]}/data')"
                )
            self._seeds.append(seed_data)
        n_channels = data.shape[-1]
        self.field_names = ("u",) if n_channels == 1 else tuple(f"u{c}" for c in range(n_channels))
        self.layout, self.n_traj = "per_seed", len(names)
        self._params = np.zeros((self.n_traj, 0))
        self._seed_names = names

    def _set_grid(self, space: list[np.ndarray], t: np.ndarray, n_frames: int, t_name: str) -> None:
        where = self.where
        for axis, values in zip(AXES, space, strict=False):
            uniform_step(values, f"{axis}-coordinate", where)
        if t.ndim != 1 or t.shape[0] not in (n_frames, n_frames + 1):
            raise UserInputError(
                f"{where}: '{t_name}' has shape {t.shape}; expected [{n_frames}] or [{n_frames + 1}] "
                f"for {n_frames} stored frames"
            )
        t = t[:n_frames]
        if n_frames > 1:
            uniform_step(t, t_name, where)
        self.n_frames = int(n_frames)
        self.grid_shape = tuple(int(len(c)) for c in space)
        self.coords = {axis: np.asarray(c, dtype=np.float64) for axis, c in zip(AXES, space, strict=False)}
        self.coords["t"] = np.asarray(t, dtype=np.float64)

    # ---- reading -----------------------------------------------------------------------------------------------
    def _read_run(self, field: str, first: int, stop: int, time: slice, out: np.ndarray) -> None:
        if self.layout == "per_seed":
            channel = self.field_names.index(field)
            for k in range(first, stop):
                self._seeds[k].read_direct(out[k - first], np.s_[time, ..., channel])
        else:
            self._arrays[field].read_direct(out, np.s_[first:stop, time])

    def spec_hints(self) -> dict[str, Any]:
        if self.layout == "cfd":
            # Compressible flow: the velocity components are Vx, Vy, Vz; density marks shocks.
            return {"velocity": tuple(v for v in _VELOCITY if v in self.field_names), "shock_field": "density"}
        return {}

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"layout": self.layout}
        if self.layout == "per_seed":
            info["groups"] = [self._seed_names[0], self._seed_names[-1]]
        else:
            info["attrs"] = numeric_attrs(self._file.attrs)
        return info
