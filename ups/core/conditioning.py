"""Conditioning of the operator on Δt, PDE parameters and boundary type, fed to AdaLN-Zero blocks.

As in PDE-Transformer (Holzschuh et al. 2025) and DiT, the conditioning vector ``c`` is a sum of embeddings, and
every block maps ``SiLU(c)`` to the shift, scale and gate of its sub-layers (:class:`AdaLNModulation`). That linear
map starts at zero ("AdaLN-Zero"): every gate is 0 at initialisation, so every block starts as the identity and the
network grows from a well-conditioned residual path.

Scalars are embedded through Fourier features of their logarithm (Δt and PDE parameters span decades: ν = 0.005 and
ν = 0.04 must be as far apart as 0.5 and 4), either with fixed geometric frequencies (``sinusoidal``) or with the same
frequencies as a trainable initialisation (``learned_fourier``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

#: Boundary kinds, in the index order of the boundary-type embedding (matches ``ups.data.spec.BoundaryKind``).
BC_KINDS: tuple[str, ...] = ("periodic", "dirichlet", "neumann", "none")

#: Fourier frequencies of the log-scalar embedding: geometric from 1/(2π·8) to 8/(2π) cycles per unit of ln(value),
#: i.e. wavelengths from a factor e^(2π/8) ≈ 2.2 to a factor e^(16π) in the value.
N_FREQUENCIES = 16


def _log_frequencies() -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(1 / 8), math.log(8.0), N_FREQUENCIES)) / (2 * math.pi)


class ScalarEmbedding(nn.Module):
    """Embed positive scalars by Fourier features of their log: ``[B, k] -> [B, dim]`` (k scalars, summed features).

    Args:
        dim: output width.
        n_scalars: number of scalars k embedded jointly (their features are concatenated before the MLP).
        learned: trainable frequencies (``learned_fourier``) instead of fixed ones (``sinusoidal``).
    """

    def __init__(self, dim: int, n_scalars: int = 1, *, learned: bool = True):
        super().__init__()
        freqs = _log_frequencies().repeat(n_scalars, 1)  # [k, F]
        if learned:
            self.frequencies = nn.Parameter(freqs)
        else:
            self.register_buffer("frequencies", freqs)
        self.mlp = nn.Sequential(
            nn.Linear(2 * N_FREQUENCIES * n_scalars + n_scalars, dim), nn.SiLU(), nn.Linear(dim, dim)
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        # log of |value|: PDE parameters may be signed (e.g. an advection speed); the sign goes in as a raw feature.
        logv = torch.log(values.abs().clamp_min(1e-12)).float()  # [B, k]
        angle = 2 * math.pi * logv.unsqueeze(-1) * self.frequencies  # [B, k, F]
        feats = torch.cat([angle.sin().flatten(1), angle.cos().flatten(1), torch.sign(values).float()], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class Conditioner(nn.Module):
    """Conditioning vector ``c [B, dim]`` = learned base + embeddings of the selected inputs.

    Args:
        dim: width of ``c`` (the backbone's hidden width).
        use_dt: embed the physical time step Δt.
        param_indices: columns of the ``params [B, P]`` tensor to embed (empty: none).
        use_bc: embed the boundary type (index into :data:`BC_KINDS`).
        learned_fourier: trainable Fourier frequencies (else fixed sinusoidal features).
    """

    def __init__(
        self, dim: int, *, use_dt: bool, param_indices: Sequence[int], use_bc: bool, learned_fourier: bool = True
    ):
        super().__init__()
        self.param_indices = tuple(int(i) for i in param_indices)
        self.base = nn.Parameter(torch.zeros(dim))
        self.dt = ScalarEmbedding(dim, learned=learned_fourier) if use_dt else None
        n = len(self.param_indices)
        self.params = ScalarEmbedding(dim, n, learned=learned_fourier) if n else None
        self.bc = nn.Embedding(len(BC_KINDS), dim) if use_bc else None
        if self.bc is not None:
            nn.init.normal_(self.bc.weight, std=0.02)

    def forward(
        self,
        batch: int,
        *,
        dt: torch.Tensor | None = None,
        params: torch.Tensor | None = None,
        bc: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``dt [B]`` (> 0), ``params [B, P]``, ``bc`` long ``[B]`` -> ``c [B, dim]``; each is required when used."""
        c = self.base.expand(batch, -1)
        if self.dt is not None:
            if dt is None:
                raise ValueError("this conditioner embeds dt; pass dt [B]")
            c = c + self.dt(dt.reshape(batch, 1))
        if self.params is not None:
            if params is None:
                raise ValueError(f"this conditioner embeds PDE parameters {self.param_indices}; pass params [B, P]")
            c = c + self.params(params[:, list(self.param_indices)])
        if self.bc is not None:
            if bc is None:
                raise ValueError("this conditioner embeds the boundary type; pass bc [B]")
            c = c + self.bc(bc.reshape(batch))
        return c


class AdaLNModulation(nn.Module):
    """``c [B, Dc] -> n`` tensors ``[B, D]`` (shift, scale, gate, ...) via a zero-initialised ``Linear(SiLU(c))``."""

    def __init__(self, cond_dim: int, dim: int, n: int):
        super().__init__()
        self.n = n
        self.linear = nn.Linear(cond_dim, n * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(c)).chunk(self.n, dim=-1)
