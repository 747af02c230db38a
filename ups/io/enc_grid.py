"""GridEncoder: patch embedding of a 1D or 2D grid into a fixed number of latent tokens.

Patches of ``patch_size`` cells per axis are flattened and embedded by a linear map (a convolution with kernel =
stride = patch), as in the patch embedding of PDE-Transformer (Holzschuh et al. 2025). The patch grid is then mapped
onto the token grid (``latent.tokens`` cells, see :func:`~ups.io.geometry.token_grid_shape`) by one linear map per
group: when there are more patches than tokens, ``r`` neighbouring patches (per axis) merge into one token; when there
are fewer, each patch splits into ``s`` tokens. Tokens come out in the token grid's sequence order (Morton in 2D), the
order the backbone's windows and pooling assume, with the fixed token count UPT (Alkin et al. 2024) works with.

With ``channel_separated`` every physical channel is embedded on its own with shared weights plus a learned channel
embedding, giving C token streams (``[B, C·T, E]``, stream-major) instead of one mixed stream (``[B, T, E]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ups.io.geometry import token_anchors, token_grid_shape, token_order


class GridEncoder(nn.Module):
    """``u [B, C, *S] -> z [B, C'·T, E]`` with C' = C if ``channel_separated`` else 1.

    Args:
        in_channels: physical channels C.
        grid_shape: S, one or two axes; each must be a multiple of ``patch_size``.
        latent_dim: token width E.
        tokens: tokens per stream T.
        patch_size: cells per patch along each axis.
        channel_separated: one token stream per channel.

    Raises:
        ValueError: the grid does not split into patches, or T cannot tile the patch grid (see ``token_grid_shape``).
    """

    def __init__(
        self,
        in_channels: int,
        grid_shape: Sequence[int],
        latent_dim: int,
        tokens: int,
        *,
        patch_size: int = 1,
        channel_separated: bool = False,
    ):
        super().__init__()
        self.grid_shape, self.patch_size = tuple(grid_shape), patch_size
        self.channel_separated, self.in_channels = channel_separated, in_channels
        if any(n % patch_size for n in self.grid_shape):
            raise ValueError(f"grid {list(self.grid_shape)} is not a whole number of patches of {patch_size}")
        patches = tuple(n // patch_size for n in self.grid_shape)
        self.token_shape = token_grid_shape(tokens, patches, tile=True)
        self.merge = tuple(max(p // t, 1) for p, t in zip(patches, self.token_shape, strict=True))
        self.split = tuple(max(t // p, 1) for p, t in zip(patches, self.token_shape, strict=True))
        c_in = 1 if channel_separated else in_channels
        self.embed = nn.Linear(c_in * patch_size ** len(patches), latent_dim)
        self.mix = nn.Linear(math.prod(self.merge) * latent_dim, math.prod(self.split) * latent_dim)
        self.channel_embed = nn.Parameter(torch.randn(in_channels, latent_dim) * 0.02) if channel_separated else None
        order = token_order(self.token_shape)
        self.reorder = not torch.equal(order, torch.from_numpy(np.arange(len(order))))  # Morton (2D) vs identity
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("anchors", token_anchors(self.token_shape, order), persistent=False)

    @property
    def n_streams(self) -> int:
        return self.in_channels if self.channel_separated else 1

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        b = u.shape[0]
        if self.channel_separated:
            u = rearrange(u, "b c ... -> (b c) 1 ...")
        p = self.patch_size
        if len(self.grid_shape) == 1:
            h = self.embed(rearrange(u, "b c (n p) -> b n (p c)", p=p))
            h = rearrange(nn.functional.gelu(h), "b (t r) e -> b t (r e)", r=self.merge[0])
            z = rearrange(self.mix(h), "b t (s e) -> b (t s) e", s=self.split[0])
        else:
            h = self.embed(rearrange(u, "b c (x p) (y q) -> b x y (p q c)", p=p, q=p))
            r0, r1 = self.merge
            h = rearrange(nn.functional.gelu(h), "b (x r0) (y r1) e -> b x y (r0 r1 e)", r0=r0, r1=r1)
            s0, s1 = self.split
            # row-major over the token grid (x·s0, y·s1)
            z = rearrange(self.mix(h), "b x y (s0 s1 e) -> b (x s0 y s1) e", s0=s0, s1=s1)
        if self.reorder:
            z = z[:, self.order]
        if self.channel_separated:
            z = rearrange(z, "(b c) t e -> b c t e", b=b) + self.channel_embed[:, None]
            z = rearrange(z, "b c t e -> b (c t) e")
        return z
