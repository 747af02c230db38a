"""Geometry shared by the encoders and the decoder: token grids, their sequence order, anchors, Fourier features.

Latent tokens live on a regular *token grid* over the domain (UPT, Alkin et al. 2024, pools into a fixed number of
tokens; here each token also has an anchor position so that windows of consecutive tokens are spatial neighbourhoods,
which the PDE-Transformer backbone (Holzschuh et al. 2025) needs for windowed attention and token pooling). In 2D the
token grid is flattened in Morton (Z-curve) order when both sides are powers of two: every run of 2^k consecutive
tokens is then a compact block, so a window of 8 tokens is a 4×2 patch and pooling 4 tokens merges a 2×2 block.
Coordinates handed to these helpers are normalised by the domain length, x̂ = x / L ∈ [0, 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ups.data.spec import TaskSpec
from ups.data.store import default_coords


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def token_grid_shape(tokens: int, shape: Sequence[int], *, tile: bool = False) -> tuple[int, ...]:
    """Shape of the token grid with ``tokens`` cells over a grid of ``shape`` cells (1D or 2D).

    In 2D the factorisation ``t0 · t1 = tokens`` closest in aspect ratio to ``shape`` is chosen; with ``tile`` each
    side must divide or be a multiple of the grid side (so whole patches merge into, or split into, tokens).

    Raises:
        ValueError: no admissible factorisation, or more than two spatial axes.
    """
    if len(shape) == 1:
        n = shape[0]
        if tile and n % tokens and tokens % n:
            raise ValueError(f"{tokens} tokens cannot tile a grid of {n} patches (one must divide the other)")
        return (tokens,)
    if len(shape) != 2:
        raise ValueError(f"token grids support 1 or 2 spatial axes, got {len(shape)}")
    target = math.log(shape[0] / shape[1])
    best = None
    for t0 in range(1, tokens + 1):
        if tokens % t0:
            continue
        t1 = tokens // t0
        if tile and any(n % t and t % n for n, t in zip(shape, (t0, t1), strict=True)):
            continue
        score = (abs(math.log(t0 / t1) - target), -t0)
        if best is None or score < best[0]:
            best = (score, (t0, t1))
    if best is None:
        raise ValueError(f"{tokens} tokens cannot tile a {shape[0]}x{shape[1]} patch grid with whole patches per axis")
    return best[1]


def token_order(shape: Sequence[int]) -> torch.Tensor:
    """Sequence order of a token grid: ``order[i]`` is the row-major index of the i-th token in the sequence.

    Morton (Z-curve) order when every side is a power of two, row-major otherwise (1D: identity).
    """
    n = int(np.prod(shape))
    if len(shape) == 1 or not all(_is_pow2(s) for s in shape):
        return torch.from_numpy(np.arange(n))
    idx = np.indices(shape).reshape(len(shape), -1)  # [d, n] row-major coordinates
    bits = [int(math.log2(s)) for s in shape]
    code = np.zeros(n, dtype=np.int64)
    out_bit = 0
    for b in range(max(bits)):  # interleave bit b of every axis that still has one (last axis fastest)
        for axis in reversed(range(len(shape))):
            if b < bits[axis]:
                code |= ((idx[axis] >> b) & 1) << out_bit
                out_bit += 1
    return torch.from_numpy(np.argsort(code, kind="stable"))


def token_anchors(shape: Sequence[int], order: torch.Tensor) -> torch.Tensor:
    """Normalised centres of the token-grid cells in sequence order: ``[prod(shape), d]``, float32 in (0, 1)."""
    axes = [(torch.arange(s, dtype=torch.float32) + 0.5) / s for s in shape]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))  # row-major
    return mesh[order]


def grid_coords(spec: TaskSpec) -> torch.Tensor:
    """Normalised coordinates x̂ = x / L of the task's grid points, row-major: ``[prod(grid_shape), d]``.

    Uses the store's convention (:func:`ups.data.store.default_coords`): periodic nodes j·h, else cell centres.
    """
    coords = default_coords(spec, 1)
    names = "xyz"[: spec.ndim]
    axes = [torch.as_tensor(coords[a] / L, dtype=torch.float32) for a, L in zip(names, spec.domain, strict=True)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, spec.ndim)


def fourier_features(x: torch.Tensor, frequencies: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Sine/cosine features of normalised coordinates: ``[..., d] -> [..., 2·d·F]``.

    Angles are ``2π·f·x̂`` on periodic domains (every feature is periodic with the domain) and ``π·f·x̂`` otherwise
    (the f = 1 cosine is monotonic on [0, 1], so the encoding stays unique up to the walls).
    """
    angle = (2 * math.pi if periodic else math.pi) * x.unsqueeze(-1) * frequencies.to(x.dtype)  # [..., d, F]
    return torch.cat([angle.sin(), angle.cos()], dim=-1).flatten(-2)


def displacement(delta: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Displacement between normalised positions, wrapped to the minimum image in [-½, ½) on periodic domains."""
    return delta - torch.round(delta) if periodic else delta
