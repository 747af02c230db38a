"""What every flow sampler shares: the step output, the time grid and the forward (noising) path.

Time convention (Liu et al. 2022, "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified
Flow"; Lipman et al. 2023, "Flow Matching for Generative Modeling"): ``t`` runs from noise (``t = 0``) to data
(``t = 1``) along the straight path

    x_t = t · x_1 + (1 − t) · x_0,     x_0 ~ N(0, I),  x_1 ~ data          (Liu eq. 1; Lipman eq. 20 with σ_min = 0)

whose velocity is ``x_1 − x_0``. A model predicts the velocity ``v(x_t, t)`` and a sampler integrates the ODE
``dx/dt = v(x, t)`` from ``t = 0`` to ``t = 1``. Every sampler is driven by the same loop (as diffusers schedulers)::

    sampler.set_timesteps(n)
    x = noise
    for t in sampler.timesteps:
        x = sampler.step(model(x, t), t, x, generator=g).prev_sample

``step`` must be called once per entry of ``timesteps``, in order; ``set_timesteps`` starts a new pass.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

#: How the ``n + 1`` grid times are spread over [0, 1]: ``linear`` (uniform) or ``cosine``
#: (``t_i = (1 − cos(π i / n)) / 2``, denser near noise and data).
Spacing = Literal["linear", "cosine"]


@dataclass(frozen=True)
class StepOutput:
    """Result of one sampler step.

    Attributes:
        prev_sample: the state after the step, one step closer to the data (diffusers' name for it).
        pred_original: the step's estimate of the data end ``x_1``.
    """

    prev_sample: torch.Tensor
    pred_original: torch.Tensor


def time_grid(num_steps: int, spacing: Spacing = "linear") -> torch.Tensor:
    """The ``num_steps + 1`` times ``0 = t_0 < … < t_n = 1`` (float64) a sampler steps between."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    if spacing == "linear":
        return u
    if spacing == "cosine":
        grid = (1 - torch.cos(math.pi * u)) / 2
        grid[0], grid[-1] = 0.0, 1.0  # exact ends, no round-off
        return grid
    raise ValueError(f"unknown spacing {spacing!r}; valid: cosine, linear")


def expand_time(t: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """``t`` as a float, or a per-sample tensor ``[B]`` viewed as ``[B, 1, …]`` to broadcast against ``like``."""
    if not isinstance(t, torch.Tensor):
        return float(t)
    if t.ndim == 0:
        return float(t)
    return t.to(like).reshape(-1, *([1] * (like.ndim - 1)))


class FlowSampler(abc.ABC):
    """Base of the flow samplers: the time grid, the forward path and the step bookkeeping.

    Attributes:
        order: model evaluations per grid interval.
        grid: ``[n + 1]`` float64 times from 0 to 1, set by :meth:`set_timesteps`.
        timesteps: ``[n · order]`` float64 times at which the model is evaluated, in call order.
    """

    order: ClassVar[int] = 1

    def __init__(self, spacing: Spacing = "linear"):
        self.spacing: Spacing = spacing
        self.grid = torch.zeros(0, dtype=torch.float64)
        self.timesteps = torch.zeros(0, dtype=torch.float64)
        self._index = 0

    @property
    def num_steps(self) -> int:
        """Number of grid intervals ``n``."""
        return max(len(self.grid) - 1, 0)

    def set_timesteps(self, num_steps: int) -> None:
        """Lay out ``num_steps`` intervals on [0, 1] and start a new pass."""
        self.grid = time_grid(num_steps, self.spacing)
        self.timesteps = self._model_times(self.grid)
        self._index = 0

    def _model_times(self, grid: torch.Tensor) -> torch.Tensor:
        return grid[:-1]

    @staticmethod
    def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Forward path ``x_t = t · x0 + (1 − t) · noise`` (Liu et al. 2022, eq. 1).

        Args:
            x0: clean sample (the data end, ``t = 1``; diffusers' name for it), ``[B, …]``.
            noise: ``[B, …]`` standard normal noise (the ``t = 0`` end).
            t: a float, or ``[B]`` per-sample times.
        """
        t = expand_time(t, x0)
        return t * x0 + (1 - t) * noise

    def _begin_step(self, t: float | torch.Tensor) -> int:
        """Index of this call in ``timesteps``; checks that ``t`` is the time the loop is at."""
        if self._index >= len(self.timesteps):
            raise RuntimeError("step called past the last timestep; call set_timesteps to start a new pass")
        expected = float(self.timesteps[self._index])
        if abs(float(t) - expected) > 1e-6:
            raise ValueError(f"step {self._index} expects t = {expected:.6g}, got {float(t):.6g}")
        index = self._index
        self._index += 1
        return index

    @abc.abstractmethod
    def step(
        self,
        model_output: torch.Tensor,
        t: float | torch.Tensor,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """Advance ``x`` from time ``t`` given the model's velocity ``model_output = v(x, t)``."""
