"""Ensembles of corrector-sampled transient rollouts: the samples behind ECE, CRPS and spread–skill.

Members are :func:`~ups.inference.transient.rollout_transient` runs that draw the corrector's noise one after the
other from one generator, so every member sees different noise and the whole ensemble is reproduced by the seed.
The spread comes only from the corrector's samples: between corrections the members follow the same deterministic
operator, and with ``noise_scale = 0`` (and deterministic guidance) every member is the same rollout.
"""

from __future__ import annotations

import torch

from ups.config.schema import ProjectionsConfig
from ups.inference.transient import rollout_transient
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator


def sample_ensemble(
    operator: LatentOperator,
    corrector: DiffusionCorrector,
    inputs: torch.Tensor,
    steps: int,
    params: torch.Tensor | None,
    n: int,
    *,
    generator: torch.Generator | None = None,
    cadence: int | None = None,
    gap_threshold: float | None = None,
    projections: ProjectionsConfig | None = None,
    noise_scale: float = 1.0,
    guidance_lambda: float | None = None,
) -> torch.Tensor:
    """``n`` transient rollouts with independent corrector noise: ``[M = n, B, steps, C, *S]`` (members first, the
    layout ``compute_scoreboard(..., samples=...)`` reads).

    Args:
        operator, corrector: the trained pair (a corrector is required: without one every member is the same).
        inputs, steps, params: as for :func:`~ups.inference.transient.rollout_transient`.
        n: ensemble members (``eval.ensemble_size``).
        generator: source of every member's noise, on the model's device.
        cadence, gap_threshold, projections, noise_scale, guidance_lambda: passed to every member's rollout.
    """
    if corrector is None:
        raise ValueError("sample_ensemble needs a corrector: a deterministic model has no ensemble")
    if n < 1:
        raise ValueError(f"an ensemble needs n >= 1 members, got {n}")
    members = [
        rollout_transient(
            operator,
            corrector,
            inputs,
            steps,
            params,
            cadence=cadence,
            gap_threshold=gap_threshold,
            projections=projections,
            generator=generator,
            noise_scale=noise_scale,
            guidance_lambda=guidance_lambda,
        )
        for _ in range(n)
    ]
    return torch.stack(members)
