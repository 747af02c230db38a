"""Zarr store: round trip, train-only stats, content hash, and what validate_store catches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from ups.data import store as store_mod
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData
from ups.data.store import DatasetStore, compute_content_sha256, validate_store, write_store
from ups.errors import UserInputError

SPEC = TaskSpec(
    task="toy",
    fields=("u", "v"),
    grid_shape=(16,),
    domain=(1.0,),
    dt=0.1,
    conserved=(ConservedQuantity("mass", "u"),),
    param_names=("nu",),
)
N_FRAMES = 3


def make_splits(seed: int = 0) -> dict[str, SplitData]:
    """Splits with different offsets, so train-only moments differ from all-data moments."""
    rng = np.random.default_rng(seed)
    counts, offsets = {"train": 5, "val": 2, "test": 3, "ood_regime": 2}, {"train": 1.0, "val": 1.0, "test": 4.0}
    splits, start = {}, 0
    for name, n in counts.items():
        shape = (n, N_FRAMES, *SPEC.grid_shape)
        fields = {f: (offsets.get(name, -2.0) + rng.normal(size=shape)).astype(np.float32) for f in SPEC.fields}
        params = rng.uniform(0.01, 0.02, (n, 1)).astype(np.float32)
        splits[name] = SplitData(fields=fields, params=params, ids=np.arange(start, start + n))
        start += n
    return splits


def write(path: Path, splits: dict[str, SplitData] | None = None, seed: int = 0) -> str:
    splits = make_splits() if splits is None else splits
    return write_store(path, SPEC, splits, solver="toy/exact", solver_config={"k": [1, 2]}, seed=seed)


def test_round_trip(tmp_path):
    splits, path = make_splits(), tmp_path / "toy.zarr"
    digest = write(path, splits)
    store = DatasetStore.open(path)
    assert store.spec == SPEC and store.splits == ["train", "val", "test", "ood_regime"]
    assert digest == store.content_sha256 == compute_content_sha256(path)
    for key in ("task", "format_version", "solver", "solver_config", "seed", "dt", "fields", "bc", "param_names"):
        assert key in store.attrs
    for name, split in splits.items():
        fields = store.fields(name)  # [traj, time, C, x]
        assert fields.dtype == np.float32
        np.testing.assert_array_equal(fields[:, :, 1], split.fields["v"])
        np.testing.assert_array_equal(fields[:, :, 0], split.fields["u"])
        np.testing.assert_array_equal(store.params(name), split.params)
        np.testing.assert_array_equal(store.ids(name), split.ids)
        assert store.ids(name).dtype == np.int64
    coords = store.coords()
    np.testing.assert_allclose(coords["x"], np.arange(16) / 16)
    np.testing.assert_allclose(coords["t"], [0.0, 0.1, 0.2])
    assert store.array("test", "u").chunks == (1, N_FRAMES, 16)  # one trajectory per chunk


def test_stats_come_from_the_train_split_only(tmp_path):
    splits = make_splits()
    write(tmp_path / "toy.zarr", splits)
    stats = DatasetStore.open(tmp_path / "toy.zarr").stats()
    for field in SPEC.fields:
        train = splits["train"].fields[field].astype(np.float64)
        everything = np.concatenate([s.fields[field].ravel() for s in splits.values()]).astype(np.float64)
        np.testing.assert_allclose(stats[field], (train.mean(), train.std()), rtol=1e-12)
        assert abs(stats[field][0] - everything.mean()) > 0.1 and abs(stats[field][1] - everything.std()) > 0.1


def test_content_hash_is_deterministic_and_sensitive_to_values_and_attrs(tmp_path):
    a, b = write(tmp_path / "a.zarr"), write(tmp_path / "b.zarr")
    assert a == b
    assert write(tmp_path / "c.zarr", seed=1) != a  # attrs enter the hash
    splits = make_splits()
    splits["val"].fields["v"][1, 2, 3] += 1e-3
    assert write(tmp_path / "d.zarr", splits) != a


def test_validate_accepts_a_good_store(tmp_path):
    write(tmp_path / "toy.zarr")
    summary = validate_store(tmp_path / "toy.zarr")
    assert summary["splits"] == {"train": 5, "val": 2, "test": 3, "ood_regime": 2}
    assert summary["content_sha256"] == DatasetStore.open(tmp_path / "toy.zarr").content_sha256


def test_validate_catches_a_flipped_byte(tmp_path):
    path = tmp_path / "toy.zarr"
    write(path)
    chunk = path / "test" / "fields" / "v" / "c" / "1" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[40] ^= 0x01  # lowest mantissa bit of one float: still finite, still plausible
    chunk.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="content hash mismatch"):
        validate_store(path)


def test_validate_names_the_split_and_field_holding_a_nan(tmp_path):
    path = tmp_path / "toy.zarr"
    write(path)
    zarr.open_group(str(path), mode="r+")["val/fields/v"][1, 2, 3] = np.nan
    with pytest.raises(UserInputError, match=r"NaN/Inf in val/fields/v"):
        validate_store(path)


def test_validate_catches_a_shared_id(tmp_path):
    splits = make_splits()
    splits["test"].ids[0] = splits["train"].ids[2]
    write(tmp_path / "toy.zarr", splits)
    with pytest.raises(UserInputError, match=r"splits train and test share trajectory id 2"):
        validate_store(tmp_path / "toy.zarr")


def test_validate_catches_an_identical_trajectory_under_another_id(tmp_path):
    splits = make_splits()
    for field in SPEC.fields:
        splits["val"].fields[field][1] = splits["train"].fields[field][4]
    write(tmp_path / "toy.zarr", splits)
    with pytest.raises(UserInputError, match=r"val\[1\] is identical to train\[4\]"):
        validate_store(tmp_path / "toy.zarr")


def test_validate_names_a_missing_array(tmp_path):
    path = tmp_path / "toy.zarr"
    write(path)
    shutil.rmtree(path / "test" / "fields" / "u")
    with pytest.raises(UserInputError, match=r"toy.zarr: missing array test/fields/u$"):
        validate_store(path)


def test_validate_catches_a_shape_mismatch(tmp_path):
    splits = make_splits()
    splits["val"] = SplitData(splits["val"].fields, np.zeros((2, 2), np.float32), splits["val"].ids)
    write(tmp_path / "toy.zarr", splits)
    with pytest.raises(UserInputError, match=r"val/params has shape \(2, 2\), expected \(2, 1\)"):
        validate_store(tmp_path / "toy.zarr")


def test_open_rejects_missing_paths_and_foreign_directories(tmp_path):
    with pytest.raises(UserInputError, match="no such file"):
        validate_store(tmp_path / "absent.zarr")
    (tmp_path / "foreign").mkdir()
    with pytest.raises(UserInputError, match="not a UPS data store"):
        DatasetStore.open(tmp_path / "foreign")
    with pytest.raises(UserInputError, match="not a UPS data store"):
        write(tmp_path / "foreign")  # never overwrites something that is not a store


def test_interrupted_write_leaves_no_store_and_no_debris(tmp_path, monkeypatch):
    def crash(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "compute_content_sha256", crash)
    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "toy.zarr")
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_an_existing_store(tmp_path):
    path = tmp_path / "toy.zarr"
    first = write(path)
    second = write(path, make_splits(seed=5))
    assert first != second and DatasetStore.open(path).content_sha256 == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.zarr"]
    validate_store(path)
