"""The one optimisation loop every stage runs: AdamW, warm-up + cosine, global-norm clipping, EMA, guards, logging.

A stage hands the loop a :class:`StagePlan` (its objective, the module it trains, a stateless ``step → batch``
function, an optional validation of the EMA weights and a curriculum hook). Per step the loop:

1. reseeds torch from ``(seed, stage, step, rank)``, so a resumed run draws the same noise as an uninterrupted one;
2. runs the objective (bf16 autocast on CUDA when ``training.amp``; fp32 on CPU), checks every loss term is finite
   on every rank (else :class:`TrainingAborted`, nothing saved), back-propagates, clips the global gradient norm,
   steps optimizer and scheduler, updates the EMA;
3. every ``logging.log_every`` steps (and at the end and at the early-stop point) validates the EMA weights, applies
   the guards and logs a curves.csv row; every :func:`save_interval` steps (and at the end) saves
   ``checkpoints/last``.

The stage's wall clock (``wall_s``: curves.csv, the loop state, :attr:`StageOutcome.wall_s`) is its compute time:
steps and validation, summed over resumed segments, with the time spent saving checkpoints left out. So how often a
config saves changes neither where a time budget stops nor the ``wall_clock_s`` that ``budget: candidate`` baselines
copy as their budget. Under DDP only rank 0 saves; the other ranks wait for it at the next collective and count that
wait.

A stage with a wall-clock budget (``time_budget_s``) ends after the first step at which that clock has reached the
budget; that step is validated, logged and saved like a last step. Where the budget falls depends on the machine's
speed, so a time-budgeted run is not bitwise reproducible. A step-budgeted run is: saving (how often included)
changes no trained number.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ups.config.schema import StageConfig, UPSConfig
from ups.training.distributed import DistInfo, all_true, wrap
from ups.training.guards import (
    Baseline,
    GuardState,
    TrainingAborted,
    check_finite_losses,
    check_validation,
    should_early_stop,
)
from ups.training.optim import EMA, build_optimizer, build_scheduler
from ups.training.sinks import Progress, ProgressCallback, Sinks


@dataclass
class StagePlan:
    """Everything stage-specific the loop needs."""

    name: str
    index: int  # position in the stage order: separates seeds and batch streams of stages
    objective: nn.Module  # forward(**batch) -> {"loss": total, other terms...}
    trained: nn.Module  # the module whose parameters are optimised and averaged (EMA)
    batch: Callable[[int], dict[str, Any]]  # step -> keyword arguments of the objective (this rank's slice)
    total_steps: int
    steps_per_epoch: int
    stage_cfg: StageConfig
    grad_clip: float | None
    validate: Callable[[nn.Module], dict[str, float]] | None = None  # EMA copy of ``trained`` -> val metrics
    on_step: Callable[[int], bool] | None = None  # before each step; True when the trainable set changed
    horizon: Callable[[int], int] | None = None  # the curriculum horizon at a step (logged)
    early_stop: bool = False  # apply the early-stop guard (operator stage)
    generator: bool = False  # pass a per-step torch.Generator to the objective
    time_budget_s: float | None = None  # stop at the first step once the stage's wall clock reaches this


@dataclass
class LoopContext:
    """Run-wide settings and services shared by every stage."""

    cfg: UPSConfig
    device: torch.device
    dist: DistInfo
    sinks: Sinks
    save: Callable[[dict[str, Any], torch.optim.Optimizer, dict[str, torch.Tensor]], Path]  # -> checkpoints/last
    last_checkpoint: Callable[[], str]  # one-line description of the last good checkpoint
    baseline: Baseline | None = None
    batch_tokens: int | None = None  # global tokens per step for LR scaling (None: no scaling)
    global_offset: int = 0
    progress: bool = True  # a tqdm bar / periodic lines on stderr
    on_progress: ProgressCallback | None = None  # gets every ProgressEvent (rank 0)
    position: tuple[int, int] = (0, 1)  # (index of this stage among the stages of the call, their number)


@dataclass
class StageOutcome:
    eval_weights: dict[str, torch.Tensor]
    metrics: dict[str, float]
    guard: GuardState
    steps: int
    loop_state: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0  # the stage's wall clock (resumed segments summed)
    out_of_time: bool = False  # stopped by ``time_budget_s``


def save_interval(cfg: UPSConfig, total_steps: int) -> int:
    """Steps between checkpoints of a ``total_steps`` stage: ``run.save_every``, or ``ceil(run.save_every_frac ×
    total_steps)`` when that is smaller (a kill then loses at most that fraction of the stage)."""
    every, frac = cfg.run.save_every, cfg.run.save_every_frac
    if frac is None:
        return every
    return min(every, max(1, math.ceil(frac * total_steps)))


def step_seed(seed: int, stage: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, stage, step, rank]).generate_state(1)[0])


def autocast(cfg: UPSConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 (or fp16) autocast on CUDA when ``training.amp``; a no-op on CPU (fp32)."""
    precision = cfg.run.mixed_precision
    if device.type != "cuda" or not cfg.training.amp or precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def run_stage(plan: StagePlan, ctx: LoopContext, resume: dict[str, Any] | None = None) -> StageOutcome:
    """Train one stage from step 0 or from ``resume`` (``{"loop": loop state, "optimizer": ..., "ema": ...}``)."""
    cfg, dist = ctx.cfg, ctx.dist
    optimizer = build_optimizer(plan.trained.parameters(), plan.stage_cfg, batch_tokens=ctx.batch_tokens)
    scheduler = build_scheduler(optimizer, plan.stage_cfg, plan.total_steps)
    ema = EMA(plan.trained, cfg.training.ema_decay)
    guard, start, elapsed = GuardState(), 0, 0.0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["loop"]["scheduler"])
        ema.load_state_dict(resume["ema"], resume["loop"]["ema_updates"])
        guard = GuardState.from_dict(resume["loop"]["guard"])
        start = resume["loop"]["step"]
        elapsed = resume["loop"].get("wall_s", 0.0)
    eval_module = copy.deepcopy(plan.trained).eval()
    early_stop_step = (
        max(1, math.ceil(cfg.training.early_stop_at * plan.total_steps))
        if plan.early_stop and cfg.training.early_stop_at is not None and ctx.baseline is not None
        else None
    )
    log_every, save_every = cfg.logging.log_every, save_interval(cfg, plan.total_steps)
    metrics: dict[str, float] = {}

    def loop_state(done: int) -> dict[str, Any]:
        return {
            "step": done,
            "scheduler": scheduler.state_dict(),
            "ema_updates": ema.updates,
            "guard": guard.as_dict(),
            "data": {"step": done, "epoch": done // plan.steps_per_epoch, "batch": done % plan.steps_per_epoch},
            "wall_s": time.perf_counter() - t_start,
        }

    def make_wrapped() -> nn.Module:
        wrapped = wrap(plan.objective, dist, ctx.device)
        return torch.compile(wrapped) if cfg.training.compile else wrapped

    plan.objective.train()
    if plan.on_step is not None and start > 0:
        plan.on_step(start - 1)  # re-apply curriculum state (e.g. frozen layers) before the optimizer resumes
    wrapped = make_wrapped()
    t_start = time.perf_counter() - elapsed
    progress = Progress(
        plan.name, plan.total_steps, start, enabled=ctx.progress and dist.is_main,
        callback=ctx.on_progress if dist.is_main else None, position=ctx.position,
        time_budget_s=plan.time_budget_s, elapsed_s=elapsed,
    )  # fmt: skip
    done, out_of_time = start, False
    try:
        for step in range(start, plan.total_steps):
            if plan.on_step is not None and plan.on_step(step):
                wrapped = make_wrapped()
            seed = step_seed(cfg.run.seed, plan.index, step, dist.rank)
            torch.manual_seed(seed)
            kwargs = plan.batch(step)
            if plan.generator:
                kwargs["generator"] = torch.Generator(device=ctx.device).manual_seed(seed + 1)
            with autocast(cfg, ctx.device):
                out = wrapped(**kwargs)
            values = {k: float(v.detach()) for k, v in out.items()}
            where = f"{plan.name} step {step + 1}"
            if not all_true(all(math.isfinite(v) for v in values.values()), dist, _flag_device(ctx)):
                try:
                    check_finite_losses(values, where)  # names this rank's bad term, if it has one
                    reason = f"{where}: non-finite loss on another rank"
                except TrainingAborted as err:
                    reason = str(err)
                raise TrainingAborted(f"{reason}; {ctx.last_checkpoint()}")
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            params = [p for p in plan.trained.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, plan.grad_clip or math.inf))
            if not math.isfinite(grad_norm):
                raise TrainingAborted(f"{where}: non-finite gradient norm; {ctx.last_checkpoint()}")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            ema.update(plan.trained)
            done = step + 1
            if plan.time_budget_s is not None:  # every rank stops at the same step
                in_time = time.perf_counter() - t_start < plan.time_budget_s
                out_of_time = not all_true(in_time, dist, _flag_device(ctx))
            check_early = early_stop_step is not None and done >= early_stop_step and not guard.early_stop_checked
            if done % log_every == 0 or done == plan.total_steps or check_early or out_of_time:
                row: dict[str, Any] = {
                    "global_step": ctx.global_offset + done,
                    "stage": plan.name,
                    "step": done,
                    "epoch": done / plan.steps_per_epoch,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "wall_s": time.perf_counter() - t_start,
                    **values,
                }
                if plan.horizon is not None:
                    row["horizon"] = plan.horizon(step)
                if plan.validate is not None:
                    eval_module.load_state_dict(ema.state_dict())
                    metrics = plan.validate(eval_module)
                    row.update(metrics)
                    try:
                        check_validation(metrics, guard, ctx.baseline, cfg.training.physics_spike_factor, where)
                    except TrainingAborted as err:
                        raise TrainingAborted(f"{err}; {ctx.last_checkpoint()}") from None
                    if "val_nrmse" in metrics:
                        guard.best_proxy = min(guard.best_proxy, metrics["val_nrmse"])
                        guard.history.append(metrics["val_nrmse"])
                if dist.is_main:
                    ctx.sinks.log(row)
                progress.update(done, {k: row[k] for k in ("loss", "val_nrmse") if k in row}, loss=values["loss"])
                if check_early:
                    guard.early_stop_checked = True
                    stop, verdict = should_early_stop(guard, ctx.baseline)
                    guard.reason = f"{'early stop' if stop else 'early-stop check passed'} at step {done}: {verdict}"
                    if stop:
                        guard.outcome = "early_stop"
                        break
            else:
                progress.update(done, loss=values["loss"])
            if done % save_every == 0 or done == plan.total_steps or out_of_time:
                t_save = time.perf_counter()
                ctx.save(loop_state(done), optimizer, ema.state_dict())
                saving = time.perf_counter() - t_save
                t_start += saving  # the stage's clock is compute time: saves stay out of it (and of the budget)
                progress.exclude(saving)
            if out_of_time:
                break
    finally:
        progress.close()
    weights = {k: v.detach().clone() for k, v in ema.state_dict().items()}
    state = loop_state(done)
    return StageOutcome(weights, metrics, guard, done, state, wall_s=state["wall_s"], out_of_time=out_of_time)


def _flag_device(ctx: LoopContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
