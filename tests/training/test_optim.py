"""Schedules, LR scaling and EMA against hand-computed values."""

import math

import pytest
import torch

from ups.config.schema import StageConfig
from ups.training.optim import EMA, build_optimizer, build_scheduler, scaled_lr, warmup_cosine


def test_lr_scales_linearly_with_batch_tokens():
    assert scaled_lr(3e-4, 256_000) == pytest.approx(3e-4)
    assert scaled_lr(3e-4, 512_000) == pytest.approx(6e-4)
    assert scaled_lr(3e-4, None) == 3e-4


def test_warmup_then_cosine_hand_values():
    total, ratio = 100, 0.05  # 5 warm-up steps
    assert [warmup_cosine(s, total, warmup_ratio=ratio) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert warmup_cosine(5, total, warmup_ratio=ratio) == pytest.approx(1.0)
    mid = 5 + 95 / 2
    assert warmup_cosine(int(mid), total, warmup_ratio=ratio) == pytest.approx(0.5 * (1 + math.cos(math.pi * 47 / 95)))
    assert warmup_cosine(100, total, warmup_ratio=ratio, min_ratio=0.1) == pytest.approx(0.1)


def test_optimizer_uses_stage_betas_and_skips_decay_on_biases():
    model = torch.nn.Linear(3, 2)
    stage = StageConfig(optimizer={"lr": 1e-3, "weight_decay": 0.05, "betas": (0.9, 0.95)})
    opt = build_optimizer(model.parameters(), stage)
    assert isinstance(opt, torch.optim.AdamW)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 1), (0.05, 1)]
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)
    sched = build_scheduler(opt, stage, total_steps=20)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 1 / 1)  # warm-up of max(1, round(0.05*20)) = 1 step
    for _ in range(20):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_ema_averages_with_warmed_up_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # d = min(0.9, 2/11)
    d = 2 / 11
    assert ema.shadow["weight"].item() == pytest.approx(1 - d)
