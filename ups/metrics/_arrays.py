"""Array plumbing shared by the metric functions: float64 conversion, shape checks, and the one NaN-on-zero division.

Every metric works on ``[B, T, C, *S]`` arrays (batch, predicted steps, channels, space) and computes in float64
numpy, whatever it was given (numpy arrays of any real dtype, or torch tensors on any device, bf16 included).
Denominators are never padded with an eps (DESIGN.md, "Scoreboard metrics"): :func:`safe_ratio` returns NaN where
the denominator is zero and says so with one ``RuntimeWarning`` per call.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray | torch.Tensor; torch is not imported here so metrics stay importable without it


def as_float64(x: ArrayLike) -> np.ndarray:
    """Return ``x`` as a float64 numpy array; torch tensors are detached and copied to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def as_numpy(x: ArrayLike) -> np.ndarray:
    """``x`` as a numpy float32 or float64 array, float32 kept (torch: detached, on the CPU); other dtypes → float64.

    For reductions that accumulate in float64 themselves (``np.mean(..., dtype=np.float64)``), so the rollout is never
    copied whole to float64; numpy and torch inputs with the same values still give bit-identical results.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(x.dtype) not in ("torch.float32", "torch.float64"):
            x = x.double()  # bf16, f16, integers: exact in float64
        x = x.numpy()
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def check_pair(pred: ArrayLike, target: ArrayLike, *, min_ndim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``pred`` and ``target`` to float64 and check they share one ``[B, T, C, *S]`` shape.

    Raises:
        ValueError: if the shapes differ or have fewer than ``min_ndim`` axes.
    """
    p, y = as_float64(pred), as_float64(target)
    if p.shape != y.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {y.shape}")
    if p.ndim < min_ndim:
        raise ValueError(f"expected arrays shaped [B, T, C, *S] (ndim >= {min_ndim}), got shape {p.shape}")
    if 0 in p.shape[:3]:
        raise ValueError(f"empty batch, time or channel axis in shape {p.shape}")
    return p, y


def spatial_axes(x: np.ndarray) -> tuple[int, ...]:
    """The space axes ``S`` of a ``[B, T, C, *S]`` array."""
    return tuple(range(3, x.ndim))


def safe_ratio(num: np.ndarray, den: np.ndarray, metric: str) -> np.ndarray:
    """``num / den`` elementwise, NaN where ``den == 0``, with one ``RuntimeWarning`` if any denominator is zero.

    No eps is added: a zero denominator means the metric is undefined there, and NaN says so instead of a
    silently huge or zero number. NaN denominators (from NaN inputs) propagate as NaN without a warning.
    """
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    zero = den == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(zero, np.nan, num / np.where(zero, 1.0, den))
    if np.any(zero):
        warnings.warn(f"zero denominator in {metric}", RuntimeWarning, stacklevel=3)
    return out


def check_step(k: int, n_steps: int) -> int:
    """Check a 1-based predicted-step index ``k`` (k = 1: first predicted frame); return the 0-based index."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"step k must be an integer, got {k!r}")
    if not 1 <= k <= n_steps:
        raise ValueError(f"step k={k} out of range: the rollout has {n_steps} predicted steps (k is 1-based)")
    return int(k) - 1


def check_samples(samples: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Convert an ensemble ``samples [M, B, T, C, *S]`` and ``target [B, T, C, *S]`` to float64 and check shapes.

    Raises:
        ValueError: if ``samples.shape[1:] != target.shape``, the ensemble is empty, or the target is not
            ``[B, T, C, *S]``.
    """
    x, y = as_float64(samples), as_float64(target)
    if y.ndim < 4 or 0 in y.shape[:3]:
        raise ValueError(f"expected a target shaped [B, T, C, *S] (ndim >= 4), got shape {y.shape}")
    if x.shape[1:] != y.shape or x.shape[0] < 1:
        raise ValueError(f"samples must be [M, B, T, C, *S] = [M, {', '.join(map(str, y.shape))}], got {x.shape}")
    return x, y


@functools.lru_cache(maxsize=16)
def boundary_mask(grid_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean ``[*S]`` mask of the boundary cells: the first and last cell along every spatial axis (corners once)."""
    mask = np.zeros(grid_shape, dtype=bool)
    for axis in range(len(grid_shape)):
        index = [slice(None)] * len(grid_shape)
        for edge in (0, -1):
            index[axis] = edge
            mask[tuple(index)] = True
    mask.flags.writeable = False  # cached and shared
    return mask


def check_channels(channels: tuple[int, ...] | list[int], n_channels: int, what: str) -> list[int]:
    """Check channel indices against ``C``; return them as a list of ints."""
    chans = [int(c) for c in channels]
    bad = [c for c in chans if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"{what} channel(s) {bad} out of range for {n_channels} channels")
    return chans
