"""Small conditional velocity networks for the flow models: a token transformer and a conv U-Net.

``TokenDenoiser`` (for the residual corrector, on latent tokens ``[B, N, D]``) is a DiT-style stack (Peebles & Xie
2023, "Scalable Diffusion Models with Transformers"): pre-norm blocks whose LayerNorms are modulated by AdaLN-Zero
from an embedding of the flow time ``t`` and an optional global condition vector; attention through
``F.scaled_dot_product_attention`` (flash kernels on GPU). The operator's prediction enters by concatenation with
the noisy state, token by token. ``ConvDenoiser`` (for the steady prior, on grid fields ``[B, C, *S]`` in 1D or 2D)
is a small U-Net (Ronneberger et al. 2015) conditioned on the input field by channel concatenation and on ``t`` by
FiLM. Both zero-initialise their output, so an untrained model predicts zero velocity.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field, model_validator
from torch import nn

from ups.config.schema import NonNegInt, PosInt, Section


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features (Vaswani et al. 2017) of ``x`` ``[B]`` → ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / max(half, 1))
    angles = x.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))  # odd dim: one zero feature


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Features ``[B, dim]`` of the flow time ``t ∈ [0, 1]`` ``[B]``, scaled ×1000 as in DDPM/DiT."""
    return sinusoidal_embedding(1000.0 * t, dim)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """AdaLN: ``x · (1 + scale) + shift``; per-sample ``shift, scale`` ``[B, H]``, tokens ``x`` ``[B, N, H]``."""
    return x * (1 + rearrange(scale, "b h -> b 1 h")) + rearrange(shift, "b h -> b 1 h")


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


# --- token transformer ----------------------------------------------------------------------------------------------


class TokenDenoiserConfig(Section):
    """Sizes of :class:`TokenDenoiser`."""

    dim: PosInt  # D: features per token of the state and of the context
    hidden_dim: PosInt
    num_layers: PosInt
    num_heads: PosInt
    cond_dim: NonNegInt = 0  # global condition vector size; 0: none
    mlp_ratio: PosInt = 4

    @model_validator(mode="after")
    def _heads_divide(self) -> TokenDenoiserConfig:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_dim ({self.hidden_dim})")
        return self


def default_num_heads(hidden_dim: int, head_dim: int = 16) -> int:
    """Most heads in (8, 4, 2) that divide ``hidden_dim`` with at least ``head_dim`` features each, else 1."""
    return next((h for h in (8, 4, 2) if hidden_dim % h == 0 and hidden_dim // h >= head_dim), 1)


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block with AdaLN-Zero conditioning (DiT): attention then MLP, each gated."""

    def __init__(self, hidden_dim: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.proj = nn.Linear(hidden_dim, hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_dim, mlp_ratio * hidden_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * hidden_dim, hidden_dim),
        )
        # zero init: every gate starts at 0, so the block starts as the identity (AdaLN-Zero)
        self.ada = nn.Sequential(nn.SiLU(), _zero(nn.Linear(hidden_dim, 6 * hidden_dim)))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, N, H]``, ``emb`` ``[B, H]`` → ``[B, N, H]``."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(emb).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = rearrange(self.qkv(h), "b n (three heads d) -> three b heads n d", three=3, heads=self.num_heads)
        a = rearrange(F.scaled_dot_product_attention(q, k, v), "b heads n d -> b n (heads d)")
        x = x + rearrange(gate1, "b h -> b 1 h") * self.proj(a)
        return x + rearrange(gate2, "b h -> b 1 h") * self.mlp(modulate(self.norm2(x), shift2, scale2))


class TokenDenoiser(nn.Module):
    """Velocity network on tokens: ``v(x_t, t | context, cond)`` with ``x_t, context`` ``[B, N, D]``."""

    def __init__(self, config: TokenDenoiserConfig):
        super().__init__()
        self.config = config
        d, h = config.dim, config.hidden_dim
        self.embed = nn.Linear(2 * d, h)  # [x_t, context] per token
        self.time_mlp = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h))
        self.cond_proj = nn.Linear(config.cond_dim, h) if config.cond_dim else None
        self.blocks = nn.ModuleList(AdaLNBlock(h, config.num_heads, config.mlp_ratio) for _ in range(config.num_layers))
        self.norm_out = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), _zero(nn.Linear(h, 2 * h)))
        self.out = _zero(nn.Linear(h, d))

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted velocity ``[B, N, D]``.

        Args:
            x: ``[B, N, D]`` state at time ``t``.
            t: ``[B]`` flow times in [0, 1].
            context: ``[B, N, D]`` per-token conditioning (the operator's prediction).
            cond: ``[B, cond_dim]`` global condition, required when ``cond_dim > 0``.
        """
        h = self.embed(torch.cat([x, context], dim=-1))
        # token index as sinusoidal position, so that token order is visible to the permutation-equivariant blocks
        pos = sinusoidal_embedding(torch.arange(x.shape[1], device=x.device), self.config.hidden_dim)
        h = h + pos.to(h.dtype)
        emb = self.time_mlp(time_embedding(t, self.config.hidden_dim).to(h.dtype))
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError(f"this denoiser is conditioned on a [B, {self.config.cond_dim}] vector; got cond=None")
            emb = emb + self.cond_proj(cond)
        elif cond is not None:
            raise ValueError("cond given, but this denoiser was built with cond_dim=0")
        for block in self.blocks:
            h = block(h, emb)
        shift, scale = self.ada_out(emb).chunk(2, dim=-1)
        return self.out(modulate(self.norm_out(h), shift, scale))


# --- conv U-Net -----------------------------------------------------------------------------------------------------


class ConvDenoiserConfig(Section):
    """Sizes of :class:`ConvDenoiser`."""

    ndim: Literal[1, 2]  # spatial dimensions
    channels: PosInt  # channels of the state (the output field)
    cond_channels: NonNegInt  # channels of the conditioning field, concatenated to the input
    width: PosInt = 32  # channels at full resolution; doubled per level
    levels: int = Field(2, ge=0, le=4)  # down/up-sampling stages
    padding_mode: Literal["zeros", "circular"] = "zeros"  # circular for periodic domains


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, FiLM by the time embedding, → GroupNorm → SiLU → conv (zero init), plus skip."""

    def __init__(self, conv: type[nn.Module], c_in: int, c_out: int, emb_dim: int, padding_mode: str):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = conv(c_in, c_out, 3, padding=1, padding_mode=padding_mode)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = _zero(conv(c_out, c_out, 3, padding=1, padding_mode=padding_mode))
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).chunk(2, dim=-1)  # [B, C] each
        spatial = " ".join("1" * (x.ndim - 2))
        h = h * (1 + rearrange(scale, f"b c -> b c {spatial}")) + rearrange(shift, f"b c -> b c {spatial}")
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ConvDenoiser(nn.Module):
    """Velocity network on grid fields: ``v(x_t, t | a)`` with ``x_t`` ``[B, C, *S]`` and ``a`` ``[B, C_a, *S]``."""

    def __init__(self, config: ConvDenoiserConfig):
        super().__init__()
        self.config = config
        conv = nn.Conv1d if config.ndim == 1 else nn.Conv2d
        pad = config.padding_mode
        widths = [config.width * 2**level for level in range(config.levels + 1)]
        pairs = list(zip(widths[:-1], widths[1:], strict=True))  # (width at a level, width one level down)
        emb_dim = 4 * config.width
        self.time_mlp = nn.Sequential(nn.Linear(config.width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = conv(config.channels + config.cond_channels, widths[0], 3, padding=1, padding_mode=pad)
        self.down_blocks = nn.ModuleList(ResBlock(conv, w, w, emb_dim, pad) for w in widths[:-1])
        # stride-2 conv halves each axis (rounding up); the up path resizes back to the skip's exact size
        self.downsample = nn.ModuleList(
            conv(w, w_next, 3, stride=2, padding=1, padding_mode=pad) for w, w_next in pairs
        )
        self.mid = ResBlock(conv, widths[-1], widths[-1], emb_dim, pad)
        self.up_blocks = nn.ModuleList(ResBlock(conv, w_next + w, w, emb_dim, pad) for w, w_next in pairs)
        self.norm_out = nn.GroupNorm(min(8, widths[0]), widths[0])
        self.conv_out = _zero(conv(widths[0], config.channels, 3, padding=1, padding_mode=pad))

    def forward(self, x: torch.Tensor, t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Predicted velocity ``[B, C, *S]`` for state ``x`` ``[B, C, *S]``, times ``t`` ``[B]``, condition ``a``."""
        emb = self.time_mlp(time_embedding(t, self.config.width).to(x.dtype))
        h = self.conv_in(torch.cat([x, a], dim=1))
        skips = []
        for block, down in zip(self.down_blocks, self.downsample, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for block, skip in zip(reversed(self.up_blocks), reversed(skips), strict=True):
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
