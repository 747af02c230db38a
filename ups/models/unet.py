"""U-Net baseline: a compact 1D/2D U-Net (Ronneberger et al. 2015) in the modern form PDE surrogate benchmarks use
(PDEArena, Gupta & Brandstetter 2022): pre-norm residual blocks (GroupNorm → GELU → conv, twice), strided-conv
downsampling, nearest upsampling + conv, skip connections by concatenation.

The network predicts the increment of a residual next-frame model, ``u_{t+1} = u_t + UNet([u_t, p])``
(:class:`~ups.models.baseline.GridBaseline`). Convolutions pad circularly on periodic tasks — the net is then exactly
translation-equivariant for shifts by multiples of ``2**levels`` cells (the strided convolutions see every other
cell) — and by replication otherwise: in normalised space zero is the field's mean, not a wall value, and
replication extends the field as a no-flux wall would.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from ups.models.base import MODELS
from ups.models.baseline import GridBaseline


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 when they divide ``channels`` (PDEArena's choice), else the largest power of 2 that does."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """``skip(x) + conv(act(norm(conv(act(norm(x))))))``, with a 1×1 convolution as skip when the width changes."""

    def __init__(self, conv: type[nn.Module], c_in: int, c_out: int, padding_mode: str):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = conv(c_in, c_out, 3, padding=1, padding_mode=padding_mode)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1, padding_mode=padding_mode)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.gelu(self.norm2(h)))


class UNet(nn.Module):
    """A plain U-Net ``[B, in_channels, *S] -> [B, out_channels, *S]`` on a 1D or 2D grid.

    Args:
        ndim: 1 or 2 spatial axes.
        in_channels, out_channels: channels in and out.
        width: channels at full resolution; level ``i`` has ``width · 2**i``.
        levels: stride-2 downsamplings (each followed by one residual block; one more at full resolution).
        padding_mode: ``circular`` (periodic), ``replicate`` or ``zeros``.

    Grid sizes need not be powers of two: a level halves a size rounding up, and upsampling returns to the skip's
    exact size. The output convolution starts at zero, so an untrained residual model is persistence.
    """

    def __init__(self, ndim: int, in_channels: int, out_channels: int, width: int, levels: int, padding_mode: str):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[ndim]
        widths = [width * 2**i for i in range(levels + 1)]
        self.lift = conv(in_channels, width, 3, padding=1, padding_mode=padding_mode)
        self.enc = nn.ModuleList(ResBlock(conv, w, w, padding_mode) for w in widths[:-1])
        self.down = nn.ModuleList(
            conv(w, w2, 3, stride=2, padding=1, padding_mode=padding_mode) for w, w2 in pairwise(widths)
        )
        self.middle = ResBlock(conv, widths[-1], widths[-1], padding_mode)
        pairs = list(pairwise(widths))[::-1]  # (fine, coarse), coarsest first
        self.up = nn.ModuleList(conv(w2, w, 3, padding=1, padding_mode=padding_mode) for w, w2 in pairs)
        self.dec = nn.ModuleList(ResBlock(conv, 2 * w, w, padding_mode) for w, _ in pairs)
        self.out_norm = nn.GroupNorm(_groups(width), width)
        self.out = conv(width, out_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lift(x)
        skips = []
        for block, down in zip(self.enc, self.down, strict=True):
            h = block(h)
            skips.append(h)
            h = down(h)  # [B, 2w, ceil(S / 2)]
        h = self.middle(h)
        for up, block in zip(self.up, self.dec, strict=True):
            skip = skips.pop()
            h = up(F.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = block(torch.cat([h, skip], dim=1))  # [B, 2w, S] -> [B, w, S]
        return self.out(F.gelu(self.out_norm(h)))


@MODELS.register("unet")
class UNetBaseline(GridBaseline):
    """The U-Net as a residual next-frame surrogate; sizes from ``baseline.width`` and ``baseline.levels``."""

    name = "unet"

    def make_net(self, in_channels: int, out_channels: int) -> nn.Module:
        b = self.config.baseline
        padding = "circular" if self.spec.bc == "periodic" else "replicate"
        return UNet(self.spec.ndim, in_channels, out_channels, b.width, b.levels, padding)
