"""Euler sampler for flow matching / rectified flow: the first-order solver of the flow ODE.

Liu et al. 2022 (rectified flow) and Lipman et al. 2023 (flow matching) both sample by integrating
``dx/dt = v(x, t)`` from noise (``t = 0``) to data (``t = 1``); Euler takes one model evaluation per interval and has
global error O(1/n). On a rectified (straight) flow it is exact in one step.
"""

from __future__ import annotations

import torch

from ups.models.samplers.base import FlowSampler, StepOutput


class EulerSampler(FlowSampler):
    """Explicit Euler on the flow ODE (one model evaluation per step)."""

    order = 1

    def step(
        self,
        model_output: torch.Tensor,
        t: float | torch.Tensor,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """One Euler step; ``generator`` is unused (the ODE is deterministic)."""
        i = self._begin_step(t)
        t_i, t_next = float(self.grid[i]), float(self.grid[i + 1])
        # x_{i+1} = x_i + (t_{i+1} − t_i) · v(x_i, t_i)        Euler on dZ_t = v(Z_t, t) dt (Liu eq. 1, ODE form)
        prev_sample = x + (t_next - t_i) * model_output
        # x̂_1 = x_t + (1 − t) · v: the straight line to the data end (exact for a rectified flow)
        pred_original = x + (1 - t_i) * model_output
        return StepOutput(prev_sample=prev_sample, pred_original=pred_original)
