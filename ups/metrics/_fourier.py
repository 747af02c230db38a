"""Fourier plumbing shared by the spectral and the flow metrics: orthonormal real FFTs over space, the weights that
make Parseval hold on the half spectrum, integer and angular wavenumbers, and per-bin power.

Real fields use ``rfftn``: the last spatial axis keeps bins ``0..N//2`` only. A stored bin whose mirror image is not
stored (last-axis ``0 < k < N/2``) counts twice, so ``Σ_S f² = Σ_half w_k |F̂_k|²`` with the orthonormal transform.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.fft


def _frozen(x: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only, so no caller can change it for the next one."""
    x.flags.writeable = False
    return x


def rfft_space(x: np.ndarray, n_space: int) -> np.ndarray:
    """Orthonormal real FFT over the last ``n_space`` axes (single-threaded: callers parallelise over chunks)."""
    return scipy.fft.rfftn(x, axes=tuple(range(-n_space, 0)), norm="ortho")


@functools.lru_cache(maxsize=32)
def half_weights(n_last: int) -> np.ndarray:
    """Parseval weight of each last-axis bin ``0..n_last // 2`` of the half spectrum: 1 for 0 and Nyquist, else 2."""
    last = np.arange(n_last // 2 + 1)
    return _frozen(np.where((last == 0) | (2 * last == n_last), 1.0, 2.0))


@functools.lru_cache(maxsize=32)
def integer_wavenumbers(grid_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Integer wavenumber of every half-spectrum bin along each axis (``fftfreq · N``; ``0..N//2`` on the last axis),
    one broadcastable array per axis."""
    n_dim = len(grid_shape)
    out = []
    for j, n in enumerate(grid_shape):
        k = np.arange(n // 2 + 1) if j == n_dim - 1 else np.fft.fftfreq(n, 1.0 / n)
        out.append(_frozen(k.astype(np.float64).reshape([-1 if i == j else 1 for i in range(n_dim)])))
    return tuple(out)


def spectral_wavenumbers(grid_shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    """Angular wavenumbers ``k_j = 2π · fftfreq(N_j, h_j)`` of the half spectrum, one broadcastable array per axis,
    with the Nyquist bin of an even axis set to 0 (the derivative there is not representable as a real field)."""
    ks = []
    for n, h, k_int in zip(grid_shape, spacing, integer_wavenumbers(tuple(grid_shape)), strict=True):
        k = 2 * np.pi * k_int / (n * h)
        if n % 2 == 0:
            k = np.where(np.abs(k_int) == n // 2, 0.0, k)
        ks.append(k)
    return ks


def channel_power(f: np.ndarray, channels: Sequence[int]) -> np.ndarray:
    """``Σ_{c ∈ channels} |f[:, :, c]|²`` of a complex ``[B, T, C, *S']`` spectrum, ``[B, T, *S']``."""
    out = np.square(np.abs(f[:, :, channels[0]]))
    for c in channels[1:]:
        out += np.square(np.abs(f[:, :, c]))
    return out
