"""The validation proxy: val nRMSE of a k-step autoregressive rollout on decoded physical fields, and persistence.

Every val trajectory starts from its first stored frame; the model predicts ``k`` model steps (``training.time_stride``
stored frames each) and is scored against the stored frames at ``stride, 2·stride, …, k·stride`` (input frames never
count). Per trajectory, the proxy is the scoreboard's nRMSE averaged over the k steps and channels; the reported
``val_nrmse`` is its mean over trajectories, ``val_nrmse_last`` the nRMSE at step k.
"""

from __future__ import annotations

import numpy as np
import torch

from ups.data.spec import TaskSpec
from ups.data.store import DatasetStore
from ups.metrics import conservation_gap, nrmse_at, nrmse_per_step
from ups.models.base import Surrogate
from ups.models.persistence import Persistence
from ups.training.guards import Baseline


class ValProxy:
    """Rollout scoring on one split (default ``val``).

    Args:
        store: the dataset.
        steps: k, capped at the frames the split has.
        time_stride: stored frames per model step.
        split: which split.
    """

    def __init__(self, store: DatasetStore, steps: int, time_stride: int = 1, split: str = "val"):
        self.spec: TaskSpec = store.spec
        fields = torch.from_numpy(store.fields(split))  # [N, T, C, *S]
        self.steps = min(steps, (fields.shape[1] - 1) // time_stride)
        if self.steps < 1:
            raise ValueError(f"split {split!r} has {fields.shape[1]} frames: too few for one step of {time_stride}")
        self.inputs = fields[:, :1]
        self.target = fields[:, time_stride : self.steps * time_stride + 1 : time_stride]
        self.params = torch.from_numpy(store.params(split)) if self.spec.param_names else None

    def per_trajectory(self, pred: np.ndarray) -> np.ndarray:
        """nRMSE of each trajectory, mean over the k steps and channels, ``[N]``."""
        return nrmse_per_step(pred, self.target.numpy()).mean(axis=(1, 2))

    def score(self, pred: torch.Tensor) -> dict[str, float]:
        p = pred.detach().float().cpu().numpy()
        y = self.target.numpy()
        out = {"val_nrmse": float(self.per_trajectory(p).mean()), "val_nrmse_last": nrmse_at(p, y, self.steps)}
        gap = conservation_gap(p, y, conserved_channels=self.spec.conserved_channels, cell_volume=self.spec.cell_volume)
        if gap is not None:
            out["val_conservation_gap"] = gap
        return out

    @torch.no_grad()
    def __call__(self, model: Surrogate, device: torch.device | str = "cpu") -> dict[str, float]:
        """Roll ``model`` out (physical in, physical out) and score it."""
        params = self.params.to(device) if self.params is not None else None
        pred = model.rollout(self.inputs.to(device), self.steps, params)
        return self.score(pred)

    def baseline(self) -> Baseline:
        """Persistence on this split: mean and σ of the per-trajectory proxy, and its conservation gap."""
        pred = Persistence().rollout(self.inputs, self.steps)
        per = self.per_trajectory(pred.numpy())
        scores = self.score(pred)
        sigma = float(per.std(ddof=1)) if per.size > 1 else 0.0
        return Baseline(float(per.mean()), sigma, scores.get("val_conservation_gap"), self.steps)
