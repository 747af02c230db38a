"""The PDE-Transformer block (Holzschuh et al. 2025): pre-norm, AdaLN-Zero, window attention, channel attention, MLP.

Tokens are ``[B, C, N, D]``: C token streams (one per physical channel when tokens are channel-separated, else one),
N tokens per stream. One block is

    x = x + g₁ · WindowAttn(modulate(LN(x), shift₁, scale₁))          # along N, within windows, optionally shifted
    x = x + g₂ · ChannelAttn(modulate(LN(x), shift₂, scale₂))         # along C at each token (C > 1 only)
    x = x + g₃ · MLP(modulate(LN(x), shift₃, scale₃))

with (shift, scale, g) from the conditioning vector through a zero-initialised linear map, so g = 0 and the block is
the identity at initialisation (AdaLN-Zero, as in DiT). Without AdaLN the norms carry their own affine parameters and
the gates are 1. Each residual branch is dropped per sample with probability ``drop_path`` in training (stochastic
depth).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ups.core.attention import Attention, WindowAttention
from ups.core.conditioning import AdaLNModulation
from ups.core.norms import modulate


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``p`` in training, rescale the rest."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class MLP(nn.Module):
    """``Linear(D, rD) → GELU → Linear(rD, D)`` with optional dropout."""

    def __init__(self, dim: int, ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, ratio * dim), nn.GELU(approximate="tanh"), nn.Dropout(dropout), nn.Linear(ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PDETBlock(nn.Module):
    """One PDE-Transformer block: ``x [B, C, N, D], c [B, Dc] | None -> [B, C, N, D]``.

    Args:
        dim: token width D.
        num_heads: attention heads.
        window: tokens per attention window.
        mlp_ratio: MLP expansion.
        channel_attention: attend across the C token streams (channel-separated tokens with C > 1).
        cond_dim: width of the conditioning vector for AdaLN-Zero; None: plain pre-norm block, no conditioning.
        qk_norm: QK RMSNorm in both attentions.
        shift: this block's windows are shifted by half a window.
        drop_path: stochastic-depth rate of this block.
        dropout: attention/MLP dropout.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        *,
        mlp_ratio: int = 4,
        channel_attention: bool = False,
        cond_dim: int | None = None,
        qk_norm: bool = True,
        shift: bool = False,
        drop_path: float = 0.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.shift = shift
        adaln = cond_dim is not None
        n_sub = 3 if channel_attention else 2
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6, elementwise_affine=not adaln) for _ in range(n_sub))
        self.window_attn = WindowAttention(dim, num_heads, window, qk_norm=qk_norm, dropout=dropout)
        self.channel_attn = Attention(dim, num_heads, qk_norm=qk_norm, dropout=dropout) if channel_attention else None
        self.mlp = MLP(dim, mlp_ratio, dropout)
        self.modulation = AdaLNModulation(cond_dim, dim, 3 * n_sub) if adaln else None
        self.drop_path = DropPath(drop_path)

    def _mods(self, c: torch.Tensor | None) -> list[tuple[torch.Tensor, ...] | None]:
        if self.modulation is None:
            return [None] * len(self.norms)
        m = [rearrange(t, "b d -> b 1 1 d") for t in self.modulation(c)]
        return [tuple(m[3 * i : 3 * i + 3]) for i in range(len(self.norms))]

    def _branch(self, x: torch.Tensor, i: int, mod, fn) -> torch.Tensor:
        h = self.norms[i](x)
        if mod is not None:
            shift, scale, gate = mod
            return x + self.drop_path(gate * fn(modulate(h, shift, scale)))
        return x + self.drop_path(fn(h))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, *, periodic: bool = True) -> torch.Tensor:
        b, n_streams = x.shape[:2]
        mods = self._mods(c)

        def window(h: torch.Tensor) -> torch.Tensor:
            out = self.window_attn(rearrange(h, "b c n d -> (b c) n d"), shift=self.shift, periodic=periodic)
            return rearrange(out, "(b c) n d -> b c n d", b=b)

        x = self._branch(x, 0, mods[0], window)
        if self.channel_attn is not None:

            def channel(h: torch.Tensor) -> torch.Tensor:
                out = self.channel_attn(rearrange(h, "b c n d -> (b n) c d"))
                return rearrange(out, "(b n) c d -> b c n d", b=b)

            x = self._branch(x, 1, mods[1], channel)
        return self._branch(x, len(self.norms) - 1, mods[-1], self.mlp)
