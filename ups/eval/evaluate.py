"""Score a surrogate on one split of a dataset: autoregressive rollout on physical fields, then the scoreboard.

Inputs are the first ``n_input`` stored frames of every trajectory; the next ``steps`` frames are the targets.
Input frames are never scored (DESIGN.md, principle 1).
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import torch

from ups.data.store import DatasetStore
from ups.eval.timing import time_normalised
from ups.metrics import MetricValue, compute_scoreboard
from ups.models.base import Surrogate


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
            "values": [[v.metric, v.horizon, v.value] for v in self.values],
        }

    @classmethod
    def from_dict(cls, d: dict) -> EvalResult:
        values = tuple(MetricValue(m, h, v) for m, h, v in d["values"])
        return cls(d["task"], d["split"], d["seed"], values, d["machine_ref_s"])


@torch.no_grad()
def rollout_split(
    model: Surrogate, store: DatasetStore, split: str, steps: int, *, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``model`` out on every trajectory of ``split``.

    Returns:
        ``(pred, target)``, both ``[B, steps', C, *S]`` float32 with ``steps' = min(steps, T - n_input)``.
    """
    fields = torch.from_numpy(store.fields(split))  # [N, T, C, *S]
    params = torch.from_numpy(store.params(split)) if store.spec.param_names else None
    n_in = model.n_input
    steps = min(steps, fields.shape[1] - n_in)
    if steps < 1:
        raise ValueError(f"split {split!r} has {fields.shape[1]} frames; need more than n_input={n_in}")
    preds = []
    for start in range(0, fields.shape[0], batch_size):
        chunk = slice(start, start + batch_size)
        p = params[chunk] if params is not None else None
        preds.append(model.rollout(fields[chunk, :n_in], steps, p))
    return torch.cat(preds), fields[:, n_in : n_in + steps]


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
) -> EvalResult:
    """Roll out, score the decoded fields, and time one batched rollout (median of repeats, per trajectory)."""
    device = device or torch.device("cpu")
    pred, target = rollout_split(model, store, split, steps)
    values = list(compute_scoreboard(pred.numpy(), target.numpy(), store.spec, horizons=horizons))

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
