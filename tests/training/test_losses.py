"""Training losses against the scoreboard metrics they estimate, and against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ups.data.spec import ConservedQuantity, TaskSpec
from ups.metrics import conservation_gap, nrmse
from ups.training.losses import conservation_loss, edge_loss, nrmse_loss

SPEC = TaskSpec("t", ("u", "v"), (16,), (1.0,), 0.1, conserved=(ConservedQuantity("mass", "v"),))
MEAN, STD = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5])


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 4, 2, 16, generator=g), torch.randn(3, 4, 2, 16, generator=g)


def _phys(x: torch.Tensor) -> np.ndarray:
    return (x * STD.view(1, 1, -1, 1) + MEAN.view(1, 1, -1, 1)).double().numpy()


def test_nrmse_loss_is_the_scoreboard_nrmse_of_the_physical_fields():
    pred, target = _pair()
    assert float(nrmse_loss(pred, target, MEAN, STD)) == pytest.approx(nrmse(_phys(pred), _phys(target)), rel=1e-5)


def test_conservation_loss_is_the_scoreboard_gap():
    pred, target = _pair(1)
    gap = conservation_gap(_phys(pred), _phys(target), conserved_channels=[1])
    assert float(conservation_loss(pred, target, MEAN, STD, SPEC)) == pytest.approx(gap, rel=1e-5)
    no_conserved = TaskSpec("t", ("u", "v"), (16,), (1.0,), 0.1)
    assert float(conservation_loss(pred, target, MEAN, STD, no_conserved)) == 0.0


def test_edge_loss_is_the_total_variation_of_the_error():
    target = torch.zeros(1, 1, 1, 4)
    pred = torch.tensor([0.0, 1.0, 1.0, 3.0]).view(1, 1, 1, 4)
    # open: |1| + |0| + |2| over 3 differences; periodic adds the wrap |0 - 3|
    assert float(edge_loss(pred, target, periodic=False)) == pytest.approx(3 / 3)
    assert float(edge_loss(pred, target, periodic=True)) == pytest.approx(6 / 4)
    assert float(edge_loss(target + 5.0, target, periodic=True)) == 0.0  # a constant offset has no edges


def test_losses_floor_zero_denominators_instead_of_nan():
    zero = torch.zeros(1, 1, 2, 16) - MEAN.view(1, 1, -1, 1) / STD.view(1, 1, -1, 1)  # physical 0
    assert torch.isfinite(nrmse_loss(zero + 0.1, zero, MEAN, STD))
    assert torch.isfinite(conservation_loss(zero + 0.1, zero, MEAN, STD, SPEC))
