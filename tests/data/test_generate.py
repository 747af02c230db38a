"""generate_dataset, the content-keyed dataset cache, and the ``ups data`` commands."""

from __future__ import annotations

import argparse
import re
import shutil
import threading

import numpy as np
import pytest

from ups.data import cli
from ups.data import generate as gen
from ups.data.solvers.burgers1d import Burgers1D, Burgers1DSize
from ups.data.store import DatasetStore, validate_store
from ups.errors import UserInputError

COUNTS = {"train": 4, "val": 2, "test": 2, "ood_regime": 2}
TINY = Burgers1DSize(n_x=32, oversample=2, n_frames=4, dt=0.05, counts=COUNTS)


@pytest.fixture
def tiny(monkeypatch):
    """A 'tiny' burgers1d size (registered for this test only) and a counter of generate_dataset calls."""
    monkeypatch.setitem(Burgers1D.sizes, "tiny", TINY)
    calls = []
    real = gen.generate_dataset

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "generate_dataset", counting)
    return calls


def test_generate_small_writes_a_valid_store(tmp_path):
    path = gen.generate_dataset("burgers1d", "small", tmp_path / "b.zarr", seed=0)
    summary = validate_store(path)
    assert summary["splits"] == Burgers1D.sizes["small"].counts
    store = DatasetStore.open(path)
    assert store.fields("train").shape == (48, 41, 1, 256)
    assert store.attrs["solver_config"]["n_internal"] == 512
    train = store.fields("train").astype(np.float64)
    np.testing.assert_allclose(store.stats()["u"], (train.mean(), train.std()), rtol=1e-9, atol=1e-12)


def test_same_seed_gives_the_same_content_hash(tmp_path, tiny):
    a = gen.generate_dataset("burgers1d", "tiny", tmp_path / "a.zarr", seed=3)
    b = gen.generate_dataset("burgers1d", "tiny", tmp_path / "b.zarr", seed=3)
    c = gen.generate_dataset("burgers1d", "tiny", tmp_path / "c.zarr", seed=4)
    hashes = [DatasetStore.open(p).content_sha256 for p in (a, b, c)]
    assert hashes[0] == hashes[1] != hashes[2]


def test_cached_dataset_generates_once_and_reuses(tmp_path, tiny):
    first = gen.cached_dataset("burgers1d", "tiny", 0, tmp_path)
    mtime = (first / "zarr.json").stat().st_mtime_ns
    second = gen.cached_dataset("burgers1d", "tiny", 0, tmp_path)
    assert first == second and len(tiny) == 1
    assert (second / "zarr.json").stat().st_mtime_ns == mtime
    assert re.fullmatch(r"burgers1d-tiny-s0-[0-9a-f]{12}\.zarr", first.name) and first.parent == tmp_path / "data"
    validate_store(first)


def test_cached_dataset_is_generated_once_by_concurrent_callers(tmp_path, tiny):
    paths = []

    def worker():
        paths.append(gen.cached_dataset("burgers1d", "tiny", 1, tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] and len(tiny) == 1


def test_a_solver_change_or_a_new_seed_regenerates(tmp_path, tiny, monkeypatch):
    a = gen.cached_dataset("burgers1d", "tiny", 0, tmp_path)
    b = gen.cached_dataset("burgers1d", "tiny", 1, tmp_path)
    monkeypatch.setattr(gen, "solver_source_sha256", lambda task: "edited solver")
    c = gen.cached_dataset("burgers1d", "tiny", 0, tmp_path)
    assert len({a, b, c}) == 3 and len(tiny) == 3


def test_cached_dataset_replaces_a_broken_cache_entry(tmp_path, tiny):
    path = gen.cached_dataset("burgers1d", "tiny", 0, tmp_path)
    (path / "zarr.json").write_text("{}")
    assert gen.cached_dataset("burgers1d", "tiny", 0, tmp_path) == path and len(tiny) == 2
    validate_store(path)


def test_unknown_task_or_size_lists_the_valid_ones(tmp_path):
    with pytest.raises(UserInputError, match="valid: .*burgers1d"):
        gen.generate_dataset("burgers9d", "small", tmp_path / "x.zarr")
    with pytest.raises(UserInputError, match="valid: full, small"):
        gen.cached_dataset("burgers1d", "medium", 0, tmp_path)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ups")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_generate_validate_info(tmp_path, tiny, capsys):
    out = tmp_path / "t.zarr"
    assert run_cli("data", "generate", "--task", "burgers1d", "--size", "tiny", "--out", str(out), "--seed", "2") == 0
    assert run_cli("data", "validate", str(out)) == 0
    assert run_cli("data", "info", str(out)) == 0
    text = capsys.readouterr().out
    sha = DatasetStore.open(out).content_sha256
    assert f"ok: {out}" in text and sha in text
    assert "ood_regime   (2, 4, 32)" in text and "nu 0.0025..0.0025" in text
    shutil.rmtree(out / "train" / "ids")
    with pytest.raises(UserInputError, match="missing array train/ids"):
        run_cli("data", "validate", str(out))


def test_a_task_without_its_hooks_is_refused_at_definition():
    from ups.data.solvers.base import Task
    from ups.data.solvers.euler1d import EulerTask

    with pytest.raises(TypeError, match="task 'half' does not define make_spec, sample"):
        type("Half", (Task,), {"name": "half"})
    with pytest.raises(TypeError, match="does not define initial_state"):
        type("HalfEuler", (EulerTask,), {"name": "half_euler"})
