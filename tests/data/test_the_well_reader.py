"""The Well reader: files written here in The Well's layout (dimensions/, boundary_conditions/, t0/t1/t2_fields/,
scalars/), vector and tensor fields split into components, boundary types mapped to TaskSpec.bc, non-varying fields
broadcast, a round trip into a store, and malformed files named with what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from ups.data.readers.convert import convert
from ups.data.readers.the_well import TheWellReader
from ups.data.store import DatasetStore, validate_store
from ups.errors import UserInputError

N_TRAJ, N_T, SHAPE = 5, 4, (8, 6)


def _flags(ds: h5py.Dataset, sample: bool = True, time: bool = True, dims: tuple[bool, ...] = (True, True)) -> None:
    ds.attrs.update({"sample_varying": sample, "time_varying": time, "dim_varying": list(dims)})


def write_well(
    path: Path, bcs: dict[str, str] | None = None, velocity: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """A 2D file of The Well; returns the expected store fields, component by component, [N, T, X, Y]."""
    rng = np.random.default_rng(seed)
    bcs = {"x": "PERIODIC", "y": "WALL"} if bcs is None else bcs
    truth = {}
    with h5py.File(path, "w") as f:
        f.attrs.update(
            {"dataset_name": "toy_flow", "grid_type": "cartesian", "n_spatial_dims": 2, "n_trajectories": N_TRAJ}
        )
        f.attrs["simulation_parameters"] = ["Ra"]
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        dims["time"] = np.arange(N_T, dtype=np.float32) * 0.25
        dims["time"].attrs.update({"sample_varying": False, "time_varying": True})
        for name, n, length in zip(("x", "y"), SHAPE, (2.0, 1.0), strict=True):
            dims[name] = (np.arange(n) * length / n).astype(np.float32)
            dims[name].attrs.update({"sample_varying": False, "time_varying": False})
        group = f.create_group("boundary_conditions")
        for dim, kind in bcs.items():
            bc = group.create_group(f"{dim}_{kind.lower()}")
            bc.attrs.update({"bc_type": kind, "associated_dims": [dim], "associated_fields": []})
            bc.attrs.update({"sample_varying": False, "time_varying": False})
            mask = np.zeros(SHAPE["xy".index(dim)], dtype=bool)
            mask[[0, -1]] = True
            bc["mask"], bc["values"] = mask, np.zeros(2, np.float32)
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["buoyancy", "pressure"]
        for name in ("buoyancy", "pressure"):
            truth[name] = rng.normal(size=(N_TRAJ, N_T, *SHAPE)).astype(np.float32)
            t0[name] = truth[name]
            _flags(t0[name])
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"] if velocity else []
        if velocity:
            vel = rng.normal(size=(N_TRAJ, N_T, *SHAPE, 2)).astype(np.float32)
            t1["velocity"] = vel
            _flags(t1["velocity"])
            truth |= {"velocity_x": vel[..., 0], "velocity_y": vel[..., 1]}
        t2 = f.create_group("t2_fields")
        t2.attrs["field_names"] = ["stress"]
        stress = rng.normal(size=(N_TRAJ, N_T, *SHAPE, 2, 2)).astype(np.float32)
        t2["stress"] = stress
        _flags(t2["stress"])
        truth |= {f"stress_{a}{b}": stress[..., i, j] for i, a in enumerate("xy") for j, b in enumerate("xy")}
        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = ["Ra", "Pr", "energy"]
        scalars["Ra"] = np.float32(1e6)
        scalars["Ra"].attrs.update({"sample_varying": False, "time_varying": False})
        scalars["Pr"] = np.arange(N_TRAJ, dtype=np.float32) + 0.5
        scalars["Pr"].attrs.update({"sample_varying": True, "time_varying": False})
        scalars["energy"] = np.ones(N_T, np.float32)  # time-varying: not a parameter
        scalars["energy"].attrs.update({"sample_varying": False, "time_varying": True})
    return truth


def test_reader_splits_vector_and_tensor_fields_into_components(tmp_path):
    truth = write_well(tmp_path / "toy_flow_00.hdf5")
    with TheWellReader(tmp_path / "toy_flow_00.hdf5") as reader:
        assert reader.field_names == tuple(truth)
        assert reader.field_names[:4] == ("buoyancy", "pressure", "velocity_x", "velocity_y")
        assert (reader.n_traj, reader.n_frames, reader.grid_shape) == (N_TRAJ, N_T, SHAPE)
        assert reader.param_names == ("Ra", "Pr")
        np.testing.assert_allclose(reader.params(), np.c_[np.full(N_TRAJ, 1e6), np.arange(N_TRAJ) + 0.5])
        got = reader.read([4, 1, 2], time=slice(1, None, 2))
        for name, values in truth.items():
            np.testing.assert_array_equal(got[name], values[[4, 1, 2], 1::2])
        assert reader.describe()["skipped_scalars"] == ["energy"]


def test_the_well_round_trips_into_a_store(tmp_path):
    truth = write_well(tmp_path / "toy_flow_00.hdf5")
    convert(
        "the_well", [tmp_path / "toy_flow_00.hdf5"], tmp_path / "s.zarr", "toy_flow", splits={"train": 0.6, "test": 0.4}
    )
    validate_store(tmp_path / "s.zarr")
    store = DatasetStore.open(tmp_path / "s.zarr")
    for split in store.splits:
        ids, fields = store.ids(split), store.fields(split)
        for c, name in enumerate(store.spec.fields):
            np.testing.assert_array_equal(fields[:, :, c], truth[name][ids])
        np.testing.assert_allclose(store.params(split)[:, 1], ids + 0.5)
    spec = store.spec
    assert spec.domain == pytest.approx((2.0, 1.0)) and spec.dt == pytest.approx(0.25)
    assert spec.velocity == ("velocity_x", "velocity_y")
    assert (spec.bc, spec.bc_fields) == ("dirichlet", ("velocity_x", "velocity_y"))  # y walls: no-slip velocity
    assert spec.extra["bc_axes"] == {"x": "PERIODIC", "y": "WALL"}
    assert store.attrs["solver_config"]["sources"][0]["dataset_name"] == "toy_flow"


@pytest.mark.parametrize(
    ("bcs", "velocity", "bc", "bc_fields"),
    [
        ({"x": "PERIODIC", "y": "PERIODIC"}, True, "periodic", ()),
        ({"x": "periodic", "y": "periodic"}, True, "periodic", ()),  # the spec writes lower case
        ({"x": "PERIODIC", "y": "WALL"}, True, "dirichlet", ("velocity_x", "velocity_y")),
        ({"x": "WALL", "y": "WALL"}, False, "neumann", ()),
        ({"x": "PERIODIC", "y": "OPEN"}, True, "none", ()),
        ({"x": "PERIODIC"}, True, "none", ()),  # an edge no boundary group covers is open
    ],
    ids=["periodic", "lower-case", "wall-velocity", "wall-no-velocity", "open", "uncovered"],
)
def test_boundary_types_map_to_task_spec_bc(tmp_path, bcs, velocity, bc, bc_fields):
    write_well(tmp_path / "f.hdf5", bcs=bcs, velocity=velocity)
    with TheWellReader(tmp_path / "f.hdf5") as reader:
        hints = reader.spec_hints()
    assert hints["bc"] == bc and tuple(hints.get("bc_fields", ())) == bc_fields


def test_fields_missing_axes_are_broadcast(tmp_path):
    path = tmp_path / "f.hdf5"
    write_well(path)
    rng = np.random.default_rng(1)
    static, profile, shared = (
        rng.normal(size=s).astype(np.float32) for s in [(N_TRAJ, *SHAPE), (N_TRAJ, N_T, 8), SHAPE]
    )
    with h5py.File(path, "a") as f:
        t0 = f["t0_fields"]
        t0.attrs["field_names"] = ["buoyancy", "pressure", "obstacle", "profile", "shared"]
        t0["obstacle"], t0["profile"], t0["shared"] = static, profile, shared
        _flags(t0["obstacle"], time=False)
        _flags(t0["profile"], dims=(True, False))
        _flags(t0["shared"], sample=False, time=False)
    with TheWellReader(path) as reader:
        got = reader.read([3, 0], time=slice(0, 3))
        assert reader.constant_fields == ["obstacle", "shared"]
    np.testing.assert_array_equal(got["obstacle"], np.broadcast_to(static[[3, 0], None], (2, 3, *SHAPE)))
    np.testing.assert_array_equal(got["profile"], np.broadcast_to(profile[[3, 0], :3, :, None], (2, 3, *SHAPE)))
    np.testing.assert_array_equal(got["shared"], np.broadcast_to(shared, (2, 3, *SHAPE)))


def _del(name: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


def _wrong_velocity(f: h5py.File) -> None:
    del f["t1_fields/velocity"]
    f["t1_fields/velocity"] = np.zeros((N_TRAJ, N_T, *SHAPE, 3), np.float32)


def _bad_bc(f: h5py.File) -> None:
    f["boundary_conditions/y_wall"].attrs["bc_type"] = "SLIPPERY"


def _ndims(f: h5py.File) -> None:
    f.attrs["n_spatial_dims"] = 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_del("dimensions"), "missing group 'dimensions'"),
        (_del("dimensions/time"), "missing dataset 'time' in group 'dimensions'"),
        (_del("t0_fields"), "missing group 't0_fields'"),
        (_del("t1_fields/velocity"), "missing dataset 'velocity' in group 't1_fields'"),
        (_del("boundary_conditions"), "missing group 'boundary_conditions'"),
        (_wrong_velocity, r"'t1_fields/velocity' has shape \(5, 4, 8, 6, 3\); expected \(5, 4, 8, 6, 2\)"),
        (_bad_bc, "bc_type 'SLIPPERY' is not one of PERIODIC, WALL, OPEN"),
        (_ndims, "n_spatial_dims is 3 but dimensions/spatial_dims lists 2"),
    ],
    ids=["no-dimensions", "no-time", "no-t0", "no-velocity", "no-bcs", "velocity-shape", "bc-type", "ndims"],
)
def test_malformed_file_names_file_and_problem(tmp_path, edit, message):
    path = tmp_path / "bad.hdf5"
    write_well(path)
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(UserInputError, match=f"input {re.escape(str(path))}: .*{message}"):
        TheWellReader(path)
