"""Field losses of the operator stage: task nRMSE, edge (TV) and soft conservation, on ``[B, T, C, *S]`` tensors.

All three take predictions and targets in *normalised* space (``(u − mean) / std`` with the train-split statistics)
and the per-channel ``std`` / ``mean`` to express errors in physical units where the metric is physical. Unlike the
scoreboard metrics (which return NaN for a zero denominator), training losses floor their denominators so one
all-zero frame cannot poison a step; the floors are stated per function.
"""

from __future__ import annotations

import torch

from ups.data.spec import TaskSpec

DENOM_FLOOR = 1e-6  # relative to the channel's std: the smallest RMS / L1 mass a denominator is allowed to take


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-channel vector ``[C]`` → broadcastable against ``[B, T, C, *S]``."""
    return v.view(1, 1, -1, *([1] * (like.ndim - 3))).to(like.dtype)


def nrmse_loss(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """nRMSE of normalised ``pred``/``target`` ``[B, T, C, *S]``, measured on the physical fields.

    Per (b, t, c): ``√mean_S (p − y)² · std_c / √mean_S y_phys²`` (the scoreboard's ``nrmse``, with the denominator
    floored at ``1e-6 · std_c``); then the mean over (b, t, c).
    """
    space = tuple(range(3, pred.ndim))
    s, m = _bcast(std, pred), _bcast(mean, pred)
    err = (pred - target).pow(2).mean(dim=space).sqrt() * s.view(1, 1, -1)
    ref = (target * s + m).pow(2).mean(dim=space).sqrt()
    return (err / ref.clamp_min(DENOM_FLOOR * s.view(1, 1, -1))).mean()


def edge_loss(pred: torch.Tensor, target: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Total variation of the error (an edge-aware term): ``mean_{b,t,c,S} Σ_axes |D_axis (p − y)|``.

    ``D`` is the forward difference along each spatial axis (wrapping around on a periodic domain). It penalises
    ringing and smeared fronts that a pointwise loss under-weights; the playbook uses it at weight 1e-3–5e-3.
    """
    err = pred - target
    total = err.new_zeros(())
    for axis in range(3, err.ndim):
        diff = torch.roll(err, -1, dims=axis) - err if periodic else torch.diff(err, dim=axis)
        total = total + diff.abs().mean()
    return total


def conservation_loss(
    pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, spec: TaskSpec
) -> torch.Tensor:
    """Soft conservation: the scoreboard's ``conservation_gap`` on the physical fields, differentiable.

    Per conserved quantity q (channel c_q) and (b, t): ``|Σ_S p_phys − Σ_S y_phys| / Σ_S |y_phys(t=0)|`` (t = 0 the
    first target frame of the window; the denominator floored at ``1e-6 · std · |S|``); mean over q, t, b. Zero
    when the task conserves nothing.
    """
    chans = list(spec.conserved_channels)
    if not chans:
        return pred.new_zeros(())
    s, m = _bcast(std, pred), _bcast(mean, pred)
    p, y = (pred * s + m)[:, :, chans], (target * s + m)[:, :, chans]
    space = tuple(range(3, pred.ndim))
    gap = (p.sum(dim=space) - y.sum(dim=space)).abs()  # [B, T, Q]
    scale = y[:, :1].abs().sum(dim=space)  # [B, 1, Q]
    n_cells = y[0, 0, 0].numel()
    floor = DENOM_FLOOR * std[chans].to(pred.dtype).view(1, 1, -1) * n_cells
    return (gap / torch.maximum(scale, floor)).mean()
