"""Few-step diffusion corrector: a conditional rectified flow on the latent operator's residual.

Given the operator's prediction ``z_pred`` ``[B, N, D]`` (and an optional condition vector ``[B, c]``), the corrector
is a generative model of the residual ``r = z_true − z_pred``: it is trained with the rectified-flow / flow-matching
objective (Liu et al. 2022, "Flow Straight and Fast"; Lipman et al. 2023, "Flow Matching for Generative Modeling")

    x_t = (1 − t) · ε + t · r̃,   ε ~ N(0, I),  r̃ = r / s      L = E ‖v_θ(x_t, t | z_pred, cond) − (r̃ − ε)‖²

(``s`` a per-feature RMS scale of the residual, fixed from the first training batch), sampled by integrating the ODE
from noise (multi-step teacher: Euler / Heun), and distilled into a consistency student sampled in 1–2 steps
(Song et al. 2023, "Consistency Models"). ``sample`` returns ``z_pred + s · r̃``. It is stochastic: different noise
gives different residuals — the ensemble the evaluator calibrates — and with the noise scaled to zero it returns the
deterministic ODE image of zero noise, the conditional mean when the residual is Gaussian.

:class:`FlowModel` holds what the corrector shares with :class:`~ups.models.steady_prior.SteadyPrior`: the objective,
the sampling loop with physics-residual guidance, consistency distillation and checkpoints.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from ups.config.schema import DiffusionConfig, UPSConfig
from ups.models.denoiser import TokenDenoiser, TokenDenoiserConfig, default_num_heads
from ups.models.samplers import FlowSampler, Spacing, make_sampler, time_grid
from ups.models.samplers.base import expand_time

TimeSampling = Literal["uniform", "logit_normal"]
#: ``guidance(x) -> residual``: a physics residual of the *physical* output (corrected latent / field), per sample
#: ``[B]`` or a scalar. Its gradient is subtracted from the velocity with strength λ.
Guidance = Callable[[torch.Tensor], torch.Tensor]
MAX_GUIDANCE_LAMBDA = 2.0  # playbook: keep λ ≤ 2 and re-check calibration


class FlowModel(nn.Module, abc.ABC):
    """Conditional flow model on a scaled state ``x = y / s``: objective, sampler loop, guidance, distillation.

    Subclasses define ``forward(x, t, *context) -> v`` (the velocity network) and the physical map
    ``y = to_physical(x, context)``. ``feature_axis`` is the axis the per-feature scale ``s`` runs along.

    Attributes:
        student_steps: None for a multi-step (teacher) model; for a consistency-distilled student, the number of
            sampler steps it is sampled with by default.
        teacher_steps: ODE steps of the teacher whose solution a student is distilled to.
    """

    kind: str = "flow_model"
    config_type: ClassVar[type[BaseModel]]  # the model's own config section, rebuilt from checkpoint meta
    network_config_type: ClassVar[type[BaseModel]]
    feature_axis: int = -1

    def __init__(
        self,
        num_features: int,
        *,
        teacher_steps: int,
        time_sampling: TimeSampling,
        student_steps: int | None,
        spacing: Spacing,
        guidance_lambda: float,
    ):
        super().__init__()
        self.teacher_steps = teacher_steps
        self.time_sampling: TimeSampling = time_sampling
        self.student_steps = student_steps
        self.spacing: Spacing = spacing
        self.guidance_lambda = guidance_lambda
        self.register_buffer("scale", torch.ones(num_features))
        self.register_buffer("scale_set", torch.tensor(False))

    # --- scale ------------------------------------------------------------------------------------------------------

    def _scale_view(self, y: torch.Tensor) -> torch.Tensor:
        shape = [1] * y.ndim
        shape[self.feature_axis] = -1
        return self.scale.to(y.dtype).reshape(shape)

    @torch.no_grad()
    def set_scale(self, y: torch.Tensor) -> None:
        """Fix the per-feature scale to the RMS of ``y`` (targets in physical units) over every other axis.

        ``loss`` calls this with its first batch unless a scale was set before (or loaded from a checkpoint); call it
        yourself with a larger or rank-synchronised sample for a better or DDP-consistent estimate.
        """
        axis = self.feature_axis % y.ndim
        dims = [d for d in range(y.ndim) if d != axis]
        rms = y.detach().float().pow(2).mean(dim=dims).sqrt()
        # a feature that is identically zero keeps scale 1 instead of dividing by 0
        self.scale.copy_(torch.where(rms > 0, rms, torch.ones_like(rms)))
        self.scale_set.fill_(True)

    # --- objective --------------------------------------------------------------------------------------------------

    def _sample_time(self, batch: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.time_sampling == "uniform":
            return torch.rand(batch, generator=generator, device=like.device, dtype=like.dtype)
        # logit-normal t = sigmoid(n), n ~ N(0, 1) (Esser et al. 2024, SD3, eq. 19 with m = 0, s = 1)
        return torch.sigmoid(torch.randn(batch, generator=generator, device=like.device, dtype=like.dtype))

    def _flow_loss(self, y1: torch.Tensor, context: tuple, generator: torch.Generator | None) -> torch.Tensor:
        if not bool(self.scale_set):
            self.set_scale(y1)
        x1 = y1 / self._scale_view(y1)
        noise = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        t = self._sample_time(x1.shape[0], x1, generator)
        # x_t = t · x_1 + (1 − t) · x_0, target velocity x_1 − x_0              (Liu et al. 2022, eq. 1)
        xt = FlowSampler.add_noise(x1, noise, t)
        # min_θ E ‖v_θ(x_t, t) − (x_1 − x_0)‖², mean over every element      (Lipman et al. 2023, eq. 23)
        return F.mse_loss(self(xt, t, *context), x1 - noise)

    # --- sampling ---------------------------------------------------------------------------------------------------

    def _check_lambda(self, guidance: Guidance | None, guidance_lambda: float | None) -> float:
        lam = self.guidance_lambda if guidance_lambda is None else float(guidance_lambda)
        if not 0.0 <= lam <= MAX_GUIDANCE_LAMBDA:
            raise ValueError(f"guidance_lambda must be in [0, {MAX_GUIDANCE_LAMBDA}], got {lam}")
        return lam if guidance is not None else 0.0

    def _guidance_grad(
        self, x: torch.Tensor, v: torch.Tensor, t: float, guidance: Guidance, context: tuple
    ) -> torch.Tensor:
        """∇ of the residual at the predicted data end, w.r.t. the scaled state (network held fixed).

        ``x̂_1 = x + (1 − t) v``; the residual is taken at ``y = to_physical(x̂_1)`` and the Jacobian of the network is
        neglected (∂x̂_1/∂x ≈ I), so the gradient costs one backward pass through ``guidance`` only.
        """
        with torch.inference_mode(False), torch.enable_grad():
            x_hat = (x + (1 - t) * v).detach().clone().requires_grad_(True)
            residual = guidance(self.to_physical(x_hat, context))
            (grad,) = torch.autograd.grad(residual.sum(), x_hat)
        return grad.detach()

    def _integrate(
        self,
        context: tuple,
        shape: torch.Size,
        like: torch.Tensor,
        *,
        steps: int | None,
        sampler: str | None,
        generator: torch.Generator | None,
        noise_scale: float,
        guidance: Guidance | None,
        guidance_lambda: float | None,
        start_time: float = 0.0,
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``x̂_1`` (scaled) by running ``sampler`` from ``noise_scale · ε``.

        With ``start_time = τ > 0`` the pass starts part-way (SDEdit, Meng et al. 2022, "SDEdit: Guided Image Synthesis
        and Editing with Stochastic Differential Equations"): ``init`` (a scaled state; zeros when None) is noised
        along the forward path to ``x_τ = τ · init + (1 − τ) · noise_scale · ε`` and the sampler's time grid is mapped
        affinely from [0, 1] onto [τ, 1], keeping its step count. Every sampler evaluates the model at grid points,
        so the same affine map gives its model times.
        """
        lam = self._check_lambda(guidance, guidance_lambda)
        if noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        if not 0.0 <= start_time < 1.0:
            raise ValueError(f"start_time must be in [0, 1), got {start_time}")
        if sampler is None:
            sampler = "consistency" if self.student_steps is not None else "euler"
        if steps is None:
            steps = self.student_steps if self.student_steps is not None else self.default_sample_steps
        kwargs = {"noise_scale": noise_scale} if sampler == "consistency" else {}
        solver = make_sampler(sampler, steps, spacing=self.spacing, **kwargs)
        x = noise_scale * torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
        if start_time > 0:
            # x_τ = τ · x_init + (1 − τ) · ε on the straight path (Liu et al. 2022, eq. 1); grid t ↦ τ + (1 − τ) t
            x = FlowSampler.add_noise(torch.zeros_like(x) if init is None else init, x, start_time)
            solver.grid = start_time + (1 - start_time) * solver.grid
            solver.timesteps = start_time + (1 - start_time) * solver.timesteps
        for t in solver.timesteps:
            tb = torch.full((shape[0],), float(t), device=like.device, dtype=like.dtype)
            with torch.no_grad():
                v = self(x, tb, *context)
            if lam > 0:
                # v ← v − λ ∇_x R(ŷ): over the whole path (Σ Δt = 1) one gradient step of size λ on the residual
                v = v - lam * self._guidance_grad(x, v, float(t), guidance, context)
            x = solver.step(v, t, x, generator=generator).prev_sample
        return x

    @property
    def default_sample_steps(self) -> int:
        """ODE steps a multi-step (teacher) model is sampled with when ``steps`` is not given."""
        return self.teacher_steps

    @abc.abstractmethod
    def to_physical(self, x: torch.Tensor, context: tuple) -> torch.Tensor:
        """The physical output for a scaled state ``x``."""

    # --- distillation -----------------------------------------------------------------------------------------------

    def make_student(self, steps: int) -> FlowModel:
        """A copy of this teacher marked as a consistency student sampled in ``steps`` steps (train it with
        ``distill_loss``). The copy starts as one Euler step of the teacher."""
        if steps < 1:
            raise ValueError(f"student steps must be >= 1, got {steps}")
        student = copy.deepcopy(self)
        student.student_steps = int(steps)
        return student

    def _distill_loss(
        self,
        teacher: FlowModel,
        context: tuple,
        shape: torch.Size,
        like: torch.Tensor,
        generator: torch.Generator | None,
        teacher_steps: int | None,
        teacher_sampler: str,
    ) -> torch.Tensor:
        if not torch.equal(self.scale, teacher.scale):
            raise ValueError("student and teacher scales differ; build the student with teacher.make_student(...)")
        if teacher_sampler not in ("euler", "heun"):
            raise ValueError(f"the teacher is solved with an ODE sampler (euler, heun), got {teacher_sampler!r}")
        n = teacher_steps or self.teacher_steps
        solver = make_sampler(teacher_sampler, n, spacing=self.spacing)
        b = shape[0]
        x = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
        states = [x]  # teacher ODE trajectory at the grid times t_0 = 0, …, t_n = 1
        with torch.no_grad():
            for k, t in enumerate(solver.timesteps):
                tb = torch.full((b,), float(t), device=like.device, dtype=like.dtype)
                x = solver.step(teacher(x, tb, *context), t, x).prev_sample
                if (k + 1) % solver.order == 0:
                    states.append(x)
        trajectory = torch.stack(states[:-1])  # [n, B, ...]
        endpoint = states[-1]
        # one random point (t_k, x_{t_k}) of each sample's trajectory, k ∈ {0, …, n − 1}
        k = torch.randint(0, n, (b,), generator=generator, device=like.device)
        xk = trajectory[k, torch.arange(b, device=like.device)]
        tk = time_grid(n, self.spacing).to(like.device, like.dtype)[k]
        # f_θ(x_{t_k}, t_k) = x + (1 − t_k) F_θ(x, t_k)                                            (Song eq. 5)
        f = xk + (1 - expand_time(tk, xk)) * self(xk, tk, *context)
        # consistency: f_θ(x_t, t) = the trajectory's data end for every t. Song's CD loss (eq. 7) regresses on the
        # bootstrap target f_θ⁻(x̂_{t_{k+1}}, t_{k+1}) whose fixed point is that end; the teacher's full solve is cheap
        # for this small model, so the fixed point is used directly (no EMA target network to keep).
        return F.mse_loss(f, endpoint)

    # --- checkpoints ------------------------------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "teacher_steps": self.teacher_steps,
            "time_sampling": self.time_sampling,
            "student_steps": self.student_steps,
            "config": self.config.model_dump(mode="json"),
            "network": self.net.config.model_dump(mode="json"),
        }

    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, meta)``: the state dict on CPU (safetensors-ready) and a JSON-safe dict that rebuilds the
        module (configs and sampler settings). No pickle."""
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        return tensors, self._meta()

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> FlowModel:
        """Rebuild from :meth:`to_checkpoint` output (strict: every tensor must match)."""
        if meta.get("kind") != cls.kind:
            raise ValueError(f"checkpoint holds a {meta.get('kind')!r}, not a {cls.kind!r}")
        model = cls(
            cls.config_type.model_validate(meta["config"]),
            network=cls.network_config_type.model_validate(meta["network"]),
            teacher_steps=meta["teacher_steps"],
            time_sampling=meta["time_sampling"],
            student_steps=meta["student_steps"],
        )
        model.load_state_dict(tensors, strict=True)
        return model


class DiffusionCorrector(FlowModel):
    """Conditional rectified flow on the operator's residual in latent space.

    Args:
        config: the ``diffusion`` section (``latent_dim`` is ``D``; ``hidden_dim`` and ``num_layers`` size the
            denoiser; ``steps`` is the student's default step count; ``guidance_lambda`` the default λ).
        cond_dim: size of the global condition vector (Δt, PDE parameters, BC type …); 0 for none. Data-derived.
        network: the denoiser's sizes; derived from ``config`` and ``cond_dim`` when None (checkpoints pass it).
        teacher_steps: Euler steps of the multi-step model, and of the teacher solve a student is distilled to.
        time_sampling: training-time distribution of ``t``: ``uniform`` or ``logit_normal``.
        student_steps: None for a teacher; a student's step count (set by :meth:`make_student`).
    """

    kind = "diffusion_corrector"
    config_type = DiffusionConfig
    network_config_type = TokenDenoiserConfig
    feature_axis = -1

    def __init__(
        self,
        config: DiffusionConfig,
        cond_dim: int = 0,
        *,
        network: TokenDenoiserConfig | None = None,
        teacher_steps: int = 16,
        time_sampling: TimeSampling = "uniform",
        student_steps: int | None = None,
    ):
        super().__init__(
            config.latent_dim,
            teacher_steps=teacher_steps,
            time_sampling=time_sampling,
            student_steps=student_steps,
            spacing="linear",
            guidance_lambda=config.guidance_lambda,
        )
        self.config = config
        if network is None:
            network = TokenDenoiserConfig(
                dim=config.latent_dim,
                hidden_dim=config.hidden_dim,
                num_layers=config.num_layers,
                num_heads=default_num_heads(config.hidden_dim),
                cond_dim=cond_dim,
            )
        self.net = TokenDenoiser(network)

    @classmethod
    def from_config(cls, cfg: UPSConfig, cond_dim: int = 0, **kwargs: Any) -> DiffusionCorrector:
        """Build from the whole config; ``cond_dim`` is data-derived (the conditioner's vector size)."""
        return cls(cfg.diffusion, cond_dim, **kwargs)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, z_pred: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity ``[B, N, D]`` of the scaled residual state ``x`` ``[B, N, D]`` at times ``t`` ``[B]``."""
        return self.net(x, t, z_pred, cond)

    def to_physical(self, x: torch.Tensor, context: tuple) -> torch.Tensor:
        z_pred = context[0]
        return z_pred + x * self._scale_view(x)

    def loss(
        self,
        z_pred: torch.Tensor,
        z_true: torch.Tensor,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Rectified-flow loss on the residual ``z_true − z_pred`` (scalar, mean over every element).

        Args:
            z_pred: ``[B, N, D]`` the operator's prediction (detach it unless the operator is trained jointly).
            z_true: ``[B, N, D]`` the encoded truth.
            cond: ``[B, cond_dim]`` or None.
            generator: source of the noise and the times (global RNG when None).
        """
        return self._flow_loss(z_true - z_pred, (z_pred, cond), generator)

    def sample(
        self,
        z_pred: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
        guidance: Guidance | None = None,
        guidance_lambda: float | None = None,
        sampler: str | None = None,
        start_time: float = 0.0,
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Corrected latent ``z_pred + r̂`` ``[B, N, D]``, with ``r̂`` drawn from the model.

        Args:
            z_pred: ``[B, N, D]`` the operator's prediction.
            cond: ``[B, cond_dim]`` or None.
            steps: sampler steps; default ``student_steps`` for a student, ``teacher_steps`` for a teacher.
            generator: source of the noise; the same seed gives the same sample.
            noise_scale: multiplies the initial (and consistency re-noising) noise; 0 gives the deterministic ODE
                image of zero noise (the conditional mean for a Gaussian residual).
            guidance: physics residual ``R(z)`` of the corrected latent (``[B]`` or scalar); None for no guidance.
            guidance_lambda: λ ∈ [0, 2]; default ``config.guidance_lambda``.
            sampler: ``euler``, ``heun`` or ``consistency``; default ``consistency`` for a student, else ``euler``.
            start_time: flow time τ ∈ [0, 1) the pass starts at (0: from pure noise, the default). With τ > 0 the
                residual of ``init`` is partially noised to ``x_τ = τ · r̃_init + (1 − τ) · noise_scale · ε`` and
                integrated from τ to 1 in ``steps`` steps (SDEdit): the larger τ, the closer the sample stays to
                ``init``. Test-time search uses it to draw candidates near the operator's prediction.
            init: the corrected latent ``[B, N, D]`` a partial pass starts from; default ``z_pred`` (zero residual).
        """
        x_init = None if init is None else (init - z_pred) / self._scale_view(z_pred)
        x = self._integrate(
            (z_pred, cond),
            z_pred.shape,
            z_pred,
            steps=steps,
            sampler=sampler,
            generator=generator,
            noise_scale=noise_scale,
            guidance=guidance,
            guidance_lambda=guidance_lambda,
            start_time=start_time,
            init=x_init,
        )
        return self.to_physical(x, (z_pred, cond))

    def make_student(self, steps: int | None = None) -> DiffusionCorrector:
        """A consistency student copied from this teacher; ``steps`` defaults to ``config.steps`` (1–2)."""
        return super().make_student(steps or self.config.steps)

    def distill_loss(
        self,
        teacher: DiffusionCorrector,
        z_pred: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        teacher_steps: int | None = None,
        teacher_sampler: str = "euler",
    ) -> torch.Tensor:
        """Consistency-distillation loss of this student against a frozen multi-step ``teacher`` (scalar).

        The teacher's ODE is solved from fresh noise on ``teacher_steps`` intervals (no grad); the student's
        consistency function at a random point of each trajectory is regressed on the trajectory's end. Needs no
        ``z_true``: the student learns the teacher's sampler, not the data.
        """
        return self._distill_loss(
            teacher, (z_pred, cond), z_pred.shape, z_pred, generator, teacher_steps, teacher_sampler
        )
