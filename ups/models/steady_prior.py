"""Steady prior: conditional flow matching for steady fields (darcy2d: coefficient ``a`` → solution ``u``).

A velocity network ``v_θ(x_t, t | a)`` on grids ``[B, C, *S]`` (1D or 2D; a small U-Net that sees ``a`` by channel
concatenation) is trained with the flow-matching objective (Lipman et al. 2023, "Flow Matching for Generative
Modeling", eq. 23, on the optimal-transport path of their eq. 20 with σ_min = 0; equivalently rectified flow, Liu et
al. 2022):

    x_t = (1 − t) · ε + t · ũ,   ũ = u / s_u,   L = E ‖v_θ(x_t, t | ã) − (ũ − ε)‖²,   ã = a / s_a

and sampled by integrating the ODE from noise in ``stages.steady_prior.sampler_steps`` (6–12) Euler or Heun steps,
with times spread per ``noise_schedule`` (``linear``: uniform; ``cosine``: denser at both ends). Distillation to
fewer steps uses the corrector's consistency distillation (:meth:`SteadyPrior.distill_loss`): a student copied from
the teacher learns to map any point of the teacher's ODE trajectories (solved on ``teacher_steps`` intervals) to
their end and is sampled with the consistency sampler. ``s_u``, ``s_a`` are per-channel RMS scales fixed from the
first training batch (or :meth:`set_scale` / :meth:`set_cond_scale`).

Physics-residual guidance (e.g. the discrete Darcy residual of ``u`` given ``a``) works as for the corrector:
``guidance(u) -> [B]`` with strength ``guidance_lambda`` (default ``stages.steady_prior.guidance_lambda``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ups.config.schema import SteadyPriorStageConfig, UPSConfig
from ups.models.denoiser import ConvDenoiser, ConvDenoiserConfig
from ups.models.diffusion_corrector import FlowModel, Guidance, TimeSampling


class SteadyPrior(FlowModel):
    """Conditional flow-matching model of a steady field ``u`` ``[B, C, *S]`` given a field ``a`` ``[B, C_a, *S]``.

    Args:
        config: the ``stages.steady_prior`` section (``sampler_steps``, ``noise_schedule``, ``guidance_lambda``).
        ndim: spatial dimensions (1 or 2). Data-derived, like the two channel counts.
        channels: channels of ``u``.
        cond_channels: channels of ``a``.
        width: U-Net channels at full resolution (doubled per level).
        levels: U-Net down/up-sampling stages.
        padding_mode: ``zeros`` (walls) or ``circular`` (periodic).
        network: the U-Net's sizes; built from the arguments above when None (checkpoints pass it).
        teacher_steps: ODE steps of the teacher solve a student is distilled to.
        time_sampling: training-time distribution of ``t``.
        student_steps: None for a teacher; a student's step count (set by :meth:`make_student`).
    """

    kind = "steady_prior"
    config_type = SteadyPriorStageConfig
    network_config_type = ConvDenoiserConfig
    feature_axis = 1

    def __init__(
        self,
        config: SteadyPriorStageConfig,
        *,
        ndim: Literal[1, 2] | None = None,
        channels: int | None = None,
        cond_channels: int | None = None,
        width: int = 32,
        levels: int = 2,
        padding_mode: Literal["zeros", "circular"] = "zeros",
        network: ConvDenoiserConfig | None = None,
        teacher_steps: int = 32,
        time_sampling: TimeSampling = "uniform",
        student_steps: int | None = None,
    ):
        if network is None:
            if ndim is None or channels is None or cond_channels is None:
                raise ValueError("give ndim, channels and cond_channels (or a network config)")
            network = ConvDenoiserConfig(
                ndim=ndim,
                channels=channels,
                cond_channels=cond_channels,
                width=width,
                levels=levels,
                padding_mode=padding_mode,
            )
        super().__init__(
            network.channels,
            teacher_steps=teacher_steps,
            time_sampling=time_sampling,
            student_steps=student_steps,
            spacing=config.noise_schedule,
            guidance_lambda=config.guidance_lambda,
        )
        self.config = config
        self.net = ConvDenoiser(network)
        self.register_buffer("cond_scale", torch.ones(network.cond_channels))
        self.register_buffer("cond_scale_set", torch.tensor(False))

    @classmethod
    def from_config(cls, cfg: UPSConfig, **kwargs: Any) -> SteadyPrior:
        """Build from the whole config; pass the data-derived ``ndim``, ``channels``, ``cond_channels``."""
        return cls(cfg.stages.steady_prior, **kwargs)

    @property
    def default_sample_steps(self) -> int:
        return self.config.sampler_steps

    @torch.no_grad()
    def set_cond_scale(self, a: torch.Tensor) -> None:
        """Fix the per-channel scale of ``a`` to its RMS over batch and space (1 for an all-zero channel)."""
        dims = [d for d in range(a.ndim) if d != 1]
        rms = a.detach().float().pow(2).mean(dim=dims).sqrt()
        self.cond_scale.copy_(torch.where(rms > 0, rms, torch.ones_like(rms)))
        self.cond_scale_set.fill_(True)

    def _cond(self, a: torch.Tensor) -> torch.Tensor:
        return a / self.cond_scale.to(a.dtype).reshape(1, -1, *([1] * (a.ndim - 2)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, a_scaled: torch.Tensor) -> torch.Tensor:
        """Velocity ``[B, C, *S]`` of the scaled state ``x`` at times ``t`` ``[B]`` given the scaled ``a``."""
        return self.net(x, t, a_scaled)

    def to_physical(self, x: torch.Tensor, context: tuple) -> torch.Tensor:
        return x * self._scale_view(x)

    def loss(self, a: torch.Tensor, u: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching loss (scalar, mean over all elements) of pairs ``a`` ``[B, C_a, *S]``, ``u`` ``[B, C, *S]``."""
        if not bool(self.cond_scale_set):
            self.set_cond_scale(a)
        return self._flow_loss(u, (self._cond(a),), generator)

    def sample(
        self,
        a: torch.Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
        guidance: Guidance | None = None,
        guidance_lambda: float | None = None,
        sampler: str | None = None,
    ) -> torch.Tensor:
        """Draw ``u`` ``[B, C, *S]`` given ``a`` ``[B, C_a, *S]``.

        Args:
            a: the conditioning field.
            steps: sampler steps; default ``student_steps`` for a student, ``config.sampler_steps`` for a teacher.
            generator: source of the noise.
            noise_scale: multiplies the noise; 0 gives the deterministic ODE image of zero noise.
            guidance: physics residual ``R(u)`` (``[B]`` or scalar), or None.
            guidance_lambda: λ ∈ [0, 2]; default ``config.guidance_lambda``.
            sampler: ``euler``, ``heun`` or ``consistency``; default ``consistency`` for a student, else ``euler``.
        """
        batch, _, *space = a.shape
        context = (self._cond(a),)
        shape = torch.Size([batch, self.net.config.channels, *space])
        x = self._integrate(
            context,
            shape,
            a,
            steps=steps,
            sampler=sampler,
            generator=generator,
            noise_scale=noise_scale,
            guidance=guidance,
            guidance_lambda=guidance_lambda,
        )
        return self.to_physical(x, context)

    def make_student(self, steps: int = 2) -> SteadyPrior:
        """A consistency student copied from this teacher, sampled in ``steps`` steps (fewer than the teacher's)."""
        return super().make_student(steps)

    def distill_loss(
        self,
        teacher: SteadyPrior,
        a: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        teacher_steps: int | None = None,
        teacher_sampler: str = "euler",
    ) -> torch.Tensor:
        """Consistency-distillation loss of this student against a frozen ``teacher`` (scalar); see the corrector."""
        if not torch.equal(self.cond_scale, teacher.cond_scale):
            raise ValueError("student and teacher scales differ; build the student with teacher.make_student(...)")
        batch, _, *space = a.shape
        shape = torch.Size([batch, self.net.config.channels, *space])
        return self._distill_loss(teacher, (self._cond(a),), shape, a, generator, teacher_steps, teacher_sampler)
