"""Stage plans: what ``operator``, ``diff_residual``, ``consistency_distill`` and ``steady_prior`` train, on which
batches, for how many steps, validated how.

Budget: a stage runs ``epochs × steps_per_epoch`` optimizer steps, where an epoch is one pass over the distinct
one-step windows of the training split (``n_traj × (n_frames − time_stride)``; steady tasks: ``n_samples``) at the
global batch ``batch_size × world``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ups.config.schema import UPSConfig
from ups.data.store import DatasetStore
from ups.data.windows import WindowSampler, steady_pairs
from ups.metrics import nrmse_per_step
from ups.models.baseline import GridBaseline
from ups.models.diffusion_corrector import DiffusionCorrector
from ups.models.latent_operator import LatentOperator
from ups.models.steady_prior import SteadyPrior
from ups.training.distributed import DistInfo
from ups.training.loop import StagePlan
from ups.training.objectives import (
    DistillObjective,
    GridObjective,
    OperatorObjective,
    ResidualObjective,
    SteadyObjective,
    operator_latents,
)
from ups.training.rundir import STAGES
from ups.training.validation import ValProxy

SCALE_SAMPLES = 256  # windows used to fix the corrector's residual scale (the same on every rank)
VAL_WINDOWS = 64  # val windows of the corrector stages' validation loss


@dataclass
class StageEnv:
    """What every plan builder needs: config, data, device, ranks, per-rank batch size."""

    cfg: UPSConfig
    store: DatasetStore
    train: WindowSampler | None
    val: WindowSampler | None
    device: torch.device
    dist: DistInfo
    batch_size: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.dist.world

    def steps(self, epochs: int, n_items: int) -> tuple[int, int]:
        """(total steps, steps per epoch) for ``epochs`` passes over ``n_items``."""
        per_epoch = max(1, math.ceil(n_items / self.global_batch))
        return epochs * per_epoch, per_epoch

    def window_batch(self, step: int, horizon: int, stream: int) -> dict[str, torch.Tensor | None]:
        wb = self.train.batch(step, self.batch_size, horizon, rank=self.dist.rank, world=self.dist.world, stream=stream)
        params = wb.params.to(self.device) if wb.params.shape[1] else None
        return {"frames": wb.frames.to(self.device), "params": params}


def horizon_schedule(cfg: UPSConfig, max_horizon: int):
    """``step → horizon``: ``training.horizon_curriculum`` (capped at the data's longest window), advancing one entry
    every ``training.grow_every_steps`` steps."""
    horizons = [min(h, max_horizon) for h in cfg.training.horizon_curriculum]
    every = cfg.training.grow_every_steps
    return lambda step: horizons[min(step // every, len(horizons) - 1)]


def bottom_third(model: LatentOperator) -> list[nn.Module]:
    """The backbone's input projection and the first third (at least one) of its blocks in execution order."""
    backbone = model.backbone
    blocks = [b for stage in backbone.down_stages for b in stage] + [b for stage in backbone.up_stages for b in stage]
    return [backbone.lift, *blocks[: max(1, round(len(blocks) / 3))]]


def operator_plan(env: StageEnv, operator: LatentOperator | GridBaseline, proxy: ValProxy) -> StagePlan:
    """The operator stage of the latent operator or of a grid baseline (the same windows, curriculum, optimiser,
    guards and budget; a baseline has its own objective and no bottom third to freeze)."""
    cfg, index = env.cfg, STAGES.index("operator")
    horizon = horizon_schedule(cfg, env.train.max_horizon)
    first = horizon(0)
    frozen = {"done": False}
    grid = isinstance(operator, GridBaseline)
    freeze = cfg.training.freeze_bottom_on_grow and not grid

    def on_step(step: int) -> bool:
        if freeze and not frozen["done"] and horizon(step) > first:
            for module in bottom_third(operator):
                for p in module.parameters():
                    p.requires_grad_(False)
                    p.grad = None
            frozen["done"] = True
            return True
        return False

    total, per_epoch = env.steps(cfg.stages.operator.epochs, env.train.n_windows(1))
    return StagePlan(
        name="operator",
        index=index,
        objective=(GridObjective if grid else OperatorObjective)(operator, cfg.training.loss),
        trained=operator,
        batch=lambda step: env.window_batch(step, horizon(step), index),
        total_steps=total,
        steps_per_epoch=per_epoch,
        stage_cfg=cfg.stages.operator,
        grad_clip=cfg.stages.operator.grad_clip or cfg.training.grad_clip,
        validate=lambda model: proxy(model, env.device),
        on_step=on_step,
        horizon=horizon,
        early_stop=True,
        time_budget_s=cfg.training.time_budget_s,
    )


def _fixed_val_batch(env: StageEnv) -> dict[str, torch.Tensor | None]:
    wb = env.val.batch(0, VAL_WINDOWS, 1, stream=99)
    return {"frames": wb.frames.to(env.device), "params": wb.params.to(env.device) if wb.params.shape[1] else None}


def _val_loss(objective: nn.Module, batch: dict, device: torch.device) -> dict[str, float]:
    """The objective on a fixed val batch with fixed noise (comparable across validations)."""
    generator = torch.Generator(device=device).manual_seed(12345)
    with torch.no_grad():
        return {"val_loss": float(objective(**batch, generator=generator)["loss"])}


def new_corrector(env: StageEnv, operator: LatentOperator) -> DiffusionCorrector:
    """A rectified-flow corrector whose residual scale is fixed from :data:`SCALE_SAMPLES` train windows."""
    cond_dim = env.cfg.operator.pdet.hidden_dim if operator.conditioner is not None else 0
    corrector = DiffusionCorrector.from_config(env.cfg, cond_dim).to(env.device)
    wb = env.train.batch(0, SCALE_SAMPLES, 1, stream=98)
    params = wb.params.to(env.device) if wb.params.shape[1] else None
    z_pred, z_true, _ = operator_latents(operator, wb.frames.to(env.device), params)
    corrector.set_scale(z_true - z_pred)
    return corrector


def _corrector_plan(
    env: StageEnv,
    name: str,
    objective: nn.Module,
    eval_objective: nn.Module,
    trained: nn.Module,
    rebind: Callable[[nn.Module], None],
) -> StagePlan:
    """A one-step-window stage on the corrector; ``rebind`` points ``eval_objective`` at the EMA copy to validate."""
    cfg, index = env.cfg, STAGES.index(name)
    stage_cfg = getattr(cfg.stages, name)
    val_batch = _fixed_val_batch(env)
    total, per_epoch = env.steps(stage_cfg.epochs, env.train.n_windows(1))

    def validate(ema_module: nn.Module) -> dict[str, float]:
        rebind(ema_module)
        return _val_loss(eval_objective, val_batch, env.device)

    return StagePlan(
        name=name,
        index=index,
        objective=objective,
        trained=trained,
        batch=lambda step: env.window_batch(step, 1, index),
        total_steps=total,
        steps_per_epoch=per_epoch,
        stage_cfg=stage_cfg,
        grad_clip=stage_cfg.grad_clip or cfg.training.grad_clip,
        validate=validate,
        generator=True,
    )


def residual_plan(env: StageEnv, corrector: DiffusionCorrector, operator: LatentOperator) -> StagePlan:
    eval_objective = ResidualObjective(corrector, operator)
    return _corrector_plan(
        env,
        "diff_residual",
        ResidualObjective(corrector, operator),
        eval_objective,
        corrector,
        lambda ema: setattr(eval_objective, "corrector", ema),
    )


def distill_plan(
    env: StageEnv, student: DiffusionCorrector, teacher: DiffusionCorrector, operator: LatentOperator
) -> StagePlan:
    eval_objective = DistillObjective(student, teacher, operator)
    return _corrector_plan(
        env,
        "consistency_distill",
        DistillObjective(student, teacher, operator),
        eval_objective,
        student,
        lambda ema: setattr(eval_objective, "student", ema),
    )


def new_steady_prior(env: StageEnv) -> SteadyPrior:
    """A flow-matching prior sized from the task (input → output channels), scales fixed from the train split."""
    spec = env.store.spec
    a, u = steady_pairs(env.store, env.cfg.data.split)
    padding = "circular" if spec.bc == "periodic" else "zeros"
    prior = SteadyPrior.from_config(
        env.cfg, ndim=spec.ndim, channels=u.shape[1], cond_channels=a.shape[1], padding_mode=padding
    ).to(env.device)
    prior.set_scale(u.to(env.device))
    prior.set_cond_scale(a.to(env.device))
    return prior


def steady_plan(env: StageEnv, prior: SteadyPrior) -> StagePlan:
    cfg, index = env.cfg, STAGES.index("steady_prior")
    a, u = steady_pairs(env.store, env.cfg.data.split)
    a_val, u_val = steady_pairs(env.store, "val")
    total, per_epoch = env.steps(cfg.stages.steady_prior.epochs, a.shape[0])

    def batch(step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([cfg.run.seed, index, step])
        idx = rng.integers(0, a.shape[0], size=env.global_batch)
        mine = torch.from_numpy(idx[env.dist.rank * env.batch_size : (env.dist.rank + 1) * env.batch_size])
        return {"a": a[mine].to(env.device), "u": u[mine].to(env.device)}

    def validate(ema_prior: nn.Module) -> dict[str, float]:
        generator = torch.Generator(device=env.device).manual_seed(12345)
        with torch.no_grad():
            sample = ema_prior.sample(a_val.to(env.device), generator=generator).float().cpu()
        per = nrmse_per_step(sample[:, None].numpy(), u_val[:, None].numpy())  # [N, 1, C]
        return {"val_nrmse": float(per.mean())}

    return StagePlan(
        name="steady_prior",
        index=index,
        objective=SteadyObjective(prior),
        trained=prior,
        batch=batch,
        total_steps=total,
        steps_per_epoch=per_epoch,
        stage_cfg=cfg.stages.steady_prior,
        grad_clip=cfg.stages.steady_prior.grad_clip or cfg.training.grad_clip,
        validate=validate,
        generator=True,
    )
