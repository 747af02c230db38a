"""Boundary-condition violation of a predicted field on the walls of a bounded domain (Dirichlet or Neumann).

Arrays are ``[B, T, C, *S]`` with predicted steps only. The walls are the outer faces of the grid box; the boundary
cells are the first and last cell along every spatial axis. Periodic tasks have no walls, so the metric is ``None``
(not applicable), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ups.metrics._arrays import ArrayLike, boundary_mask, check_channels, check_pair, safe_ratio, spatial_axes


def _wall_normal_derivatives(x: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Outward normal derivatives on every wall face of ``x [B, T, C, *S]``, concatenated: ``[B, T, C, n_wall]``.

    Cells are centred, so a wall is the outer face half a cell beyond the first cell centre. The derivative at that
    face is taken second-order accurate from the three nearest cells: on the low wall of axis i
    ``(2 x[0] − 3 x[1] + x[2]) / h_i`` and on the high wall ``(2 x[−1] − 3 x[−2] + x[−3]) / h_i`` (the outward
    normal points out of the box). A first-order ``(x[0] − x[1]) / h`` measures the slope half a cell *inside* the
    wall, so even the exact solution of a no-flux problem would score O(h) instead of O(h²).
    """
    lead = x.shape[:3]
    parts = []
    for i, h in enumerate(spacing):
        ax = 3 + i
        lo = (2 * np.take(x, 0, axis=ax) - 3 * np.take(x, 1, axis=ax) + np.take(x, 2, axis=ax)) / h
        hi = (2 * np.take(x, -1, axis=ax) - 3 * np.take(x, -2, axis=ax) + np.take(x, -3, axis=ax)) / h
        parts += [lo.reshape(*lead, -1), hi.reshape(*lead, -1)]
    return np.concatenate(parts, axis=-1)


def bc_violation(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    bc: str,
    bc_value: float = 0.0,
    spacing: Sequence[float] | None = None,
    channels: Sequence[int] | None = None,
) -> float | None:
    """Relative RMS violation of the wall boundary condition by ``pred``. Lower is better.

    Formula, per (b, t, c) over the channels ``channels`` the condition applies to:

    - Dirichlet (wall value g): ``√mean_{∂S} (p − g)² / √mean_S y²``, where ∂S are the boundary cells (first and
      last cell along every spatial axis, each corner counted once).
    - Neumann (outward normal derivative g): ``√mean_walls (∂_n p − g)² / √mean_S |∇y|²``, with ``∂_n p`` at the
      wall face by the second-order one-sided stencil ``(2 p_0 − 3 p_1 + p_2) / h`` on every cell of every wall (a
      corner cell sits on two walls and has one entry per wall), and ``∇y`` by ``np.gradient`` (second-order
      central differences inside, first-order one-sided on the boundary) in physical units.

    Then the mean over c, then t, then b. The normaliser is the target's RMS (Dirichlet) or RMS gradient norm
    (Neumann) over the whole frame, so the value does not depend on the field's units.

    Args:
        pred: prediction ``[B, T, C, *S]``.
        target: ground truth, same shape.
        bc: ``"dirichlet"`` or ``"neumann"``; ``"periodic"`` and ``"none"`` (no walls) give ``None``.
        bc_value: the prescribed wall value g (``TaskSpec.bc_value``).
        spacing: cell size per spatial axis (``TaskSpec.spacing``); required for Neumann.
        channels: channels the condition applies to (``TaskSpec.bc_channels``); all when None.

    Returns:
        The scalar violation; ``None`` when the task has no walls; NaN (with a ``RuntimeWarning``) where a target
        frame is identically zero (Dirichlet) or constant (Neumann).

    Raises:
        ValueError: on an unknown ``bc``, a missing or misshaped ``spacing`` for Neumann, or bad channels.
    """
    if bc in ("periodic", "none"):
        return None
    if bc not in ("dirichlet", "neumann"):
        raise ValueError(f"unknown boundary condition {bc!r}; valid: dirichlet, neumann, none, periodic")
    p, y = check_pair(pred, target)
    if channels is not None and list(channels) != list(range(p.shape[2])):
        chans = check_channels(channels, p.shape[2], "bc")
        p, y = p[:, :, chans], y[:, :, chans]
    s = spatial_axes(p)
    if bc == "dirichlet":
        cells = np.flatnonzero(boundary_mask(p.shape[3:]))
        residual = np.take(p.reshape(*p.shape[:3], -1), cells, axis=-1) - bc_value  # [B, T, C, n_boundary]
        y_flat = y.reshape(*y.shape[:3], -1)
        norm = np.sqrt(np.einsum("btcn,btcn->btc", y_flat, y_flat) / y_flat.shape[-1])
    else:
        if spacing is None or len(spacing) != len(s):
            raise ValueError(f"neumann bc_violation needs one spacing per spatial axis ({len(s)}), got {spacing}")
        if min(p.shape[3:]) < 3:
            raise ValueError(f"neumann bc_violation needs at least 3 cells per axis, got {p.shape[3:]}")
        residual = _wall_normal_derivatives(p, spacing) - bc_value
        grads = np.gradient(y, *spacing, axis=s) if len(s) > 1 else [np.gradient(y, spacing[0], axis=s[0])]
        norm = np.sqrt(np.mean(sum(g**2 for g in grads), axis=s))
    err = np.sqrt(np.mean(residual**2, axis=-1))  # [B, T, C]
    v = safe_ratio(err, norm, "bc_violation")
    return float(v.mean(axis=2).mean(axis=1).mean(axis=0))
