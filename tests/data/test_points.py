"""Point-cloud view: every mode picks true grid nodes with exactly the grid's values, deterministically by seed;
the mesh-like mode spreads points one per block; batches share a point set per trajectory; a store split is served
trajectory by trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from ups.data.points import PointCloudView, gather, grid_points, sample_points, to_points, to_points_batched
from ups.data.spec import TaskSpec
from ups.data.splits import SplitData
from ups.data.store import DatasetStore, write_store

X, Y = np.arange(64) / 64, (np.arange(48) + 0.5) / 48 * 2.0
COORDS = {"x": X, "y": Y, "t": np.arange(3) * 0.1}  # as DatasetStore.coords() returns them


def field(seed: int = 0, shape: tuple[int, ...] = (2, 64, 48)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def lookup(sample: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Values of ``sample`` [C, X, Y] at the grid nodes with these coordinates, found by coordinate, not index."""
    i = np.searchsorted(X, coords[:, 0])
    j = np.searchsorted(Y, coords[:, 1])
    assert np.array_equal(X[i], coords[:, 0]) and np.array_equal(Y[j], coords[:, 1]), "a point is not a grid node"
    return sample[:, i, j].T


@pytest.mark.parametrize("mode", ["random", "mesh"])
def test_subsets_are_grid_nodes_with_exact_values(mode):
    sample = field()
    coords, values = to_points(sample, COORDS, mode, n_points=300, seed=5)
    assert coords.shape == (300, 2) and values.shape == (300, 2) and values.dtype == np.float32
    np.testing.assert_array_equal(values, lookup(sample, coords))
    assert len(np.unique(coords, axis=0)) == 300


@pytest.mark.parametrize("mode", ["random", "mesh"])
def test_deterministic_by_seed_and_different_across_seeds(mode):
    a, b, c = (sample_points(COORDS, mode, 200, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert not np.array_equal(a.index, c.index)
    assert np.all(np.diff(a.index) > 0)


def test_full_mode_is_every_node_in_c_order():
    sample = field()
    coords, values = to_points(sample, COORDS, "full")
    assert coords.shape == (64 * 48, 2)
    np.testing.assert_array_equal(coords, grid_points(COORDS))
    np.testing.assert_array_equal(values, sample.reshape(2, -1).T)
    np.testing.assert_array_equal(coords[49], [X[1], Y[1]])


def test_mesh_mode_puts_one_point_in_every_block():
    # 256 points on 64 x 48: blocks of edge 3 leave 22 x 16 = 352 >= 256 blocks, edge 4 only 16 x 12 = 192.
    points = sample_points(COORDS, "mesh", 256, seed=0)
    i, j = np.unravel_index(points.index, (64, 48))
    blocks = (i // 3) * 16 + j // 3
    assert len(np.unique(blocks)) == 256  # never two points in one block
    # Even cover: on 64 x 48 with 192 points (edge 4 exactly tiles the grid), every 4 x 4 block holds one point.
    points = sample_points(COORDS, "mesh", 192, seed=3)
    i, j = np.unravel_index(points.index, (64, 48))
    counts = np.zeros((16, 12), int)
    np.add.at(counts, (i // 4, j // 4), 1)
    assert np.all(counts == 1)


def test_batched_uses_one_point_set_per_trajectory():
    batch = np.stack([np.stack([field(10 * b + t) for t in range(3)]) for b in range(4)])  # [B, T, C, X, Y]
    coords, values = to_points_batched(batch, COORDS, "random", n_points=100, seed=9)
    assert coords.shape == (100, 2) and values.shape == (4, 3, 100, 2)
    for b in range(4):
        for t in range(3):
            np.testing.assert_array_equal(values[b, t], lookup(batch[b, t], coords))

    coords_b, values_b = to_points_batched(batch, COORDS, "mesh", n_points=100, seed=9, shared=False)
    assert coords_b.shape == (4, 100, 2) and values_b.shape == (4, 3, 100, 2)
    assert not np.array_equal(coords_b[0], coords_b[1])
    for b in range(4):
        np.testing.assert_array_equal(values_b[b, 2], lookup(batch[b, 2], coords_b[b]))
    again = to_points_batched(batch, COORDS, "mesh", n_points=100, seed=9, shared=False)
    np.testing.assert_array_equal(again[0], coords_b)


def test_one_and_three_dimensional_grids():
    line = np.linspace(0, 1, 50, endpoint=False)
    u = field(shape=(1, 50))
    coords, values = to_points(u, [line], "mesh", n_points=10, seed=0)
    np.testing.assert_array_equal(values[:, 0], u[0, np.searchsorted(line, coords[:, 0])])
    axes = [np.arange(n, dtype=float) for n in (6, 5, 4)]
    u3 = field(shape=(3, 6, 5, 4))
    points = sample_points(axes, "random", 20, seed=1)
    ijk = points.coords.astype(int)
    np.testing.assert_array_equal(gather(u3, points), u3[:, ijk[:, 0], ijk[:, 1], ijk[:, 2]].T)


def test_n_points_is_capped_and_bad_arguments_fail():
    assert sample_points(COORDS, "random", 10**6, seed=0).n_points == 64 * 48
    with pytest.raises(ValueError, match="unknown point mode 'jitter'; valid: full, random, mesh"):
        sample_points(COORDS, "jitter", 10)
    with pytest.raises(ValueError, match="needs n_points >= 1"):
        sample_points(COORDS, "mesh")
    with pytest.raises(ValueError, match="do not end with the grid shape"):
        gather(field(shape=(2, 48, 64)), sample_points(COORDS, "full"))


def test_point_cloud_view_serves_a_store_split(tmp_path):
    spec = TaskSpec(task="toy2d", fields=("u", "v"), grid_shape=(64, 48), domain=(1.0, 2.0), dt=0.1)
    data = field(shape=(5, 3, 2, 64, 48))
    splits = {
        "train": SplitData({"u": data[:3, :, 0], "v": data[:3, :, 1]}, np.zeros((3, 0)), np.arange(3)),
        "test": SplitData({"u": data[3:, :, 0], "v": data[3:, :, 1]}, np.zeros((2, 0)), np.arange(3, 5)),
    }
    write_store(tmp_path / "s.zarr", spec, splits, solver="toy", solver_config={}, seed=0, coords=COORDS)
    view = PointCloudView(DatasetStore.open(tmp_path / "s.zarr"), "test", mode="mesh", n_points=128, seed=4)
    assert len(view) == 2
    item = view[1]
    assert item["id"] == 4 and item["coords"].shape == (128, 2) and item["values"].shape == (3, 128, 2)
    for t in range(3):
        np.testing.assert_array_equal(item["values"][t], lookup(data[4, t], item["coords"]))
    np.testing.assert_array_equal(view[1]["index"], item["index"])
    assert not np.array_equal(view[0]["index"], item["index"])
    with pytest.raises(IndexError):
        view[2]
