"""Physics metrics: conservation of domain integrals (mass, momentum, energy, ...) over a rollout.

A conserved quantity q is the domain integral of one stored channel, ``Q_q(f) = Σ_S f_q · cell_volume`` (the cell
sum on the uniform grid: the quantity a finite-volume scheme, or the zero mode of a periodic spectral scheme, keeps
constant up to round-off and boundary fluxes). Arrays are ``[B, T, C, *S]`` with predicted steps only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ups.metrics._arrays import ArrayLike, as_float64, check_pair, safe_ratio, spatial_axes


def _channels(conserved_channels: Sequence[int], n_channels: int) -> list[int]:
    chans = [int(c) for c in conserved_channels]
    bad = [c for c in chans if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"conserved channel(s) {bad} out of range for {n_channels} channels")
    return chans


def domain_integrals(x: ArrayLike, conserved_channels: Sequence[int], cell_volume: float = 1.0) -> np.ndarray:
    """``Q[b, t, q] = Σ_S x[b, t, c_q] · cell_volume`` for a ``[B, T, C, *S]`` array; returns ``[B, T, Q]``."""
    x = as_float64(x)
    chans = _channels(conserved_channels, x.shape[2])
    return np.sum(x[:, :, chans], axis=spatial_axes(x)) * cell_volume


def conservation_gap(
    pred: ArrayLike, target: ArrayLike, *, conserved_channels: Sequence[int], cell_volume: float = 1.0
) -> float | None:
    """Relative error of the conserved integrals. Lower is better.

    Formula: for each conserved quantity q (channel ``c_q``), per (b, t),
    ``|Q_q(p_t) − Q_q(y_t)| / ∫|y_q(t=0)|`` with ``Q_q(f) = Σ_S f_{c_q} · cell_volume`` and
    ``∫|y_q(t=0)| = Σ_S |y_{b,0,c_q}| · cell_volume``, where t = 0 is the first *predicted* frame of ``target``
    (input frames are not part of the arrays). Then the mean over q, then t, then b.

    The normaliser is the L1 mass of the target's first frame, not ``|Q_q(y_0)|``, so a quantity whose integral is
    zero (e.g. momentum of a symmetric flow) still has a finite scale.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        conserved_channels: channel index of each conserved quantity's density (``TaskSpec.conserved_channels``).
        cell_volume: volume of one grid cell (``TaskSpec.cell_volume``); it cancels in the ratio but keeps the
            intermediate integrals in physical units.

    Returns:
        The scalar gap; ``None`` when there are no conserved quantities (not applicable); NaN (with a
        ``RuntimeWarning``) if a conserved channel of the target's first frame is identically zero.
    """
    if len(conserved_channels) == 0:
        return None
    gap = conservation_gap_per_step(pred, target, conserved_channels=conserved_channels, cell_volume=cell_volume)
    return float(gap.mean(axis=2).mean(axis=1).mean(axis=0))


def conservation_gap_per_step(
    pred: ArrayLike, target: ArrayLike, *, conserved_channels: Sequence[int], cell_volume: float = 1.0
) -> np.ndarray:
    """The unreduced gap ``|Q_q(p_t) − Q_q(y_t)| / ∫|y_q(t=0)|``, ``[B, T, Q]`` (one column per conserved quantity,
    in the order given); :func:`conservation_gap` is its mean over q, t, b. Per quantity: ``.mean(axis=(0, 1))``."""
    p, y = check_pair(pred, target)
    qp = domain_integrals(p, conserved_channels, cell_volume)  # [B, T, Q]
    qy = domain_integrals(y, conserved_channels, cell_volume)
    scale = domain_integrals(np.abs(y[:, :1]), conserved_channels, cell_volume)  # [B, 1, Q]
    return safe_ratio(np.abs(qp - qy), scale, "conservation_gap")


@dataclass(frozen=True)
class ConservationBudgets:
    """Per-step conserved integrals of a rollout, each ``[B, T, Q]`` (Q = conserved quantities, in given order).

    Attributes:
        channels: channel index of each conserved quantity.
        pred_total, target_total: ``Q_q`` of every frame.
        pred_delta, target_delta: per-step budget ``ΔQ_t = Q_t − Q_{t−1}``; ``Q_{−1}`` is the integral of the last
            input frame when it was given, else unknown and the t = 0 entry is NaN.
        pred_drift, target_drift: cumulative drift ``Q_t − Q_ref`` from the reference ``Q_ref`` = integral of the
            last input frame when given, else of the target's first predicted frame (the truth, for both arrays,
            so a first-step error of the prediction shows up as drift).
    """

    channels: tuple[int, ...]
    pred_total: np.ndarray
    target_total: np.ndarray
    pred_delta: np.ndarray
    target_delta: np.ndarray
    pred_drift: np.ndarray
    target_drift: np.ndarray


def conservation_budgets(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    conserved_channels: Sequence[int],
    cell_volume: float = 1.0,
    initial: ArrayLike | None = None,
) -> ConservationBudgets:
    """Per-step conservation budgets of ``pred`` and ``target`` (logged next to :func:`conservation_gap`).

    Formula: ``Q[b,t,q] = Σ_S f[b,t,c_q] · cell_volume``; ``ΔQ[b,t,q] = Q[b,t,q] − Q[b,t−1,q]``;
    ``drift[b,t,q] = Q[b,t,q] − Q_ref[b,q]``. Nothing is reduced: every array is ``[B, T, Q]``.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        conserved_channels: channel index of each conserved quantity's density.
        cell_volume: volume of one grid cell.
        initial: optional last input frame ``[B, C, *S]``, the common starting point of both rollouts; it gives the
            t = 0 budget and the drift reference.
    """
    p, y = check_pair(pred, target)
    chans = tuple(_channels(conserved_channels, p.shape[2]))
    qp = domain_integrals(p, chans, cell_volume)
    qy = domain_integrals(y, chans, cell_volume)
    if initial is not None:
        x0 = as_float64(initial)
        if x0.shape != p.shape[:1] + p.shape[2:]:
            raise ValueError(f"initial must be [B, C, *S] = {p.shape[:1] + p.shape[2:]}, got {x0.shape}")
        q_ref = domain_integrals(x0[:, None], chans, cell_volume)  # [B, 1, Q]
        prev = q_ref
    else:
        q_ref = qy[:, :1]
        prev = np.full_like(q_ref, np.nan)

    def delta(q: np.ndarray) -> np.ndarray:
        return np.diff(q, axis=1, prepend=prev)

    return ConservationBudgets(
        channels=chans,
        pred_total=qp,
        target_total=qy,
        pred_delta=delta(qp),
        target_delta=delta(qy),
        pred_drift=qp - q_ref,
        target_drift=qy - q_ref,
    )
