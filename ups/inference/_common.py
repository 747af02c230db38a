"""What every rollout shares: evaluation mode, the start state, and decoding a latent to a physical frame."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ups.models.latent_operator import LatentOperator


@contextmanager
def evaluating(operator: LatentOperator, *others: nn.Module | None) -> Iterator[None]:
    """Eval mode for every given module (restored afterwards), no gradients, the operator's autocast."""
    modules = [m for m in (operator, *others) if m is not None]
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad(), operator.autocast():
            yield
    finally:
        for m, mode in zip(modules, was_training, strict=True):
            m.train(mode)


def start_state(
    operator: LatentOperator, inputs: torch.Tensor, params: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(u0, z0, cond)``: the last input frame (physical, float32, on the model's device) ``[B, C, *S]``, its latent
    ``[B, N, E]`` (float32) and the condition vector ``[B, Dc]`` (None without AdaLN), as ``operator.rollout`` makes
    them."""
    u0 = inputs[:, -1].to(operator.grid.device, torch.float32)
    cond = operator.condition(u0.shape[0], params=params)
    z0 = operator.encode(operator.normalise(u0)).float()
    return u0, z0, cond


def decode_physical(operator: LatentOperator, z: torch.Tensor) -> torch.Tensor:
    """Latent ``[B, N, E]`` → physical frame on the task grid ``[B, C, *S]`` (float32)."""
    return operator.denormalise(operator.decode(z).float())
