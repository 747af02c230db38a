"""AnyPointDecoder: decode latent tokens at arbitrary coordinates (UPT, Alkin et al. 2024).

Each query point is embedded from Fourier features of its normalised coordinate and cross-attends to the latent
tokens (whose keys carry Fourier features of their anchor positions and, with channel-separated tokens, a stream
embedding), through ``num_layers`` Perceiver layers (cross-attention + MLP, pre-norm). Queries never attend to each
other, so the output at a point depends on that point and the latent only: decoding a grid equals decoding its points
as a point set, and a large query set can be split into chunks (``query_chunk``) with identical results and bounded
memory. Keys and values are projected once per call and shared by every chunk.

With ``local_bias`` every layer adds ``−d²/(2σ²)`` to the attention logits (``d`` the distance from the query to the
token's anchor, minimum image on a periodic domain; ``σ`` learned per layer and head), so even an untrained decoder
reads the tokens near each query. The float mask keeps SDPA off its flash kernel; the memory is ``h·Q·S·T`` floats
per layer and chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ups.core.attention import CrossAttention
from ups.core.blocks import MLP
from ups.io.geometry import displacement, fourier_features


class PerceiverLayer(nn.Module):
    """Queries ``[B, Q, H]`` ← cross-attention to a key/value set, then an MLP; both pre-norm residual branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def project_kv(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn.project_kv(self.norm_kv(kv))

    def forward(
        self, q: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = q + self.attn.attend(self.norm_q(q), kv, bias)
        return q + self.mlp(self.norm_mlp(q))


class AnyPointDecoder(nn.Module):
    """``z [B, S·T, E], coords [Q, d] | [B, Q, d] -> [B, Q, C]`` (coordinates normalised by the domain length).

    Args:
        latent_dim: token width E.
        out_channels: C, the physical channels predicted at every point.
        anchors: ``[T, d]`` normalised anchor positions of the tokens of one stream, in sequence order.
        n_streams: S, token streams (channels when channel-separated, else 1).
        hidden_dim, num_layers, num_heads, frequencies: ``latent.decoder``.
        periodic: the domain is periodic (Fourier features wrap; see :func:`~ups.io.geometry.fourier_features`).
        query_chunk: queries decoded at once.
    """

    def __init__(
        self,
        latent_dim: int,
        out_channels: int,
        anchors: torch.Tensor,
        *,
        n_streams: int = 1,
        hidden_dim: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        frequencies: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
        periodic: bool = True,
        local_bias: bool = False,
        query_chunk: int = 8192,
    ):
        super().__init__()
        self.periodic, self.query_chunk, self.n_streams = periodic, query_chunk, n_streams
        self.register_buffer("frequencies", torch.tensor(frequencies, dtype=torch.float32), persistent=False)
        self.register_buffer("anchors", anchors.float(), persistent=False)
        n_feat = 2 * anchors.shape[1] * len(frequencies)
        self.query_embed = nn.Sequential(nn.Linear(n_feat, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim))
        self.latent_proj = nn.Linear(latent_dim, hidden_dim)
        self.pos_proj = nn.Linear(n_feat, hidden_dim)
        self.stream_embed = nn.Parameter(torch.randn(n_streams, hidden_dim) * 0.02) if n_streams > 1 else None
        self.layers = nn.ModuleList(PerceiverLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.head = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, out_channels))
        # locality prior: logits − d²/(2σ²) per layer and head, σ learnable, starting at 1, 2, 4, … token spacings
        self.log_width = None
        if local_bias:
            spacing = anchors.shape[0] ** (-1.0 / anchors.shape[1])
            widths = spacing * 2.0 ** torch.arange(num_heads, dtype=torch.float32)
            self.log_width = nn.Parameter(widths.log().repeat(num_layers, 1))

    def distance_bias(self, coords: torch.Tensor) -> list[torch.Tensor | None]:
        """Per layer, the additive logits ``−d²/(2σ_h²)`` ``[h, Q, S·T]`` or ``[B, h, Q, S·T]`` (None: no prior)."""
        if self.log_width is None:
            return [None] * len(self.layers)
        delta = displacement(coords.float().unsqueeze(-2) - self.anchors, self.periodic)  # [..., Q, T, d]
        d2 = delta.pow(2).sum(-1).tile(self.n_streams).unsqueeze(-3)  # [..., 1, Q, S·T]
        inv = (-2 * self.log_width).exp().view(len(self.layers), -1, 1, 1)  # 1/σ² [L, h, 1, 1]
        return [-0.5 * d2 * inv[i] for i in range(len(self.layers))]

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Key/value tokens ``[B, S·T, H]``: projected latent + anchor-position embedding (+ stream embedding)."""
        feats = fourier_features(self.anchors, self.frequencies, self.periodic)  # float32: bf16 angles are too coarse
        pos = self.pos_proj(feats.to(self.pos_proj.weight.dtype))  # [T, H]
        pos = pos.repeat(self.n_streams, 1)
        if self.stream_embed is not None:
            pos = pos + self.stream_embed.repeat_interleave(self.anchors.shape[0], dim=0)
        return self.latent_proj(z) + pos

    def forward(self, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        tokens = self.tokens(z)
        kv = [layer.project_kv(tokens) for layer in self.layers]
        out = []
        for start in range(0, coords.shape[-2], self.query_chunk):
            chunk = coords[..., start : start + self.query_chunk, :]
            feats = fourier_features(chunk.float(), self.frequencies, self.periodic)
            q = self.query_embed(feats.to(self.pos_proj.weight.dtype))
            q = q.expand(b, -1, -1) if q.ndim == 2 else q
            for layer, layer_kv, bias in zip(self.layers, kv, self.distance_bias(chunk), strict=True):
                q = layer(q, layer_kv, bias)
            out.append(self.head(q))
        return torch.cat(out, dim=1)
