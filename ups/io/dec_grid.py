"""GridDecoder: latent tokens back onto the task grid, the inverse layout of :class:`~ups.io.enc_grid.GridEncoder`.

The un-patchify head of PDE-Transformer (Holzschuh et al. 2025): each token is normalised and mapped linearly to the
patches it covers (``merge`` patches per token, or its share of a patch when tokens split patches), and each patch to
its ``patch_size^d`` cells. A token's output lands exactly on the cells the encoder read it from, so the decoder is
local and costs one small matmul per token — against a cross-attention from every grid point to every token for the
any-point decoder. It decodes on the task grid only; off-grid queries need ``latent.decoder.kind: anypoint``.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from ups.io.enc_grid import GridEncoder


class GridDecoder(nn.Module):
    """``z [B, C'·T, E] -> u [B, prod(S), C]`` on the encoder's grid, points in row-major order.

    Args:
        encoder: the GridEncoder whose token layout (grid, patches, merge/split, sequence order, streams) is inverted.
        out_channels: physical channels C.
        latent_dim: token width E.
        hidden_dim: width of each patch's feature before the cell values.
    """

    def __init__(self, encoder: GridEncoder, out_channels: int, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.grid_shape, self.patch_size = encoder.grid_shape, encoder.patch_size
        self.merge, self.split = encoder.merge, encoder.split
        self.channel_separated, self.out_channels = encoder.channel_separated, out_channels
        c_out = 1 if self.channel_separated else out_channels
        self.norm = nn.LayerNorm(latent_dim)
        self.unmix = nn.Linear(math.prod(self.split) * latent_dim, math.prod(self.merge) * hidden_dim)
        self.out = nn.Linear(hidden_dim, c_out * self.patch_size ** len(self.grid_shape))
        self.reorder = encoder.reorder
        self.register_buffer("inverse_order", torch.argsort(encoder.order), persistent=False)
        self.token_shape = encoder.token_shape

    @property
    def n_points(self) -> int:
        return math.prod(self.grid_shape)

    def forward(self, z: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """Decode every grid point; ``points``, when given, must be the task grid itself (``[prod(S), d]``)."""
        if points is not None and points.shape[-2] != self.n_points:
            raise ValueError(
                f"the grid decoder decodes the {self.n_points} task grid points only, got {points.shape[-2]} points"
                " (latent.decoder.kind: anypoint decodes anywhere)"
            )
        b = z.shape[0]
        if self.channel_separated:
            z = rearrange(z, "b (c t) e -> (b c) t e", c=self.out_channels)
        z = self.norm(z)
        if self.reorder:
            z = z[:, self.inverse_order]  # sequence order -> row-major token grid
        p = self.patch_size
        if len(self.grid_shape) == 1:
            h = rearrange(z, "b (t s) e -> b t (s e)", s=self.split[0])
            h = rearrange(nn.functional.gelu(self.unmix(h)), "b t (r e) -> b (t r) e", r=self.merge[0])
            u = rearrange(self.out(h), "b n (p c) -> b (n p) c", p=p)
        else:
            tx, ty = self.token_shape
            s0, s1 = self.split
            h = rearrange(z, "b (x s0 y s1) e -> b x y (s0 s1 e)", s0=s0, s1=s1, x=tx // s0, y=ty // s1)
            r0, r1 = self.merge
            h = rearrange(nn.functional.gelu(self.unmix(h)), "b x y (r0 r1 e) -> b (x r0) (y r1) e", r0=r0, r1=r1)
            u = rearrange(self.out(h), "b x y (p q c) -> b (x p y q) c", p=p, q=p)
        if self.channel_separated:
            u = rearrange(u, "(b c) n 1 -> b n c", b=b)
        return u
