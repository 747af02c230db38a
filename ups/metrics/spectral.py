"""Spectral metrics: Fourier-band RMSE (fRMSE, PDEBench) and the relative error of the radial energy spectrum.

Both use the orthonormal FFT over the space axes S of ``[B, T, C, *S]`` arrays, so Parseval holds exactly:
``Σ_k |F̂_k|² = Σ_S |f|²``. Wavenumbers are integer indices ``k_i ∈ {−N_i/2, …, N_i/2 − 1}`` (in units of the
fundamental mode of each axis, ``2π / L_i``), grouped into radial integer shells ``|k| = ⌊√Σ k_i²⌋``. Real inputs
use the half spectrum (``rfftn``) with weight 2 on the bins whose mirror image is not stored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ups.metrics._arrays import ArrayLike, as_float64, check_channels, check_pair, safe_ratio
from ups.metrics._fourier import channel_power, half_weights, integer_wavenumbers, rfft_space
from ups.metrics.flow import periodic_div_free_error

BANDS: dict[str, tuple[float, float]] = {"low": (0, 4), "mid": (4, 12), "high": (12, np.inf)}


def rfft_spatial(x: np.ndarray) -> np.ndarray:
    """Orthonormal real FFT of ``x [B, T, C, *S]`` over space: ``[B, T, C, *S']`` (last axis ``N // 2 + 1``)."""
    return rfft_space(x, x.ndim - 3)


@functools.lru_cache(maxsize=16)
def radial_shells(grid_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Radial shell and Parseval weight of every bin of the half spectrum, both flat ``[K]``.

    ``shell = ⌊√Σ k_i²⌋`` with integer ``k_i``; ``weight`` is 2 for last-axis bins ``0 < k < N/2`` (their negative
    mirror is not stored) and 1 for ``k = 0`` and the Nyquist bin, so ``Σ_full |F̂|² = Σ_half weight · |F̂|²``.
    """
    ks = integer_wavenumbers(grid_shape)
    # the sum of squares is an exact integer and IEEE sqrt is correctly rounded, so perfect squares land on k exactly
    shell = np.floor(np.sqrt(sum(k**2 for k in ks))).astype(np.int64)
    weight = np.ascontiguousarray(np.broadcast_to(half_weights(grid_shape[-1]), shell.shape)).ravel()
    shell = shell.ravel()
    shell.flags.writeable = weight.flags.writeable = False  # cached: shared by every caller
    return shell, weight


class _Groups:
    """A partition of the half-spectrum bins into groups (bands or shells) and the weighted sum over each group.

    A few groups (the three bands): one weighted dot product per group (einsum). Many groups (the shells): one
    ``np.bincount`` over a cached flat index. Both are single passes; a matrix product is avoided because BLAS threads
    on a small shared machine can stall for far longer than the product takes.
    """

    def __init__(self, group: np.ndarray, weight: np.ndarray, n_groups: int):
        """``group[k]`` in ``0..n_groups − 1``, or −1 for a bin in no group; ``weight[k]`` its Parseval weight."""
        self.group = np.where(group >= 0, group, n_groups)  # bins in no group go to a discarded extra bucket
        self.weight = weight
        self.n_groups = n_groups
        self.dense = [np.where(group == g, weight, 0.0) for g in range(n_groups)] if n_groups <= 4 else None
        self._index: dict[int, np.ndarray] = {}

    def index(self, rows: int) -> np.ndarray:
        """Flat bucket of every element of a ``[rows, K]`` array (row-major), cached per row count (thread-safe:
        a lost race only recomputes it)."""
        index = self._index.get(rows)
        if index is None:
            offsets = np.arange(rows, dtype=np.intp)[:, None] * (self.n_groups + 1)
            index = (offsets + self.group[None, :]).ravel()
            if len(self._index) > 4:
                self._index = {}
            self._index[rows] = index
        return index

    def sums(self, power: np.ndarray) -> np.ndarray:
        """``Σ_{k ∈ g} weight_k · power[..., k]`` for every group g: ``[..., n_groups]`` (0 for an empty group)."""
        if self.dense is not None:
            return np.stack([np.einsum("...k,k->...", power, w) for w in self.dense], axis=-1)
        lead = power.shape[:-1]
        rows = int(np.prod(lead))
        flat = (power * self.weight).ravel()
        out = np.bincount(self.index(rows), weights=flat, minlength=rows * (self.n_groups + 1))
        return out.reshape(*lead, self.n_groups + 1)[..., : self.n_groups]


@functools.lru_cache(maxsize=16)
def _bands(grid_shape: tuple[int, ...]) -> _Groups:
    """Bins grouped into the bands low, mid, high."""
    shell, weight = radial_shells(grid_shape)
    edges = [lo for lo, _ in BANDS.values()][1:]
    return _Groups(np.searchsorted(edges, shell, side="right"), weight, len(BANDS))


def k_max(grid_shape: Sequence[int]) -> int:
    """The largest complete shell: ``min_i ⌊N_i / 2⌋`` (shells beyond it are cut by the box's corners)."""
    return int(min(n // 2 for n in grid_shape))


@functools.lru_cache(maxsize=16)
def _shells(grid_shape: tuple[int, ...]) -> _Groups:
    """Bins grouped into shells 1..k_max (group index k − 1); the mean (k = 0) and the corners are left out."""
    shell, weight = radial_shells(grid_shape)
    top = k_max(grid_shape)
    return _Groups(np.where((shell >= 1) & (shell <= top), shell - 1, -1), weight, top)


def _frmse_from_spectra(diff: np.ndarray, grid_shape: tuple[int, ...]) -> np.ndarray:
    """``[B, T, C, 3]`` band RMSEs from the half spectrum of ``p − y``."""
    power = np.square(np.abs(diff)).reshape(*diff.shape[:3], -1)  # |.| by hypot: faster here than re² + im²
    return np.sqrt(_bands(grid_shape).sums(power) / float(np.prod(grid_shape)))


def frmse_per_step(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Band RMSEs per (b, t, c), ``[B, T, C, 3]`` for the bands low, mid, high.

    Formula: ``√(Σ_{k ∈ band} |F̂(p − y)_k|² / N_S)`` with the orthonormal FFT and the radial integer shells
    ``⌊|k|⌋`` in [0, 4), [4, 12), [12, ∞). By Parseval, ``low² + mid² + high² = mean_S (p − y)²`` exactly (up to
    round-off) for every (b, t, c).
    """
    p, y = check_pair(pred, target)
    return _frmse_from_spectra(rfft_spatial(p - y), p.shape[3:])


def _band_mean(values: np.ndarray, band: str) -> float:
    v = values[..., list(BANDS).index(band)]
    return float(v.mean(axis=2).mean(axis=1).mean(axis=0))


def frmse_low(pred: ArrayLike, target: ArrayLike) -> float:
    """fRMSE of the low band, shells ``⌊|k|⌋ ∈ [0, 4)``: mean over c, t, b of :func:`frmse_per_step`. Lower better."""
    return _band_mean(frmse_per_step(pred, target), "low")


def frmse_mid(pred: ArrayLike, target: ArrayLike) -> float:
    """fRMSE of the mid band, shells ``⌊|k|⌋ ∈ [4, 12)``: mean over c, t, b of :func:`frmse_per_step`. Lower better."""
    return _band_mean(frmse_per_step(pred, target), "mid")


def frmse_high(pred: ArrayLike, target: ArrayLike) -> float:
    """fRMSE of the high band, shells ``⌊|k|⌋ ≥ 12``: mean over c, t, b of :func:`frmse_per_step`. Lower better."""
    return _band_mean(frmse_per_step(pred, target), "high")


def energy_spectrum(x: ArrayLike, channels: Sequence[int] | None = None) -> np.ndarray:
    """Radial energy spectrum ``E[b, t, k]`` for shells k = 1..k_max, ``[B, T, k_max]``.

    Formula: ``E(k) = Σ_{c ∈ channels} Σ_{⌊|k'|⌋ = k} |F̂_c(k')|²`` (orthonormal FFT; no ½ factor, it cancels in every
    ratio). ``channels``: the velocity components for a kinetic-energy spectrum, or all channels when None.
    """
    x = as_float64(x)
    chans = check_channels(channels, x.shape[2], "energy") if channels is not None else list(range(x.shape[2]))
    return _spectrum(channel_power(rfft_spatial(x), chans), x.shape[3:])


def _spectrum(power: np.ndarray, grid_shape: tuple[int, ...]) -> np.ndarray:
    """Shell sums 1..k_max of a ``[B, T, *S']`` power spectrum: ``[B, T, k_max]``."""
    return _shells(grid_shape).sums(power.reshape(*power.shape[:2], -1))


def _spectral_error_from_spectra(e_p: np.ndarray, e_y: np.ndarray) -> float:
    """Mean over valid shells of ``|E_p − E_y| / E_y`` per (b, t), then the mean over t and b."""
    valid = e_y >= 1e-12 * e_y.max(axis=-1, keepdims=True)
    valid &= e_y > 0  # a frame with no energy at all has no valid shell (and a zero denominator below)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(valid, np.abs(e_p - e_y) / np.where(valid, e_y, 1.0), 0.0)
    per_frame = safe_ratio(rel.sum(axis=-1), valid.sum(axis=-1), "spectral_error")  # [B, T]
    return float(per_frame.mean(axis=1).mean(axis=0))


def spectral_error(pred: ArrayLike, target: ArrayLike, *, channels: Sequence[int] | None = None) -> float:
    """Mean relative error of the radial energy spectrum. Lower is better.

    Formula: per (b, t), ``mean_{k ∈ K_valid} |E_p(k) − E_y(k)| / E_y(k)`` over the shells k = 1..k_max
    (``k_max = min_i ⌊N_i / 2⌋``) with ``E_y(k) ≥ 1e-12 · max_k E_y``; ``E`` from :func:`energy_spectrum` summed over
    ``channels`` (the velocity components, or all channels). Then the mean over t, then b. The mean flow (k = 0) is
    left out: it is not part of the spectrum's shape, and ``conservation_gap``/``crmse`` score it.

    Returns:
        The scalar error; NaN (with a ``RuntimeWarning``) for a target frame with no energy in shells 1..k_max.
    """
    p, y = check_pair(pred, target)
    chans = check_channels(channels, p.shape[2], "energy") if channels is not None else list(range(p.shape[2]))
    return _spectral_error_from_spectra(energy_spectrum(p, chans), energy_spectrum(y, chans))


def spectral_scores(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    channels: Sequence[int] | None = None,
    velocity_channels: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
) -> dict[str, float]:
    """``frmse_low|mid|high``, ``spectral_error`` and, on a periodic grid, ``div_free_error`` from as few FFTs as the
    linearity of the transform allows.

    The energy (and velocity) channels need the spectra of ``pred`` and ``target`` separately; every other channel
    only needs the spectrum of ``pred − target`` (``F̂(p − y) = F̂p − F̂y``). So a task with velocity u, v among four
    fields transforms six channel-fields, not eight. Equal up to round-off to the functions called separately.
    ``div_free_error`` is included when ``velocity_channels`` (and ``spacing``) are given, which the caller does only
    for a periodic grid.
    """
    p, y = check_pair(pred, target)
    n_chan = p.shape[2]
    chans = check_channels(channels, n_chan, "energy") if channels is not None else list(range(n_chan))
    vel = check_channels(velocity_channels, n_chan, "velocity") if velocity_channels is not None else []
    grid = p.shape[3:]
    both = sorted(set(chans) | set(vel))  # channels whose own spectra are needed
    rest = [c for c in range(n_chan) if c not in both]
    if len(both) < n_chan:
        p_both, y_both = p[:, :, both], y[:, :, both]
    else:
        p_both, y_both = p, y  # every channel: no copy
    fp, fy = rfft_spatial(p_both), rfft_spatial(y_both)  # channel j of these is channel both[j]
    bands = np.empty((*p.shape[:3], len(BANDS)))
    bands[:, :, both] = _frmse_from_spectra(fp - fy, grid)
    if rest:
        bands[:, :, rest] = _frmse_from_spectra(rfft_spatial(p[:, :, rest] - y[:, :, rest]), grid)
    scores = {f"frmse_{band}": _band_mean(bands, band) for band in BANDS}
    local = {c: j for j, c in enumerate(both)}
    energy = [local[c] for c in chans]
    power_y = channel_power(fy, energy)
    scores["spectral_error"] = _spectral_error_from_spectra(
        _spectrum(channel_power(fp, energy), grid), _spectrum(power_y, grid)
    )
    if vel:
        if spacing is None:
            raise ValueError("div_free_error from the spectra needs the grid spacing")
        vel_local = [local[c] for c in vel]
        target_power = power_y if vel_local == energy else None  # the kinetic-energy spectrum's power, when it is one
        scores["div_free_error"] = periodic_div_free_error(
            fp, fy, velocity_channels=vel_local, spacing=spacing, grid_shape=grid, target_power=target_power
        )
    return scores
