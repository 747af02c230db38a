"""Attention layers on top of ``torch.nn.functional.scaled_dot_product_attention``.

- :class:`Attention`: multi-head self-attention with optional QK RMSNorm and rotary position encoding (RoPE).
- :class:`WindowAttention`: self-attention inside windows of ``window`` consecutive tokens, optionally shifted by half
  a window (Swin-style, as in PDE-Transformer, Holzschuh et al. 2025). The sequence is padded to a multiple of the
  window; padded keys are masked, so outputs never depend on padding.
- :class:`CrossAttention`: queries attend to a separate key/value set (UPT's Perceiver pooling and any-point decoder,
  Alkin et al. 2024); keys/values can be projected once and reused for many query chunks.

Positions inside a window enter only through RoPE, which is relative: the layer has no absolute position embedding,
so shifting the sequence by whole windows shifts the output. No mask is built when none is needed (periodic, no
padding), which lets SDPA pick the flash kernel on GPU.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from ups.core.norms import RMSNorm

#: RoPE base: windows hold at most a few dozen tokens, so the base is small enough that most frequencies turn
#: appreciably across a window (the usual 10 000 is tuned for sequences of thousands).
ROPE_BASE = 100.0


def apply_rope(x: torch.Tensor, pos: torch.Tensor, base: float = ROPE_BASE) -> torch.Tensor:
    """Rotate feature pairs ``(x[:h/2], x[h/2:])`` of ``x [..., n, h]`` by angles ``pos[n] · base^(-2k/h)``."""
    half = x.shape[-1] // 2
    freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = pos.to(torch.float32)[:, None] * freq  # [n, h/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention: ``[B, n, D] -> [B, n, D]``.

    Args:
        dim: token width D.
        num_heads: heads; must divide ``dim`` (head width even when ``rope``).
        qk_norm: RMSNorm on queries and keys per head (shared gain across heads).
        rope: rotary encoding of the token index (relative positions).
        dropout: attention-probability dropout in training.
    """

    def __init__(self, dim: int, num_heads: int, *, qk_norm: bool = True, rope: bool = False, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide dim ({dim})")
        self.num_heads, self.rope, self.dropout = num_heads, rope, dropout
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, n, D]``; ``mask`` bool ``[B | 1, 1, n, n]``, True where a query may attend to a key."""
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope:
            pos = torch.arange(x.shape[1], device=x.device)
            q, k = apply_rope(q, pos), apply_rope(k, pos)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


@lru_cache(maxsize=64)
def _segment_mask(n: int, window: int, shift: int, periodic: bool, device: torch.device) -> torch.Tensor | None:
    """Bool ``[n_windows, 1, w, w]`` mask of a (shifted, padded) window partition, or None when nothing is masked.

    Each position of the rolled, padded sequence gets a segment id: 0 for real tokens, 1 for tokens that wrapped
    around the end when the domain is not periodic, 2 for padding. Attention is allowed within a segment only, so
    real tokens never see padding or (non-periodic) tokens from the far wall, and padded queries see only padding
    (no all-masked rows, which SDPA would turn into NaN).
    """
    pad = (-n) % window
    wraps = shift > 0 and not periodic
    if not pad and not wraps:
        return None
    seg = torch.zeros(n + pad, dtype=torch.int8)
    if wraps:
        seg[n - shift : n] = 1
    seg[n:] = 2
    seg = rearrange(seg, "(nw w) -> nw w", w=window)
    return rearrange(seg[:, :, None] == seg[:, None, :], "nw q k -> nw 1 q k").to(device)


class WindowAttention(nn.Module):
    """Self-attention inside windows of consecutive tokens: ``[B, n, D] -> [B, n, D]``.

    The window is ``min(window, n)``; with ``shift`` (and more than one window) the sequence is rolled by half a window
    first and rolled back after, so consecutive blocks with and without shift exchange information across window
    borders. On a periodic domain the roll wraps around; otherwise tokens that wrapped are masked from the rest.
    """

    def __init__(self, dim: int, num_heads: int, window: int, *, qk_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope=True, dropout=dropout)

    def forward(self, x: torch.Tensor, *, shift: bool = False, periodic: bool = True) -> torch.Tensor:
        b, n, _ = x.shape
        w = min(self.window, n)
        s = w // 2 if shift and n > w else 0
        if s:
            x = torch.roll(x, -s, dims=1)
        pad = (-n) % w
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        mask = _segment_mask(n, w, s, periodic, x.device)
        if mask is not None:
            mask = repeat(mask, "nw 1 q k -> (b nw) 1 q k", b=b)
        out = self.attn(rearrange(x, "b (nw w) d -> (b nw) w d", w=w), mask)
        out = rearrange(out, "(b nw) w d -> b (nw w) d", b=b)[:, :n]
        return torch.roll(out, s, dims=1) if s else out


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries ``[B, Q, D]`` attend to keys/values ``[B, N, D]``."""

    def __init__(self, dim: int, num_heads: int, *, qk_norm: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide dim ({dim})")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(dim // num_heads) if qk_norm else nn.Identity()

    def project_kv(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, N, D] -> (k, v)`` each ``[B, h, N, D/h]``; reuse across query chunks."""
        k, v = rearrange(self.kv(kv), "b n (two h d) -> two b h n d", two=2, h=self.num_heads)
        return self.k_norm(k), v

    def attend(
        self, q: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``q [B, Q, D]`` against projected ``kv`` -> ``[B, Q, D]``; ``bias`` is added to the attention logits
        (broadcastable to ``[B, h, Q, N]``)."""
        qh = self.q_norm(rearrange(self.q(q), "b n (h d) -> b h n d", h=self.num_heads))
        out = F.scaled_dot_product_attention(qh, *kv, attn_mask=None if bias is None else bias.to(qh.dtype))
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return self.attend(q, self.project_kv(kv))
