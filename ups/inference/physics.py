"""Physics facts of decoded frames that inference acts on: conserved integrals, the physics gap, positive fields.

Frames are physical (un-normalised) grid fields ``[B, C, *S]``; integrals are cell sums times the cell volume, the
same quadrature as :func:`ups.metrics.physics.domain_integrals`, so what triggers a correction here is what
``conservation_gap`` scores later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ups.data.spec import TaskSpec

#: Field names that hold a density, an energy or a pressure, i.e. a quantity that must stay non-negative. A task can
#: override the list with ``spec.extra["positive_fields"]``. ``TaskSpec`` has no positivity flag (euler1d/2d store
#: ``rho`` and ``E``); velocities, vorticity, momenta and the scalar ``u`` of burgers/ks may be negative.
POSITIVE_FIELD_NAMES = frozenset({"rho", "density", "E", "e", "energy", "p", "pressure"})


def positive_channels(spec: TaskSpec) -> tuple[int, ...]:
    """Channels of the fields that must stay non-negative (``spec.extra["positive_fields"]``, else by name)."""
    names = spec.extra.get("positive_fields")
    if names is None:
        names = [f for f in spec.fields if f in POSITIVE_FIELD_NAMES]
    return tuple(spec.channel(f) for f in names if f in spec.fields)


def spatial_dims(ndim: int) -> tuple[int, ...]:
    """The trailing ``ndim`` (space) axes."""
    return tuple(range(-ndim, 0))


def integrals(u: torch.Tensor, channels: Sequence[int], cell_volume: float, ndim: int) -> torch.Tensor:
    """``Q[..., q] = Σ_S u[..., c_q, S] · cell_volume`` for ``u [..., C, *S]``: ``[..., Q]``."""
    index = torch.as_tensor(list(channels), dtype=torch.long, device=u.device)
    return u.index_select(u.ndim - ndim - 1, index).sum(dim=spatial_dims(ndim)) * cell_volume


def relative_drift(drift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``|drift| / scale``; where the scale is 0 (an identically zero reference), 0 for no drift and ∞ otherwise."""
    drift = drift.abs()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    inf = torch.where(drift > 0, torch.full_like(drift, float("inf")), torch.zeros_like(drift))
    return torch.where(scale > 0, drift / safe, inf)


def physics_gap(u: torch.Tensor, reference: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """Relative drift of the conserved integrals of ``u`` from ``reference``, max over conserved quantities: ``[B]``.

    Formula, per sample: ``max_q |Q_q(u) − Q_q(ref)| / Σ_S |ref_q| · V`` (the normaliser of
    :func:`ups.metrics.conservation_gap`, finite for quantities whose integral is 0, e.g. ns2d momentum). Zero for a
    task without conserved quantities, so such tasks never trigger a gap correction.

    Args:
        u: physical frame ``[B, C, *S]``.
        reference: the physical frame the drift is measured from (the last input frame), ``[B, C, *S]``.
        spec: the task.
    """
    chans, vol, nd = spec.conserved_channels, spec.cell_volume, spec.ndim
    if not chans:
        return torch.zeros(u.shape[0], device=u.device, dtype=u.dtype)
    drift = integrals(u, chans, vol, nd) - integrals(reference, chans, vol, nd)
    return relative_drift(drift, integrals(reference.abs(), chans, vol, nd)).amax(dim=-1)


def conservation_guidance(
    decode: Callable[[torch.Tensor], torch.Tensor], reference: torch.Tensor, spec: TaskSpec
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The physics residual the corrector is guided with: squared relative drift of the conserved integrals.

    ``R(z) = Σ_q ((Q_q(decode(z)) − Q_q(ref)) / Σ_S |ref_q| · V)²`` per sample ``[B]``, differentiable through the
    decoder (``decode``: latent → physical frame). None for a task without conserved quantities (nothing to guide
    towards). Quantities whose reference is identically zero are measured in absolute units.
    """
    chans, vol, nd = spec.conserved_channels, spec.cell_volume, spec.ndim
    if not chans:
        return None
    target = integrals(reference, chans, vol, nd)
    scale = integrals(reference.abs(), chans, vol, nd)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))

    def residual(z: torch.Tensor) -> torch.Tensor:
        q = integrals(decode(z).float(), chans, vol, nd)
        return ((q - target) / scale).pow(2).sum(dim=-1)

    return residual
