"""A damaged store is one line and exit code 2 from every command that reads it, never a traceback, a hang or numbers
read from damaged data (issue 14): ``data validate`` and ``data info`` here; ``evaluate --data`` on the same damage in
tests/eval/test_cli.py (an in-process ``ups evaluate`` ahead of tests/data/test_convert.py raises the tracemalloc peak
its memory test measures)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ups.cli import main
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData
from ups.data.store import DatasetStore, write_store
from ups.errors import UserInputError

SPEC = TaskSpec(
    task="advection1d",
    fields=("u",),
    grid_shape=(16,),
    domain=(1.0,),
    dt=0.1,
    conserved=(ConservedQuantity("mass", "u"),),
    param_names=("beta",),
)
CONFIG = (
    "run: {model: persistence}\ndata: {task: advection1d}\neval: {rollout_steps: 4, horizons: [1, 4], splits: [test]}\n"
)


def good_splits() -> dict[str, SplitData]:
    rng = np.random.default_rng(0)
    splits, start = {}, 0
    for name, n in {"train": 4, "val": 2, "test": 3}.items():
        fields = {"u": rng.normal(size=(n, 6, 16)).astype(np.float32)}
        splits[name] = SplitData(fields, rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32), np.arange(start, start + n))
        start += n
    return splits


def set_attr(path: Path, key: str, value=None, *, drop: bool = False) -> None:
    """Edit one root attribute in place, as a hand edit would (zarr.json is plain JSON)."""
    meta = json.loads((path / "zarr.json").read_text())
    if drop:
        meta["attributes"].pop(key)
    else:
        meta["attributes"][key] = value
    (path / "zarr.json").write_text(json.dumps(meta))


def truncated_chunk(path: Path) -> None:
    chunk = path / "test" / "fields" / "u" / "c" / "1" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:50])


def incomplete_spec(path: Path) -> None:
    spec = SPEC.to_attrs()
    del spec["grid_shape"]
    set_attr(path, "spec", spec)


def missing_splits(path: Path) -> None:
    set_attr(path, "splits", drop=True)


def garbage_metadata(path: Path) -> None:
    (path / "zarr.json").write_bytes(np.random.default_rng(1).bytes(300))


def garbage_array_metadata(path: Path) -> None:
    (path / "test" / "params" / "zarr.json").write_bytes(b"\xff\x00 not json")


def garbage_chunks(path: Path) -> None:
    """Every chunk of one field overwritten with other finite floats of the same length: decodes, plausible values,
    not the data."""
    rng = np.random.default_rng(2)
    for chunk in (path / "val" / "fields" / "u" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(rng.normal(size=chunk.stat().st_size // 4).astype("<f4").tobytes())


def flipped_byte(path: Path) -> None:
    chunk = path / "test" / "fields" / "u" / "c" / "2" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[40] ^= 0x01  # the lowest mantissa bit of one float: still finite, still plausible
    chunk.write_bytes(bytes(data))


def wrong_shape(path: Path) -> None:
    meta = json.loads((path / "val" / "ids" / "zarr.json").read_text())
    meta["shape"] = [3]
    (path / "val" / "ids" / "zarr.json").write_text(json.dumps(meta))


# damage → the words the one line must contain
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_chunk": (truncated_chunk, "cannot read test/fields/u"),
    "incomplete_spec": (incomplete_spec, "attribute spec is incomplete (missing grid_shape)"),
    "missing_splits": (missing_splits, "attribute splits is missing"),
    "garbage_metadata": (garbage_metadata, "not a UPS data store"),
    "garbage_array_metadata": (garbage_array_metadata, "cannot read metadata"),
    "garbage_chunks": (garbage_chunks, "content hash mismatch"),
    "flipped_byte": (flipped_byte, "content hash mismatch"),
    "wrong_shape": (wrong_shape, "val/params has shape (2, 1), expected (3, 1)"),  # ids give the count
}


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "good.zarr"
    write_store(path, SPEC, good_splits(), solver="test/random", solver_config={}, seed=0)
    return path


@pytest.fixture(params=list(DAMAGE))
def bad_store(request, good_store: Path, tmp_path: Path) -> tuple[Path, str]:
    damage, needle = DAMAGE[request.param]
    path = tmp_path / "bad.zarr"
    shutil.copytree(good_store, path)
    damage(path)
    return path, needle


def run_cli(argv: list[str], capsys) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main(argv)
    return code, capsys.readouterr().err, time.perf_counter() - start


def assert_one_line(code: int, err: str, seconds: float, path: Path, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("ups: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and needle in err, err
    assert seconds < 5, f"{seconds:.1f} s"


def test_data_validate_is_one_line(bad_store, capsys):
    path, needle = bad_store
    assert_one_line(*run_cli(["data", "validate", str(path)], capsys), path, needle)


def test_data_info_is_one_line(bad_store, capsys):
    path, needle = bad_store
    assert_one_line(*run_cli(["data", "info", str(path)], capsys), path, needle)


def test_the_good_store_passes(good_store, capsys):
    """(``evaluate --data`` on good stores, their hash verified, is tested in tests/eval/test_cli.py.)"""
    assert main(["data", "validate", str(good_store)]) == 0
    assert main(["data", "info", str(good_store)]) == 0
    digest = DatasetStore.open(good_store).content_sha256
    assert f"sha256    {digest} (verified)" in capsys.readouterr().out


def test_info_reads_a_store_without_a_hash_and_says_so(good_store, tmp_path, capsys):
    path = tmp_path / "nohash.zarr"
    shutil.copytree(good_store, path)
    set_attr(path, "content_sha256", drop=True)
    assert main(["data", "info", str(path)]) == 0
    assert "(none recorded, not verified)" in capsys.readouterr().out
    with pytest.raises(UserInputError, match="records no content_sha256"):
        DatasetStore.open(path).verify()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"spec": "burgers"}, "attribute spec is a str, expected a mapping"),
        ({"spec": SPEC.to_attrs() | {"grid_shape": [16.5]}}, "grid_shape must be 1 to 3 positive integers"),
        ({"spec": SPEC.to_attrs() | {"dt": -1}}, "dt must be a positive number"),
        ({"spec": SPEC.to_attrs() | {"fields": []}}, "fields must be distinct non-empty names"),
        ({"spec": SPEC.to_attrs() | {"colour": "red"}}, "unknown keys colour"),
        ({"spec": SPEC.to_attrs() | {"conserved": ["mass"]}}, "attribute spec is malformed"),
        ({"spec": SPEC.to_attrs() | {"velocity": ["w"]}}, "field(s) ['w'] that are not in fields"),
        ({"splits": "train"}, "attribute splits must be a non-empty list"),
        ({"splits": ["train", "test", "test"]}, "names a split twice"),
        ({"splits": ["train", "ood_bc"]}, "missing array ood_bc/fields/u"),
        ({"task": "burgers1d"}, "disagrees with spec.task"),
    ],
)
def test_open_names_the_bad_attribute(good_store, tmp_path, edit, needle):
    path = tmp_path / "bad.zarr"
    shutil.copytree(good_store, path)
    for key, value in edit.items():
        set_attr(path, key, value)
    with pytest.raises(UserInputError) as info:
        DatasetStore.open(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_a_damaged_store_can_be_replaced(good_store, tmp_path):
    path = tmp_path / "store.zarr"
    shutil.copytree(good_store, path)
    missing_splits(path)
    write_store(path, SPEC, good_splits(), solver="test/random", solver_config={}, seed=0)
    DatasetStore.open(path).verify()
