"""Post-decode projections (``physics.projections``) of reported frames, each applied where the task has the structure.

Order, chosen so that each step keeps what the earlier ones fixed:

1. ``flux_continuity`` — :func:`~ups.models.physics_guards.interface_flux_projection` on every conserved channel, with
   the whole domain as one subdomain and the last input frame's integrals as the budget: the integrals drift back to
   the input's exactly, by a uniform (minimum-L2) correction. (``TaskSpec`` defines no subdomain decomposition; with
   one subdomain there are no interfaces, so step 2 of that projection has nothing to move.)
2. ``positivity_clamp`` — :func:`~ups.models.physics_guards.positify` on the positive fields
   (:func:`~ups.inference.physics.positive_channels`); it keeps each integral, so step 1 still holds.
3. ``hodge_div_free`` — :func:`~ups.models.physics_guards.helmholtz_hodge_projection_grid` on the velocity channels of
   an incompressible task (periodic: spectral; walled boxes: the mirror/DCT solve). It keeps the mean flow (k = 0),
   so momentum integrals from step 1 still hold, and it changes neither the curl nor a uniform shift's zero
   divergence, so a stored vorticity channel stays consistent with the projected velocity.

A projection whose structure the task lacks (no conserved / positive / velocity fields, a ``bc`` of ``none`` for Hodge)
is skipped.
"""

from __future__ import annotations

import torch

from ups.config.schema import ProjectionsConfig
from ups.data.spec import TaskSpec
from ups.inference.physics import integrals, positive_channels, spatial_dims
from ups.models.physics_guards import helmholtz_hodge_projection_grid, interface_flux_projection, positify


def hodge_applies(spec: TaskSpec) -> bool:
    """Whether the task has a full velocity field that must be divergence-free on a supported boundary."""
    return spec.incompressible and len(spec.velocity) == spec.ndim and spec.bc != "none"


def active_projections(spec: TaskSpec, projections: ProjectionsConfig | None) -> tuple[str, ...]:
    """Names of the configured projections that apply to ``spec``, in the order they run."""
    if projections is None:
        return ()
    out = []
    if projections.flux_continuity and spec.conserved:
        out.append("flux_continuity")
    if projections.positivity_clamp and positive_channels(spec):
        out.append("positivity_clamp")
    if projections.hodge_div_free and hodge_applies(spec):
        out.append("hodge_div_free")
    return tuple(out)


def project_frames(
    u: torch.Tensor, spec: TaskSpec, projections: ProjectionsConfig | None, reference: torch.Tensor
) -> torch.Tensor:
    """Apply the configured projections that apply to ``spec`` to physical frames.

    Args:
        u: physical frames ``[B, C, *S]``.
        spec: the task.
        projections: which projections to run (None: none).
        reference: the last input frame ``[B, C, *S]``, whose conserved integrals are the flux-continuity budget.

    Returns:
        The projected frames, same shape and dtype.
    """
    active = active_projections(spec, projections)
    if not active:
        return u
    u = u.clone()
    nd, vol = spec.ndim, spec.cell_volume
    if "flux_continuity" in active:
        chans = list(spec.conserved_channels)
        labels = torch.zeros(spec.grid_shape, dtype=torch.long, device=u.device)  # one subdomain: the domain
        budget = integrals(reference.to(u.dtype), chans, vol, nd)[..., None]  # [B, Q, 1]
        u[:, chans] = interface_flux_projection(
            u[:, chans], labels=labels, target=budget, cell_volume=vol, periodic=spec.bc == "periodic"
        )
    if "positivity_clamp" in active:
        chans = list(positive_channels(spec))
        u[:, chans] = positify(u[:, chans], cell_volume=vol, dims=spatial_dims(nd))
    if "hodge_div_free" in active:
        chans = list(spec.velocity_channels)
        u[:, chans] = helmholtz_hodge_projection_grid(u[:, chans], spacing=spec.spacing, bc=spec.bc)
    return u
