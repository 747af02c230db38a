"""Score a surrogate on one split of a dataset: autoregressive rollout on physical fields, then the scoreboard.

Inputs are the first ``n_input`` stored frames of every trajectory; the next ``steps`` frames are the targets.
Input frames are never scored (DESIGN.md, principle 1). A model with a corrector also draws an ensemble of the same
rollout (``ensemble_size`` members, or any ``samples_fn``), whose members feed the ensemble metrics (``ece``,
``crps``, ``spread_skill``); a deterministic model leaves them None.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ups.data.store import DatasetStore
from ups.eval.timing import time_normalised
from ups.metrics import MetricValue, compute_scoreboard
from ups.models.base import Surrogate

#: ``samples_fn(inputs [B, n_input, C, *S], steps, params [B, P] | None) -> [M, B, steps, C, *S]``: M ensemble
#: members of the rollout (e.g. corrector samples), physical fields like ``Surrogate.rollout``.
SamplesFn = Callable[[torch.Tensor, int, torch.Tensor | None], torch.Tensor]


def ensemble_sampler(model: Surrogate, n: int, seed: int) -> SamplesFn | None:
    """``n`` members per rollout from ``model.sample_ensemble(inputs, steps, params, n=n, seed=seed)``, or None when
    the model has no corrector (``model.corrector`` missing or None): a deterministic model has no ensemble."""
    if getattr(model, "corrector", None) is None:
        return None

    def draw(inputs: torch.Tensor, steps: int, params: torch.Tensor | None) -> torch.Tensor:
        return model.sample_ensemble(inputs, steps, params, n=n, seed=seed)

    return draw


@dataclass(frozen=True)
class EvalResult:
    """Scoreboard of one (task, split, seed): accuracy, physics and efficiency rows, and the machine reference."""

    task: str
    split: str
    seed: int
    values: tuple[MetricValue, ...]
    machine_ref_s: float

    def as_dict(self) -> dict:
        return {
            "task": self.task,
            "split": self.split,
            "seed": self.seed,
            "machine_ref_s": self.machine_ref_s,
            "values": [
                [v.metric, v.horizon, v.value, None if v.per_traj is None else list(v.per_traj)] for v in self.values
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> EvalResult:
        values = tuple(
            MetricValue(m, h, v, tuple(rest[0]) if rest and rest[0] is not None else None)
            for m, h, v, *rest in d["values"]
        )
        return cls(d["task"], d["split"], d["seed"], values, d["machine_ref_s"])


def _split_arrays(
    store: DatasetStore, split: str, n_input: int, steps: int
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``(fields [N, T, C, *S], params [N, P] | None, steps')`` with ``steps' = min(steps, T - n_input)``."""
    fields = torch.from_numpy(store.fields(split))  # [N, T, C, *S]
    params = torch.from_numpy(store.params(split)) if store.spec.param_names else None
    steps = min(steps, fields.shape[1] - n_input)
    if steps < 1:
        raise ValueError(f"split {split!r} has {fields.shape[1]} frames; need more than n_input={n_input}")
    return fields, params, steps


@torch.no_grad()
def rollout_split(
    model: Surrogate, store: DatasetStore, split: str, steps: int, *, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``model`` out on every trajectory of ``split``.

    Returns:
        ``(pred, target)``, both ``[B, steps', C, *S]`` float32 with ``steps' = min(steps, T - n_input)``.
    """
    n_in = model.n_input
    fields, params, steps = _split_arrays(store, split, n_in, steps)
    preds = []
    for start in range(0, fields.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        p = params[chunk] if params is not None else None
        preds.append(model.rollout(fields[chunk, :n_in], steps, p))
    return torch.cat(preds), fields[:, n_in : n_in + steps]


@torch.no_grad()
def sample_split(
    samples_fn: SamplesFn, store: DatasetStore, split: str, steps: int, n_input: int, *, batch_size: int = 64
) -> torch.Tensor:
    """Ensemble rollouts of every trajectory of ``split`` from the same inputs as :func:`rollout_split`.

    Returns:
        ``[M, B, steps', C, *S]`` float32, members first, aligned with ``rollout_split``'s target.
    """
    fields, params, steps = _split_arrays(store, split, n_input, steps)
    members = []
    for start in range(0, fields.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        p = params[chunk] if params is not None else None
        members.append(samples_fn(fields[chunk, :n_input], steps, p).float().cpu())
    return torch.cat(members, dim=1)


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def evaluate_split(
    model: Surrogate,
    store: DatasetStore,
    split: str,
    *,
    steps: int,
    horizons: tuple[int, ...] = (1, 4, 16),
    seed: int = 0,
    timing_repeats: int = 5,
    device: torch.device | None = None,
    ensemble_size: int | None = None,
    samples_fn: SamplesFn | None = None,
) -> EvalResult:
    """Roll out, score the decoded fields, and time one batched rollout (median of repeats, per trajectory).

    Ensemble metrics: with ``ensemble_size``, a model with a corrector draws that many members seeded by ``seed``
    (:func:`ensemble_sampler`); or pass any ``samples_fn``. Otherwise, and for a model without a corrector, they are
    None.

    Raises:
        ValueError: both ``ensemble_size`` and ``samples_fn`` given, or ``ensemble_size < 1``.
    """
    if ensemble_size is not None:
        if samples_fn is not None:
            raise ValueError("give ensemble_size or samples_fn, not both")
        if ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        samples_fn = ensemble_sampler(model, ensemble_size, seed)
    pred, target = rollout_split(model, store, split, steps)
    samples = None
    if samples_fn is not None:
        samples = sample_split(samples_fn, store, split, pred.shape[1], model.n_input)
    return score_split(
        model, store, split, pred, target, samples=samples, horizons=horizons, seed=seed,
        timing_repeats=timing_repeats, device=device,
    )  # fmt: skip


def score_split(
    model: Surrogate,
    store: DatasetStore,
    split: str,
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    samples: torch.Tensor | None = None,
    horizons: tuple[int, ...] = (1, 4, 16),
    seed: int = 0,
    timing_repeats: int = 5,
    device: torch.device | None = None,
) -> EvalResult:
    """The scoreboard of a rollout already made (``pred``, ``target`` ``[B, T, C, *S]``, optional ``samples``
    ``[M, B, T, C, *S]``), plus the timed efficiency rows of ``model`` on ``split``.

    The physics rows use the split's own walls and domain (:meth:`~ups.data.spec.TaskSpec.for_split`): ``ood_bc``
    is scored against its reflective walls, ``ood_geometry`` with its own cell size."""
    device = device or torch.device("cpu")
    values = list(
        compute_scoreboard(
            pred.numpy(), target.numpy(), store.spec.for_split(split), horizons=horizons,
            samples=None if samples is None else samples.numpy(),
        )
    )  # fmt: skip

    fields = torch.from_numpy(store.fields(split))
    n_time = min(16, fields.shape[0])  # a fixed-size batch, so per-rollout time does not depend on split size
    inputs = fields[:n_time, : model.n_input].to(device)
    params = torch.from_numpy(store.params(split))[:n_time] if store.spec.param_names else None
    n_steps = pred.shape[1]

    def run() -> None:
        with torch.no_grad():
            model.rollout(inputs, n_steps, params)

    raw, ref, norm = time_normalised(run, repeats=timing_repeats, warmup=1, device=device)
    values += [
        MetricValue("wall_clock_s_per_rollout", None, raw.median_s / n_time),
        MetricValue("wall_clock_norm", None, norm.median_s / n_time),
        MetricValue("params_m", None, model.num_parameters() / 1e6),
        MetricValue("peak_mem_mb", None, _peak_mem_mb(device)),
    ]
    return EvalResult(store.spec.task, split, seed, tuple(values), ref.median_s)
