"""A tiny advection store (exact shift, real Zarr layout, with an ``ood_regime`` split), its config file, and a run
(operator + corrector) trained on it in seconds, shared by the evaluation tests of this folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ups.config.loader import dump_yaml, validate_config
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.data.splits import SplitData
from ups.data.store import write_store

N_X, N_FRAMES, DT = 32, 7, 0.05
# split → (trajectories, advection speeds drawn from); ood_regime is faster than anything in train
SPLITS = {"train": (6, (0.5, 1.0)), "val": (2, (0.5, 1.0)), "test": (3, (0.5, 1.0)), "ood_regime": (2, (2.0,))}

SPEC = TaskSpec(
    task="advection1d",
    fields=("u",),
    grid_shape=(N_X,),
    domain=(1.0,),
    dt=DT,
    bc="periodic",
    conserved=(ConservedQuantity("mass", "u"),),
    param_names=("beta",),
)

TINY = {
    "run": {"save_every": 100},
    "data": {"task": "advection1d"},
    "latent": {"dim": 8, "tokens": 8, "decoder": {"hidden_dim": 8, "num_layers": 1, "num_heads": 2}},
    "operator": {"pdet": {"hidden_dim": 8, "depths": [1, 1], "u_stages": [1, 2], "group_size": 4, "num_heads": 2}},
    "diffusion": {"hidden_dim": 8, "num_layers": 1, "steps": 1, "cadence_steps": 2},
    "training": {"batch_size": 6, "horizon_curriculum": [1], "early_stop_at": None},
    "stages": {
        "operator": {"epochs": 1, "optimizer": {"lr": 3e-3}},
        "diff_residual": {"epochs": 1},
        "consistency_distill": {"epochs": 1},
    },
    "ttc": {"candidates": 2, "beam_width": 1},
    "eval": {"rollout_steps": 4, "horizons": [1, 4], "splits": ["test", "ood_regime"], "ensemble_size": 4},
    "logging": {"log_every": 100},
}


def advection_splits(seed: int = 0) -> dict[str, SplitData]:
    """u(x, t) = Σ_k a_k sin(2πk(x − βt) + φ_k) + 0.3, k = 1, 2: exact periodic advection at speed β."""
    rng = np.random.default_rng(seed)
    x = np.arange(N_X) / N_X
    t = np.arange(N_FRAMES) * DT
    splits, next_id = {}, 0
    for name, (n, speeds) in SPLITS.items():
        beta = rng.choice(speeds, size=n)
        amp = rng.uniform(0.5, 1.0, size=(n, 2))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 2))
        xi = x[None, None, :] - beta[:, None, None] * t[None, :, None]  # [n, T, X]
        u = sum(amp[:, k, None, None] * np.sin(2 * np.pi * (k + 1) * xi + phase[:, k, None, None]) for k in range(2))
        splits[name] = SplitData(
            fields={"u": (u + 0.3).astype(np.float32)},
            params=beta[:, None].astype(np.float32),
            ids=np.arange(next_id, next_id + n, dtype=np.int64),
        )
        next_id += n
    return splits


def _write_tiny_store(path: Path, task: str = "advection1d") -> Path:
    """The tiny advection data at ``path``, its attributes naming ``task`` (another task's store, for error tests)."""
    write_store(path, replace(SPEC, task=task), advection_splits(), solver="test/exact-shift", solver_config={}, seed=0)
    return path


@pytest.fixture(scope="session")
def write_tiny_store() -> Callable[..., Path]:
    """``write_tiny_store(path, task="advection1d") -> path``."""
    return _write_tiny_store


@pytest.fixture(scope="session")
def eval_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_tiny_store(tmp_path_factory.mktemp("eval-data") / "advection-tiny.zarr")


@pytest.fixture(scope="session")
def eval_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config as a YAML file (the CLI reads configs from disk)."""
    path = tmp_path_factory.mktemp("eval-config") / "tiny.yaml"
    path.write_text(dump_yaml(validate_config(TINY)))
    return path


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors on a shared CI machine: extra intra-op threads only add synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_run(eval_store: Path, eval_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on the tiny store, one epoch per stage (operator, corrector, distilled student): seconds."""
    from ups.training.trainer import train

    result = train(
        eval_config, run_dir=tmp_path_factory.mktemp("eval-run") / "run", data_path=eval_store, device="cpu",
        progress=False,
    )  # fmt: skip
    return result.run_dir


@pytest.fixture(scope="session")
def operator_only_run(eval_store: Path, eval_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the operator stage alone: a checkpoint without a corrector."""
    from ups.training.trainer import train

    run_dir = tmp_path_factory.mktemp("eval-run") / "operator-only"
    return train(
        eval_config, stage="operator", run_dir=run_dir, data_path=eval_store, device="cpu", progress=False
    ).run_dir
