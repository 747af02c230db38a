"""Divergence of a predicted velocity field, with the discrete operators the Hodge projection guard uses.

A velocity field is ``u [..., D, *S]``: D components on the axis before space, one per spatial axis (D == len(S)),
component i along axis i. Two discretisations, one per kind of domain, each the one the data of that kind come from:

- **periodic**: spectral derivatives, ``∂_j ↔ i k_j`` with ``k_j = 2π · fftfreq(N_j, h_j)`` and the Nyquist wavenumber
  of an even axis set to 0 (its derivative is not representable as a real field). Exact for the band-limited fields
  of the pseudo-spectral solvers.
- **walls** (``dirichlet``/``neumann`` tasks, i.e. a closed box): second-order central differences with one mirror
  ghost cell per wall: a component normal to the wall is odd about it (no penetration, ``u_ghost = −u``), a
  tangential one even (``u_ghost = u``). On the mirror-extended periodic grid these are central differences, with
  symbol ``i sin(k_j h_j) / h_j``.

:func:`ups.models.physics_guards.helmholtz_hodge_projection_grid` projects with the same two operators, so a projected
field has divergence at round-off under :func:`divergence`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft

from ups.metrics._arrays import ArrayLike, as_float64, check_channels, check_pair, safe_ratio
from ups.metrics._fourier import channel_power, half_weights, rfft_space, spectral_wavenumbers

WALLED = ("dirichlet", "neumann", "walls")


def _check_velocity(u: np.ndarray, spacing: Sequence[float]) -> int:
    n_dim = len(spacing)
    if u.ndim < n_dim + 1 or u.shape[-n_dim - 1] != n_dim:
        raise ValueError(f"velocity must be [..., D, *S] with D = {n_dim} components, got shape {u.shape}")
    return n_dim


def _central(x: np.ndarray, axis: int, h: float, odd: bool) -> np.ndarray:
    """Central difference of ``x`` along ``axis`` with one mirror ghost cell per end (odd: ``−x``, even: ``x``)."""
    x = np.moveaxis(x, axis, -1)
    sign = -1.0 if odd else 1.0
    d = np.empty_like(x)
    d[..., 1:-1] = x[..., 2:] - x[..., :-2]
    d[..., 0] = x[..., 1] - sign * x[..., 0]
    d[..., -1] = sign * x[..., -1] - x[..., -2]
    return np.moveaxis(d / (2.0 * h), -1, axis)


def divergence(u: ArrayLike, *, spacing: Sequence[float], bc: str = "periodic") -> np.ndarray:
    """Discrete divergence ``Σ_i ∂_i u_i`` of ``u [..., D, *S]``, returned as ``[..., *S]`` (float64).

    ``bc="periodic"``: spectral derivatives; ``"dirichlet"``, ``"neumann"`` or ``"walls"``: central differences with
    no-penetration mirror ghosts (module docstring).
    """
    u = as_float64(u)
    n_dim = _check_velocity(u, spacing)
    grid = u.shape[-n_dim:]
    if bc == "periodic":
        axes = tuple(range(-n_dim, 0))
        f = scipy.fft.rfftn(u, axes=axes)
        ks = spectral_wavenumbers(grid, spacing)
        f_div = sum(1j * k * np.take(f, i, axis=-n_dim - 1) for i, k in enumerate(ks))
        return scipy.fft.irfftn(f_div, s=grid, axes=axes)
    if bc in WALLED:
        out = 0.0
        for i, h in enumerate(spacing):
            c = np.take(u, i, axis=-n_dim - 1)  # [..., *S]
            out = out + _central(c, c.ndim - n_dim + i, h, odd=True)
        return out
    raise ValueError(f"unknown boundary condition {bc!r} for a divergence; valid: periodic, {', '.join(WALLED)}")


def gradient_norm2(u: ArrayLike, *, spacing: Sequence[float], bc: str = "periodic") -> np.ndarray:
    """Squared Frobenius norm of the velocity gradient, ``Σ_{i,j} (∂_j u_i)²``, as ``[..., *S]``.

    Same operators as :func:`divergence`; on walls, ``u_i`` is odd about the walls normal to axis i and even about
    the others.
    """
    u = as_float64(u)
    n_dim = _check_velocity(u, spacing)
    grid = u.shape[-n_dim:]
    if bc == "periodic":
        axes = tuple(range(-n_dim, 0))
        f = scipy.fft.rfftn(u, axes=axes)
        out = 0.0
        for k in spectral_wavenumbers(grid, spacing):
            out = out + (scipy.fft.irfftn(1j * k * f, s=grid, axes=axes) ** 2).sum(axis=-n_dim - 1)
        return out
    if bc in WALLED:
        out = 0.0
        for i in range(n_dim):
            c = np.take(u, i, axis=-n_dim - 1)
            for j, h in enumerate(spacing):
                out = out + _central(c, c.ndim - n_dim + j, h, odd=i == j) ** 2
        return out
    raise ValueError(f"unknown boundary condition {bc!r} for a gradient; valid: periodic, {', '.join(WALLED)}")


def div_free_error(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    velocity_channels: Sequence[int],
    spacing: Sequence[float],
    bc: str = "periodic",
) -> float:
    """Relative divergence of the predicted velocity. Lower is better; round-off for a projected field.

    Formula: per (b, t), ``√mean_S (∇·u_p)² / √mean_S ‖∇u_y‖_F²`` (RMS divergence of the prediction over the RMS
    velocity-gradient norm of the target), with the operators of :func:`divergence`; then the mean over t, then b.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        velocity_channels: channel of each velocity component, in spatial-axis order (``TaskSpec.velocity_channels``).
        spacing: cell size per spatial axis.
        bc: ``periodic`` (spectral) or a walled condition (central differences with mirror ghosts).

    Returns:
        The scalar error; NaN (with a ``RuntimeWarning``) where the target velocity is uniform.
    """
    p, y = check_pair(pred, target)
    chans = check_channels(velocity_channels, p.shape[2], "velocity")
    if len(chans) != p.ndim - 3:
        raise ValueError(f"need one velocity channel per spatial axis ({p.ndim - 3}), got {list(velocity_channels)}")
    if bc == "periodic":
        f_pred, f_target = rfft_space(p, p.ndim - 3), rfft_space(y, p.ndim - 3)
        return periodic_div_free_error(
            f_pred, f_target, velocity_channels=chans, spacing=spacing, grid_shape=p.shape[3:]
        )
    s = tuple(range(2, p.ndim - 1))  # [B, T, *S] once the component axis is reduced
    div2 = np.mean(divergence(p[:, :, chans], spacing=spacing, bc=bc) ** 2, axis=s)
    grad2 = np.mean(gradient_norm2(y[:, :, chans], spacing=spacing, bc=bc), axis=s)
    return float(safe_ratio(np.sqrt(div2), np.sqrt(grad2), "div_free_error").mean(axis=1).mean(axis=0))


def periodic_div_free_error(
    f_pred: np.ndarray,
    f_target: np.ndarray,
    *,
    velocity_channels: Sequence[int],
    spacing: Sequence[float],
    grid_shape: Sequence[int],
    target_power: np.ndarray | None = None,
) -> float:
    """:func:`div_free_error` on a periodic grid from the orthonormal half spectra ``[B, T, C, *S']`` of both arrays.

    By Parseval, ``mean_S f² = Σ_k w_k |F̂_k|² / N_S`` (w: 2 where the mirror bin is not stored), so neither the
    divergence nor the gradient is transformed back. Equal up to round-off to the mean squares of :func:`divergence`
    and :func:`gradient_norm2`. ``grid_shape``: the spatial shape (the half spectrum does not tell an even last axis
    from an odd one). ``target_power``: ``Σ_i |F̂ y_{u_i}|²`` when the caller has it already.
    """
    grid = tuple(grid_shape)
    ks = spectral_wavenumbers(grid, spacing)
    weight = np.broadcast_to(half_weights(grid[-1]) / float(np.prod(grid)), f_pred.shape[3:])  # [*S']
    k2_weight = (weight * sum(k**2 for k in ks)).ravel()
    weight = np.ascontiguousarray(weight).ravel()
    lead = f_pred.shape[:2]
    # |Σ_i i k_i F̂_i|² = |Σ_i k_i F̂_i|²: the factor i does not change the modulus
    f_div = sum(k * f_pred[:, :, c] for k, c in zip(ks, velocity_channels, strict=True))  # [B, T, *S']
    div2 = np.einsum("bsk,k->bs", np.square(np.abs(f_div)).reshape(*lead, -1), weight)
    if target_power is None:
        target_power = channel_power(f_target, list(velocity_channels))
    grad2 = np.einsum("bsk,k->bs", target_power.reshape(*lead, -1), k2_weight)
    return float(safe_ratio(np.sqrt(div2), np.sqrt(grad2), "div_free_error").mean(axis=1).mean(axis=0))
