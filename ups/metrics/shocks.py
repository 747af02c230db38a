"""Shock localisation: does the prediction put its shocks where the truth has them (to within one cell)?

A shock mask marks the cells of a frame where the gradient of the shock field (the density of compressible flow) is
a large fraction of that frame's steepest gradient: ``|∇ρ| > τ · max_S |∇ρ|``. A relative threshold needs no
units and follows shocks as they weaken. Arrays are ``[B, T, C, *S]`` with predicted steps only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ups.metrics._arrays import ArrayLike, check_channels, check_pair, safe_ratio

DEFAULT_THRESHOLD = 0.5  # τ: keeps the one or two steepest cells of a captured shock, drops smooth rarefactions


def _gradient_norm2(x: np.ndarray, spacing: Sequence[float], periodic: bool) -> np.ndarray:
    """``|∇x|²`` of ``x [B, T, *S]`` by central differences: wrapped when periodic; at walls one-sided (first order),
    as ``np.gradient`` does."""
    total = np.zeros_like(x)
    for i, h in enumerate(spacing):
        xm = np.moveaxis(x, 2 + i, -1)
        d = np.empty_like(xm)  # 2h · ∂x (one-sided ends: 2 · one-sided difference), scaled once below
        np.subtract(xm[..., 2:], xm[..., :-2], out=d[..., 1:-1])
        if periodic:
            d[..., 0] = xm[..., 1] - xm[..., -1]
            d[..., -1] = xm[..., 0] - xm[..., -2]
        else:
            d[..., 0] = 2.0 * (xm[..., 1] - xm[..., 0])
            d[..., -1] = 2.0 * (xm[..., -1] - xm[..., -2])
        np.square(d, out=d)
        d *= 1.0 / (2.0 * h) ** 2
        total += np.moveaxis(d, -1, 2 + i)
    return total


def shock_mask(field: ArrayLike, *, spacing: Sequence[float], periodic: bool, threshold: float) -> np.ndarray:
    """Boolean ``[B, T, *S]`` mask ``|∇ρ| > τ · max_S |∇ρ|`` of a ``[B, T, *S]`` field (empty for a constant frame).

    Compared as squares, ``|∇ρ|² > τ² · max_S |∇ρ|²``, which is the same test without a square root per cell.
    """
    g2 = _gradient_norm2(np.asarray(field, dtype=np.float64), spacing, periodic)
    peak = g2.max(axis=tuple(range(2, g2.ndim)), keepdims=True)
    return g2 > threshold**2 * peak


def dilate(mask: np.ndarray, *, periodic: bool) -> np.ndarray:
    """Grow a ``[B, T, *S]`` mask by one cell along every axis and diagonal (a 3^d box), wrapping if periodic."""
    out = mask
    for ax in range(2, mask.ndim):
        src = np.moveaxis(out, ax, -1)
        grown = src.copy()
        grown[..., 1:] |= src[..., :-1]
        grown[..., :-1] |= src[..., 1:]
        if periodic:  # across the seam
            grown[..., 0] |= src[..., -1]
            grown[..., -1] |= src[..., 0]
        out = np.moveaxis(grown, -1, ax)
    return out.copy() if out is mask else out


def shock_scores(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    channel: int,
    spacing: Sequence[float],
    periodic: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    which: tuple[str, ...] = ("shock_iou", "shock_precision"),
) -> dict[str, float]:
    """``shock_iou`` and ``shock_precision`` (or those in ``which``) from one pair of masks; formulas in those
    functions."""
    p, y = check_pair(pred, target)
    (c,) = check_channels([channel], p.shape[2], "shock")
    if len(spacing) != p.ndim - 3:
        raise ValueError(f"need one spacing per spatial axis ({p.ndim - 3}), got {spacing}")
    mp = shock_mask(p[:, :, c], spacing=spacing, periodic=periodic, threshold=threshold)
    my = shock_mask(y[:, :, c], spacing=spacing, periodic=periodic, threshold=threshold)
    s = tuple(range(2, mp.ndim))
    near_true = dilate(my, periodic=periodic)
    scores = {}
    if "shock_iou" in which:
        hits = np.sum(my & dilate(mp, periodic=periodic), axis=s)  # true shock cells found
        false = np.sum(mp & ~near_true, axis=s)  # predicted shock cells with no true shock within one cell
        iou = safe_ratio(hits, np.sum(my, axis=s) + false, "shock_iou")
        scores["shock_iou"] = float(iou.mean(axis=1).mean(axis=0))
    if "shock_precision" in which:
        precision = safe_ratio(np.sum(mp & near_true, axis=s), np.sum(mp, axis=s), "shock_precision")
        scores["shock_precision"] = float(precision.mean(axis=1).mean(axis=0))
    return scores


def shock_iou(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    channel: int,
    spacing: Sequence[float],
    periodic: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
) -> float:
    """Intersection over union of the shock masks, with a one-cell tolerance. Higher is better; 1 when they match.

    Formula: per (b, t), with masks P (prediction) and Y (truth) from :func:`shock_mask` on channel ``channel`` and
    D(·) the one-cell dilation (3^d box): ``IoU = |Y ∩ D(P)| / (|Y| + |P \\ D(Y)|)``: true shock cells with a
    predicted shock within one cell count as hits; predicted cells with no true shock within one cell count as false
    alarms. A captured jump marks two cells (central differences), so a shock displaced by one cell scores 1, by two
    cells 1/3, by three or more 0. Then the mean over t, then b.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        channel: the shock field (``TaskSpec.shock_field``), e.g. the density.
        spacing: cell size per spatial axis (the gradient is in physical units, which matters on anisotropic grids).
        periodic: wrap the gradient and the dilation around the domain.
        threshold: τ in ``|∇ρ| > τ · max_S |∇ρ|``.

    Returns:
        The scalar IoU; NaN (with a ``RuntimeWarning``) for a frame where both masks are empty (constant fields).
    """
    kw = {"channel": channel, "spacing": spacing, "periodic": periodic, "threshold": threshold}
    return shock_scores(pred, target, **kw, which=("shock_iou",))["shock_iou"]


def shock_precision(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    channel: int,
    spacing: Sequence[float],
    periodic: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
) -> float:
    """Fraction of predicted shock cells with a true shock within one cell. Higher is better.

    Formula: per (b, t), ``|P ∩ D(Y)| / |P|`` with the masks and dilation of :func:`shock_iou`; then the mean over t,
    then b. Spurious shocks (oscillations a model adds) lower it; missed shocks do not (IoU sees those).

    Returns:
        The scalar precision; NaN (with a ``RuntimeWarning``) for a frame whose predicted mask is empty.
    """
    kw = {"channel": channel, "spacing": spacing, "periodic": periodic, "threshold": threshold}
    return shock_scores(pred, target, **kw, which=("shock_precision",))["shock_precision"]
