"""What each stage minimises, as ``nn.Module``s whose ``forward`` returns a dict of losses (``"loss"``: the total).

Wrapping the objective (not the bare model) in DistributedDataParallel keeps every model method a stage calls
(encode, step, decode, the UPT losses) inside one DDP forward, so gradients are synchronised however the loss is
composed. Frozen modules (the trained operator during the corrector stages, a teacher during distillation) are held
with ``requires_grad=False`` and DDP ignores them.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from ups.config.schema import LossWeights
from ups.models.baseline import GridBaseline
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator
from ups.models.steady_prior import SteadyPrior
from ups.training.losses import conservation_loss, edge_loss, nrmse_loss


def freeze(module: nn.Module) -> nn.Module:
    """Mark every parameter of ``module`` as not trainable and put it in eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class _WithFrozen(nn.Module):
    """An objective holding frozen submodules (named in ``frozen``) that stay in eval mode under ``.train()``."""

    frozen: tuple[str, ...] = ()

    def train(self, mode: bool = True) -> _WithFrozen:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self


class OperatorObjective(nn.Module):
    """One-step + rollout loss of the latent operator, with UPT inverse losses and the small physics terms.

    For a window of physical frames ``u_0 … u_H`` (normalised inside):

    - ``rollout``: ``decode(z_t)`` vs ``u_t``, t = 1 … H, along the free latent rollout ``z_{t+1} = step(z_t)`` from
      ``z_0 = encode(u_0)`` (task nRMSE; the horizon curriculum sets H);
    - ``one_step``: the same at t = 1 alone — a true one-step prediction from the encoded truth — so the first step
      keeps its weight however long the horizon grows (it costs nothing extra);
    - ``task = (one_step + rollout) / 2``, weighted by ``training.loss.task``;
    - ``edge`` (TV of the error) and ``conservation`` (soft gap) on the rollout, weighted by ``loss.edge`` /
      ``loss.conservation``;
    - ``inverse_encode`` on the window's first frame, ``inverse_decode`` on the last rollout state (one full-grid
      decode + encode per window), weighted by ``loss.inverse_encode`` / ``loss.inverse_decode``.

    Decoding is the expensive part, so (as in UPT) fields are decoded at ``latent.decoder.query_points`` random grid
    points per step (the same points for the whole batch; all points when the grid is smaller). The losses are then
    estimates over those points: the nRMSE and conservation means over the sample, the TV term from the error
    differences between each sampled point and its next neighbour along every axis (decoded as well).
    """

    def __init__(self, model: LatentOperator, weights: LossWeights):
        super().__init__()
        self.model = model
        self.weights = weights

    def _points(self) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """Sampled flat grid indices (None: the whole grid) and, per axis, each one's next neighbour."""
        m = self.model
        shape = m.spec.grid_shape
        n = m.grid.shape[0]
        q = min(m.config.latent.decoder.query_points, n) if m.decodes_anywhere else n  # grid decoder: whole grid
        if q >= n:
            return None, []
        periodic = m.spec.bc == "periodic"
        dev = m.grid.device
        # non-periodic: sample among points whose +1 neighbour exists on every axis
        valid = torch.arange(n, device=dev)
        if not periodic:
            multi = torch.stack(torch.unravel_index(valid, shape))
            valid = valid[(multi < torch.tensor(shape, device=dev)[:, None] - 1).all(dim=0)]
        idx = valid[torch.randperm(valid.numel(), device=dev)[: min(q, valid.numel())]]
        if self.weights.edge == 0:
            return idx, []
        multi = torch.stack(torch.unravel_index(idx, shape))  # [d, q]
        strides = [math.prod(shape[a + 1 :]) for a in range(len(shape))]
        neighbours = []
        for axis, size in enumerate(shape):
            nb = multi.clone()
            nb[axis] = (nb[axis] + 1) % size
            neighbours.append(sum(nb[a] * strides[a] for a in range(len(shape))))
        return idx, neighbours

    def forward(self, frames: torch.Tensor, params: torch.Tensor | None) -> dict[str, torch.Tensor]:
        m, w = self.model, self.weights
        u = m.normalise(frames, channel_dim=2)  # [B, H+1, C, *S]
        b, horizon = u.shape[0], u.shape[1] - 1
        target = rearrange(u[:, 1:], "b t c ... -> b t c (...)").float()  # [B, H, C, N]
        idx, neighbours = self._points()
        pts = m.grid if idx is None else m.grid[torch.cat([idx, *neighbours])]
        k = target.shape[-1] if idx is None else idx.numel()

        def decode(z: torch.Tensor) -> torch.Tensor:  # [B·H, N, E] -> [B, H, C, points]
            return rearrange(m.decoder(z, pts).float(), "(b t) q c -> b t c q", b=b)

        cond = m.condition(b, params=params)
        states = m.rollout_latent(m.encode(u[:, 0]), horizon, cond)  # [B, H, N, E]
        roll = decode(states.flatten(0, 1))
        y = target if idx is None else target[..., idx]
        parts = {
            "one_step": nrmse_loss(roll[:, :1, :, :k], y[:, :1], m.mean, m.std),
            "rollout": nrmse_loss(roll[..., :k], y, m.mean, m.std),
            "conservation": conservation_loss(roll[..., :k], y, m.mean, m.std, m.spec),
        }
        if idx is None:
            grid = m.spec.grid_shape
            parts["edge"] = edge_loss(roll.unflatten(-1, grid), y.unflatten(-1, grid), m.spec.bc == "periodic")
        else:
            err = roll - torch.cat([y] + [target[..., nb] for nb in neighbours], dim=-1)
            diffs = [(err[..., (a + 1) * k : (a + 2) * k] - err[..., :k]).abs().mean() for a in range(len(neighbours))]
            parts["edge"] = sum(diffs, torch.zeros((), device=err.device))
        parts["task"] = (parts["one_step"] + parts["rollout"]) / 2
        total = w.task * parts["task"] + w.edge * parts["edge"] + w.conservation * parts["conservation"]
        if w.inverse_encode > 0:
            parts["inverse_encode"] = m.inverse_encoding_loss(u[:, 0])
            total = total + w.inverse_encode * parts["inverse_encode"]
        if w.inverse_decode > 0:
            parts["inverse_decode"] = m.inverse_decoding_loss(states[:, -1])
            total = total + w.inverse_decode * parts["inverse_decode"]
        parts["loss"] = total
        return parts


class GridObjective(nn.Module):
    """The operator stage's loss for a grid baseline (U-Net, FNO): :class:`OperatorObjective` on the full grid.

    For a window of physical frames ``u_0 … u_H`` (normalised inside), the free rollout ``u'_{t+1} = model(u'_t)``
    from ``u'_0 = u_0`` gives ``rollout`` (nRMSE over t = 1 … H) and ``one_step`` (t = 1), ``task = (one_step +
    rollout) / 2``, plus ``edge`` and ``conservation`` — the same definitions and weights as the latent operator's,
    on every grid point. There is no latent state, so no inverse-encoding/decoding terms.
    """

    def __init__(self, model: GridBaseline, weights: LossWeights):
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, frames: torch.Tensor, params: torch.Tensor | None) -> dict[str, torch.Tensor]:
        m, w = self.model, self.weights
        u = m.normalise(frames, channel_dim=2)  # [B, H+1, C, *S]
        roll = m.rollout_normalised(u[:, 0], u.shape[1] - 1, params).float()  # [B, H, C, *S]
        y = u[:, 1:].float()
        parts = {
            "one_step": nrmse_loss(roll[:, :1], y[:, :1], m.mean, m.std),
            "rollout": nrmse_loss(roll, y, m.mean, m.std),
            "conservation": conservation_loss(roll, y, m.mean, m.std, m.spec),
            "edge": edge_loss(roll, y, m.spec.bc == "periodic"),
        }
        parts["task"] = (parts["one_step"] + parts["rollout"]) / 2
        parts["loss"] = w.task * parts["task"] + w.edge * parts["edge"] + w.conservation * parts["conservation"]
        return parts


@torch.no_grad()
def operator_latents(
    operator: LatentOperator, frames: torch.Tensor, params: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(z_pred, z_true, cond)`` of one-step windows ``frames [B, 2, C, *S]`` under the frozen operator."""
    u = operator.normalise(frames, channel_dim=2)
    cond = operator.condition(u.shape[0], params=params)
    z = operator.encode(u.flatten(0, 1)).float().unflatten(0, (u.shape[0], 2))
    z_pred = operator.step(z[:, 0], cond).float()
    return z_pred, z[:, 1], cond.float() if cond is not None else None


class ResidualObjective(_WithFrozen):
    """Rectified flow on the operator's latent residual ``encode(u_{t+1}) − step(encode(u_t))`` (operator frozen)."""

    frozen = ("operator",)

    def __init__(self, corrector: DiffusionCorrector, operator: LatentOperator):
        super().__init__()
        self.corrector = corrector
        self.operator = freeze(operator)

    def forward(
        self, frames: torch.Tensor, params: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        z_pred, z_true, cond = operator_latents(self.operator, frames, params)
        loss = self.corrector.loss(z_pred, z_true, cond, generator=generator)
        return {"loss": loss}


class DistillObjective(_WithFrozen):
    """Consistency distillation of a 1–2 step student from the frozen rectified-flow teacher."""

    frozen = ("teacher", "operator")

    def __init__(self, student: DiffusionCorrector, teacher: DiffusionCorrector, operator: LatentOperator):
        super().__init__()
        self.student = student
        self.teacher = freeze(teacher)
        self.operator = freeze(operator)

    def forward(
        self, frames: torch.Tensor, params: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        z_pred, _, cond = operator_latents(self.operator, frames, params)
        return {"loss": self.student.distill_loss(self.teacher, z_pred, cond, generator=generator)}


class SteadyObjective(nn.Module):
    """Flow matching of a steady field given its input field (darcy2d: ``a → u``)."""

    def __init__(self, prior: SteadyPrior):
        super().__init__()
        self.prior = prior

    def forward(
        self, a: torch.Tensor, u: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        return {"loss": self.prior.loss(a, u, generator=generator)}
