"""``convert`` and ``ups data convert``: seeded disjoint splits, several inputs, provenance, train-only stats, the
content hash, bounded memory on a file ten times the cap, and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import hashlib
import re
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

import ups.cli
from ups.data import cli as data_cli
from ups.data.readers.convert import convert, parse_splits, split_indices
from ups.data.store import DatasetStore, compute_content_sha256, validate_store
from ups.errors import UserInputError


def write_1d(path: Path, u: np.ndarray, nu: float = 0.01) -> Path:
    """PDEBench 1D layout: tensor [N, T, X], x-/t-coordinate (T + 1 entries), attribute Nu."""
    with h5py.File(path, "w") as f:
        f["tensor"] = u
        f["x-coordinate"] = (np.arange(u.shape[2]) + 0.5) / u.shape[2]
        f["t-coordinate"] = np.arange(u.shape[1] + 1) * 0.1
        f.attrs["Nu"] = nu
    return path


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_split_indices_are_disjoint_sorted_and_seeded():
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    a = split_indices(23, fractions, seed=0)
    assert {k: len(v) for k, v in a.items()} == {"train": 16, "val": 5, "test": 2}  # 16.1, 4.6, 2.3: remainder to val
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(23))
    assert all(np.all(np.diff(v) > 0) for v in a.values())
    b, c = split_indices(23, fractions, seed=0), split_indices(23, fractions, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


@pytest.mark.parametrize(
    ("text", "n", "message"),
    [
        ("val=0.5,test=0.5", 10, "a 'train' split is required"),
        ("train=0.8,val=0.1", 10, "fractions sum to 0.9, not 1"),
        ("train=0.95,val=0.05", 10, "split val gets no trajectory"),
        ("train=1.2,val=-0.2", 10, "fraction of val must be positive"),
        ("train=0.8,Val=0.2", 10, "split name 'Val' must be a lower-case identifier"),
        ("train:0.8", 10, "'train:0.8' is not NAME=FRACTION"),
    ],
)
def test_bad_splits_are_user_errors(text, n, message):
    with pytest.raises(UserInputError, match=message):
        split_indices(n, parse_splits(text), seed=0)


def test_several_inputs_keep_ids_params_and_provenance(tmp_path):
    u1, u2 = rand(6, 4, 16, seed=1), rand(4, 4, 16, seed=2)
    f1, f2 = write_1d(tmp_path / "nu1.hdf5", u1, 0.01), write_1d(tmp_path / "nu2.hdf5", u2, 0.02)
    convert("pdebench", [f1, f2], tmp_path / "s.zarr", "burgers", splits={"train": 0.5, "val": 0.5}, seed=7)
    validate_store(tmp_path / "s.zarr")
    store, truth = DatasetStore.open(tmp_path / "s.zarr"), np.concatenate([u1, u2])
    for split in store.splits:
        ids = store.ids(split)
        np.testing.assert_array_equal(store.fields(split)[:, :, 0], truth[ids])
        np.testing.assert_allclose(store.params(split)[:, 0], np.where(ids < 6, 0.01, 0.02), rtol=1e-6)
    sources = store.attrs["solver_config"]["sources"]
    assert [(s["file"], s["n_traj"], s["first_id"]) for s in sources] == [("nu1.hdf5", 6, 0), ("nu2.hdf5", 4, 6)]
    assert [s["sha256"] for s in sources] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in (f1, f2)]
    assert store.attrs["seed"] == 7


def test_stats_come_from_train_only_and_hash_matches_the_store_definition(tmp_path):
    u = rand(12, 3, 8) + np.arange(12, dtype=np.float32)[:, None, None]  # trajectories differ in mean
    convert("pdebench", [write_1d(tmp_path / "b.hdf5", u)], tmp_path / "s.zarr", "b", seed=2)
    store = DatasetStore.open(tmp_path / "s.zarr")
    train = u[store.ids("train")].astype(np.float64)
    np.testing.assert_allclose(store.stats()["u"], (train.mean(), train.std()), rtol=1e-12)
    assert abs(store.stats()["u"][0] - u.mean()) > 1e-3
    digest = store.content_sha256
    assert digest == compute_content_sha256(tmp_path / "s.zarr") == compute_content_sha256(tmp_path / "s.zarr", 1)


def test_bc_override_nan_and_inconsistent_inputs(tmp_path):
    good = write_1d(tmp_path / "a.hdf5", rand(10, 3, 8))
    convert("pdebench", [good], tmp_path / "s.zarr", "adv", bc="periodic")
    assert DatasetStore.open(tmp_path / "s.zarr").spec.bc == "periodic"

    other = write_1d(tmp_path / "other.hdf5", rand(10, 3, 16))
    with pytest.raises(
        UserInputError, match=rf"input {re.escape(str(other))}: grid_shape is \(16,\), but a.hdf5 has \(8,\)"
    ):
        convert("pdebench", [good, other], tmp_path / "t.zarr", "adv")
    bad = rand(10, 3, 8)
    bad[4, 1, 2] = np.nan
    nan = write_1d(tmp_path / "nan.hdf5", bad)
    with pytest.raises(UserInputError, match=f"input {re.escape(str(nan))}: NaN/Inf in field u, trajectory 4"):
        convert("pdebench", [nan], tmp_path / "t.zarr", "adv")
    assert not (tmp_path / "t.zarr").exists() and not list(tmp_path.glob(".t.zarr.tmp-*"))
    with pytest.raises(UserInputError, match="memory cap .* below 4 trajectories"):
        convert("pdebench", [good], tmp_path / "t.zarr", "adv", max_bytes=100)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "thesis.tex").write_text("x")
    with pytest.raises(UserInputError, match="not a UPS data store"):
        convert("pdebench", [good], tmp_path / "keep", "adv")
    assert (tmp_path / "keep" / "thesis.tex").exists()


def test_conversion_memory_stays_under_the_cap_for_a_file_ten_times_larger(tmp_path):
    n_traj, n_t, n_x = 288, 41, 1024  # 168 KiB per trajectory, 46 MiB of data
    cap = 4 * 2**20
    path = tmp_path / "big.hdf5"
    with h5py.File(path, "w") as f:  # written slice by slice, never whole in memory
        ds = f.create_dataset("tensor", shape=(n_traj, n_t, n_x), dtype="float32")
        for lo in range(0, n_traj, 32):
            ds[lo : lo + 32] = rand(32, n_t, n_x, seed=lo)
        f["x-coordinate"] = (np.arange(n_x) + 0.5) / n_x
        f["t-coordinate"] = np.arange(n_t) * 0.05
        f.attrs["Nu"] = 0.001
    data_bytes = n_traj * n_t * n_x * 4
    assert data_bytes >= 10 * cap

    tracemalloc.start()
    try:
        convert("pdebench", [path], tmp_path / "big.zarr", "big", max_bytes=cap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= cap, f"peak {peak / 2**20:.2f} MiB over the {cap / 2**20:.0f} MiB cap"

    store = DatasetStore.open(tmp_path / "big.zarr")
    ids = store.ids("test")
    np.testing.assert_array_equal(
        store.array("test", "u")[-1], rand(32, n_t, n_x, seed=ids[-1] // 32 * 32)[ids[-1] % 32]
    )
    assert sum(store.ids(s).shape[0] for s in store.splits) == n_traj


def data_parser() -> argparse.ArgumentParser:
    """The ``ups`` parser with only the data commands (the full one imports every layer)."""
    parser = argparse.ArgumentParser(prog="ups")
    data_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_convert_writes_a_store_and_exits_2_on_a_missing_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ups.cli, "build_parser", data_parser)
    a, b = write_1d(tmp_path / "a.hdf5", rand(8, 3, 8)), write_1d(tmp_path / "b.hdf5", rand(8, 3, 8, seed=1))
    out = tmp_path / "s.zarr"
    argv = ["data", "convert", "--format", "pdebench", "--input", str(a), "--input", str(b), "--out", str(out)]
    assert ups.cli.main([*argv, "--task", "burgers", "--splits", "train=0.5,val=0.25,test=0.25", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {name: DatasetStore.open(out).ids(name).shape[0] for name in ("train", "val", "test")} == {
        "train": 8,
        "val": 4,
        "test": 4,
    }

    with h5py.File(b, "a") as f:
        del f["x-coordinate"]
    assert ups.cli.main([*argv, "--task", "burgers"]) == 2
    err = capsys.readouterr().err
    assert err == f"ups: error: input {b}: missing dataset 'x-coordinate'\n"
