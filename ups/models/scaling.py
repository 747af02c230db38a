"""Physical <-> model-space scaling and the autocast policy shared by every trained surrogate.

The latent operator and the grid baselines normalise each channel with train-split statistics held as ``mean``/``std``
buffers, and autocast on CUDA when the config asks; one mixin keeps the two identical.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from ups.config.schema import UPSConfig


class FieldScaling:
    """Mixin for an ``nn.Module`` with ``mean`` and ``std`` buffers ``[C]`` and a ``config`` (:class:`UPSConfig`)."""

    mean: torch.Tensor
    std: torch.Tensor
    config: UPSConfig

    def normalise(self, u: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        """Physical → model space along ``channel_dim`` (1 for ``[B, C, *S]``, 2 for ``[B, T, C, *S]``, -1 for point
        values ``[B, N, C]``)."""
        shape = [1] * u.ndim
        shape[channel_dim] = -1
        return (u - self.mean.view(shape)) / self.std.view(shape)

    def denormalise(self, u: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
        """Model → physical space (inverse of :meth:`normalise`)."""
        shape = [1] * u.ndim
        shape[channel_dim] = -1
        return u * self.std.view(shape) + self.mean.view(shape)

    def autocast(self) -> AbstractContextManager:
        """bf16 (or fp16) autocast on CUDA when ``training.amp`` and ``run.mixed_precision`` ask, else a no-op."""
        precision = self.config.run.mixed_precision
        if self.mean.device.type != "cuda" or not self.config.training.amp or precision == "fp32":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
