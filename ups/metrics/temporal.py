"""Temporal metrics: per-step correlation with the truth and the rollout horizon it defines.

The horizon is the usual "correlation time" of chaotic-rollout papers (e.g. Kochkov et al., 2021, "Machine learning
accelerated computational fluid dynamics", PNAS: time until the vorticity correlation drops below a threshold): the
number of predicted steps a model stays correlated with the truth. Arrays are ``[B, T, C, *S]`` with predicted steps
only, so step 1 is the first prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ups.metrics._arrays import ArrayLike, check_pair, check_step, safe_ratio


def pearson_per_step(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Centred Pearson correlation of each predicted frame with the true one, ``[B, T]``.

    Formula: per (b, t), with ``p' = p − mean_{C,S} p`` and ``y' = y − mean_{C,S} y`` (one mean over all channels
    and cells of the frame), ``ρ = Σ_{C,S} p'y' / √(Σ p'² · Σ y'²)``, clipped to [-1, 1] afterwards (round-off only).

    Computed from the frame's moments (``Σ p'y' = Σ py − Σp Σy / N``, one read of each array, no centred copies)
    wherever that is accurate: both variances are at least 1e-6 of the raw second moments (so cancellation costs at
    most ~1e-10 relative) and the products stay normal. Other frames (a mean a thousand times the spread, extreme
    magnitudes, constant frames) are centred explicitly, after an exact power-of-two rescaling of any frame whose
    largest magnitude is outside [2⁻²⁰⁰, 2²⁰⁰]. Either way identical inputs go through identical operations, so
    ``pred == target`` gives exactly 1.0 and ``pred == −target`` exactly −1.0. NaN (with a ``RuntimeWarning``) where
    either frame is constant.
    """
    p, y = check_pair(pred, target)
    p, y = p.reshape(*p.shape[:2], -1), y.reshape(*y.shape[:2], -1)  # [B, T, C·N_S]
    n = p.shape[-1]
    sum_p, sum_y = p.sum(axis=-1), y.sum(axis=-1)
    pp, yy, py = (np.einsum("btn,btn->bt", a, b) for a, b in ((p, p), (y, y), (p, y)))
    var_p, var_y = pp - sum_p * sum_p / n, yy - sum_y * sum_y / n  # N · variance
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        den2 = var_p * var_y
        fast = (var_p > 1e-6 * pp) & (var_y > 1e-6 * yy) & np.isfinite(den2) & (den2 > np.finfo(np.float64).tiny)
        rho = (py - sum_p * sum_y / n) / np.sqrt(np.where(fast, den2, 1.0))
    if not fast.all():
        rho[~fast] = _centred_pearson(p[~fast], y[~fast])
    return np.clip(rho, -1.0, 1.0)


def _centred_pearson(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ρ of ``[F, N]`` frame pairs with explicit centring (and power-of-two rescaling of extreme frames)."""
    centred = []
    for x in (p, y):
        x = x - x.mean(axis=-1, keepdims=True)
        peak = np.maximum(x.max(axis=-1, keepdims=True), -x.min(axis=-1, keepdims=True))
        extreme = (peak > 2.0**200) | ((peak < 2.0**-200) & (peak > 0))  # else Σx² · Σy² could overflow
        if np.any(extreme):  # rescale only those frames, by 2^-e with peak ~ 2^e (exact)
            x *= np.where(extreme, np.exp2(-np.floor(np.log2(np.where(extreme, peak, 1.0)))), 1.0)
        centred.append(x)
    p, y = centred
    num = np.einsum("fn,fn->f", p, y)
    den = np.sqrt(np.einsum("fn,fn->f", p, p) * np.einsum("fn,fn->f", y, y))
    return safe_ratio(num, den, "pearson")


def pearson(pred: ArrayLike, target: ArrayLike) -> float:
    """Mean centred Pearson correlation over the rollout. Higher is better; exactly 1 for a perfect prediction.

    Formula: ``mean_b mean_t ρ[b, t]`` with ρ from :func:`pearson_per_step`. NaN if any frame is constant.
    """
    return float(pearson_per_step(pred, target).mean(axis=1).mean(axis=0))


def pearson_at(pred: ArrayLike, target: ArrayLike, k: int) -> float:
    """Mean over b of the centred Pearson correlation at predicted step ``k`` (``pearson@k``). Higher is better.

    Formula: ``mean_b ρ[b, k]`` with ρ from :func:`pearson_per_step`; ``k`` is 1-based (k = 1: first prediction).

    Raises:
        ValueError: if ``k`` is outside ``1..T``.
    """
    p, y = check_pair(pred, target)
    i = check_step(k, p.shape[1])
    return float(pearson_per_step(p[:, i : i + 1], y[:, i : i + 1]).mean())


@dataclass(frozen=True)
class HorizonDetails:
    """Per-trajectory rollout horizons.

    Attributes:
        steps: ``[B]`` horizon in predicted steps (float; NaN where ρ was NaN before it dropped).
        censored: ``[B]`` True where ρ never dropped below the threshold, so the true horizon is ≥ T.
        time: ``[B]`` horizon in physical time (``steps · dt``), or None when no ``dt`` was given.
        rho: ``[B, T]`` the per-step correlations the horizons were read from.
        threshold: the correlation threshold used.
    """

    steps: np.ndarray
    censored: np.ndarray
    time: np.ndarray | None
    rho: np.ndarray
    threshold: float


def rollout_horizon_details(
    pred: ArrayLike, target: ArrayLike, *, threshold: float = 0.8, dt: float | None = None
) -> HorizonDetails:
    """Per-trajectory horizon: the number of steps before ρ_t first drops below ``threshold``.

    Formula: per b, ``h_b = min{t ≥ 1 : ρ_{b,t} < threshold} − 1`` with ρ from :func:`pearson_per_step` and t
    1-based; ``h_b = T`` and ``censored_b = True`` when ρ never drops. If ρ is NaN (a constant frame) at a step
    before the first drop, ``h_b`` is NaN: the horizon is unknown, not long.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        threshold: correlation below which the rollout counts as decorrelated (0.8 by default).
        dt: physical time between two predicted frames; when given, ``time = steps · dt``.
    """
    rho = pearson_per_step(pred, target)  # [B, T]
    n_steps = rho.shape[1]
    below = rho < threshold  # NaN compares False
    nan = np.isnan(rho)
    first_below = np.where(below.any(axis=1), below.argmax(axis=1), n_steps)
    first_nan = np.where(nan.any(axis=1), nan.argmax(axis=1), n_steps)
    steps = np.where(first_nan < first_below, np.nan, first_below.astype(np.float64))
    censored = (first_below == n_steps) & (first_nan == n_steps)
    time = steps * dt if dt is not None else None
    return HorizonDetails(steps=steps, censored=censored, time=time, rho=rho, threshold=float(threshold))


def rollout_horizon(pred: ArrayLike, target: ArrayLike, *, threshold: float = 0.8, dt: float | None = None) -> float:
    """Mean rollout horizon over trajectories. Higher is better.

    Formula: ``mean_b h_b`` with ``h_b`` from :func:`rollout_horizon_details` (number of predicted steps before the
    centred Pearson correlation over (C, S) first drops below ``threshold``; censored at T). In steps, or in physical
    time (``· dt``) when ``dt`` is given. NaN if any trajectory's horizon is NaN.
    """
    details = rollout_horizon_details(pred, target, threshold=threshold, dt=dt)
    h = details.steps if details.time is None else details.time
    return float(h.mean())


def correlation_scores(pred: ArrayLike, target: ArrayLike, *, threshold: float = 0.8) -> dict[str, float]:
    """``pearson`` and ``rollout_horizon`` (in steps) from one computation of the per-step correlations."""
    details = rollout_horizon_details(pred, target, threshold=threshold)
    return {
        "pearson": float(details.rho.mean(axis=1).mean(axis=0)),
        "rollout_horizon": float(details.steps.mean()),
    }
