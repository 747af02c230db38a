"""Normalisation layers: RMSNorm (used on queries and keys, "QK RMSNorm") and the AdaLN modulation helper.

QK RMSNorm keeps attention logits bounded in deep stacks, one of the stabilisers PDE-Transformer (Holzschuh et al.
2025) and the playbook rely on; ``modulate`` is the DiT/AdaLN affine map ``x·(1 + scale) + shift``.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last axis with a learned gain: ``x / rms(x) · g``.

    Computed in float32 (bf16 squares lose too many bits), returned in the input dtype.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim] -> [..., dim]``."""
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.to(x.dtype) * self.weight.to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN affine map ``x·(1 + scale) + shift``; ``shift``/``scale`` broadcast against ``x`` (``[B, 1.., D]``)."""
    return x * (1 + scale) + shift
