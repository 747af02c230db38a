"""Accuracy metrics on decoded physical fields: nRMSE (PDEBench), relative L2, RMSE, max error, PSNR, cRMSE, bRMSE.

Arrays are ``[B, T, C, *S]``: batch, predicted steps (input frames are never included), channels, space. All
reductions are plain means (a batch mean divides by B); "mean over S" weights every grid cell equally.

nRMSE follows PDEBench (Takamoto et al., 2022, "PDEBench: An Extensive Benchmark for Scientific Machine Learning",
``pdebench/models/metrics.py``: ``err_nRMSE``): the error norm of each (sample, channel, step) is divided by the
target's own norm before any averaging, so a channel or a sample with small values is not drowned by a large one.
cRMSE and bRMSE are PDEBench's "conserved" and "boundary" RMSEs (``err_CSV``, ``err_BD``), per predicted step.
"""

from __future__ import annotations

import numpy as np

from ups.metrics._arrays import ArrayLike, as_numpy, boundary_mask, check_pair, check_step, safe_ratio, spatial_axes

# Every function below reduces through the same few helpers, so a metric computed alone and the same metric from
# accuracy_scores (the scoreboard's one-pass family) are bitwise equal.


def _flat(x: np.ndarray) -> np.ndarray:
    """``[B, T, C, *S]`` → ``[B, T, C, N_S]`` (a view for contiguous input)."""
    return x.reshape(*x.shape[:3], -1)


def _sum_sq(x: np.ndarray) -> np.ndarray:
    """``Σ_S x²`` per (b, t, c), ``[B, T, C]`` (einsum: no squared temporary)."""
    f = _flat(x)
    return np.einsum("btcn,btcn->btc", f, f)


def _mean_ctb(x: np.ndarray) -> float:
    """Mean of a ``[B, T, C]`` array over c, then t, then b."""
    return float(x.mean(axis=2).mean(axis=1).mean(axis=0))


def _nrmse(sse: np.ndarray, y2: np.ndarray) -> np.ndarray:
    return safe_ratio(np.sqrt(sse), np.sqrt(y2), "nrmse")  # √(mean_S d²) / √(mean_S y²): the 1/N_S cancels


def _rel_l2(sse: np.ndarray, y2: np.ndarray) -> float:
    r = safe_ratio(np.sqrt(sse.sum(axis=2)), np.sqrt(y2.sum(axis=2)), "rel_l2")  # [B, T]
    return float(r.mean(axis=1).mean(axis=0))


def _psnr(sse: np.ndarray, n_cells: int, y_max: np.ndarray, y_min: np.ndarray) -> float:
    relative_mse = safe_ratio(sse / n_cells, (y_max - y_min) ** 2, "psnr")  # NaN (with the warning) where R = 0
    with np.errstate(divide="ignore"):
        return _mean_ctb(-10.0 * np.log10(relative_mse))  # relative_mse = 0: +inf


def _boundary_rmse(diff: np.ndarray) -> float:
    d = np.take(_flat(diff), np.flatnonzero(boundary_mask(diff.shape[3:])), axis=-1)  # [B, T, C, n_boundary]
    return _mean_ctb(np.sqrt(np.einsum("btcn,btcn->btc", d, d) / d.shape[-1]))


def _max_abs(diff: np.ndarray) -> np.ndarray:
    f = _flat(diff)
    return np.maximum(f.max(axis=-1), -f.min(axis=-1))  # max |d| without an |d| temporary


def nrmse_per_step(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-(b, t, c) normalised RMSE, ``[B, T, C]``.

    ``e[b,t,c] = √(mean_S (p − y)²) / √(mean_S y²)``; NaN (with a ``RuntimeWarning``) where the target frame of
    that channel is identically zero.
    """
    p, y = check_pair(pred, target)
    return _nrmse(_sum_sq(p - y), _sum_sq(y))


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
    return _mean_ctb(nrmse_per_step(pred, target))


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
    return _rel_l2(_sum_sq(p - y), _sum_sq(y))


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Root-mean-square error, in the units of the fields. Lower is better.

    Formula: per (b, t, c), ``√(mean_S (p − y)²)``; then the mean over c, then t, then b.
    """
    p, y = check_pair(pred, target)
    return _mean_ctb(np.sqrt(_sum_sq(p - y) / _flat(p).shape[-1]))


def max_err(pred: ArrayLike, target: ArrayLike) -> float:
    """Maximum absolute error per frame, averaged. Lower is better.

    Formula: per (b, t, c), ``max_S |p − y|``; then the mean over c, then t, then b. (PDEBench's ``err_Max`` takes the
    max over space *and the batch* per (channel, step), so a single bad sample sets it; ours is a per-sample mean.)
    """
    p, y = check_pair(pred, target)
    return _mean_ctb(_max_abs(p - y))


def psnr(pred: ArrayLike, target: ArrayLike) -> float:
    """Peak signal-to-noise ratio in dB, against the range of each target frame. Higher is better.

    Formula: per (b, t, c), ``10 · log10(R² / mean_S (p − y)²)`` with ``R = max_S y − min_S y``; then the mean over
    c, then t, then b.

    A perfect frame (zero error, R > 0) has PSNR = +inf, its exact value: no eps caps it, so the mean is +inf when
    any frame is perfect. A constant target frame (R = 0) has no range to compare with: NaN with a
    ``RuntimeWarning``.
    """
    p, y = check_pair(pred, target)
    yf = _flat(y)
    return _psnr(_sum_sq(p - y), yf.shape[-1], yf.max(axis=-1), yf.min(axis=-1))


def crmse(pred: ArrayLike, target: ArrayLike) -> float:
    """RMSE of the spatial means ("conserved-variables" RMSE, PDEBench ``err_CSV``), in field units. Lower is better.

    Formula: per (t, c), ``√(mean_b (mean_S p − mean_S y)²)``; then the mean over t and c. The batch mean divides by
    B. Unlike :func:`~ups.metrics.physics.conservation_gap` it is unnormalised and taken for every channel, conserved
    or not.
    """
    p, y = as_numpy(pred), as_numpy(target)
    if p.shape != y.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {y.shape}")
    check_pair(p[:1], y[:1])  # the [B, T, C, *S] checks, on one trajectory
    s = spatial_axes(p)
    # spatial means accumulated in float64 straight from the stored dtype: no float64 copy of the whole rollout
    diff = p.mean(axis=s, dtype=np.float64) - y.mean(axis=s, dtype=np.float64)  # [B, T, C]
    return float(np.sqrt(np.mean(diff**2, axis=0)).mean())


def brmse(pred: ArrayLike, target: ArrayLike) -> float:
    """RMSE over the boundary cells (PDEBench ``err_BD``, per step), in field units. Lower is better.

    Formula: per (b, t, c), ``√(mean_{∂S} (p − y)²)`` over the boundary cells ∂S (the first and last cell along
    every spatial axis, each corner counted once); then the mean over c, then t, then b.
    """
    p, y = check_pair(pred, target)
    return _boundary_rmse(p - y)


def accuracy_scores(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    """``nrmse``, ``rel_l2``, ``rmse``, ``max_err``, ``psnr`` and ``brmse`` from one difference ``p − y``.

    Bitwise equal to the six functions called separately (same reductions); the scoreboard uses it to make one pass
    of each kind over the arrays instead of six.
    """
    p, y = check_pair(pred, target)
    diff = p - y
    sse, y2 = _sum_sq(diff), _sum_sq(y)
    yf = _flat(y)
    n_cells = yf.shape[-1]
    return {
        "nrmse": _mean_ctb(_nrmse(sse, y2)),
        "rel_l2": _rel_l2(sse, y2),
        "rmse": _mean_ctb(np.sqrt(sse / n_cells)),
        "max_err": _mean_ctb(_max_abs(diff)),
        "psnr": _psnr(sse, n_cells, yf.max(axis=-1), yf.min(axis=-1)),
        "brmse": _boundary_rmse(diff),
    }
