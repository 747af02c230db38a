"""Tiny trained runs for the inference tests: burgers1d and ns2d data from the real solvers at a toy size, written
in the real store layout, and an operator + corrector + student trained on each for a few steps (about a second)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ups.config.loader import validate_config
from ups.config.merge import deep_merge
from ups.data.solvers.burgers1d import Burgers1D, Burgers1DSize
from ups.data.solvers.ns2d import NS2D, NS2DSize
from ups.data.store import DatasetStore, write_store
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator
from ups.training import load_trained, train

TINY = {
    "latent": {"dim": 16, "tokens": 8, "decoder": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}},
    "operator": {"pdet": {"hidden_dim": 16, "depths": [1, 1], "u_stages": [1, 2], "group_size": 4, "num_heads": 2}},
    "diffusion": {"hidden_dim": 16, "num_layers": 1, "steps": 1, "cadence_steps": 2},
    "training": {"batch_size": 4, "horizon_curriculum": [1, 2], "grow_every_steps": 12, "early_stop_at": None},
    "stages": {
        "operator": {"epochs": 2, "optimizer": {"lr": 3e-3}},
        "diff_residual": {"epochs": 1},
        "consistency_distill": {"epochs": 1},
    },
    "eval": {"rollout_steps": 4, "horizons": [1, 4]},
    "run": {"save_every": 1000, "seed": 3},
    "logging": {"log_every": 1000},
}
OVERRIDES = {
    "burgers1d": {"data": {"task": "burgers1d"}},
    "ns2d": {"data": {"task": "ns2d", "patch_size": 4}, "latent": {"tokens": 16}},  # 16² grid, 4² patches
}
SIZES = {
    "burgers1d": (Burgers1D, Burgers1DSize(n_x=32, oversample=4, n_frames=9, dt=0.05, counts={"train": 6, "test": 4})),
    "ns2d": (NS2D, NS2DSize(n=16, oversample=1, n_frames=9, dt=0.25, counts={"train": 6, "test": 4})),
}


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors on a shared CI machine: extra intra-op threads only add synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(task: str, root: Path) -> Path:
    generator, size = SIZES[task]
    store = root / f"{task}.zarr"
    splits = generator.generate(size, 0)
    splits["val"] = splits["test"]  # the trainer validates on val; the tests never score it
    write_store(store, generator.spec(size), splits, solver=generator.solver, solver_config={}, seed=0)
    cfg = validate_config(deep_merge(copy.deepcopy(TINY), OVERRIDES[task]))
    return train(cfg, run_dir=root / f"run-{task}", data_path=store, cache_dir=root / "cache", progress=False).run_dir


@pytest.fixture(scope="session")
def burgers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run directory of a tiny burgers1d operator + corrector (diffusion.cadence_steps = 2, run.seed = 3)."""
    return _train("burgers1d", tmp_path_factory.mktemp("burgers"))


@pytest.fixture(scope="session")
def ns2d_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run directory of a tiny ns2d operator + corrector (16² grid)."""
    return _train("ns2d", tmp_path_factory.mktemp("ns2d"))


@dataclass(frozen=True)
class Case:
    """A trained pair and test data: physical inputs ``[B, 1, C, *S]``, params ``[B, P]``, targets ``[B, T, C, *S]``."""

    run: Path
    operator: LatentOperator
    corrector: DiffusionCorrector
    inputs: torch.Tensor
    params: torch.Tensor
    targets: torch.Tensor


def _case(run: Path) -> Case:
    operator, corrector = load_trained(run)
    store = DatasetStore.open(run.parent / f"{operator.spec.task}.zarr")
    frames = torch.from_numpy(store.fields("test"))  # [traj, time, C, *S]
    params = torch.from_numpy(store.params("test"))
    return Case(run, operator, corrector, frames[:, :1], params, frames[:, 1:])


@pytest.fixture(scope="session")
def burgers(burgers_run: Path) -> Case:
    """The burgers1d pair (evaluation weights) and its 4 test trajectories."""
    return _case(burgers_run)


@pytest.fixture(scope="session")
def ns2d(ns2d_run: Path) -> Case:
    """The ns2d pair and its 4 test trajectories."""
    return _case(ns2d_run)
