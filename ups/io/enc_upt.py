"""UPTEncoder: point cloud → supernodes (message passing) → Perceiver pooling into latent tokens (Alkin et al. 2024).

1. Every input point gets a feature ``MLP(values) + Linear(Fourier(x̂))``.
2. ``supernodes`` of the points are chosen (a fixed seeded subset in eval mode, a fresh random subset in training, as
   in UPT); each aggregates messages ``MLP([h_j, h_i, (x_j - x_i)·M^(1/d)])`` from its ``k`` nearest points (``knn``),
   or from those of them within ``radius`` (``radius``), by a masked mean (the MLP's output layer is applied after
   the mean, which it commutes with). Displacements use the minimum image on
   periodic domains; the supernode itself is always among its neighbours.
3. A Perceiver layer pools the supernodes into T tokens per stream: the queries are embedded from the tokens' anchor
   positions on the token grid (and a stream embedding with channel-separated tokens), so token i summarises the
   neighbourhood of anchor i and consecutive tokens are spatial neighbours, as the windowed backbone expects.

Any discretisation maps to the same ``[B, S·T, E]`` latent, so grids of any resolution and irregular point sets share
one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ups.io.decoder_anypoint import PerceiverLayer
from ups.io.geometry import displacement, fourier_features

#: Upper bound on elements of one pairwise-distance block; the neighbour search loops over supernode chunks below it.
_DIST_BLOCK = 1 << 24


class UPTEncoder(nn.Module):
    """``coords [N, d] | [B, N, d], values [B, N, C] -> z [B, S·T, E]`` (coordinates normalised by the domain length).

    Args:
        in_channels: C.
        latent_dim: E.
        anchors: ``[T, d]`` normalised token anchors in sequence order.
        supernodes: supernodes M (capped at the number of points).
        frequencies: Fourier frequencies of the position features.
        num_heads: heads of the Perceiver pooling.
        channel_separated: S = C token streams (one query set per channel), else S = 1.
        periodic: the domain is periodic.
        neighbours: ``knn`` (the k nearest points) or ``radius`` (of those, the ones within ``radius``).
        k: neighbours per supernode.
        radius: normalised radius for ``neighbours="radius"``.
        seed: seed of the fixed supernode subset used in eval mode.
    """

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        anchors: torch.Tensor,
        *,
        supernodes: int = 2048,
        frequencies: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
        num_heads: int = 4,
        channel_separated: bool = False,
        periodic: bool = True,
        neighbours: Literal["knn", "radius"] = "knn",
        k: int = 16,
        radius: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if neighbours == "radius" and radius is None:
            raise ValueError("neighbours='radius' needs a radius")
        self.supernodes, self.periodic, self.neighbours, self.k, self.radius, self.seed = (
            supernodes, periodic, neighbours, k, radius, seed
        )  # fmt: skip
        self.n_streams = in_channels if channel_separated else 1
        d, e = anchors.shape[1], latent_dim
        self.register_buffer("frequencies", torch.tensor(frequencies, dtype=torch.float32), persistent=False)
        self.register_buffer("anchors", anchors.float(), persistent=False)
        n_feat = 2 * d * len(frequencies)
        self.value_embed = nn.Sequential(nn.Linear(in_channels, e), nn.GELU(), nn.Linear(e, e))
        self.pos_embed = nn.Linear(n_feat, e)
        # message MLP([h_j, h_i, Δx]) = W2 · GELU(A h_j + B h_i + C Δx + b) + b2, with the first layer split by input so
        # A h is computed once per point instead of once per edge, and W2 applied after the (linear) mean
        self.message_src = nn.Linear(e, e)
        self.message_dst = nn.Linear(e, e, bias=False)
        self.message_rel = nn.Linear(d, e, bias=False)
        self.message_out = nn.Linear(e, e)
        self.query_embed = nn.Sequential(nn.Linear(n_feat, e), nn.GELU(), nn.Linear(e, e))
        self.stream_embed = nn.Parameter(torch.randn(in_channels, e) * 0.02) if channel_separated else None
        self.pool = PerceiverLayer(e, num_heads)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return fourier_features(x.float(), self.frequencies, self.periodic).to(self.pos_embed.weight.dtype)

    def select(self, n: int, device: torch.device) -> torch.Tensor:
        """Indices ``[M]`` of the supernodes among ``n`` points: all if n ≤ M, else a seeded (eval) or random subset."""
        m = min(self.supernodes, n)
        if m == n:
            return torch.arange(n, device=device)
        gen = None if self.training else torch.Generator().manual_seed(self.seed)
        return torch.randperm(n, generator=gen)[:m].sort().values.to(device)

    @torch.no_grad()
    def neighbours_of(self, sup: torch.Tensor, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sup [..., M, d]``, ``pts [..., N, d]`` -> (indices ``[..., M, k]``, valid mask ``[..., M, k]``)."""
        k = min(self.k, pts.shape[-2])
        rows = max(1, _DIST_BLOCK // max(1, pts.shape[-2] * pts[..., :1, :].numel()))
        idx, dist = [], []
        for start in range(0, sup.shape[-2], rows):
            delta = displacement(pts.unsqueeze(-3) - sup[..., start : start + rows, None, :], self.periodic)
            d2, i = delta.pow(2).sum(-1).topk(k, dim=-1, largest=False)
            idx.append(i)
            dist.append(d2)
        idx, d2 = torch.cat(idx, dim=-2), torch.cat(dist, dim=-2)
        valid = d2 <= self.radius**2 if self.neighbours == "radius" else torch.ones_like(d2, dtype=torch.bool)
        return idx, valid | (d2 == 0)  # the supernode itself (distance 0) always counts

    def forward(self, coords: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        b, n, _ = values.shape
        h = self.value_embed(values) + self.pos_embed(self._features(coords))  # [B, N, E]
        src = self.message_src(h)  # [B, N, E]
        sel = self.select(n, values.device)
        sup = coords[..., sel, :]  # [M, d] or [B, M, d]
        idx, valid = self.neighbours_of(sup, coords)
        m, k = idx.shape[-2:]
        if idx.ndim == 2:  # coordinates shared by the batch
            src_nb, x_nb = src[:, idx], coords[idx].expand(b, -1, -1, -1)  # [B, M, k, E], [B, M, k, d]
            valid = valid.expand(b, -1, -1)
        else:
            flat = idx.reshape(b, m * k)
            src_nb = torch.gather(src, 1, flat[..., None].expand(-1, -1, src.shape[-1])).reshape(b, m, k, -1)
            x_nb = torch.gather(coords, 1, flat[..., None].expand(-1, -1, coords.shape[-1])).reshape(b, m, k, -1)
        sup = sup.expand(b, -1, -1)
        rel = displacement(x_nb - sup[:, :, None], self.periodic) * m ** (1 / coords.shape[-1])
        dst = self.message_dst(h[:, sel])  # [B, M, E]
        hidden = nn.functional.gelu(src_nb + dst[:, :, None] + self.message_rel(rel.to(h.dtype)))  # [B, M, k, E]
        w = valid.to(hidden.dtype)[..., None]
        nodes = self.message_out((hidden * w).sum(2) / w.sum(2))  # masked mean over neighbours, [B, M, E]

        queries = self.query_embed(self._features(self.anchors))  # [T, E]
        if self.stream_embed is not None:
            queries = (queries[None] + self.stream_embed[:, None]).flatten(0, 1)  # [(S T), E], stream-major
        queries = queries.expand(b, -1, -1)
        return self.pool(queries, self.pool.project_kv(nodes))
