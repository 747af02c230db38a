"""Optimisation as the playbook prescribes: AdamW, LR scaled with batch tokens, warm-up then cosine, EMA, clipping."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ups.config.schema import StageConfig

REFERENCE_BATCH_TOKENS = 256_000  # playbook: base LR is quoted at ~256k tokens per batch


def scaled_lr(base_lr: float, batch_tokens: int | None) -> float:
    """Linear LR scaling ``lr = base_lr × batch_tokens / 256k`` (playbook); unchanged when tokens are not set."""
    return base_lr if batch_tokens is None else base_lr * batch_tokens / REFERENCE_BATCH_TOKENS


def build_optimizer(
    params: Iterable[torch.nn.Parameter], stage: StageConfig, *, batch_tokens: int | None = None
) -> torch.optim.Optimizer:
    """AdamW (or Adam) with the stage's betas and weight decay; biases and norm gains are not decayed."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = stage.optimizer
    groups = [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=scaled_lr(opt.lr, batch_tokens), betas=opt.betas)


def warmup_cosine(step: int, total_steps: int, *, warmup_ratio: float, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up over ``warmup_ratio × total`` steps, then cosine decay to ``min_ratio``."""
    warmup = max(1, round(warmup_ratio * total_steps)) if warmup_ratio > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, stage: StageConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    sched = stage.scheduler
    if sched.name == "constant":
        warm = max(1, round(sched.warmup_ratio * total_steps)) if sched.warmup_ratio > 0 else 0
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    min_ratio = sched.eta_min / stage.optimizer.lr
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, warmup_ratio=sched.warmup_ratio, min_ratio=min_ratio)
    )


class EMA:
    """Exponential moving average of the parameters, used for evaluation (playbook: 0.999-0.9999).

    ``shadow = decay · shadow + (1 − decay) · param`` after each optimizer step; the effective decay is warmed up as
    ``min(decay, (1 + n) / (10 + n))`` so early averages are not dominated by the random initialisation. Buffers
    (normalisation statistics, fixed flow scales, counters) are copied, not averaged: averaging a constant would
    drift it by round-off, and a buffer is state, not a learned weight.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._params = {k for k, _ in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self._params and (v.dtype.is_floating_point or v.dtype.is_complex):  # FNO spectral weights
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, shadow: dict[str, torch.Tensor], updates: int) -> None:
        self.shadow = {k: v.clone() for k, v in shadow.items()}
        self.updates = updates
