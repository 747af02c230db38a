"""A tiny transient store (exact advection, written in the real Zarr layout), a tiny steady store and a tiny config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ups.config.loader import validate_config
from ups.config.merge import deep_merge
from ups.config.schema import UPSConfig
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData
from ups.data.store import write_store

N_X, N_FRAMES, DT = 32, 9, 0.05
COUNTS = {"train": 6, "val": 4, "test": 4}


def advection_splits(seed: int = 0) -> dict[str, SplitData]:
    """u(x, t) = Σ_k a_k sin(2πk(x − βt) + φ_k), k = 1, 2: exact periodic advection with speed β ∈ {0.5, 1}."""
    rng = np.random.default_rng(seed)
    x = np.arange(N_X) / N_X
    t = np.arange(N_FRAMES) * DT
    splits, next_id = {}, 0
    for name, n in COUNTS.items():
        beta = rng.choice([0.5, 1.0], size=n)
        amp = rng.uniform(0.5, 1.0, size=(n, 2))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 2))
        xi = x[None, None, :] - beta[:, None, None] * t[None, :, None]  # [n, T, X]
        u = sum(amp[:, k, None, None] * np.sin(2 * np.pi * (k + 1) * xi + phase[:, k, None, None]) for k in range(2))
        u = u + 0.3  # a non-zero mean, so the conserved mass has a scale
        splits[name] = SplitData(
            fields={"u": u.astype(np.float32)},
            params=beta[:, None].astype(np.float32),
            ids=np.arange(next_id, next_id + n, dtype=np.int64),
        )
        next_id += n
    return splits


ADVECTION_SPEC = TaskSpec(
    task="advection1d",
    fields=("u",),
    grid_shape=(N_X,),
    domain=(1.0,),
    dt=DT,
    bc="periodic",
    conserved=(ConservedQuantity("mass", "u"),),
    param_names=("beta",),
)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "advection-tiny.zarr"
    write_store(path, ADVECTION_SPEC, advection_splits(), solver="test/exact-shift", solver_config={}, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_steady_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A steady a → u task on a 16² grid: u = a smoothed (a stand-in for darcy2d, same spec fields)."""
    n = 16
    spec = TaskSpec(
        task="darcy2d",
        fields=("a", "u"),
        grid_shape=(n, n),
        domain=(1.0, 1.0),
        dt=1.0,
        bc="dirichlet",
        param_names=("a_low", "a_high"),
        steady=True,
        bc_fields=("u",),
        extra={"input": ["a"], "output": ["u"]},
    )
    rng = np.random.default_rng(1)
    splits, next_id = {}, 0
    for name, count in {"train": 8, "val": 4, "test": 4}.items():
        a = rng.uniform(1.0, 3.0, size=(count, 1, n, n)).astype(np.float32)
        u = (0.25 * (a + np.roll(a, 1, -1) + np.roll(a, 1, -2) + np.roll(a, -1, -1)) / 4).astype(np.float32)
        params = np.tile(np.array([[1.0, 3.0]], dtype=np.float32), (count, 1))
        ids = np.arange(next_id, next_id + count, dtype=np.int64)
        splits[name] = SplitData(fields={"a": a, "u": u}, params=params, ids=ids)
        next_id += count
    path = tmp_path_factory.mktemp("data") / "steady-tiny.zarr"
    write_store(path, spec, splits, solver="test/smooth", solver_config={}, seed=0)
    return path


TINY = {
    "data": {"task": "advection1d"},
    "latent": {"dim": 16, "tokens": 8, "decoder": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2}},
    "operator": {"pdet": {"hidden_dim": 16, "depths": [1, 1], "u_stages": [1, 2], "group_size": 4, "num_heads": 2}},
    "diffusion": {"hidden_dim": 16, "num_layers": 1, "steps": 1},
    "training": {"batch_size": 4, "horizon_curriculum": [1, 2], "grow_every_steps": 12, "early_stop_at": None},
    "stages": {
        "operator": {"epochs": 2, "optimizer": {"lr": 3e-3}},
        "diff_residual": {"epochs": 1},
        "consistency_distill": {"epochs": 1},
        "steady_prior": {"epochs": 1, "sampler_steps": 2},
    },
    "eval": {"rollout_steps": 4, "horizons": [1, 4]},
    "run": {"save_every": 4},
    "logging": {"log_every": 4},
}


def tiny_config(**overrides: dict) -> UPSConfig:
    """The tiny config with ``overrides`` deep-merged per section (e.g. ``training={"batch_size": 8}``)."""
    return validate_config(deep_merge(TINY, overrides))


@pytest.fixture
def make_config():
    """``make_config(**section_overrides) -> UPSConfig`` (see :func:`tiny_config`)."""
    return tiny_config
