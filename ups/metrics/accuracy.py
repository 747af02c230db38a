"""Accuracy metrics on decoded physical fields: nRMSE (PDEBench) and relative L2.

Arrays are ``[B, T, C, *S]``: batch, predicted steps (input frames are never included), channels, space. All
reductions are plain means (a batch mean divides by B); "mean over S" weights every grid cell equally.

nRMSE follows PDEBench (Takamoto et al., 2022, "PDEBench: An Extensive Benchmark for Scientific Machine Learning",
``pdebench/models/metrics.py``: ``err_nRMSE``): the error norm of each (sample, channel, step) is divided by the
target's own norm before any averaging, so a channel or a sample with small values is not drowned by a large one.
"""

from __future__ import annotations

import numpy as np

from ups.metrics._arrays import ArrayLike, check_pair, check_step, safe_ratio, spatial_axes


def nrmse_per_step(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-(b, t, c) normalised RMSE, ``[B, T, C]``.

    ``e[b,t,c] = √(mean_S (p − y)²) / √(mean_S y²)``; NaN (with a ``RuntimeWarning``) where the target frame of
    that channel is identically zero.
    """
    p, y = check_pair(pred, target)
    s = spatial_axes(p)
    err = np.sqrt(np.mean((p - y) ** 2, axis=s))
    norm = np.sqrt(np.mean(y**2, axis=s))
    return safe_ratio(err, norm, "nrmse")


def nrmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Normalised RMSE over the whole rollout (PDEBench ``err_nRMSE``). Lower is better.

    Formula: per (b, t, c), ``√(mean_S (p − y)²) / √(mean_S y²)``; then the mean over c, then t, then b (all plain
    means, so equal to the mean over all (b, t, c)).

    Args:
        pred: prediction ``[B, T, C, *S]`` (predicted steps only).
        target: ground truth, same shape.

    Returns:
        The scalar nRMSE; NaN (with a ``RuntimeWarning``) if any target frame-channel is identically zero.
    """
    e = nrmse_per_step(pred, target)  # [B, T, C]
    return float(e.mean(axis=2).mean(axis=1).mean(axis=0))


def nrmse_at(pred: ArrayLike, target: ArrayLike, k: int) -> float:
    """nRMSE at predicted step ``k`` only (``nrmse@k``). Lower is better.

    Formula: per (b, c), ``√(mean_S (p_k − y_k)²) / √(mean_S y_k²)``; then the mean over c, then b.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        k: 1-based predicted step (k = 1 is the first predicted frame, never an input frame); ``1 <= k <= T``.

    Raises:
        ValueError: if ``k`` is outside ``1..T``.
    """
    p, y = check_pair(pred, target)
    i = check_step(k, p.shape[1])
    return nrmse(p[:, i : i + 1], y[:, i : i + 1])


def rel_l2(pred: ArrayLike, target: ArrayLike) -> float:
    """Relative L2 error per frame, channels pooled. Lower is better.

    Formula: per (b, t), ``‖p − y‖₂ / ‖y‖₂`` with the norms over (C, S) together; then the mean over t, then b.
    Unlike :func:`nrmse`, channels are pooled before the ratio, so a channel with large values dominates.

    Returns:
        The scalar relative L2 error; NaN (with a ``RuntimeWarning``) if any target frame is identically zero.
    """
    p, y = check_pair(pred, target)
    axes = tuple(range(2, p.ndim))  # (C, *S)
    err = np.sqrt(np.sum((p - y) ** 2, axis=axes))
    norm = np.sqrt(np.sum(y**2, axis=axes))
    r = safe_ratio(err, norm, "rel_l2")  # [B, T]
    return float(r.mean(axis=1).mean(axis=0))
