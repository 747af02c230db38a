"""PDEBench reader: the three real layouts (1D tensor, CFD arrays, per-seed groups), written here with h5py, read
lazily and converted into a store that gives back the same values; malformed files name the file and what is wrong."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from ups.data.readers.convert import convert
from ups.data.readers.pdebench import PDEBenchReader
from ups.data.store import DatasetStore, validate_store
from ups.errors import UserInputError


def centres(n: int, length: float = 1.0) -> np.ndarray:
    return (np.arange(n) + 0.5) * length / n


def write_tensor_1d(path: Path, u: np.ndarray, attrs: dict | None = None, extra_t: bool = True) -> Path:
    """PDEBench 1D file (Advection/Burgers/ReacDiff): tensor [N, T, X], coordinates, parameters as root attrs."""
    n_frames, n_x = u.shape[1:]
    with h5py.File(path, "w") as f:
        f["tensor"] = u
        f["x-coordinate"] = centres(n_x).astype(np.float32)
        f["t-coordinate"] = (np.arange(n_frames + extra_t) * 0.05).astype(np.float32)
        f.attrs.update({"Nu": 0.01} if attrs is None else attrs)
    return path


def write_cfd(path: Path, fields: dict[str, np.ndarray]) -> Path:
    """PDEBench CFD file: density, pressure, Vx[, Vy, Vz] [N, T, *S], coordinates, attrs eta/zeta/M."""
    shape = next(iter(fields.values())).shape
    with h5py.File(path, "w") as f:
        for name, data in fields.items():
            f[name] = data
        for axis, n in zip("xyz", shape[2:], strict=False):
            f[f"{axis}-coordinate"] = centres(n, 2.0)
        f["t-coordinate"] = np.arange(shape[1] + 1) * 0.05
        f.attrs.update({"eta": 0.1, "zeta": 0.1, "M": 1.0})
    return path


def write_per_seed(path: Path, data: list[np.ndarray]) -> Path:
    """PDEBench per-seed file (2D diff-react, SWE, diff-sorp): groups 0000, 0001, ... each with data [T, *S, C]."""
    with h5py.File(path, "w") as f:
        for k, d in enumerate(data):
            g = f.create_group(f"{k:04d}")
            g["data"] = d
            for axis, n in zip("xyz", d.shape[1:-1], strict=False):
                g[f"grid/{axis}"] = np.linspace(-1, 1, n)
            g["grid/t"] = np.arange(d.shape[0] + 1) * 0.01
            g.attrs["config"] = "sim: diff-react"
    return path


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def assert_store_matches(path: Path, truth: dict[str, np.ndarray]) -> DatasetStore:
    """Every split's fields equal the source trajectories with the split's ids (values, not just shapes)."""
    validate_store(path)
    store = DatasetStore.open(path)
    seen = []
    for split in store.splits:
        ids = store.ids(split)
        seen += ids.tolist()
        fields = store.fields(split)  # [traj, time, C, *S]
        for c, name in enumerate(store.spec.fields):
            np.testing.assert_array_equal(fields[:, :, c], truth[name][ids])
    assert sorted(seen) == list(range(len(next(iter(truth.values())))))
    return store


def test_tensor_1d_reader_describes_the_file(tmp_path):
    u = rand(6, 5, 16)
    with PDEBenchReader(write_tensor_1d(tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5", u)) as reader:
        assert (reader.layout, reader.n_traj, reader.n_frames, reader.grid_shape) == ("tensor", 6, 5, (16,))
        assert reader.field_names == ("u",) and reader.shapes == {"u": (6, 5, 16)}
        assert reader.param_names == ("Nu",)
        np.testing.assert_allclose(reader.params(), 0.01, rtol=1e-6)
        np.testing.assert_allclose(reader.coords["t"], np.arange(5) * 0.05, rtol=1e-6)  # the extra t entry dropped
        np.testing.assert_allclose(reader.coords["x"], centres(16), rtol=1e-6)


def test_read_takes_any_trajectories_and_time_slice(tmp_path):
    u = rand(10, 8, 16)
    with PDEBenchReader(write_tensor_1d(tmp_path / "b.hdf5", u, extra_t=False)) as reader:
        got = reader.read([7, 2, 3, 4, 0], time=slice(1, None, 3))["u"]
        np.testing.assert_array_equal(got, u[[7, 2, 3, 4, 0], 1::3])
        np.testing.assert_array_equal(reader.read(slice(2, 5))["u"], u[2:5])
        blocks = list(reader.iter_blocks("u", np.arange(10), max_bytes=3 * reader.traj_nbytes))
        assert [pos for pos, _ in blocks] == [0, 3, 6, 9]
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), u)


def test_read_allocates_only_the_requested_slices(tmp_path):
    u = rand(400, 10, 128)  # 2 MB of data; reading 2 trajectories must not touch the rest
    with PDEBenchReader(write_tensor_1d(tmp_path / "b.hdf5", u)) as reader:
        tracemalloc.start()
        try:
            got = reader.read([5, 300])["u"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert got.nbytes == 2 * 10 * 128 * 4
    assert peak < got.nbytes + 64_000, f"peak {peak} bytes for a {got.nbytes}-byte read"


def test_tensor_1d_round_trips_into_a_store(tmp_path):
    u = rand(20, 5, 16)
    src = write_tensor_1d(tmp_path / "b.hdf5", u, attrs={"Nu": 0.002})
    convert("pdebench", [src], tmp_path / "s.zarr", "burgers_pdebench", seed=3)
    store = assert_store_matches(tmp_path / "s.zarr", {"u": u})
    spec = store.spec
    assert spec.fields == ("u",) and spec.grid_shape == (16,) and spec.param_names == ("Nu",)
    assert spec.domain == pytest.approx((1.0,)) and spec.dt == pytest.approx(0.05) and spec.bc == "none"
    np.testing.assert_allclose(store.params("train"), 0.002, rtol=1e-6)
    assert store.attrs["solver"] == "pdebench/tensor"


def test_cfd_2d_round_trips_with_velocity_and_shock_roles(tmp_path):
    fields = {name: rand(6, 3, 8, 4, seed=k) for k, name in enumerate(["density", "pressure", "Vx", "Vy"])}
    src = write_cfd(tmp_path / "2D_CFD_Rand_M1.0_Eta0.1_Zeta0.1_periodic_Train.hdf5", fields)
    with PDEBenchReader(src) as reader:
        assert reader.layout == "cfd" and reader.field_names == ("density", "pressure", "Vx", "Vy")
        assert reader.param_names == ("M", "eta", "zeta") and reader.grid_shape == (8, 4)
    convert("pdebench", [src], tmp_path / "s.zarr", "cfd2d", splits={"train": 0.5, "test": 0.5}, bc="periodic")
    store = assert_store_matches(tmp_path / "s.zarr", fields)
    spec = store.spec
    assert spec.velocity == ("Vx", "Vy") and spec.shock_field == "density" and spec.bc == "periodic"
    assert spec.domain == pytest.approx((2.0, 2.0))
    np.testing.assert_allclose(store.params("test")[0], [1.0, 0.1, 0.1], rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 8, 6, 2), (5, 12, 1)], ids=["2d-two-channels", "1d-one-channel"])
def test_per_seed_groups_round_trip(tmp_path, shape):
    data = [rand(*shape, seed=k) for k in range(5)]
    src = write_per_seed(tmp_path / "2D_diff-react_NA_NA.h5", data)
    names = ("u0", "u1") if shape[-1] == 2 else ("u",)
    with PDEBenchReader(src) as reader:
        assert reader.layout == "per_seed" and reader.n_traj == 5 and reader.field_names == names
        assert reader.n_frames == shape[0] and reader.grid_shape == shape[1:-1]
        np.testing.assert_array_equal(
            reader.read([3, 1], time=slice(1, 3))[names[-1]], np.stack(data)[[3, 1], 1:3, ..., -1]
        )
    convert("pdebench", [src], tmp_path / "s.zarr", "diffreact", splits={"train": 0.6, "val": 0.4})
    stacked = np.stack(data)  # [N, T, *S, C]
    assert_store_matches(tmp_path / "s.zarr", {name: stacked[..., c] for c, name in enumerate(names)})
    domain = tuple(2 * n / (n - 1) for n in shape[1:-1])  # grid/x spans [-1, 1] with n nodes: n steps of 2/(n-1)
    assert DatasetStore.open(tmp_path / "s.zarr").spec.domain == pytest.approx(domain)


def _drop(name: str):
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


def _replace(name: str, value: np.ndarray):
    def edit(f: h5py.File) -> None:
        del f[name]
        f[name] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop("x-coordinate"), "missing dataset 'x-coordinate'"),
        (_drop("t-coordinate"), "missing dataset 't-coordinate'"),
        (_replace("tensor", np.zeros((3, 5, 16, 2), np.float32)), "dataset 'tensor' has rank 4 .* expected rank 3"),
        (_replace("x-coordinate", centres(20)), r"dataset 'tensor' has shape \(3, 5, 16\); expected \(3, 5, 20\)"),
        (_replace("t-coordinate", np.arange(9.0)), r"'t-coordinate' has shape \(9,\); expected \[5\] or \[6\]"),
        (_replace("x-coordinate", np.r_[0.0, np.cumsum(np.ones(15)) ** 1.5]), "x-coordinate is not uniform"),
    ],
    ids=["no-x", "no-t", "rank", "x-mismatch", "t-length", "non-uniform"],
)
def test_malformed_tensor_file_names_file_and_problem(tmp_path, edit, message):
    path = write_tensor_1d(tmp_path / "bad.hdf5", rand(3, 5, 16))
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(UserInputError, match=f"input {re.escape(str(path))}: {message}"):
        PDEBenchReader(path)


def test_malformed_cfd_and_per_seed_files(tmp_path):
    fields = {name: rand(2, 3, 8, 4) for name in ["density", "pressure", "Vx"]}
    no_vy = write_cfd(tmp_path / "no_vy.hdf5", fields)
    with pytest.raises(UserInputError, match=f"input {re.escape(str(no_vy))}: missing dataset 'Vy'"):
        PDEBenchReader(no_vy)
    fields["Vy"], fields["pressure"] = rand(2, 3, 8, 4), rand(2, 3, 8, 5)
    write_cfd(tmp_path / "bad_p.hdf5", fields)  # coordinates follow density; pressure disagrees
    with pytest.raises(UserInputError, match=r"dataset 'pressure' has shape \(2, 3, 8, 5\); expected \(2, 3, 8, 4\)"):
        PDEBenchReader(tmp_path / "bad_p.hdf5")

    seeds = write_per_seed(tmp_path / "seeds.h5", [rand(4, 8, 6, 2), rand(4, 8, 6, 2), rand(4, 8, 6, 1)])
    with pytest.raises(UserInputError, match=r"'0002/data' has shape \(4, 8, 6, 1\); expected \(4, 8, 6, 2\)"):
        PDEBenchReader(seeds)
    with h5py.File(seeds, "a") as f:
        del f["0002"]
        del f["0001/data"]
    with pytest.raises(UserInputError, match="missing dataset 'data' in group '0001'"):
        PDEBenchReader(seeds)


def test_unreadable_inputs(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(UserInputError, match=f"input {re.escape(str(text))}: not an HDF5 file"):
        PDEBenchReader(text)
    with pytest.raises(UserInputError, match="no such file"):
        PDEBenchReader(tmp_path / "missing.hdf5")
    h5py.File(tmp_path / "empty.h5", "w").close()
    with pytest.raises(UserInputError, match="not a PDEBench file .*no dataset 'tensor'"):
        PDEBenchReader(tmp_path / "empty.h5")
    darcy = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(darcy, "w") as f:
        f["tensor"], f["nu"] = np.zeros((2, 1, 8, 8)), np.zeros((2, 8, 8))
        f["x-coordinate"], f["y-coordinate"] = centres(8), centres(8)
    with pytest.raises(UserInputError, match="steady Darcy files .* not supported"):
        PDEBenchReader(darcy)
