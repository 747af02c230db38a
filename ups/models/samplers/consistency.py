"""Few-step consistency sampler (Song et al. 2023, "Consistency Models", Algorithm 1) in flow-matching time.

A consistency model ``f_θ(x_t, t)`` maps any point of an ODE trajectory to the trajectory's data end. Here it is
parameterised by a velocity-like network output ``F_θ``:

    f_θ(x, t) = c_skip(t) · x + c_out(t) · F_θ(x, t),   c_skip = 1, c_out = 1 − t            (Song eq. 5)

so the boundary condition ``f_θ(x, 1) = x`` (Song eq. 3, with data at ``t = 1`` here) holds by construction, and a
student copied from a flow-matching teacher starts as one Euler step of the teacher. Multistep sampling (Algorithm 1)
jumps to the data end, re-noises to the next time point with fresh noise along the forward path, and jumps again:

    x̂_1 = f_θ(x_{τ_i}, τ_i);     x_{τ_{i+1}} = τ_{i+1} · x̂_1 + (1 − τ_{i+1}) · s · z,   z ~ N(0, I)

where ``s`` is the sampler's ``noise_scale`` (1 for the trained distribution; 0 collapses to the deterministic map).
"""

from __future__ import annotations

import torch

from ups.models.samplers.base import FlowSampler, Spacing, StepOutput


class ConsistencySampler(FlowSampler):
    """Multistep consistency sampling: ``n`` network evaluations, fresh noise between them."""

    order = 1

    def __init__(self, spacing: Spacing = "linear", noise_scale: float = 1.0):
        super().__init__(spacing)
        self.noise_scale = float(noise_scale)

    def step(
        self,
        model_output: torch.Tensor,
        t: float | torch.Tensor,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepOutput:
        """Jump to the data end; re-noise to the next time point unless this was the last one.

        Args:
            model_output: the network output ``F_θ(x, t)`` (a velocity).
            t: the current time ``τ_i``.
            x: the current state ``x_{τ_i}``.
            generator: source of the re-noising noise.
        """
        i = self._begin_step(t)
        t_i = float(self.grid[i])
        # x̂_1 = f_θ(x, τ_i) = x + (1 − τ_i) · F_θ(x, τ_i)                                       (Song eq. 5)
        pred_original = x + (1 - t_i) * model_output
        if i == len(self.timesteps) - 1:
            return StepOutput(prev_sample=pred_original, pred_original=pred_original)
        # x_{τ_{i+1}} = τ_{i+1} · x̂_1 + (1 − τ_{i+1}) · s · z                           (Algorithm 1, re-noise)
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        prev_sample = self.add_noise(pred_original, self.noise_scale * z, float(self.grid[i + 1]))
        return StepOutput(prev_sample=prev_sample, pred_original=pred_original)
