"""The task's own reference solver as a :class:`~ups.models.base.Surrogate`, for the solver baseline.

It restarts the solver that generated the data from the last input frame (the same stored frame the surrogates start
from), on a grid ``coarsen`` times coarser than the stored one and with steps ``step`` times longer
(:meth:`ups.data.solvers.base.Task.solve_from`), and returns the frames on the stored grid. Scored and timed by the
same evaluator as every model (same trajectories, same process and thread count), each setting is one point of the
solver's cost–error curve (:mod:`ups.metrics.matched`). It has no weights and no training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ups.data.solvers.base import Task


class ReferenceSolver:
    """Task ``task`` (size config ``size``) solved from stored frames of ``split`` at one ladder setting."""

    n_input = 1

    def __init__(self, task: type[Task], size: Any, split: str, *, coarsen: int = 1, step: float = 1.0):
        self.task, self.size, self.split = task, size, split
        self.coarsen, self.step = coarsen, step

    def rollout(self, inputs: torch.Tensor, steps: int, params: torch.Tensor | None = None) -> torch.Tensor:
        """Physical ``inputs [B, n_input, C, *S]`` → ``[B, steps, C, *S]`` in the inputs' dtype, on their device."""
        frames0 = inputs[:, -1].detach().to("cpu", torch.float64).numpy()
        p = np.zeros((len(frames0), 0)) if params is None else params.detach().to("cpu", torch.float64).numpy()
        out = self.task.solve_from(self.size, self.split, frames0, p, steps, coarsen=self.coarsen, step=self.step)
        return torch.from_numpy(np.ascontiguousarray(out)).to(inputs.device, inputs.dtype)

    def num_parameters(self) -> int:
        return 0
