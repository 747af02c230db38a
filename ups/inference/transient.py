"""Transient rollout of the hybrid model: the latent operator every step, the diffusion corrector now and then.

The playbook's recipe ("let the operator do most work; run a 1–2 step diffusion corrector every k steps, or when
physics gaps exceed a threshold; projection after decode"): the state stays in latent space; after the operator
step ``n`` (1-based) the corrector replaces the latent by a sample ``z + r̂`` of the corrected state when ``n`` is a
multiple of the cadence ``k``, or — for the samples concerned only — when the decoded frame's physics gap
(:func:`~ups.inference.physics.physics_gap`: relative drift of the conserved integrals from the last input frame)
exceeds ``gap_threshold``. Corrections are guided towards the input's conserved integrals
(:func:`~ups.inference.physics.conservation_guidance`) with strength λ when the task has conserved quantities.

Every step's latent is decoded to a physical frame; configured projections
(:func:`~ups.inference.projection.project_frames`) act on that reported frame only. The latent is *not* re-encoded
from the projected frame: the operator was trained on its own latent trajectories (UPT inverse losses keep
``encode(decode(z)) ≈ z``), so re-encoding would feed it states off that trajectory and add the encoder's
reconstruction error every step, while the projection would be partly undone by the next encode/decode anyway. Post-
decode projection is also what the playbook asks for fair comparisons: every model's reported fields get the same
guard.
"""

from __future__ import annotations

import torch

from ups.config.schema import ProjectionsConfig
from ups.inference._common import decode_physical, evaluating, start_state
from ups.inference.physics import conservation_guidance, physics_gap
from ups.inference.projection import project_frames
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator


def correct_latent(
    operator: LatentOperator,
    corrector: DiffusionCorrector,
    z: torch.Tensor,
    cond: torch.Tensor | None,
    reference: torch.Tensor,
    *,
    index: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise_scale: float = 1.0,
    guidance_lambda: float | None = None,
) -> torch.Tensor:
    """One corrector sample of the latent ``z [B, N, E]``, for every sample or only those where ``index`` (bool
    ``[B]``) is set; guided towards ``reference``'s conserved integrals (``[B, C, *S]``, physical)."""
    sel = slice(None) if index is None else index
    z_sel, cond_sel = z[sel], None if cond is None else cond[sel]
    guidance = conservation_guidance(lambda x: decode_physical(operator, x), reference[sel], operator.spec)
    z_new = corrector.sample(
        z_sel,
        cond_sel,
        generator=generator,
        noise_scale=noise_scale,
        guidance=guidance,
        guidance_lambda=guidance_lambda,
    ).to(z.dtype)
    if index is None:
        return z_new
    z = z.clone()
    z[index] = z_new
    return z


def rollout_transient(
    operator: LatentOperator,
    corrector: DiffusionCorrector | None,
    inputs: torch.Tensor,
    steps: int,
    params: torch.Tensor | None = None,
    *,
    cadence: int | None = None,
    gap_threshold: float | None = None,
    projections: ProjectionsConfig | None = None,
    generator: torch.Generator | None = None,
    noise_scale: float = 1.0,
    guidance_lambda: float | None = None,
) -> torch.Tensor:
    """Roll the hybrid model out: physical ``inputs [B, n_in, C, *S]`` → physical frames ``[B, steps, C, *S]``.

    Without a corrector and projections this is exactly ``operator.rollout`` (same operations, bit-identical).

    Args:
        operator: the trained latent operator (its last input frame is encoded; the others are ignored).
        corrector: the trained corrector, or None for the operator alone.
        inputs: physical input frames ``[B, n_in, C, *S]``.
        steps: predicted frames.
        params: per-trajectory PDE parameters ``[B, P]`` (conditioning), or None.
        cadence: correct after every ``cadence``-th operator step (steps k, 2k, …); 0 turns the cadence off;
            default ``corrector.config.cadence_steps``.
        gap_threshold: also correct the samples whose decoded frame's physics gap exceeds it (checked after every
            step that the cadence does not correct; needs conserved quantities); default
            ``corrector.config.gap_threshold`` (None: off; ``math.inf`` turns a configured threshold off).
        projections: post-decode projections of the reported frames (None: none).
        generator: source of the corrector's noise, on the model's device; the same seed gives the same rollout.
        noise_scale: the corrector's noise scale (0: its deterministic ODE image of zero noise).
        guidance_lambda: λ of the conservation guidance; default ``corrector.config.guidance_lambda``.

    Returns:
        ``[B, steps, C, *S]`` on the inputs' device and dtype.
    """
    spec = operator.spec
    if corrector is not None:
        cadence = corrector.config.cadence_steps if cadence is None else cadence
        gap_threshold = corrector.config.gap_threshold if gap_threshold is None else gap_threshold
    if cadence is not None and cadence < 0:
        raise ValueError(f"cadence must be >= 0 (0: off), got {cadence}")
    check_gap = corrector is not None and gap_threshold is not None and bool(spec.conserved)
    sampling = {"generator": generator, "noise_scale": noise_scale, "guidance_lambda": guidance_lambda}
    with evaluating(operator, corrector):
        u0, z, cond = start_state(operator, inputs, params)
        frames = []
        for n in range(1, steps + 1):
            z = operator.step(z, cond)
            u: torch.Tensor | None = None
            if corrector is not None and cadence and n % cadence == 0:
                z = correct_latent(operator, corrector, z, cond, u0, **sampling)
            elif check_gap:
                u = decode_physical(operator, z)
                hit = physics_gap(u, u0, spec) > gap_threshold
                if bool(hit.any()):
                    z, u = correct_latent(operator, corrector, z, cond, u0, index=hit, **sampling), None
            if u is None:
                u = decode_physical(operator, z)
            frames.append(project_frames(u, spec, projections, u0))
        out = torch.stack(frames, dim=1)
    return out.to(inputs.device, inputs.dtype)
