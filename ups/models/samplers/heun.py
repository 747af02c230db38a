"""Heun sampler for flow matching / rectified flow: the explicit trapezoidal rule, second order.

Each interval ``[t_i, t_{i+1}]`` takes two model evaluations: an Euler predictor, then the average of the slopes at
both ends (Karras et al. 2022, Algorithm 1, applied to the flow ODE ``dx/dt = v(x, t)`` of Lipman et al. 2023 and
Liu et al. 2022). Global error O(1/n²). As in diffusers' ``HeunDiscreteScheduler`` each model time appears in
``timesteps`` in call order, so the sampling loop is the same as for every other sampler: ``timesteps`` is
``[t_0, t_1, t_1, t_2, …, t_{n-1}, t_n]`` and the state between the two calls of an interval is kept here.
"""

from __future__ import annotations

import torch

from ups.models.samplers.base import FlowSampler, Spacing, StepOutput


class HeunSampler(FlowSampler):
    """Heun's method (explicit trapezoid) on the flow ODE: two model evaluations per interval."""

    order = 2

    def __init__(self, spacing: Spacing = "linear"):
        super().__init__(spacing)
        self._x_i: torch.Tensor | None = None  # state at the start of the current interval
        self._v_i: torch.Tensor | None = None  # slope there

    def _model_times(self, grid: torch.Tensor) -> torch.Tensor:
        # [t_0, t_1, t_1, t_2, ..., t_{n-1}, t_n]: predictor slope at t_i, corrector slope at t_{i+1}
        return torch.stack([grid[:-1], grid[1:]], dim=1).reshape(-1)

    def set_timesteps(self, num_steps: int) -> None:
        super().set_timesteps(num_steps)
        self._x_i = self._v_i = None

    def step(
        self,
        model_output: torch.Tensor,
        t: float | torch.Tensor,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """Predictor (even calls) or corrector (odd calls) half of a Heun step; ``generator`` is unused."""
        k = self._begin_step(t)
        i = k // 2
        t_i, t_next = float(self.grid[i]), float(self.grid[i + 1])
        h = t_next - t_i
        if k % 2 == 0:
            self._x_i, self._v_i = x, model_output
            # predictor: x̃_{i+1} = x_i + h · v(x_i, t_i)                                    (Euler)
            prev_sample = x + h * model_output
            pred_original = x + (1 - t_i) * model_output
        else:
            assert self._x_i is not None and self._v_i is not None
            # corrector: x_{i+1} = x_i + h/2 · (v(x_i, t_i) + v(x̃_{i+1}, t_{i+1}))        (trapezoidal rule)
            prev_sample = self._x_i + 0.5 * h * (self._v_i + model_output)
            # x̂_1 from the new state along the latest slope
            pred_original = prev_sample + (1 - t_next) * model_output
            self._x_i = self._v_i = None
        return StepOutput(prev_sample=prev_sample, pred_original=pred_original)
